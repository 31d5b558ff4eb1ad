//! Minting tokens: RFC 9068 access tokens (JWT, `typ: at+jwt`) and opaque
//! refresh tokens, and the token response (RFC 6749 section 5.1).

use std::fmt;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::StoreError;
use super::grants::NewRefreshToken;
use crate::crypto;
use crate::domain::ScopeSet;
use crate::model::{Client, User};

/// Lifetimes and the issuer, from the settings.
#[derive(Debug, Clone)]
pub struct TokenPolicy {
    pub issuer: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
    pub family_ttl: Duration,
    pub refresh_grace: Duration,
}

fn chrono_duration(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

impl TokenPolicy {
    pub fn access_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono_duration(self.access_ttl)
    }

    pub fn family_expiry(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono_duration(self.family_ttl)
    }

    /// A refresh token's expiry: its idle lifetime, never past the family's
    /// absolute expiry.
    pub fn refresh_expiry(&self, now: DateTime<Utc>, family_expires_at: DateTime<Utc>) -> DateTime<Utc> {
        (now + chrono_duration(self.refresh_ttl)).min(family_expires_at)
    }

    pub fn grace_until(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        now + chrono_duration(self.refresh_grace)
    }
}

/// What a signed JWT is, as its `typ` header says (RFC 8725 section 3.11):
/// a token of one kind can never be taken for another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JwtType {
    /// RFC 9068: `at+jwt`.
    Access,
    /// OIDC Core: `JWT` (never `at+jwt`, so no resource server accepts it).
    Id,
    /// Back-Channel Logout 1.0 section 2.4: `logout+jwt`.
    Logout,
    /// RFC 8417 section 2.3: `secevent+jwt` (the revocation feed).
    SecurityEvent,
}

impl JwtType {
    pub fn header(self) -> &'static str {
        match self {
            JwtType::Access => "at+jwt",
            JwtType::Id => "JWT",
            JwtType::Logout => "logout+jwt",
            JwtType::SecurityEvent => "secevent+jwt",
        }
    }
}

/// Signs JWT claims with the current key.
pub trait AccessTokenSigner {
    fn sign_typed(
        &self,
        typ: JwtType,
        claims: Map<String, Value>,
        now: DateTime<Utc>,
    ) -> Result<String, StoreError>;

    /// Signs an access token.
    fn sign(&self, claims: Map<String, Value>, now: DateTime<Utc>) -> Result<String, StoreError> {
        self.sign_typed(JwtType::Access, claims, now)
    }
}

/// Who the token is about.
#[derive(Debug, Clone, Copy)]
pub enum Subject<'a> {
    /// A user, through a grant that belongs to `family`, signed in through
    /// the browser session `sid`.
    User {
        user: &'a User,
        family: Uuid,
        sid: Option<Uuid>,
    },
    /// The client itself (`client_credentials`): `sub` is the client id.
    Client,
}

#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken {
    pub token: String,
    pub jti: Uuid,
    pub expires_at: DateTime<Utc>,
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AccessToken")
            .field("jti", &self.jti)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Builds and signs an access token. `iat` and `exp` are integers (josekit
/// would write floats through its own setters).
pub fn mint_access_token(
    signer: &dyn AccessTokenSigner,
    policy: &TokenPolicy,
    client: &Client,
    subject: Subject<'_>,
    scope: &ScopeSet,
    now: DateTime<Utc>,
) -> Result<AccessToken, StoreError> {
    let jti = uuid::Builder::from_random_bytes(crypto::random_userspace::<16>()?).into_uuid();
    let expires_at = policy.access_expiry(now);
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(policy.issuer));
    claims.insert(
        "sub".into(),
        match subject {
            Subject::User { user, .. } => json!(user.id.to_string()),
            Subject::Client => json!(client.client_id),
        },
    );
    claims.insert(
        "aud".into(),
        match client.audiences.as_slice() {
            [one] => json!(one),
            many => json!(many),
        },
    );
    claims.insert("exp".into(), json!(expires_at.timestamp()));
    claims.insert("iat".into(), json!(now.timestamp()));
    claims.insert("jti".into(), json!(jti.to_string()));
    claims.insert("client_id".into(), json!(client.client_id));
    claims.insert("scope".into(), json!(scope.to_string()));
    if let Subject::User { user, family, sid } = subject {
        claims.insert("roles".into(), json!(user.roles.to_strings()));
        claims.insert("preferred_username".into(), json!(user.username));
        // The grant this token descends from; revoking the grant (refresh
        // reuse, code replay, logout) makes the token introspect inactive.
        claims.insert("grant_id".into(), json!(family.to_string()));
        // The browser session, as in the ID token (docs/tokens.md).
        if let Some(sid) = sid {
            claims.insert("sid".into(), json!(sid.to_string()));
        }
    }
    let token = signer.sign(claims, now)?;
    Ok(AccessToken {
        token,
        jti,
        expires_at,
    })
}

/// A new refresh token: the raw value for the client and the row to store.
pub fn mint_refresh_token(
    family_id: Uuid,
    client_id: &str,
    now: DateTime<Utc>,
    expires_at: DateTime<Utc>,
) -> Result<(String, NewRefreshToken), StoreError> {
    let raw = crypto::random_token()?;
    let row = NewRefreshToken {
        token_hash: crypto::token_hash(&raw),
        family_id,
        client_id: client_id.to_owned(),
        created_at: now,
        expires_at,
    };
    Ok((raw, row))
}

/// The successful token response (RFC 6749 section 5.1).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
    pub scope: String,
    /// OpenID Connect: with `openid` in the scope.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_token: Option<String>,
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .field(
                "refresh_token",
                &self.refresh_token.as_ref().map(|_| "[redacted]"),
            )
            .field("id_token", &self.id_token.as_ref().map(|_| "[redacted]"))
            .finish_non_exhaustive()
    }
}

impl TokenResponse {
    pub fn new(
        access: &AccessToken,
        refresh_token: Option<String>,
        scope: &ScopeSet,
        now: DateTime<Utc>,
    ) -> Self {
        Self {
            access_token: access.token.clone(),
            token_type: "Bearer".into(),
            expires_in: (access.expires_at - now).num_seconds().max(0),
            refresh_token,
            scope: scope.to_string(),
            id_token: None,
        }
    }
}

/// What the ID token of a user grant needs beyond the access token: the
/// grant's session, its sign-in time and, at the code exchange only, the
/// authorization request's `nonce`.
#[derive(Debug, Clone, Copy)]
pub struct IdTokenContext<'a> {
    pub subject: Uuid,
    pub sid: Option<Uuid>,
    pub auth_time: Option<DateTime<Utc>>,
    pub nonce: Option<&'a str>,
}

/// Signs the ID token that goes with `access` when the scope has `openid`
/// (OIDC Core section 3.1.3.3); `None` otherwise. It lives as long as the
/// access token.
pub fn mint_id_token(
    signer: &dyn AccessTokenSigner,
    policy: &TokenPolicy,
    client: &Client,
    scope: &ScopeSet,
    access: &AccessToken,
    context: IdTokenContext<'_>,
    now: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    if !scope.contains(crate::domain::Scope::OpenId) {
        return Ok(None);
    }
    let claims = super::oidc::id_token_claims(&super::oidc::IdTokenInput {
        issuer: &policy.issuer,
        client_id: &client.client_id,
        subject: context.subject,
        auth_time: context.auth_time,
        nonce: context.nonce,
        sid: context.sid,
        access_token: &access.token,
        lifetime: policy.access_ttl,
        now,
    });
    signer.sign_typed(JwtType::Id, claims, now).map(Some)
}
