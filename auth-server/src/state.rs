//! What every request handler can reach.

use std::sync::Arc;

use oauth_common::Clock;
use oauth_common::db::PgPool;
use oauth_common::metrics::Metrics;

use crate::client_cache::ClientCache;
use crate::client_cache::CorsOrigins;
use crate::config::Settings;
use crate::crypto::ServerKeys;
use crate::domain::PasswordHash;
use crate::hasher::PasswordVerifier;
use crate::keys::{KeyManager, VerifiedTokens};
use crate::limits::Limits;
use crate::protocol::StoreError;
use crate::protocol::tokens::TokenPolicy;

/// Verified access tokens kept for introspection.
const VERIFIED_CAPACITY: usize = 10_000;

/// Sign-ins that may wait for a password thread; more get "busy".
const VERIFY_QUEUE: usize = 32;

pub struct AppState {
    /// The one source of time for every request.
    pub clock: Clock,
    pub settings: Settings,
    pub pool: PgPool,
    pub keys: Arc<KeyManager>,
    pub server_keys: ServerKeys,
    pub metrics: Arc<Metrics>,
    pub clients: ClientCache,
    pub cors: CorsOrigins,
    /// Verified against when the username is unknown, so a failed login
    /// takes as long whether or not the user exists.
    pub dummy_hash: PasswordHash,
    /// Checks passwords on its own threads, with bounded concurrency.
    pub verifier: PasswordVerifier,
    /// Failure limits per client address and per client.
    pub limits: Limits,
    /// RFC 8414 metadata, computed once.
    pub metadata: String,
    pub cookies: CookieNames,
    pub policy: TokenPolicy,
    /// Access tokens verified recently (introspection).
    pub verified: VerifiedTokens,
    /// Wakes the back-channel logout delivery when this instance queued
    /// Logout Tokens (other instances' are found by polling).
    pub backchannel_wakeup: tokio::sync::Notify,
    /// Wakes the revocation feed's long polls when this instance recorded
    /// an event (others' are found by polling the table).
    pub events_wakeup: tokio::sync::Notify,
    /// The revocation feed's SETs, signed once per key.
    pub signed_events: crate::keys::SignedCache,
}

impl AppState {
    pub fn new(
        settings: Settings,
        pool: PgPool,
        keys: Arc<KeyManager>,
        server_keys: ServerKeys,
        metrics: Arc<Metrics>,
    ) -> Result<Self, StoreError> {
        let dummy_hash = dummy_hash()?;
        let limits = Limits::new(&settings.limits).map_err(StoreError::Internal)?;
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get()).min(8);
        let verifier = PasswordVerifier::start(threads, VERIFY_QUEUE)
            .map_err(|e| StoreError::Internal(format!("cannot start password threads: {e}")))?;
        let metadata = crate::protocol::metadata::metadata_document(settings.issuer.as_str()).to_string();
        let policy = TokenPolicy {
            issuer: settings.issuer.as_str().to_owned(),
            access_ttl: settings.access_token_ttl,
            refresh_ttl: settings.refresh_token_ttl,
            family_ttl: settings.refresh_family_ttl,
            refresh_grace: settings.refresh_grace,
        };
        let clock = Clock::system();
        Ok(Self {
            cookies: cookie_names(settings.issuer.is_https()),
            settings,
            pool,
            keys,
            server_keys,
            metrics,
            clients: ClientCache::new(clock.clone()),
            cors: CorsOrigins::new(clock.clone()),
            clock,
            dummy_hash,
            verifier,
            limits,
            metadata,
            policy,
            verified: VerifiedTokens::new(VERIFIED_CAPACITY),
            backchannel_wakeup: tokio::sync::Notify::new(),
            events_wakeup: tokio::sync::Notify::new(),
            signed_events: crate::keys::SignedCache::default(),
        })
    }
}

fn dummy_hash() -> Result<PasswordHash, StoreError> {
    let secret = crate::crypto::random_token()?;
    let username = crate::domain::Username::parse("dummy").map_err(StoreError::Internal)?;
    let password = crate::domain::Password::parse(&secret, &username).map_err(StoreError::Internal)?;
    PasswordHash::create(&password).map_err(StoreError::Internal)
}

/// Cookie names for this deployment.
#[derive(Debug, Clone, Copy)]
pub struct CookieNames {
    pub session: &'static str,
    pub login: &'static str,
    /// Marks a browser that signed in to an account before.
    pub device: &'static str,
}

pub fn cookie_names(https: bool) -> CookieNames {
    if https {
        CookieNames {
            session: "__Host-session",
            login: "__Host-login",
            device: "__Host-device",
        }
    } else {
        CookieNames {
            session: "session",
            login: "login",
            device: "device",
        }
    }
}
