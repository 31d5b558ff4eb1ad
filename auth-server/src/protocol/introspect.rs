//! Token introspection (RFC 7662) for resource servers.
//!
//! Access tokens are checked like a resource server would (signature with a
//! published key, `typ`, then `iss`, `exp`, `iat` and `nbf` by the same
//! rules and leeway as the resource server: [`oauth_common::jwt`]) and then
//! against revocation: their `jti` (RFC 7009) and their grant (`sid`:
//! revoked by refresh-token reuse, code replay or logout). Refresh tokens are looked up in the database.
//! Anything not active is exactly `{"active": false}`; `token_type_hint`
//! only changes the order of the lookups.
//!
//! A caller sees a token as active only if it is meant for the caller: an
//! access token whose `aud` names one of the caller's registered audiences
//! or that was issued to the caller, and a refresh token of the caller's
//! own. Every other token gets the same `{"active": false}` as an unknown
//! one, so one resource server cannot read another's tokens.

use chrono::{DateTime, Utc};
use oauth_common::jwt::{self, TimeRules};
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
    /// Whether the token's `jti` was revoked, or its grant (`family`) was,
    /// or its client no longer exists (`client delete`).
    fn access_token_revoked(
        &mut self,
        jti: Uuid,
        family: Option<Uuid>,
        client_id: &str,
    ) -> Result<bool, StoreError>;
    fn refresh_token_info(&mut self, token_hash: &[u8]) -> Result<Option<RefreshInfo>, StoreError>;
}

pub fn inactive() -> Value {
    json!({ "active": false })
}

/// Whether the text has the shape of a compact JWS.
pub fn looks_like_jwt(token: &str) -> bool {
    token.split('.').count() == 3
}

/// How our own access tokens' times are judged: with the resource server's
/// default leeway, since another instance, whose clock may differ a little,
/// can have signed them. Their lifetime is ours to choose, so not bounded
/// here.
const TIME_RULES: TimeRules = TimeRules {
    leeway: jwt::DEFAULT_LEEWAY,
    max_lifetime: None,
};

/// The claims of an access token we issued, if it is currently valid apart
/// from revocation.
pub fn valid_access_claims(
    token: &str,
    issuer: &str,
    verifier: &dyn AccessTokenVerifier,
    now: DateTime<Utc>,
) -> Option<(Map<String, Value>, Uuid, Option<Uuid>)> {
    let claims = verifier.verify(token, now)?;
    jwt::check_issuer(&claims, issuer).ok()?;
    jwt::check_times(&claims, now, &TIME_RULES).ok()?;
    let jti = claims
        .get("jti")
        .and_then(Value::as_str)
        .and_then(|j| Uuid::parse_str(j).ok())?;
    // `grant_id` names the refresh family. Tokens signed before it existed
    // carried the family in `sid` (now the browser session); they expire
    // within one access-token lifetime of the upgrade.
    let family_claim = if claims.contains_key("grant_id") {
        "grant_id"
    } else {
        "sid"
    };
    let family = claims
        .get(family_claim)
        .and_then(Value::as_str)
        .and_then(|s| Uuid::parse_str(s).ok());
    Some((claims, jti, family))
}

/// When introspection stops calling a token with these claims active: its
/// `exp` plus the leeway. A revocation must be kept until then.
pub fn active_until(claims: &Map<String, Value>) -> Option<DateTime<Utc>> {
    let end = jwt::expired_from(jwt::number(claims, "exp")?, TIME_RULES.leeway);
    Some(DateTime::from_timestamp(end, 0).unwrap_or(DateTime::<Utc>::MAX_UTC))
}

/// Whether an access token's claims are meant for `caller`.
fn meant_for(claims: &Map<String, Value>, caller: &Client) -> bool {
    if claims.get("client_id").and_then(Value::as_str) == Some(caller.client_id.as_str()) {
        return true;
    }
    jwt::audiences(claims).any(|aud| caller.audiences.iter().any(|a| a == aud))
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
    let client_id = claims
        .get("client_id")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if store.access_token_revoked(jti, family, client_id)? {
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

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::registration::ClientRegistration;

    const ISSUER: &str = "https://auth.example.com";
    const AUDIENCE: &str = "https://api.example.com/api";
    const NOW: i64 = 1_800_000_000;
    const JTI: &str = "0190a1b2-c3d4-7e5f-8a9b-0c1d2e3f4a5b";

    fn at(t: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(t, 0).unwrap()
    }

    /// Accepts any token the test registered, as if its signature were good.
    struct Signed(HashMap<String, Map<String, Value>>);

    impl AccessTokenVerifier for Signed {
        fn verify(&self, token: &str, _now: DateTime<Utc>) -> Option<Map<String, Value>> {
            self.0.get(token).cloned()
        }
    }

    /// Nothing is revoked and there are no refresh tokens.
    struct Empty;

    impl IntrospectionStore for Empty {
        fn access_token_revoked(&mut self, _: Uuid, _: Option<Uuid>, _: &str) -> Result<bool, StoreError> {
            Ok(false)
        }
        fn refresh_token_info(&mut self, _: &[u8]) -> Result<Option<RefreshInfo>, StoreError> {
            Ok(None)
        }
    }

    fn caller() -> Client {
        ClientRegistration {
            name: "notes api".into(),
            confidential: true,
            allow_introspection: true,
            audiences: vec![AUDIENCE.into()],
            ..Default::default()
        }
        .check(AUDIENCE)
        .unwrap()
        .client
    }

    fn claims() -> Map<String, Value> {
        json!({
            "iss": ISSUER, "aud": AUDIENCE, "sub": "u1", "client_id": "spa",
            "jti": JTI, "iat": NOW - 60, "exp": NOW + 540, "scope": "profile",
        })
        .as_object()
        .unwrap()
        .clone()
    }

    fn set(pairs: &[(&str, Value)]) -> Map<String, Value> {
        let mut c = claims();
        for (name, value) in pairs {
            c.insert((*name).to_owned(), value.clone());
        }
        c
    }

    fn without(name: &str) -> Map<String, Value> {
        let mut c = claims();
        c.remove(name);
        c
    }

    /// Whether the token with these claims introspects as active at `now`.
    fn active(claims: Map<String, Value>, now: i64) -> bool {
        let verifier = Signed(HashMap::from([("a.b.c".to_owned(), claims)]));
        let caller = caller();
        let request = Request {
            token: "a.b.c",
            hint: None,
            caller: &caller,
            issuer: ISSUER,
        };
        let answer = introspect(&request, &verifier, &mut Empty, at(now)).unwrap();
        if answer == inactive() {
            return false;
        }
        assert_eq!(answer["active"], true, "{answer}");
        true
    }

    #[test]
    fn a_current_token_meant_for_the_caller_is_active() {
        assert!(active(claims(), NOW));
        assert!(!active(set(&[("aud", json!("https://other.example"))]), NOW));
        assert!(!active(set(&[("iss", json!("https://evil.example"))]), NOW));
    }

    #[test]
    fn an_access_token_expired_within_the_leeway_is_still_active() {
        assert!(active(set(&[("exp", json!(NOW - 29))]), NOW));
        assert!(!active(set(&[("exp", json!(NOW - 30))]), NOW));
        assert!(!active(without("exp"), NOW));
    }

    #[test]
    fn an_access_token_with_nbf_beyond_the_leeway_is_inactive() {
        assert!(active(set(&[("nbf", json!(NOW + 30))]), NOW));
        assert!(!active(set(&[("nbf", json!(NOW + 31))]), NOW));
    }

    #[test]
    fn an_access_token_issued_far_in_the_future_is_inactive() {
        let issued = |iat: i64| set(&[("iat", json!(iat)), ("exp", json!(iat + 600))]);
        assert!(active(issued(NOW + 30), NOW));
        assert!(!active(issued(NOW + 31), NOW));
        assert!(!active(issued(NOW + 86_400), NOW));
        assert!(!active(without("iat"), NOW));
    }

    #[test]
    fn a_revocation_is_kept_as_long_as_the_leeway_keeps_the_token_active() {
        let until = active_until(&claims()).unwrap();
        assert_eq!(until, at(NOW + 540 + 30));
        assert!(active(claims(), until.timestamp() - 1));
        assert!(!active(claims(), until.timestamp()));
    }
}
