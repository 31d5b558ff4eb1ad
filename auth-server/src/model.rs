//! The records the protocol works with, as plain values (no diesel types).

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::domain::{ClientKind, GrantType, RedirectUri, Roles, ScopeSet};

/// A user as the protocol needs it (never the password hash).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub id: Uuid,
    pub username: String,
    pub roles: Roles,
}

/// A registered client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Client {
    pub client_id: String,
    pub name: String,
    pub kind: ClientKind,
    /// SHA-256 of the secret, for confidential clients.
    pub secret_hash: Option<Vec<u8>>,
    /// The secret `client rotate-secret` replaced, still accepted until the
    /// end of the overlap.
    pub previous_secret: Option<PreviousSecret>,
    pub redirect_uris: Vec<RedirectUri>,
    pub post_logout_redirect_uris: Vec<RedirectUri>,
    pub grant_types: BTreeSet<GrantType>,
    pub scopes: ScopeSet,
    pub audiences: Vec<String>,
    pub first_party: bool,
    pub allow_introspection: bool,
    /// Where logout tokens are POSTed (OpenID Connect Back-Channel Logout
    /// 1.0 section 2.2).
    pub backchannel_logout_uri: Option<String>,
    /// Authorization requests with `openid` must carry a `nonce`.
    pub require_nonce: bool,
    /// May read the revocation feed (confidential clients only).
    pub allow_events: bool,
}

/// A replaced client secret during its overlap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreviousSecret {
    /// SHA-256 of the old secret.
    pub hash: Vec<u8>,
    /// From then on only the new secret works.
    pub expires_at: DateTime<Utc>,
}

impl Client {
    pub fn allows_grant(&self, grant: GrantType) -> bool {
        self.grant_types.contains(&grant)
    }

    /// The registered redirect URI equal to `candidate` as a string.
    pub fn redirect_uri(&self, candidate: &str) -> Option<&RedirectUri> {
        self.redirect_uris.iter().find(|u| u.as_str() == candidate)
    }

    /// Whether `candidate` may follow logout: an exact match with a
    /// registered post-logout URI, or, for clients that registered none,
    /// with one of their redirect URIs.
    pub fn accepts_post_logout_redirect(&self, candidate: &str) -> bool {
        let list = if self.post_logout_redirect_uris.is_empty() {
            &self.redirect_uris
        } else {
            &self.post_logout_redirect_uris
        };
        list.iter().any(|u| u.as_str() == candidate)
    }
}
