//! Token revocation (RFC 7009). Only the client a token was issued to can
//! revoke it; for anyone else, and for unknown or already revoked tokens,
//! the answer is the same 200 and nothing happens (section 2.2).
//!
//! A refresh token revokes its whole family (and so the access tokens of
//! that grant, for introspection). An access token has its `jti` recorded
//! until it expires and introspection's leeway is over.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StoreError;
use super::grants::{FamilyStore, RevocationReason};
use super::introspect::{AccessTokenVerifier, active_until, looks_like_jwt, valid_access_claims};
use crate::crypto;
use crate::model::Client;

pub trait RevocationStore: FamilyStore {
    /// The family and client of a refresh token.
    fn refresh_token_owner(&mut self, token_hash: &[u8]) -> Result<Option<(Uuid, String)>, StoreError>;
    fn revoke_access_token(
        &mut self,
        jti: Uuid,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;
}

/// What was revoked, for the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    RefreshFamily,
    AccessToken,
    Nothing,
}

pub fn revoke(
    token: &str,
    hint: Option<&str>,
    client: &Client,
    issuer: &str,
    verifier: &dyn AccessTokenVerifier,
    store: &mut dyn RevocationStore,
    now: DateTime<Utc>,
) -> Result<Revoked, StoreError> {
    let try_access = |store: &mut dyn RevocationStore| -> Result<Revoked, StoreError> {
        if !looks_like_jwt(token) {
            return Ok(Revoked::Nothing);
        }
        let Some((claims, jti, _)) = valid_access_claims(token, issuer, verifier, now) else {
            return Ok(Revoked::Nothing);
        };
        if claims.get("client_id").and_then(|v| v.as_str()) != Some(client.client_id.as_str()) {
            return Ok(Revoked::Nothing);
        }
        // Kept while introspection's leeway could still call it active.
        store.revoke_access_token(jti, active_until(&claims).unwrap_or(now), now)?;
        Ok(Revoked::AccessToken)
    };
    let try_refresh = |store: &mut dyn RevocationStore| -> Result<Revoked, StoreError> {
        match store.refresh_token_owner(&crypto::token_hash(token))? {
            Some((family, owner)) if owner == client.client_id => {
                store.revoke_family(family, RevocationReason::RevokedByClient, now)?;
                Ok(Revoked::RefreshFamily)
            }
            _ => Ok(Revoked::Nothing),
        }
    };
    let access_first =
        hint == Some("access_token") || (hint != Some("refresh_token") && looks_like_jwt(token));
    let first = if access_first {
        try_access(store)?
    } else {
        try_refresh(store)?
    };
    match first {
        Revoked::Nothing if access_first => try_refresh(store),
        Revoked::Nothing => try_access(store),
        done => Ok(done),
    }
}
