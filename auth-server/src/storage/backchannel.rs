//! `backchannel_logouts`: Logout Tokens still to deliver (OpenID Connect
//! Back-Channel Logout 1.0). A row is queued in the transaction that ends a
//! session, so no logout is lost to a crash; an instance claims due rows by
//! moving their `next_attempt_at` forward (a lease), so two instances never
//! deliver the same row at once, and a row whose instance died is retried
//! when its lease runs out.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{Bytea, Integer, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use uuid::Uuid;

use crate::protocol::StoreError;

/// What ended, whose clients are to be told.
#[derive(Debug, Clone, Copy)]
pub enum Ended<'a> {
    /// A browser session (by the hash of its id): logout.
    Session(&'a [u8]),
    /// Every session of a user: an operator disabled or deleted them, or
    /// set a new password.
    User(Uuid),
    /// One grant whose tokens were stolen or replayed (refresh-token reuse,
    /// code replay): its client is told.
    Family(Uuid),
}

/// Queues a Logout Token for every client with a back-channel logout URI
/// that holds an unexpired grant of what ended: one per client, user and
/// session. Returns how many were queued.
pub fn enqueue(conn: &mut PgConnection, ended: Ended<'_>, now: DateTime<Utc>) -> Result<usize, StoreError> {
    const SELECT: &str =
        "INSERT INTO backchannel_logouts (id, client_id, subject, sid, created_at, next_attempt_at)
         SELECT gen_random_uuid(), f.client_id, f.user_id, f.sid, $1, $1
           FROM token_families f JOIN clients c ON c.client_id = f.client_id
          WHERE c.backchannel_logout_uri IS NOT NULL AND f.expires_at > $1 AND ";
    const GROUP: &str = " GROUP BY f.client_id, f.user_id, f.sid";
    let query = |filter: &str| format!("{SELECT}{filter}{GROUP}");
    let queued = match ended {
        Ended::Session(hash) => diesel::sql_query(query("f.session_hash = $2"))
            .bind::<Timestamptz, _>(now)
            .bind::<Bytea, _>(hash)
            .execute(conn)?,
        Ended::User(user) => diesel::sql_query(query("f.user_id = $2"))
            .bind::<Timestamptz, _>(now)
            .bind::<SqlUuid, _>(user)
            .execute(conn)?,
        Ended::Family(family) => diesel::sql_query(query("f.id = $2"))
            .bind::<Timestamptz, _>(now)
            .bind::<SqlUuid, _>(family)
            .execute(conn)?,
    };
    Ok(queued)
}

/// A queued Logout Token, claimed for one delivery attempt.
#[derive(Debug, Clone, PartialEq, Eq, QueryableByName)]
pub struct Pending {
    #[diesel(sql_type = SqlUuid)]
    pub id: Uuid,
    #[diesel(sql_type = Text)]
    pub client_id: String,
    #[diesel(sql_type = SqlUuid)]
    pub subject: Uuid,
    #[diesel(sql_type = Nullable<SqlUuid>)]
    pub sid: Option<Uuid>,
    /// This attempt's number, from 1.
    #[diesel(sql_type = Integer)]
    pub attempts: i32,
    /// `None` when the client no longer has one: the row is dropped.
    #[diesel(sql_type = Nullable<Text>)]
    pub uri: Option<String>,
    /// Until when this claim is ours: the row is only removed or
    /// rescheduled by the instance whose lease it still carries.
    #[diesel(sql_type = Timestamptz)]
    pub lease_until: DateTime<Utc>,
}

/// Claims up to `limit` due rows for this instance until `lease_until`,
/// at most `per_client` of any one client (so a client whose endpoint
/// hangs cannot hold up the others' Logout Tokens), oldest first.
pub fn claim_due(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: i64,
    per_client: i64,
) -> Result<Vec<Pending>, StoreError> {
    Ok(diesel::sql_query(
        "UPDATE backchannel_logouts b
            SET attempts = b.attempts + 1, next_attempt_at = $2
           FROM clients c
          WHERE c.client_id = b.client_id
            AND b.id IN (
                SELECT id FROM (
                    SELECT id, next_attempt_at,
                           row_number() OVER (PARTITION BY client_id ORDER BY next_attempt_at) AS nth
                      FROM backchannel_logouts
                     WHERE next_attempt_at <= $1) AS due
                 WHERE due.nth <= $4
                 ORDER BY due.next_attempt_at
                 LIMIT $3)
            AND b.next_attempt_at <= $1
      RETURNING b.id, b.client_id, b.subject, b.sid, b.attempts, c.backchannel_logout_uri AS uri,
                b.next_attempt_at AS lease_until",
    )
    .bind::<Timestamptz, _>(now)
    .bind::<Timestamptz, _>(lease_until)
    .bind::<diesel::sql_types::BigInt, _>(limit)
    .bind::<diesel::sql_types::BigInt, _>(per_client)
    .load(conn)?)
}

/// Removes a row (delivered, or given up) if this claim still holds it.
pub fn remove(conn: &mut PgConnection, claim: &Pending) -> Result<(), StoreError> {
    use super::schema::backchannel_logouts;
    diesel::delete(
        backchannel_logouts::table
            .find(claim.id)
            .filter(backchannel_logouts::next_attempt_at.eq(claim.lease_until)),
    )
    .execute(conn)?;
    Ok(())
}

/// Schedules the next attempt, if this claim still holds the row.
pub fn retry_at(conn: &mut PgConnection, claim: &Pending, at: DateTime<Utc>) -> Result<(), StoreError> {
    use super::schema::backchannel_logouts;
    diesel::update(
        backchannel_logouts::table
            .find(claim.id)
            .filter(backchannel_logouts::next_attempt_at.eq(claim.lease_until)),
    )
    .set(backchannel_logouts::next_attempt_at.eq(at))
    .execute(conn)?;
    Ok(())
}
