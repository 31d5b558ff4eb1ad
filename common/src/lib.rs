//! Shared building blocks of `auth-server` and `resource-server`.
//!
//! Each server owns its settings, storage and HTTP surface; this crate holds
//! only what both need in the same shape: the settings source (`X_FILE`
//! secrets, config files), the Postgres pool and migration runner, telemetry,
//! security headers, metrics and the admin listener.

#![forbid(unsafe_code)]

pub mod admin;
pub mod config;
pub mod db;
pub mod headers;
pub mod metrics;
pub mod secret;
pub mod telemetry;

#[cfg(feature = "testing")]
pub mod testing;

pub use secret::Secret;
