//! Throttling repeated failed sign-ins for an account (ASVS V6.3): the
//! first few failures in a window are free; after that each failure blocks
//! the account's sign-in for a doubling delay (5 s, 10 s, 20 s, ...), capped
//! at the window. A
//! brute-force attacker gets a handful of guesses per quarter hour; the
//! real user, at worst, waits a few minutes (a hard lock-out would hand
//! attackers a way to lock anyone out).
//!
//! The key is the lower-cased username as typed, whether or not such a
//! user exists, so a throttled answer says nothing about accounts. Every
//! attempt is counted before the password is checked (and the count is
//! cleared on success), so parallel guesses cannot slip past the limit.

use chrono::{DateTime, Duration, Utc};

/// Failures allowed in a window before delays start.
pub const FREE_FAILURES: i32 = 5;
/// The counting window, and the longest delay.
pub const WINDOW_SECONDS: i64 = 15 * 60;
/// The first delay; each further failure doubles it.
pub const FIRST_DELAY_SECONDS: i64 = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ThrottleState {
    pub failures: i32,
    pub window_started_at: DateTime<Utc>,
    pub blocked_until: Option<DateTime<Utc>>,
}

/// The throttle key of a username.
pub fn account_key(username: &str) -> String {
    format!("account:{}", username.trim().to_ascii_lowercase())
}

/// The throttle key of a browser that signed in to an account before (the
/// device cookie's random nonce): its failures count apart from the
/// account's, so someone else hammering the account cannot lock its owner
/// out of the browsers they already use.
pub fn device_key(nonce: &str) -> String {
    format!("device:{nonce}")
}

/// Whether a sign-in attempt must be refused now.
pub fn is_blocked(state: Option<&ThrottleState>, now: DateTime<Utc>) -> bool {
    state
        .and_then(|s| s.blocked_until)
        .is_some_and(|until| now < until)
}

/// The state after one more failure.
pub fn after_failure(state: Option<&ThrottleState>, now: DateTime<Utc>) -> ThrottleState {
    let window = Duration::seconds(WINDOW_SECONDS);
    let (failures, window_started_at) = match state {
        Some(s) if s.window_started_at + window > now => (s.failures.saturating_add(1), s.window_started_at),
        _ => (1, now),
    };
    let blocked_until = (failures > FREE_FAILURES).then(|| {
        let exponent = u32::try_from(failures - FREE_FAILURES - 1)
            .unwrap_or(u32::MAX)
            .min(20);
        let delay = (FIRST_DELAY_SECONDS << exponent).min(WINDOW_SECONDS);
        now + Duration::seconds(delay)
    });
    ThrottleState {
        failures,
        window_started_at,
        blocked_until,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_000 + secs, 0).single().unwrap()
    }

    #[test]
    fn the_first_failures_are_free_then_delays_double_up_to_the_window() {
        let mut state = None;
        for i in 1..=FREE_FAILURES {
            let next = after_failure(state.as_ref(), t(i64::from(i)));
            assert!(!is_blocked(Some(&next), t(i64::from(i))), "failure {i}");
            state = Some(next);
        }
        let sixth = after_failure(state.as_ref(), t(10));
        assert_eq!(sixth.blocked_until, Some(t(15)));
        let seventh = after_failure(Some(&sixth), t(20));
        assert_eq!(seventh.blocked_until, Some(t(30)));
        let mut s = seventh;
        for i in 0..30 {
            s = after_failure(Some(&s), t(30 + i));
        }
        assert!(s.blocked_until.unwrap() <= t(59) + Duration::seconds(WINDOW_SECONDS));
    }

    #[test]
    fn a_new_window_starts_the_count_again() {
        let old = ThrottleState {
            failures: 40,
            window_started_at: t(0),
            blocked_until: Some(t(100)),
        };
        let next = after_failure(Some(&old), t(WINDOW_SECONDS + 1));
        assert_eq!(next.failures, 1);
        assert_eq!(next.blocked_until, None);
    }

    #[test]
    fn keys_ignore_case_and_surrounding_space() {
        assert_eq!(account_key(" Alice "), account_key("alice"));
    }
}
