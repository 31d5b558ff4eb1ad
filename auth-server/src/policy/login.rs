//! Sign-in policy, behind `GET /login` and `POST /login`.
//!
//! The form's CSRF token is a MAC of a random pre-login cookie. A wrong
//! username and a wrong password get the same answer and take the same
//! time (an unknown user is checked against a dummy hash); so does a locked
//! account. Failures count per account (`protocol::throttle`) and per
//! client address (`limits`), both before any password is hashed. A
//! successful sign-in always starts a new session with a new id (no
//! fixation).

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::session::find_session;
use crate::audit::{self, Actor, Event};
use crate::client_cache::CachedClients;
use crate::crypto;
use crate::domain::{PasswordHash, Username};
use crate::hasher::{Busy, Priority};
use crate::limits::{self, Kind};
use crate::model::User;
use crate::protocol::authorize::resolve_target;
use crate::protocol::session::{CsrfPurpose, csrf_ok, csrf_token};
use crate::protocol::{Params, StoreError, throttle};
use crate::state::AppState;
use crate::storage::rate_limits::Check;
use crate::storage::{self, PgStore};

/// Where to continue after sign-in: our own authorization endpoint only,
/// so `return_to` cannot be used as an open redirect.
pub fn return_to(params: &Params) -> String {
    match params.get("return_to") {
        Some(r) if r.starts_with("/authorize?") && !r.chars().any(|c| c == '\\' || c.is_control()) => {
            r.to_owned()
        }
        _ => "/".to_owned(),
    }
}

/// The application a pending authorization request is for: its name for
/// the page, and its redirect origin for `form-action`.
#[derive(Debug, Default)]
pub struct Context {
    pub client_name: Option<String>,
    pub form_origins: Vec<String>,
}

fn context(state: &AppState, store: &mut PgStore<'_>, return_to: &str) -> Result<Context, StoreError> {
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

/// What `GET /login` shows.
pub enum Form {
    /// Already signed in: go on to `return_to`.
    SignedIn,
    /// Show the form for this application.
    Show(Context),
}

/// Decides what `GET /login` shows.
pub async fn form(
    state: &Arc<AppState>,
    raw_session: Option<String>,
    return_to: &str,
) -> Result<Form, StoreError> {
    let st = Arc::clone(state);
    let target = return_to.to_owned();
    let now = state.clock.now();
    let (signed_in, context) = storage::run(&state.pool, move |store| {
        let session = find_session(store, raw_session.as_deref(), now, st.settings.session_idle_ttl)?;
        Ok((session.is_some(), context(&st, store, &target)?))
    })
    .await?;
    Ok(if signed_in {
        Form::SignedIn
    } else {
        Form::Show(context)
    })
}

/// A fresh pre-login cookie value (the CSRF binding of the form).
pub fn new_binding() -> Result<String, StoreError> {
    Ok(crypto::random_token()?)
}

/// The form's CSRF token for a pre-login cookie value.
pub fn form_token(state: &AppState, binding: &str) -> Result<String, StoreError> {
    csrf_token(&state.server_keys.csrf, CsrfPurpose::Login, binding)
}

/// What a `POST /login` presented, as the handler extracted it.
pub struct Attempt {
    pub username: String,
    pub password: String,
    pub csrf_token: String,
    /// The pre-login cookie.
    pub binding: Option<String>,
    /// The session cookie, if the browser already had one.
    pub old_session: Option<String>,
    /// The device cookie from an earlier sign-in, if any.
    pub device: Option<String>,
    pub client_ip: IpAddr,
    pub return_to: String,
}

/// Why a sign-in was refused; each is shown as the form with a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The CSRF token is missing or wrong.
    Forged,
    /// The client address is over its failure limit.
    AddressLimited { retry_after: Duration },
    /// Too many sign-ins are being checked right now.
    Busy,
    /// Wrong username or password, or a locked account (indistinguishable).
    BadCredentials,
}

/// What a `POST /login` gets.
pub enum Outcome {
    SignedIn {
        session_id: String,
        /// A new device cookie value for this account.
        device: Option<String>,
    },
    Refused {
        refusal: Refusal,
        context: Context,
    },
}

/// What the sign-in round trip decided before any password is hashed.
enum Gate {
    Forged,
    AddressLimited(Duration),
    Locked,
    /// Check the password, at this priority, against this user (or, for an
    /// unknown username, the dummy hash).
    Check(Priority, Option<(User, PasswordHash)>),
}

/// The throttle key for this attempt: the account's, unless the browser
/// holds a device cookie from an earlier sign-in to this same account, in
/// which case the device has its own count (so an attacker hammering the
/// account cannot lock out the browsers its owner already uses).
fn throttle_key(state: &AppState, device: Option<&str>, username: &str) -> String {
    let recognised = device.and_then(|value| {
        let (nonce, mac) = value.split_once('.')?;
        let bound = device_binding(nonce, username);
        state
            .server_keys
            .csrf_keys()
            .any(|key| csrf_ok(key, CsrfPurpose::Device, &bound, mac))
            .then(|| nonce.to_owned())
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

/// Decides a sign-in attempt.
pub async fn sign_in(state: &Arc<AppState>, attempt: Attempt) -> Result<Outcome, StoreError> {
    let Attempt {
        username,
        password,
        csrf_token: presented,
        binding,
        old_session,
        device,
        client_ip,
        return_to,
    } = attempt;
    let csrf_valid = binding.as_deref().is_some_and(|b| {
        state
            .server_keys
            .csrf_keys()
            .any(|key| csrf_ok(key, CsrfPurpose::Login, b, &presented))
    });
    let key = throttle_key(state, device.as_deref(), &username);
    let ip_key = limits::ip_key(client_ip);
    let actor = Actor::ip(client_ip);
    let now = state.clock.now();
    let address_limited = |retry_after| {
        audit::record(
            Event::Throttled,
            actor,
            "sign-in refused: address over its failure limit",
        );
        state.metrics.event("login_address_limited");
        Outcome::Refused {
            refusal: Refusal::AddressLimited { retry_after },
            context: Context::default(),
        }
    };

    // The front line: an address this instance knows to be over its limit
    // is refused before any database work.
    if let Some(retry) = state.limits.blocked(&[&ip_key], now) {
        return Ok(address_limited(retry));
    }
    // At most a few checks per address at once, so a parallel burst cannot
    // pass the limit's look before any of its failures is counted.
    let Some(_slot) = state.limits.check_slot(&ip_key) else {
        return Ok(address_limited(Duration::from_secs(1)));
    };

    let (context, gate) = admit(
        state,
        return_to,
        csrf_valid,
        key.clone(),
        ip_key.clone(),
        &username,
        now,
    )
    .await?;
    let refused = |refusal, context| Ok(Outcome::Refused { refusal, context });

    let locked = matches!(gate, Gate::Locked);
    let (priority, found) = match gate {
        Gate::Forged => {
            tracing::warn!("login refused: CSRF token missing or wrong");
            state.metrics.event("login_csrf_failed");
            return refused(Refusal::Forged, context);
        }
        Gate::AddressLimited(retry) => return Ok(address_limited(retry)),
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
    // The hash that was checked: the session starts only if it is still
    // the user's when the session is written (an operator may change it
    // while Argon2 runs).
    let checked_hash = hash.as_str().to_owned();
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
                record_address_failure(state, ip_key).await;
            }
            return refused(Refusal::Busy, context);
        }
    };
    let Some(user) = user.filter(|_| matched) else {
        if !locked {
            audit::record(Event::SignInFailed, actor, "wrong username or password");
            state.metrics.event("login_failed");
        }
        record_address_failure(state, ip_key).await;
        return refused(Refusal::BadCredentials, context);
    };

    let session_id = crypto::random_token()?;
    let fresh = FreshSession {
        user_id: user.id,
        checked_hash,
        throttle_key: key,
        old_session,
    };
    if !start_session(state, &session_id, fresh, now).await? {
        // Disabled, deleted or given a new password by an operator while
        // the password was being checked.
        record_address_failure(state, ip_key).await;
        return refused(Refusal::BadCredentials, context);
    }
    audit::record(Event::SignInSucceeded, actor.user(user.id), "signed in");
    state.metrics.event("login_succeeded");
    Ok(Outcome::SignedIn {
        session_id,
        device: device_cookie(state, &user.username),
    })
}

/// One round trip: the page context and, for a valid form, the shared
/// limit of the address, the attempt counted against the account before
/// any hashing (so parallel guesses are counted too), and the user.
async fn admit(
    state: &Arc<AppState>,
    return_to: String,
    csrf_valid: bool,
    key: String,
    ip_key: String,
    username: &str,
    now: DateTime<Utc>,
) -> Result<(Context, Gate), StoreError> {
    let st = Arc::clone(state);
    let login_name = username.to_owned();
    storage::run(&state.pool, move |store| {
        let context = context(&st, store, &return_to)?;
        if !csrf_valid {
            return Ok((context, Gate::Forged));
        }
        let recent = match st.limits.peek(store.conn, Kind::Address, &ip_key, now)? {
            Check::Limited { retry_after } => return Ok((context, Gate::AddressLimited(retry_after))),
            Check::Allowed { recent } => recent,
        };
        // A name that cannot be a username is checked against the dummy
        // hash like an unknown one, but not given a throttle row.
        let (attempt, user) = match Username::parse(&login_name) {
            Ok(name) => {
                let Some(attempt) = storage::throttle::reserve_attempt(store.conn, &key, now)? else {
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
    .await
}

/// What a successful password check starts a session for.
struct FreshSession {
    user_id: uuid::Uuid,
    /// The password hash the presented password matched.
    checked_hash: String,
    throttle_key: String,
    old_session: Option<String>,
}

/// Clears the throttle and starts a session with a new id, in one
/// transaction that first claims the user's row: only if the user is still
/// enabled and still has the hash that was checked (so a sign-in under way
/// while an operator changes the password, or disables the user, starts
/// nothing, and an operator's change that comes after it ends the session).
/// The grants the browser's old session produced stay tied to this browser
/// (no fixation, but a later logout still ends them). False, and no
/// session, when the user changed meanwhile.
async fn start_session(
    state: &AppState,
    session_id: &str,
    fresh: FreshSession,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let session_hash = crypto::token_hash(session_id);
    let expires_at = now
        + chrono::Duration::from_std(state.settings.session_absolute_ttl).unwrap_or(chrono::Duration::MAX);
    let start = storage::sessions::Start {
        user_id: fresh.user_id,
        checked_hash: fresh.checked_hash,
        throttle_key: fresh.throttle_key,
        session_hash,
        replaces: fresh.old_session.as_deref().map(crypto::token_hash),
        now,
        expires_at,
    };
    storage::run(&state.pool, move |store| {
        storage::sessions::start(store.conn, &start)
    })
    .await
}

/// Counts a failed sign-in against the client address (shared by every
/// instance). A store failure is logged: the answer is already decided.
async fn record_address_failure(state: &Arc<AppState>, ip_key: String) {
    let recorded = super::record_failures(state, vec![(Kind::Address, ip_key)]).await;
    if let Err(e) = recorded {
        tracing::warn!(error = %e, "could not count a failed sign-in against its address");
    }
}
