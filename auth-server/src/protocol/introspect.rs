//! Token introspection (RFC 7662) for resource servers.
//!
//! Access tokens are checked like a resource server would (signature with a
//! published key, `typ`, `iss`, `exp`) and then against revocation: their
//! `jti` (RFC 7009) and their grant (`sid`: revoked by refresh-token reuse,
//! code replay or logout). Refresh tokens are looked up in the database.
//! Anything not active is exactly `{"active": false}`; `token_type_hint`
//! only changes the order of the lookups.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::StoreError;
use crate::crypto;
use crate::domain::ScopeSet;

/// Verifies our own access tokens (signature, `alg`, `typ`).
pub trait AccessTokenVerifier {
    fn verify(&self, token: &str, now: DateTime<Utc>) -> Option<Map<String, Value>>;
}

/// A refresh token as introspection reports it.
#[derive(Debug, Clone)]
pub struct RefreshInfo {
    pub client_id: String,
    /// The audiences of the access tokens this refresh token yields.
    pub audiences: Vec<String>,
    pub user_id: Uuid,
    pub username: String,
    pub scope: ScopeSet,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used: bool,
    pub family_revoked: bool,
    pub family_expires_at: DateTime<Utc>,
}

pub trait IntrospectionStore {
    /// Whether the token's `jti` was revoked or its grant (`family`) was.
    fn access_token_revoked(&mut self, jti: Uuid, family: Option<Uuid>) -> Result<bool, StoreError>;
    fn refresh_token_info(&mut self, token_hash: &[u8]) -> Result<Option<RefreshInfo>, StoreError>;
}

pub fn inactive() -> Value {
    json!({ "active": false })
}

/// Whether the text has the shape of a compact JWS.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// The claims of an access token we issued, if it is currently valid apart
/// from revocation.
pub fn valid_access_claims(
    token: &str,
    issuer: &str,
    verifier: &dyn AccessTokenVerifier,
    now: DateTime<Utc>,
) -> Option<(Map<String, Value>, Uuid, Option<Uuid>)> {
    let claims = verifier.verify(token, now)?;
    if claims.get("iss").and_then(Value::as_str) != Some(issuer) {
        return None;
    }
    let exp = claims.get("exp").and_then(Value::as_i64)?;
    if exp <= now.timestamp() {
        return None;
    }
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .and_then(|j| Uuid::parse_str(j).ok())?;
    let family = claims
        .get("sid")
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    Some((claims, jti, family))
}

fn access_token(
    token: &str,
    issuer: &str,
    verifier: &dyn AccessTokenVerifier,
    store: &mut dyn IntrospectionStore,
    now: DateTime<Utc>,
) -> Result<Option<Value>, StoreError> {
    let Some((claims, jti, family)) = valid_access_claims(token, issuer, verifier, now) else {
        return Ok(None);
    };
    if store.access_token_revoked(jti, family)? {
        return Ok(None);
    }
    let mut out = Map::new();
    out.insert("active".into(), json!(true));
    for (from, to) in [
        ("scope", "scope"),
        ("client_id", "client_id"),
        ("sub", "sub"),
        ("preferred_username", "username"),
        ("aud", "aud"),
        ("iss", "iss"),
        ("exp", "exp"),
        ("iat", "iat"),
        ("jti", "jti"),
    ] {
        if let Some(v) = claims.get(from) {
            out.insert(to.into(), v.clone());
        }
    }
    out.insert("token_type".into(), json!("Bearer"));
    Ok(Some(Value::Object(out)))
}

fn refresh_token(
    token: &str,
    issuer: &str,
    store: &mut dyn IntrospectionStore,
    now: DateTime<Utc>,
) -> Result<Option<Value>, StoreError> {
    let hash = crypto::token_hash(token);
    let Some(info) = store.refresh_token_info(&hash)? else {
        return Ok(None);
    };
    if info.used || info.family_revoked || info.expires_at <= now || info.family_expires_at <= now {
        return Ok(None);
    }
    let aud = match info.audiences.as_slice() {
        [one] => json!(one),
        many => json!(many),
    };
    Ok(Some(json!({
        "active": true,
        "scope": info.scope.to_string(),
        "client_id": info.client_id,
        "aud": aud,
        // Refresh tokens have no id of their own; the digest we store them
        // under identifies one without revealing it.
        "jti": crypto::b64url(&hash),
        "sub": info.user_id.to_string(),
        "username": info.username,
        "iss": issuer,
        "exp": info.expires_at.timestamp(),
        "iat": info.created_at.timestamp(),
        "token_type": "refresh_token",
    })))
}

/// The introspection response for `token`.
pub fn introspect(
    token: &str,
    hint: Option<&str>,
    issuer: &str,
    verifier: &dyn AccessTokenVerifier,
    store: &mut dyn IntrospectionStore,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let refresh_first = hint == Some("refresh_token") || !looks_like_jwt(token);
    let found = if refresh_first {
        match refresh_token(token, issuer, store, now)? {
            Some(v) => Some(v),
            None if looks_like_jwt(token) => access_token(token, issuer, verifier, store, now)?,
            None => None,
        }
    } else {
        match access_token(token, issuer, verifier, store, now)? {
            Some(v) => Some(v),
            None => refresh_token(token, issuer, store, now)?,
        }
    };
    Ok(found.unwrap_or_else(inactive))
}
