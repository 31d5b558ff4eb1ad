//! `GET /api/me` (scope `profile`).

use actix_web::HttpResponse;
use serde_json::json;

use super::Profile;
use crate::token::Authorized;

pub async fn me(auth: Authorized<Profile>) -> HttpResponse {
    let claims = &auth.claims;
    HttpResponse::Ok().json(json!({
        "sub": claims.sub,
        "username": claims.username,
        "roles": claims.roles,
        "scope": claims.scope_string(),
    }))
}
