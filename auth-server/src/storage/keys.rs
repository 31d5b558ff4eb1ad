//! `signing_keys`: every instance signs with and publishes the same keys.

use chrono::{DateTime, Utc};
use diesel::connection::SimpleConnection as _;
use diesel::prelude::*;

use super::schema::signing_keys;
use crate::protocol::StoreError;

#[derive(Debug, Clone, Queryable, Selectable, Insertable)]
#[diesel(table_name = signing_keys, check_for_backend(diesel::pg::Pg))]
pub struct KeyRow {
    pub kid: String,
    pub alg: String,
    pub public_jwk: String,
    pub private_key_sealed: Vec<u8>,
    pub created_at: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    pub retired_at: Option<DateTime<Utc>>,
}

pub fn load_all(conn: &mut PgConnection) -> Result<Vec<KeyRow>, StoreError> {
    Ok(signing_keys::table
        .order(signing_keys::activates_at.asc())
        .select(KeyRow::as_select())
        .load(conn)?)
}

pub fn insert(conn: &mut PgConnection, row: &KeyRow) -> Result<(), StoreError> {
    diesel::insert_into(signing_keys::table)
        .values(row)
        .execute(conn)?;
    Ok(())
}

/// Inserts the key `make` builds if the table is empty, under a transaction
/// advisory lock so instances starting together create only one.
pub fn insert_if_none(
    conn: &mut PgConnection,
    make: impl FnOnce() -> Result<KeyRow, StoreError>,
) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        conn.batch_execute("SELECT pg_advisory_xact_lock(724022001)")?;
        let count: i64 = signing_keys::table.count().get_result(conn)?;
        if count > 0 {
            return Ok(false);
        }
        insert(conn, &make()?)?;
        Ok(true)
    })
}

/// Deletes keys that are no longer published (their private material is
/// of no further use).
pub fn delete(conn: &mut PgConnection, kids: &[String]) -> Result<usize, StoreError> {
    Ok(diesel::delete(signing_keys::table.filter(signing_keys::kid.eq_any(kids))).execute(conn)?)
}

/// Ends key `kid` at `now` and, if `promote` is given, makes that key sign
/// from `now` (a forced retirement of the signing key). One transaction.
pub fn retire(
    conn: &mut PgConnection,
    kid: &str,
    promote: Option<&str>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        diesel::update(signing_keys::table.find(kid))
            .set(signing_keys::retired_at.eq(Some(now)))
            .execute(conn)?;
        if let Some(next) = promote {
            diesel::update(
                signing_keys::table
                    .find(next)
                    .filter(signing_keys::activates_at.gt(now)),
            )
            .set(signing_keys::activates_at.eq(now))
            .execute(conn)?;
        }
        Ok(())
    })
}

/// Replaces a key's sealed private key if it is still `old` (so two
/// `keys rewrap` runs at once cannot undo each other). Returns whether it
/// was replaced.
pub fn reseal(conn: &mut PgConnection, kid: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
    let updated = diesel::update(
        signing_keys::table
            .find(kid)
            .filter(signing_keys::private_key_sealed.eq(old)),
    )
    .set(signing_keys::private_key_sealed.eq(new))
    .execute(conn)?;
    Ok(updated == 1)
}

/// The scheduled rotation's lock: held for the transaction by at most one
/// instance; the others skip this round.
pub fn with_rotation_lock<T>(
    conn: &mut PgConnection,
    work: impl FnOnce(&mut PgConnection) -> Result<T, StoreError>,
) -> Result<Option<T>, StoreError> {
    #[derive(QueryableByName)]
    struct Locked {
        #[diesel(sql_type = diesel::sql_types::Bool)]
        locked: bool,
    }
    conn.transaction(|conn| {
        let got: Locked =
            diesel::sql_query("SELECT pg_try_advisory_xact_lock(724022002) AS locked").get_result(conn)?;
        if !got.locked {
            return Ok(None);
        }
        work(conn).map(Some)
    })
}
