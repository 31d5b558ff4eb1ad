//! `revocation_events`: the revocation feed's rows. Every writer records
//! its event in the transaction that makes the revocation, so an event
//! exists exactly when the revocation committed, and a restart loses none.
//!
//! Order: a writer takes a transaction-scoped advisory lock before it
//! inserts, and holds it until its transaction commits, so `seq` values
//! become visible in order: a reader that has seen `seq` N will never later
//! find a row below N, and a cursor is enough to read the feed whole.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Bytea, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::protocol::StoreError;
use crate::protocol::events::{Event, Kind};

/// Advisory-lock key that orders the feed's writers.
const FEED_LOCK: i64 = 0x0a17_5e12_0015;

fn lock(conn: &mut PgConnection) -> Result<(), StoreError> {
    diesel::sql_query("SELECT pg_advisory_xact_lock($1)")
        .bind::<BigInt, _>(FEED_LOCK)
        .execute(conn)?;
    Ok(())
}

/// Records that `subject` (of `kind`) was revoked at `now`.
pub fn record(
    conn: &mut PgConnection,
    kind: Kind,
    subject: &str,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    record_with_expiry(conn, kind, subject, now, None)
}

/// [`record`], knowing when the tokens it refuses expire (a revoked access
/// token's own expiry).
pub fn record_with_expiry(
    conn: &mut PgConnection,
    kind: Kind,
    subject: &str,
    now: DateTime<Utc>,
    tokens_expire_by: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        lock(conn)?;
        diesel::sql_query(
            "INSERT INTO revocation_events (jti, kind, subject, revoked_at, tokens_expire_by)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind::<SqlUuid, _>(Uuid::new_v4())
        .bind::<Text, _>(kind.as_str())
        .bind::<Text, _>(subject)
        .bind::<Timestamptz, _>(now)
        .bind::<diesel::sql_types::Nullable<Timestamptz>, _>(tokens_expire_by)
        .execute(conn)?;
        Ok(())
    })
}

/// Records the revocation of these grants (refresh families), one event
/// each: every access token of a user names its grant, so a token a
/// refresh issued while the revocation was under way is refused too.
pub fn record_grants(conn: &mut PgConnection, grants: &[Uuid], now: DateTime<Utc>) -> Result<(), StoreError> {
    if grants.is_empty() {
        return Ok(());
    }
    conn.transaction(|conn| {
        lock(conn)?;
        diesel::sql_query(
            "INSERT INTO revocation_events (jti, kind, subject, revoked_at)
             SELECT gen_random_uuid(), 'grant', g::text, $2 FROM unnest($1::uuid[]) AS g",
        )
        .bind::<diesel::sql_types::Array<SqlUuid>, _>(grants)
        .bind::<Timestamptz, _>(now)
        .execute(conn)?;
        Ok(())
    })
}

/// Records the end of a browser session: its own `sid` (read before its
/// row was deleted) and the `sid`s of the grants made through it (a grant
/// moved to it from an earlier session at sign-in keeps that session's).
pub fn record_session_end(
    conn: &mut PgConnection,
    session_hash: &[u8],
    sid: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.transaction(|conn| {
        lock(conn)?;
        diesel::sql_query(
            "INSERT INTO revocation_events (jti, kind, subject, revoked_at)
             SELECT gen_random_uuid(), 'session', ended.sid::text, $3 FROM (
                 SELECT $2::uuid AS sid WHERE $2::uuid IS NOT NULL
                 UNION
                 SELECT sid FROM token_families WHERE session_hash = $1 AND sid IS NOT NULL
             ) AS ended",
        )
        .bind::<Bytea, _>(session_hash)
        .bind::<diesel::sql_types::Nullable<SqlUuid>, _>(sid)
        .bind::<Timestamptz, _>(now)
        .execute(conn)?;
        Ok(())
    })
}

#[derive(QueryableByName)]
struct Row {
    #[diesel(sql_type = BigInt)]
    seq: i64,
    #[diesel(sql_type = SqlUuid)]
    jti: Uuid,
    #[diesel(sql_type = Text)]
    kind: String,
    #[diesel(sql_type = Text)]
    subject: String,
    #[diesel(sql_type = Timestamptz)]
    revoked_at: DateTime<Utc>,
    #[diesel(sql_type = diesel::sql_types::Nullable<Timestamptz>)]
    tokens_expire_by: Option<DateTime<Utc>>,
}

/// Up to `limit` events after `cursor` that are still within `retention`,
/// oldest first.
pub fn after(
    conn: &mut PgConnection,
    cursor: i64,
    limit: i64,
    now: DateTime<Utc>,
    retention: Duration,
) -> Result<Vec<Event>, StoreError> {
    let oldest = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let rows: Vec<Row> = diesel::sql_query(
        "SELECT seq, jti, kind, subject, revoked_at, tokens_expire_by FROM revocation_events
          WHERE seq > $1 AND revoked_at > $2 ORDER BY seq LIMIT $3",
    )
    .bind::<BigInt, _>(cursor)
    .bind::<Timestamptz, _>(oldest)
    .bind::<BigInt, _>(limit)
    .load(conn)?;
    rows.into_iter()
        .map(|r| {
            Ok(Event {
                seq: r.seq,
                jti: r.jti,
                kind: Kind::parse(&r.kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("revocation event kind {:?}", r.kind)))?,
                subject: r.subject,
                revoked_at: r.revoked_at,
                tokens_expire_by: r.tokens_expire_by,
            })
        })
        .collect()
}

/// The newest `seq` the feed has given out (0 before the first): a cursor
/// past it was not given by this feed.
pub fn head(conn: &mut PgConnection) -> Result<i64, StoreError> {
    #[derive(QueryableByName)]
    struct Head {
        #[diesel(sql_type = BigInt)]
        seq: i64,
    }
    Ok(diesel::sql_query(
        "SELECT CASE WHEN is_called THEN last_value ELSE 0 END AS seq FROM revocation_events_seq_seq",
    )
    .get_result::<Head>(conn)?
    .seq)
}
