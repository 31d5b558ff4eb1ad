//! `GET` and `POST /userinfo` (OpenID Connect Core 1.0 section 5.3) with a
//! bearer access token (RFC 6750): in the `Authorization` header, or for
//! `POST` in the form body (section 2.2), never both. Errors carry
//! `WWW-Authenticate` as RFC 6750 section 3 says. The decisions are
//! `protocol::userinfo`'s.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::json;

use super::OAuthJson;
use crate::policy::tokens;
use crate::protocol::OAuthError;
use crate::protocol::userinfo::Refusal;
use crate::state::AppState;

/// A bearer error: status, `WWW-Authenticate` and the same code as JSON.
fn bearer_error(status: StatusCode, error: Option<&str>, extra: &str) -> HttpResponse {
    let challenge = match error {
        // No credentials at all: no error code (RFC 6750 section 3.1).
        None => "Bearer".to_owned(),
        Some(code) => format!("Bearer error=\"{code}\"{extra}"),
    };
    let mut response = HttpResponse::build(status);
    response
        .insert_header((header::WWW_AUTHENTICATE, challenge))
        .insert_header((header::CACHE_CONTROL, "no-store"));
    match error {
        Some(code) => response.json(json!({ "error": code })),
        None => response.finish(),
    }
}

/// The token from the `Authorization` header: `Ok(None)` when there is no
/// Bearer credential, `Err` when the header is a malformed Bearer one.
fn header_token(req: &HttpRequest) -> Result<Option<String>, ()> {
    let Some(value) = req.headers().get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ())?;
    let Some((scheme, token)) = value.split_once(' ') else {
        return if value.eq_ignore_ascii_case("bearer") {
            Err(())
        } else {
            Ok(None)
        };
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    let token = token.trim();
    // RFC 6750 section 2.1: b64token.
    let b64token = |c: char| c.is_ascii_alphanumeric() || "-._~+/=".contains(c);
    if token.is_empty() || !token.chars().all(b64token) {
        return Err(());
    }
    Ok(Some(token.to_owned()))
}

pub async fn userinfo(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let invalid_request = || bearer_error(StatusCode::BAD_REQUEST, Some("invalid_request"), "");
    let from_header = match header_token(&req) {
        Ok(token) => token,
        Err(()) => return invalid_request(),
    };
    let from_body = if req.method() == actix_web::http::Method::POST && super::is_form(&req) {
        match super::read_body(payload)
            .await
            .as_deref()
            .and_then(super::form_params)
        {
            Some(form) if form.is_repeated("access_token") => return invalid_request(),
            Some(form) => form.get("access_token").map(str::to_owned),
            None => return invalid_request(),
        }
    } else {
        None
    };
    let token = match (from_header, from_body) {
        (Some(_), Some(_)) => return invalid_request(),
        (Some(token), None) | (None, Some(token)) => token,
        (None, None) => return bearer_error(StatusCode::UNAUTHORIZED, None, ""),
    };
    match tokens::userinfo(&state, token, state.clock.now()).await {
        Ok(Ok(claims)) => HttpResponse::Ok()
            .insert_header((header::CACHE_CONTROL, "no-store"))
            .json(claims),
        Ok(Err(Refusal::InvalidToken)) => bearer_error(StatusCode::UNAUTHORIZED, Some("invalid_token"), ""),
        Ok(Err(Refusal::InsufficientScope)) => bearer_error(
            StatusCode::FORBIDDEN,
            Some("insufficient_scope"),
            ", scope=\"openid\"",
        ),
        Err(e) => {
            use actix_web::ResponseError as _;
            OAuthJson::from(OAuthError::from_store(e)).error_response()
        }
    }
}

/// `/userinfo` takes GET and POST only.
pub async fn method_not_allowed() -> HttpResponse {
    HttpResponse::MethodNotAllowed()
        .insert_header((header::ALLOW, "GET, POST"))
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "error": "invalid_request",
            "error_description": "use GET or POST",
        }))
}
