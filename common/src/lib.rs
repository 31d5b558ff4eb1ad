//! Shared building blocks of `auth-server` and `resource-server`.
//!
//! Each server owns its settings, storage and HTTP surface; this crate holds
//! only what both need in the same shape: the settings source (`X_FILE`
//! secrets, config files), the Postgres pool, migration runner and blocking
//! runner, telemetry, security headers, metrics, the listeners and their
//! middleware (`server`, `admin`), the clock, and the JWT claim rules.

#![forbid(unsafe_code)]

pub mod admin;
pub mod clock;
pub mod config;
pub mod cors;
pub mod db;
pub mod headers;
pub mod jwt;
pub mod metrics;
pub mod secevent;
pub mod secret;
pub mod server;
pub mod telemetry;
pub mod verified;

#[cfg(feature = "testing")]
pub mod testing;

pub use clock::Clock;
pub use secret::Secret;

/// Why a server could not start; printed as one line before a non-zero exit.
#[derive(Debug)]
pub struct StartupError(pub String);

impl std::fmt::Display for StartupError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartupError {}

impl From<String> for StartupError {
    fn from(message: String) -> Self {
        Self(message)
    }
}
