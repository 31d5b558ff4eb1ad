//! Integration tests of the resource server: a fake issuer serves keys made
//! at test time; each test has its own server and database.

#![allow(
    // Tests set up data at the wall-clock time the servers under test read.
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    dead_code
)]

mod feed;
mod helpers;
mod http;
mod keys;
mod notes;
mod scopes;
mod smoke;
mod tokens;
