//! Authorization-request and consent policy, behind `GET /authorize` and
//! `POST /authorize` (RFC 6749 section 4.1.1 with PKCE, through
//! `protocol::engine`).
//!
//! Order of checks: client and redirect URI first (failures are a page,
//! never a redirect); then the request itself, its OpenID Connect
//! parameters included (failures redirect with `error`, `state`, `iss`);
//! then sign-in (`prompt`, `max_age`, `id_token_hint`); then consent. With
//! `prompt=none` a page that would be needed is an error to the client
//! instead (OIDC Core section 3.1.2.6).

use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::session::find_session;
use crate::audit::{self, Actor, Event};
use crate::client_cache::CachedClients;
use crate::domain::{Scope, ScopeSet};
use crate::protocol::authorize::{needs_consent, resolve_target};
use crate::protocol::engine::{self, AuthorizationOutcome, AuthorizationRequest, Step};
use crate::protocol::grants::SignIn;
use crate::protocol::oidc::{self, Interaction, SignedIn};
use crate::protocol::session::{CsrfPurpose, csrf_ok, csrf_token};
use crate::protocol::{OAuthError, Params, StoreError};
use crate::state::AppState;
use crate::storage::{self, PgStore};

/// What the browser gets.
pub enum View {
    /// The client or redirect URI is not valid: a page here, never a
    /// redirect (RFC 6749 section 4.1.2.1).
    InvalidLink(&'static str),
    /// The consent form's CSRF token is missing or wrong.
    ConsentExpired,
    /// Back to the client.
    Redirect(String),
    /// Sign in first; `fresh` when a live session is not enough
    /// (`prompt=login`, `max_age`, an `id_token_hint` for another user).
    Login {
        fresh: bool,
        /// A username to fill in (`login_hint`).
        login_hint: Option<String>,
    },
    Consent {
        client_name: String,
        username: String,
        scope: ScopeSet,
        csrf_token: String,
        form_origins: Vec<String>,
    },
}

/// The user's answer on the consent page.
pub struct Decision {
    /// The client address, for the audit log.
    pub ip: std::net::IpAddr,
    pub approve: bool,
    pub csrf_token: String,
}

fn decide(
    state: &AppState,
    store: &mut PgStore<'_>,
    params: &Params,
    raw_session: Option<&str>,
    decision: Option<Decision>,
    now: DateTime<Utc>,
) -> Result<View, StoreError> {
    let target = {
        let mut clients = CachedClients {
            cache: &state.clients,
            store: &mut *store,
        };
        match resolve_target(params, &mut clients)? {
            Ok(target) => target,
            Err(message) => {
                return Ok(View::InvalidLink(message));
            }
        }
    };
    let issuer = state.settings.issuer.as_str();
    let session = find_session(store, raw_session, now, state.settings.session_idle_ttl)?;
    let request = |user, session_hash, sign_in| AuthorizationRequest {
        params,
        client: &target.client,
        redirect_uri: &target.redirect_uri,
        redirect_uri_given: target.redirect_uri_given,
        user,
        session_hash,
        sign_in,
        issuer,
        now,
    };
    let user = session.as_ref().map(|s| &s.user);
    let hash = session.as_ref().map(|s| s.id_hash.as_slice());
    let inspected = SignIn::default();
    let scope = match engine::authorize(request(user, hash, &inspected), Step::Inspect, store) {
        AuthorizationOutcome::Redirect(url) => return Ok(View::Redirect(url.into())),
        AuthorizationOutcome::Valid { scope } => scope,
    };
    let refuse = |error: OAuthError| {
        View::Redirect(
            engine::error_redirect(&target.redirect_uri, &error, params.get("state"), issuer).into(),
        )
    };
    let oidc = match oidc::parse_request(params, scope.contains(Scope::OpenId), target.client.require_nonce) {
        Ok(oidc) => oidc,
        Err(error) => return Ok(refuse(error)),
    };
    let hint_subject = match &oidc.id_token_hint {
        None => None,
        Some(raw) => match state
            .keys
            .snapshot()
            .verify_id_token(raw, issuer, now)
            .as_ref()
            .and_then(oidc::hint_from_claims)
        {
            // Only the client's own ID token: another client's would let it
            // ask, silently, whether that client's user is signed in here.
            Some(hint) if hint.client_id == target.client.client_id => Some(hint.subject),
            Some(_) => {
                return Ok(refuse(OAuthError::InvalidRequest(
                    "id_token_hint was issued to another client",
                )));
            }
            None => {
                return Ok(refuse(OAuthError::InvalidRequest(
                    "id_token_hint is not an ID token issued here",
                )));
            }
        },
    };
    let login = View::Login {
        fresh: false,
        login_hint: oidc.login_hint.clone(),
    };
    let (Some(session), Some(raw_session)) = (&session, raw_session) else {
        return Ok(
            match oidc::interaction(&oidc, None, hint_subject, false, false, now) {
                Interaction::Refuse(error) => refuse(error),
                _ => login,
            },
        );
    };
    let sign_in = SignIn {
        nonce: oidc.nonce.clone(),
        sid: Some(session.sid),
        auth_time: Some(session.auth_time),
    };
    let finish =
        |store: &mut PgStore<'_>, step| match engine::authorize(request(user, hash, &sign_in), step, store) {
            AuthorizationOutcome::Redirect(url) => View::Redirect(url.into()),
            AuthorizationOutcome::Valid { .. } => refuse(OAuthError::ServerError),
        };
    match decision {
        None => {
            let remembered = if target.client.first_party {
                None
            } else {
                storage::sessions::consent(store.conn, session.user.id, &target.client.client_id)?
            };
            let signed_in = SignedIn {
                user_id: session.user.id,
                auth_time: session.auth_time,
            };
            match oidc::interaction(
                &oidc,
                Some(signed_in),
                hint_subject,
                needs_consent(&target.client, remembered.as_ref(), &scope),
                !target.client.first_party,
                now,
            ) {
                Interaction::Refuse(error) => Ok(refuse(error)),
                Interaction::SignIn { fresh } => Ok(View::Login {
                    fresh,
                    login_hint: oidc.login_hint.clone(),
                }),
                Interaction::Consent => Ok(View::Consent {
                    client_name: target.client.name.clone(),
                    username: session.user.username.clone(),
                    scope,
                    csrf_token: csrf_token(&state.server_keys.csrf, CsrfPurpose::Consent, raw_session)?,
                    form_origins: target.redirect_uri.origin().into_iter().collect(),
                }),
                Interaction::Proceed => Ok(finish(store, Step::Approve)),
            }
        }
        Some(decision) => {
            if !state
                .server_keys
                .csrf_keys()
                .any(|key| csrf_ok(key, CsrfPurpose::Consent, raw_session, &decision.csrf_token))
            {
                tracing::warn!("consent refused: CSRF token missing or wrong");
                return Ok(View::ConsentExpired);
            }
            let actor = Actor::ip(decision.ip)
                .client(&target.client.client_id)
                .user(session.user.id);
            if !decision.approve {
                audit::record(Event::ConsentDenied, actor, "the user denied access");
                return Ok(finish(store, Step::Deny));
            }
            audit::record(Event::ConsentGranted, actor, "the user allowed access");
            if !target.client.first_party {
                storage::sessions::remember_consent(
                    store.conn,
                    session.user.id,
                    &target.client.client_id,
                    &scope,
                    now,
                )?;
            }
            Ok(finish(store, Step::Approve))
        }
    }
}

/// Decides an authorization request; with `decision`, the user's answer on
/// the consent page.
pub async fn authorize(
    state: &Arc<AppState>,
    params: Params,
    raw_session: Option<String>,
    decision: Option<Decision>,
) -> Result<View, StoreError> {
    let st = Arc::clone(state);
    let now = state.clock.now();
    storage::run(&state.pool, move |store| {
        decide(&st, store, &params, raw_session.as_deref(), decision, now)
    })
    .await
}
