//! Delivery of OpenID Connect Back-Channel Logout 1.0 Logout Tokens.
//!
//! When a session ends (logout, an operator's `user disable`,
//! `set-password` or `delete`) or a grant's credentials were stolen
//! (refresh-token reuse, code replay), a row per client is queued in the
//! same transaction (`storage::backchannel`). Each instance delivers due
//! rows in the background: it signs a Logout Token (section 2.4) and POSTs
//! it as `logout_token` to the client's registered URI (section 2.5). A
//! 200 or 204 answer is delivered; anything else, a timeout or a refused
//! connection is retried with exponential backoff (2 s, 6 s, 18 s, ...),
//! and after [`MAX_ATTEMPTS`] the row is dropped with an error in the log.
//! The user's logout never waits for any of it. Outcomes are counted in
//! `/metrics` as `backchannel_logout_{delivered,failed,abandoned}`.

use std::sync::Arc;
use std::time::Duration;

use crate::protocol::StoreError;
use crate::protocol::oidc;
use crate::protocol::tokens::JwtType;
use crate::state::AppState;
use crate::storage::{self, backchannel::Pending};

/// Attempts per Logout Token before it is given up (about half an hour).
pub const MAX_ATTEMPTS: i32 = 8;

/// How long one POST may take, and its connection.
const TIMEOUT: Duration = Duration::from_secs(5);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);

/// Rows of one client claimed at a time: a client whose endpoint hangs
/// holds up only its own Logout Tokens.
const PER_CLIENT: i64 = 2;

/// How often each instance looks at the queue (a logout on this
/// instance wakes it at once).
pub const POLL: Duration = Duration::from_secs(1);

/// Rows one instance claims at a time.
const BATCH: i64 = 20;

/// How long a claimed row is this instance's: far longer than a batch can
/// take (its rows are sent at once, each within `TIMEOUT`), so a row is
/// only retried elsewhere when this instance died.
const LEASE_SECONDS: i64 = 60;

/// The wait after failed attempt `attempt` (from 1): 2 s, tripled each
/// time, at most an hour.
pub fn backoff(attempt: i32) -> chrono::Duration {
    let exponent = u32::try_from(attempt.saturating_sub(1)).unwrap_or(0).min(8);
    chrono::Duration::seconds((2 * 3_i64.pow(exponent)).min(3600))
}

/// What became of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Delivered,
    Failed,
}

/// Deliveries in flight at once on one instance.
pub const IN_FLIGHT: usize = 32;

/// Claims the Logout Tokens that are due and starts delivering each on its
/// own task, at most `IN_FLIGHT` at a time (`slots`): a slow endpoint holds
/// a slot for one timeout and never the others' deliveries. Returns how
/// many rows it claimed (0 when there was nothing to do or no free slot).
pub async fn deliver_due(
    state: &Arc<AppState>,
    slots: &Arc<tokio::sync::Semaphore>,
) -> Result<usize, StoreError> {
    let free = slots.available_permits().min(usize::try_from(BATCH).unwrap_or(0));
    if free == 0 {
        return Ok(0);
    }
    let now = state.clock.now();
    let lease = now + chrono::Duration::seconds(LEASE_SECONDS);
    let limit = i64::try_from(free).unwrap_or(BATCH);
    let due = storage::run(&state.pool, move |store| {
        storage::backchannel::claim_due(store.conn, now, lease, limit, PER_CLIENT)
    })
    .await?;
    let count = due.len();
    for pending in due {
        let Ok(permit) = Arc::clone(slots).acquire_owned().await else {
            break;
        };
        let state = Arc::clone(state);
        tokio::task::spawn_local(async move {
            if let Err(e) = deliver(&state, pending).await {
                tracing::warn!(error = %e, "back-channel logout delivery could not be recorded; it is retried after its lease");
            }
            drop(permit);
        });
    }
    Ok(count)
}

async fn deliver(state: &Arc<AppState>, pending: Pending) -> Result<(), StoreError> {
    let Some(uri) = pending.uri.clone() else {
        // The client no longer wants them.
        return finish(state, &pending, None).await;
    };
    let now = state.clock.now();
    let claims = oidc::logout_token_claims(
        state.settings.issuer.as_str(),
        &pending.client_id,
        pending.subject,
        pending.sid,
        uuid::Uuid::new_v4(),
        now,
    );
    let token = state.keys.snapshot().sign_typed(JwtType::Logout, claims, now)?;
    let outcome = tokio::task::spawn_blocking(move || post(&uri, &token))
        .await
        .map_err(|e| StoreError::Internal(format!("back-channel delivery thread: {e}")))?;
    match outcome {
        Ok(()) => finish(state, &pending, Some(Outcome::Delivered)).await,
        Err(reason) => {
            tracing::warn!(
                client_id = %pending.client_id,
                attempt = pending.attempts,
                reason = %reason,
                "back-channel logout delivery failed"
            );
            finish(state, &pending, Some(Outcome::Failed)).await
        }
    }
}

async fn finish(
    state: &Arc<AppState>,
    pending: &Pending,
    outcome: Option<Outcome>,
) -> Result<(), StoreError> {
    let claim = pending.clone();
    let retry = match outcome {
        Some(Outcome::Failed) if pending.attempts < MAX_ATTEMPTS => {
            Some(state.clock.now() + backoff(pending.attempts))
        }
        _ => None,
    };
    match outcome {
        Some(Outcome::Delivered) => {
            state.metrics.event("backchannel_logout_delivered");
            tracing::info!(client_id = %pending.client_id, "back-channel logout delivered");
        }
        Some(Outcome::Failed) => {
            state.metrics.event("backchannel_logout_failed");
            if retry.is_none() {
                state.metrics.event("backchannel_logout_abandoned");
                tracing::error!(
                    client_id = %pending.client_id,
                    attempts = pending.attempts,
                    "back-channel logout given up"
                );
            }
        }
        None => {}
    }
    storage::run(&state.pool, move |store| match retry {
        Some(at) => storage::backchannel::retry_at(store.conn, &claim, at),
        None => storage::backchannel::remove(store.conn, &claim),
    })
    .await
}

/// POSTs the Logout Token (section 2.5): a form with `logout_token`, no
/// redirects followed, 200 or 204 counts as delivered.
fn post(uri: &str, token: &str) -> Result<(), String> {
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::NativeTls)
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        .timeout_connect(Some(CONNECT_TIMEOUT))
        .tls_config(tls)
        .max_redirects(0)
        .http_status_as_error(false)
        .build()
        .into();
    let response = agent
        .post(uri)
        .header("Cache-Control", "no-store")
        .send_form([("logout_token", token)])
        .map_err(|e| e.to_string())?;
    match response.status().as_u16() {
        200 | 204 => Ok(()),
        status => Err(format!("the client answered {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_triples_from_two_seconds_and_is_capped() {
        let seconds: Vec<i64> = (1..=MAX_ATTEMPTS).map(|a| backoff(a).num_seconds()).collect();
        assert_eq!(seconds, [2, 6, 18, 54, 162, 486, 1458, 3600]);
        assert_eq!(backoff(40).num_seconds(), 3600);
    }
}
