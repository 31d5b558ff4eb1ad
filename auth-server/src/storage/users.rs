//! `users`: creation and lookup by id or case-insensitive username.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::PgStore;
use super::schema::users;
use crate::domain::{PasswordHash, Roles};
use crate::model::User;
use crate::protocol::StoreError;
use crate::protocol::grants::UserDirectory;

diesel::define_sql_function!(fn lower(x: diesel::sql_types::Text) -> diesel::sql_types::Text);

#[derive(Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
struct UserRow {
    id: Uuid,
    username: String,
    password_hash: String,
    roles: Vec<String>,
}

#[derive(Insertable)]
#[diesel(table_name = users)]
struct NewUserRow<'a> {
    id: Uuid,
    username: &'a str,
    password_hash: &'a str,
    roles: Vec<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl UserRow {
    fn into_parts(self) -> Result<(User, PasswordHash), StoreError> {
        let roles = Roles::parse(&self.roles).map_err(StoreError::Corrupt)?;
        Ok((
            User {
                id: self.id,
                username: self.username,
                roles,
            },
            PasswordHash::from_stored(self.password_hash),
        ))
    }
}

/// Why a user could not be created.
#[derive(Debug)]
pub enum CreateUserError {
    UsernameTaken,
    Store(StoreError),
}

pub fn create(
    conn: &mut PgConnection,
    username: &str,
    hash: &PasswordHash,
    roles: &Roles,
    now: DateTime<Utc>,
) -> Result<User, CreateUserError> {
    let id = Uuid::now_v7();
    let row = NewUserRow {
        id,
        username,
        password_hash: hash.as_str(),
        roles: roles.to_strings(),
        created_at: now,
        updated_at: now,
    };
    match diesel::insert_into(users::table).values(&row).execute(conn) {
        Ok(_) => Ok(User {
            id,
            username: username.to_owned(),
            roles: roles.clone(),
        }),
        Err(diesel::result::Error::DatabaseError(diesel::result::DatabaseErrorKind::UniqueViolation, _)) => {
            Err(CreateUserError::UsernameTaken)
        }
        Err(e) => Err(CreateUserError::Store(e.into())),
    }
}

/// The user with this username (case-insensitive) and their password hash.
pub fn find_by_username(
    conn: &mut PgConnection,
    username: &str,
) -> Result<Option<(User, PasswordHash)>, StoreError> {
    users::table
        .filter(lower(users::username).eq(lower(username)))
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(UserRow::into_parts)
        .transpose()
}

pub fn find_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, StoreError> {
    users::table
        .find(id)
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(|row| row.into_parts().map(|(user, _)| user))
        .transpose()
}

/// The stored hash, for tests and the CLI's own checks.
pub fn password_hash_of(conn: &mut PgConnection, id: Uuid) -> Result<Option<String>, StoreError> {
    Ok(users::table
        .find(id)
        .select(users::password_hash)
        .first(conn)
        .optional()?)
}

impl UserDirectory for PgStore<'_> {
    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError> {
        find_by_id(self.conn, id)
    }
}
