//! The OAuth error vocabulary (RFC 6749 sections 4.1.2.1 and 5.2, RFC 7009,
//! RFC 7662). The wire text of an error comes from its variant and a static
//! description, never from a lower-level error's `to_string()`.

/// A failure of our own (database down, a corrupt row, RNG failure). The
/// cause goes to the log; clients only ever see `server_error` or
/// `temporarily_unavailable` ([`OAuthError::from_store`], the one mapping).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The database cannot be reached; answered with 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A query failed for another reason.
    #[error("query failed: {0}")]
    Query(String),
    /// A stored row does not parse into its domain value.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    /// Randomness, sealing or signing failed.
    #[error("cryptography failed: {0}")]
    Crypto(String),
    /// An invariant of our own code does not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<crate::crypto::CryptoError> for StoreError {
    fn from(e: crate::crypto::CryptoError) -> Self {
        StoreError::Crypto(e.0)
    }
}

/// An error the protocol reports to the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.code())]
pub enum OAuthError {
    /// `invalid_request`: a parameter is missing, repeated, malformed or not
    /// supported.
    InvalidRequest(&'static str),
    /// `invalid_client`: client authentication failed (unknown client, no
    /// authentication, wrong secret, unsupported method). HTTP 401, with
    /// `WWW-Authenticate: Basic` when the client tried Basic.
    InvalidClient { used_basic: bool },
    /// `invalid_grant`: the code or refresh token is invalid, expired,
    /// revoked, already used, issued to another client, or does not match
    /// the redirect URI or the PKCE verifier.
    InvalidGrant(&'static str),
    /// `unauthorized_client`: the client may not use this grant type or
    /// response type.
    UnauthorizedClient(&'static str),
    /// `unsupported_grant_type`.
    UnsupportedGrantType,
    /// `unsupported_response_type` (authorization endpoint).
    UnsupportedResponseType,
    /// `invalid_scope`: malformed, or nothing of it can be granted, or wider
    /// than the original grant on refresh.
    InvalidScope(&'static str),
    /// `access_denied`: the user (or policy) refused.
    AccessDenied,
    /// `server_error`: an unexpected failure; the cause is logged.
    ServerError,
    /// `temporarily_unavailable`: the database is down; HTTP 503.
    TemporarilyUnavailable,
    /// `slow_down` (registered for the token endpoint by RFC 8628 section
    /// 3.5): the client address or client is over its failure limit; HTTP
    /// 429 with `Retry-After`, decided before any secret is checked.
    SlowDown { retry_after_seconds: u64 },
    /// `login_required` (OIDC Core section 3.1.2.6): `prompt=none` and the
    /// user would have to sign in.
    LoginRequired,
    /// `consent_required`: `prompt=none` and the consent page would be shown.
    ConsentRequired,
    /// `interaction_required`: `prompt=none` and some other page would be
    /// needed.
    InteractionRequired,
    /// `request_not_supported`: a `request` object was sent.
    RequestNotSupported,
    /// `request_uri_not_supported`: a `request_uri` was sent.
    RequestUriNotSupported,
}

impl OAuthError {
    /// The RFC error code.
    pub fn code(&self) -> &'static str {
        match self {
            OAuthError::InvalidRequest(_) => "invalid_request",
            OAuthError::InvalidClient { .. } => "invalid_client",
            OAuthError::InvalidGrant(_) => "invalid_grant",
            OAuthError::UnauthorizedClient(_) => "unauthorized_client",
            OAuthError::UnsupportedGrantType => "unsupported_grant_type",
            OAuthError::UnsupportedResponseType => "unsupported_response_type",
            OAuthError::InvalidScope(_) => "invalid_scope",
            OAuthError::AccessDenied => "access_denied",
            OAuthError::ServerError => "server_error",
            OAuthError::TemporarilyUnavailable => "temporarily_unavailable",
            OAuthError::SlowDown { .. } => "slow_down",
            OAuthError::LoginRequired => "login_required",
            OAuthError::ConsentRequired => "consent_required",
            OAuthError::InteractionRequired => "interaction_required",
            OAuthError::RequestNotSupported => "request_not_supported",
            OAuthError::RequestUriNotSupported => "request_uri_not_supported",
        }
    }

    /// A short, fixed explanation safe to show anyone.
    pub fn description(&self) -> Option<&'static str> {
        match self {
            OAuthError::InvalidRequest(d)
            | OAuthError::InvalidGrant(d)
            | OAuthError::UnauthorizedClient(d)
            | OAuthError::InvalidScope(d) => Some(d),
            OAuthError::InvalidClient { .. } => Some("client authentication failed"),
            OAuthError::UnsupportedGrantType => Some("grant_type is not supported"),
            OAuthError::UnsupportedResponseType => Some("only response_type=code is supported"),
            OAuthError::AccessDenied => Some("the request was denied"),
            OAuthError::ServerError => Some("the server could not complete the request"),
            OAuthError::TemporarilyUnavailable => Some("the service is temporarily unavailable"),
            OAuthError::SlowDown { .. } => Some("too many failed requests; retry later"),
            OAuthError::LoginRequired => Some("the user must sign in"),
            OAuthError::ConsentRequired => Some("the user must approve the request"),
            OAuthError::InteractionRequired => Some("the user must interact with the server"),
            OAuthError::RequestNotSupported => Some("request objects are not supported"),
            OAuthError::RequestUriNotSupported => Some("request_uri is not supported"),
        }
    }

    /// Logs a store failure and turns it into the error the client sees.
    pub fn from_store(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(cause) => {
                tracing::error!(cause = %cause, "database unavailable");
                OAuthError::TemporarilyUnavailable
            }
            other => {
                tracing::error!(cause = %other, "internal failure");
                OAuthError::ServerError
            }
        }
    }
}

impl From<StoreError> for OAuthError {
    fn from(e: StoreError) -> Self {
        OAuthError::from_store(e)
    }
}
