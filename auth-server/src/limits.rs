//! Failure limits per client address and per client, shared by every
//! instance (ASVS V6.3, RFC 9700 section 4.16 on brute force at the token
//! endpoint).
//!
//! What counts is failure: wrong passwords and unknown usernames at
//! sign-in, failed client authentication and `invalid_grant` at the token,
//! introspection and revocation endpoints. The arithmetic is governor's
//! GCRA over state kept in Postgres (`storage::rate_limits`), so a second
//! instance is not a second allowance. Successful requests are never
//! counted, so clean traffic pays only an in-memory lookup.
//!
//! Front line, per instance: every decision that a key is over its limit is
//! remembered here until it lapses, so the next request with that key is
//! refused before any database round trip or hashing. A key that is over
//! its limit on another instance is learned at this instance's next
//! failure for it (at sign-in, at once: the sign-in round trip looks at the
//! shared state before any password is hashed).
//!
//! Optional, off by default: `AUTH_REQUEST_RATE_PER_IP` limits all token,
//! introspection and revocation requests per address, in memory per
//! instance (governor's keyed limiter).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::protocol::StoreError;
use crate::storage::rate_limits::{self, Check};

pub use crate::config::LimitSettings;

/// Whose failures a key counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Address,
    Client,
}

/// The key of a client address. IPv6 addresses count per /64, the block
/// one subscriber usually gets, so an attacker cannot spread its failures
/// over the 2^64 addresses of its own network.
pub fn ip_key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => format!("ip:{v4}"),
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("ip:{v4}"),
            None => {
                let [a, b, c, d, ..] = v6.segments();
                format!("ip:{a:x}:{b:x}:{c:x}:{d:x}::/64")
            }
        },
    }
}

/// The key of a client id as presented (at most 128 characters of it: ids
/// we issue are 22, and a longer one is unknown anyway).
pub fn client_key(client_id: &str) -> String {
    format!("client:{}", client_id.chars().take(128).collect::<String>())
}

pub struct Limits {
    ip_quota: Quota,
    client_quota: Quota,
    /// Keys known to be over their limit, until when.
    blocked: Mutex<HashMap<String, DateTime<Utc>>>,
    /// How many keys `blocked` holds, read without the lock on the hot path.
    blocked_len: AtomicUsize,
    requests: Option<DefaultKeyedRateLimiter<String>>,
    /// Password checks under way per address key (sign-in).
    in_flight: Mutex<HashMap<String, usize>>,
}

/// Password checks one address may have under way at once, per instance.
/// Failures are counted after the check, so without this bound a burst of
/// parallel guesses would all pass the limit's look before any of them is
/// counted.
pub const MAX_CHECKS_PER_ADDRESS: usize = 4;

/// A password check slot of one address; freed on drop.
pub struct Slot<'a> {
    limits: &'a Limits,
    key: String,
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.limits.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = in_flight.get_mut(&self.key) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                in_flight.remove(&self.key);
            }
        }
    }
}

impl std::fmt::Debug for Limits {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Limits").finish_non_exhaustive()
    }
}

impl Limits {
    pub fn new(settings: &LimitSettings) -> Result<Self, String> {
        let quota = |burst| {
            rate_limits::quota(burst, settings.window)
                .ok_or_else(|| "the limit window is too short".to_owned())
        };
        Ok(Self {
            ip_quota: quota(settings.ip_failures)?,
            client_quota: quota(settings.client_failures)?,
            blocked: Mutex::new(HashMap::new()),
            blocked_len: AtomicUsize::new(0),
            requests: settings
                .requests_per_ip
                .map(|rate| RateLimiter::keyed(Quota::per_second(rate))),
            in_flight: Mutex::new(HashMap::new()),
        })
    }

    fn quota(&self, kind: Kind) -> Quota {
        match kind {
            Kind::Address => self.ip_quota,
            Kind::Client => self.client_quota,
        }
    }

    /// How long the longest-blocked of `keys` stays blocked, as far as this
    /// instance knows; `None` when none is. No database, no hashing.
    pub fn blocked(&self, keys: &[&str], now: DateTime<Utc>) -> Option<std::time::Duration> {
        if self.blocked_len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        let until = keys
            .iter()
            .filter_map(|key| match blocked.get(*key) {
                Some(until) if *until > now => Some(*until),
                Some(_) => {
                    blocked.remove(*key);
                    None
                }
                None => None,
            })
            .max();
        self.blocked_len.store(blocked.len(), Ordering::Relaxed);
        until.map(|u| (u - now).to_std().unwrap_or_default())
    }

    fn remember(&self, key: &str, check: Check, now: DateTime<Utc>) {
        if let Check::Limited { retry_after } = check {
            let until = now + chrono::Duration::from_std(retry_after).unwrap_or(chrono::Duration::MAX);
            let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
            blocked.insert(key.to_owned(), until);
            self.blocked_len.store(blocked.len(), Ordering::Relaxed);
        }
    }

    /// The shared state of `key`, without counting (on the blocking pool).
    pub fn peek(
        &self,
        conn: &mut PgConnection,
        kind: Kind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Check, StoreError> {
        let check = rate_limits::peek(conn, self.quota(kind), key, now)?;
        self.remember(key, check, now);
        Ok(check)
    }

    /// Counts one failure for `key` in the shared state (on the blocking
    /// pool). Returns whether a further failure would still be allowed, and
    /// remembers the key as blocked here when it would not, so the next
    /// request is refused without a round trip.
    pub fn record_failure(
        &self,
        conn: &mut PgConnection,
        kind: Kind,
        key: &str,
        now: DateTime<Utc>,
    ) -> Result<Check, StoreError> {
        let quota = self.quota(kind);
        let check = match rate_limits::record_failure(conn, quota, key, now)? {
            limited @ Check::Limited { .. } => limited,
            Check::Allowed { .. } => rate_limits::peek(conn, quota, key, now)?,
        };
        self.remember(key, check, now);
        Ok(check)
    }

    /// A password-check slot for the address `key`, or `None` when it has
    /// [`MAX_CHECKS_PER_ADDRESS`] under way already.
    pub fn check_slot(&self, key: &str) -> Option<Slot<'_>> {
        let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
        let n = in_flight.entry(key.to_owned()).or_default();
        if *n >= MAX_CHECKS_PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(Slot {
            limits: self,
            key: key.to_owned(),
        })
    }

    /// The optional per-address request rate; `Err(retry_after)` over it.
    pub fn admit_request(&self, ip: IpAddr) -> Result<(), std::time::Duration> {
        match &self.requests {
            None => Ok(()),
            Some(limiter) => limiter.check_key(&ip_key(ip)).map_err(|not_until| {
                not_until.wait_time_from(governor::clock::Clock::now(
                    &governor::clock::DefaultClock::default(),
                ))
            }),
        }
    }

    /// Forgets lapsed entries (run by the cleanup task).
    pub fn forget_lapsed(&self, now: DateTime<Utc>) {
        let mut blocked = self.blocked.lock().unwrap_or_else(|p| p.into_inner());
        blocked.retain(|_, until| *until > now);
        self.blocked_len.store(blocked.len(), Ordering::Relaxed);
        if let Some(limiter) = &self.requests {
            limiter.retain_recent();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::num::NonZeroU32;

    use chrono::TimeZone as _;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    fn limits() -> Limits {
        Limits::new(&LimitSettings {
            ip_failures: NonZeroU32::new(3).unwrap(),
            client_failures: NonZeroU32::new(3).unwrap(),
            window: std::time::Duration::from_secs(60),
            requests_per_ip: None,
        })
        .unwrap()
    }

    #[test]
    fn a_remembered_block_refuses_until_it_lapses() {
        let limits = limits();
        assert_eq!(limits.blocked(&["ip:1.2.3.4"], t(0)), None);
        limits.remember(
            "ip:1.2.3.4",
            Check::Limited {
                retry_after: std::time::Duration::from_secs(20),
            },
            t(0),
        );
        assert_eq!(
            limits.blocked(&["client:x", "ip:1.2.3.4"], t(5)),
            Some(std::time::Duration::from_secs(15))
        );
        assert_eq!(limits.blocked(&["ip:5.6.7.8"], t(5)), None);
        assert_eq!(limits.blocked(&["ip:1.2.3.4"], t(20)), None);
        assert_eq!(limits.blocked_len.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn ipv6_addresses_count_per_64_and_mapped_ipv4_as_ipv4() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1".parse().unwrap();
        let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
        let c: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert_eq!(ip_key(a), ip_key(b));
        assert_ne!(ip_key(a), ip_key(c));
        assert_eq!(ip_key("::ffff:192.0.2.1".parse().unwrap()), "ip:192.0.2.1");
        assert_eq!(client_key(&"x".repeat(1000)).len(), "client:".len() + 128);
    }

    #[test]
    fn an_address_gets_a_bounded_number_of_check_slots() {
        let limits = limits();
        let slots: Vec<_> = (0..MAX_CHECKS_PER_ADDRESS)
            .map(|_| limits.check_slot("ip:1.2.3.4").unwrap())
            .collect();
        assert!(limits.check_slot("ip:1.2.3.4").is_none());
        assert!(limits.check_slot("ip:5.6.7.8").is_some());
        drop(slots);
        assert!(limits.check_slot("ip:1.2.3.4").is_some());
    }

    #[test]
    fn allowed_checks_are_not_remembered() {
        let limits = limits();
        limits.remember("ip:1.2.3.4", Check::Allowed { recent: true }, t(0));
        assert_eq!(limits.blocked(&["ip:1.2.3.4"], t(0)), None);
    }
}
