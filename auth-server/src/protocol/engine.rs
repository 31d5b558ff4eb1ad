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
//!   extension accepts any string); a failed or missing verifier, and a
//!   verifier without a challenge, are `invalid_grant` (the engine says
//!   `invalid_request`);
//! - an unknown, expired or replayed code is `invalid_grant`, and a replay
//!   revokes the tokens issued from the code (OAuth 2.1 section 4.1.3);
//! - the code is consumed only by the client it was issued to: another
//!   client gets `invalid_grant` and the code stays usable by its owner;
//! - codes live 60 s, not the engine's 10 minutes, and are consumed
//!   atomically in the database;
//! - redirect URIs are compared as exact strings, also at the token
//!   endpoint (the engine compares parsed URLs there);
//! - store failures become `temporarily_unavailable`/`server_error`, never
//!   a misleading `invalid_grant`;
//! - `iss` is added to every authorization response (RFC 9207).

use std::borrow::Cow;
use std::cell::RefCell;

use chrono::{DateTime, Utc};
use oxide_auth::code_grant::accesstoken::{self as exchange, Authorization as PresentedAuthorization};
use oxide_auth::code_grant::authorization as authz;
use oxide_auth::code_grant::error::{AccessTokenErrorType, AuthorizationErrorType};
use oxide_auth::primitives::authorizer::Authorizer;
use oxide_auth::primitives::grant::{Extensions, Grant, GrantExtension, Value as ExtensionValue};
use oxide_auth::primitives::issuer::{IssuedToken, Issuer, RefreshedToken, TokenType};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, ExactUrl, PreGrant, RegisteredUrl, Registrar, RegistrarError,
};
use oxide_auth::primitives::scope::Scope as EngineScope;
use url::Url;
use uuid::Uuid;

use super::grants::{
    CODE_TTL_SECONDS, CodeStore, Consumed, FamilyStore, NewCode, NewFamily, RevocationReason, StoredCode,
    UserDirectory,
};
use super::pkce::{ChallengeError, CodeChallenge};
use super::tokens::{self, AccessTokenSigner, Subject, TokenPolicy, TokenResponse};
use super::{OAuthError, Params, StoreError, scope};
use crate::crypto;
use crate::domain::{RedirectUri, ScopeSet};
use crate::model::{Client, User};

/// Stores the code exchange needs.
pub trait GrantStores: CodeStore + FamilyStore + UserDirectory {}
impl<T: CodeStore + FamilyStore + UserDirectory + ?Sized> GrantStores for T {}

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
        .map_err(|_| StoreError::Failed("scope did not convert for the engine".into()))
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

// ---------------------------------------------------------------------------
// Authorization endpoint

/// A validated authorization request, ready for the engine.
pub struct AuthorizationRequest<'a> {
    pub params: &'a Params,
    pub client: &'a Client,
    /// The registered redirect URI the request resolved to.
    pub redirect_uri: &'a RedirectUri,
    /// Whether the request named it (rather than defaulting to the only one).
    pub redirect_uri_given: bool,
    /// The logged-in user, if any.
    pub user: Option<&'a User>,
    pub session_hash: Option<&'a [u8]>,
    pub issuer: &'a str,
    pub now: DateTime<Utc>,
}

/// What to do with the request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Only check it and work out the scope.
    Inspect,
    /// The user approved: issue a code.
    Approve,
    /// The user refused.
    Deny,
}

#[derive(Debug)]
pub enum AuthorizationOutcome {
    /// Send the browser to the client (a code, or an error).
    Redirect(Url),
    /// The request is valid and would grant `scope`.
    Valid { scope: ScopeSet },
}

struct AuthorizationParams<'a>(&'a Params);

impl authz::Request for AuthorizationParams<'_> {
    fn valid(&self) -> bool {
        true
    }
    fn client_id(&self) -> Option<Cow<'_, str>> {
        self.0.get("client_id").map(Cow::Borrowed)
    }
    fn scope(&self) -> Option<Cow<'_, str>> {
        self.0.get("scope").map(Cow::Borrowed)
    }
    fn redirect_uri(&self) -> Option<Cow<'_, str>> {
        self.0.get("redirect_uri").map(Cow::Borrowed)
    }
    fn state(&self) -> Option<Cow<'_, str>> {
        self.0.get("state").map(Cow::Borrowed)
    }
    fn response_type(&self) -> Option<Cow<'_, str>> {
        self.0.get("response_type").map(Cow::Borrowed)
    }
    fn extension(&self, key: &str) -> Option<Cow<'_, str>> {
        self.0.get(key).map(Cow::Borrowed)
    }
}

struct AuthorizationEndpoint<'a> {
    client: &'a Client,
    redirect_uri: &'a RedirectUri,
    redirect_uri_given: bool,
    user: Option<&'a User>,
    session_hash: Option<&'a [u8]>,
    now: DateTime<Utc>,
    codes: &'a mut dyn CodeStore,
    /// Why `negotiate` refused, if it did.
    scope_refusal: RefCell<Option<OAuthError>>,
    negotiated: RefCell<Option<ScopeSet>>,
    pkce_refusal: Option<ChallengeError>,
    store_failure: Option<StoreError>,
}

impl Registrar for AuthorizationEndpoint<'_> {
    fn bound_redirect<'b>(&self, bound: ClientUrl<'b>) -> Result<BoundClient<'b>, RegistrarError> {
        if bound.client_id != self.client.client_id {
            return Err(RegistrarError::Unspecified);
        }
        let matches = match &bound.redirect_uri {
            Some(given) => given.as_str() == self.redirect_uri.as_str(),
            None => !self.redirect_uri_given,
        };
        if !matches {
            return Err(RegistrarError::Unspecified);
        }
        let exact =
            ExactUrl::new(self.redirect_uri.as_str().to_owned()).map_err(|_| RegistrarError::Unspecified)?;
        Ok(BoundClient {
            client_id: bound.client_id,
            redirect_uri: Cow::Owned(RegisteredUrl::Exact(exact)),
        })
    }

    fn negotiate(
        &self,
        client: BoundClient<'_>,
        requested: Option<EngineScope>,
    ) -> Result<PreGrant, RegistrarError> {
        let requested = match requested {
            None => None,
            Some(s) => match scope::parse_requested(Some(&s.to_string())) {
                Ok(parsed) => parsed,
                Err(e) => {
                    *self.scope_refusal.borrow_mut() = Some(e);
                    return Err(RegistrarError::Unspecified);
                }
            },
        };
        let roles = self.user.map(|u| &u.roles);
        match scope::grant(requested.as_ref(), &self.client.scopes, roles) {
            Ok(granted) => {
                let engine = engine_scope(&granted).map_err(|_| RegistrarError::PrimitiveError)?;
                *self.negotiated.borrow_mut() = Some(granted);
                Ok(PreGrant {
                    client_id: client.client_id.into_owned(),
                    redirect_uri: client.redirect_uri.into_owned(),
                    scope: engine,
                })
            }
            Err(e) => {
                *self.scope_refusal.borrow_mut() = Some(e);
                Err(RegistrarError::Unspecified)
            }
        }
    }

    fn check(&self, _client_id: &str, _passphrase: Option<&[u8]>) -> Result<(), RegistrarError> {
        Err(RegistrarError::Unspecified)
    }
}

impl Authorizer for AuthorizationEndpoint<'_> {
    fn authorize(&mut self, mut grant: Grant) -> Result<String, ()> {
        let Some(user) = self.user else {
            self.store_failure = Some(StoreError::Failed("approval without a user".into()));
            return Err(());
        };
        let challenge = grant
            .extensions
            .remove(&PkceKey)
            .and_then(|v| v.into_private_value().ok().flatten())
            .ok_or(())?;
        let scope = self.negotiated.borrow().clone().ok_or(())?;
        let code = match crypto::random_token() {
            Ok(code) => code,
            Err(e) => {
                self.store_failure = Some(e.into());
                return Err(());
            }
        };
        let new = NewCode {
            code_hash: crypto::token_hash(&code),
            client_id: grant.client_id,
            user_id: user.id,
            session_hash: self.session_hash.map(<[u8]>::to_vec),
            redirect_uri: self.redirect_uri.as_str().to_owned(),
            redirect_uri_given: self.redirect_uri_given,
            scope,
            code_challenge: challenge,
            family_id: Uuid::new_v4(),
            created_at: self.now,
            expires_at: self.now + chrono::Duration::seconds(CODE_TTL_SECONDS),
        };
        match self.codes.insert_code(&new) {
            Ok(()) => Ok(code),
            Err(e) => {
                self.store_failure = Some(e);
                Err(())
            }
        }
    }

    fn extract(&mut self, _code: &str) -> Result<Option<Grant>, ()> {
        Err(())
    }
}

impl authz::Extension for AuthorizationEndpoint<'_> {
    fn extend(&mut self, request: &dyn authz::Request) -> Result<Extensions, ()> {
        let challenge = request.extension("code_challenge");
        let method = request.extension("code_challenge_method");
        match CodeChallenge::parse(challenge.as_deref(), method.as_deref()) {
            Ok(c) => {
                let mut extensions = Extensions::new();
                extensions.set(&PkceKey, ExtensionValue::private(Some(c.as_str().to_owned())));
                Ok(extensions)
            }
            Err(refusal) => {
                self.pkce_refusal = Some(refusal);
                Err(())
            }
        }
    }
}

impl authz::Endpoint for AuthorizationEndpoint<'_> {
    fn registrar(&self) -> &dyn Registrar {
        self
    }
    fn authorizer(&mut self) -> &mut dyn Authorizer {
        self
    }
    fn extension(&mut self) -> &mut dyn authz::Extension {
        self
    }
}

fn authorization_error(kind: AuthorizationErrorType) -> OAuthError {
    match kind {
        AuthorizationErrorType::InvalidRequest => {
            OAuthError::InvalidRequest("the authorization request is invalid")
        }
        AuthorizationErrorType::UnauthorizedClient => {
            OAuthError::UnauthorizedClient("the client may not use this flow")
        }
        AuthorizationErrorType::AccessDenied => OAuthError::AccessDenied,
        AuthorizationErrorType::UnsupportedResponseType => OAuthError::UnsupportedResponseType,
        AuthorizationErrorType::InvalidScope => OAuthError::InvalidScope("scope is malformed"),
        AuthorizationErrorType::TemporarilyUnavailable => OAuthError::TemporarilyUnavailable,
        _ => OAuthError::ServerError,
    }
}

/// Runs the authorization request through the engine.
pub fn authorize(
    request: AuthorizationRequest<'_>,
    step: Step,
    codes: &mut dyn CodeStore,
) -> AuthorizationOutcome {
    let state = request.params.get("state");
    let redirect_error = |error: OAuthError| {
        AuthorizationOutcome::Redirect(error_redirect(
            request.redirect_uri,
            &error,
            state,
            request.issuer,
        ))
    };
    if request.params.first_repeated().is_some() {
        return redirect_error(OAuthError::InvalidRequest("a parameter is repeated"));
    }
    if request.params.get("response_type").is_none() {
        return redirect_error(OAuthError::InvalidRequest("response_type is required"));
    }
    let mut endpoint = AuthorizationEndpoint {
        client: request.client,
        redirect_uri: request.redirect_uri,
        redirect_uri_given: request.redirect_uri_given,
        user: request.user,
        session_hash: request.session_hash,
        now: request.now,
        codes,
        scope_refusal: RefCell::new(None),
        negotiated: RefCell::new(None),
        pkce_refusal: None,
        store_failure: None,
    };
    let params = AuthorizationParams(request.params);
    let pending = authz::authorization_code(&mut endpoint, &params);

    let refusal = |endpoint: &mut AuthorizationEndpoint<'_>, mut error: authz::Error| -> OAuthError {
        if let Some(failure) = endpoint.store_failure.take() {
            return OAuthError::from_store(failure);
        }
        if let Some(pkce) = endpoint.pkce_refusal.take() {
            return OAuthError::InvalidRequest(pkce.description());
        }
        if let Some(scope) = endpoint.scope_refusal.borrow_mut().take() {
            return scope;
        }
        match error.description() {
            Some(description) => authorization_error(description.kind()),
            None => OAuthError::ServerError,
        }
    };

    let pending = match pending {
        Ok(pending) => pending,
        Err(error) => return redirect_error(refusal(&mut endpoint, error)),
    };
    if !request
        .client
        .allows_grant(crate::domain::GrantType::AuthorizationCode)
    {
        return redirect_error(OAuthError::UnauthorizedClient(
            "the client may not use the authorization code flow",
        ));
    }
    let granted = endpoint.negotiated.borrow().clone();
    match step {
        Step::Inspect => match granted {
            Some(scope) => AuthorizationOutcome::Valid { scope },
            None => redirect_error(OAuthError::ServerError),
        },
        Step::Deny => {
            drop(pending);
            redirect_error(OAuthError::AccessDenied)
        }
        Step::Approve => {
            let owner = match request.user {
                Some(user) => user.id.to_string(),
                None => return redirect_error(OAuthError::ServerError),
            };
            match pending.authorize(&mut endpoint, Cow::Owned(owner)) {
                Ok(url) => AuthorizationOutcome::Redirect(with_issuer(url, request.issuer)),
                Err(error) => redirect_error(refusal(&mut endpoint, error)),
            }
        }
    }
}

// ---------------------------------------------------------------------------
// Token endpoint: the authorization_code grant

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
            Ok(Some(user)) => user,
            Ok(None) => {
                self.fail(OAuthError::InvalidGrant("the user no longer exists"));
                return Err(());
            }
            Err(e) => {
                self.store_failed(e);
                return Err(());
            }
        };
        // The user's roles may have changed since the code was issued.
        let scope = code.scope.permitted_for(&user.roles);
        if scope.is_empty() {
            self.fail(OAuthError::InvalidGrant("the user may no longer have this scope"));
            return Err(());
        }
        let family = NewFamily {
            id: code.family_id,
            client_id: request.client.client_id.clone(),
            user_id: user.id,
            session_hash: code.session_hash.clone(),
            scope: scope.clone(),
            created_at: request.now,
            expires_at: request.policy.family_expiry(request.now),
        };
        let result = (|| -> Result<TokenResponse, StoreError> {
            let access = tokens::mint_access_token(
                request.signer,
                request.policy,
                request.client,
                Subject::User {
                    user: &user,
                    family: family.id,
                },
                &scope,
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
            Ok(TokenResponse::new(&access, refresh, &scope, request.now))
        })();
        match result {
            Ok(response) => {
                let issued = IssuedToken {
                    token: response.access_token.clone(),
                    refresh: response.refresh_token.clone(),
                    until: Utc::now() + chrono::Duration::seconds(response.expires_in),
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
        let now = self.request.now;
        let consumed =
            match self
                .stores
                .consume_code(&crypto::token_hash(code), &self.request.client.client_id, now)
            {
                Ok(c) => c,
                Err(e) => {
                    self.store_failed(e);
                    return Err(());
                }
            };
        let stored = match consumed {
            Consumed::Fresh(stored) => stored,
            Consumed::Unknown => {
                self.fail(OAuthError::InvalidGrant("the authorization code is invalid"));
                return Ok(None);
            }
            Consumed::Expired => {
                self.fail(OAuthError::InvalidGrant("the authorization code has expired"));
                return Ok(None);
            }
            Consumed::Replayed { family_id } => {
                tracing::warn!(client_id = %self.request.client.client_id, "authorization code replayed; revoking its tokens");
                if let Err(e) = self
                    .stores
                    .revoke_family(family_id, RevocationReason::CodeReplayed, now)
                {
                    self.store_failed(e);
                    return Err(());
                }
                self.fail(OAuthError::InvalidGrant(
                    "the authorization code was already used",
                ));
                return Ok(None);
            }
        };
        if stored.client_id != self.request.client.client_id {
            self.fail(OAuthError::InvalidGrant(
                "the authorization code was issued to another client",
            ));
            return Ok(None);
        }
        let presented = self.request.params.get("redirect_uri");
        let redirect_ok = match presented {
            Some(p) => p == stored.redirect_uri,
            None => !stored.redirect_uri_given,
        };
        if !redirect_ok {
            self.fail(OAuthError::InvalidGrant(
                "redirect_uri does not match the authorization request",
            ));
            return Ok(None);
        }
        let Ok(redirect_uri) = Url::parse(presented.unwrap_or(OMITTED_REDIRECT_URI)) else {
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
        let mut extensions = Extensions::new();
        extensions.set(
            &PkceKey,
            ExtensionValue::private(Some(stored.code_challenge.clone())),
        );
        let grant = Grant {
            owner_id: stored.user_id.to_string(),
            client_id: stored.client_id.clone(),
            scope,
            redirect_uri,
            // Expiry was checked against our clock when consuming; the
            // engine re-checks against the wall clock, so give it headroom.
            until: Utc::now() + chrono::Duration::seconds(CODE_TTL_SECONDS),
            extensions,
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
    fn extend(&mut self, request: &dyn exchange::Request, mut data: Extensions) -> Result<Extensions, ()> {
        let challenge = data
            .remove(&PkceKey)
            .and_then(|v| v.into_private_value().ok().flatten());
        let verifier = request.extension("code_verifier");
        let refusal = match (challenge, verifier) {
            (Some(challenge), Some(verifier)) => {
                if CodeChallenge::from_stored(challenge).verify(&verifier) {
                    return Ok(Extensions::new());
                }
                "code_verifier does not match the code_challenge"
            }
            (Some(_), None) => "code_verifier is required",
            // A verifier for a code issued without a challenge is a PKCE
            // downgrade attempt (RFC 9700 section 2.1.1).
            (None, Some(_)) => "code_verifier given but the authorization request had no code_challenge",
            (None, None) => "PKCE is required",
        };
        self.fail(OAuthError::InvalidGrant(refusal));
        Err(())
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
