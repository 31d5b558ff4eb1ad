//! A bounded cache of tokens already verified, keyed by the SHA-256 of the
//! token and kept no longer than the token's `exp` (plus the leeway the
//! verifier applies). ES256 verification costs ~100 µs; a hit costs a hash
//! and a map lookup. Used by the resource server's validator and by the
//! auth-server's introspection; a hit still has every time claim and, at
//! introspection, revocation checked by the caller.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::jwt;

/// What the cache needs of a verified token: when it expires and which
/// key signed it (so a hit for a key no longer trusted can be refused).
pub trait Verified {
    /// `exp`, in Unix seconds.
    fn exp(&self) -> i64;
    fn kid(&self) -> &str;
}

pub struct VerifiedCache<T> {
    entries: RwLock<HashMap<[u8; 32], Arc<T>>>,
    capacity: usize,
}

impl<T> std::fmt::Debug for VerifiedCache<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("VerifiedCache")
    }
}

impl<T: Verified> VerifiedCache<T> {
    pub fn new(capacity: usize) -> Self {
        Self {
            entries: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    pub fn key(token: &str) -> [u8; 32] {
        openssl::sha::sha256(token.as_bytes())
    }

    /// The verified token if it has not expired (`now` in Unix seconds;
    /// `leeway` as the verifier applies it).
    pub fn get(&self, key: &[u8; 32], now: i64, leeway: Duration) -> Option<Arc<T>> {
        let entries = match self.entries.read() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        entries
            .get(key)
            .filter(|c| !jwt::expired(c.exp(), now, leeway))
            .cloned()
    }

    pub fn insert(&self, key: [u8; 32], verified: Arc<T>, now: i64) {
        let mut entries = match self.entries.write() {
            Ok(e) => e,
            Err(poisoned) => poisoned.into_inner(),
        };
        if entries.len() >= self.capacity {
            entries.retain(|_, c| c.exp() > now);
            if entries.len() >= self.capacity {
                // Still full of live tokens: start over rather than grow.
                entries.clear();
            }
        }
        entries.insert(key, verified);
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

    struct Token(i64);

    impl Verified for Token {
        fn exp(&self) -> i64 {
            self.0
        }
        fn kid(&self) -> &str {
            "k1"
        }
    }

    #[test]
    fn entries_are_not_served_after_expiry() {
        let cache = VerifiedCache::new(10);
        let key = VerifiedCache::<Token>::key("t");
        cache.insert(key, Arc::new(Token(100)), 0);
        assert!(cache.get(&key, 99, Duration::ZERO).is_some());
        assert!(cache.get(&key, 100, Duration::ZERO).is_none());
        assert!(cache.get(&key, 129, Duration::from_secs(30)).is_some());
        assert!(cache.get(&key, 130, Duration::from_secs(30)).is_none());
    }

    #[test]
    fn size_is_bounded() {
        let cache = VerifiedCache::new(3);
        for i in 0..10 {
            cache.insert(
                VerifiedCache::<Token>::key(&i.to_string()),
                Arc::new(Token(1000)),
                0,
            );
            assert!(cache.len() <= 3);
        }
    }
}
