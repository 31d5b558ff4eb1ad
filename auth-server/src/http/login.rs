//! `GET /login` and `POST /login`: the sign-in form (`INTERFACE.md`).
//!
//! The form's CSRF token is a MAC of a random pre-login cookie. A wrong
//! username and a wrong password produce the same page, and take the same
//! time (an unknown user is checked against a dummy hash). A successful
//! sign-in always starts a new session with a new id (no fixation).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use oauth_common::db;

use super::{cookies, find_session, form_params, pages, query_params, session_cookie, with_store};
use crate::client_cache::CachedClients;
use crate::crypto;
use crate::domain::{PasswordHash, Username};
use crate::pages::{LoginPage, login_page};
use crate::protocol::authorize::resolve_target;
use crate::protocol::session::{CsrfPurpose, SessionStore as _, csrf_ok, csrf_token};
use crate::protocol::{OAuthError, Params, StoreError, throttle};
use crate::state::AppState;
use crate::storage;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";
const FORM_EXPIRED: &str = "Your sign-in form expired. Please sign in again.";
const THROTTLED: &str = "Too many failed sign-ins for this account. Wait a few minutes and try again.";

/// Where to continue after sign-in: our own authorization endpoint only,
/// so `return_to` cannot be used as an open redirect.
fn return_to(params: &Params) -> String {
    match params.get("return_to") {
        Some(r) if r.starts_with("/authorize?") && !r.chars().any(|c| c == '\\' || c.is_control()) => {
            r.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The application a pending authorization request is for: its name for
/// the page, and its redirect origin for `form-action`.
#[derive(Default)]
struct Context {
    client_name: Option<String>,
    form_origins: Vec<String>,
}

fn context(
    state: &AppState,
    store: &mut crate::storage::store::PgStore<'_>,
    return_to: &str,
) -> Result<Context, StoreError> {
    let Some(query) = return_to.strip_prefix("/authorize?") else {
        return Ok(Context::default());
    };
    let mut clients = CachedClients {
        cache: &state.clients,
        store,
    };
    Ok(match resolve_target(&Params::parse(query), &mut clients)? {
        Ok(target) => Context {
            client_name: Some(target.client.name.clone()),
            form_origins: target.redirect_uri.origin().into_iter().collect(),
        },
        Err(_) => Context::default(),
    })
}

fn unavailable(e: StoreError) -> HttpResponse {
    let error = OAuthError::from_store(e);
    pages::error(
        super::home::error_status(&error),
        "Unavailable",
        "The service is temporarily unavailable. Please try again.",
    )
}

struct Form<'a> {
    status: StatusCode,
    return_to: &'a str,
    /// The pre-login cookie value, and whether it must be set now.
    binding: &'a str,
    set_binding: bool,
    context: &'a Context,
    username: &'a str,
    error: Option<&'a str>,
}

fn render(state: &AppState, form: Form<'_>) -> HttpResponse {
    let Ok(token) = csrf_token(&state.server_keys.csrf, CsrfPurpose::Login, form.binding) else {
        return pages::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "Something went wrong.",
        );
    };
    let action = format!(
        "/login?return_to={}",
        url::form_urlencoded::byte_serialize(form.return_to.as_bytes()).collect::<String>()
    );
    let body = login_page(&LoginPage {
        action: &action,
        csrf_token: &token,
        client_name: form.context.client_name.as_deref(),
        username: form.username,
        error: form.error,
    });
    let mut response = pages::html(form.status, body, &form.context.form_origins);
    if form.set_binding {
        let _ = response.add_cookie(&cookies::set(state.cookies.login, form.binding.to_owned()));
    }
    response
}

fn new_binding() -> Option<String> {
    crypto::random_token().ok()
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let return_to = return_to(&query_params(&req));
    let raw_session = session_cookie(&req, &state);
    let st = state.clone();
    let target = return_to.clone();
    let looked_up = with_store(&state, move |store| {
        let session = find_session(
            store,
            raw_session.as_deref(),
            Utc::now(),
            st.settings.session_idle_ttl,
        )?;
        Ok((session.is_some(), context(&st, store, &target)?))
    })
    .await;
    let (signed_in, context) = match looked_up {
        Ok(found) => found,
        Err(e) => return unavailable(e),
    };
    if signed_in {
        return pages::redirect(&return_to, false);
    }
    let (binding, set_binding) = match cookies::read(&req, state.cookies.login) {
        Some(existing) => (existing, false),
        None => match new_binding() {
            Some(fresh) => (fresh, true),
            None => return unavailable(StoreError::Failed("RNG failed".into())),
        },
    };
    render(
        &state,
        Form {
            status: StatusCode::OK,
            return_to: &return_to,
            binding: &binding,
            set_binding,
            context: &context,
            username: "",
            error: None,
        },
    )
}

pub async fn submit(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let Some(body) = super::read_body(payload).await else {
        return pages::error(
            actix_web::http::StatusCode::PAYLOAD_TOO_LARGE,
            "Request too large",
            "The form was too large.",
        );
    };
    let return_to = return_to(&query_params(&req));
    let form = form_params(&body).unwrap_or_default();
    let username = form
        .get("username")
        .unwrap_or("")
        .trim()
        .chars()
        .take(256)
        .collect::<String>();
    let password = form.get("password").unwrap_or("").to_owned();
    let presented_token = form.get("csrf_token").unwrap_or("").to_owned();
    let binding = cookies::read(&req, state.cookies.login);
    let old_session = session_cookie(&req, &state);

    let st = state.clone();
    let target = return_to.clone();
    let login_name = username.clone();
    let throttle_key = throttle::account_key(&username);
    let key = throttle_key.clone();
    let looked_up = with_store(&state, move |store| {
        let context = context(&st, store, &target)?;
        let blocked = throttle::is_blocked(storage::throttle::get(store.conn, &key)?.as_ref(), Utc::now());
        let user = match Username::parse(&login_name) {
            Ok(name) if !blocked => storage::users::find_by_username(store.conn, name.as_str())?,
            _ => None,
        };
        Ok((context, blocked, user))
    })
    .await;
    let (context, blocked, found) = match looked_up {
        Ok(found) => found,
        Err(e) => return unavailable(e),
    };

    let csrf_valid = binding
        .as_deref()
        .is_some_and(|b| csrf_ok(&state.server_keys.csrf, CsrfPurpose::Login, b, &presented_token));
    if !csrf_valid {
        tracing::warn!("login refused: CSRF token missing or wrong");
        state.metrics.event("login_csrf_failed");
        let (binding, set_binding) = match binding {
            Some(b) => (b, false),
            None => match new_binding() {
                Some(fresh) => (fresh, true),
                None => return unavailable(StoreError::Failed("RNG failed".into())),
            },
        };
        return render(
            &state,
            Form {
                status: StatusCode::FORBIDDEN,
                return_to: &return_to,
                binding: &binding,
                set_binding,
                context: &context,
                username: &username,
                error: Some(FORM_EXPIRED),
            },
        );
    }
    let binding = binding.unwrap_or_default();
    if blocked {
        tracing::warn!("login refused: account throttled after repeated failures");
        state.metrics.event("login_throttled");
        return render(
            &state,
            Form {
                status: StatusCode::TOO_MANY_REQUESTS,
                return_to: &return_to,
                binding: &binding,
                set_binding: false,
                context: &context,
                username: &username,
                error: Some(THROTTLED),
            },
        );
    }

    // Argon2 on the blocking pool, without holding a database connection.
    let dummy = state.dummy_hash.clone();
    let verified = db::blocking(move || {
        // Passwords longer than the policy allows cannot be right; still
        // spend the same time on them.
        let candidate: &str = if password.len() > 1024 { "" } else { &password };
        Ok::<_, db::BlockingJoinError>(match found {
            Some((user, hash)) => verify(&hash, candidate).then_some(user),
            None => {
                let _ = verify(&dummy, candidate);
                None
            }
        })
    })
    .await
    .unwrap_or(None);

    let Some(user) = verified else {
        tracing::info!("login failed");
        state.metrics.event("login_failed");
        let key = throttle_key.clone();
        let recorded = with_store(&state, move |store| {
            storage::throttle::record_failure(store.conn, &key, |s| throttle::after_failure(s, Utc::now()))
        })
        .await;
        if let Err(e) = recorded {
            return unavailable(e);
        }
        return render(
            &state,
            Form {
                status: StatusCode::OK,
                return_to: &return_to,
                binding: &binding,
                set_binding: false,
                context: &context,
                username: &username,
                error: Some(BAD_CREDENTIALS),
            },
        );
    };

    let Ok(session_id) = crypto::random_token() else {
        return unavailable(StoreError::Failed("RNG failed".into()));
    };
    let session_hash = crypto::token_hash(&session_id);
    let now = Utc::now();
    let expires_at = now
        + chrono::Duration::from_std(state.settings.session_absolute_ttl).unwrap_or(chrono::Duration::MAX);
    let user_id = user.id;
    let created = with_store(&state, move |store| {
        storage::throttle::clear(store.conn, &throttle_key)?;
        if let Some(old) = old_session {
            store.delete_session(&crypto::token_hash(&old))?;
        }
        store.create_session(&session_hash, user_id, now, expires_at)
    })
    .await;
    if let Err(e) = created {
        return unavailable(e);
    }
    tracing::info!(user_id = %user.id, "login succeeded");
    state.metrics.event("login_succeeded");
    let mut response = pages::redirect(&return_to, true);
    let _ = response.add_cookie(&cookies::set(state.cookies.session, session_id));
    let _ = response.add_cookie(&cookies::remove(state.cookies.login));
    response
}

fn verify(hash: &PasswordHash, candidate: &str) -> bool {
    hash.verify(candidate)
}
