//! When a signing key signs, when it is published, and when it may go: pure
//! decisions over the keys' times, shared by the key set every request
//! uses, `keys list`, `keys retire` and the scheduled rotation.
//!
//! A key is *pending* (published, not signing yet) until `activates_at`,
//! then *active* while it is the newest activated key, then *retiring*
//! (published, not signing) until every token it signed has expired, then
//! *retired* (not published; its row is deleted by the next reload). A key
//! retired by an operator (`retired_at`) is retired from that moment.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// The times of one key.
pub trait Timed {
    fn created_at(&self) -> DateTime<Utc>;
    fn activates_at(&self) -> DateTime<Utc>;
    fn retired_at(&self) -> Option<DateTime<Utc>>;
}

impl<T: Timed> Timed for std::sync::Arc<T> {
    fn created_at(&self) -> DateTime<Utc> {
        self.as_ref().created_at()
    }
    fn activates_at(&self) -> DateTime<Utc> {
        self.as_ref().activates_at()
    }
    fn retired_at(&self) -> Option<DateTime<Utc>> {
        self.as_ref().retired_at()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Pending,
    Active,
    Retiring,
    Retired,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Pending => "pending",
            State::Active => "active",
            State::Retiring => "retiring",
            State::Retired => "retired",
        }
    }

    pub fn published(self) -> bool {
        !matches!(self, State::Retired)
    }
}

fn live<K: Timed>(key: &K, now: DateTime<Utc>) -> bool {
    key.retired_at().is_none_or(|at| at > now)
}

/// Whether the key ever signed: it was not retired before it activated.
fn signed<K: Timed>(key: &K) -> bool {
    key.retired_at().is_none_or(|at| at > key.activates_at())
}

/// The keys in the order they sign (ascending `activates_at`), with the
/// lifetime of what they sign.
#[derive(Debug)]
pub struct Timeline<'a, K> {
    keys: &'a [K],
    /// Access-token lifetime plus the verifiers' clock leeway: how long a
    /// key stays published after it stops signing.
    keep_after: chrono::Duration,
}

impl<'a, K: Timed> Timeline<'a, K> {
    /// `keys` must be sorted by `activates_at`.
    pub fn new(keys: &'a [K], token_lifetime: Duration, leeway: Duration) -> Self {
        Self {
            keys,
            keep_after: chrono::Duration::from_std(token_lifetime + leeway).unwrap_or(chrono::Duration::MAX),
        }
    }

    /// The index of the key that signs at `now`: the newest live key that
    /// has activated.
    pub fn signing(&self, now: DateTime<Utc>) -> Option<usize> {
        self.keys
            .iter()
            .rposition(|k| k.activates_at() <= now && live(k, now))
    }

    /// When key `i` stopped signing: the activation of the first later key
    /// that did sign, if it has activated by `now`.
    pub fn superseded_at(&self, i: usize, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.keys
            .get(i + 1..)?
            .iter()
            .filter(|k| signed(*k))
            .map(Timed::activates_at)
            .find(|at| *at <= now)
    }

    /// Until when tokens key `i` signed may still be valid, once it has
    /// stopped signing.
    pub fn tokens_valid_until(&self, i: usize, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        self.superseded_at(i, now).map(|at| at + self.keep_after)
    }

    pub fn state(&self, i: usize, now: DateTime<Utc>) -> State {
        let Some(key) = self.keys.get(i) else {
            return State::Retired;
        };
        if !live(key, now) {
            return State::Retired;
        }
        if key.activates_at() > now {
            return State::Pending;
        }
        if self.signing(now) == Some(i) {
            return State::Active;
        }
        match self.tokens_valid_until(i, now) {
            Some(until) if now < until => State::Retiring,
            _ => State::Retired,
        }
    }

    /// Indexes of the keys a verifier may meet at `now`.
    pub fn published(&self, now: DateTime<Utc>) -> impl Iterator<Item = usize> + '_ {
        (0..self.keys.len()).filter(move |&i| self.state(i, now).published())
    }

    /// Whether a scheduled rotation is due: rotation is on, no key is
    /// waiting to sign, and the newest live key was created `every` ago.
    pub fn rotation_due(&self, now: DateTime<Utc>, every: Duration) -> bool {
        let Ok(every) = chrono::Duration::from_std(every) else {
            return false;
        };
        let live_keys = || self.keys.iter().filter(|k| live(*k, now));
        if live_keys().any(|k| k.activates_at() > now) {
            return false;
        }
        live_keys()
            .map(Timed::created_at)
            .max()
            .is_none_or(|newest| newest + every <= now)
    }
}

/// What `keys retire KID` may do with key `i` at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Retirement {
    /// Retire it now; it signed nothing that can still be valid.
    Now,
    /// Retire it now although its tokens may still be valid (`--force`);
    /// if it is the signing key, `promote` (a pending key) signs from now.
    Forced { promote: Option<usize> },
    /// Refused, with the reason.
    Refused(String),
}

/// Decides `keys retire` for key `i`. `settle` is how long other instances
/// may take to see a change (their reload interval plus clock skew): a
/// pending key that activates sooner may already sign there.
pub fn retirement<K: Timed>(
    timeline: &Timeline<'_, K>,
    i: usize,
    now: DateTime<Utc>,
    force: bool,
    settle: Duration,
) -> Retirement {
    let settle = chrono::Duration::from_std(settle).unwrap_or(chrono::Duration::MAX);
    match timeline.state(i, now) {
        State::Pending if !force && timeline.keys.get(i).is_some_and(|k| k.activates_at() <= now + settle) => {
            Retirement::Refused(
                "it starts signing within the reload interval, so another instance may sign with it; use --force"
                    .into(),
            )
        }
        State::Retired | State::Pending => {
            // A pending key never signed; it may go unless it is the one
            // about to take over from a retired signer (no key would sign).
            if timeline.signing(now).is_none() && timeline.published(now).count() <= 1 {
                return Retirement::Refused("it is the only key that can sign".into());
            }
            Retirement::Now
        }
        State::Retiring => {
            if force {
                Retirement::Forced { promote: None }
            } else {
                let until = timeline
                    .tokens_valid_until(i, now)
                    .map(|t| t.to_rfc3339())
                    .unwrap_or_default();
                Retirement::Refused(format!(
                    "tokens it signed may be valid until {until}; retire it then, or use --force"
                ))
            }
        }
        State::Active => {
            // The newest pending key takes over (the one rotation made).
            let pending = (0..timeline.keys.len())
                .rev()
                .find(|&j| timeline.state(j, now) == State::Pending);
            match (force, pending) {
                (false, _) => Retirement::Refused(
                    "it is the signing key; run keys rotate and retire it once the new key signs, or use --force"
                        .into(),
                ),
                (true, None) => Retirement::Refused(
                    "it is the signing key and no other key is ready; run keys rotate first".into(),
                ),
                (true, Some(j)) => Retirement::Forced { promote: Some(j) },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Clone)]
    struct K {
        created: i64,
        activates: i64,
        retired: Option<i64>,
    }

    fn at(s: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + s, 0).unwrap()
    }

    impl Timed for K {
        fn created_at(&self) -> DateTime<Utc> {
            at(self.created)
        }
        fn activates_at(&self) -> DateTime<Utc> {
            at(self.activates)
        }
        fn retired_at(&self) -> Option<DateTime<Utc>> {
            self.retired.map(at)
        }
    }

    const TTL: Duration = Duration::from_secs(600);
    const LEEWAY: Duration = Duration::from_secs(60);
    const SETTLE: Duration = Duration::from_secs(90);

    fn k(created: i64, activates: i64) -> K {
        K {
            created,
            activates,
            retired: None,
        }
    }

    fn states(keys: &[K], now: i64) -> Vec<&'static str> {
        let t = Timeline::new(keys, TTL, LEEWAY);
        (0..keys.len()).map(|i| t.state(i, at(now)).as_str()).collect()
    }

    #[test]
    fn a_key_is_pending_then_active_then_retiring_then_retired() {
        let keys = [k(0, 0), k(1000, 1900)];
        assert_eq!(states(&keys, 1000), ["active", "pending"]);
        assert_eq!(states(&keys, 1900), ["retiring", "active"]);
        assert_eq!(states(&keys, 1900 + 659), ["retiring", "active"]);
        assert_eq!(states(&keys, 1900 + 660), ["retired", "active"]);
    }

    #[test]
    fn a_pending_key_retired_before_it_signed_does_not_supersede_its_predecessor() {
        let mut keys = [k(0, 0), k(1000, 1900)];
        keys[1].retired = Some(1500);
        assert_eq!(states(&keys, 2000), ["active", "retired"]);
        let t = Timeline::new(&keys, TTL, LEEWAY);
        assert_eq!(t.signing(at(5000)), Some(0));
    }

    #[test]
    fn retiring_the_signing_key_needs_force_and_a_key_to_take_over() {
        let keys = [k(0, 0)];
        let t = Timeline::new(&keys, TTL, LEEWAY);
        assert!(matches!(
            retirement(&t, 0, at(10), false, SETTLE),
            Retirement::Refused(_)
        ));
        assert!(matches!(
            retirement(&t, 0, at(10), true, SETTLE),
            Retirement::Refused(_)
        ));
        let keys = [k(0, 0), k(5, 905)];
        let t = Timeline::new(&keys, TTL, LEEWAY);
        assert!(matches!(
            retirement(&t, 0, at(10), false, SETTLE),
            Retirement::Refused(_)
        ));
        assert_eq!(
            retirement(&t, 0, at(10), true, SETTLE),
            Retirement::Forced { promote: Some(1) }
        );
    }

    #[test]
    fn a_retiring_key_can_go_once_its_tokens_have_expired() {
        let keys = [k(0, 0), k(1000, 1900)];
        let t = Timeline::new(&keys, TTL, LEEWAY);
        let early = retirement(&t, 0, at(2000), false, SETTLE);
        assert!(
            matches!(&early, Retirement::Refused(m) if m.contains("--force")),
            "{early:?}"
        );
        assert_eq!(
            retirement(&t, 0, at(2000), true, SETTLE),
            Retirement::Forced { promote: None }
        );
        assert_eq!(retirement(&t, 0, at(1900 + 660), false, SETTLE), Retirement::Now);
        assert_eq!(
            retirement(&t, 1, at(1000), false, SETTLE),
            Retirement::Now,
            "pending"
        );
        // About to sign somewhere: only with --force.
        assert!(matches!(
            retirement(&t, 1, at(1850), false, SETTLE),
            Retirement::Refused(_)
        ));
        assert_eq!(retirement(&t, 1, at(1850), true, SETTLE), Retirement::Now);
    }

    #[test]
    fn rotation_is_due_once_the_newest_key_is_old_and_nothing_waits_to_sign() {
        let every = Duration::from_secs(30 * 86_400);
        let keys = [k(0, 0)];
        let t = Timeline::new(&keys, TTL, LEEWAY);
        assert!(!t.rotation_due(at(30 * 86_400 - 1), every));
        assert!(t.rotation_due(at(30 * 86_400), every));
        let keys = [k(0, 0), k(30 * 86_400, 30 * 86_400 + 900)];
        let t = Timeline::new(&keys, TTL, LEEWAY);
        assert!(!t.rotation_due(at(30 * 86_400 + 100), every), "a key is pending");
        assert!(!t.rotation_due(at(31 * 86_400), every));
        assert!(t.rotation_due(at(60 * 86_400), every));
    }
}
