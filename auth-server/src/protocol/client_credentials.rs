//! The `client_credentials` grant (RFC 6749 section 4.4): a confidential
//! client gets a token about itself. No refresh token, no roles, `sub` is
//! the client id. Needs no storage: the client comes from the cache and the
//! key from memory.

use chrono::{DateTime, Utc};

use super::tokens::{self, AccessTokenSigner, Subject, TokenPolicy, TokenResponse};
use super::{OAuthError, Params, scope};
use crate::domain::{ClientKind, Scope};
use crate::model::Client;

pub fn issue(
    params: &Params,
    client: &Client,
    policy: &TokenPolicy,
    signer: &dyn AccessTokenSigner,
    now: DateTime<Utc>,
) -> Result<TokenResponse, OAuthError> {
    if client.kind != ClientKind::Confidential {
        return Err(OAuthError::UnauthorizedClient(
            "client_credentials needs a confidential client",
        ));
    }
    let requested = scope::parse_requested(params.get("scope"))?;
    // No user, so never `openid`: a request for it alone gets nothing.
    let allowed = client.scopes.without(Scope::OpenId);
    let granted = scope::grant(requested.as_ref(), &allowed, None)?;
    let access = tokens::mint_access_token(signer, policy, client, Subject::Client, &granted, now)?;
    Ok(TokenResponse::new(&access, None, &granted, now))
}
