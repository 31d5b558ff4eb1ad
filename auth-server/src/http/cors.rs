//! CORS for the token, revocation, JWKS and metadata endpoints: allowed for
//! the origins of public clients' registered redirect URIs (browser apps),
//! and for nobody else. The authorization endpoint and the pages never send
//! CORS headers.

use std::collections::HashSet;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use actix_web::body::{BoxBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderValue};
use actix_web::http::{Method, StatusCode};
use actix_web::middleware::Next;
use actix_web::{Error, HttpResponse, web};

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

/// Middleware for the CORS-enabled resources: answers preflights and adds
/// `Access-Control-Allow-Origin` for allowed origins.
pub async fn cors(
    req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, Error> {
    let origin = req
        .headers()
        .get(header::ORIGIN)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    let allowed_origin = match (&origin, &state) {
        (Some(origin), Some(state)) if allowed(state, origin).await => Some(origin.clone()),
        _ => None,
    };
    let preflight =
        req.method() == Method::OPTIONS && req.headers().contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let mut response = match &allowed_origin {
            Some(origin) => {
                let mut r = HttpResponse::NoContent();
                r.insert_header((header::ACCESS_CONTROL_ALLOW_ORIGIN, origin.as_str()))
                    .insert_header((header::ACCESS_CONTROL_ALLOW_METHODS, "GET, POST"))
                    .insert_header((
                        header::ACCESS_CONTROL_ALLOW_HEADERS,
                        "authorization, content-type",
                    ))
                    .insert_header((header::ACCESS_CONTROL_MAX_AGE, "600"));
                r
            }
            None => HttpResponse::build(StatusCode::FORBIDDEN),
        };
        let response = response.insert_header((header::VARY, "Origin")).finish();
        return Ok(req.into_response(response).map_into_boxed_body());
    }
    let mut response = next.call(req).await?.map_into_boxed_body();
    let headers = response.headers_mut();
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    if let Some(origin) = allowed_origin.and_then(|o| HeaderValue::from_str(&o).ok()) {
        headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    }
    Ok(response)
}
