//! oxide-auth as the engine of the authorization endpoint and of the
//! `authorization_code` grant. This is the only module that names
//! oxide-auth, so the engine could be replaced without touching the rest.
//!
//! We drive oxide-auth's `code_grant` state machines directly, with our own
//! `Registrar`, `Authorizer`, `Issuer` and PKCE extension, rather than its
//! `endpoint` frontends, and we map every outcome ourselves. What we correct
//! or add around the engine (each has a test in `tests/api`):
//!
//! - repeated parameters are refused before the engine sees them (it would
//!   treat them as absent);
//! - PKCE: `S256` only and the challenge's format is checked (the stock
//!   extension accepts any string);
//! - at the token endpoint the rules of the grant (replay, client match,
//!   exact redirect URI, PKCE verifier) are [`super::code::judge`]'s, a pure
//!   function; the engine's own checks never get to refuse first, and its
//!   wall-clock expiry check is disarmed because expiry is judged against
//!   the injected clock when the code is consumed;
//! - the code is consumed only by the client it was issued to: another
//!   client gets `invalid_grant` and the code stays usable by its owner;
//! - codes live 60 s, not the engine's 10 minutes, and are consumed
//!   atomically in the database;
//! - store failures become `temporarily_unavailable`/`server_error`, never
//!   a misleading `invalid_grant`;
//! - `iss` is added to every authorization response (RFC 9207).

mod authorization;
mod exchange;

use oxide_auth::primitives::grant::GrantExtension;
use oxide_auth::primitives::scope::Scope as EngineScope;
use url::Url;

pub use authorization::{AuthorizationOutcome, AuthorizationRequest, Step, authorize};
pub use exchange::{CodeExchange, GrantStores, exchange_code};

use super::{OAuthError, StoreError};
use crate::domain::{RedirectUri, ScopeSet};

/// Stands in for an omitted `redirect_uri` at the token endpoint (allowed
/// when the authorization request omitted it too, OAuth 2.1 section 4.1.3).
const OMITTED_REDIRECT_URI: &str = "urn:x-oauth:redirect-uri-omitted";

struct PkceKey;

impl GrantExtension for PkceKey {
    fn identifier(&self) -> &'static str {
        "pkce"
    }
}

fn engine_scope(scope: &ScopeSet) -> Result<EngineScope, StoreError> {
    scope
        .to_string()
        .parse()
        .map_err(|_| StoreError::Internal("scope did not convert for the engine".into()))
}

/// Adds `iss` (RFC 9207) to an authorization response.
fn with_issuer(mut url: Url, issuer: &str) -> Url {
    url.query_pairs_mut().append_pair("iss", issuer);
    url
}

/// An error response to the client's redirect URI (RFC 6749 section
/// 4.1.2.1), with `state` and `iss`.
pub fn error_redirect(
    redirect_uri: &RedirectUri,
    error: &OAuthError,
    state: Option<&str>,
    issuer: &str,
) -> Url {
    // The URI was checked at registration, so it parses.
    let mut url = Url::parse(redirect_uri.as_str()).unwrap_or_else(|_| {
        #[allow(clippy::unwrap_used)]
        Url::parse(OMITTED_REDIRECT_URI).unwrap()
    });
    {
        let mut pairs = url.query_pairs_mut();
        pairs.append_pair("error", error.code());
        if let Some(description) = error.description() {
            pairs.append_pair("error_description", description);
        }
        if let Some(state) = state {
            pairs.append_pair("state", state);
        }
        pairs.append_pair("iss", issuer);
    }
    url
}
