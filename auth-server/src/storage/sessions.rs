//! `browser_sessions` and `consents`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::PgStore;
use super::schema::{browser_sessions, consents, users};
use crate::domain::{Roles, ScopeSet};
use crate::model::User;
use crate::protocol::StoreError;
use crate::protocol::session::Session;
use crate::protocol::session::SessionStore;

/// How stale `last_seen_at` may get before a request refreshes it; saves a
/// write on every page view.
const TOUCH_AFTER_SECONDS: i64 = 60;

/// created_at, last_seen_at, sid, auth_time, and the user's id, username
/// and roles.
type SessionRow = (
    DateTime<Utc>,
    DateTime<Utc>,
    Uuid,
    DateTime<Utc>,
    Uuid,
    String,
    Vec<String>,
);

/// Stores a session whose user signed in at `now`; `sid` is its public id.
pub fn create(
    conn: &mut PgConnection,
    id_hash: &[u8],
    user_id: Uuid,
    sid: Uuid,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::insert_into(browser_sessions::table)
        .values((
            browser_sessions::id_hash.eq(id_hash),
            browser_sessions::user_id.eq(user_id),
            browser_sessions::created_at.eq(now),
            browser_sessions::last_seen_at.eq(now),
            browser_sessions::expires_at.eq(expires_at),
            browser_sessions::sid.eq(sid),
            browser_sessions::auth_time.eq(now),
        ))
        .execute(conn)?;
    Ok(())
}

pub fn find(
    conn: &mut PgConnection,
    id_hash: &[u8],
    now: DateTime<Utc>,
    idle: chrono::Duration,
) -> Result<Option<Session>, StoreError> {
    let row: Option<SessionRow> = browser_sessions::table
        .inner_join(users::table)
        .filter(browser_sessions::id_hash.eq(id_hash))
        .filter(users::disabled_at.is_null())
        .filter(browser_sessions::expires_at.gt(now))
        .filter(browser_sessions::last_seen_at.gt(now - idle))
        .select((
            browser_sessions::created_at,
            browser_sessions::last_seen_at,
            browser_sessions::sid,
            browser_sessions::auth_time,
            users::id,
            users::username,
            users::roles,
        ))
        .first(conn)
        .optional()?;
    let Some((created_at, last_seen_at, sid, auth_time, id, username, roles)) = row else {
        return Ok(None);
    };
    if now - last_seen_at > chrono::Duration::seconds(TOUCH_AFTER_SECONDS) {
        diesel::update(browser_sessions::table.filter(browser_sessions::id_hash.eq(id_hash)))
            .set(browser_sessions::last_seen_at.eq(now))
            .execute(conn)?;
    }
    Ok(Some(Session {
        user: User {
            id,
            username,
            roles: Roles::parse(&roles).map_err(StoreError::Corrupt)?,
        },
        id_hash: id_hash.to_vec(),
        created_at,
        sid,
        auth_time,
    }))
}

pub fn delete(conn: &mut PgConnection, id_hash: &[u8]) -> Result<(), StoreError> {
    diesel::delete(browser_sessions::table.filter(browser_sessions::id_hash.eq(id_hash))).execute(conn)?;
    Ok(())
}

pub fn consent(
    conn: &mut PgConnection,
    user_id: Uuid,
    client_id: &str,
) -> Result<Option<ScopeSet>, StoreError> {
    let scopes: Option<Vec<String>> = consents::table
        .find((user_id, client_id))
        .select(consents::scopes)
        .first(conn)
        .optional()?;
    scopes
        .map(|s| ScopeSet::parse_known(&s).map_err(StoreError::Corrupt))
        .transpose()
}

/// Remembers an approval: the stored set becomes the union of what the
/// user approved for this client, merged in one statement so concurrent
/// approvals cannot lose scopes.
pub fn remember_consent(
    conn: &mut PgConnection,
    user_id: Uuid,
    client_id: &str,
    scope: &ScopeSet,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    use diesel::sql_types::{Array, Text, Timestamptz, Uuid as SqlUuid};
    diesel::sql_query(
        "INSERT INTO consents (user_id, client_id, scopes, granted_at) VALUES ($1, $2, $3, $4)
         ON CONFLICT (user_id, client_id) DO UPDATE SET
           scopes = ARRAY(SELECT DISTINCT s FROM unnest(consents.scopes || EXCLUDED.scopes) AS s ORDER BY s),
           granted_at = EXCLUDED.granted_at",
    )
    .bind::<SqlUuid, _>(user_id)
    .bind::<Text, _>(client_id)
    .bind::<Array<Text>, _>(scope.to_strings())
    .bind::<Timestamptz, _>(now)
    .execute(conn)?;
    Ok(())
}

impl SessionStore for PgStore<'_> {
    fn create_session(
        &mut self,
        id_hash: &[u8],
        user_id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        create(self.conn, id_hash, user_id, Uuid::new_v4(), now, expires_at)
    }
    fn find_session(
        &mut self,
        id_hash: &[u8],
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<Session>, StoreError> {
        find(self.conn, id_hash, now, idle)
    }
    fn delete_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError> {
        delete(self.conn, id_hash)
    }
}

/// Ends a browser session and everything it produced, in one transaction
/// and in this order: the session row first, so no new code can be stored
/// for it (`grants::insert_code`); then its codes, which waits for
/// exchanges holding one (`grants::expire_session_codes`); then its
/// families, which now include theirs. Returns the families revoked.
///
/// Every client with a back-channel logout URI that signed in through the
/// session is sent a Logout Token (`backchannel`), queued in the same
/// transaction.
///
/// The revocation feed gets the session's end last (`events`), so offline
/// validators refuse the access tokens issued through it.
pub fn end(conn: &mut PgConnection, id_hash: &[u8], now: DateTime<Utc>) -> Result<usize, StoreError> {
    conn.transaction(|conn| end_in(conn, id_hash, now))
}

/// [`end`] inside the caller's transaction.
fn end_in(conn: &mut PgConnection, id_hash: &[u8], now: DateTime<Utc>) -> Result<usize, StoreError> {
    let sid: Option<Uuid> =
        diesel::delete(browser_sessions::table.filter(browser_sessions::id_hash.eq(id_hash)))
            .returning(browser_sessions::sid)
            .get_result(conn)
            .optional()?;
    super::grants::expire_session_codes(conn, id_hash)?;
    super::backchannel::enqueue(conn, super::backchannel::Ended::Session(id_hash), now)?;
    let revoked = super::grants::revoke_session_families(conn, id_hash, now)?;
    super::events::record_session_end(conn, id_hash, sid, now)?;
    Ok(revoked)
}

/// Whose the browser's previous session was, and its `sid` if its row is
/// still there; a row already swept away is known by its grants.
fn previous_owner(conn: &mut PgConnection, old: &[u8]) -> Result<Option<(Uuid, Option<Uuid>)>, StoreError> {
    use super::schema::token_families;
    let row: Option<(Uuid, Uuid)> = browser_sessions::table
        .filter(browser_sessions::id_hash.eq(old))
        .select((browser_sessions::user_id, browser_sessions::sid))
        .first(conn)
        .optional()?;
    if let Some((user, sid)) = row {
        return Ok(Some((user, Some(sid))));
    }
    let user: Option<Uuid> = token_families::table
        .filter(token_families::session_hash.eq(old))
        .select(token_families::user_id)
        .first(conn)
        .optional()?;
    Ok(user.map(|u| (u, None)))
}

/// A session a successful password check starts.
#[derive(Debug, Clone)]
pub struct Start {
    pub user_id: Uuid,
    /// The password hash the presented password matched.
    pub checked_hash: String,
    /// The sign-in throttle key to clear.
    pub throttle_key: String,
    pub session_hash: Vec<u8>,
    /// The browser's previous session: its grants move to the new one when
    /// the same user signs in again; another user's sign-in ends it.
    pub replaces: Option<Vec<u8>>,
    pub now: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Starts a session after sign-in, in one transaction that first claims the
/// user's row (`users::record_sign_in`): nothing happens, and false comes
/// back, when the user was disabled, deleted or given a new password while
/// the password was being checked; an operator's change that comes after
/// it waits for this transaction and then ends the session.
pub fn start(conn: &mut PgConnection, start: &Start) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        if !super::users::record_sign_in(conn, start.user_id, &start.checked_hash, start.now)? {
            return Ok(false);
        }
        super::throttle::clear(conn, &start.throttle_key)?;
        // Signing in again in the same browser is the same session to the
        // clients (OIDC `sid`), with a new `auth_time`, and its grants move
        // to the new session. Signing in as another user ends the previous
        // user's session as a logout would (their clients are told, their
        // grants revoked): a shared browser keeps nothing of theirs.
        let previous = match &start.replaces {
            Some(old) => previous_owner(conn, old)?,
            None => None,
        };
        let inherited = match &previous {
            Some((user, sid)) if *user == start.user_id => *sid,
            _ => None,
        };
        create(
            conn,
            &start.session_hash,
            start.user_id,
            inherited.unwrap_or_else(Uuid::new_v4),
            start.now,
            start.expires_at,
        )?;
        if let (Some(old), Some((user, _))) = (&start.replaces, previous) {
            if user == start.user_id {
                super::grants::rebind_session(conn, old, &start.session_hash)?;
                delete(conn, old)?;
            } else {
                end_in(conn, old, start.now)?;
            }
        }
        Ok(true)
    })
}
