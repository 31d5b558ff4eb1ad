//! A bounded cache of tokens already verified, keyed by the SHA-256 of the
//! token and kept no longer than the token's `exp`. ES256 verification
//! costs ~100 µs; a hit costs a hash and a map lookup.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use oauth_common::jwt;

use super::verify::Claims;

pub struct VerifiedCache {
    entries: RwLock<HashMap<[u8; 32], Arc<Claims>>>,
    capacity: usize,
}

impl std::fmt::Debug for VerifiedCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedCache")
    }
}

impl VerifiedCache {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    pub fn key(token: &str) -> [u8; 32] {
        openssl::sha::sha256(token.as_bytes())
    }

    /// The claims if the token was verified and has not expired (`now`
    /// in Unix seconds; `leeway` as the verifier applies it).
    pub fn get(&self, key: &[u8; 32], now: i64, leeway: Duration) -> Option<Arc<Claims>> {
        let entries = match self.entries.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries
            .get(key)
            .filter(|c| !jwt::expired(c.exp, now, leeway))
            .cloned()
    }

    pub fn insert(&self, key: [u8; 32], claims: Arc<Claims>, now: i64) {
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, c| c.exp > now);
            if entries.len() >= self.capacity {
                // Still full of live tokens: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(key, claims);
    }

    pub fn len(&self) -> usize {
        match self.entries.read() {
            Ok(e) => e.len(),
            Err(poisoned) => poisoned.into_inner().len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(exp: i64) -> Arc<Claims> {
        Arc::new(Claims {
            sub: "u".into(),
            client_id: "c".into(),
            scope: Default::default(),
            roles: vec![],
            username: None,
            jti: "j".into(),
            exp,
            iat: 0,
            kid: "k1".into(),
        })
    }

    #[test]
    fn entries_are_not_served_after_expiry() {
        let cache = VerifiedCache::new(10);
        let key = VerifiedCache::key("t");
        cache.insert(key, claims(100), 0);
        assert!(cache.get(&key, 99, Duration::ZERO).is_some());
        assert!(cache.get(&key, 100, Duration::ZERO).is_none());
        assert!(cache.get(&key, 129, Duration::from_secs(30)).is_some());
        assert!(cache.get(&key, 130, Duration::from_secs(30)).is_none());
    }

    #[test]
    fn size_is_bounded() {
        let cache = VerifiedCache::new(3);
        for i in 0..10 {
            cache.insert(VerifiedCache::key(&i.to_string()), claims(1000), 0);
            assert!(cache.len() <= 3);
        }
    }
}
