//! HTTP integration tests of the auth-server against a real Postgres: one
//! test binary, one server and one database per test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::print_stdout)]

mod helpers;
mod smoke;
