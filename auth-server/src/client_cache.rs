//! What this instance keeps in memory about registered clients: a
//! short-lived cache of the clients themselves, and the CORS allow-list
//! (the origins of public clients' redirect URIs, nobody else's).
//!
//! The client cache is short-lived. Client
//! authentication is on the hottest path (client_credentials); with the
//! cache a token request needs no database round trip. Entries expire after
//! `TTL` (5 s), so a change made by another process (the CLI, another
//! instance) is seen within that time. Nothing in the server itself changes clients
//! today; code that does must drop the entry (`ClientCache::invalidate`).
//! A secret that fails against a cached entry is checked against the
//! database before it is refused, so a rotated secret works at once.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use oauth_common::Clock;
use oauth_common::db::PgPool;

use crate::domain::RedirectUri;
use crate::model::Client;
use crate::protocol::client_auth::{self, ClientDirectory, Credentials};
use crate::protocol::{OAuthError, StoreError};
use crate::storage;

/// How long a cached client is believed: the longest a secret replaced on
/// another instance (or a deleted client) keeps working here.
const TTL: Duration = Duration::from_secs(5);
/// How old a cached client may be to authenticate while the database
/// cannot be reached.
const STALE_IF_ERROR: Duration = Duration::from_secs(30);
const CAPACITY: usize = 10_000;

pub struct ClientCache {
    entries: RwLock<HashMap<String, (Arc<Client>, Instant)>>,
    clock: Clock,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCache")
    }
}

impl ClientCache {
    pub fn new(clock: Clock) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            clock,
        }
    }

    /// The client from the cache, or from the database on a miss (filling
    /// the cache). A hit costs no thread hop and no round trip.
    pub async fn load(&self, pool: &PgPool, client_id: &str) -> Result<Option<Arc<Client>>, StoreError> {
        if let Some(client) = self.get(client_id) {
            return Ok(Some(client));
        }
        let id = client_id.to_owned();
        let found = storage::run(pool, move |store| store.client(&id)).await?;
        Ok(found.map(|c| self.put(c)))
    }

    /// The client `credentials` authenticate, or the refusal. A cached
    /// entry only ever accepts the current secret; anything else (a wrong
    /// secret, a secret rotated by the CLI or on another instance, the old
    /// secret during a rotation's overlap) is checked against the database.
    /// So a new secret works at once, an old one stops the moment its
    /// overlap is ended, and a secret replaced with `--overlap 0` stops
    /// within `TTL`.
    pub async fn authenticate(
        &self,
        pool: &PgPool,
        credentials: &Credentials,
        now: DateTime<Utc>,
    ) -> Result<Arc<Client>, OAuthError> {
        let cached = self.get(credentials.client_id());
        if let Some(client) = &cached
            && client_auth::authenticate_with(credentials, Some(client), None).is_ok()
        {
            return Ok(Arc::clone(client));
        }
        let id = credentials.client_id().to_owned();
        let client = match storage::run(pool, move |store| store.client(&id)).await {
            Ok(Some(found)) => Some(self.put(found)),
            Ok(None) => {
                // Deleted: not even an outage may bring it back.
                self.invalidate(credentials.client_id());
                None
            }
            // The database is away (so nobody can change the client
            // either): a registration cached in the last `STALE_IF_ERROR`
            // decides, so the hot path keeps serving and a wrong secret is
            // still `invalid_client`.
            Err(e) => match cached.or_else(|| self.get_within(credentials.client_id(), STALE_IF_ERROR)) {
                Some(client) => Some(client),
                None => return Err(e.into()),
            },
        };
        client_auth::authenticate(credentials, client.as_deref(), now)?;
        client.ok_or(OAuthError::InvalidClient {
            used_basic: credentials.used_basic(),
        })
    }

    /// The cached client if it is fresh.
    pub fn get(&self, client_id: &str) -> Option<Arc<Client>> {
        self.get_within(client_id, TTL)
    }

    /// The cached client if it was loaded less than `age` ago.
    fn get_within(&self, client_id: &str, age: Duration) -> Option<Arc<Client>> {
        let now = self.clock.instant();
        let entries = match self.entries.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries
            .get(client_id)
            .filter(|(_, loaded)| now.saturating_duration_since(*loaded) < age)
            .map(|(client, _)| Arc::clone(client))
    }

    pub fn put(&self, client: Client) -> Arc<Client> {
        let now = self.clock.instant();
        let client = Arc::new(client);
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, loaded)| now.saturating_duration_since(*loaded) < TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(client.client_id.clone(), (Arc::clone(&client), now));
        client
    }

    pub fn invalidate(&self, client_id: &str) {
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries.remove(client_id);
    }
}

/// Looks in the cache first, then in `store` (filling the cache).
pub struct CachedClients<'a, S: ClientDirectory + ?Sized> {
    pub cache: &'a ClientCache,
    pub store: &'a mut S,
}

impl<S: ClientDirectory + ?Sized> ClientDirectory for CachedClients<'_, S> {
    fn client(&mut self, client_id: &str) -> Result<Option<Client>, StoreError> {
        if let Some(client) = self.cache.get(client_id) {
            return Ok(Some((*client).clone()));
        }
        let found = self.store.client(client_id)?;
        if let Some(client) = &found {
            self.cache.put(client.clone());
        }
        Ok(found)
    }
}
/// An origin we have not seen triggers a reload at most this often.
const RELOAD_ON_MISS_AFTER: Duration = Duration::from_secs(5);

pub struct CorsOrigins {
    inner: RwLock<(HashSet<String>, Option<Instant>)>,
    clock: Clock,
}

impl CorsOrigins {
    pub fn new(clock: Clock) -> Self {
        Self {
            inner: RwLock::new((HashSet::new(), None)),
            clock,
        }
    }

    fn contains(&self, origin: &str) -> bool {
        match self.inner.read() {
            Ok(guard) => guard.0.contains(origin),
            Err(poisoned) => poisoned.into_inner().0.contains(origin),
        }
    }

    /// Claims the right to reload now: true for at most one caller per
    /// `RELOAD_ON_MISS_AFTER`, whether or not its reload then succeeds, so
    /// made-up origins (or a database outage) cannot pile up reloads.
    fn claim_reload(&self) -> bool {
        let mut guard = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let now = self.clock.instant();
        let due = guard
            .1
            .is_none_or(|at| now.saturating_duration_since(at) >= RELOAD_ON_MISS_AFTER);
        if due {
            guard.1 = Some(now);
        }
        due
    }

    /// Replaces the allow-list with the origins of these redirect URIs.
    pub fn replace(&self, redirect_uris: &[String]) {
        let origins = redirect_uris
            .iter()
            .filter_map(|u| RedirectUri::parse(u).ok())
            .filter_map(|u| u.origin())
            .collect();
        let now = Some(self.clock.instant());
        match self.inner.write() {
            Ok(mut guard) => *guard = (origins, now),
            Err(poisoned) => *poisoned.into_inner() = (origins, now),
        }
    }
}

impl CorsOrigins {
    /// Reloads the allow-list from the database.
    pub async fn reload(&self, pool: &PgPool) -> Result<(), StoreError> {
        let uris = storage::run(pool, |store| storage::clients::public_redirect_uris(store.conn)).await?;
        self.replace(&uris);
        Ok(())
    }

    /// Whether a browser at `origin` may call the CORS-enabled endpoints.
    pub async fn allowed(&self, pool: &PgPool, origin: &str) -> bool {
        if self.contains(origin) {
            return true;
        }
        if self.claim_reload() {
            if let Err(e) = self.reload(pool).await {
                tracing::warn!(error = %e, "cannot reload CORS origins");
            }
            return self.contains(origin);
        }
        false
    }
}
