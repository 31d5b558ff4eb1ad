//! `GET /authorize` and `POST /authorize` (the consent decision). The
//! decisions are `policy::authorize`'s; this file maps them to pages and
//! redirects.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};

use super::{pages, query_params, session_cookie};
use crate::pages::{ConsentPage, consent_page};
use crate::policy::authorize::{Decision, View, authorize};
use crate::protocol::StoreError;
use crate::state::AppState;

fn render(req: &HttpRequest, view: Result<View, StoreError>, after_post: bool) -> HttpResponse {
    match view {
        Ok(View::InvalidLink(message)) => {
            pages::error(StatusCode::BAD_REQUEST, "This sign-in link is not valid", message)
        }
        Ok(View::ConsentExpired) => pages::error(
            StatusCode::FORBIDDEN,
            "This page expired",
            "The consent form expired. Go back to the application and try again.",
        ),
        Ok(View::Redirect(location)) => pages::redirect(&location, after_post),
        Ok(View::Login { fresh, login_hint }) => {
            // The sign-in itself honours `prompt=login` and `max_age`; the
            // request comes back without them so it does not ask again.
            let return_to = format!(
                "/authorize?{}",
                crate::protocol::oidc::after_sign_in(req.query_string())
            );
            let mut query = url::form_urlencoded::Serializer::new(String::new());
            query.append_pair("return_to", &return_to);
            if let Some(hint) = login_hint {
                query.append_pair("login_hint", &hint);
            }
            if fresh {
                query.append_pair("fresh", "1");
            }
            pages::redirect(&format!("/login?{}", query.finish()), after_post)
        }
        Ok(View::Consent {
            client_name,
            username,
            scope,
            csrf_token,
            form_origins,
        }) => {
            let action = format!("/authorize?{}", req.query_string());
            let redirect_origin = form_origins.first().map(String::as_str).unwrap_or_default();
            let body = consent_page(&ConsentPage {
                action: &action,
                csrf_token: &csrf_token,
                client_name: &client_name,
                username: &username,
                scope: &scope,
                redirect_origin,
            });
            pages::html(StatusCode::OK, body, &form_origins)
        }
        Err(e) => super::error::unavailable(e),
    }
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let view = authorize(&state, query_params(&req), session_cookie(&req, &state), None).await;
    render(&req, view, false)
}

pub async fn decide(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let form = match super::read_page_form(payload).await {
        Ok(form) => form,
        Err(too_large) => return too_large,
    };
    let params = query_params(&req);
    let approve = match form.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "Cannot continue",
                "The form did not say whether to allow or deny access.",
            );
        }
    };
    let decision = Decision {
        ip: super::client_ip::client_ip(&req, &state.settings.trusted_proxies),
        approve,
        csrf_token: form.get("csrf_token").unwrap_or("").to_owned(),
    };
    let view = authorize(&state, params, session_cookie(&req, &state), Some(decision)).await;
    render(&req, view, true)
}
