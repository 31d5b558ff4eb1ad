//! `rate_limits`: the shared state of the failure limits, as a
//! [`governor`] state store, so every instance reads and advances the same
//! GCRA state and the arithmetic is governor's, not ours.
//!
//! Each key stores its theoretical arrival time (`tat`) as an absolute
//! timestamp. A limiter is built per decision with a clock that stands
//! still at zero ([`FakeRelativeClock`]), and the store translates between
//! the absolute `tat` and governor's offsets from the decision's `now`
//! (a `tat` in the past is the same as "now" to GCRA, so it maps to zero).
//! Updates are compare-and-set on the stored `tat`, retried a few times, so
//! concurrent failures on several instances all count.

use std::cell::{Cell, RefCell};
use std::num::NonZeroU32;

use chrono::{DateTime, Duration, Utc};
use diesel::prelude::*;
use governor::clock::FakeRelativeClock;
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::{Quota, RateLimiter};

use super::schema::rate_limits;
use crate::protocol::StoreError;

/// How often a compare-and-set is retried before the update is given up
/// (the failure is then not counted; only a storm on one key gets there).
const CAS_ATTEMPTS: usize = 8;

/// What a check found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Under the limit; `recent` when the key has failures still counting.
    Allowed { recent: bool },
    /// Over the limit until `retry_after` has passed.
    Limited { retry_after: std::time::Duration },
}

struct PgState<'c> {
    conn: RefCell<&'c mut PgConnection>,
    now: DateTime<Utc>,
    /// `false`: look only, never write (a check before the work is done).
    write: bool,
    recent: Cell<bool>,
    error: RefCell<Option<StoreError>>,
}

impl PgState<'_> {
    fn offset(&self, tat: DateTime<Utc>) -> Nanos {
        let ahead = (tat - self.now).num_nanoseconds().unwrap_or(i64::MAX).max(0);
        Nanos::from(u64::try_from(ahead).unwrap_or(0))
    }

    fn absolute(&self, offset: Nanos) -> DateTime<Utc> {
        self.now + Duration::nanoseconds(i64::try_from(offset.as_u64()).unwrap_or(i64::MAX))
    }

    fn read(&self, key: &str) -> Result<Option<DateTime<Utc>>, StoreError> {
        let mut conn = self.conn.borrow_mut();
        Ok(rate_limits::table
            .find(key)
            .select(rate_limits::tat)
            .first(&mut **conn)
            .optional()?)
    }

    /// Stores `next` if the key still holds `previous`; whether it did.
    fn swap(
        &self,
        key: &str,
        previous: Option<DateTime<Utc>>,
        next: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        let mut conn = self.conn.borrow_mut();
        let changed = match previous {
            None => diesel::insert_into(rate_limits::table)
                .values((rate_limits::key.eq(key), rate_limits::tat.eq(next)))
                .on_conflict_do_nothing()
                .execute(&mut **conn)?,
            Some(previous) => diesel::update(
                rate_limits::table
                    .filter(rate_limits::key.eq(key))
                    .filter(rate_limits::tat.eq(previous)),
            )
            .set(rate_limits::tat.eq(next))
            .execute(&mut **conn)?,
        };
        Ok(changed == 1)
    }

    fn failed(&self, error: StoreError) {
        self.error.borrow_mut().get_or_insert(error);
    }
}

impl StateStore for PgState<'_> {
    type Key = String;

    fn measure_and_replace<T, F, E>(&self, key: &String, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let stored = match self.read(key) {
                Ok(stored) => stored,
                Err(e) => {
                    self.failed(e);
                    return f(None).map(|(t, _)| t);
                }
            };
            self.recent.set(stored.is_some_and(|tat| tat > self.now));
            let (outcome, next) = f(stored.map(|tat| self.offset(tat)))?;
            if !self.write {
                return Ok(outcome);
            }
            match self.swap(key, stored, self.absolute(next)) {
                Ok(true) => return Ok(outcome),
                Ok(false) => continue,
                Err(e) => {
                    self.failed(e);
                    return Ok(outcome);
                }
            }
        }
        self.failed(StoreError::Corrupt(format!(
            "rate limit {key}: too much contention"
        )));
        f(None).map(|(t, _)| t)
    }
}

/// "`burst` failures, then one more every `window / burst`".
pub fn quota(burst: NonZeroU32, window: std::time::Duration) -> Option<Quota> {
    Quota::with_period(window / burst.get()).map(|q| q.allow_burst(burst))
}

fn run(
    conn: &mut PgConnection,
    quota: Quota,
    key: &str,
    now: DateTime<Utc>,
    write: bool,
) -> Result<Check, StoreError> {
    let state = PgState {
        conn: RefCell::new(conn),
        now,
        write,
        recent: Cell::new(false),
        error: RefCell::new(None),
    };
    let limiter: RateLimiter<String, PgState<'_>, FakeRelativeClock, NoOpMiddleware<Nanos>> =
        RateLimiter::new(quota, state, FakeRelativeClock::default());
    let decision = limiter.check_key(&key.to_owned());
    let state = limiter.into_state_store();
    if let Some(error) = state.error.into_inner() {
        return Err(error);
    }
    Ok(match decision {
        Ok(()) => Check::Allowed {
            recent: state.recent.get(),
        },
        Err(not_until) => Check::Limited {
            retry_after: not_until.wait_time_from(Nanos::from(0)),
        },
    })
}

/// Whether one more failure for `key` would still be within `quota`,
/// without counting anything.
pub fn peek(
    conn: &mut PgConnection,
    quota: Quota,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Check, StoreError> {
    run(conn, quota, key, now, false)
}

/// Counts one failure for `key`; `Limited` when it went over `quota`.
pub fn record_failure(
    conn: &mut PgConnection,
    quota: Quota,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Check, StoreError> {
    run(conn, quota, key, now, true)
}

/// Clears a key (an operator unlocking an address or a client).
pub fn clear(conn: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    diesel::delete(rate_limits::table.find(key)).execute(conn)?;
    Ok(())
}
