//! `POST /revoke` (RFC 7009). Always 200 once the client is authenticated,
//! whether or not anything was revoked (section 2.2).

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;

use super::token::{authenticated_client, read_form, token_and_hint};
use super::{OAuthJson, with_store};
use crate::protocol::revoke::{self, Revoked};
use crate::state::AppState;

pub async fn revoke(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    let params = read_form(&req, payload).await?;
    let client = authenticated_client(&req, &state, &params).await?;
    let (token, hint) = token_and_hint(&params)?;
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
