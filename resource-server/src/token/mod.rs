//! Offline access-token validation, usable as a library by any actix
//! service: a JWKS cache that refreshes itself ([`jwks`]), RFC 9068 / RFC
//! 8725 verification ([`verify`]), a cache of verified tokens ([`cache`]),
//! and an extractor with scope and role requirements ([`extract`]).
//!
//! ```ignore
//! struct ReadNotes;
//! impl Requirement for ReadNotes { const SCOPE: &'static str = "notes:read"; }
//! async fn list(auth: Authorized<ReadNotes>) -> HttpResponse { ... auth.claims.sub ... }
//! ```

pub mod cache;
pub mod extract;
pub mod feed;
pub mod jwks;
pub mod revocations;
pub mod verify;

use std::sync::Arc;
use std::time::Duration;

use oauth_common::Clock;
use oauth_common::db;

pub use extract::{AuthError, Authorized, Challenge, Requirement};
pub use verify::{Claims, Policy};

use self::cache::VerifiedCache;
use self::jwks::{JwksCache, Lookup};
use self::revocations::Revocations;
use self::verify::VerifyError;

/// Why a request is not authorized, before it becomes an HTTP answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// No bearer token (RFC 6750 section 3.1: no error code).
    Missing,
    /// The token is not valid (`invalid_token`).
    Invalid(&'static str),
    /// We have no keys yet: 503, so clients do not log their users out
    /// because the issuer was briefly unreachable.
    Unavailable,
    /// Valid token without the scope (`insufficient_scope`, 403).
    InsufficientScope(&'static str),
    /// Valid token and scope, but the user lacks the role (403).
    MissingRole { scope: &'static str, role: &'static str },
}

/// Everything needed to check a bearer token.
pub struct TokenValidator {
    pub jwks: Arc<JwksCache>,
    pub policy: Policy,
    /// What the issuer's revocation feed said (empty when it is off).
    pub revocations: Revocations,
    cache: VerifiedCache<Claims>,
    clock: Clock,
}

impl std::fmt::Debug for TokenValidator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenValidator")
            .field("policy", &self.policy)
            .finish_non_exhaustive()
    }
}

/// Verified tokens kept in memory at most.
const CACHE_CAPACITY: usize = 10_000;

impl TokenValidator {
    pub fn new(jwks: Arc<JwksCache>, policy: Policy) -> Self {
        // A revocation matters until every token issued before it has
        // expired: at most the longest lifetime accepted, plus the leeway.
        let retention = policy.max_lifetime + policy.leeway;
        Self {
            jwks,
            revocations: Revocations::new(
                i64::try_from(retention.as_secs()).unwrap_or(i64::MAX),
                i64::try_from(policy.leeway.as_secs()).unwrap_or(i64::MAX),
            ),
            policy,
            cache: VerifiedCache::new(CACHE_CAPACITY),
            clock: Clock::system(),
        }
    }

    /// The validator's time, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }

    /// The same validator judging token times by `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    fn check(&self, token: &str) -> Result<Claims, VerifyError> {
        let keys = self.jwks.keys().ok_or(VerifyError::Invalid("no keys"))?;
        verify::verify(token, &keys, &self.policy, self.clock.now())
    }

    /// Validates a bearer token. A `kid` we do not know triggers at most one
    /// JWKS refetch per interval (on the blocking pool), then the token is
    /// checked again or refused.
    pub async fn validate(&self, token: &str) -> Result<Arc<Claims>, Failure> {
        let claims = self.verified(token).await?;
        if self.revocations.refuses(&claims) {
            return Err(Failure::Invalid("the token has been revoked"));
        }
        Ok(claims)
    }

    /// The token's claims if it is valid, revocation aside.
    async fn verified(&self, token: &str) -> Result<Arc<Claims>, Failure> {
        let key = VerifiedCache::<Claims>::key(token);
        let now = self.clock.now().timestamp();
        if let Some(claims) = self.cache.get(&key, now, self.policy.leeway)
            && self.jwks.keys().is_some_and(|k| k.contains(&claims.kid))
        {
            return Ok(claims);
        }
        if self.jwks.keys().is_none() {
            return Err(Failure::Unavailable);
        }
        let verified = match self.check(token) {
            Err(VerifyError::UnknownKey(kid)) => {
                let lookup = self.lookup_unknown(kid).await;
                match lookup {
                    Lookup::Known => self.check(token),
                    Lookup::Unknown => return Err(Failure::Invalid("the token's signing key is unknown")),
                    // A key rotated while the issuer is down: the token may
                    // be valid, so do not tell the client to drop it.
                    Lookup::IssuerUnreachable | Lookup::InProgress => return Err(Failure::Unavailable),
                }
            }
            other => other,
        };
        match verified {
            Ok(claims) => {
                let claims = Arc::new(claims);
                self.cache.insert(key, Arc::clone(&claims), now);
                Ok(claims)
            }
            Err(VerifyError::UnknownKey(_)) => Err(Failure::Invalid("the token's signing key is unknown")),
            Err(VerifyError::Invalid(reason)) => Err(Failure::Invalid(reason)),
        }
    }

    /// Looks for an unknown `kid`: one refetch on the blocking pool, or, if
    /// a fetch is already running, waiting for it without a thread.
    async fn lookup_unknown(&self, kid: String) -> Lookup {
        let jwks = Arc::clone(&self.jwks);
        let wanted = kid.clone();
        let lookup = db::run_blocking(move || jwks.refresh_for_unknown(&wanted))
            .await
            .unwrap_or(Lookup::IssuerUnreachable);
        if lookup != Lookup::InProgress {
            return lookup;
        }
        // A fetch has a 5 s timeout; wait a little longer than that.
        for _ in 0..300 {
            actix_web::rt::time::sleep(Duration::from_millis(20)).await;
            if !self.jwks.is_fetching() {
                return self.jwks.settled(&kid);
            }
        }
        Lookup::InProgress
    }

    /// Retries the first JWKS fetch with backoff until it succeeds, then
    /// refreshes on the served max-age (never returns; run it as a task).
    pub async fn keep_keys_fresh(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(250);
        loop {
            let jwks = Arc::clone(&self.jwks);
            match db::run_blocking(move || jwks.refresh()).await {
                Ok(Ok(next)) => {
                    backoff = Duration::from_millis(250);
                    actix_web::rt::time::sleep(next).await;
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot fetch the issuer's keys");
                    actix_web::rt::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
                Err(e) => {
                    tracing::error!(error = %e, "JWKS refresh task failed");
                    actix_web::rt::time::sleep(backoff).await;
                }
            }
        }
    }
}
