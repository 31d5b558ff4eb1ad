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

use chrono::Duration;

/// Failures allowed in a window before delays start.
pub const FREE_FAILURES: i32 = 5;
/// The counting window, and the longest delay.
pub const WINDOW_SECONDS: i64 = 15 * 60;
/// The first delay; each further failure doubles it.
pub const FIRST_DELAY_SECONDS: i64 = 5;

/// Delays double at most this many times (the window caps them first).
pub const MAX_DOUBLINGS: i32 = 20;

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

/// The delay after failure number `failures` in a window: none for the
/// free ones, then 5 s, 10 s, 20 s, ... capped at the window. The same
/// arithmetic runs inside the database's upsert
/// (`storage::throttle::reserve_attempt`); this is its reference.
pub fn delay_after(failures: i32) -> Option<Duration> {
    (failures > FREE_FAILURES).then(|| {
        let exponent = u32::try_from(failures - FREE_FAILURES - 1)
            .unwrap_or(0)
            .min(MAX_DOUBLINGS.unsigned_abs());
        Duration::seconds((FIRST_DELAY_SECONDS << exponent).min(WINDOW_SECONDS))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_failures_are_free_then_delays_double_up_to_the_window() {
        for free in 1..=FREE_FAILURES {
            assert_eq!(delay_after(free), None);
        }
        assert_eq!(delay_after(6), Some(Duration::seconds(5)));
        assert_eq!(delay_after(7), Some(Duration::seconds(10)));
        assert_eq!(delay_after(8), Some(Duration::seconds(20)));
        assert_eq!(delay_after(60), Some(Duration::seconds(WINDOW_SECONDS)));
    }

    #[test]
    fn keys_ignore_case_and_surrounding_space() {
        assert_eq!(account_key(" Alice "), account_key("alice"));
    }
}
