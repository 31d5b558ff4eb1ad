//! Scheduled signing-key rotation (`AUTH_KEY_ROTATION_INTERVAL`). Every
//! instance calls [`tick`] on its key-reload round; under a Postgres
//! advisory lock (try, never wait) one of them finds the rotation due and
//! adds a key that is published at once and signs after the
//! pre-publication delay. The key it replaces retires by itself once its
//! tokens have expired (see [`super::lifecycle`]).

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::PgConnection;

use super::lifecycle::Timeline;
use super::{RETIREMENT_LEEWAY, generate};
use crate::protocol::StoreError;
use crate::storage;
use crate::storage::keys::KeyRow;

/// The least time a resource server keeps a JWKS (its lower bound on
/// `max-age`), added to the pre-publication so a cache holding a document
/// from before the new key still expires in time.
const VERIFIER_MIN_CACHE: Duration = Duration::from_secs(10);

/// What the scheduled rotation needs to know.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    pub every: Duration,
    /// `AUTH_KEY_ACTIVATION_DELAY`.
    pub activation_delay: Duration,
    /// How stale another instance's keys may be (`AUTH_KEY_RELOAD_INTERVAL`).
    pub reload_interval: Duration,
    /// The `max-age` the JWKS is served with.
    pub jwks_max_age: Duration,
    pub access_token_ttl: Duration,
}

impl Schedule {
    /// How long a scheduled key is published before it signs: the
    /// configured delay, but never less than it takes every instance to
    /// load the key and every verifier's JWKS cache to expire after that.
    pub fn pre_publication(&self) -> Duration {
        self.activation_delay
            .max(self.reload_interval + self.jwks_max_age + VERIFIER_MIN_CACHE)
    }
}

/// When the key a due rotation adds at `now` should start signing; `None`
/// when no rotation is due. `rows` sorted by `activates_at`.
pub fn due<K: super::lifecycle::Timed>(
    rows: &[K],
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let timeline = Timeline::new(rows, schedule.access_token_ttl, RETIREMENT_LEEWAY);
    if !timeline.rotation_due(now, schedule.every) {
        return Ok(None);
    }
    let delay = chrono::Duration::from_std(schedule.pre_publication())
        .map_err(|e| StoreError::Internal(e.to_string()))?;
    Ok(Some(now + delay))
}

/// Adds the next key if a rotation is due and no other instance holds the
/// rotation lock. Returns the key added, if any.
pub fn tick(
    conn: &mut PgConnection,
    wrap: &[u8; 32],
    schedule: &Schedule,
    now: DateTime<Utc>,
) -> Result<Option<KeyRow>, StoreError> {
    let added = storage::keys::with_rotation_lock(conn, |conn| {
        // Read under the lock: an instance that rotated a moment ago has
        // committed its key, so it is seen here and no second one is made.
        let rows = storage::keys::load_all(conn)?;
        let Some(activates_at) = due(&rows, schedule, now)? else {
            return Ok(None);
        };
        let row = generate(wrap, now, activates_at)?;
        storage::keys::insert(conn, &row)?;
        Ok(Some(row))
    })?;
    Ok(added.flatten())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pre_publication_outlasts_reload_and_verifier_caches() {
        let schedule = Schedule {
            every: Duration::from_secs(30 * 86_400),
            activation_delay: Duration::from_secs(900),
            reload_interval: Duration::from_secs(30),
            jwks_max_age: Duration::from_secs(300),
            access_token_ttl: Duration::from_secs(600),
        };
        assert_eq!(schedule.pre_publication(), Duration::from_secs(900));
        let hasty = Schedule {
            activation_delay: Duration::ZERO,
            jwks_max_age: Duration::ZERO,
            ..schedule
        };
        assert_eq!(hasty.pre_publication(), Duration::from_secs(40));
    }
}
