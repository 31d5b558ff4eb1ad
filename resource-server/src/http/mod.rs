//! The `/api` surface and the RFC 9728 metadata. One file per area;
//! handlers extract (the token extractor enforces scope and role), call
//! storage, and map the outcome to JSON or problem+json.

mod cors;
mod errors;
mod me;
mod metadata;
mod notes;

use actix_web::middleware::from_fn;
use actix_web::web;

pub use errors::{not_found, query_config, read_json};

use crate::token::Requirement;

/// `GET /api/me`.
pub struct Profile;
impl Requirement for Profile {
    const SCOPE: &'static str = "profile";
}

/// Reading the caller's own notes.
pub struct ReadNotes;
impl Requirement for ReadNotes {
    const SCOPE: &'static str = "notes:read";
}

/// Changing the caller's own notes.
pub struct WriteNotes;
impl Requirement for WriteNotes {
    const SCOPE: &'static str = "notes:write";
}

/// `/api/admin/...`: the admin scope and the admin role.
pub struct Admin;
impl Requirement for Admin {
    const SCOPE: &'static str = "admin";
    const ROLE: Option<&'static str> = Some("admin");
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.app_data(query_config())
        .service(
            web::scope("/.well-known/oauth-protected-resource")
                .wrap(from_fn(cors::cors))
                .route("", web::get().to(metadata::metadata))
                .route("/{tail:.*}", web::get().to(metadata::metadata_for_path)),
        )
        .service(
            web::scope("/api")
                .wrap(from_fn(cors::cors))
                .route("/me", web::get().to(me::me))
                .route("/notes", web::get().to(notes::list))
                .route("/notes", web::post().to(notes::create))
                .route("/notes/{id}", web::get().to(notes::get))
                .route("/notes/{id}", web::put().to(notes::replace))
                .route("/notes/{id}", web::delete().to(notes::delete))
                .route("/admin/stats", web::get().to(notes::stats))
                .default_service(web::to(not_found)),
        )
        .default_service(web::to(not_found));
}
