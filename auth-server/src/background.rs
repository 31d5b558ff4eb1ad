//! Periodic work each instance does: reloading signing keys and the CORS
//! allow-list (so a key added by `keys rotate` is published and used on
//! time, and a new public client can call the token endpoint), and
//! deleting expired rows in small batches.

use std::time::Duration;

use actix_web::web;

use crate::audit::Event;
use crate::config::Settings;
use crate::keys;
use crate::policy::backchannel;
use crate::state::AppState;
use crate::storage;
use crate::storage::cleanup::{Lifetimes, Sweep};

/// Rows per cleanup statement.
pub const CLEANUP_BATCH: i64 = 500;

/// Delivers back-channel Logout Tokens as they are queued
/// (`policy::backchannel`): on a wake-up from this instance, or every
/// `POLL` for those queued elsewhere (another instance, the CLI).
pub fn spawn_backchannel(state: web::Data<AppState>) -> actix_web::rt::task::JoinHandle<()> {
    actix_web::rt::spawn(async move {
        let slots = std::sync::Arc::new(tokio::sync::Semaphore::new(backchannel::IN_FLIGHT));
        loop {
            tokio::select! {
                () = state.backchannel_wakeup.notified() => {}
                () = actix_web::rt::time::sleep(backchannel::POLL) => {}
            }
            // Go on while there is work: a batch may not have held it all.
            loop {
                match backchannel::deliver_due(&state, &slots).await {
                    Ok(n) if n > 0 => continue,
                    Ok(_) => break,
                    Err(e) => {
                        tracing::warn!(error = %e, "back-channel logout queue unavailable; will try again");
                        break;
                    }
                }
            }
        }
    })
}

/// Stops a task when dropped: the delivery loop ends with the main one.
struct AbortOnDrop(actix_web::rt::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts the background loops; abort the handle to stop them.
pub fn spawn(state: web::Data<AppState>) -> actix_web::rt::task::JoinHandle<()> {
    let deliveries = spawn_backchannel(state.clone());
    if state.settings.key_rotation_interval.is_some() && state.server_keys.previous.is_some() {
        tracing::warn!(
            "AUTH_KEY_ENCRYPTION_KEY_PREVIOUS is set: scheduled key rotation is paused on this instance until the KEK change is finished (keys rewrap, then unset it)"
        );
    }
    actix_web::rt::spawn(async move {
        let _deliveries = AbortOnDrop(deliveries);
        let reload_every = state.settings.key_reload_interval;
        let cleanup_every = state.settings.cleanup_interval;
        let mut since_cleanup = Duration::ZERO;
        loop {
            actix_web::rt::time::sleep(reload_every).await;
            reload(&state).await;
            since_cleanup += reload_every;
            if since_cleanup >= cleanup_every {
                since_cleanup = Duration::ZERO;
                cleanup(&state, CLEANUP_BATCH).await;
            }
        }
    })
}

/// Adds the next signing key when the scheduled rotation is due (one
/// instance does it, see `keys::rotation`).
pub async fn rotate_if_due(state: &web::Data<AppState>) {
    let Some(schedule) = schedule(&state.settings) else {
        return;
    };
    // While the KEK is being changed, instances still on the old one could
    // not open a key sealed here under the new one: rotate afterwards.
    if state.server_keys.previous.is_some() {
        return;
    }
    let wrap = state.server_keys.signing_key_wrap;
    let now = state.clock.now();
    match storage::run(&state.pool, move |store| {
        keys::rotation::tick(store.conn, &wrap, &schedule, now)
    })
    .await
    {
        Ok(Some(row)) => tracing::info!(
            target: "audit",
            audit = Event::KeyRotated.as_str(),
            kid = %row.kid,
            activates_at = %row.activates_at.to_rfc3339(),
            "audit: key_rotated (scheduled)"
        ),
        Ok(None) => {}
        Err(e) => tracing::warn!(error = %e, "scheduled key rotation failed; will try again"),
    }
}

/// The rotation schedule of these settings, if rotation is on.
pub fn schedule(settings: &Settings) -> Option<keys::rotation::Schedule> {
    Some(keys::rotation::Schedule {
        every: settings.key_rotation_interval?,
        activation_delay: settings.key_activation_delay,
        reload_interval: settings.key_reload_interval,
        jwks_max_age: settings.jwks_max_age(),
        access_token_ttl: settings.access_token_ttl,
    })
}

/// Reloads signing keys and CORS origins, and deletes keys that are no
/// longer published.
pub async fn reload(state: &web::Data<AppState>) {
    rotate_if_due(state).await;
    let rows = storage::run(&state.pool, |store| storage::keys::load_all(store.conn)).await;
    match rows {
        Ok(rows) => {
            let now = state.clock.now();
            if let Err(e) = state.keys.replace(&rows, now) {
                tracing::error!(error = %e, "cannot load signing keys");
            }
            let expired = state.keys.snapshot().expired_kids(now);
            if !expired.is_empty() {
                match storage::run(&state.pool, move |store| {
                    storage::keys::delete(store.conn, &expired)
                })
                .await
                {
                    Ok(n) => tracing::info!(deleted = n, "retired signing keys removed"),
                    Err(e) => tracing::warn!(error = %e, "cannot remove retired signing keys"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot reload signing keys"),
    }
    if let Err(e) = state.cors.reload(&state.pool).await {
        tracing::warn!(error = %e, "cannot reload CORS origins");
    }
}

/// Runs every sweep until it finds nothing more, one batch per statement.
/// Returns the rows touched per sweep.
pub async fn cleanup(state: &web::Data<AppState>, batch: i64) -> Vec<(Sweep, usize)> {
    let lifetimes = Lifetimes {
        session_idle: state.settings.session_idle_ttl,
        access_token: state.settings.access_token_ttl,
    };
    let mut report = Vec::new();
    state.limits.forget_lapsed(state.clock.now());
    for sweep in Sweep::ALL {
        let mut total = 0;
        loop {
            let now = state.clock.now();
            let done = storage::run(&state.pool, move |store| {
                storage::cleanup::sweep_batch(store.conn, sweep, now, batch, lifetimes)
            })
            .await;
            match done {
                Ok(n) => {
                    total += n;
                    if n < usize::try_from(batch).unwrap_or(usize::MAX) {
                        break;
                    }
                    // Leave room for request traffic between batches.
                    actix_web::rt::time::sleep(Duration::from_millis(20)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, sweep = sweep.name(), "cleanup failed");
                    break;
                }
            }
        }
        if total > 0 {
            tracing::info!(sweep = sweep.name(), rows = total, "expired rows removed");
        }
        report.push((sweep, total));
    }
    report
}
