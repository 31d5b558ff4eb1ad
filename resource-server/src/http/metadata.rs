//! RFC 9728 protected-resource metadata.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use crate::config::Settings;

/// Served at `/.well-known/oauth-protected-resource` (the path
/// `INTERFACE.md` names) and at the RFC 9728 section 3.1 location for our
/// resource identifier, `/.well-known/oauth-protected-resource/api`.
pub async fn metadata(settings: web::Data<Settings>) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .json(json!({
            "resource": settings.audience,
            "authorization_servers": [settings.issuer],
            "scopes_supported": ["profile", "notes:read", "notes:write", "admin"],
            "bearer_methods_supported": ["header"],
            "resource_name": "Notes API",
        }))
}

/// The RFC 9728 location: only for our own resource identifier's path.
pub async fn metadata_for_path(req: HttpRequest, settings: web::Data<Settings>) -> HttpResponse {
    let ours = settings.resource_metadata_url();
    let path = ours
        .find("/.well-known/")
        .map(|at| &ours[at..])
        .unwrap_or_default();
    if req.path() == path {
        metadata(settings).await
    } else {
        super::not_found(req).await
    }
}
