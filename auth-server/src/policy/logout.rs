//! Logout policy, behind `GET /logout` (a confirmation form) and
//! `POST /logout` (CSRF-protected): ends the browser session and revokes
//! every refresh-token family the session produced (and expires its
//! unredeemed codes, which would start new ones).
//! This is also the `end_session_endpoint` of RP-Initiated Logout 1.0:
//! `post_logout_redirect_uri` is followed only when it exactly matches a
//! URI registered for the client named by `client_id` or by the audience of
//! `id_token_hint`; `state` is handed back. Clients registered with a
//! back-channel logout URI are sent a Logout Token (`policy::backchannel`).

use std::net::IpAddr;
use std::sync::Arc;

use super::session::find_session;
use crate::audit::{self, Actor, Event};
use crate::client_cache::CachedClients;
use crate::crypto;
use crate::model::User;
use crate::protocol::client_auth::ClientDirectory as _;
use crate::protocol::oidc;
use crate::protocol::session::{CsrfPurpose, csrf_ok, csrf_token};
use crate::protocol::{Params, StoreError};
use crate::state::AppState;
use crate::storage::{self, PgStore};

/// What the RP-Initiated Logout 1.0 parameters (section 2) come to.
struct Request {
    /// Where the browser goes after signing out, with `state` appended.
    destination: Option<String>,
    /// The application that asked, when a verified `id_token_hint` names
    /// the browser's current session.
    requested_by: Option<String>,
}

/// Reads `id_token_hint`, `client_id`, `post_logout_redirect_uri` and
/// `state`. The client is `client_id` or the hint's audience; when both
/// are given they must agree (section 2). `post_logout_redirect_uri` is
/// followed only when it exactly matches one that client registered. A
/// hint that is not an ID token of ours (its expiry aside) is ignored.
fn read_request(
    state: &AppState,
    store: &mut PgStore<'_>,
    params: &Params,
    session_sid: Option<uuid::Uuid>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Request, StoreError> {
    let none = Request {
        destination: None,
        requested_by: None,
    };
    let hint = params.get("id_token_hint").and_then(|raw| {
        state
            .keys
            .snapshot()
            .verify_id_token(raw, state.settings.issuer.as_str(), now)
            .as_ref()
            .and_then(oidc::hint_from_claims)
    });
    let client_id = match (params.get("client_id"), &hint) {
        (Some(given), Some(hint)) if given != hint.client_id => return Ok(none),
        (Some(given), _) => given,
        (None, Some(hint)) => hint.client_id.as_str(),
        (None, None) => return Ok(none),
    };
    let mut clients = CachedClients {
        cache: &state.clients,
        store,
    };
    let Some(client) = clients.client(client_id)? else {
        return Ok(none);
    };
    let requested_by = hint
        .as_ref()
        .filter(|h| h.sid.is_some() && h.sid == session_sid)
        .map(|_| client.name.clone());
    let destination = params
        .get("post_logout_redirect_uri")
        .filter(|uri| client.accepts_post_logout_redirect(uri))
        .and_then(|uri| url::Url::parse(uri).ok())
        .map(|mut url| {
            if let Some(s) = params.get("state") {
                url.query_pairs_mut().append_pair("state", s);
            }
            url.into()
        });
    Ok(Request {
        destination,
        requested_by,
    })
}

/// The CSRF binding of a logout form: the session cookie, or for a browser
/// without a session, its pre-login cookie.
pub fn binding(raw_session: Option<&str>, login_cookie: Option<&str>) -> Option<String> {
    match (raw_session, login_cookie) {
        (Some(raw), _) => Some(raw.to_owned()),
        (None, login) => login.map(without_session),
    }
}

fn without_session(login_cookie: &str) -> String {
    format!("no-session:{login_cookie}")
}

/// Who the confirmation page is for.
pub enum Who {
    In(User),
    /// A session cookie whose session has idled out (it may still have
    /// grants to revoke).
    Expired,
    Out,
}

/// What `GET /logout` shows.
pub struct Confirmation {
    pub who: Who,
    pub csrf_token: String,
    /// Where the browser goes after signing out, if it asked and may.
    pub destination: Option<String>,
    /// The application that asked for the sign-out, when it proved it.
    pub requested_by: Option<String>,
    /// A new pre-login cookie to set (the form needs a binding).
    pub new_login_cookie: Option<String>,
}

/// Decides the confirmation page. Every visit gets the form; without any
/// session the form is bound to the pre-login cookie and only finishes the
/// redirect.
pub async fn confirmation(
    state: &Arc<AppState>,
    params: Params,
    raw_session: Option<String>,
    login_cookie: Option<String>,
) -> Result<Confirmation, StoreError> {
    let st = Arc::clone(state);
    let lookup = raw_session.clone();
    let now = state.clock.now();
    let (session, request) = storage::run(&state.pool, move |store| {
        let session = find_session(store, lookup.as_deref(), now, st.settings.session_idle_ttl)?;
        let request = read_request(&st, store, &params, session.as_ref().map(|s| s.sid), now)?;
        Ok((session, request))
    })
    .await?;
    let (login_cookie, new_login_cookie) = match login_cookie {
        Some(existing) => (Some(existing), None),
        None if raw_session.is_none() => {
            let fresh = crypto::random_token()?;
            (Some(fresh.clone()), Some(fresh))
        }
        None => (None, None),
    };
    let bound = binding(raw_session.as_deref(), login_cookie.as_deref())
        .ok_or_else(|| StoreError::Internal("a logout form without a binding".into()))?;
    let csrf_token = csrf_token(&state.server_keys.csrf, CsrfPurpose::Logout, &bound)?;
    let who = match (raw_session, session) {
        (_, Some(session)) => Who::In(session.user),
        (Some(_), None) => Who::Expired,
        (None, None) => Who::Out,
    };
    Ok(Confirmation {
        who,
        csrf_token,
        destination: request.destination,
        requested_by: request.requested_by,
        new_login_cookie,
    })
}

/// What `POST /logout` did.
pub enum Outcome {
    /// The form's CSRF token is missing or wrong; nothing changed.
    Forged,
    /// Signed out (if there was a session); go here next, if anywhere.
    SignedOut { destination: Option<String> },
}

/// Signs out: ends the session and revokes what it produced.
pub async fn sign_out(
    state: &Arc<AppState>,
    params: Params,
    raw_session: Option<String>,
    login_cookie: Option<String>,
    csrf_token: &str,
    ip: IpAddr,
) -> Result<Outcome, StoreError> {
    let bound = binding(raw_session.as_deref(), login_cookie.as_deref());
    if !bound.is_some_and(|b| {
        state
            .server_keys
            .csrf_keys()
            .any(|key| csrf_ok(key, CsrfPurpose::Logout, &b, csrf_token))
    }) {
        tracing::warn!("logout refused: CSRF token missing or wrong");
        return Ok(Outcome::Forged);
    }
    let st = Arc::clone(state);
    let ended = raw_session.is_some();
    let now = state.clock.now();
    let (revoked, destination) = storage::run(&state.pool, move |store| {
        let revoked = match raw_session {
            Some(raw) => storage::sessions::end(store.conn, &crypto::token_hash(&raw), now)?,
            None => 0,
        };
        let request = read_request(&st, store, &params, None, now)?;
        Ok((revoked, request.destination))
    })
    .await?;
    // Logout Tokens were queued with the session's end, and the revocation
    // feed has a new event: deliver them now.
    state.backchannel_wakeup.notify_one();
    state.events_wakeup.notify_waiters();
    tracing::info!(revoked_families = revoked, "logged out");
    if ended {
        audit::record(
            Event::LoggedOut,
            Actor::ip(ip),
            "session ended; its grants revoked",
        );
    }
    Ok(Outcome::SignedOut { destination })
}
