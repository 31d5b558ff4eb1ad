//! Browser sessions of the login pages and the CSRF tokens of their forms.
//!
//! A session id is 256 random bits in a cookie; only its SHA-256 is stored.
//! CSRF tokens are MACs bound to what the form belongs to: before login, a
//! random pre-login cookie; after login, the session id. A forged form post
//! from another site cannot produce the MAC without reading the cookie.

use chrono::{DateTime, Utc};

use super::StoreError;
use crate::crypto;
use crate::model::User;

/// A live session found from its cookie.
#[derive(Debug, Clone)]
pub struct Session {
    pub user: User,
    pub id_hash: Vec<u8>,
    pub created_at: DateTime<Utc>,
    /// The session's public id (`sid` in tokens); the cookie's id is secret.
    pub sid: uuid::Uuid,
    /// When the user last entered their password here (`auth_time`).
    pub auth_time: DateTime<Utc>,
}

pub trait SessionStore {
    /// Stores a new session for `user_id` that ends at `expires_at` at the
    /// latest, returning nothing: the caller holds the raw id.
    fn create_session(
        &mut self,
        id_hash: &[u8],
        user_id: uuid::Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError>;
    /// The session if it exists and has neither reached its absolute expiry
    /// nor been idle for longer than `idle`; refreshes its idle clock.
    fn find_session(
        &mut self,
        id_hash: &[u8],
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<Session>, StoreError>;
    fn delete_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError>;
}

/// What a CSRF token protects; part of the MAC so a token for one form is
/// useless for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CsrfPurpose {
    Login,
    Consent,
    Logout,
    /// Not a form: the device cookie that marks a browser which signed in
    /// to an account before (see `protocol::throttle`).
    Device,
}

impl CsrfPurpose {
    fn label(self) -> &'static [u8] {
        match self {
            CsrfPurpose::Login => b"login",
            CsrfPurpose::Consent => b"consent",
            CsrfPurpose::Logout => b"logout",
            CsrfPurpose::Device => b"device",
        }
    }
}

/// The token to put in a form bound to `binding` (the pre-login cookie or
/// the session id).
pub fn csrf_token(key: &[u8; 32], purpose: CsrfPurpose, binding: &str) -> Result<String, StoreError> {
    let mut message = purpose.label().to_vec();
    message.push(0);
    message.extend_from_slice(binding.as_bytes());
    Ok(crypto::b64url(&crypto::hmac_sha256(key, &message)?))
}

/// Whether `presented` is the token for `binding`.
pub fn csrf_ok(key: &[u8; 32], purpose: CsrfPurpose, binding: &str, presented: &str) -> bool {
    match csrf_token(key, purpose, binding) {
        Ok(expected) => crypto::ct_eq(expected.as_bytes(), presented.as_bytes()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_token_is_bound_to_purpose_and_binding() {
        let key = [3u8; 32];
        let token = csrf_token(&key, CsrfPurpose::Login, "cookie-1").unwrap();
        assert!(csrf_ok(&key, CsrfPurpose::Login, "cookie-1", &token));
        assert!(!csrf_ok(&key, CsrfPurpose::Login, "cookie-2", &token));
        assert!(!csrf_ok(&key, CsrfPurpose::Consent, "cookie-1", &token));
        assert!(!csrf_ok(&[4u8; 32], CsrfPurpose::Login, "cookie-1", &token));
        assert!(!csrf_ok(&key, CsrfPurpose::Login, "cookie-1", ""));
    }
}
