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
