//! `POST /token` (RFC 6749 section 3.2): client authentication, then one
//! of the grants. Every answer carries `Cache-Control: no-store`.

use std::sync::Arc;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::OAuthJson;
use super::limits::{self, Guard};
use crate::audit::{self, Event};
use crate::domain::GrantType;
use crate::model::Client;
use crate::policy::tokens;
use crate::protocol::client_auth;
use crate::protocol::client_credentials;
use crate::protocol::refresh::{self, RefreshOutcome};
use crate::protocol::tokens::TokenResponse;
use crate::protocol::{OAuthError, Params};
use crate::state::AppState;

/// The `token` and `token_type_hint` of an introspection or revocation
/// request.
pub fn token_and_hint(params: &Params) -> Result<(String, Option<String>), OAuthJson> {
    if params.is_repeated("token") {
        return Err(OAuthError::InvalidRequest("token is repeated").into());
    }
    let Some(token) = params.get("token").map(str::to_owned) else {
        return Err(OAuthError::InvalidRequest("token is required").into());
    };
    Ok((token, params.get("token_type_hint").map(str::to_owned)))
}

/// Authenticates the client of a protocol request.
pub async fn authenticated_client(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: &Params,
) -> Result<Arc<Client>, OAuthJson> {
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let credentials = client_auth::extract(authorization, params)?;
    Ok(state
        .clients
        .authenticate(&state.pool, &credentials, state.clock.now())
        .await?)
}

pub fn token_response(response: &TokenResponse) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(response)
}

#[tracing::instrument(skip_all, fields(grant_type = tracing::field::Empty, client_id = tracing::field::Empty))]
pub async fn token(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    limits::guarded(&req, &state, payload, async |params, guard| {
        grant(&req, &state, params, guard).await
    })
    .await
}

async fn grant(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: Params,
    guard: &Guard,
) -> Result<HttpResponse, OAuthJson> {
    // The grant type is checked before the client, so an unsupported one is
    // named as such whoever asks.
    let grant = match params.get("grant_type") {
        None if params.is_repeated("grant_type") => {
            return Err(OAuthError::InvalidRequest("grant_type is repeated").into());
        }
        None => return Err(OAuthError::InvalidRequest("grant_type is required").into()),
        Some(g) => GrantType::parse(g).map_err(|_| OAuthError::UnsupportedGrantType)?,
    };
    tracing::Span::current().record("grant_type", grant.as_str());
    let client = authenticated_client(req, state, &params).await?;
    tracing::Span::current().record("client_id", client.client_id.as_str());
    if params.first_repeated().is_some() {
        return Err(OAuthError::InvalidRequest("a parameter is repeated").into());
    }
    if !client.allows_grant(grant) {
        return Err(OAuthError::UnauthorizedClient("the client may not use this grant type").into());
    }
    let now = state.clock.now();
    let response = match grant {
        GrantType::AuthorizationCode => tokens::exchange_code(state, params, client, now).await??,
        GrantType::RefreshToken => {
            let client_id = client.client_id.clone();
            let outcome = tokens::refresh(state, params, client, now).await?;
            match outcome {
                RefreshOutcome::Issued(response) => response,
                RefreshOutcome::Refused(error) => return Err(error.into()),
                RefreshOutcome::ReuseDetected { family_id, user_id } => {
                    state.metrics.event("refresh_reuse_detected");
                    // The family's client is sent a Logout Token.
                    state.backchannel_wakeup.notify_one();
                    state.events_wakeup.notify_waiters();
                    tracing::warn!(family = %family_id, "refresh token reused; its family is revoked");
                    audit::record(
                        Event::RefreshReuseDetected,
                        guard.actor().client(&client_id).user(user_id),
                        "refresh token reused; family revoked",
                    );
                    return Err(refresh::REUSE_ERROR.into());
                }
            }
        }
        GrantType::ClientCredentials => {
            let keys = state.keys.snapshot();
            client_credentials::issue(&params, &client, &state.policy, keys.as_ref(), now)?
        }
    };
    tracing::debug!("token issued");
    Ok(token_response(&response))
}
