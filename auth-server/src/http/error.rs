//! Where the HTTP layer turns errors into responses, in one place:
//! protocol errors as RFC 6749 section 5.2 JSON ([`OAuthJson`]), and store
//! failures behind a page as an HTML error page ([`PageError`]).

use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::{HttpResponse, ResponseError};
use serde_json::json;

use crate::protocol::{OAuthError, StoreError};

/// An [`OAuthError`] at the HTTP edge of the JSON endpoints (token,
/// introspection, revocation).
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.code())]
pub struct OAuthJson(pub OAuthError);

impl From<OAuthError> for OAuthJson {
    fn from(e: OAuthError) -> Self {
        Self(e)
    }
}

impl From<StoreError> for OAuthJson {
    fn from(e: StoreError) -> Self {
        Self(OAuthError::from_store(e))
    }
}

impl ResponseError for OAuthJson {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            OAuthError::InvalidClient { .. } => StatusCode::UNAUTHORIZED,
            OAuthError::ServerError => StatusCode::INTERNAL_SERVER_ERROR,
            OAuthError::TemporarilyUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            OAuthError::SlowDown { .. } => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // temporarily_unavailable is an authorization-endpoint code; the JSON
        // endpoints say server_error with a 503.
        let code = match self.0 {
            OAuthError::TemporarilyUnavailable => "server_error",
            ref other => other.code(),
        };
        let body = match self.0.description() {
            Some(description) => json!({ "error": code, "error_description": description }),
            None => json!({ "error": code }),
        };
        let mut response = HttpResponse::build(self.status_code());
        response
            .insert_header((header::CACHE_CONTROL, HeaderValue::from_static("no-store")))
            .insert_header((header::PRAGMA, HeaderValue::from_static("no-cache")));
        if matches!(self.0, OAuthError::InvalidClient { used_basic: true }) {
            response.insert_header((
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Basic realm=\"oauth\", charset=\"UTF-8\""),
            ));
        }
        if matches!(self.0, OAuthError::TemporarilyUnavailable) {
            response.insert_header((header::RETRY_AFTER, HeaderValue::from_static("5")));
        }
        if let OAuthError::SlowDown { retry_after_seconds } = self.0 {
            response.insert_header((header::RETRY_AFTER, retry_after_seconds.max(1).to_string()));
        }
        response.json(body)
    }
}

/// A store failure behind a page: 503 when the database is down, else
/// 500, as an HTML page. The cause goes to the log, never to the page.
#[derive(Debug, thiserror::Error)]
#[error("page unavailable: {0}")]
pub struct PageError(#[from] pub StoreError);

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        match self.0 {
            StoreError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        // Logs the cause.
        let _ = OAuthError::from_store(self.0.clone());
        super::pages::error(
            self.status_code(),
            "Unavailable",
            "The service is temporarily unavailable. Please try again.",
        )
    }
}

/// The page for a store failure.
pub fn unavailable(e: StoreError) -> HttpResponse {
    PageError(e).error_response()
}
