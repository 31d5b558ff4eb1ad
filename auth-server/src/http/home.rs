//! `GET /`: who is signed in here; and the stylesheet.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};

use super::{pages, session_cookie};
use crate::state::AppState;

pub async fn home(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let session = crate::policy::session::current(&state, session_cookie(&req, &state)).await;
    let body = match session {
        Ok(Some(session)) => crate::pages::message_page(
            "Signed in",
            &format!(
                "You are signed in as {}. Sign out at /logout.",
                session.user.username
            ),
        ),
        Ok(None) => crate::pages::message_page("Not signed in", "Applications send you here to sign in."),
        Err(e) => return super::error::unavailable(e),
    };
    pages::html(StatusCode::OK, body, &[])
}

pub async fn stylesheet() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "public, max-age=3600"))
        .body(crate::pages::STYLESHEET)
}

pub async fn favicon() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((header::CACHE_CONTROL, "public, max-age=86400"))
        .body(crate::pages::FAVICON)
}
