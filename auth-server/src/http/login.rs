//! `GET /login` and `POST /login`: the sign-in form (`INTERFACE.md`).
//!
//! The form's CSRF token is a MAC of a random pre-login cookie. A wrong
//! username and a wrong password produce the same page, and take the same
//! time (an unknown user is checked against a dummy hash); so does a locked
//! account. Failures count per account (`protocol::throttle`) and per
//! client address (`limits`), both before any password is hashed. A
//! successful sign-in always starts a new session with a new id (no
//! fixation).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;

use super::client_ip::client_ip;
use super::pages::unavailable;
use super::{cookies, find_session, pages, query_params, session_cookie};
use crate::audit::{self, Actor, Event};
use crate::client_cache::CachedClients;
use crate::crypto;
use crate::domain::Username;
use crate::hasher::{Busy, Priority};
use crate::limits::{self, Kind};
use crate::pages::{LoginPage, login_page};
use crate::protocol::authorize::resolve_target;
use crate::protocol::session::{CsrfPurpose, SessionStore as _, csrf_ok, csrf_token};
use crate::protocol::{Params, StoreError, throttle};
use crate::state::AppState;
use crate::storage;
use crate::storage::rate_limits::Check;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";
const FORM_EXPIRED: &str = "Your sign-in form expired. Please sign in again.";
const THROTTLED: &str = "Too many failed sign-ins from your network. Wait a minute and try again.";
const BUSY: &str = "Too many sign-ins are in progress. Please try again in a moment.";

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
    store: &mut crate::storage::PgStore<'_>,
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

impl<'a> Form<'a> {
    /// The form shown again with an error.
    fn refusal(
        status: StatusCode,
        return_to: &'a str,
        binding: &'a str,
        set_binding: bool,
        context: &'a Context,
        username: &'a str,
        error: &'static str,
    ) -> Self {
        Self {
            status,
            return_to,
            binding,
            set_binding,
            context,
            username,
            error: Some(error),
        }
    }
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
    let looked_up = storage::run(&state.pool, move |store| {
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

/// The throttle key for this attempt: the account's, unless the browser
/// holds a device cookie from an earlier sign-in to this same account, in
/// which case the device has its own count (so an attacker hammering the
/// account cannot lock out the browsers its owner already uses).
fn throttle_key(state: &AppState, req: &HttpRequest, username: &str) -> String {
    let device = req.cookie(state.cookies.device).map(|c| c.value().to_owned());
    let recognised = device.as_deref().and_then(|value| {
        let (nonce, mac) = value.split_once('.')?;
        let bound = device_binding(nonce, username);
        csrf_ok(&state.server_keys.csrf, CsrfPurpose::Device, &bound, mac).then(|| nonce.to_owned())
    });
    match recognised {
        Some(nonce) => throttle::device_key(&nonce),
        None => throttle::account_key(username),
    }
}

fn device_binding(nonce: &str, username: &str) -> String {
    format!("{nonce}\u{0}{}", username.trim().to_ascii_lowercase())
}

/// A new device cookie value for `username`: `nonce.mac`.
fn device_cookie(state: &AppState, username: &str) -> Option<String> {
    let nonce = crypto::b64url(&crypto::random_bytes::<16>().ok()?);
    let mac = csrf_token(
        &state.server_keys.csrf,
        CsrfPurpose::Device,
        &device_binding(&nonce, username),
    )
    .ok()?;
    Some(format!("{nonce}.{mac}"))
}

/// What the sign-in round trip decided before any password is hashed.
enum Gate {
    /// The CSRF token is missing or wrong.
    Forged,
    /// The client address is over its failure limit.
    AddressLimited(std::time::Duration),
    /// The account (or this browser's count for it) is locked.
    Locked,
    /// Check the password, at this priority, against this user (or, for an
    /// unknown username, the dummy hash).
    Check(
        Priority,
        Option<(crate::model::User, crate::domain::PasswordHash)>,
    ),
}

pub async fn submit(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let form = match super::read_page_form(payload).await {
        Ok(form) => form,
        Err(too_large) => return too_large,
    };
    let return_to = return_to(&query_params(&req));
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
    let csrf_valid = binding
        .as_deref()
        .is_some_and(|b| csrf_ok(&state.server_keys.csrf, CsrfPurpose::Login, b, &presented_token));
    let key = throttle_key(&state, &req, &username);
    let client_ip = client_ip(&req, &state.settings.trusted_proxies);
    let ip_key = limits::ip_key(client_ip);
    let actor = Actor::ip(client_ip);
    let now = Utc::now();

    // The front line: an address this instance knows to be over its limit
    // is refused before any database work.
    if let Some(retry) = state.limits.blocked(&[&ip_key], now) {
        return address_limited(&state, &return_to, binding.as_deref(), &username, retry, actor);
    }
    // At most a few checks per address at once, so a parallel burst cannot
    // pass the limit's look before any of its failures is counted.
    let Some(_slot) = state.limits.check_slot(&ip_key) else {
        return address_limited(
            &state,
            &return_to,
            binding.as_deref(),
            &username,
            std::time::Duration::from_secs(1),
            actor,
        );
    };

    // One round trip: the page context and, for a valid form, the shared
    // limit of the address, the attempt counted against the account before
    // any hashing (so parallel guesses are counted too), and the user.
    let st = state.clone();
    let target = return_to.clone();
    let login_name = username.clone();
    let reserved_key = key.clone();
    let limit_key = ip_key.clone();
    let looked_up = storage::run(&state.pool, move |store| {
        let context = context(&st, store, &target)?;
        if !csrf_valid {
            return Ok((context, Gate::Forged));
        }
        let recent = match st.limits.peek(store.conn, Kind::Address, &limit_key, now)? {
            Check::Limited { retry_after } => return Ok((context, Gate::AddressLimited(retry_after))),
            Check::Allowed { recent } => recent,
        };
        // A name that cannot be a username is checked against the dummy
        // hash like an unknown one, but not given a throttle row.
        let (attempt, user) = match Username::parse(&login_name) {
            Ok(name) => {
                let Some(attempt) = storage::throttle::reserve_attempt(store.conn, &reserved_key, now)?
                else {
                    return Ok((context, Gate::Locked));
                };
                (
                    attempt,
                    storage::users::find_by_username(store.conn, name.as_str())?,
                )
            }
            Err(_) => (1, None),
        };
        let priority = if recent || attempt > 1 {
            Priority::Suspect
        } else {
            Priority::Clean
        };
        Ok((context, Gate::Check(priority, user)))
    })
    .await;
    let (context, gate) = match looked_up {
        Ok(found) => found,
        Err(e) => return unavailable(e),
    };
    let form = |status, binding, set_binding, error| {
        Form::refusal(
            status,
            &return_to,
            binding,
            set_binding,
            &context,
            &username,
            error,
        )
    };

    let locked = matches!(gate, Gate::Locked);
    let (priority, found) = match gate {
        Gate::Forged => {
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
                form(StatusCode::FORBIDDEN, &binding, set_binding, FORM_EXPIRED),
            );
        }
        Gate::AddressLimited(retry) => {
            return address_limited(&state, &return_to, binding.as_deref(), &username, retry, actor);
        }
        Gate::Locked => {
            // Exactly the wrong-password answer: the same page, and the same
            // queue and cost, since a dummy check runs in its place. The
            // attempt still counts against the address.
            audit::record(Event::AccountLocked, actor, "sign-in refused: account locked");
            state.metrics.event("login_throttled");
            (Priority::Suspect, None)
        }
        Gate::Check(priority, found) => (priority, found),
    };
    let binding = binding.unwrap_or_default();

    // Argon2 on the verifier's own threads. An unknown user is checked
    // against a dummy hash so both cases take as long (and cost as much).
    // Passwords longer than the policy allows cannot be right; they cost
    // the same.
    let candidate = if password.len() > 1024 {
        String::new()
    } else {
        password
    };
    let (hash, user) = match found {
        Some((user, hash)) => (hash, Some(user)),
        None => (state.dummy_hash.clone(), None),
    };
    let matched = match state.verifier.verify(hash, candidate, priority).await {
        Ok(matched) => matched,
        Err(Busy) => {
            tracing::warn!("login refused: too many sign-ins in progress");
            state.metrics.event("login_busy");
            // Only suspects are turned away while clean sign-ins still get
            // through, so a refused attempt counts against the address like
            // a failure: a sprayer reaches its limit (and 429) instead of
            // queueing forever.
            if priority == Priority::Suspect {
                record_address_failure(&state, ip_key).await;
            }
            let mut page = render(
                &state,
                form(StatusCode::SERVICE_UNAVAILABLE, &binding, false, BUSY),
            );
            page.headers_mut().insert(
                actix_web::http::header::RETRY_AFTER,
                actix_web::http::header::HeaderValue::from_static("2"),
            );
            return page;
        }
    };
    let Some(user) = user.filter(|_| matched) else {
        if !locked {
            audit::record(Event::SignInFailed, actor, "wrong username or password");
            state.metrics.event("login_failed");
        }
        record_address_failure(&state, ip_key).await;
        return render(&state, form(StatusCode::OK, &binding, false, BAD_CREDENTIALS));
    };

    let Ok(session_id) = crypto::random_token() else {
        return unavailable(StoreError::Failed("RNG failed".into()));
    };
    let session_hash = crypto::token_hash(&session_id);
    let expires_at = now
        + chrono::Duration::from_std(state.settings.session_absolute_ttl).unwrap_or(chrono::Duration::MAX);
    let user_id = user.id;
    let created = storage::run(&state.pool, move |store| {
        storage::throttle::clear(store.conn, &key)?;
        store.create_session(&session_hash, user_id, now, expires_at)?;
        if let Some(old) = old_session {
            // A new id for the new sign-in (no fixation), but the grants
            // the old session produced stay tied to this browser, so a
            // later logout still ends them.
            let old_hash = crypto::token_hash(&old);
            storage::grants::rebind_session(store.conn, &old_hash, &session_hash)?;
            store.delete_session(&old_hash)?;
        }
        Ok(())
    })
    .await;
    if let Err(e) = created {
        return unavailable(e);
    }
    audit::record(Event::SignInSucceeded, actor.user(user.id), "signed in");
    state.metrics.event("login_succeeded");
    let mut response = pages::redirect(&return_to, true);
    let _ = response.add_cookie(&cookies::set(state.cookies.session, session_id));
    let _ = response.add_cookie(&cookies::remove(state.cookies.login));
    if let Some(device) = device_cookie(&state, &user.username) {
        let _ = response.add_cookie(&cookies::device(state.cookies.device, device));
    }
    response
}

/// Counts a failed sign-in against the client address (shared by every
/// instance). A store failure is logged: the answer is already decided.
async fn record_address_failure(state: &web::Data<AppState>, ip_key: String) {
    let st = state.clone();
    let recorded = storage::run(&state.pool, move |store| {
        st.limits
            .record_failure(store.conn, Kind::Address, &ip_key, Utc::now())
    })
    .await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not count a failed sign-in against its address");
    }
}

/// The page for an address over its failure limit: 429 with `Retry-After`,
/// before any password is hashed.
fn address_limited(
    state: &AppState,
    return_to: &str,
    binding: Option<&str>,
    username: &str,
    retry: std::time::Duration,
    actor: Actor<'_>,
) -> HttpResponse {
    audit::record(
        Event::Throttled,
        actor,
        "sign-in refused: address over its failure limit",
    );
    state.metrics.event("login_address_limited");
    let context = Context::default();
    let mut page = render(
        state,
        Form::refusal(
            StatusCode::TOO_MANY_REQUESTS,
            return_to,
            binding.unwrap_or_default(),
            false,
            &context,
            username,
            THROTTLED,
        ),
    );
    let seconds = retry.as_secs().max(1).to_string();
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(&seconds) {
        page.headers_mut()
            .insert(actix_web::http::header::RETRY_AFTER, value);
    }
    page
}
