//! Sign-in, consent and logout policy: the decisions behind the pages,
//! apart from HTTP. Each entry point takes what a handler extracted (form
//! fields, cookie values, the client address) and returns an outcome the
//! handler maps to a response. Policy may reach the database through
//! `storage::run` and the password verifier, and uses `protocol/` for the
//! OAuth rules; it never names actix or diesel.

pub mod authorize;
pub mod login;
pub mod logout;
pub mod session;
