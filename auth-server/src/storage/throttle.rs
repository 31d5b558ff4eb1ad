//! `login_throttle`: failed sign-in counters, one atomic statement per
//! attempt.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Integer, Text, Timestamptz};

use super::schema::login_throttle;
use crate::protocol::StoreError;
use crate::protocol::throttle::{FIRST_DELAY_SECONDS, FREE_FAILURES, MAX_DOUBLINGS, WINDOW_SECONDS};

#[derive(QueryableByName)]
struct Counted {
    #[diesel(sql_type = Integer)]
    failures: i32,
}

/// Counts an attempt before the password is checked, unless the key is
/// blocked right now. One upsert that increments and returns the new count,
/// so parallel attempts on any number of instances all count, the first
/// ones included (there is no read-then-write window). Returns the attempt's
/// number in the current window (1 for the first) when it may go ahead,
/// `None` when the key is blocked; a refused attempt changes nothing.
///
/// The policy (free failures, doubling delay capped at the window) is
/// described in `protocol::throttle`; its numbers are bound in here.
pub fn reserve_attempt(
    conn: &mut PgConnection,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<i32>, StoreError> {
    // $1 key, $2 now, $3 window, $4 free failures, $5 first delay, $6 cap.
    let counted: Option<Counted> = diesel::sql_query(
        "INSERT INTO login_throttle AS t (key, failures, window_started_at, blocked_until)
         VALUES ($1, 1, $2, NULL)
         ON CONFLICT (key) DO UPDATE SET
             failures = CASE WHEN t.window_started_at + make_interval(secs => $3) > $2
                             THEN t.failures + 1 ELSE 1 END,
             window_started_at = CASE WHEN t.window_started_at + make_interval(secs => $3) > $2
                                      THEN t.window_started_at ELSE $2 END,
             blocked_until = CASE
                 WHEN t.window_started_at + make_interval(secs => $3) > $2 AND t.failures + 1 > $4
                 THEN $2 + make_interval(secs => LEAST(
                          $5 * power(2, LEAST(t.failures + 1 - $4 - 1, $6)), $3))
                 ELSE NULL END
         WHERE t.blocked_until IS NULL OR t.blocked_until <= $2
         RETURNING t.failures",
    )
    .bind::<Text, _>(key)
    .bind::<Timestamptz, _>(now)
    .bind::<BigInt, _>(WINDOW_SECONDS)
    .bind::<Integer, _>(FREE_FAILURES)
    .bind::<BigInt, _>(FIRST_DELAY_SECONDS)
    .bind::<Integer, _>(MAX_DOUBLINGS)
    .get_result(conn)
    .optional()?;
    Ok(counted.map(|c| c.failures))
}

/// Forgets the key's failures; returns whether it had any.
pub fn clear(conn: &mut PgConnection, key: &str) -> Result<bool, StoreError> {
    Ok(diesel::delete(login_throttle::table.find(key)).execute(conn)? > 0)
}

/// Until when the key is blocked, if it is at `now`.
pub fn blocked_until(
    conn: &mut PgConnection,
    key: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    Ok(login_throttle::table
        .find(key)
        .select(login_throttle::blocked_until)
        .first::<Option<DateTime<Utc>>>(conn)
        .optional()?
        .flatten()
        .filter(|until| *until > now))
}

/// Until when the account `username` is locked by failed sign-ins, if it
/// is at `now` (`user show`).
pub fn account_locked_until(
    conn: &mut PgConnection,
    username: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    blocked_until(conn, &crate::protocol::throttle::account_key(username), now)
}

/// Forgets the account's failed sign-ins (`user unlock`); returns until
/// when it was locked, if it was.
pub fn unlock_account(
    conn: &mut PgConnection,
    username: &str,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, StoreError> {
    let was = account_locked_until(conn, username, now)?;
    clear(conn, &crate::protocol::throttle::account_key(username))?;
    Ok(was)
}
