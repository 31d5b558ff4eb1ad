//! Deleting what has expired, in small batches.
//!
//! Each statement touches at most `batch` rows and skips rows another
//! instance has locked (`FOR UPDATE SKIP LOCKED`), so every instance can run
//! cleanup at once and no statement holds locks for long. Refresh tokens are
//! deleted before their families so no cascade ever deletes an unbounded
//! number of rows.

use std::time::Duration;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Timestamptz};

use crate::protocol::StoreError;

/// One kind of expired row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sweep {
    /// Codes an hour past expiry (kept that long to recognise replays).
    Codes,
    /// Sessions past their absolute or idle expiry.
    Sessions,
    /// Successor pairs kept for the refresh grace window, once it is over.
    GracePairs,
    /// Refresh tokens past expiry, or of a revoked or expired family.
    RefreshTokens,
    /// Families that are expired, or revoked or finished for longer than an
    /// access token lives, and have no refresh tokens left.
    Families,
    /// Revoked access-token ids past the token's expiry.
    RevokedAccessTokens,
    /// Failed sign-in counters whose window and block are over.
    LoginThrottle,
    /// Failure-limit keys that have gone idle (their GCRA time has passed).
    RateLimits,
    /// Revocation-feed events past their retention.
    RevocationEvents,
}

impl Sweep {
    pub const ALL: [Sweep; 9] = [
        Sweep::Codes,
        Sweep::Sessions,
        Sweep::GracePairs,
        Sweep::RefreshTokens,
        Sweep::Families,
        Sweep::RevokedAccessTokens,
        Sweep::LoginThrottle,
        Sweep::RateLimits,
        Sweep::RevocationEvents,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Sweep::Codes => "authorization_codes",
            Sweep::Sessions => "browser_sessions",
            Sweep::GracePairs => "refresh_grace_pairs",
            Sweep::RefreshTokens => "refresh_tokens",
            Sweep::Families => "token_families",
            Sweep::RevokedAccessTokens => "revoked_access_tokens",
            Sweep::LoginThrottle => "login_throttle",
            Sweep::RateLimits => "rate_limits",
            Sweep::RevocationEvents => "revocation_events",
        }
    }

    fn sql(self) -> &'static str {
        match self {
            Sweep::Codes => {
                "DELETE FROM authorization_codes WHERE code_hash IN (
                   SELECT code_hash FROM authorization_codes
                   WHERE expires_at < $1 - interval '1 hour'
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            Sweep::Sessions => {
                "DELETE FROM browser_sessions WHERE id_hash IN (
                   SELECT id_hash FROM browser_sessions
                   WHERE expires_at < $1 OR last_seen_at < $1 - make_interval(secs => $3)
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            Sweep::GracePairs => {
                "UPDATE refresh_tokens SET successor_sealed = NULL WHERE token_hash IN (
                   SELECT token_hash FROM refresh_tokens
                   WHERE successor_sealed IS NOT NULL AND grace_until < $1
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            Sweep::RefreshTokens => {
                "DELETE FROM refresh_tokens WHERE token_hash IN (
                   SELECT rt.token_hash FROM refresh_tokens rt
                   JOIN token_families f ON f.id = rt.family_id
                   WHERE rt.expires_at < $1 OR f.expires_at < $1 OR f.revoked_at IS NOT NULL
                   LIMIT $2 FOR UPDATE OF rt SKIP LOCKED)"
            }
            Sweep::Families => {
                "DELETE FROM token_families WHERE id IN (
                   SELECT f.id FROM token_families f
                   WHERE (f.expires_at < $1
                          OR f.revoked_at < $1 - make_interval(secs => $4)
                          OR f.created_at < $1 - make_interval(secs => $4))
                     AND NOT EXISTS (SELECT 1 FROM refresh_tokens rt WHERE rt.family_id = f.id)
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            // Kept for the claim leeway past `expires_at` too: introspection
            // calls a token active until `exp` plus the leeway, and rows
            // written before it had the leeway expire at `exp`.
            Sweep::RevokedAccessTokens => {
                "DELETE FROM revoked_access_tokens WHERE jti IN (
                   SELECT jti FROM revoked_access_tokens WHERE expires_at < $1 - interval '30 seconds'
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            Sweep::LoginThrottle => {
                "DELETE FROM login_throttle WHERE key IN (
                   SELECT key FROM login_throttle
                   WHERE window_started_at < $1 - interval '15 minutes'
                     AND (blocked_until IS NULL OR blocked_until < $1)
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            Sweep::RateLimits => {
                "DELETE FROM rate_limits WHERE key IN (
                   SELECT key FROM rate_limits WHERE tat < $1
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
            // Past the access-token lifetime and the leeway no token an
            // event could refuse is valid (`protocol::events::retention`).
            Sweep::RevocationEvents => {
                "DELETE FROM revocation_events WHERE seq IN (
                   SELECT seq FROM revocation_events
                   WHERE revoked_at < $1 - make_interval(secs => $4)
                   LIMIT $2 FOR UPDATE SKIP LOCKED)"
            }
        }
    }
}

/// Lifetimes the sweeps need.
#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub session_idle: Duration,
    /// How long an access token lives: a revoked family is kept that long
    /// after revocation, a family without refresh tokens that long after
    /// its last token could have been issued.
    pub access_token: Duration,
}

fn seconds(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Runs one batch of one sweep; returns the rows it touched.
pub fn sweep_batch(
    conn: &mut PgConnection,
    sweep: Sweep,
    now: DateTime<Utc>,
    batch: i64,
    lifetimes: Lifetimes,
) -> Result<usize, StoreError> {
    let sql = sweep.sql();
    // Each statement binds only the parameters it mentions.
    let query = diesel::sql_query(sql)
        .bind::<Timestamptz, _>(now)
        .bind::<BigInt, _>(batch);
    let touched = match sweep {
        Sweep::Sessions => query
            .bind::<BigInt, _>(seconds(lifetimes.session_idle))
            .execute(conn)?,
        Sweep::Families => query
            .bind::<BigInt, _>(0i64)
            .bind::<BigInt, _>(seconds(lifetimes.access_token) + 60)
            .execute(conn)?,
        Sweep::RevocationEvents => query
            .bind::<BigInt, _>(0i64)
            .bind::<BigInt, _>(seconds(crate::protocol::events::retention(
                lifetimes.access_token,
            )))
            .execute(conn)?,
        _ => query.execute(conn)?,
    };
    Ok(touched)
}

// The revoked-token sweep above keeps rows for this leeway.
const _: () = assert!(oauth_common::jwt::DEFAULT_LEEWAY.as_secs() == 30);
