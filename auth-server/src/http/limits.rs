//! Failure limits at the JSON endpoints (token, introspection, revocation):
//! a request from an address that is over its failure limit is refused
//! with 429 `slow_down` before any secret is checked; so is a request that
//! presents a secret for a client whose secret has been guessed at too
//! often. Failed client authentication and `invalid_grant` count against
//! the address; only failed client authentication with a secret counts
//! against the client, so nobody can spend a public client's allowance
//! with bad refresh tokens (and expired tokens of its own users cannot
//! either). Successful requests cost one in-memory lookup and are never
//! counted.

use std::net::IpAddr;

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};

use super::OAuthJson;
use super::client_ip::client_ip;
use crate::audit::{self, Actor, Event};
use crate::limits::{self, Kind};
use crate::protocol::{OAuthError, Params, client_auth};
use crate::state::AppState;

/// The keys one request is limited by.
pub struct Guard {
    pub ip: IpAddr,
    ip_key: String,
    client_id: Option<String>,
    /// The request authenticates with a secret (Basic or `client_secret`).
    with_secret: bool,
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
    admit_with(req, state, params, true)
}

/// [`admit`]; with `client_limit` false only the address's limit can
/// refuse (its failures still count against the client). The revocation
/// feed uses this: anyone who knows a resource server's client id could
/// otherwise spend its allowance with wrong secrets and stall the feed,
/// and its 256-bit secret is not guessable whatever the rate.
pub fn admit_with(
    req: &HttpRequest,
    state: &AppState,
    params: &Params,
    client_limit: bool,
) -> Result<Guard, OAuthJson> {
    let ip = client_ip(req, &state.settings.trusted_proxies);
    state.limits.admit_request(ip).map_err(slow_down)?;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    let credentials = client_auth::extract(authorization, params).ok();
    let guard = Guard {
        ip,
        ip_key: limits::ip_key(ip),
        client_id: credentials
            .as_ref()
            .map(|c| c.client_id().chars().take(128).collect()),
        with_secret: credentials
            .as_ref()
            .is_some_and(client_auth::Credentials::has_secret),
    };
    let client_key = guard
        .client_id
        .as_deref()
        .filter(|_| guard.with_secret && client_limit)
        .map(limits::client_key);
    let mut keys = vec![guard.ip_key.as_str()];
    keys.extend(client_key.as_deref());
    if let Some(wait) = state.limits.blocked(&keys, state.clock.now()) {
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

/// Reads a JSON endpoint's form, admits it, runs `answer`, and counts its
/// failure: the frame of `/token`, `/introspect` and `/revoke`.
pub async fn guarded(
    req: &HttpRequest,
    state: &web::Data<AppState>,
    payload: web::Payload,
    answer: impl AsyncFnOnce(Params, &Guard) -> Result<HttpResponse, OAuthJson>,
) -> Result<HttpResponse, OAuthJson> {
    let params = super::read_form(req, payload).await?;
    let guard = admit(req, state, &params)?;
    let result = answer(params, &guard).await;
    guard.settle(state, &result).await;
    result
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
        let client_key = match error {
            OAuthError::InvalidClient { .. } => {
                audit::record(
                    Event::ClientAuthenticationFailed,
                    self.actor(),
                    "client authentication failed",
                );
                self.client_id
                    .as_deref()
                    .filter(|_| self.with_secret)
                    .map(limits::client_key)
            }
            OAuthError::InvalidGrant(_) => None,
            _ => return,
        };
        let mut keys = vec![(Kind::Address, self.ip_key.clone())];
        keys.extend(client_key.map(|key| (Kind::Client, key)));
        let recorded = crate::policy::record_failures(state, keys).await;
        if let Err(e) = recorded {
            tracing::warn!(error = %e, "could not count a failed request against its limits");
        }
    }
}
