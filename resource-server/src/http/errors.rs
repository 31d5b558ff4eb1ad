//! Request-body and routing errors as problem+json, and database failures.

use actix_web::error::JsonPayloadError;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use oauth_common::db::DbError;

use crate::problem::Problem;

/// Largest request body `/api` reads.
pub const BODY_LIMIT: usize = 64 * 1024;

pub fn json_config() -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(BODY_LIMIT)
        .error_handler(|error, _req| {
            let problem = match &error {
                JsonPayloadError::ContentType => Problem::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "Unsupported Media Type",
                    "The body must be application/json.",
                ),
                JsonPayloadError::Overflow { .. } | JsonPayloadError::OverflowKnownLength { .. } => {
                    Problem::new(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "Content Too Large",
                        format!("The body must be at most {BODY_LIMIT} bytes."),
                    )
                }
                JsonPayloadError::Deserialize(e) => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    format!("The body is not a valid note: {e}"),
                ),
                _ => Problem::new(
                    StatusCode::BAD_REQUEST,
                    "Bad Request",
                    "The body could not be read.",
                ),
            };
            problem.into()
        })
}

pub async fn not_found(_req: HttpRequest) -> HttpResponse {
    Problem::new(StatusCode::NOT_FOUND, "Not Found", "There is nothing here.").response()
}

/// A database failure: 503 when Postgres is unreachable, else an opaque 500
/// whose cause is logged.
pub fn database(e: DbError) -> Problem {
    if e.is_unavailable() {
        tracing::error!(error = %e, "database unavailable");
        Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            "The service is temporarily unavailable; try again shortly.",
        )
        .with_header(actix_web::http::header::RETRY_AFTER, "5")
    } else {
        tracing::error!(error = %e, "database query failed");
        Problem::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "The request could not be completed.",
        )
    }
}
