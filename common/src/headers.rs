//! Security headers every response carries unless its handler chose
//! otherwise (OWASP ASVS V3.4): no sniffing, no framing, no referrer, no
//! caching, a deny-all CSP for non-HTML responses, and HSTS when served
//! over https.

use actix_web::body::MessageBody;
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Next;
use actix_web::{Error, web};

/// Per-app choice, stored as `web::Data<HeaderPolicy>`.
#[derive(Debug, Clone, Copy)]
pub struct HeaderPolicy {
    /// Send `Strict-Transport-Security` (the public URL is https).
    pub hsts: bool,
}

const CSP_NONE: &str = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

/// Middleware (`middleware::from_fn(headers::security_headers)`).
pub async fn security_headers(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, Error> {
    let hsts = req.app_data::<web::Data<HeaderPolicy>>().is_some_and(|p| p.hsts);
    let mut res = next.call(req).await?;
    let headers = res.headers_mut();
    let defaults: [(HeaderName, &'static str); 5] = [
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "no-referrer"),
        (header::CACHE_CONTROL, "no-store"),
        (header::CONTENT_SECURITY_POLICY, CSP_NONE),
    ];
    for (name, value) in defaults {
        if !headers.contains_key(&name) {
            headers.insert(name, HeaderValue::from_static(value));
        }
    }
    if hsts {
        headers.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=31536000; includeSubDomains"),
        );
    }
    Ok(res)
}
