//! `POST /introspect` (RFC 7662): for confidential clients registered with
//! `--allow-introspection`; anyone else gets 401.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;

use super::token::{authenticated_client, read_form, token_and_hint};
use super::{OAuthJson, with_store};
use crate::domain::ClientKind;
use crate::protocol::OAuthError;
use crate::protocol::introspect;
use crate::state::AppState;

pub async fn introspect(
    req: HttpRequest,
    state: web::Data<AppState>,
    payload: web::Payload,
) -> Result<HttpResponse, OAuthJson> {
    let params = read_form(&req, payload).await?;
    let client = authenticated_client(&req, &state, &params).await?;
    if client.kind != ClientKind::Confidential || !client.allow_introspection {
        return Err(OAuthError::InvalidClient {
            used_basic: req.headers().contains_key(header::AUTHORIZATION),
        }
        .into());
    }
    let (token, hint) = token_and_hint(&params)?;
    let st = state.clone();
    let answer = with_store(&state, move |store| {
        let keys = st.keys.snapshot();
        introspect::introspect(
            &token,
            hint.as_deref(),
            &st.policy.issuer,
            keys.as_ref(),
            store,
            Utc::now(),
        )
    })
    .await?;
    Ok(HttpResponse::Ok()
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .json(answer))
}
