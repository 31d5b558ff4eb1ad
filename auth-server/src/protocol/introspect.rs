//! Token introspection (RFC 7662) for resource servers.
//!
//! Access tokens are checked like a resource server would (signature with a
//! published key, `typ`, `iss`, `exp`) and then against revocation: their
//! `jti` (RFC 7009) and their grant (`sid`: revoked by refresh-token reuse,
//! code replay or logout). Refresh tokens are looked up in the database.
//! Anything not active is exactly `{"active": false}`; `token_type_hint`
//! only changes the order of the lookups.
//!
//! A caller sees a token as active only if it is meant for the caller: an
//! access token whose `aud` names one of the caller's registered audiences
//! or that was issued to the caller, and a refresh token of the caller's
//! own. Every other token gets the same `{"active": false}` as an unknown
//! one, so one resource server cannot read another's tokens.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::StoreError;
use crate::crypto;
use crate::domain::ScopeSet;
use crate::model::Client;

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

/// Whether an access token's claims are meant for `caller`.
fn meant_for(claims: &Map<String, Value>, caller: &Client) -> bool {
    if claims.get("client_id").and_then(Value::as_str) == Some(caller.client_id.as_str()) {
        return true;
    }
    let names = |aud: &str| caller.audiences.iter().any(|a| a == aud);
    match claims.get("aud") {
        Some(Value::String(aud)) => names(aud),
        Some(Value::Array(auds)) => auds.iter().filter_map(Value::as_str).any(names),
        _ => false,
    }
}

/// One introspection request.
pub struct Request<'a> {
    pub token: &'a str,
    pub hint: Option<&'a str>,
    /// The authenticated client asking.
    pub caller: &'a Client,
    pub issuer: &'a str,
}

fn access_token(
    request: &Request<'_>,
    verifier: &dyn AccessTokenVerifier,
    store: &mut dyn IntrospectionStore,
    now: DateTime<Utc>,
) -> Result<Option<Value>, StoreError> {
    let Some((claims, jti, family)) = valid_access_claims(request.token, request.issuer, verifier, now)
    else {
        return Ok(None);
    };
    if !meant_for(&claims, request.caller) {
        return Ok(None);
    }
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
    request: &Request<'_>,
    store: &mut dyn IntrospectionStore,
    now: DateTime<Utc>,
) -> Result<Option<Value>, StoreError> {
    let hash = crypto::token_hash(request.token);
    let Some(info) = store.refresh_token_info(&hash)? else {
        return Ok(None);
    };
    if info.client_id != request.caller.client_id {
        return Ok(None);
    }
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
        "iss": request.issuer,
        "exp": info.expires_at.timestamp(),
        "iat": info.created_at.timestamp(),
        "token_type": "refresh_token",
    })))
}

/// The introspection response for `request.token`, as `request.caller` may
/// see it.
pub fn introspect(
    request: &Request<'_>,
    verifier: &dyn AccessTokenVerifier,
    store: &mut dyn IntrospectionStore,
    now: DateTime<Utc>,
) -> Result<Value, StoreError> {
    let jwt = looks_like_jwt(request.token);
    let refresh_first = request.hint == Some("refresh_token") || !jwt;
    let found = if refresh_first {
        match refresh_token(request, store, now)? {
            Some(v) => Some(v),
            None if jwt => access_token(request, verifier, store, now)?,
            None => None,
        }
    } else {
        match access_token(request, verifier, store, now)? {
            Some(v) => Some(v),
            None => refresh_token(request, store, now)?,
        }
    };
    Ok(found.unwrap_or_else(inactive))
}
