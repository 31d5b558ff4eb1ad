//! The `refresh_token` grant (RFC 6749 section 6, OAuth 2.1 section 4.3,
//! RFC 9700 section 4.14): every use rotates the token; a spent token
//! presented again revokes the whole family, except for the narrow grace
//! window described below.
//!
//! Grace window: browsers with several tabs refresh concurrently. When the
//! *identical request* (same client, same grant type, same normalized
//! `scope` parameter) presents the *just-spent* token again within
//! `AUTH_REFRESH_GRACE_SECONDS`, it gets the very same successor pair the
//! first request received (kept sealed with AES-GCM for the window only),
//! so there is still exactly one live chain. Any other request presenting
//! a spent token, or the identical one after the window, is reuse and
//! revokes the family: a thief holding a copy cannot probe the token with a
//! request of its own and then collect the real client's successor as a
//! "replay". A refused request on an unspent token stores nothing.
//!
//! Revocation always wins: a rotation spends its token and then inserts the
//! successor only while it holds a share lock on a *live* family row, and
//! every revocation updates that row, so a revocation that commits first
//! makes the rotation insert nothing. See `docs/tokens.md`.

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
    /// The digest of the request that spent it ([`request_digest`]).
    pub spent_request: Option<Vec<u8>>,
    /// The family's user, as now (roles may have changed since the grant).
    pub user: User,
    pub family_scope: ScopeSet,
    pub family_expires_at: DateTime<Utc>,
    pub family_revoked: bool,
    /// The browser session and sign-in time of the grant, for the ID token.
    pub family_sid: Option<Uuid>,
    pub family_auth_time: Option<DateTime<Utc>>,
}

/// What to do with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Spend it and issue a successor pair.
    Rotate,
    /// The identical request replays the just-spent token inside the
    /// window: hand out the sealed successor pair again.
    Replay(Vec<u8>),
    /// A spent token is being reused: revoke the family.
    Reuse,
    /// Refuse with `invalid_grant` and change nothing.
    Reject(&'static str),
}

/// What makes two refresh requests "the same request": the client, the
/// grant type and the `scope` parameter as a set (absent is its own value).
pub fn request_digest(client_id: &str, scope: Option<&str>) -> Vec<u8> {
    let normalized = match scope {
        None => "\u{0}absent".to_owned(),
        Some(s) => {
            let mut tokens: Vec<&str> = s.split(' ').filter(|t| !t.is_empty()).collect();
            tokens.sort_unstable();
            tokens.dedup();
            tokens.join(" ")
        }
    };
    crypto::sha256(format!("refresh_token\u{0}{client_id}\u{0}{normalized}").as_bytes()).to_vec()
}

/// Decides what a presented token gets. Pure: the clock is a parameter.
/// `request` is the [`request_digest`] of the request presenting it.
pub fn judge(record: Option<&RefreshRecord>, client_id: &str, request: &[u8], now: DateTime<Utc>) -> Verdict {
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
        let identical = record.client_id == client_id && record.spent_request.as_deref() == Some(request);
        return match (&record.successor_sealed, in_window && identical) {
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
    /// The token's record, with the token row locked and the family row
    /// locked against revocation until the transaction ends.
    fn lock_refresh_token(&mut self, token_hash: &[u8]) -> Result<Option<RefreshRecord>, StoreError>;
    /// In one statement: spends the token if it is still unspent, unexpired
    /// and `client_id`'s, and inserts the successor if, holding a share
    /// lock on the family row, the family is still live. Returns false when
    /// no successor was inserted (another request got there first, or the
    /// family was revoked): the caller then judges again under the lock.
    fn claim_and_rotate(
        &mut self,
        token_hash: &[u8],
        client_id: &str,
        spend: &Spend<'_>,
        successor: &NewRefreshToken,
    ) -> Result<bool, StoreError>;
    /// Marks the token spent and keeps the sealed successor until
    /// `grace_until`.
    fn mark_spent(&mut self, token_hash: &[u8], spend: &Spend<'_>) -> Result<(), StoreError>;
}

/// What spending a token records.
pub struct Spend<'a> {
    pub now: DateTime<Utc>,
    pub successor_sealed: &'a [u8],
    pub grace_until: DateTime<Utc>,
    /// The [`request_digest`] of the spending request.
    pub request: &'a [u8],
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
    /// The key of the KEK being retired, which may have sealed a pair on an
    /// instance not yet restarted; it only opens.
    pub previous_grace_key: Option<&'a [u8; 32]>,
    pub now: DateTime<Utc>,
}

/// The result, decided inside the transaction and reported after commit
/// (a revocation must commit even though the client gets an error).
pub enum RefreshOutcome {
    Issued(TokenResponse),
    Refused(OAuthError),
    /// A spent token was presented by anything but its identical request
    /// inside the window: the family is revoked (answer `invalid_grant`).
    ReuseDetected {
        family_id: Uuid,
        user_id: Uuid,
    },
}

/// The answer a detected reuse gets.
pub const REUSE_ERROR: OAuthError = OAuthError::InvalidGrant("the refresh token was already used");

pub fn refresh<S: RefreshStore>(
    request: &RefreshRequest<'_>,
    store: &mut S,
) -> Result<RefreshOutcome, StoreError> {
    let Some(presented) = request.params.get("refresh_token") else {
        return Ok(RefreshOutcome::Refused(OAuthError::InvalidRequest(
            "refresh_token is required",
        )));
    };
    let client_id = request.client.client_id.as_str();
    let digest = request_digest(client_id, request.params.get("scope"));
    let token_hash = crypto::token_hash(presented);
    let now = request.now;

    // Fast path, for the common case of an unspent token used once: read
    // without a lock, mint the successor, and spend-and-insert in a single
    // statement that only inserts if the token was still unspent and its
    // family still live. The loser of a race, and a rotation that lost to
    // a revocation, take the locked path below and are judged again.
    let record = store.read_refresh_token(&token_hash)?;
    if let (Some(record), Verdict::Rotate) = (&record, judge(record.as_ref(), client_id, &digest, now)) {
        match successor(request, record, &token_hash)? {
            Err(refusal) => return Ok(RefreshOutcome::Refused(refusal)),
            Ok(next) => {
                let spend = spend(request, &next, &digest);
                if store.claim_and_rotate(&token_hash, client_id, &spend, &next.row)? {
                    return Ok(RefreshOutcome::Issued(next.response));
                }
            }
        }
    }

    store.in_transaction(|tx| {
        let record = tx.lock_refresh_token(&token_hash)?;
        match (judge(record.as_ref(), client_id, &digest, now), record) {
            (Verdict::Reject(reason), _) => Ok(RefreshOutcome::Refused(OAuthError::InvalidGrant(reason))),
            (Verdict::Reuse, Some(record)) => {
                tx.revoke_family(record.family_id, RevocationReason::RefreshTokenReused, now)?;
                Ok(RefreshOutcome::ReuseDetected {
                    family_id: record.family_id,
                    user_id: record.user.id,
                })
            }
            (Verdict::Replay(sealed), _) => {
                let opened = match (
                    crypto::open(request.grace_key, &sealed, &token_hash),
                    request.previous_grace_key,
                ) {
                    (Ok(opened), _) => opened,
                    (Err(_), Some(previous)) => crypto::open(previous, &sealed, &token_hash)?,
                    (Err(e), None) => return Err(e.into()),
                };
                let sealed: Sealed = serde_json::from_slice(&opened)
                    .map_err(|e| StoreError::Crypto(format!("sealed successor: {e}")))?;
                let mut response = sealed.response;
                response.expires_in = (sealed.access_expires_at - now.timestamp()).max(0);
                Ok(RefreshOutcome::Issued(response))
            }
            (Verdict::Rotate, Some(record)) => {
                let next = match successor(request, &record, &token_hash)? {
                    Ok(next) => next,
                    Err(refusal) => return Ok(RefreshOutcome::Refused(refusal)),
                };
                tx.insert_refresh_token(&next.row)?;
                tx.mark_spent(&token_hash, &spend(request, &next, &digest))?;
                Ok(RefreshOutcome::Issued(next.response))
            }
            (Verdict::Reuse | Verdict::Rotate, None) => Ok(RefreshOutcome::Refused(
                OAuthError::InvalidGrant("the refresh token is invalid"),
            )),
        }
    })
}

fn spend<'a>(request: &RefreshRequest<'_>, next: &'a Successor, digest: &'a [u8]) -> Spend<'a> {
    Spend {
        now: request.now,
        successor_sealed: &next.sealed,
        grace_until: request.policy.grace_until(request.now),
        request: digest,
    }
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
) -> Result<Result<Successor, OAuthError>, StoreError> {
    let now = request.now;
    // RFC 6749 section 6: the scope of a refresh must not include anything
    // not originally granted; a name we do not know was never granted.
    let requested = match request.params.get("scope").map(strict_scope).transpose() {
        Ok(r) => r,
        Err(e) => return Ok(Err(e)),
    };
    let requested = requested.as_ref();
    if let Some(requested) = requested
        && !requested.is_subset(&record.family_scope)
    {
        return Ok(Err(OAuthError::InvalidScope(
            "a refresh may narrow the scope, never widen it",
        )));
    }
    // The user's roles, and the client's registration (`client update`),
    // may have changed since the grant; neither is widened by a refresh.
    let still_registered = record.family_scope.intersection(&request.client.scopes);
    // Without a `scope` parameter the refresh keeps the grant's scope,
    // `openid` included.
    let wanted = requested.unwrap_or(&still_registered);
    let granted = match scope::grant(Some(wanted), &still_registered, Some(&record.user.roles)) {
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
            sid: record.family_sid,
        },
        &granted,
        now,
    )?;
    // OIDC Core section 12.2: the same `sub` and `auth_time`, no `nonce`.
    let id_token = tokens::mint_id_token(
        request.signer,
        request.policy,
        request.client,
        &granted,
        &access,
        tokens::IdTokenContext {
            subject: record.user.id,
            sid: record.family_sid,
            auth_time: record.family_auth_time,
            nonce: None,
        },
        now,
    )?;
    let expires = request.policy.refresh_expiry(now, record.family_expires_at);
    let (raw, row) = tokens::mint_refresh_token(record.family_id, &request.client.client_id, now, expires)?;
    let mut response = TokenResponse::new(&access, Some(raw), &granted, now);
    response.id_token = id_token;
    let sealed = serde_json::to_vec(&Sealed {
        response: response.clone(),
        access_expires_at: access.expires_at.timestamp(),
    })
    .map_err(|e| StoreError::Crypto(e.to_string()))?;
    let sealed = crypto::seal(request.grace_key, &sealed, token_hash)?;
    Ok(Ok(Successor {
        response,
        row,
        sealed,
    }))
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
            spent_request: None,
            user: User {
                id: Uuid::nil(),
                username: "alice".into(),
                roles: crate::domain::Roles::parse(&["user"]).unwrap(),
            },
            family_scope: ScopeSet::all(),
            family_expires_at: t(5000),
            family_revoked: false,
            family_sid: None,
            family_auth_time: None,
        }
    }

    fn spent(grace_until: i64) -> RefreshRecord {
        RefreshRecord {
            used_at: Some(t(10)),
            successor_sealed: Some(vec![1, 2, 3]),
            grace_until: Some(t(grace_until)),
            spent_request: Some(digest("spa")),
            ..record()
        }
    }

    fn digest(client: &str) -> Vec<u8> {
        request_digest(client, None)
    }

    /// `judge` for a request without a scope parameter from `client`.
    fn verdict(record: Option<&RefreshRecord>, client: &str, now: DateTime<Utc>) -> Verdict {
        judge(record, client, &digest(client), now)
    }

    #[test]
    fn another_request_inside_the_window_is_reuse() {
        let other = request_digest("spa", Some("admin"));
        assert_eq!(judge(Some(&spent(12)), "spa", &other, t(11)), Verdict::Reuse);
    }

    #[test]
    fn the_request_digest_ignores_scope_order_and_spacing_but_not_absence() {
        assert_eq!(
            request_digest("spa", Some("profile notes:read")),
            request_digest("spa", Some(" notes:read  profile profile"))
        );
        assert_ne!(
            request_digest("spa", None),
            request_digest("spa", Some("profile"))
        );
        assert_ne!(request_digest("spa", None), request_digest("other", None));
    }

    #[test]
    fn unused_token_rotates() {
        assert_eq!(verdict(Some(&record()), "spa", t(20)), Verdict::Rotate);
    }

    #[test]
    fn unknown_token_is_rejected() {
        assert!(matches!(verdict(None, "spa", t(20)), Verdict::Reject(_)));
    }

    #[test]
    fn same_client_inside_the_window_gets_the_same_successor() {
        assert_eq!(
            verdict(Some(&spent(12)), "spa", t(11)),
            Verdict::Replay(vec![1, 2, 3])
        );
    }

    #[test]
    fn request_that_arrived_before_the_spend_counts_from_the_spend() {
        assert_eq!(
            verdict(Some(&spent(12)), "spa", t(9)),
            Verdict::Replay(vec![1, 2, 3])
        );
        // With no window (grace 0) it is a reuse, never a replay.
        assert_eq!(verdict(Some(&spent(10)), "spa", t(9)), Verdict::Reuse);
    }

    #[test]
    fn reuse_after_the_window_revokes() {
        assert_eq!(verdict(Some(&spent(12)), "spa", t(12)), Verdict::Reuse);
        assert_eq!(verdict(Some(&spent(12)), "spa", t(500)), Verdict::Reuse);
    }

    #[test]
    fn another_client_inside_the_window_revokes() {
        assert_eq!(verdict(Some(&spent(12)), "other", t(11)), Verdict::Reuse);
    }

    #[test]
    fn spent_token_without_a_sealed_successor_revokes() {
        let r = RefreshRecord {
            successor_sealed: None,
            ..spent(12)
        };
        assert_eq!(verdict(Some(&r), "spa", t(11)), Verdict::Reuse);
    }

    #[test]
    fn token_of_another_client_is_rejected_without_revocation() {
        assert!(matches!(
            verdict(Some(&record()), "other", t(20)),
            Verdict::Reject(_)
        ));
    }

    #[test]
    fn idle_and_absolute_expiry_are_enforced() {
        assert!(matches!(
            verdict(Some(&record()), "spa", t(1000)),
            Verdict::Reject(_)
        ));
        let r = RefreshRecord {
            family_expires_at: t(50),
            ..record()
        };
        assert!(matches!(verdict(Some(&r), "spa", t(50)), Verdict::Reject(_)));
        assert_eq!(verdict(Some(&r), "spa", t(49)), Verdict::Rotate);
    }

    #[test]
    fn revoked_family_is_rejected() {
        let r = RefreshRecord {
            family_revoked: true,
            ..record()
        };
        assert!(matches!(verdict(Some(&r), "spa", t(20)), Verdict::Reject(_)));
    }
}
