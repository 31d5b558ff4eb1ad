//! CORS for `/api`: only the origins in `RESOURCE_CORS_ORIGINS`. Tokens go in
//! the `Authorization` header, so credentials are never allowed.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use oauth_common::cors::{self, CorsPolicy};

use crate::config::Settings;

const POLICY: CorsPolicy = CorsPolicy {
    methods: "GET, POST, PUT, DELETE",
    headers: "authorization, content-type",
    expose: Some("WWW-Authenticate, Retry-After, Link, Location"),
};

pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let allowed = cors::origin(&req).filter(|origin| {
        req.app_data::<web::Data<Settings>>()
            .is_some_and(|s| s.cors_origins.iter().any(|o| o == origin))
    });
    cors::apply(req, next, allowed, &POLICY).await
}
