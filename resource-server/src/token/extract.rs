//! The actix side: `Authorized<R>` extracts and validates the bearer token
//! from the `Authorization` header only (a token in the query string or
//! body is ignored: OAuth 2.1 section 5.2) and enforces `R`'s scope and
//! role. Failures are RFC 6750 challenges with RFC 9457 bodies.

use std::marker::PhantomData;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError, web};
use futures_util::future::LocalBoxFuture;

use super::{Claims, Failure, TokenValidator};
use crate::problem::Problem;

/// What a route needs: a scope and, for admin routes, a role.
pub trait Requirement {
    const SCOPE: &'static str;
    const ROLE: Option<&'static str> = None;
}

/// The RFC 6750 challenge parameters of this server, stored as app data.
#[derive(Debug, Clone)]
pub struct Challenge {
    pub realm: String,
    /// RFC 9728 section 5.1.
    pub resource_metadata: String,
}

/// The verified claims of a request that meets `R`.
pub struct Authorized<R: Requirement> {
    pub claims: Arc<Claims>,
    requirement: PhantomData<R>,
}

/// An authorization failure as an HTTP response.
#[derive(Debug)]
pub struct AuthError {
    failure: Failure,
    challenge: Option<Challenge>,
}

impl std::fmt::Display for AuthError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.failure)
    }
}

fn quoted(value: &str) -> String {
    value.replace(['"', '\\'], "")
}

impl AuthError {
    fn www_authenticate(&self) -> Option<String> {
        let challenge = self.challenge.as_ref()?;
        let mut params = vec![format!("realm=\"{}\"", quoted(&challenge.realm))];
        match &self.failure {
            Failure::Missing | Failure::Unavailable => {}
            Failure::Invalid(reason) => {
                params.push("error=\"invalid_token\"".into());
                params.push(format!("error_description=\"{}\"", quoted(reason)));
            }
            Failure::InsufficientScope(scope) | Failure::MissingRole { scope, .. } => {
                params.push("error=\"insufficient_scope\"".into());
                params.push(format!("scope=\"{}\"", quoted(scope)));
            }
        }
        params.push(format!(
            "resource_metadata=\"{}\"",
            quoted(&challenge.resource_metadata)
        ));
        Some(format!("Bearer {}", params.join(", ")))
    }

    fn problem(&self) -> Problem {
        let mut problem = match &self.failure {
            Failure::Missing => Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "A bearer access token is required in the Authorization header.",
            ),
            Failure::Invalid(_) => Problem::new(
                StatusCode::UNAUTHORIZED,
                "Unauthorized",
                "The access token is not valid.",
            ),
            Failure::Unavailable => Problem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "Service Unavailable",
                "Tokens cannot be checked yet; try again shortly.",
            )
            .with_header(header::RETRY_AFTER, "5"),
            Failure::InsufficientScope(scope) => Problem::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("The access token lacks the {scope} scope."),
            )
            .with_extension("scope", serde_json::json!(scope)),
            Failure::MissingRole { role, .. } => Problem::new(
                StatusCode::FORBIDDEN,
                "Forbidden",
                format!("This route needs the {role} role."),
            ),
        };
        if let Some(value) = self.www_authenticate()
            && !matches!(self.failure, Failure::Unavailable)
        {
            problem = problem.with_header(header::WWW_AUTHENTICATE, value);
        }
        problem
    }
}

impl ResponseError for AuthError {
    fn status_code(&self) -> StatusCode {
        self.problem().status
    }
    fn error_response(&self) -> HttpResponse {
        self.problem().response()
    }
}

/// The bearer token of the `Authorization` header, if it has one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    let token = token.trim();
    // RFC 6750 section 2.1: b64token.
    let valid = !token.is_empty()
        && token
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~' | '+' | '/' | '='));
    valid.then(|| token.to_owned())
}

impl<R: Requirement> FromRequest for Authorized<R> {
    type Error = AuthError;
    type Future = LocalBoxFuture<'static, Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _payload: &mut Payload) -> Self::Future {
        let validator = req.app_data::<web::Data<TokenValidator>>().cloned();
        let challenge = req
            .app_data::<web::Data<Challenge>>()
            .map(|c| c.get_ref().clone());
        let token = bearer_token(req);
        Box::pin(async move {
            let fail = |failure| AuthError {
                failure,
                challenge: challenge.clone(),
            };
            let validator = validator.ok_or_else(|| fail(Failure::Unavailable))?;
            let token = token.ok_or_else(|| fail(Failure::Missing))?;
            let claims = validator.validate(&token).await.map_err(&fail)?;
            if !claims.has_scope(R::SCOPE) {
                return Err(fail(Failure::InsufficientScope(R::SCOPE)));
            }
            if let Some(role) = R::ROLE
                && !claims.has_role(role)
            {
                return Err(fail(Failure::MissingRole {
                    scope: R::SCOPE,
                    role,
                }));
            }
            Ok(Authorized {
                claims,
                requirement: PhantomData,
            })
        })
    }
}

/// `x-` headers the API exposes to browsers.
pub const EXPOSED_HEADERS: [HeaderName; 2] = [header::WWW_AUTHENTICATE, header::RETRY_AFTER];
