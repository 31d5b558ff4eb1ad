//! HTTP integration tests of the auth-server against a real Postgres: one
//! test binary, one server and one database per test.

#![allow(
    // Tests set up data at the wall-clock time the servers under test read.
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    dead_code
)]

mod helpers;
mod smoke;

// Foundation and authorization code flow.
mod authorize;
mod keys_discovery;
mod settings_cli;
mod token_code;

// Token lifecycle.
mod client_credentials;
mod introspect_revoke;
mod logout_cleanup;
mod refresh;
mod throttle;

// Hardening (issue 10).
mod breached;
mod hardening;
mod limits;

// OpenID Connect (issue 14).
mod oidc;

// Revocation feed (issue 15).
mod events;

// Operator commands (issue 12).
mod key_operations;
mod operator;
