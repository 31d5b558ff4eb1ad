//! Diesel queries, one module per aggregate (users, clients, grants,
//! sessions, keys, throttle, rate limits). Nothing outside this module
//! builds SQL. Each aggregate's module holds its queries and implements the
//! protocol's store traits for [`PgStore`] with them; [`run`] is the one way
//! in from async code: it checks out a connection on the blocking pool,
//! inside the caller's tracing span.

pub mod backchannel;
pub mod cleanup;
pub mod clients;
pub mod events;
pub mod grants;
pub mod keys;
pub mod rate_limits;
pub mod refresh_tokens;
pub mod schema;
pub mod sessions;
pub mod throttle;
pub mod users;

use diesel::PgConnection;
use diesel_migrations::{EmbeddedMigrations, embed_migrations};
use oauth_common::db::{self, DbError, PgPool};

use crate::protocol::StoreError;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/auth-server");

/// One connection, seen through the protocol's store traits (implemented
/// in each aggregate's module).
pub struct PgStore<'c> {
    pub conn: &'c mut PgConnection,
}

impl<'c> PgStore<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }

    /// Runs `f` in a transaction; commits when it returns `Ok`.
    pub fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        AnsiTransactionManager::begin_transaction(&mut *self.conn)?;
        match f(self) {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(&mut *self.conn)?;
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = AnsiTransactionManager::rollback_transaction(&mut *self.conn) {
                    tracing::error!(error = %rollback, "rollback failed");
                }
                Err(e)
            }
        }
    }
}

/// Runs `f` with a store on the blocking pool, inside the caller's span.
pub async fn run<T, F>(pool: &PgPool, f: F) -> Result<T, StoreError>
where
    F: FnOnce(&mut PgStore<'_>) -> Result<T, StoreError> + Send + 'static,
    T: Send + 'static,
{
    db::with_conn(pool, move |conn| f(&mut PgStore::new(conn))).await
}

/// Advisory-lock key that serialises migrations across instances.
pub const MIGRATION_LOCK: i64 = 0x0a17_5e12_0001;

impl From<DbError> for StoreError {
    fn from(e: DbError) -> Self {
        match e {
            DbError::Unavailable(cause) => StoreError::Unavailable(cause),
            DbError::Query(e) => StoreError::Query(e.to_string()),
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
        StoreError::Internal(e.0)
    }
}
