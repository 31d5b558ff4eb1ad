//! `POST /events`: the revocation feed (`policy::events`). Callers are
//! confidential clients registered with `--allow-events`, authenticated
//! with HTTP Basic (the body is the JSON poll request of RFC 8936 section
//! 2.4, so `client_secret_post` has nowhere to go): a failed
//! authentication is 401 `invalid_client`, another client 400
//! `unauthorized_client`. Failures count against the address's limit as at
//! `/token`; the client's own limit never locks the feed (`admit_with`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use serde_json::{Map, Value, json};

use super::token::authenticated_client;
use super::{OAuthJson, limits};
use crate::domain::ClientKind;
use crate::policy::events;
use crate::protocol::{OAuthError, Params};
use crate::state::AppState;

pub async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    let body = super::read_body(payload)
        .await
        .ok_or(OAuthError::InvalidRequest("the request body is too large"))?;
    let params = Params::default();
    let guard = limits::admit_with(&req, &state, &params, false)?;
    let result = answer(&req, &state, &params, &body).await;
    guard.settle(&state, &result).await;
    result
}

async fn answer(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: &Params,
    body: &[u8],
) -> Result<HttpResponse, OAuthJson> {
    let client = authenticated_client(req, state, params).await?;
    if client.kind != ClientKind::Confidential || !client.allow_events {
        // Authenticated, so not counted as a failed secret.
        return Err(OAuthError::UnauthorizedClient("the client may not read the revocation feed").into());
    }
    let poll = crate::protocol::events::parse_poll(body)?;
    let batch = match events::poll(state, poll).await {
        Ok(batch) => batch,
        Err(events::Refusal::CursorAhead) => {
            return Err(OAuthError::InvalidRequest(
                "the cursor is ahead of this feed; read it from the start",
            )
            .into());
        }
        Err(events::Refusal::Store(e)) => return Err(OAuthError::from_store(e).into()),
    };
    let sets: Map<String, Value> = batch
        .sets
        .into_iter()
        .map(|(jti, set)| (jti, Value::String(set)))
        .collect();
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(json!({
            "sets": sets,
            "moreAvailable": batch.more,
            "cursor": batch.cursor.to_string(),
        })))
}
