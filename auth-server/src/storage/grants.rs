//! The grants aggregate: `authorization_codes`, `token_families`,
//! `refresh_tokens` and `revoked_access_tokens`. This file holds codes and
//! families (the bodies of `CodeStore` and `FamilyStore`) and the
//! session-wide operations logout and sign-in need; `refresh_tokens.rs`
//! holds the refresh-token side.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::PgStore;
use super::schema::{authorization_codes, refresh_tokens, token_families};
use crate::domain::ScopeSet;
use crate::protocol::StoreError;
use crate::protocol::grants::{
    CodeStore, Consumed, FamilyStore, NewCode, NewFamily, NewRefreshToken, RevocationReason, SignIn,
    StoredCode,
};

#[derive(Insertable)]
#[diesel(table_name = authorization_codes)]
struct CodeInsert<'a> {
    code_hash: &'a [u8],
    client_id: &'a str,
    user_id: Uuid,
    session_hash: Option<&'a [u8]>,
    redirect_uri: &'a str,
    redirect_uri_given: bool,
    scopes: Vec<String>,
    code_challenge: &'a str,
    family_id: Uuid,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    nonce: Option<&'a str>,
    sid: Option<Uuid>,
    auth_time: Option<DateTime<Utc>>,
}

#[derive(Queryable, Selectable)]
#[diesel(table_name = authorization_codes, check_for_backend(diesel::pg::Pg))]
struct CodeRow {
    client_id: String,
    user_id: Uuid,
    session_hash: Option<Vec<u8>>,
    redirect_uri: String,
    redirect_uri_given: bool,
    scopes: Vec<String>,
    code_challenge: String,
    family_id: Uuid,
    expires_at: DateTime<Utc>,
    nonce: Option<String>,
    sid: Option<Uuid>,
    auth_time: Option<DateTime<Utc>>,
}

fn insert_code_row(conn: &mut PgConnection, code: &NewCode) -> Result<(), StoreError> {
    diesel::insert_into(authorization_codes::table)
        .values(&CodeInsert {
            code_hash: &code.code_hash,
            client_id: &code.client_id,
            user_id: code.user_id,
            session_hash: code.session_hash.as_deref(),
            redirect_uri: &code.redirect_uri,
            redirect_uri_given: code.redirect_uri_given,
            scopes: code.scope.to_strings(),
            code_challenge: &code.code_challenge,
            family_id: code.family_id,
            created_at: code.created_at,
            expires_at: code.expires_at,
            nonce: code.sign_in.nonce.as_deref(),
            sid: code.sign_in.sid,
            auth_time: code.sign_in.auth_time,
        })
        .execute(conn)?;
    Ok(())
}

#[derive(Insertable)]
#[diesel(table_name = token_families)]
struct FamilyInsert<'a> {
    id: Uuid,
    client_id: &'a str,
    user_id: Uuid,
    session_hash: Option<&'a [u8]>,
    scopes: Vec<String>,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
    sid: Option<Uuid>,
    auth_time: Option<DateTime<Utc>>,
}

#[derive(Insertable)]
#[diesel(table_name = refresh_tokens)]
struct RefreshInsert<'a> {
    token_hash: &'a [u8],
    family_id: Uuid,
    client_id: &'a str,
    created_at: DateTime<Utc>,
    expires_at: DateTime<Utc>,
}

/// Revokes every family the browser session produced (logout).
pub fn revoke_session_families(
    conn: &mut PgConnection,
    session_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let revoked: Vec<Uuid> = diesel::update(
        token_families::table
            .filter(token_families::session_hash.eq(session_hash))
            .filter(token_families::revoked_at.is_null()),
    )
    .set((
        token_families::revoked_at.eq(Some(now)),
        token_families::revoked_reason.eq(Some(RevocationReason::Logout.as_str())),
    ))
    .returning(token_families::id)
    .get_results(conn)?;
    super::events::record_grants(conn, &revoked, now)?;
    Ok(revoked.len())
}

/// Expires the session's unused authorization codes (logout), so a code
/// approved before logout cannot start a family after it. Run this before
/// revoking the session's families: it waits for any exchange that holds
/// one of the codes, so the families those exchanges create are visible to
/// the revocation that follows. Codes are set to expire at the epoch, not at
/// `now`, so an exchange that read its clock a moment earlier (or on an
/// instance whose clock is behind) still finds them expired.
pub fn expire_session_codes(conn: &mut PgConnection, session_hash: &[u8]) -> Result<usize, StoreError> {
    Ok(diesel::update(
        authorization_codes::table
            .filter(authorization_codes::session_hash.eq(session_hash))
            .filter(authorization_codes::used_at.is_null())
            .filter(authorization_codes::expires_at.gt(DateTime::UNIX_EPOCH)),
    )
    .set(authorization_codes::expires_at.eq(DateTime::UNIX_EPOCH))
    .execute(conn)?)
}

/// Moves the live grants and unused codes of one browser session to the
/// session that replaces it at a new sign-in.
pub fn rebind_session(conn: &mut PgConnection, old_hash: &[u8], new_hash: &[u8]) -> Result<(), StoreError> {
    // Codes first, as at logout: this waits for an exchange holding one,
    // so the family it creates is moved too.
    diesel::update(
        authorization_codes::table
            .filter(authorization_codes::session_hash.eq(old_hash))
            .filter(authorization_codes::used_at.is_null()),
    )
    .set(authorization_codes::session_hash.eq(new_hash))
    .execute(conn)?;
    diesel::update(
        token_families::table
            .filter(token_families::session_hash.eq(old_hash))
            .filter(token_families::revoked_at.is_null()),
    )
    .set(token_families::session_hash.eq(new_hash))
    .execute(conn)?;
    Ok(())
}

impl CodeStore for PgStore<'_> {
    /// Stores a code. A code bound to a browser session is stored only while
    /// that session exists, holding a key-share lock on its row until the code
    /// is in: a logout deletes the session row first, so it either waits for
    /// this code (and then expires it) or has ended the session, and the code
    /// is refused. No code outlives the logout of the session that approved it.
    fn insert_code(&mut self, code: &NewCode) -> Result<(), StoreError> {
        let conn = &mut *self.conn;
        conn.transaction(|conn| {
            if let Some(session) = code.session_hash.as_deref() {
                use super::schema::browser_sessions;
                let live: Option<Vec<u8>> = browser_sessions::table
                    .filter(browser_sessions::id_hash.eq(session))
                    .select(browser_sessions::id_hash)
                    .for_key_share()
                    .first(conn)
                    .optional()?;
                if live.is_none() {
                    return Err(StoreError::Internal(
                        "the browser session ended before the code was stored".into(),
                    ));
                }
            }
            insert_code_row(conn, code)
        })
    }

    /// Marks the code used in one statement, so two concurrent exchanges
    /// cannot both succeed. Only `client_id`'s own code is consumed: another
    /// client presenting it changes nothing (and learns nothing).
    fn consume_code(
        &mut self,
        code_hash: &[u8],
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Consumed, StoreError> {
        let conn = &mut *self.conn;
        let row: Option<CodeRow> = diesel::update(
            authorization_codes::table
                .filter(authorization_codes::code_hash.eq(code_hash))
                .filter(authorization_codes::client_id.eq(client_id))
                .filter(authorization_codes::used_at.is_null()),
        )
        .set(authorization_codes::used_at.eq(Some(now)))
        .returning(CodeRow::as_returning())
        .get_result(conn)
        .optional()?;
        match row {
            Some(row) if row.expires_at > now => Ok(Consumed::Fresh(StoredCode {
                scope: ScopeSet::parse_known(&row.scopes).map_err(StoreError::Corrupt)?,
                client_id: row.client_id,
                user_id: row.user_id,
                session_hash: row.session_hash,
                redirect_uri: row.redirect_uri,
                redirect_uri_given: row.redirect_uri_given,
                code_challenge: row.code_challenge,
                family_id: row.family_id,
                expires_at: row.expires_at,
                sign_in: SignIn {
                    nonce: row.nonce,
                    sid: row.sid,
                    auth_time: row.auth_time,
                },
            })),
            Some(_) => Ok(Consumed::Expired),
            None => {
                let family: Option<Uuid> = authorization_codes::table
                    .filter(authorization_codes::code_hash.eq(code_hash))
                    .filter(authorization_codes::client_id.eq(client_id))
                    .filter(authorization_codes::used_at.is_not_null())
                    .select(authorization_codes::family_id)
                    .first(conn)
                    .optional()?;
                Ok(match family {
                    Some(family_id) => Consumed::Replayed { family_id },
                    None => Consumed::Unknown,
                })
            }
        }
    }
}

impl FamilyStore for PgStore<'_> {
    fn create_family(&mut self, family: &NewFamily) -> Result<(), StoreError> {
        let conn = &mut *self.conn;
        diesel::insert_into(token_families::table)
            .values(&FamilyInsert {
                id: family.id,
                client_id: &family.client_id,
                user_id: family.user_id,
                session_hash: family.session_hash.as_deref(),
                scopes: family.scope.to_strings(),
                created_at: family.created_at,
                expires_at: family.expires_at,
                sid: family.sid,
                auth_time: family.auth_time,
            })
            .execute(conn)?;
        Ok(())
    }

    fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<(), StoreError> {
        let conn = &mut *self.conn;
        diesel::insert_into(refresh_tokens::table)
            .values(&RefreshInsert {
                token_hash: &token.token_hash,
                family_id: token.family_id,
                client_id: &token.client_id,
                created_at: token.created_at,
                expires_at: token.expires_at,
            })
            .execute(conn)?;
        Ok(())
    }

    fn revoke_family(
        &mut self,
        family_id: Uuid,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // One transaction (a savepoint inside the caller's): the family is
        // revoked exactly when its feed event is recorded, so a retry after
        // a failure finds it still to do.
        self.conn.transaction(|conn| {
            let revoked = diesel::update(
                token_families::table
                    .filter(token_families::id.eq(family_id))
                    .filter(token_families::revoked_at.is_null()),
            )
            .set((
                token_families::revoked_at.eq(Some(now)),
                token_families::revoked_reason.eq(Some(reason.as_str())),
            ))
            .execute(conn)?;
            if revoked == 0 {
                return Ok(());
            }
            // Stolen or replayed credentials end the client's sign-in too
            // (Back-Channel Logout); a client revoking its own token knows.
            let compromised = matches!(
                reason,
                RevocationReason::RefreshTokenReused | RevocationReason::CodeReplayed
            );
            if compromised {
                super::backchannel::enqueue(conn, super::backchannel::Ended::Family(family_id), now)?;
            }
            super::events::record_grants(conn, &[family_id], now)
        })
    }
}
