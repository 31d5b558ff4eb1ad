//! The refresh-token side of the grants aggregate: reading a token with
//! its family and user (with or without row locks), rotation in one
//! statement, and the lookups introspection and revocation need. Its
//! queries are the bodies of `RefreshStore`, `IntrospectionStore` and
//! `RevocationStore`.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use uuid::Uuid;

use super::PgStore;
use super::schema::{refresh_tokens, revoked_access_tokens, token_families};
use crate::domain::ScopeSet;
use crate::protocol::StoreError;
use crate::protocol::grants::NewRefreshToken;
use crate::protocol::introspect::IntrospectionStore;
use crate::protocol::refresh::{RefreshStore, Spend};
use crate::protocol::revoke::RevocationStore;

#[derive(QueryableByName)]
struct RefreshRow {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    family_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    client_id: String,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    expires_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    used_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bytea>)]
    successor_sealed: Option<Vec<u8>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    grace_until: Option<DateTime<Utc>>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Bytea>)]
    spent_request: Option<Vec<u8>>,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    user_id: Uuid,
    #[diesel(sql_type = diesel::sql_types::Text)]
    username: String,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    roles: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    scopes: Vec<String>,
    #[diesel(sql_type = diesel::sql_types::Timestamptz)]
    family_expires_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    family_revoked: bool,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Uuid>)]
    family_sid: Option<Uuid>,
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Timestamptz>)]
    family_auth_time: Option<DateTime<Utc>>,
}

const REFRESH_RECORD_SQL: &str = "SELECT rt.family_id, rt.client_id, rt.expires_at, rt.used_at,
        rt.successor_sealed, rt.grace_until, rt.spent_request, u.id AS user_id, u.username, u.roles,
        f.scopes, f.expires_at AS family_expires_at, (f.revoked_at IS NOT NULL) AS family_revoked,
        f.sid AS family_sid, f.auth_time AS family_auth_time
   FROM refresh_tokens rt
   JOIN token_families f ON f.id = rt.family_id
   JOIN users u ON u.id = f.user_id
  WHERE rt.token_hash = ";

/// The refresh grant's hot statements, written as SQL (diesel's DSL has no
/// `FOR UPDATE OF` or data-modifying CTE) but with a static query id, so
/// diesel keeps them as prepared statements instead of parsing and planning
/// them on every request as it does for `sql_query`.
mod prepared {
    use chrono::{DateTime, Utc};
    use diesel::pg::Pg;
    use diesel::query_builder::{AstPass, Query, QueryFragment, QueryId};
    use diesel::sql_types::{Bytea, Text, Timestamptz, Untyped};
    use diesel::{PgConnection, QueryResult, RunQueryDsl};

    /// The token, its family and user; `LOCK` locks the token row and the
    /// family row (`NO KEY UPDATE`, the lock a revocation takes, so a
    /// rotation and a revocation of the family run one after the other).
    pub struct RefreshRecord<'a, const LOCK: bool> {
        pub token_hash: &'a [u8],
    }

    pub struct RefreshRecordId<const LOCK: bool>;

    impl<const LOCK: bool> QueryId for RefreshRecord<'_, LOCK> {
        type QueryId = RefreshRecordId<LOCK>;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl<const LOCK: bool> QueryFragment<Pg> for RefreshRecord<'_, LOCK> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            out.push_sql(super::REFRESH_RECORD_SQL);
            out.push_bind_param::<Bytea, _>(self.token_hash)?;
            if LOCK {
                out.push_sql(" FOR UPDATE OF rt FOR NO KEY UPDATE OF f");
            }
            Ok(())
        }
    }

    impl<const LOCK: bool> Query for RefreshRecord<'_, LOCK> {
        type SqlType = Untyped;
    }

    impl<const LOCK: bool> RunQueryDsl<PgConnection> for RefreshRecord<'_, LOCK> {}

    /// Spend the token and insert its successor, in one statement. The
    /// successor is inserted only while a share lock on the family row sees
    /// it unrevoked; a revocation holds the row's update lock, so it either
    /// commits first (nothing is inserted) or waits for this statement.
    pub struct ClaimAndRotate<'a> {
        pub token_hash: &'a [u8],
        pub now: DateTime<Utc>,
        pub sealed: &'a [u8],
        pub grace_until: DateTime<Utc>,
        pub client_id: &'a str,
        pub successor_hash: &'a [u8],
        pub successor_expires_at: DateTime<Utc>,
        pub request: &'a [u8],
    }

    pub struct ClaimAndRotateId;

    impl QueryId for ClaimAndRotate<'_> {
        type QueryId = ClaimAndRotateId;
        const HAS_STATIC_QUERY_ID: bool = true;
    }

    impl QueryFragment<Pg> for ClaimAndRotate<'_> {
        fn walk_ast<'b>(&'b self, mut out: AstPass<'_, 'b, Pg>) -> QueryResult<()> {
            // Binds become $1.. in the order they are pushed.
            out.push_sql("WITH claimed AS (UPDATE refresh_tokens SET used_at = ");
            out.push_bind_param::<Timestamptz, _>(&self.now)?; // $1
            out.push_sql(", successor_sealed = ");
            out.push_bind_param::<Bytea, _>(self.sealed)?; // $2
            out.push_sql(", grace_until = ");
            out.push_bind_param::<Timestamptz, _>(&self.grace_until)?; // $3
            out.push_sql(", spent_request = ");
            out.push_bind_param::<Bytea, _>(self.request)?; // $4
            out.push_sql(" WHERE token_hash = ");
            out.push_bind_param::<Bytea, _>(self.token_hash)?; // $5
            out.push_sql(" AND used_at IS NULL AND client_id = ");
            out.push_bind_param::<Text, _>(self.client_id)?; // $6
            out.push_sql(
                " AND expires_at > $1 RETURNING family_id), \
                 live AS (SELECT f.id FROM token_families f JOIN claimed c ON c.family_id = f.id \
                           WHERE f.revoked_at IS NULL FOR SHARE OF f) \
                 INSERT INTO refresh_tokens (token_hash, family_id, client_id, created_at, expires_at) SELECT ",
            );
            out.push_bind_param::<Bytea, _>(self.successor_hash)?; // $7
            out.push_sql(", id, $6, $1, ");
            out.push_bind_param::<Timestamptz, _>(&self.successor_expires_at)?; // $8
            out.push_sql(" FROM live");
            Ok(())
        }
    }

    impl RunQueryDsl<PgConnection> for ClaimAndRotate<'_> {}
}

/// A refresh token with its family and user, for the refresh grant;
/// `lock` takes the token row (only) `FOR UPDATE`.
fn refresh_record(
    conn: &mut PgConnection,
    token_hash: &[u8],
    lock: bool,
) -> Result<Option<crate::protocol::refresh::RefreshRecord>, StoreError> {
    let row: Option<RefreshRow> = if lock {
        prepared::RefreshRecord::<true> { token_hash }
            .get_result(conn)
            .optional()?
    } else {
        prepared::RefreshRecord::<false> { token_hash }
            .get_result(conn)
            .optional()?
    };
    row.map(|r| {
        Ok(crate::protocol::refresh::RefreshRecord {
            family_id: r.family_id,
            client_id: r.client_id,
            expires_at: r.expires_at,
            used_at: r.used_at,
            successor_sealed: r.successor_sealed,
            grace_until: r.grace_until,
            spent_request: r.spent_request,
            user: crate::model::User {
                id: r.user_id,
                username: r.username,
                roles: crate::domain::Roles::parse(&r.roles).map_err(StoreError::Corrupt)?,
            },
            family_scope: ScopeSet::parse_known(&r.scopes).map_err(StoreError::Corrupt)?,
            family_expires_at: r.family_expires_at,
            family_revoked: r.family_revoked,
            family_sid: r.family_sid,
            family_auth_time: r.family_auth_time,
        })
    })
    .transpose()
}

impl RefreshStore for PgStore<'_> {
    fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        self.transaction(f)
    }

    fn read_refresh_token(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<crate::protocol::refresh::RefreshRecord>, StoreError> {
        let conn = &mut *self.conn;
        refresh_record(conn, token_hash, false)
    }

    fn lock_refresh_token(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<crate::protocol::refresh::RefreshRecord>, StoreError> {
        let conn = &mut *self.conn;
        refresh_record(conn, token_hash, true)
    }

    /// Spends the token and inserts its successor in one statement (so one
    /// implicit transaction and one round trip); false when the token was no
    /// longer spendable.
    fn claim_and_rotate(
        &mut self,
        token_hash: &[u8],
        client_id: &str,
        spend: &Spend<'_>,
        successor: &NewRefreshToken,
    ) -> Result<bool, StoreError> {
        let conn = &mut *self.conn;
        let inserted = prepared::ClaimAndRotate {
            token_hash,
            now: spend.now,
            sealed: spend.successor_sealed,
            grace_until: spend.grace_until,
            client_id,
            successor_hash: &successor.token_hash,
            successor_expires_at: successor.expires_at,
            request: spend.request,
        }
        .execute(conn)?;
        Ok(inserted == 1)
    }

    fn mark_spent(&mut self, token_hash: &[u8], spend: &Spend<'_>) -> Result<(), StoreError> {
        let conn = &mut *self.conn;
        let updated = diesel::update(
            refresh_tokens::table
                .filter(refresh_tokens::token_hash.eq(token_hash))
                .filter(refresh_tokens::used_at.is_null()),
        )
        .set((
            refresh_tokens::used_at.eq(Some(spend.now)),
            refresh_tokens::successor_sealed.eq(Some(spend.successor_sealed)),
            refresh_tokens::grace_until.eq(Some(spend.grace_until)),
            refresh_tokens::spent_request.eq(Some(spend.request)),
        ))
        .execute(conn)?;
        if updated != 1 {
            // Cannot happen under the row lock; refuse rather than fork a chain.
            return Err(StoreError::Internal(
                "refresh token was spent concurrently".into(),
            ));
        }
        Ok(())
    }
}

impl IntrospectionStore for PgStore<'_> {
    /// Whether an access token is revoked by `jti` or through its family (a
    /// family that no longer exists counts as revoked), or its client is
    /// gone. One round trip.
    fn access_token_revoked(
        &mut self,
        jti: Uuid,
        family: Option<Uuid>,
        client_id: &str,
    ) -> Result<bool, StoreError> {
        use super::schema::clients;
        let conn = &mut *self.conn;
        let by_jti = revoked_access_tokens::table.filter(revoked_access_tokens::jti.eq(jti));
        let client = clients::table.filter(clients::client_id.eq(client_id));
        match family {
            None => {
                let (revoked, client_exists): (bool, bool) =
                    diesel::select((diesel::dsl::exists(by_jti), diesel::dsl::exists(client)))
                        .get_result(conn)?;
                Ok(revoked || !client_exists)
            }
            Some(family) => {
                // A family belongs to its client (and is deleted with it).
                let live_family = token_families::table
                    .filter(token_families::id.eq(family))
                    .filter(token_families::client_id.eq(client_id))
                    .filter(token_families::revoked_at.is_null());
                let (revoked, live): (bool, bool) =
                    diesel::select((diesel::dsl::exists(by_jti), diesel::dsl::exists(live_family)))
                        .get_result(conn)?;
                Ok(revoked || !live)
            }
        }
    }

    fn refresh_token_info(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<crate::protocol::introspect::RefreshInfo>, StoreError> {
        let conn = &mut *self.conn;
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
                    scope: ScopeSet::parse_known(&scopes).map_err(StoreError::Corrupt)?,
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
}

impl RevocationStore for PgStore<'_> {
    /// The refresh token's family and client, for revocation.
    fn refresh_token_owner(&mut self, token_hash: &[u8]) -> Result<Option<(Uuid, String)>, StoreError> {
        let conn = &mut *self.conn;
        Ok(refresh_tokens::table
            .filter(refresh_tokens::token_hash.eq(token_hash))
            .select((refresh_tokens::family_id, refresh_tokens::client_id))
            .first(conn)
            .optional()?)
    }

    fn revoke_access_token(
        &mut self,
        jti: Uuid,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        // Revoked exactly when the feed event is recorded (see
        // `revoke_family`).
        self.conn.transaction(|conn| {
            let revoked = diesel::insert_into(revoked_access_tokens::table)
                .values((
                    revoked_access_tokens::jti.eq(jti),
                    revoked_access_tokens::expires_at.eq(expires_at),
                ))
                .on_conflict_do_nothing()
                .execute(conn)?;
            if revoked > 0 {
                super::events::record_with_expiry(
                    conn,
                    crate::protocol::events::Kind::Token,
                    &jti.to_string(),
                    now,
                    Some(expires_at),
                )?;
            }
            Ok(())
        })
    }
}
