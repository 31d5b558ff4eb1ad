//! The `refresh_token` grant (RFC 6749 section 6, OAuth 2.1 section 4.3,
//! RFC 9700 section 4.14): every use rotates the token; a spent token
//! presented again revokes the whole family, except for the narrow grace
//! window described below.
//!
//! Grace window: browsers with several tabs refresh concurrently. When the
//! *same client* presents the *just-spent* token again within
//! `AUTH_REFRESH_GRACE_SECONDS`, it gets the very same successor pair the
//! first request received (kept sealed with AES-GCM for the window only),
//! so there is still exactly one live chain. Any other reuse, or a reuse
//! after the window, revokes the family. See `docs/tokens.md`.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::grants::{FamilyStore, NewRefreshToken, RevocationReason};
use super::tokens::{self, AccessTokenSigner, Subject, TokenPolicy, TokenResponse};
use super::{OAuthError, Params, StoreError, scope};
use crate::crypto;
use crate::domain::ScopeSet;
use crate::model::{Client, User};

/// A refresh token row with its family, read under a row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefreshRecord {
    pub family_id: Uuid,
    pub client_id: String,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub successor_sealed: Option<Vec<u8>>,
    pub grace_until: Option<DateTime<Utc>>,
    /// The family's user, as now (roles may have changed since the grant).
    pub user: User,
    pub family_scope: ScopeSet,
    pub family_expires_at: DateTime<Utc>,
    pub family_revoked: bool,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Spend it and issue a successor pair.
    Rotate,
    /// The same client replays the just-spent token inside the window:
    /// hand out the sealed successor pair again.
    Replay(Vec<u8>),
    /// A spent token is being reused: revoke the family.
    Reuse,
    /// Refuse with `invalid_grant` and change nothing.
    Reject(&'static str),
}

/// Decides what a presented token gets. Pure: the clock is a parameter.
pub fn judge(record: Option<&RefreshRecord>, client_id: &str, now: DateTime<Utc>) -> Verdict {
    let Some(record) = record else {
        return Verdict::Reject("the refresh token is invalid");
    };
    if record.family_revoked {
        return Verdict::Reject("the refresh token has been revoked");
    }
    if let Some(used_at) = record.used_at {
        // `now` is read when the request arrives; one that was already
        // waiting for the row lock when the token was spent counts from the
        // spend, so a zero window never replays.
        let at = now.max(used_at);
        let in_window = record.grace_until.is_some_and(|until| at < until);
        return match (
            &record.successor_sealed,
            in_window && record.client_id == client_id,
        ) {
            (Some(sealed), true) => Verdict::Replay(sealed.clone()),
            _ => Verdict::Reuse,
        };
    }
    if record.client_id != client_id {
        return Verdict::Reject("the refresh token was issued to another client");
    }
    if record.family_expires_at <= now {
        return Verdict::Reject("the sign-in has expired; sign in again");
    }
    if record.expires_at <= now {
        return Verdict::Reject("the refresh token has expired");
    }
    Verdict::Rotate
}

/// The refresh-token storage the grant needs, inside one transaction.
pub trait RefreshStore: FamilyStore {
    /// Runs `f` in a database transaction; commits when it returns `Ok`.
    fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>
    where
        Self: Sized;
    /// The token's record, read without a lock (the fast path).
    fn read_refresh_token(&mut self, token_hash: &[u8]) -> Result<Option<RefreshRecord>, StoreError>;
    /// The token's record, locked until the transaction ends.
    fn lock_refresh_token(&mut self, token_hash: &[u8]) -> Result<Option<RefreshRecord>, StoreError>;
    /// In one statement: spends the token if it is still unspent, unexpired
    /// and `client_id`'s, storing the sealed successor, and inserts the
    /// successor. Returns false (and changes nothing) if another request
    /// got there first.
    fn claim_and_rotate(
        &mut self,
        token_hash: &[u8],
        client_id: &str,
        now: DateTime<Utc>,
        successor_sealed: &[u8],
        grace_until: DateTime<Utc>,
        successor: &NewRefreshToken,
    ) -> Result<bool, StoreError>;
    /// Marks the token spent and keeps the sealed successor until
    /// `grace_until`.
    fn mark_spent(
        &mut self,
        token_hash: &[u8],
        now: DateTime<Utc>,
        successor_sealed: &[u8],
        grace_until: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// What is sealed for the grace window.
#[derive(Serialize, Deserialize)]
struct Sealed {
    response: TokenResponse,
    access_expires_at: i64,
}

pub struct RefreshRequest<'a> {
    pub params: &'a Params,
    pub client: &'a Client,
    pub policy: &'a TokenPolicy,
    pub signer: &'a dyn AccessTokenSigner,
    /// Key for sealing the successor pair.
    pub grace_key: &'a [u8; 32],
    pub now: DateTime<Utc>,
}

/// The result, decided inside the transaction and reported after commit
/// (a revocation must commit even though the client gets an error).
pub enum RefreshOutcome {
    Issued(TokenResponse),
    Refused(OAuthError),
}

pub fn refresh<S: RefreshStore>(
    request: &RefreshRequest<'_>,
    store: &mut S,
) -> Result<RefreshOutcome, StoreError> {
    let Some(presented) = request.params.get("refresh_token") else {
        return Ok(RefreshOutcome::Refused(OAuthError::InvalidRequest(
            "refresh_token is required",
        )));
    };
    // RFC 6749 section 6: the scope of a refresh must not include anything
    // not originally granted; a name we do not know was never granted.
    let requested = match request.params.get("scope").map(strict_scope).transpose() {
        Ok(r) => r,
        Err(e) => return Ok(RefreshOutcome::Refused(e)),
    };
    let token_hash = crypto::token_hash(presented);
    let now = request.now;

    // Fast path, for the common case of an unspent token used once: read
    // without a lock, mint the successor, and spend-and-insert in a single
    // statement that only succeeds if the token is still unspent. Two
    // concurrent requests cannot both pass it; the loser takes the locked
    // path below and is judged against the winner's result.
    let record = store.read_refresh_token(&token_hash)?;
    if let (Some(record), Verdict::Rotate) = (&record, judge(record.as_ref(), &request.client.client_id, now))
    {
        match successor(request, record, &token_hash, requested.as_ref())? {
            Err(refusal) => return Ok(RefreshOutcome::Refused(refusal)),
            Ok(next) => {
                if store.claim_and_rotate(
                    &token_hash,
                    &request.client.client_id,
                    now,
                    &next.sealed,
                    request.policy.grace_until(now),
                    &next.row,
                )? {
                    return Ok(RefreshOutcome::Issued(next.response));
                }
            }
        }
    }

    store.in_transaction(|tx| {
        let record = tx.lock_refresh_token(&token_hash)?;
        match judge(record.as_ref(), &request.client.client_id, now) {
            Verdict::Reject(reason) => Ok(RefreshOutcome::Refused(OAuthError::InvalidGrant(reason))),
            Verdict::Reuse => {
                if let Some(record) = &record {
                    tracing::warn!(
                        family = %record.family_id,
                        client_id = %request.client.client_id,
                        "refresh token reused; revoking its family"
                    );
                    tx.revoke_family(record.family_id, RevocationReason::RefreshTokenReused, now)?;
                }
                Ok(RefreshOutcome::Refused(OAuthError::InvalidGrant(
                    "the refresh token was already used",
                )))
            }
            Verdict::Replay(sealed) => {
                let opened = crypto::open(request.grace_key, &sealed, &token_hash)?;
                let sealed: Sealed = serde_json::from_slice(&opened)
                    .map_err(|e| StoreError::Failed(format!("sealed successor: {e}")))?;
                let mut response = sealed.response;
                response.expires_in = (sealed.access_expires_at - now.timestamp()).max(0);
                Ok(RefreshOutcome::Issued(response))
            }
            Verdict::Rotate => {
                let Some(record) = record else {
                    return Ok(RefreshOutcome::Refused(OAuthError::InvalidGrant(
                        "the refresh token is invalid",
                    )));
                };
                rotate(request, tx, &record, &token_hash, requested.as_ref())
            }
        }
    })
}

fn strict_scope(value: &str) -> Result<ScopeSet, OAuthError> {
    let tokens: Vec<&str> = value.split(' ').filter(|t| !t.is_empty()).collect();
    ScopeSet::parse_known(&tokens)
        .map_err(|_| OAuthError::InvalidScope("a refresh may narrow the scope, never widen it"))
}

/// A minted successor pair, ready to store.
struct Successor {
    response: TokenResponse,
    row: NewRefreshToken,
    /// The response, sealed for the grace window.
    sealed: Vec<u8>,
}

/// Mints the successor of `record`'s token (CPU only, nothing stored), or
/// says why the request must be refused.
fn successor(
    request: &RefreshRequest<'_>,
    record: &RefreshRecord,
    token_hash: &[u8],
    requested: Option<&ScopeSet>,
) -> Result<Result<Successor, OAuthError>, StoreError> {
    let now = request.now;
    if let Some(requested) = requested
        && !requested.is_subset(&record.family_scope)
    {
        return Ok(Err(OAuthError::InvalidScope(
            "a refresh may narrow the scope, never widen it",
        )));
    }
    // The user's roles may have changed since the grant.
    let granted = match scope::grant(requested, &record.family_scope, Some(&record.user.roles)) {
        Ok(g) => g,
        Err(e) => return Ok(Err(e)),
    };
    let access = tokens::mint_access_token(
        request.signer,
        request.policy,
        request.client,
        Subject::User {
            user: &record.user,
            family: record.family_id,
        },
        &granted,
        now,
    )?;
    let expires = request.policy.refresh_expiry(now, record.family_expires_at);
    let (raw, row) = tokens::mint_refresh_token(record.family_id, &request.client.client_id, now, expires)?;
    let response = TokenResponse::new(&access, Some(raw), &granted, now);
    let sealed = serde_json::to_vec(&Sealed {
        response: response.clone(),
        access_expires_at: access.expires_at.timestamp(),
    })
    .map_err(|e| StoreError::Failed(e.to_string()))?;
    let sealed = crypto::seal(request.grace_key, &sealed, token_hash)?;
    Ok(Ok(Successor {
        response,
        row,
        sealed,
    }))
}

/// Rotation under the row lock (the slow path).
fn rotate<S: RefreshStore>(
    request: &RefreshRequest<'_>,
    tx: &mut S,
    record: &RefreshRecord,
    token_hash: &[u8],
    requested: Option<&ScopeSet>,
) -> Result<RefreshOutcome, StoreError> {
    let next = match successor(request, record, token_hash, requested)? {
        Ok(next) => next,
        Err(refusal) => return Ok(RefreshOutcome::Refused(refusal)),
    };
    tx.insert_refresh_token(&next.row)?;
    tx.mark_spent(
        token_hash,
        request.now,
        &next.sealed,
        request.policy.grace_until(request.now),
    )?;
    Ok(RefreshOutcome::Issued(next.response))
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    fn record() -> RefreshRecord {
        RefreshRecord {
            family_id: Uuid::nil(),
            client_id: "spa".into(),
            expires_at: t(1000),
            used_at: None,
            successor_sealed: None,
            grace_until: None,
            user: User {
                id: Uuid::nil(),
                username: "alice".into(),
                roles: crate::domain::Roles::parse(&["user"]).unwrap(),
            },
            family_scope: ScopeSet::all(),
            family_expires_at: t(5000),
            family_revoked: false,
        }
    }

    fn spent(grace_until: i64) -> RefreshRecord {
        RefreshRecord {
            used_at: Some(t(10)),
            successor_sealed: Some(vec![1, 2, 3]),
            grace_until: Some(t(grace_until)),
            ..record()
        }
    }

    #[test]
    fn unused_token_rotates() {
        assert_eq!(judge(Some(&record()), "spa", t(20)), Verdict::Rotate);
    }

    #[test]
    fn unknown_token_is_rejected() {
        assert!(matches!(judge(None, "spa", t(20)), Verdict::Reject(_)));
    }

    #[test]
    fn same_client_inside_the_window_gets_the_same_successor() {
        assert_eq!(
            judge(Some(&spent(12)), "spa", t(11)),
            Verdict::Replay(vec![1, 2, 3])
        );
    }

    #[test]
    fn request_that_arrived_before_the_spend_counts_from_the_spend() {
        assert_eq!(
            judge(Some(&spent(12)), "spa", t(9)),
            Verdict::Replay(vec![1, 2, 3])
        );
        // With no window (grace 0) it is a reuse, never a replay.
        assert_eq!(judge(Some(&spent(10)), "spa", t(9)), Verdict::Reuse);
    }

    #[test]
    fn reuse_after_the_window_revokes() {
        assert_eq!(judge(Some(&spent(12)), "spa", t(12)), Verdict::Reuse);
        assert_eq!(judge(Some(&spent(12)), "spa", t(500)), Verdict::Reuse);
    }

    #[test]
    fn another_client_inside_the_window_revokes() {
        assert_eq!(judge(Some(&spent(12)), "other", t(11)), Verdict::Reuse);
    }

    #[test]
    fn spent_token_without_a_sealed_successor_revokes() {
        let r = RefreshRecord {
            successor_sealed: None,
            ..spent(12)
        };
        assert_eq!(judge(Some(&r), "spa", t(11)), Verdict::Reuse);
    }

    #[test]
    fn token_of_another_client_is_rejected_without_revocation() {
        assert!(matches!(
            judge(Some(&record()), "other", t(20)),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn idle_and_absolute_expiry_are_enforced() {
        assert!(matches!(
            judge(Some(&record()), "spa", t(1000)),
            Verdict::Reject(_)
        ));
        let r = RefreshRecord {
            family_expires_at: t(50),
            ..record()
        };
        assert!(matches!(judge(Some(&r), "spa", t(50)), Verdict::Reject(_)));
        assert_eq!(judge(Some(&r), "spa", t(49)), Verdict::Rotate);
    }

    #[test]
    fn revoked_family_is_rejected() {
        let r = RefreshRecord {
            family_revoked: true,
            ..record()
        };
        assert!(matches!(judge(Some(&r), "spa", t(20)), Verdict::Reject(_)));
    }
}
