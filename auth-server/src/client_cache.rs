//! A short-lived in-memory cache of registered clients. Client
//! authentication is on the hottest path (client_credentials); with the
//! cache a token request needs no database round trip. Entries expire after
//! `TTL`, so a change made by another process (the CLI, another instance)
//! is seen within that time. Nothing in the server itself changes clients
//! today; code that does must drop the entry (`ClientCache::invalidate`).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use crate::model::Client;
use crate::protocol::StoreError;
use crate::protocol::client_auth::ClientDirectory;

const TTL: Duration = Duration::from_secs(30);
const CAPACITY: usize = 10_000;

#[derive(Default)]
pub struct ClientCache {
    entries: RwLock<HashMap<String, (Arc<Client>, Instant)>>,
}

impl std::fmt::Debug for ClientCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientCache")
    }
}

impl ClientCache {
    /// The cached client if it is fresh.
    pub fn get(&self, client_id: &str) -> Option<Arc<Client>> {
        let entries = match self.entries.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries
            .get(client_id)
            .filter(|(_, loaded)| loaded.elapsed() < TTL)
            .map(|(client, _)| Arc::clone(client))
    }

    pub fn put(&self, client: Client) -> Arc<Client> {
        let client = Arc::new(client);
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        if entries.len() >= CAPACITY {
            entries.retain(|_, (_, loaded)| loaded.elapsed() < TTL);
            if entries.len() >= CAPACITY {
                entries.clear();
            }
        }
        entries.insert(client.client_id.clone(), (Arc::clone(&client), Instant::now()));
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
