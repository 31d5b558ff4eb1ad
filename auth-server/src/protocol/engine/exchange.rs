//! The `authorization_code` grant through oxide-auth's `access_token`
//! state machine. The rules are [`code::judge`]'s; this file consumes the
//! code, asks the judge, and issues the tokens.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use oxide_auth::code_grant::accesstoken::{self as exchange, Authorization as PresentedAuthorization};
use oxide_auth::code_grant::error::AccessTokenErrorType;
use oxide_auth::primitives::authorizer::Authorizer;
use oxide_auth::primitives::grant::{Extensions, Grant};
use oxide_auth::primitives::issuer::{IssuedToken, Issuer, RefreshedToken, TokenType};
use oxide_auth::primitives::registrar::{BoundClient, ClientUrl, PreGrant, Registrar, RegistrarError};
use oxide_auth::primitives::scope::Scope as EngineScope;
use url::Url;

use super::{OMITTED_REDIRECT_URI, engine_scope};
use crate::crypto;
use crate::model::Client;
use crate::protocol::code::{self, Presented, Verdict};
use crate::protocol::grants::{
    CodeStore, FamilyStore, NewFamily, RevocationReason, StoredCode, UserDirectory,
};
use crate::protocol::tokens::{self, AccessTokenSigner, Subject, TokenPolicy, TokenResponse};
use crate::protocol::{OAuthError, Params, StoreError};

/// Stores the code exchange needs.
pub trait GrantStores: CodeStore + FamilyStore + UserDirectory {}
impl<T: CodeStore + FamilyStore + UserDirectory + ?Sized> GrantStores for T {}

/// A token request with `grant_type=authorization_code` from an
/// authenticated client.
pub struct CodeExchange<'a> {
    pub params: &'a Params,
    pub client: &'a Client,
    pub policy: &'a TokenPolicy,
    pub signer: &'a dyn AccessTokenSigner,
    pub now: DateTime<Utc>,
}

struct ExchangeParams<'a> {
    params: &'a Params,
    client_id: &'a str,
}

impl exchange::Request for ExchangeParams<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn code(&self) -> Option<Cow<'_, str>> {
        self.params.get("code").map(Cow::Borrowed)
    }
    fn authorization(&self) -> PresentedAuthorization<'_> {
        // The client was authenticated before the engine runs.
        PresentedAuthorization::None
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(self.client_id))
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        Some(Cow::Borrowed(
            self.params.get("redirect_uri").unwrap_or(OMITTED_REDIRECT_URI),
        ))
    }
    fn grant_type(&self) -> Option<Cow<'_, str>> {
        self.params.get("grant_type").map(Cow::Borrowed)
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.params.get(key).map(Cow::Borrowed)
    }
}

struct ExchangeEndpoint<'a> {
    request: &'a CodeExchange<'a>,
    stores: &'a mut dyn GrantStores,
    consumed: Option<StoredCode>,
    failure: Option<OAuthError>,
    store_failure: Option<StoreError>,
    issued: Option<TokenResponse>,
}

impl ExchangeEndpoint<'_> {
    fn fail(&mut self, error: OAuthError) {
        self.failure.get_or_insert(error);
    }

    fn store_failed(&mut self, error: StoreError) {
        self.store_failure.get_or_insert(error);
    }

    fn issue_tokens(&mut self) -> Result<IssuedToken, ()> {
        let request = self.request;
        let code = self.consumed.clone().ok_or(())?;
        let user = match self.stores.user(code.user_id) {
            Ok(user) => user,
            Err(e) => {
                self.store_failed(e);
                return Err(());
            }
        };
        let scope = match code::redeemable_scope(&code, user.as_ref()) {
            Ok(scope) => scope,
            Err(refusal) => {
                self.fail(refusal);
                return Err(());
            }
        };
        let Some(user) = user else {
            return Err(());
        };
        let family = NewFamily {
            id: code.family_id,
            client_id: request.client.client_id.clone(),
            user_id: user.id,
            session_hash: code.session_hash.clone(),
            scope: scope.clone(),
            created_at: request.now,
            expires_at: request.policy.family_expiry(request.now),
            sid: code.sign_in.sid,
            auth_time: code.sign_in.auth_time,
        };
        let result = (|| -> Result<TokenResponse, StoreError> {
            let access = tokens::mint_access_token(
                request.signer,
                request.policy,
                request.client,
                Subject::User {
                    user: &user,
                    family: family.id,
                    sid: family.sid,
                },
                &scope,
                request.now,
            )?;
            // The nonce comes only from the stored code: nothing in the
            // token request can change what the ID token echoes.
            let id_token = tokens::mint_id_token(
                request.signer,
                request.policy,
                request.client,
                &scope,
                &access,
                tokens::IdTokenContext {
                    subject: user.id,
                    sid: code.sign_in.sid,
                    auth_time: code.sign_in.auth_time,
                    nonce: code.sign_in.nonce.as_deref(),
                },
                request.now,
            )?;
            self.stores.create_family(&family)?;
            let refresh = if request
                .client
                .allows_grant(crate::domain::GrantType::RefreshToken)
            {
                let expires = request.policy.refresh_expiry(request.now, family.expires_at);
                let (raw, row) =
                    tokens::mint_refresh_token(family.id, &request.client.client_id, request.now, expires)?;
                self.stores.insert_refresh_token(&row)?;
                Some(raw)
            } else {
                None
            };
            let mut response = TokenResponse::new(&access, refresh, &scope, request.now);
            response.id_token = id_token;
            Ok(response)
        })();
        match result {
            Ok(response) => {
                let issued = IssuedToken {
                    token: response.access_token.clone(),
                    refresh: response.refresh_token.clone(),
                    until: request.now + chrono::Duration::seconds(response.expires_in),
                    token_type: TokenType::Bearer,
                };
                self.issued = Some(response);
                Ok(issued)
            }
            Err(e) => {
                self.store_failed(e);
                Err(())
            }
        }
    }
}

impl Registrar for ExchangeEndpoint<'_> {
    fn bound_redirect<'b>(&self, _bound: ClientUrl<'b>) -> Result<BoundClient<'b>, RegistrarError> {
        Err(RegistrarError::Unspecified)
    }
    fn negotiate(
        &self,
        _client: BoundClient<'_>,
        _scope: Option<EngineScope>,
    ) -> Result<PreGrant, RegistrarError> {
        Err(RegistrarError::Unspecified)
    }
    fn check(&self, client_id: &str, passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        // Authentication already happened (`client_auth`); the engine only
        // needs to know this is the client we authenticated.
        if client_id == self.request.client.client_id && passphrase.is_none() {
            Ok(())
        } else {
            Err(RegistrarError::Unspecified)
        }
    }
}

impl Authorizer for ExchangeEndpoint<'_> {
    fn authorize(&mut self, _grant: Grant) -> Result<String, ()> {
        Err(())
    }

    fn extract(&mut self, code: &str) -> Result<Option<Grant>, ()> {
        let request = self.request;
        let consumed =
            match self
                .stores
                .consume_code(&crypto::token_hash(code), &request.client.client_id, request.now)
            {
                Ok(c) => c,
                Err(e) => {
                    self.store_failed(e);
                    return Err(());
                }
            };
        let presented = Presented {
            client_id: &request.client.client_id,
            redirect_uri: request.params.get("redirect_uri"),
            code_verifier: request.params.get("code_verifier"),
        };
        let stored = match code::judge(consumed, presented) {
            Verdict::Redeem(stored) => stored,
            Verdict::Refuse(error) => {
                self.fail(error);
                return Ok(None);
            }
            Verdict::RevokeAndRefuse { family_id, error } => {
                tracing::warn!(client_id = %request.client.client_id, "authorization code replayed; revoking its tokens");
                if let Err(e) =
                    self.stores
                        .revoke_family(family_id, RevocationReason::CodeReplayed, request.now)
                {
                    self.store_failed(e);
                    return Err(());
                }
                self.fail(error);
                return Ok(None);
            }
        };
        let Ok(redirect_uri) = Url::parse(presented.redirect_uri.unwrap_or(OMITTED_REDIRECT_URI)) else {
            self.fail(OAuthError::InvalidRequest("redirect_uri is malformed"));
            return Ok(None);
        };
        let scope = match engine_scope(&stored.scope) {
            Ok(s) => s,
            Err(e) => {
                self.store_failed(e);
                return Err(());
            }
        };
        let grant = Grant {
            owner_id: stored.user_id.to_string(),
            client_id: stored.client_id.clone(),
            scope,
            redirect_uri,
            // Expiry was judged against the injected clock when the code was
            // consumed; the engine's own check reads the wall clock, so it
            // must never be the one to refuse.
            until: DateTime::<Utc>::MAX_UTC,
            extensions: Extensions::new(),
        };
        self.consumed = Some(stored);
        Ok(Some(grant))
    }
}

impl Issuer for ExchangeEndpoint<'_> {
    fn issue(&mut self, _grant: Grant) -> Result<IssuedToken, ()> {
        self.issue_tokens()
    }
    fn refresh(&mut self, _refresh: &str, _grant: Grant) -> Result<RefreshedToken, ()> {
        Err(())
    }
    fn recover_token<'t>(&'t self, _token: &'t str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }
    fn recover_refresh<'t>(&'t self, _token: &'t str) -> Result<Option<Grant>, ()> {
        Ok(None)
    }
}

impl exchange::Extension for ExchangeEndpoint<'_> {
    fn extend(&mut self, _request: &dyn exchange::Request, _data: Extensions) -> Result<Extensions, ()> {
        // The PKCE verifier was judged with the rest of the grant's rules.
        Ok(Extensions::new())
    }
}

impl exchange::Endpoint for ExchangeEndpoint<'_> {
    fn registrar(&self) -> &dyn Registrar {
        self
    }
    fn authorizer(&mut self) -> &mut dyn Authorizer {
        self
    }
    fn issuer(&mut self) -> &mut dyn Issuer {
        self
    }
    fn extension(&mut self) -> &mut dyn exchange::Extension {
        self
    }
}

fn exchange_error(kind: AccessTokenErrorType) -> OAuthError {
    match kind {
        AccessTokenErrorType::InvalidRequest => {
            OAuthError::InvalidRequest("the token request is missing a parameter")
        }
        AccessTokenErrorType::InvalidClient => OAuthError::InvalidClient { used_basic: false },
        AccessTokenErrorType::InvalidGrant => OAuthError::InvalidGrant("the authorization code is invalid"),
        AccessTokenErrorType::UnauthorizedClient => {
            OAuthError::UnauthorizedClient("the client may not use this grant")
        }
        AccessTokenErrorType::UnsupportedGrantType => OAuthError::UnsupportedGrantType,
        AccessTokenErrorType::InvalidScope => OAuthError::InvalidScope("scope is invalid"),
    }
}

/// Exchanges an authorization code for tokens (RFC 6749 section 4.1.3,
/// RFC 7636 section 4.6).
pub fn exchange_code(
    request: &CodeExchange<'_>,
    stores: &mut dyn GrantStores,
) -> Result<TokenResponse, OAuthError> {
    if request.params.get("code").is_none() {
        return Err(OAuthError::InvalidRequest("code is required"));
    }
    let params = ExchangeParams {
        params: request.params,
        client_id: &request.client.client_id,
    };
    let mut endpoint = ExchangeEndpoint {
        request,
        stores,
        consumed: None,
        failure: None,
        store_failure: None,
        issued: None,
    };
    let result = exchange::access_token(&mut endpoint, &params);
    if let Some(failure) = endpoint.store_failure.take() {
        return Err(OAuthError::from_store(failure));
    }
    if let Some(failure) = endpoint.failure.take() {
        return Err(failure);
    }
    match result {
        Ok(_) => endpoint.issued.take().ok_or(OAuthError::ServerError),
        Err(mut error) => Err(match error.description() {
            Some(description) => exchange_error(description.kind()),
            None => OAuthError::ServerError,
        }),
    }
}
