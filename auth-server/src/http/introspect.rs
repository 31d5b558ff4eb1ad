//! `POST /introspect` (RFC 7662): for confidential clients registered with
//! `--allow-introspection`; anyone else gets 401. A caller sees only the
//! tokens meant for it (`protocol::introspect`).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::token::{authenticated_client, token_and_hint};
use super::{OAuthJson, limits};
use crate::domain::ClientKind;
use crate::policy::tokens;
use crate::protocol::{OAuthError, Params};
use crate::state::AppState;

pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    limits::guarded(&req, &state, payload, async |params, _| {
        answer(&req, &state, params).await
    })
    .await
}

async fn answer(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: Params,
) -> Result<HttpResponse, OAuthJson> {
    let client = authenticated_client(req, state, &params).await?;
    if client.kind != ClientKind::Confidential || !client.allow_introspection {
        return Err(OAuthError::InvalidClient {
            used_basic: req.headers().contains_key(header::AUTHORIZATION),
        }
        .into());
    }
    let (token, hint) = token_and_hint(&params)?;
    let answer = tokens::introspect(state, token, hint, client, state.clock.now()).await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
