//! `GET /logout` and `POST /logout`. The decisions are `policy::logout`'s;
//! this file reads the cookies and maps the outcome to a page.
//!
//! RP-Initiated Logout 1.0 section 2 lets a client send its logout request
//! as a form POST too: a POST without our `csrf_token` but with its
//! parameters gets the confirmation page, exactly as the GET would.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{cookies, pages, query_params, session_cookie};
use crate::pages::Signed;
use crate::policy::logout::{self, Outcome, Who};
use crate::protocol::Params;
use crate::state::AppState;

fn origin_of(location: &str) -> Vec<String> {
    url::Url::parse(location)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .into_iter()
        .collect()
}

/// The parameters of RP-Initiated Logout 1.0 section 2.
const RP_PARAMETERS: [&str; 6] = [
    "id_token_hint",
    "logout_hint",
    "client_id",
    "post_logout_redirect_uri",
    "state",
    "ui_locales",
];

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    confirm(&req, &state, query_params(&req), req.query_string().to_owned()).await
}

/// The confirmation page for these logout parameters; `query` carries them
/// into the form's action.
async fn confirm(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: Params,
    query: String,
) -> HttpResponse {
    let confirmation = match logout::confirmation(
        state,
        params,
        session_cookie(req, state),
        cookies::read(req, state.cookies.login),
    )
    .await
    {
        Ok(confirmation) => confirmation,
        Err(e) => return super::error::unavailable(e),
    };
    let action = if query.is_empty() {
        "/logout".to_owned()
    } else {
        format!("/logout?{query}")
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
    if form.get("csrf_token").is_none() && RP_PARAMETERS.iter().any(|p| form.get(p).is_some()) {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        for name in RP_PARAMETERS {
            if let Some(value) = form.get(name) {
                query.append_pair(name, value);
            }
        }
        let query = query.finish();
        return confirm(&req, &state, Params::parse(&query), query).await;
    }
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
