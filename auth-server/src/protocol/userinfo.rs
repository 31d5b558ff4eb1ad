//! The UserInfo endpoint (OpenID Connect Core 1.0 section 5.3): the claims
//! about the user an access token with `openid` may read. The token is
//! checked as introspection checks it (signature, `typ`, `iss`, times,
//! revocation); the user must still exist and not be disabled.

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use super::StoreError;
use super::grants::UserDirectory;
use super::introspect::{AccessTokenVerifier, IntrospectionStore, valid_access_claims};
use crate::domain::{Scope, ScopeSet};

/// Why a bearer token gets no claims (RFC 6750 section 3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// 401 `invalid_token`: not ours, expired, revoked, or its user is gone.
    InvalidToken,
    /// 403 `insufficient_scope`: a valid token without `openid`.
    InsufficientScope,
}

/// The stores UserInfo reads.
pub trait UserInfoStore: IntrospectionStore + UserDirectory {}
impl<T: IntrospectionStore + UserDirectory + ?Sized> UserInfoStore for T {}

/// The UserInfo response for `token`, or why there is none.
pub fn userinfo(
    token: &str,
    issuer: &str,
    verifier: &dyn AccessTokenVerifier,
    store: &mut dyn UserInfoStore,
    now: DateTime<Utc>,
) -> Result<Result<Value, Refusal>, StoreError> {
    let Some((claims, jti, family)) = valid_access_claims(token, issuer, verifier, now) else {
        return Ok(Err(Refusal::InvalidToken));
    };
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if store.access_token_revoked(jti, family, client_id)? {
        return Ok(Err(Refusal::InvalidToken));
    }
    let scope = claims
        .get("scope")
        .and_then(Value::as_str)
        .map(ScopeSet::parse_request)
        .and_then(Result::ok)
        .unwrap_or_default();
    if !scope.contains(Scope::OpenId) {
        return Ok(Err(Refusal::InsufficientScope));
    }
    // A client-credentials token has no user (and never `openid`).
    let Some(subject) = claims
        .get("sub")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok())
    else {
        return Ok(Err(Refusal::InvalidToken));
    };
    Ok(match store.user(subject)? {
        Some(user) => Ok(super::oidc::userinfo_claims(&user, &scope)),
        None => Err(Refusal::InvalidToken),
    })
}
