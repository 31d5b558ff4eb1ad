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
    expose: None,
};

/// Middleware for the CORS-enabled resources: answers preflights and adds
/// `Access-Control-Allow-Origin` for allowed origins.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let allowed = match (cors::origin(&req), state) {
        (Some(origin), Some(state)) if state.cors.allowed(&state.pool, &origin).await => Some(origin),
        _ => None,
    };
    cors::apply(req, next, allowed, &POLICY).await
}
