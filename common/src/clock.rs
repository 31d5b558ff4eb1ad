//! The one place that reads the system clock.
//!
//! Everything that needs the time takes a [`Clock`] (or a `now` parameter
//! read from one): production code gets [`Clock::system`], tests get
//! [`Clock::fixed`] and move it with [`Clock::advance`], so expiry, rotation
//! and lockout are tested without sleeping. `clippy.toml` forbids
//! `Utc::now`, `SystemTime::now` and `Instant::now` everywhere else.

#![allow(clippy::disallowed_methods)]

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Wall-clock and monotonic time, from the system or from a test.
#[derive(Clone, Debug)]
pub struct Clock(Source);

#[derive(Clone, Debug)]
enum Source {
    System,
    Fixed(Arc<Fixed>),
}

#[derive(Debug)]
struct Fixed {
    start: DateTime<Utc>,
    start_instant: Instant,
    /// Microseconds the clock has been advanced since `start`.
    offset_micros: AtomicI64,
}

impl Default for Clock {
    fn default() -> Self {
        Self::system()
    }
}

impl Clock {
    /// The system clock.
    pub fn system() -> Self {
        Self(Source::System)
    }

    /// A clock that stands still at `at` until [`Clock::advance`] moves it.
    /// Clones share the same time.
    pub fn fixed(at: DateTime<Utc>) -> Self {
        Self(Source::Fixed(Arc::new(Fixed {
            start: at,
            start_instant: Instant::now(),
            offset_micros: AtomicI64::new(0),
        })))
    }

    /// Moves a fixed clock forward; no effect on the system clock.
    pub fn advance(&self, by: Duration) {
        if let Source::Fixed(fixed) = &self.0 {
            let micros = i64::try_from(by.as_micros()).unwrap_or(i64::MAX);
            fixed.offset_micros.fetch_add(micros, Ordering::SeqCst);
        }
    }

    /// The current wall-clock time.
    pub fn now(&self) -> DateTime<Utc> {
        match &self.0 {
            Source::System => Utc::now(),
            Source::Fixed(fixed) => {
                fixed.start + chrono::Duration::microseconds(fixed.offset_micros.load(Ordering::SeqCst))
            }
        }
    }

    /// A monotonic reading, for measuring durations and cache ages.
    pub fn instant(&self) -> Instant {
        match &self.0 {
            Source::System => Instant::now(),
            Source::Fixed(fixed) => {
                let micros = u64::try_from(fixed.offset_micros.load(Ordering::SeqCst)).unwrap_or(0);
                fixed.start_instant + Duration::from_micros(micros)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fixed_clock_moves_only_when_advanced() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let clock = Clock::fixed(at);
        let copy = clock.clone();
        let before = clock.instant();
        assert_eq!(clock.now(), at);
        copy.advance(Duration::from_secs(90));
        assert_eq!(clock.now(), at + chrono::Duration::seconds(90));
        assert_eq!(clock.instant() - before, Duration::from_secs(90));
    }

    #[test]
    fn the_system_clock_is_the_default() {
        let clock = Clock::default();
        assert!((clock.now() - Utc::now()).num_seconds().abs() < 5);
    }
}
