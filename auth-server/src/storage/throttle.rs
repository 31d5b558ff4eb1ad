//! `login_throttle`: failed sign-in counters.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::login_throttle;
use crate::protocol::StoreError;
use crate::protocol::throttle::{ThrottleState, after_failure, is_blocked};

#[derive(Queryable, Selectable, Insertable, AsChangeset)]
#[diesel(table_name = login_throttle, check_for_backend(diesel::pg::Pg))]
struct Row {
    key: String,
    failures: i32,
    window_started_at: DateTime<Utc>,
    blocked_until: Option<DateTime<Utc>>,
}

impl From<Row> for ThrottleState {
    fn from(r: Row) -> Self {
        ThrottleState {
            failures: r.failures,
            window_started_at: r.window_started_at,
            blocked_until: r.blocked_until,
        }
    }
}

pub fn get(conn: &mut PgConnection, key: &str) -> Result<Option<ThrottleState>, StoreError> {
    Ok(login_throttle::table
        .find(key)
        .select(Row::as_select())
        .first(conn)
        .optional()?
        .map(Into::into))
}

/// Applies `next` to the key's state under a row lock, so concurrent
/// failures count (two racing *first* failures may count as one).
pub fn record_failure(
    conn: &mut PgConnection,
    key: &str,
    next: impl FnOnce(Option<&ThrottleState>) -> ThrottleState,
) -> Result<ThrottleState, StoreError> {
    conn.transaction(|conn| {
        let current: Option<ThrottleState> = login_throttle::table
            .find(key)
            .select(Row::as_select())
            .for_update()
            .first(conn)
            .optional()?
            .map(Into::into);
        let state = next(current.as_ref());
        let row = Row {
            key: key.to_owned(),
            failures: state.failures,
            window_started_at: state.window_started_at,
            blocked_until: state.blocked_until,
        };
        diesel::insert_into(login_throttle::table)
            .values(&row)
            .on_conflict(login_throttle::key)
            .do_update()
            .set(&row)
            .execute(conn)?;
        Ok(state)
    })
}

pub fn clear(conn: &mut PgConnection, key: &str) -> Result<(), StoreError> {
    diesel::delete(login_throttle::table.find(key)).execute(conn)?;
    Ok(())
}

/// Counts an attempt before the password is checked, unless the key is
/// blocked right now; returns whether the attempt may go ahead. Runs under
/// a row lock, so parallel attempts are all counted.
pub fn reserve_attempt(conn: &mut PgConnection, key: &str, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let mut allowed = false;
    record_failure(conn, key, |current| {
        if is_blocked(current, now) {
            // Leave the state alone; the attempt is refused.
            *current.unwrap_or(&after_failure(None, now))
        } else {
            allowed = true;
            after_failure(current, now)
        }
    })?;
    Ok(allowed)
}
