//! `users`: creation, lookup by id or case-insensitive username, and the
//! operator's changes (`auth-server user ...`). A disabled user is not
//! found by sign-in or by a code exchange.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::PgStore;
use super::schema::{authorization_codes, browser_sessions, consents, token_families, users};
use crate::domain::{PasswordHash, Roles};
use crate::model::User;
use crate::protocol::StoreError;
use crate::protocol::grants::{RevocationReason, UserDirectory};
use crate::protocol::throttle::account_key;

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

/// The user with this username (case-insensitive) and their password
/// hash, unless the user is disabled.
pub fn find_by_username(
    conn: &mut PgConnection,
    username: &str,
) -> Result<Option<(User, PasswordHash)>, StoreError> {
    users::table
        .filter(lower(users::username).eq(lower(username)))
        .filter(users::disabled_at.is_null())
        .select(UserRow::as_select())
        .first(conn)
        .optional()?
        .map(UserRow::into_parts)
        .transpose()
}

/// The user with this id, unless the user is disabled.
pub fn find_by_id(conn: &mut PgConnection, id: Uuid) -> Result<Option<User>, StoreError> {
    users::table
        .find(id)
        .filter(users::disabled_at.is_null())
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

/// Records a successful sign-in, if the user is still enabled and still
/// has `checked_hash` (the hash the password was checked against); false
/// otherwise, and then no session may start. The update waits for an
/// operator's change in progress on the same user and holds the row until
/// the caller's transaction ends, so a change that comes after it also
/// sees (and ends) the session it starts.
pub fn record_sign_in(
    conn: &mut PgConnection,
    id: Uuid,
    checked_hash: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let updated = diesel::update(
        users::table
            .find(id)
            .filter(users::disabled_at.is_null())
            .filter(users::password_hash.eq(checked_hash)),
    )
    .set(users::last_sign_in_at.eq(Some(now)))
    .execute(conn)?;
    Ok(updated == 1)
}

/// A user as the operator commands show it (never the hash).
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = users, check_for_backend(diesel::pg::Pg))]
pub struct UserRecord {
    pub id: Uuid,
    pub username: String,
    pub roles: Vec<String>,
    pub disabled_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub last_sign_in_at: Option<DateTime<Utc>>,
}

/// Users, oldest first; with `role`, only those holding it; with
/// `disabled_only`, only disabled ones.
pub fn list(
    conn: &mut PgConnection,
    role: Option<&str>,
    disabled_only: bool,
) -> Result<Vec<UserRecord>, StoreError> {
    let mut query = users::table
        .order((users::created_at.asc(), users::id.asc()))
        .select(UserRecord::as_select())
        .into_boxed();
    if let Some(role) = role {
        query = query.filter(users::roles.contains(vec![role.to_owned()]));
    }
    if disabled_only {
        query = query.filter(users::disabled_at.is_not_null());
    }
    Ok(query.load(conn)?)
}

/// The user with this username (case-insensitive), disabled or not.
pub fn show(conn: &mut PgConnection, username: &str) -> Result<Option<UserRecord>, StoreError> {
    Ok(users::table
        .filter(lower(users::username).eq(lower(username)))
        .select(UserRecord::as_select())
        .first(conn)
        .optional()?)
}

/// Locks the user's row against other changes (a sign-in's
/// `record_sign_in` included) for the rest of the transaction; `None` when
/// there is no such user. `FOR NO KEY UPDATE`, not `FOR UPDATE`: a code
/// exchange under way inserts a family that references the row (a key-share
/// lock) and must be able to finish, or it and this transaction would wait
/// for each other.
fn lock(conn: &mut PgConnection, username: &str) -> Result<Option<UserRecord>, StoreError> {
    Ok(users::table
        .filter(lower(users::username).eq(lower(username)))
        .select(UserRecord::as_select())
        .for_no_key_update()
        .first(conn)
        .optional()?)
}

/// What a change ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Refresh families only (new roles: the browser session and unused
    /// codes are re-checked against the roles when they are used).
    Families,
    /// Unused codes, refresh families and browser sessions.
    Everything,
}

/// Ends what the user holds in browsers and clients, in the order logout
/// uses: sessions first (this waits for a code being stored for one of
/// them, which the next step then sees), then unused codes (this waits for
/// an exchange holding one, so the family it creates is seen next), then
/// every live refresh family. Client-credentials tokens are not the user's
/// and are untouched.
fn end_grants(
    conn: &mut PgConnection,
    user_id: Uuid,
    reason: RevocationReason,
    reach: Reach,
    now: DateTime<Utc>,
) -> Result<Ended, StoreError> {
    let sessions = if reach == Reach::Families {
        0
    } else {
        diesel::delete(browser_sessions::table.filter(browser_sessions::user_id.eq(user_id))).execute(conn)?
    };
    let codes = if reach == Reach::Families {
        0
    } else {
        let codes = expire_codes(conn, user_id)?;
        // The user's sessions end: their clients get Logout Tokens. After
        // the codes, which waited for any exchange holding one, so the
        // grant such an exchange just created is seen too.
        super::backchannel::enqueue(conn, super::backchannel::Ended::User(user_id), now)?;
        codes
    };
    let revoked: Vec<Uuid> = diesel::update(
        token_families::table
            .filter(token_families::user_id.eq(user_id))
            .filter(token_families::revoked_at.is_null()),
    )
    .set((
        token_families::revoked_at.eq(Some(now)),
        token_families::revoked_reason.eq(Some(reason.as_str())),
    ))
    .returning(token_families::id)
    .get_results(conn)?;
    let families = revoked.len();
    // Each grant by name (refused whenever its tokens were issued, so a
    // refresh racing this change cannot slip through), and the user.
    super::events::record_grants(conn, &revoked, now)?;
    // Offline validators refuse the user's access tokens issued until now.
    super::events::record(
        conn,
        crate::protocol::events::Kind::User,
        &user_id.to_string(),
        now,
    )?;
    Ok(Ended {
        codes,
        families,
        sessions,
    })
}

/// Expires the user's unused authorization codes (at the epoch, as at
/// logout, so a clock a moment behind still finds them expired).
fn expire_codes(conn: &mut PgConnection, user_id: Uuid) -> Result<usize, StoreError> {
    Ok(diesel::update(
        authorization_codes::table
            .filter(authorization_codes::user_id.eq(user_id))
            .filter(authorization_codes::used_at.is_null())
            .filter(authorization_codes::expires_at.gt(DateTime::UNIX_EPOCH)),
    )
    .set(authorization_codes::expires_at.eq(DateTime::UNIX_EPOCH))
    .execute(conn)?)
}

/// What a change to a user ended.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Ended {
    pub codes: usize,
    pub families: usize,
    pub sessions: usize,
}

/// A change an operator makes to a user.
#[derive(Debug, Clone)]
pub enum Change<'a> {
    Password(&'a PasswordHash),
    Roles(&'a Roles),
    Disable,
    Enable,
}

/// Applies `change` to the user and, in the same transaction, ends what
/// was granted before it: a new password or a disable ends sessions,
/// unused codes and refresh families; new roles revoke the refresh
/// families (whose scope was granted under the old roles). `None` when
/// there is no such user.
pub fn change(
    conn: &mut PgConnection,
    username: &str,
    change: Change<'_>,
    now: DateTime<Utc>,
) -> Result<Option<(UserRecord, Ended)>, StoreError> {
    conn.transaction(|conn| {
        let Some(user) = lock(conn, username)? else {
            return Ok(None);
        };
        let target = users::table.find(user.id);
        let reason = match change {
            Change::Password(hash) => {
                diesel::update(target)
                    .set((users::password_hash.eq(hash.as_str()), users::updated_at.eq(now)))
                    .execute(conn)?;
                Some((RevocationReason::PasswordChanged, Reach::Everything))
            }
            Change::Roles(roles) => {
                diesel::update(target)
                    .set((users::roles.eq(roles.to_strings()), users::updated_at.eq(now)))
                    .execute(conn)?;
                Some((RevocationReason::RolesChanged, Reach::Families))
            }
            Change::Disable => {
                // Disabling twice keeps the first time.
                diesel::update(target.filter(users::disabled_at.is_null()))
                    .set((users::disabled_at.eq(Some(now)), users::updated_at.eq(now)))
                    .execute(conn)?;
                Some((RevocationReason::UserDisabled, Reach::Everything))
            }
            Change::Enable => {
                diesel::update(target)
                    .set((
                        users::disabled_at.eq(None::<DateTime<Utc>>),
                        users::updated_at.eq(now),
                    ))
                    .execute(conn)?;
                None
            }
        };
        let ended = match reason {
            Some((reason, reach)) => end_grants(conn, user.id, reason, reach, now)?,
            None => Ended::default(),
        };
        let after = users::table
            .find(user.id)
            .select(UserRecord::as_select())
            .first(conn)?;
        Ok(Some((after, ended)))
    })
}

/// What deleting a user took with it.
#[derive(Debug, Default, Clone, Copy)]
pub struct Deleted {
    pub id: Uuid,
    pub sessions: usize,
    pub families: usize,
    pub consents: usize,
}

/// Deletes the user with their sessions, codes, token families (and so
/// refresh tokens, whose access tokens then introspect as inactive),
/// remembered consents and sign-in throttle. `None` when there is no such
/// user.
pub fn delete(
    conn: &mut PgConnection,
    username: &str,
    now: DateTime<Utc>,
) -> Result<Option<Deleted>, StoreError> {
    conn.transaction(|conn| {
        let Some(user) = lock(conn, username)? else {
            return Ok(None);
        };
        let id = user.id;
        // In logout's order (see `end_grants`); deleting the user row at the
        // end waits for anything still being stored for them, and its
        // foreign keys take that with it.
        let sessions =
            diesel::delete(browser_sessions::table.filter(browser_sessions::user_id.eq(id))).execute(conn)?;
        diesel::delete(authorization_codes::table.filter(authorization_codes::user_id.eq(id)))
            .execute(conn)?;
        // Before the grants go, after any exchange holding a code is done.
        super::backchannel::enqueue(conn, super::backchannel::Ended::User(id), now)?;
        let deleted: Vec<Uuid> = diesel::delete(token_families::table.filter(token_families::user_id.eq(id)))
            .returning(token_families::id)
            .get_results(conn)?;
        let families = deleted.len();
        super::events::record_grants(conn, &deleted, now)?;
        let consents = diesel::delete(consents::table.filter(consents::user_id.eq(id))).execute(conn)?;
        super::throttle::clear(conn, &account_key(&user.username))?;
        diesel::delete(users::table.find(id)).execute(conn)?;
        super::events::record(conn, crate::protocol::events::Kind::User, &id.to_string(), now)?;
        Ok(Some(Deleted {
            id,
            sessions,
            families,
            consents,
        }))
    })
}

impl UserDirectory for PgStore<'_> {
    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError> {
        find_by_id(self.conn, id)
    }
}
