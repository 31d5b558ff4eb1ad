//! Authorization server metadata (RFC 8414) and the JWKS, served from
//! memory (the documents are `protocol::metadata`'s and `keys`').

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use crate::state::AppState;

pub async fn metadata(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(state.metadata.clone())
}

/// The JWKS from memory. Its max-age is kept well under the key activation
/// delay, so a pre-published key reaches every cache before it signs.
pub async fn jwks(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let keys = state.keys.snapshot();
    let (body, etag) = keys.jwks_document();
    let max_age = state.settings.jwks_max_age().as_secs();
    let cache_control = if max_age == 0 {
        "no-cache".to_owned()
    } else {
        format!("public, max-age={max_age}")
    };
    let not_modified = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut response = if not_modified {
        HttpResponse::NotModified()
    } else {
        HttpResponse::Ok()
    };
    response
        .insert_header((header::ETAG, etag))
        .insert_header((header::CACHE_CONTROL, cache_control));
    if not_modified {
        response.finish()
    } else {
        response
            .content_type("application/jwk-set+json")
            .body(body.to_owned())
    }
}
