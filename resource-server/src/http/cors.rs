//! CORS for `/api`: only the origins in `RESOURCE_CORS_ORIGINS`. Tokens go in
//! the `Authorization` header, so credentials are never allowed.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

use crate::config::Settings;

pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let allowed = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .filter(|origin| {
            req.app_data::<web::Data<Settings>>()
                .is_some_and(|s| s.cors_origins.iter().any(|o| o == origin))
        })
        .map(str::to_owned);
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = match &allowed {
            Some(origin) => {
                let mut r = HttpResponse::NoContent();
                r.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.as_str()))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST, PUT, DELETE"))
                    .insert_header((
                        header::ACCESS_CONTROL_ALLOW_HEADERS,
                        "authorization, content-type",
                    ))
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
        headers.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("WWW-Authenticate, Retry-After, Link, Location"),
        );
    }
    Ok(response)
}
