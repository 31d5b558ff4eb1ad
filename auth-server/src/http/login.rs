//! `GET /login` and `POST /login`: the sign-in form (`INTERFACE.md`). The
//! decisions are `policy::login`'s; this file reads the request and the
//! cookies and maps the outcome to a page.

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpRequest, HttpResponse, web};

use super::client_ip::client_ip;
use super::error::unavailable;
use super::{cookies, pages, query_params, session_cookie};
use crate::pages::{LoginPage, login_page};
use crate::policy::login::{self, Attempt, Context, Form, Outcome, Refusal};
use crate::state::AppState;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";
const FORM_EXPIRED: &str = "Your sign-in form expired. Please sign in again.";
const THROTTLED: &str = "Too many failed sign-ins from your network. Wait a minute and try again.";
const BUSY: &str = "Too many sign-ins are in progress. Please try again in a moment.";

struct Page<'a> {
    status: StatusCode,
    return_to: &'a str,
    /// The pre-login cookie value, and whether it must be set now.
    binding: &'a str,
    set_binding: bool,
    context: &'a Context,
    username: &'a str,
    error: Option<&'static str>,
}

fn render(state: &AppState, page: Page<'_>) -> HttpResponse {
    let Ok(token) = login::form_token(state, page.binding) else {
        return pages::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "Something went wrong.",
        );
    };
    let action = format!(
        "/login?return_to={}",
        url::form_urlencoded::byte_serialize(page.return_to.as_bytes()).collect::<String>()
    );
    let body = login_page(&LoginPage {
        action: &action,
        csrf_token: &token,
        client_name: page.context.client_name.as_deref(),
        username: page.username,
        error: page.error,
    });
    let mut response = pages::html(page.status, body, &page.context.form_origins);
    if page.set_binding {
        let _ = response.add_cookie(&cookies::set(state.cookies.login, page.binding.to_owned()));
    }
    response
}

/// The pre-login cookie, or a fresh one to set.
fn binding(req: &HttpRequest, state: &AppState) -> Option<(String, bool)> {
    match cookies::read(req, state.cookies.login) {
        Some(existing) => Some((existing, false)),
        None => login::new_binding().ok().map(|fresh| (fresh, true)),
    }
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = query_params(&req);
    let return_to = login::return_to(&params);
    // `fresh`: the authorization request wants the password now
    // (`prompt=login`, `max_age`), so a live session does not skip the form.
    let session = match params.get("fresh") {
        Some(_) => None,
        None => session_cookie(&req, &state),
    };
    // OIDC `login_hint`: a username to fill in, never more than the field holds.
    let hint: String = params
        .get("login_hint")
        .unwrap_or("")
        .chars()
        .filter(|c| !c.is_control())
        .take(64)
        .collect();
    let context = match login::form(&state, session, &return_to).await {
        Ok(Form::SignedIn) => return pages::redirect(&return_to, false),
        Ok(Form::Show(context)) => context,
        Err(e) => return unavailable(e),
    };
    let Some((binding, set_binding)) = binding(&req, &state) else {
        return unavailable(crate::protocol::StoreError::Crypto("RNG failed".into()));
    };
    render(
        &state,
        Page {
            status: StatusCode::OK,
            return_to: &return_to,
            binding: &binding,
            set_binding,
            context: &context,
            username: &hint,
            error: None,
        },
    )
}

pub async fn submit(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let form = match super::read_page_form(payload).await {
        Ok(form) => form,
        Err(too_large) => return too_large,
    };
    let return_to = login::return_to(&query_params(&req));
    let username = form
        .get("username")
        .unwrap_or("")
        .trim()
        .chars()
        .take(256)
        .collect::<String>();
    let binding = cookies::read(&req, state.cookies.login);
    let attempt = Attempt {
        username: username.clone(),
        password: form.get("password").unwrap_or("").to_owned(),
        csrf_token: form.get("csrf_token").unwrap_or("").to_owned(),
        binding: binding.clone(),
        old_session: session_cookie(&req, &state),
        device: req.cookie(state.cookies.device).map(|c| c.value().to_owned()),
        client_ip: client_ip(&req, &state.settings.trusted_proxies),
        return_to: return_to.clone(),
    };
    let (refusal, context) = match login::sign_in(&state, attempt).await {
        Ok(Outcome::SignedIn { session_id, device }) => {
            let mut response = pages::redirect(&return_to, true);
            let _ = response.add_cookie(&cookies::set(state.cookies.session, session_id));
            let _ = response.add_cookie(&cookies::remove(state.cookies.login));
            if let Some(device) = device {
                let _ = response.add_cookie(&cookies::device(state.cookies.device, device));
            }
            return response;
        }
        Ok(Outcome::Refused { refusal, context }) => (refusal, context),
        Err(e) => return unavailable(e),
    };
    let (status, error, retry_after) = match refusal {
        Refusal::Forged => (StatusCode::FORBIDDEN, FORM_EXPIRED, None),
        Refusal::AddressLimited { retry_after } => (
            StatusCode::TOO_MANY_REQUESTS,
            THROTTLED,
            Some(retry_after.as_secs().max(1)),
        ),
        Refusal::Busy => (StatusCode::SERVICE_UNAVAILABLE, BUSY, Some(2)),
        Refusal::BadCredentials => (StatusCode::OK, BAD_CREDENTIALS, None),
    };
    // A forged form gets a fresh binding when the browser has none; the
    // other refusals keep the one the form was bound to.
    let (binding, set_binding) = match (refusal, binding) {
        (_, Some(existing)) => (existing, false),
        (Refusal::Forged, None) => match login::new_binding() {
            Ok(fresh) => (fresh, true),
            Err(e) => return unavailable(e),
        },
        (_, None) => (String::new(), false),
    };
    let mut page = render(
        &state,
        Page {
            status,
            return_to: &return_to,
            binding: &binding,
            set_binding,
            context: &context,
            username: &username,
            error: Some(error),
        },
    );
    if let Some(seconds) = retry_after
        && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
    {
        page.headers_mut().insert(header::RETRY_AFTER, value);
    }
    page
}
