//! The JSON endpoints' database round trips: each runs one protocol
//! decision with a store on the blocking pool, so the handlers in `http/`
//! never reach storage themselves.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::Value;

use crate::keys::CachingVerifier;
use crate::model::Client;
use crate::protocol::engine::{self, CodeExchange};
use crate::protocol::refresh::{self, RefreshOutcome, RefreshRequest, RefreshStore as _};
use crate::protocol::revoke::{self, Revoked};
use crate::protocol::tokens::TokenResponse;
use crate::protocol::{OAuthError, Params, StoreError, introspect};
use crate::state::AppState;
use crate::storage;

/// The `authorization_code` grant (`protocol::engine`, rules in
/// `protocol::code`).
pub async fn exchange_code(
    state: &Arc<AppState>,
    params: Params,
    client: Arc<Client>,
    now: DateTime<Utc>,
) -> Result<Result<TokenResponse, OAuthError>, StoreError> {
    let st = Arc::clone(state);
    storage::run(&state.pool, move |store| {
        let signer = st.keys.snapshot();
        // One transaction: the code stays locked until the tokens are
        // stored, so a replay arriving meanwhile waits and then revokes
        // them (OAuth 2.1 section 4.1.3). Refusals commit too: a spent code
        // stays spent.
        store.in_transaction(|store| {
            Ok(engine::exchange_code(
                &CodeExchange {
                    params: &params,
                    client: &client,
                    policy: &st.policy,
                    signer: signer.as_ref(),
                    now,
                },
                store,
            ))
        })
    })
    .await
}

/// The `refresh_token` grant (`protocol::refresh`).
pub async fn refresh(
    state: &Arc<AppState>,
    params: Params,
    client: Arc<Client>,
    now: DateTime<Utc>,
) -> Result<RefreshOutcome, StoreError> {
    let st = Arc::clone(state);
    storage::run(&state.pool, move |store| {
        let signer = st.keys.snapshot();
        refresh::refresh(
            &RefreshRequest {
                params: &params,
                client: &client,
                policy: &st.policy,
                signer: signer.as_ref(),
                grace_key: &st.server_keys.refresh_grace,
                previous_grace_key: st.server_keys.previous.as_deref().map(|p| &p.refresh_grace),
                now,
            },
            store,
        )
    })
    .await
}

/// RFC 7662 introspection by `caller` (`protocol::introspect`).
pub async fn introspect(
    state: &Arc<AppState>,
    token: String,
    hint: Option<String>,
    caller: Arc<Client>,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let st = Arc::clone(state);
    storage::run(&state.pool, move |store| {
        let keys = st.keys.snapshot();
        let verifier = CachingVerifier {
            keys: keys.as_ref(),
            cache: &st.verified,
        };
        introspect::introspect(
            &introspect::Request {
                token: &token,
                hint: hint.as_deref(),
                caller: &caller,
                issuer: &st.policy.issuer,
            },
            &verifier,
            store,
            now,
        )
    })
    .await
}

/// The UserInfo response for a bearer token (`protocol::userinfo`).
pub async fn userinfo(
    state: &Arc<AppState>,
    token: String,
    now: DateTime<Utc>,
) -> Result<Result<Value, crate::protocol::userinfo::Refusal>, StoreError> {
    let st = Arc::clone(state);
    storage::run(&state.pool, move |store| {
        let keys = st.keys.snapshot();
        let verifier = CachingVerifier {
            keys: keys.as_ref(),
            cache: &st.verified,
        };
        crate::protocol::userinfo::userinfo(&token, &st.policy.issuer, &verifier, store, now)
    })
    .await
}

/// RFC 7009 revocation by `client` (`protocol::revoke`).
pub async fn revoke(
    state: &Arc<AppState>,
    token: String,
    hint: Option<String>,
    client: Arc<Client>,
    now: DateTime<Utc>,
) -> Result<Revoked, StoreError> {
    let st = Arc::clone(state);
    storage::run(&state.pool, move |store| {
        let keys = st.keys.snapshot();
        revoke::revoke(
            &token,
            hint.as_deref(),
            &client,
            &st.policy.issuer,
            keys.as_ref(),
            store,
            now,
        )
    })
    .await
    .inspect(|revoked| {
        if *revoked != Revoked::Nothing {
            state.events_wakeup.notify_waiters();
        }
    })
}
