//! `POST /revoke` (RFC 7009). Always 200 once the client is authenticated,
//! whether or not anything was revoked (section 2.2).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;

use super::token::{authenticated_client, read_form};
use super::{OAuthJson, with_store};
use crate::protocol::OAuthError;
use crate::protocol::revoke::{self, Revoked};
use crate::state::AppState;

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    let params = read_form(&req, payload).await?;
    let client = authenticated_client(&req, &state, &params).await?;
    if params.is_repeated("token") {
        return Err(OAuthError::InvalidRequest("token is repeated").into());
    }
    let Some(token) = params.get("token").map(str::to_owned) else {
        return Err(OAuthError::InvalidRequest("token is required").into());
    };
    let hint = params.get("token_type_hint").map(str::to_owned);
    let st = state.clone();
    let revoked = with_store(&state, move |store| {
        let keys = st.keys.snapshot();
        revoke::revoke(
            &token,
            hint.as_deref(),
            &client,
            &st.policy.issuer,
            keys.as_ref(),
            store,
            Utc::now(),
        )
    })
    .await?;
    if revoked != Revoked::Nothing {
        tracing::info!(what = ?revoked, "token revoked");
    }
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .finish())
}
