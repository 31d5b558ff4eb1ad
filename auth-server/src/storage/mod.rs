//! Diesel queries, grouped by table. Nothing outside this module builds SQL.
//! Each function takes a `&mut PgConnection` and runs synchronously: callers
//! are on the blocking pool (`oauth_common::db::with_conn`).

pub mod cleanup;
pub mod clients;
pub mod grants;
pub mod keys;
pub mod rate_limits;
pub mod schema;
pub mod sessions;
pub mod store;
pub mod throttle;
pub mod users;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use oauth_common::db::DbError;

use crate::protocol::StoreError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/auth-server");

/// Advisory-lock key that serialises migrations across instances.
pub const MIGRATION_LOCK: i64 = 0x0a17_5e12_0001;

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => StoreError::Unavailable(cause),
            DbError::Query(e) => StoreError::Failed(e.to_string()),
        }
    }
}

impl From<diesel::result::Error> for StoreError {
    fn from(e: diesel::result::Error) -> Self {
        DbError::from(e).into()
    }
}

impl From<oauth_common::db::BlockingJoinError> for StoreError {
    fn from(e: oauth_common::db::BlockingJoinError) -> Self {
        StoreError::Failed(e.0)
    }
}
