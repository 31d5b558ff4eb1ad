//! `POST /revoke` (RFC 7009). Always 200 once the client is authenticated,
//! whether or not anything was revoked (section 2.2).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::token::{authenticated_client, token_and_hint};
use super::{OAuthJson, limits};
use crate::audit::{self, Event};
use crate::policy::tokens;
use crate::protocol::Params;
use crate::protocol::revoke::Revoked;
use crate::state::AppState;

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    limits::guarded(&req, &state, payload, async |params, guard| {
        answer(&req, &state, params, guard).await
    })
    .await
}

async fn answer(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    params: Params,
    guard: &limits::Guard,
) -> Result<HttpResponse, OAuthJson> {
    let client = authenticated_client(req, state, &params).await?;
    let client_id = client.client_id.clone();
    let (token, hint) = token_and_hint(&params)?;
    let revoked = tokens::revoke(state, token, hint, client, state.clock.now()).await?;
    let detail = match revoked {
        Revoked::RefreshFamily => Some("refresh token revoked with its family"),
        Revoked::AccessToken => Some("access token revoked"),
        Revoked::Nothing => None,
    };
    if let Some(detail) = detail {
        audit::record(Event::TokenRevoked, guard.actor().client(&client_id), detail);
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
