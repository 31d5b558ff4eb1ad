//! The stored side of grants: authorization codes, token families and
//! refresh tokens, as the protocol sees them, and the store traits the
//! Postgres layer implements.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use crate::domain::ScopeSet;
use crate::model::User;

/// Authorization codes live 60 seconds (RFC 9700 section 4.2.1 wants them
/// short-lived; oxide-auth's own default is 10 minutes).
pub const CODE_TTL_SECONDS: i64 = 60;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewCode {
    pub code_hash: Vec<u8>,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_hash: Option<Vec<u8>>,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scope: ScopeSet,
    pub code_challenge: String,
    pub family_id: Uuid,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub sign_in: SignIn,
}

/// What an ID token issued from a code or a family says of the sign-in
/// behind it (OIDC Core section 2): the authorization request's `nonce`
/// (codes only), the browser session's public id and its sign-in time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignIn {
    pub nonce: Option<String>,
    pub sid: Option<Uuid>,
    pub auth_time: Option<DateTime<Utc>>,
}

/// A code that was just consumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCode {
    pub client_id: String,
    pub user_id: Uuid,
    pub session_hash: Option<Vec<u8>>,
    pub redirect_uri: String,
    pub redirect_uri_given: bool,
    pub scope: ScopeSet,
    pub code_challenge: String,
    pub family_id: Uuid,
    pub expires_at: DateTime<Utc>,
    pub sign_in: SignIn,
}

/// What consuming a code found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Consumed {
    /// First use; the code is now spent.
    Fresh(StoredCode),
    /// First use, but too late; the code is now spent.
    Expired,
    /// Used before: the tokens issued from it must be revoked.
    Replayed {
        family_id: Uuid,
    },
    Unknown,
}

/// Codes: written at the authorization endpoint, consumed (atomically, at
/// most once) at the token endpoint.
pub trait CodeStore {
    fn insert_code(&mut self, code: &NewCode) -> Result<(), StoreError>;
    /// Consumes the code if it is `client_id`'s; another client's code is
    /// `Unknown` to it and stays usable by its owner.
    fn consume_code(
        &mut self,
        code_hash: &[u8],
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Consumed, StoreError>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewFamily {
    pub id: Uuid,
    pub client_id: String,
    pub user_id: Uuid,
    pub session_hash: Option<Vec<u8>>,
    pub scope: ScopeSet,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The code's session and sign-in time (its nonce is not kept).
    pub sid: Option<Uuid>,
    pub auth_time: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewRefreshToken {
    pub token_hash: Vec<u8>,
    pub family_id: Uuid,
    pub client_id: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// Why a family was revoked (kept for operators).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RevocationReason {
    CodeReplayed,
    RefreshTokenReused,
    RevokedByClient,
    Logout,
    /// `user set-password`, `user set-roles`, `user disable`.
    PasswordChanged,
    RolesChanged,
    UserDisabled,
}

impl RevocationReason {
    pub fn as_str(self) -> &'static str {
        match self {
            RevocationReason::CodeReplayed => "code_replayed",
            RevocationReason::RefreshTokenReused => "refresh_token_reused",
            RevocationReason::RevokedByClient => "revoked_by_client",
            RevocationReason::Logout => "logout",
            RevocationReason::PasswordChanged => "password_changed",
            RevocationReason::RolesChanged => "roles_changed",
            RevocationReason::UserDisabled => "user_disabled",
        }
    }
}

/// Token families and their refresh tokens.
pub trait FamilyStore {
    fn create_family(&mut self, family: &NewFamily) -> Result<(), StoreError>;
    fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<(), StoreError>;
    /// Marks the family revoked; its refresh tokens stop working and its
    /// access tokens introspect as inactive. Revoking twice is harmless.
    fn revoke_family(
        &mut self,
        family_id: Uuid,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// Users by id.
pub trait UserDirectory {
    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError>;
}
