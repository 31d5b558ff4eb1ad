//! The CORS mechanics both servers share: answering a preflight and
//! decorating a response for an origin the caller has already judged.
//! Which origins are allowed is each server's own decision. Credentials are
//! never allowed: tokens travel in the `Authorization` header.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse};

/// What a CORS-enabled resource allows.
#[derive(Debug, Clone, Copy)]
pub struct CorsPolicy {
    pub methods: &'static str,
    pub headers: &'static str,
    /// Response headers scripts may read.
    pub expose: Option<&'static str>,
}

/// The request's `Origin`, if any.
pub fn origin(req: &ServiceRequest) -> Option<String> {
    req.headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Answers a preflight (204 for an allowed origin, 403 otherwise) or passes
/// the request on and adds `Access-Control-Allow-Origin` for an allowed one.
pub async fn apply(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
    allowed: Option<String>,
    policy: &CorsPolicy,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = match &allowed {
            Some(origin) => {
                let mut r = HttpResponse::NoContent();
                r.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.as_str()))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, policy.methods))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_HEADERS, policy.headers))
                    .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
                r
            }
            None => HttpResponse::build(StatusCode::FORBIDDEN),
        };
        let response = response.insert_header((header::VARY, "Origin")).finish();
        return Ok(req.into_response(response).map_into_boxed_body());
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed.and_then(|o| HeaderValue::from_str(&o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        if let Some(expose) = policy.expose {
            headers.insert(
                header::ACCESS_CONTROL_EXPOSE_HEADERS,
                HeaderValue::from_static(expose),
            );
        }
    }
    Ok(response)
}
