//! Failure limits at the JSON endpoints (token, introspection, revocation):
//! a request from an address, or naming a client, that is over its failure
//! limit is refused with 429 `slow_down` before any secret is checked; a
//! failed client authentication or `invalid_grant` counts against both.
//! Successful requests cost one in-memory lookup and are never counted.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;

use super::client_ip::client_ip;
use super::{OAuthJson, with_store};
use crate::audit::{self, Actor, Event};
use crate::limits::{self, Kind};
use crate::protocol::{OAuthError, Params, client_auth};
use crate::state::AppState;

/// The keys one request is limited by.
pub struct Guard {
    pub ip: IpAddr,
    ip_key: String,
    client_id: Option<String>,
}

fn slow_down(wait: std::time::Duration) -> OAuthJson {
    OAuthError::SlowDown {
        retry_after_seconds: wait.as_secs().saturating_add(u64::from(wait.subsec_nanos() > 0)),
    }
    .into()
}

/// Admits a request, or refuses it with 429 when its address or client is
/// known to be over its limit.
pub fn admit(req: &HttpRequest, state: &AppState, params: &Params) -> Result<Guard, OAuthJson> {
    let ip = client_ip(req, &state.settings.trusted_proxies);
    state.limits.admit_request(ip).map_err(slow_down)?;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let client_id = client_auth::extract(authorization, params)
        .ok()
        .map(|c| c.client_id().to_owned());
    let guard = Guard {
        ip,
        ip_key: limits::ip_key(ip),
        client_id,
    };
    let client_key = guard.client_id.as_deref().map(limits::client_key);
    let mut keys = vec![guard.ip_key.as_str()];
    keys.extend(client_key.as_deref());
    if let Some(wait) = state.limits.blocked(&keys, Utc::now()) {
        state.metrics.event("client_limited");
        audit::record(
            Event::Throttled,
            guard.actor(),
            "request refused: over its failure limit",
        );
        return Err(slow_down(wait));
    }
    Ok(guard)
}

impl Guard {
    pub fn actor(&self) -> Actor<'_> {
        let actor = Actor::ip(self.ip);
        match &self.client_id {
            Some(id) => actor.client(id),
            None => actor,
        }
    }

    /// Counts the request's failure, if it failed in a way that counts.
    pub async fn settle(&self, state: &web::Data<AppState>, result: &Result<HttpResponse, OAuthJson>) {
        let Err(OAuthJson(error)) = result else {
            return;
        };
        match error {
            OAuthError::InvalidClient { .. } => audit::record(
                Event::ClientAuthenticationFailed,
                self.actor(),
                "client authentication failed",
            ),
            OAuthError::InvalidGrant(_) => {}
            _ => return,
        }
        let st = state.clone();
        let ip_key = self.ip_key.clone();
        let client_key = self.client_id.as_deref().map(limits::client_key);
        let recorded = with_store(state, move |store| {
            let now = Utc::now();
            st.limits
                .record_failure(store.conn, Kind::Address, &ip_key, now)?;
            if let Some(key) = client_key {
                st.limits.record_failure(store.conn, Kind::Client, &key, now)?;
            }
            Ok(())
        })
        .await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not count a failed request against its limits");
        }
    }
}
