//! `POST /events`: the revocation feed (`policy::events`). Callers are
//! confidential clients registered with `--allow-events`, authenticated
//! with HTTP Basic (the body is the JSON poll request of RFC 8936 section
//! 2.4, so `client_secret_post` has nowhere to go); others get 401
//! `invalid_client`. Failures count against the same limits as `/token`.

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
    let guard = limits::admit(&req, &state, &params)?;
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
        return Err(OAuthError::InvalidClient {
            used_basic: req.headers().contains_key(header::AUTHORIZATION),
        }
        .into());
    }
    let poll = crate::protocol::events::parse_poll(body)?;
    let batch = events::poll(state, poll).await.map_err(OAuthError::from_store)?;
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
