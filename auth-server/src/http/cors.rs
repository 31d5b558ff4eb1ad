//! CORS for the token, revocation, JWKS and metadata endpoints: allowed for
//! the origins of public clients' registered redirect URIs (browser apps),
//! and for nobody else. The authorization endpoint and the pages never send
//! CORS headers.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::middleware::Next;
use actix_web::{Error, web};
use oauth_common::cors::{self, CorsPolicy};

use crate::domain::RedirectUri;
use crate::state::AppState;
use crate::storage;

/// An origin we have not seen triggers a reload at most this often.
const RELOAD_ON_MISS_AFTER: Duration = Duration::from_secs(5);

#[derive(Default)]
pub struct CorsOrigins {
    inner: RwLock<(HashSet<String>, Option<Instant>)>,
}

impl CorsOrigins {
    fn contains(&self, origin: &str) -> bool {
        match self.inner.read() {
            Ok(guard) => guard.0.contains(origin),
            Err(poisoned) => poisoned.into_inner().0.contains(origin),
        }
    }

    /// Claims the right to reload now: true for at most one caller per
    /// `RELOAD_ON_MISS_AFTER`, whether or not its reload then succeeds, so
    /// made-up origins (or a database outage) cannot pile up reloads.
    fn claim_reload(&self) -> bool {
        let mut guard = match self.inner.write() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let due = guard.1.is_none_or(|at| at.elapsed() >= RELOAD_ON_MISS_AFTER);
        if due {
            guard.1 = Some(Instant::now());
        }
        due
    }

    /// Replaces the allow-list with the origins of these redirect URIs.
    pub fn replace(&self, redirect_uris: &[String]) {
        let origins = redirect_uris
            .iter()
            .filter_map(|u| RedirectUri::parse(u).ok())
            .filter_map(|u| u.origin())
            .collect();
        match self.inner.write() {
            Ok(mut guard) => *guard = (origins, Some(Instant::now())),
            Err(poisoned) => *poisoned.into_inner() = (origins, Some(Instant::now())),
        }
    }
}

/// Reloads the allow-list from the database.
pub async fn reload(state: &web::Data<AppState>) -> Result<(), crate::protocol::StoreError> {
    let uris = super::with_store(state, |store| storage::clients::public_redirect_uris(store.conn)).await?;
    state.cors.replace(&uris);
    Ok(())
}

async fn allowed(state: &web::Data<AppState>, origin: &str) -> bool {
    if state.cors.contains(origin) {
        return true;
    }
    if state.cors.claim_reload() {
        if let Err(e) = reload(state).await {
            tracing::warn!(error = %e, "cannot reload CORS origins");
        }
        return state.cors.contains(origin);
    }
    false
}

const POLICY: CorsPolicy = CorsPolicy {
    methods: "GET, POST",
    headers: "authorization, content-type",
    expose: None,
};

/// Middleware for the CORS-enabled resources: answers preflights and adds
/// `Access-Control-Allow-Origin` for allowed origins.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let allowed = match (cors::origin(&req), state) {
        (Some(origin), Some(state)) if allowed(&state, &origin).await => Some(origin),
        _ => None,
    };
    cors::apply(req, next, allowed, &POLICY).await
}
