//! The resource server's own database: notes. Queries take the owner in the
//! `WHERE` clause, so another user's note is indistinguishable from a
//! missing one.

pub mod notes;
pub mod schema;

use diesel_migrations::{EmbeddedMigrations, embed_migrations};

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("../migrations/resource-server");

/// Advisory-lock key that serialises migrations across instances.
pub const MIGRATION_LOCK: i64 = 0x0a17_5e12_0002;
