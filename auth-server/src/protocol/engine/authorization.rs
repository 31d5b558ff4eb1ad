//! The authorization endpoint through oxide-auth's `authorization_code`
//! state machine: client and redirect binding, scope negotiation, the PKCE
//! challenge, and the code written on approval.

use std::borrow::Cow;
use std::cell::RefCell;

use chrono::{DateTime, Utc};
use oxide_auth::code_grant::authorization as authz;
use oxide_auth::code_grant::error::AuthorizationErrorType;
use oxide_auth::primitives::authorizer::Authorizer;
use oxide_auth::primitives::grant::{Extensions, Grant, Value as ExtensionValue};
use oxide_auth::primitives::registrar::{
    BoundClient, ClientUrl, ExactUrl, PreGrant, RegisteredUrl, Registrar, RegistrarError,
};
use oxide_auth::primitives::scope::Scope as EngineScope;
use url::Url;
use uuid::Uuid;

use super::{PkceKey, engine_scope, error_redirect, with_issuer};
use crate::crypto;
use crate::domain::{RedirectUri, ScopeSet};
use crate::model::{Client, User};
use crate::protocol::grants::{CODE_TTL_SECONDS, CodeStore, NewCode, SignIn};
use crate::protocol::pkce::{ChallengeError, CodeChallenge};
use crate::protocol::{OAuthError, Params, StoreError, scope};

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
    /// The nonce, session id and sign-in time an ID token from the code
    /// will carry.
    pub sign_in: &'a SignIn,
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
    sign_in: &'a SignIn,
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
            self.store_failure = Some(StoreError::Internal("approval without a user".into()));
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
            sign_in: self.sign_in.clone(),
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
        sign_in: request.sign_in,
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
