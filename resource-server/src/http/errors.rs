//! Request-body and routing errors as problem+json, and database failures.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt as _;
use oauth_common::db::DbError;

use crate::problem::Problem;

/// Largest request body `/api` reads.
pub const BODY_LIMIT: usize = 64 * 1024;

/// Reads a JSON object body, after the route's token check passed (so a
/// request without a valid token learns nothing about body rules): 415 for
/// another content type, 413 past [`BODY_LIMIT`], 400 for anything that is
/// not a JSON object of the expected shape (unknown fields included).
pub async fn read_json<T: serde::de::DeserializeOwned>(
    req: &HttpRequest,
    mut payload: web::Payload,
) -> Result<T, Problem> {
    let is_json = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
        .is_some_and(|v| v == "application/json" || (v.starts_with("application/") && v.ends_with("+json")));
    if !is_json {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            "The body must be application/json.",
        ));
    }
    let too_large = || {
        Problem::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "Content Too Large",
            format!("The body must be at most {BODY_LIMIT} bytes."),
        )
    };
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > BODY_LIMIT) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::new();
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|_| {
            Problem::new(
                StatusCode::BAD_REQUEST,
                "Bad Request",
                "The body could not be read.",
            )
        })?;
        if body.len() + chunk.len() > BODY_LIMIT {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    let bad = |detail: String| Problem::new(StatusCode::BAD_REQUEST, "Bad Request", detail);
    let value: serde_json::Value =
        serde_json::from_slice(&body).map_err(|e| bad(format!("The body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(bad("The body must be a JSON object.".to_owned()));
    }
    serde_json::from_value(value).map_err(|e| bad(format!("The body is not a valid note: {e}")))
}

/// A query string that does not parse (a repeated `limit`, say) is a 400
/// problem like any other, not actix's plain-text default.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|_error, _req| {
        Problem::new(
            StatusCode::BAD_REQUEST,
            "Bad Request",
            "The query string is not valid.",
        )
        .into()
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
