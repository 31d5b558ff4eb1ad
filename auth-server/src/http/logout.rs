//! `GET /logout` and `POST /logout`. The decisions are `policy::logout`'s;
//! this file reads the cookies and maps the outcome to a page.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{cookies, pages, query_params, session_cookie};
use crate::pages::Signed;
use crate::policy::logout::{self, Outcome, Who};
use crate::state::AppState;

fn origin_of(location: &str) -> Vec<String> {
    url::Url::parse(location)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .into_iter()
        .collect()
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let confirmation = match logout::confirmation(
        &state,
        query_params(&req),
        session_cookie(&req, &state),
        cookies::read(&req, state.cookies.login),
    )
    .await
    {
        Ok(confirmation) => confirmation,
        Err(e) => return super::error::unavailable(e),
    };
    let action = if req.query_string().is_empty() {
        "/logout".to_owned()
    } else {
        format!("/logout?{}", req.query_string())
    };
    let origins = confirmation
        .destination
        .as_deref()
        .map(origin_of)
        .unwrap_or_default();
    let who = match &confirmation.who {
        Who::In(user) => Signed::In(&user.username),
        Who::Expired => Signed::Expired,
        Who::Out => Signed::Out,
    };
    let mut page = pages::html(
        StatusCode::OK,
        crate::pages::logout_page(
            &action,
            &confirmation.csrf_token,
            who,
            confirmation.requested_by.as_deref(),
        ),
        &origins,
    );
    if let Some(fresh) = confirmation.new_login_cookie {
        let _ = page.add_cookie(&cookies::set(state.cookies.login, fresh));
    }
    page
}

pub async fn submit(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let form = match super::read_page_form(payload).await {
        Ok(form) => form,
        Err(too_large) => return too_large,
    };
    let outcome = logout::sign_out(
        &state,
        query_params(&req),
        session_cookie(&req, &state),
        cookies::read(&req, state.cookies.login),
        form.get("csrf_token").unwrap_or(""),
        super::client_ip::client_ip(&req, &state.settings.trusted_proxies),
    )
    .await;
    let destination = match outcome {
        Ok(Outcome::SignedOut { destination }) => destination,
        Ok(Outcome::Forged) => {
            return pages::error(
                StatusCode::FORBIDDEN,
                "This page expired",
                "The sign-out form expired. Open the sign-out page again.",
            );
        }
        Err(e) => return super::error::unavailable(e),
    };
    let mut response = match destination {
        Some(location) => pages::redirect(&location, true),
        None => pages::html(
            StatusCode::OK,
            crate::pages::message_page("Signed out", "You have signed out."),
            &[],
        ),
    };
    let _ = response.add_cookie(&cookies::remove(state.cookies.session));
    response
}
