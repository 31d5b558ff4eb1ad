//! The issuer's keys, in memory.
//!
//! `jwks_uri` is discovered from the issuer's RFC 8414 metadata (whose
//! `issuer` must match, section 3.3). The key set is fetched at start-up
//! (retrying with backoff while the issuer is down), refreshed in the
//! background on the JWKS response's `Cache-Control: max-age`, and refetched
//! when a token names a `kid` we do not know, at most once per
//! `min_refetch_interval` (10 s) however many unknown `kid`s arrive.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use oauth_common::Clock;
use serde_json::Value;

use super::verify::KeySet;

/// Where key sets come from (HTTP in production, a fake in tests).
pub trait JwksSource: Send + Sync {
    fn fetch(&self) -> Result<Fetched, String>;
}

/// A fetched JWKS and how long it may be cached.
#[derive(Debug, Clone)]
pub struct Fetched {
    pub document: Value,
    pub max_age: Option<Duration>,
}

pub struct JwksCache {
    current: RwLock<Option<Arc<KeySet>>>,
    /// When a token's unknown `kid` last caused a fetch. Scheduled
    /// refreshes do not set it: a key published just after one must not be
    /// refused for the rest of the interval.
    last_attempt: Mutex<Option<Instant>>,
    /// Set while a fetch runs: one fetch at a time, and callers who find one
    /// running wait for it without holding a thread (see [`Lookup::InProgress`]).
    fetching: AtomicBool,
    source: Box<dyn JwksSource>,
    min_refetch_interval: Duration,
    fetches: AtomicU64,
    /// Whether the most recent fetch (of any kind) failed.
    last_fetch_failed: AtomicBool,
    clock: Clock,
}

/// What a refetch for an unknown `kid` found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    /// The key is known (now).
    Known,
    /// The issuer answered and does not have it.
    Unknown,
    /// The issuer cannot be reached: we cannot tell whether the key exists.
    IssuerUnreachable,
    /// Another fetch is running; wait for it ([`JwksCache::is_fetching`])
    /// and look again.
    InProgress,
}

impl std::fmt::Debug for JwksCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwksCache")
            .field("fetches", &self.fetches.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Cache lifetime when the server sends none, and the bounds we apply.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(300);
const MIN_MAX_AGE: Duration = Duration::from_secs(10);
const MAX_MAX_AGE: Duration = Duration::from_secs(3600);

impl JwksCache {
    pub fn new(source: Box<dyn JwksSource>, min_refetch_interval: Duration) -> Self {
        Self {
            current: RwLock::new(None),
            last_attempt: Mutex::new(None),
            fetching: AtomicBool::new(false),
            source,
            min_refetch_interval,
            fetches: AtomicU64::new(0),
            last_fetch_failed: AtomicBool::new(false),
            clock: Clock::system(),
        }
    }

    /// The same cache timing its refetch interval on `clock`.
    pub fn with_clock(mut self, clock: Clock) -> Self {
        self.clock = clock;
        self
    }

    /// The current keys, or `None` before the first successful fetch.
    pub fn keys(&self) -> Option<Arc<KeySet>> {
        match self.current.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// How many fetches were attempted (for tests and metrics).
    pub fn fetch_count(&self) -> u64 {
        self.fetches.load(Ordering::Relaxed)
    }

    /// Fetches unless a fetch is already running (then `None`).
    fn fetch_exclusive(&self) -> Option<Result<Duration, String>> {
        if self
            .fetching
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            return None;
        }
        self.fetches.fetch_add(1, Ordering::Relaxed);
        let result = self.fetch_and_store();
        self.last_fetch_failed.store(result.is_err(), Ordering::Relaxed);
        self.fetching.store(false, Ordering::Release);
        Some(result)
    }

    /// Whether a fetch is running right now.
    pub fn is_fetching(&self) -> bool {
        self.fetching.load(Ordering::Acquire)
    }

    /// Whether the latest fetch failed (the issuer could not be reached).
    pub fn last_fetch_failed(&self) -> bool {
        self.last_fetch_failed.load(Ordering::Relaxed)
    }

    fn fetch_and_store(&self) -> Result<Duration, String> {
        let fetched = self.source.fetch()?;
        let keys = KeySet::from_jwks(&fetched.document);
        if keys.is_empty() {
            return Err("the JWKS holds no usable signing key".into());
        }
        let count = keys.len();
        match self.current.write() {
            Ok(mut guard) => *guard = Some(Arc::new(keys)),
            Err(poisoned) => *poisoned.into_inner() = Some(Arc::new(keys)),
        }
        tracing::debug!(keys = count, "JWKS loaded");
        Ok(fetched
            .max_age
            .unwrap_or(DEFAULT_MAX_AGE)
            .clamp(MIN_MAX_AGE, MAX_MAX_AGE))
    }

    /// Fetches now (blocking). Returns how long to wait before the next
    /// scheduled refresh (soon again if another fetch was running).
    pub fn refresh(&self) -> Result<Duration, String> {
        self.fetch_exclusive().unwrap_or(Ok(Duration::from_secs(1)))
    }

    /// Called when a token names `kid` and we do not know it (blocking, but
    /// never waiting for another caller's fetch). Fetches unless a fetch
    /// for an unknown key happened within the minimum interval. Says whether
    /// `kid` is known afterwards, that the issuer could not be asked (then
    /// the token may well be valid, and the caller should not call it
    /// invalid), or that a fetch is running that the caller should wait
    /// for.
    pub fn refresh_for_unknown(&self, kid: &str) -> Lookup {
        if self.keys().is_some_and(|k| k.contains(kid)) {
            return Lookup::Known;
        }
        let due = {
            let mut last = match self.last_attempt.lock() {
                Ok(g) => g,
                Err(poisoned) => poisoned.into_inner(),
            };
            let now = self.clock.instant();
            let due = last.is_none_or(|at| now.saturating_duration_since(at) >= self.min_refetch_interval);
            if due {
                *last = Some(now);
            }
            due
        };
        if due {
            match self.fetch_exclusive() {
                None => return Lookup::InProgress,
                Some(Err(e)) => tracing::warn!(error = %e, "JWKS refetch for an unknown key failed"),
                Some(Ok(_)) => {}
            }
        } else if self.is_fetching() {
            return Lookup::InProgress;
        }
        self.settled(kid)
    }

    /// What is known about `kid` once no fetch is running.
    pub fn settled(&self, kid: &str) -> Lookup {
        if self.keys().is_some_and(|k| k.contains(kid)) {
            Lookup::Known
        } else if self.last_fetch_failed() {
            Lookup::IssuerUnreachable
        } else {
            Lookup::Unknown
        }
    }
}

/// Fetches the JWKS over HTTP(S), discovering `jwks_uri` from the issuer's
/// metadata.
pub struct HttpJwksSource {
    issuer: String,
    agent: ureq::Agent,
    jwks_uri: Mutex<Option<String>>,
}

impl HttpJwksSource {
    pub fn new(issuer: &str) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(5)))
            .tls_config(tls)
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        Self {
            issuer: issuer.to_owned(),
            agent,
            jwks_uri: Mutex::new(None),
        }
    }

    fn get_json(&self, url: &str) -> Result<(Value, Option<Duration>), String> {
        let mut response = self
            .agent
            .get(url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if response.status().as_u16() != 200 {
            return Err(format!("GET {url}: status {}", response.status().as_u16()));
        }
        let max_age = response
            .headers()
            .get("cache-control")
            .and_then(|v| v.to_str().ok())
            .and_then(parse_max_age);
        let body = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_to_string()
            .map_err(|e| format!("GET {url}: {e}"))?;
        let json = serde_json::from_str(&body).map_err(|e| format!("GET {url}: not JSON: {e}"))?;
        Ok((json, max_age))
    }

    fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/oauth-authorization-server",
            self.issuer.trim_end_matches('/')
        );
        let (metadata, _) = self.get_json(&url)?;
        if metadata.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("the issuer's metadata names a different issuer".into());
        }
        let jwks_uri = metadata
            .get("jwks_uri")
            .and_then(Value::as_str)
            .ok_or("the issuer's metadata has no jwks_uri")?;
        oauth_common::config::check_public_url("jwks_uri", jwks_uri).map_err(|e| e.0)?;
        Ok(jwks_uri.to_owned())
    }
}

impl JwksSource for HttpJwksSource {
    fn fetch(&self) -> Result<Fetched, String> {
        let known = match self.jwks_uri.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let uri = match known {
            Some(uri) => uri,
            None => {
                let uri = self.discover()?;
                if let Ok(mut g) = self.jwks_uri.lock() {
                    *g = Some(uri.clone());
                }
                uri
            }
        };
        match self.get_json(&uri) {
            Ok((document, max_age)) => Ok(Fetched { document, max_age }),
            Err(e) => {
                // Discover again next time: the metadata may have changed.
                if let Ok(mut g) = self.jwks_uri.lock() {
                    *g = None;
                }
                Err(e)
            }
        }
    }
}

/// `max-age` from a `Cache-Control` value.
pub fn parse_max_age(value: &str) -> Option<Duration> {
    value.split(',').find_map(|directive| {
        let (name, v) = directive.trim().split_once('=')?;
        if name.trim().eq_ignore_ascii_case("max-age") {
            v.trim().trim_matches('"').parse().ok().map(Duration::from_secs)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use josekit::jwk::KeyPair as _;
    use josekit::jws::ES256;

    use super::*;

    fn jwk(kid: &str) -> Value {
        let mut jwk = ES256.generate_key_pair().unwrap().to_jwk_public_key();
        jwk.set_key_id(kid);
        jwk.set_algorithm("ES256");
        Value::Object(jwk.into())
    }

    /// Serves whatever keys the test put in `keys`, counting fetches.
    struct FakeSource {
        keys: Arc<Mutex<Vec<Value>>>,
        fetches: Arc<AtomicUsize>,
    }

    impl JwksSource for FakeSource {
        fn fetch(&self) -> Result<Fetched, String> {
            self.fetches.fetch_add(1, Ordering::SeqCst);
            Ok(Fetched {
                document: serde_json::json!({ "keys": self.keys.lock().unwrap().clone() }),
                max_age: None,
            })
        }
    }

    fn cache() -> (JwksCache, Arc<Mutex<Vec<Value>>>, Arc<AtomicUsize>) {
        let keys = Arc::new(Mutex::new(vec![jwk("k1")]));
        let fetches = Arc::new(AtomicUsize::new(0));
        let source = FakeSource {
            keys: Arc::clone(&keys),
            fetches: Arc::clone(&fetches),
        };
        (
            JwksCache::new(Box::new(source), Duration::from_secs(10)),
            keys,
            fetches,
        )
    }

    #[test]
    fn a_scheduled_refresh_does_not_use_up_the_unknown_kid_refetch() {
        let (cache, keys, fetches) = cache();
        cache.refresh().unwrap();
        keys.lock().unwrap().push(jwk("k2"));
        assert_eq!(cache.refresh_for_unknown("k2"), Lookup::Known);
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn unknown_kids_refetch_at_most_once_per_interval() {
        let (cache, keys, fetches) = cache();
        cache.refresh().unwrap();
        assert_eq!(cache.refresh_for_unknown("made-up-1"), Lookup::Unknown);
        assert_eq!(cache.refresh_for_unknown("made-up-2"), Lookup::Unknown);
        keys.lock().unwrap().push(jwk("k2"));
        assert_eq!(
            cache.refresh_for_unknown("k2"),
            Lookup::Unknown,
            "inside the interval"
        );
        assert_eq!(fetches.load(Ordering::SeqCst), 2);
        // A scheduled refresh still picks the new key up.
        cache.refresh().unwrap();
        assert_eq!(cache.refresh_for_unknown("k2"), Lookup::Known);
        assert_eq!(fetches.load(Ordering::SeqCst), 3);
    }

    struct DownSource;

    impl JwksSource for DownSource {
        fn fetch(&self) -> Result<Fetched, String> {
            Err("connection refused".into())
        }
    }

    #[test]
    fn an_unknown_kid_while_the_issuer_is_down_is_not_called_unknown() {
        let cache = JwksCache::new(Box::new(DownSource), Duration::from_secs(10));
        assert_eq!(cache.refresh_for_unknown("k9"), Lookup::IssuerUnreachable);
        // Inside the interval, without a new fetch, the answer stays.
        assert_eq!(cache.refresh_for_unknown("k9"), Lookup::IssuerUnreachable);
        assert_eq!(cache.fetch_count(), 1);
    }

    #[test]
    fn max_age_is_read_from_cache_control() {
        assert_eq!(
            parse_max_age("public, max-age=300"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(parse_max_age("no-store"), None);
        assert_eq!(parse_max_age("Max-Age=\"5\""), Some(Duration::from_secs(5)));
    }
}
