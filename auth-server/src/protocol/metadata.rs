//! The authorization server metadata document (RFC 8414 section 2).

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
        "introspection_endpoint": url("/introspect"),
        "revocation_endpoint": url("/revoke"),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token", "client_credentials"],
        "code_challenge_methods_supported": ["S256"],
        "token_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "introspection_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post"],
        "revocation_endpoint_auth_methods_supported": ["client_secret_basic", "client_secret_post", "none"],
        "scopes_supported": Scope::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "authorization_response_iss_parameter_supported": true,
    })
}
