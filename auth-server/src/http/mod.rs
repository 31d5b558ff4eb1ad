//! The public HTTP surface: one file per endpoint. Handlers extract, call
//! the protocol, and map the outcome; they hold no OAuth logic.

mod authorize;
pub mod client_ip;
pub mod cookies;
pub mod cors;
pub mod discovery;
pub mod error;
mod events;
mod home;
mod introspect;
pub mod limits;
mod login;
mod logout;
pub mod pages;
mod revoke;
mod token;
mod userinfo;

use actix_web::middleware::from_fn;
use actix_web::{HttpRequest, web};

pub use error::OAuthJson;

use crate::protocol::Params;
use crate::state::AppState;

/// Largest form body the protocol endpoints read.
const FORM_LIMIT: usize = 16 * 1024;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(home::home))
        .route("/static/style.css", web::get().to(home::stylesheet))
        .route("/static/favicon.svg", web::get().to(home::favicon))
        .route("/favicon.ico", web::get().to(home::favicon))
        .route("/login", web::get().to(login::show))
        .route("/login", web::post().to(login::submit))
        .route("/authorize", web::get().to(authorize::show))
        .route("/authorize", web::post().to(authorize::decide))
        .route("/logout", web::get().to(logout::show))
        .route("/logout", web::post().to(logout::submit))
        .service(
            web::resource("/introspect")
                .route(web::post().to(introspect::introspect))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/revoke")
                .wrap(from_fn(cors::cors))
                .route(web::post().to(revoke::revoke))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/token")
                .wrap(from_fn(cors::cors))
                .route(web::post().to(token::token))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/.well-known/oauth-authorization-server")
                .wrap(from_fn(cors::cors))
                .route(web::get().to(discovery::metadata)),
        )
        .service(
            web::resource("/.well-known/openid-configuration")
                .wrap(from_fn(cors::cors))
                .route(web::get().to(discovery::metadata)),
        )
        .service(
            web::resource("/events")
                .route(web::post().to(events::events))
                .default_service(web::to(method_not_allowed)),
        )
        .service(
            web::resource("/userinfo")
                .wrap(from_fn(cors::cors))
                .route(web::get().to(userinfo::userinfo))
                .route(web::post().to(userinfo::userinfo))
                .default_service(web::to(userinfo::method_not_allowed)),
        )
        .service(
            web::resource(crate::protocol::metadata::JWKS_PATH)
                .wrap(from_fn(cors::cors))
                .route(web::get().to(discovery::jwks)),
        );
}

/// The JSON endpoints take POST only (RFC 6749 section 3.2, RFC 7662, RFC
/// 7009); anything else is a 405 in the section 5.2 error form.
async fn method_not_allowed() -> actix_web::HttpResponse {
    actix_web::HttpResponse::MethodNotAllowed()
        .insert_header((actix_web::http::header::ALLOW, "POST"))
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .json(serde_json::json!({
            "error": "invalid_request",
            "error_description": "use POST",
        }))
}

/// The query string as parameters.
pub fn query_params(req: &HttpRequest) -> Params {
    Params::parse(req.query_string())
}

/// Whether the request body is a form (RFC 6749 section 3.2).
pub fn is_form(req: &HttpRequest) -> bool {
    req.headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/x-www-form-urlencoded"))
}

/// Reads a request body of at most `FORM_LIMIT` bytes; `None` when it is
/// larger (or the client went away). Handlers answer in their own format:
/// JSON endpoints with `invalid_request`, pages with a 413 page.
pub async fn read_body(mut payload: web::Payload) -> Option<web::Bytes> {
    use futures_util::StreamExt as _;
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.ok()?;
        if body.len() + chunk.len() > FORM_LIMIT {
            return None;
        }
        body.extend_from_slice(&chunk);
    }
    Some(body.freeze())
}

/// Reads a protocol request's form body (RFC 6749 section 3.2: POST,
/// `application/x-www-form-urlencoded`, at most `FORM_LIMIT` bytes).
pub async fn read_form(req: &HttpRequest, payload: web::Payload) -> Result<Params, OAuthJson> {
    let body = read_body(payload)
        .await
        .ok_or(crate::protocol::OAuthError::InvalidRequest(
            "the request body is too large",
        ))?;
    if !is_form(req) {
        return Err(crate::protocol::OAuthError::InvalidRequest(
            "the body must be application/x-www-form-urlencoded",
        )
        .into());
    }
    Ok(
        form_params(&body).ok_or(crate::protocol::OAuthError::InvalidRequest(
            "the body is not valid UTF-8",
        ))?,
    )
}

/// The form of a page post; a body over the limit gets a 413 page.
pub async fn read_page_form(payload: web::Payload) -> Result<Params, actix_web::HttpResponse> {
    match read_body(payload).await {
        Some(body) => Ok(form_params(&body).unwrap_or_default()),
        None => Err(pages::error(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "Request too large",
            "The form was too large.",
        )),
    }
}

/// A form body as parameters; `None` if it is not UTF-8.
pub fn form_params(body: &[u8]) -> Option<Params> {
    std::str::from_utf8(body).ok().map(Params::parse)
}

/// The raw session id from the cookie, if any.
pub fn session_cookie(req: &HttpRequest, state: &AppState) -> Option<String> {
    cookies::read(req, state.cookies.session)
}
