//! `authorization_codes`, `token_families`, `refresh_tokens` and
//! `revoked_access_tokens`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::schema::{authorization_codes, refresh_tokens, revoked_access_tokens, token_families};
use crate::domain::ScopeSet;
use crate::protocol::StoreError;
use crate::protocol::grants::{Consumed, NewCode, NewFamily, NewRefreshToken, RevocationReason, StoredCode};

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
}

pub fn insert_code(conn: &mut PgConnection, code: &NewCode) -> Result<(), StoreError> {
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
        })
        .execute(conn)?;
    Ok(())
}

/// Marks the code used in one statement, so two concurrent exchanges
/// cannot both succeed.
pub fn consume_code(
    conn: &mut PgConnection,
    code_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<Consumed, StoreError> {
    let row: Option<CodeRow> = diesel::update(
        authorization_codes::table
            .filter(authorization_codes::code_hash.eq(code_hash))
            .filter(authorization_codes::used_at.is_null()),
    )
    .set(authorization_codes::used_at.eq(Some(now)))
    .returning(CodeRow::as_returning())
    .get_result(conn)
    .optional()?;
    match row {
        Some(row) if row.expires_at > now => Ok(Consumed::Fresh(StoredCode {
            scope: ScopeSet::parse_known(&row.scopes).map_err(StoreError::Failed)?,
            client_id: row.client_id,
            user_id: row.user_id,
            session_hash: row.session_hash,
            redirect_uri: row.redirect_uri,
            redirect_uri_given: row.redirect_uri_given,
            code_challenge: row.code_challenge,
            family_id: row.family_id,
            expires_at: row.expires_at,
        })),
        Some(_) => Ok(Consumed::Expired),
        None => {
            let family: Option<Uuid> = authorization_codes::table
                .filter(authorization_codes::code_hash.eq(code_hash))
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
}

pub fn create_family(conn: &mut PgConnection, family: &NewFamily) -> Result<(), StoreError> {
    diesel::insert_into(token_families::table)
        .values(&FamilyInsert {
            id: family.id,
            client_id: &family.client_id,
            user_id: family.user_id,
            session_hash: family.session_hash.as_deref(),
            scopes: family.scope.to_strings(),
            created_at: family.created_at,
            expires_at: family.expires_at,
        })
        .execute(conn)?;
    Ok(())
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

pub fn insert_refresh_token(conn: &mut PgConnection, token: &NewRefreshToken) -> Result<(), StoreError> {
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

pub fn revoke_family(
    conn: &mut PgConnection,
    family_id: Uuid,
    reason: RevocationReason,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::update(
        token_families::table
            .filter(token_families::id.eq(family_id))
            .filter(token_families::revoked_at.is_null()),
    )
    .set((
        token_families::revoked_at.eq(Some(now)),
        token_families::revoked_reason.eq(Some(reason.as_str())),
    ))
    .execute(conn)?;
    Ok(())
}

pub fn revoke_access_token(
    conn: &mut PgConnection,
    jti: Uuid,
    expires_at: DateTime<Utc>,
) -> Result<(), StoreError> {
    diesel::insert_into(revoked_access_tokens::table)
        .values((
            revoked_access_tokens::jti.eq(jti),
            revoked_access_tokens::expires_at.eq(expires_at),
        ))
        .on_conflict_do_nothing()
        .execute(conn)?;
    Ok(())
}

/// Row and family, for the refresh grant; `FOR UPDATE` on the token row.
pub fn lock_refresh_token(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<crate::protocol::refresh::RefreshRecord>, StoreError> {
    type Row = (
        Uuid,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Option<Vec<u8>>,
        Option<DateTime<Utc>>,
        Uuid,
        Vec<String>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    );
    let row: Option<Row> = refresh_tokens::table
        .inner_join(token_families::table)
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((
            refresh_tokens::family_id,
            refresh_tokens::client_id,
            refresh_tokens::expires_at,
            refresh_tokens::used_at,
            refresh_tokens::successor_sealed,
            refresh_tokens::grace_until,
            token_families::user_id,
            token_families::scopes,
            token_families::expires_at,
            token_families::revoked_at,
        ))
        .for_update()
        .first(conn)
        .optional()?;
    row.map(
        |(
            family_id,
            client_id,
            expires_at,
            used_at,
            successor_sealed,
            grace_until,
            user_id,
            scopes,
            family_expires_at,
            revoked_at,
        )| {
            Ok(crate::protocol::refresh::RefreshRecord {
                family_id,
                client_id,
                expires_at,
                used_at,
                successor_sealed,
                grace_until,
                family_user_id: user_id,
                family_scope: ScopeSet::parse_known(&scopes).map_err(StoreError::Failed)?,
                family_expires_at,
                family_revoked: revoked_at.is_some(),
            })
        },
    )
    .transpose()
}

pub fn mark_spent(
    conn: &mut PgConnection,
    token_hash: &[u8],
    now: DateTime<Utc>,
    successor_sealed: &[u8],
    grace_until: DateTime<Utc>,
) -> Result<(), StoreError> {
    let updated = diesel::update(
        refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .filter(refresh_tokens::used_at.is_null()),
    )
    .set((
        refresh_tokens::used_at.eq(Some(now)),
        refresh_tokens::successor_sealed.eq(Some(successor_sealed)),
        refresh_tokens::grace_until.eq(Some(grace_until)),
    ))
    .execute(conn)?;
    if updated != 1 {
        // Cannot happen under the row lock; refuse rather than fork a chain.
        return Err(StoreError::Failed("refresh token was spent concurrently".into()));
    }
    Ok(())
}

/// The refresh token's family and client, for revocation.
pub fn refresh_token_owner(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<(Uuid, String)>, StoreError> {
    Ok(refresh_tokens::table
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((refresh_tokens::family_id, refresh_tokens::client_id))
        .first(conn)
        .optional()?)
}

pub fn refresh_token_info(
    conn: &mut PgConnection,
    token_hash: &[u8],
) -> Result<Option<crate::protocol::introspect::RefreshInfo>, StoreError> {
    use super::schema::{clients, users};
    type Row = (
        String,
        DateTime<Utc>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Uuid,
        String,
        Vec<String>,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
        Vec<String>,
    );
    let row: Option<Row> = refresh_tokens::table
        .inner_join(
            token_families::table
                .inner_join(users::table)
                .inner_join(clients::table),
        )
        .filter(refresh_tokens::token_hash.eq(token_hash))
        .select((
            refresh_tokens::client_id,
            refresh_tokens::created_at,
            refresh_tokens::expires_at,
            refresh_tokens::used_at,
            users::id,
            users::username,
            token_families::scopes,
            token_families::expires_at,
            token_families::revoked_at,
            clients::audiences,
        ))
        .first(conn)
        .optional()?;
    row.map(
        |(
            client_id,
            created_at,
            expires_at,
            used_at,
            user_id,
            username,
            scopes,
            family_expires_at,
            revoked_at,
            audiences,
        )| {
            Ok(crate::protocol::introspect::RefreshInfo {
                client_id,
                audiences,
                user_id,
                username,
                scope: ScopeSet::parse_known(&scopes).map_err(StoreError::Failed)?,
                created_at,
                expires_at,
                used: used_at.is_some(),
                family_revoked: revoked_at.is_some(),
                family_expires_at,
            })
        },
    )
    .transpose()
}

/// Whether an access token is revoked by `jti` or through its family (a
/// family that no longer exists counts as revoked).
pub fn access_token_revoked(
    conn: &mut PgConnection,
    jti: Uuid,
    family: Option<Uuid>,
) -> Result<bool, StoreError> {
    let by_jti = revoked_access_tokens::table.filter(revoked_access_tokens::jti.eq(jti));
    match family {
        None => Ok(diesel::select(diesel::dsl::exists(by_jti)).get_result(conn)?),
        Some(family) => {
            let live_family = token_families::table
                .filter(token_families::id.eq(family))
                .filter(token_families::revoked_at.is_null());
            let (revoked, live): (bool, bool) =
                diesel::select((diesel::dsl::exists(by_jti), diesel::dsl::exists(live_family)))
                    .get_result(conn)?;
            Ok(revoked || !live)
        }
    }
}

/// Revokes every family the browser session produced (logout).
pub fn revoke_session_families(
    conn: &mut PgConnection,
    session_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        token_families::table
            .filter(token_families::session_hash.eq(session_hash))
            .filter(token_families::revoked_at.is_null()),
    )
    .set((
        token_families::revoked_at.eq(Some(now)),
        token_families::revoked_reason.eq(Some(RevocationReason::Logout.as_str())),
    ))
    .execute(conn)?)
}

/// Expires the session's unused authorization codes (logout), so a code
/// approved before logout cannot start a family after it.
pub fn expire_session_codes(
    conn: &mut PgConnection,
    session_hash: &[u8],
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(diesel::update(
        authorization_codes::table
            .filter(authorization_codes::session_hash.eq(session_hash))
            .filter(authorization_codes::used_at.is_null())
            .filter(authorization_codes::expires_at.gt(now)),
    )
    .set(authorization_codes::expires_at.eq(now))
    .execute(conn)?)
}
