//! The authorization server metadata document (RFC 8414 section 2), which
//! is also the OpenID Provider configuration (OpenID Connect Discovery 1.0
//! section 3): one document, served at both well-known paths, so the two
//! can never disagree.

use serde_json::{Value, json};

use crate::domain::Scope;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

/// The metadata document, computed once at start-up.
/// `issuer` is the issuer identifier (no trailing slash is added twice).
pub fn metadata_document(issuer: &str) -> Value {
    let url = |path: &str| format!("{}{path}", issuer.trim_end_matches('/'));
    json!({
        "issuer": issuer,
        "authorization_endpoint": url("/authorize"),
        "token_endpoint": url("/token"),
        "jwks_uri": url(JWKS_PATH),
        "userinfo_endpoint": url("/userinfo"),
        "introspection_endpoint": url("/introspect"),
        "revocation_endpoint": url("/revoke"),
        "end_session_endpoint": url("/logout"),
        // The revocation feed (RFC 8417 SETs, RFC 8936-shaped polling).
        "revocation_feed_endpoint": url("/events"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "authorization_response_iss_parameter_supported": true,
        // OpenID Connect Discovery 1.0 section 3.
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [crate::protocol::oidc::SIGNING_ALG],
        "claims_supported": [
            "iss", "sub", "aud", "exp", "iat", "auth_time", "nonce", "at_hash", "azp", "sid",
            "preferred_username",
        ],
        "claim_types_supported": ["normal"],
        "claims_parameter_supported": false,
        "request_parameter_supported": false,
        "request_uri_parameter_supported": false,
        "prompt_values_supported": crate::protocol::oidc::PROMPT_VALUES,
        "frontchannel_logout_supported": false,
        "backchannel_logout_supported": true,
        "backchannel_logout_session_supported": true,
    })
}
