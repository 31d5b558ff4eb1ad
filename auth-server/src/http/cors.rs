//! CORS for the token, revocation, JWKS and metadata endpoints: allowed for
//! the origins of public clients' registered redirect URIs (browser apps),
//! and for nobody else. The authorization endpoint and the pages never send
//! CORS headers.

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use oauth_common::cors::{self, CorsPolicy};

use crate::state::AppState;

const POLICY: CorsPolicy = CorsPolicy {
    methods: "GET, POST",
    headers: "authorization, content-type",
    // A browser app reads `/userinfo`'s RFC 6750 challenge.
    expose: Some("www-authenticate"),
};

/// Middleware for the CORS-enabled resources: answers preflights and adds
/// `Access-Control-Allow-Origin` for allowed origins.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    // Most callers (servers fetching the JWKS or metadata) send no Origin;
    // they cost no look at the shared state.
    let allowed = match cors::origin(&req) {
        Some(origin) => match req.app_data::<web::Data<AppState>>().cloned() {
            Some(state) if state.cors.allowed(&state.pool, &origin).await => Some(origin),
            _ => None,
        },
        None => None,
    };
    cors::apply(req, next, allowed, &POLICY).await
}
