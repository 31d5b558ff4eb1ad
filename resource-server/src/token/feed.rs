//! Following the issuer's revocation feed in the background.
//!
//! The feed's URL comes from the issuer's metadata
//! (`revocation_feed_endpoint`). This instance keeps its own cursor and
//! reads the whole feed from the start, so every instance sees every event
//! (there is nothing to acknowledge; see `docs/revocation-feed.md`). Each
//! poll waits at the issuer up to a few seconds for a new event (long
//! poll), so a revocation arrives within about a second without polling
//! hard.
//!
//! Every SET is verified against the JWKS the validator already holds
//! (`verify::verify_set`); one whose key is unknown triggers the usual
//! single-flight JWKS refetch, and if the key is still unknown the batch is
//! read again later rather than skipped. A tampered, unsigned or mistyped
//! event is ignored, logged and counted. The server is not ready
//! (`/readyz`) until it has read the whole feed once. When the feed cannot be reached the server
//! keeps serving with what it has and retries with backoff; `/metrics`
//! shows the lag and `/healthz` turns unhealthy after
//! `RESOURCE_EVENTS_MAX_STALENESS`.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use base64::Engine as _;
use oauth_common::db;
use oauth_common::metrics::Metrics;
use serde_json::{Value, json};

use super::TokenValidator;
use super::jwks::Lookup;
use super::revocations::from_set;
use super::verify::{self, VerifyError};
use crate::config::EventsSettings;

/// Events asked for per poll.
const BATCH: u32 = 1000;
/// A poll may wait this long at the issuer, plus the answer's transfer.
const POLL_TIMEOUT: Duration = Duration::from_secs(15);

/// How fresh the feed is, for `/healthz` and `/metrics`.
#[derive(Debug)]
pub struct FeedStatus {
    /// Unix seconds of the last successful read (or of the start).
    last_read: AtomicI64,
    max_staleness: i64,
    /// The whole feed was read once: until then the server is not ready
    /// (it would accept tokens the feed has already revoked).
    caught_up: std::sync::atomic::AtomicBool,
}

impl FeedStatus {
    pub fn new(now: i64, max_staleness: Duration) -> Self {
        Self {
            last_read: AtomicI64::new(now),
            max_staleness: i64::try_from(max_staleness.as_secs()).unwrap_or(i64::MAX),
            caught_up: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the feed has been read to its end at least once.
    pub fn caught_up(&self) -> bool {
        self.caught_up.load(Ordering::Acquire)
    }

    /// Seconds since the feed was last read.
    pub fn lag(&self, now: i64) -> i64 {
        (now - self.last_read.load(Ordering::Acquire)).max(0)
    }

    /// Whether the feed was read recently enough.
    pub fn fresh(&self, now: i64) -> bool {
        self.lag(now) <= self.max_staleness
    }

    fn read_at(&self, now: i64) {
        self.last_read.store(now, Ordering::Release);
    }
}

/// One poll's answer.
struct Batch {
    sets: Vec<String>,
    cursor: String,
    more: bool,
}

/// The feed client: where the feed is, who we are, where we are in it.
pub struct Feed {
    issuer: String,
    client_id: String,
    authorization: oauth_common::Secret,
    agent: ureq::Agent,
    endpoint: Mutex<Option<String>>,
    cursor: Mutex<String>,
    pub status: Arc<FeedStatus>,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("issuer", &self.issuer)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

impl Feed {
    pub fn new(issuer: &str, settings: &EventsSettings, now: i64) -> Self {
        let tls = ureq::tls::TlsConfig::builder()
            .provider(ureq::tls::TlsProvider::NativeTls)
            .root_certs(ureq::tls::RootCerts::PlatformVerifier)
            .build();
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(POLL_TIMEOUT))
            .tls_config(tls)
            .max_redirects(0)
            .http_status_as_error(false)
            .build()
            .into();
        // RFC 6749 section 2.3.1: both parts form-encoded, then Basic.
        let encode = |s: &str| url::form_urlencoded::byte_serialize(s.as_bytes()).collect::<String>();
        let pair = format!(
            "{}:{}",
            encode(&settings.client_id),
            encode(settings.client_secret.expose())
        );
        let authorization = oauth_common::Secret::new(format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(pair)
        ));
        Self {
            issuer: issuer.to_owned(),
            client_id: settings.client_id.clone(),
            authorization,
            agent,
            endpoint: Mutex::new(None),
            cursor: Mutex::new("0".to_owned()),
            status: Arc::new(FeedStatus::new(now, settings.max_staleness)),
        }
    }

    fn discover(&self) -> Result<String, String> {
        let url = format!(
            "{}/.well-known/oauth-authorization-server",
            self.issuer.trim_end_matches('/')
        );
        let mut response = self
            .agent
            .get(&url)
            .header("Accept", "application/json")
            .call()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if response.status().as_u16() != 200 {
            return Err(format!("GET {url}: status {}", response.status().as_u16()));
        }
        let metadata: Value = response
            .body_mut()
            .with_config()
            .limit(1024 * 1024)
            .read_json()
            .map_err(|e| format!("GET {url}: {e}"))?;
        if metadata.get("issuer").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err("the issuer's metadata names a different issuer".into());
        }
        let endpoint = metadata
            .get("revocation_feed_endpoint")
            .and_then(Value::as_str)
            .ok_or("the issuer's metadata has no revocation_feed_endpoint")?;
        oauth_common::config::check_public_url("revocation_feed_endpoint", endpoint).map_err(|e| e.0)?;
        Ok(endpoint.to_owned())
    }

    fn endpoint(&self) -> Result<String, String> {
        if let Some(known) = lock(&self.endpoint).clone() {
            return Ok(known);
        }
        let found = self.discover()?;
        *lock(&self.endpoint) = Some(found.clone());
        Ok(found)
    }

    /// One poll (blocking): the SETs after our cursor.
    fn poll(&self, wait: bool) -> Result<Batch, String> {
        let endpoint = self.endpoint()?;
        let cursor = lock(&self.cursor).clone();
        let body = json!({ "cursor": cursor, "maxEvents": BATCH, "returnImmediately": !wait });
        let result = self
            .agent
            .post(&endpoint)
            .header("Authorization", self.authorization.expose())
            .header("Accept", "application/json")
            .send_json(&body);
        let mut response = match result {
            Ok(r) => r,
            Err(e) => {
                // Discover again next time: the metadata may have changed.
                *lock(&self.endpoint) = None;
                return Err(format!("POST {endpoint}: {e}"));
            }
        };
        let status = response.status().as_u16();
        if status == 400 {
            // Our cursor is not one this feed gave (restored or replaced):
            // read it again from the start; events are idempotent.
            *lock(&self.cursor) = "0".to_owned();
            return Err(format!(
                "POST {endpoint}: the feed refused our cursor; reading it from the start"
            ));
        }
        if status != 200 {
            return Err(format!("POST {endpoint}: status {status}"));
        }
        let answer: Value = response
            .body_mut()
            .with_config()
            .limit(64 * 1024 * 1024)
            .read_json()
            .map_err(|e| format!("POST {endpoint}: {e}"))?;
        let sets = answer
            .get("sets")
            .and_then(Value::as_object)
            .ok_or("the feed's answer has no sets")?
            .values()
            .filter_map(|v| v.as_str().map(str::to_owned))
            .collect();
        let cursor = answer
            .get("cursor")
            .and_then(Value::as_str)
            .ok_or("the feed's answer has no cursor")?
            .to_owned();
        Ok(Batch {
            sets,
            cursor,
            more: answer
                .get("moreAvailable")
                .and_then(Value::as_bool)
                .unwrap_or(false),
        })
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

/// What applying a batch came to.
enum Applied {
    /// Every SET was applied or rejected for good: move the cursor.
    Done { applied: usize, rejected: usize },
    /// A SET's key is not (yet) known: read the batch again later.
    Retry,
}

/// Reads of one batch that found a SET's key unknown before the SET is
/// given up as signed by a stranger: with the backoff, about 16 s, longer
/// than the JWKS refetch interval, so the issuer's newest keys were fetched.
const UNKNOWN_KEY_RETRIES: u32 = 6;

async fn apply(
    validator: &TokenValidator,
    issuer: &str,
    sets: &[String],
    metrics: &Metrics,
    give_up_unknown_keys: bool,
) -> Applied {
    let (mut applied, mut rejected) = (0, 0);
    for set in sets {
        let Some(keys) = validator.jwks.keys() else {
            return Applied::Retry;
        };
        let mut verified = verify::verify_set(set, &keys, issuer);
        if let Err(VerifyError::UnknownKey(kid)) = &verified {
            match validator.lookup_unknown(kid.clone()).await {
                Lookup::Known => match validator.jwks.keys() {
                    Some(keys) => verified = verify::verify_set(set, &keys, issuer),
                    None => return Applied::Retry,
                },
                // The issuer signs only with keys it published first: an
                // unknown key means our JWKS is behind (or was refetched a
                // moment ago); read the batch again rather than lose it,
                // until that has gone on too long.
                Lookup::Unknown if give_up_unknown_keys => {}
                Lookup::Unknown | Lookup::IssuerUnreachable | Lookup::InProgress => return Applied::Retry,
            }
        }
        match verified {
            Ok(claims) => match from_set(&claims, issuer) {
                Some(revocation) => {
                    validator.revocations.add(revocation);
                    applied += 1;
                }
                None => tracing::debug!("revocation feed: an event of a kind this server does not act on"),
            },
            Err(e) => {
                rejected += 1;
                metrics.event("revocation_event_rejected");
                let reason = match e {
                    VerifyError::Invalid(reason) => reason,
                    VerifyError::UnknownKey(_) => "signed with a key the issuer does not publish",
                };
                tracing::warn!(reason, "revocation feed: an event was ignored");
            }
        }
    }
    Applied::Done { applied, rejected }
}

/// Follows the feed until the server stops (run it as a task).
pub async fn follow(feed: Arc<Feed>, validator: Arc<TokenValidator>, metrics: Arc<Metrics>) {
    let mut backoff = Duration::from_millis(250);
    // Catch up without waiting first; then long-poll.
    let mut wait = false;
    let mut unknown_key_retries = 0;
    loop {
        let polling = Arc::clone(&feed);
        let result = db::run_blocking(move || polling.poll(wait))
            .await
            .unwrap_or_else(|e| Err(e.to_string()));
        let now = validator.now();
        match result {
            Ok(batch) => match apply(
                &validator,
                &feed.issuer,
                &batch.sets,
                &metrics,
                unknown_key_retries >= UNKNOWN_KEY_RETRIES,
            )
            .await
            {
                Applied::Done { applied, rejected } => {
                    unknown_key_retries = 0;
                    *lock(&feed.cursor) = batch.cursor;
                    feed.status.read_at(now);
                    if !batch.more {
                        feed.status.caught_up.store(true, Ordering::Release);
                    }
                    backoff = Duration::from_millis(250);
                    wait = !batch.more;
                    if applied > 0 {
                        tracing::info!(
                            applied,
                            rejected,
                            held = validator.revocations.len(),
                            "revocation feed read"
                        );
                    }
                }
                Applied::Retry => {
                    unknown_key_retries += 1;
                    tracing::warn!("revocation feed: an event's key is not available yet; reading again");
                    pause(&feed, &validator, &metrics, backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(30));
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "cannot read the revocation feed");
                pause(&feed, &validator, &metrics, backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
        validator.revocations.prune(now);
        report(&feed, &validator, &metrics);
    }
}

/// The feed's gauges in `/metrics`, as of now.
fn report(feed: &Feed, validator: &TokenValidator, metrics: &Metrics) {
    metrics.set_gauge(
        "revocation_feed_lag_seconds",
        "Seconds since the revocation feed was last read.",
        feed.status.lag(validator.now()) as f64,
    );
    metrics.set_gauge(
        "revocations_held",
        "Revocations from the feed held in memory.",
        validator.revocations.len() as f64,
    );
}

/// Waits `backoff` before the next try, keeping the lag in `/metrics`
/// current meanwhile.
async fn pause(feed: &Feed, validator: &TokenValidator, metrics: &Metrics, backoff: Duration) {
    let mut left = backoff;
    while !left.is_zero() {
        let step = left.min(Duration::from_secs(1));
        actix_web::rt::time::sleep(step).await;
        left -= step;
        report(feed, validator, metrics);
    }
}
