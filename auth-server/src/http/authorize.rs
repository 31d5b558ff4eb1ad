//! `GET /authorize` and `POST /authorize` (the consent decision): RFC 6749
//! section 4.1.1 with PKCE, through the engine (`protocol::engine`).
//!
//! Order of checks: client and redirect URI first (failures are a page,
//! never a redirect); then the request itself (failures redirect with
//! `error`, `state`, `iss`); then sign-in; then consent.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};

use super::{find_session, pages, query_params, session_cookie};
use crate::audit::{self, Actor, Event};
use crate::client_cache::CachedClients;
use crate::domain::ScopeSet;
use crate::pages::{ConsentPage, consent_page};
use crate::protocol::authorize::{needs_consent, resolve_target};
use crate::protocol::engine::{self, AuthorizationOutcome, AuthorizationRequest, Step};
use crate::protocol::session::{CsrfPurpose, csrf_ok, csrf_token};
use crate::protocol::{OAuthError, Params, StoreError};
use crate::state::AppState;
use crate::storage;
use crate::storage::PgStore;

enum View {
    /// An error the user sees here (bad client or redirect URI, expired
    /// form).
    Page {
        status: StatusCode,
        title: &'static str,
        message: &'static str,
    },
    /// Back to the client.
    Redirect(String),
    /// Sign in first.
    Login,
    Consent {
        client_name: String,
        username: String,
        scope: ScopeSet,
        csrf_token: String,
        form_origins: Vec<String>,
    },
}

/// The user's answer on the consent page.
struct Decision {
    /// The client address, for the audit log.
    ip: std::net::IpAddr,
    approve: bool,
    csrf_token: String,
}

fn decide_view(
    state: &AppState,
    store: &mut PgStore<'_>,
    params: &Params,
    raw_session: Option<&str>,
    decision: Option<Decision>,
    now: DateTime<Utc>,
) -> Result<View, StoreError> {
    let target = {
        let mut clients = CachedClients {
            cache: &state.clients,
            store: &mut *store,
        };
        match resolve_target(params, &mut clients)? {
            Ok(target) => target,
            Err(message) => {
                return Ok(View::Page {
                    status: StatusCode::BAD_REQUEST,
                    title: "This sign-in link is not valid",
                    message,
                });
            }
        }
    };
    let session = find_session(store, raw_session, now, state.settings.session_idle_ttl)?;
    let request = |user, session_hash| AuthorizationRequest {
        params,
        client: &target.client,
        redirect_uri: &target.redirect_uri,
        redirect_uri_given: target.redirect_uri_given,
        user,
        session_hash,
        issuer: state.settings.issuer.as_str(),
        now,
    };
    let user = session.as_ref().map(|s| &s.user);
    let hash = session.as_ref().map(|s| s.id_hash.as_slice());
    let scope = match engine::authorize(request(user, hash), Step::Inspect, store) {
        AuthorizationOutcome::Redirect(url) => return Ok(View::Redirect(url.into())),
        AuthorizationOutcome::Valid { scope } => scope,
    };
    let (Some(session), Some(raw_session)) = (&session, raw_session) else {
        return Ok(View::Login);
    };
    let finish = |store: &mut PgStore<'_>, step| match engine::authorize(request(user, hash), step, store) {
        AuthorizationOutcome::Redirect(url) => View::Redirect(url.into()),
        AuthorizationOutcome::Valid { .. } => View::Redirect(
            engine::error_redirect(
                &target.redirect_uri,
                &OAuthError::ServerError,
                params.get("state"),
                &state.policy.issuer,
            )
            .into(),
        ),
    };
    match decision {
        None => {
            let remembered = if target.client.first_party {
                None
            } else {
                storage::sessions::consent(store.conn, session.user.id, &target.client.client_id)?
            };
            if needs_consent(&target.client, remembered.as_ref(), &scope) {
                return Ok(View::Consent {
                    client_name: target.client.name.clone(),
                    username: session.user.username.clone(),
                    scope,
                    csrf_token: csrf_token(&state.server_keys.csrf, CsrfPurpose::Consent, raw_session)?,
                    form_origins: target.redirect_uri.origin().into_iter().collect(),
                });
            }
            Ok(finish(store, Step::Approve))
        }
        Some(decision) => {
            if !csrf_ok(
                &state.server_keys.csrf,
                CsrfPurpose::Consent,
                raw_session,
                &decision.csrf_token,
            ) {
                tracing::warn!("consent refused: CSRF token missing or wrong");
                return Ok(View::Page {
                    status: StatusCode::FORBIDDEN,
                    title: "This page expired",
                    message: "The consent form expired. Go back to the application and try again.",
                });
            }
            let actor = Actor::ip(decision.ip)
                .client(&target.client.client_id)
                .user(session.user.id);
            if !decision.approve {
                audit::record(Event::ConsentDenied, actor, "the user denied access");
                return Ok(finish(store, Step::Deny));
            }
            audit::record(Event::ConsentGranted, actor, "the user allowed access");
            if !target.client.first_party {
                storage::sessions::remember_consent(
                    store.conn,
                    session.user.id,
                    &target.client.client_id,
                    &scope,
                    now,
                )?;
            }
            Ok(finish(store, Step::Approve))
        }
    }
}

fn render(req: &HttpRequest, view: Result<View, StoreError>, after_post: bool) -> HttpResponse {
    match view {
        Ok(View::Page {
            status,
            title,
            message,
        }) => pages::error(status, title, message),
        Ok(View::Redirect(location)) => pages::redirect(&location, after_post),
        Ok(View::Login) => {
            let return_to = format!("/authorize?{}", req.query_string());
            let location = format!(
                "/login?return_to={}",
                url::form_urlencoded::byte_serialize(return_to.as_bytes()).collect::<String>()
            );
            pages::redirect(&location, after_post)
        }
        Ok(View::Consent {
            client_name,
            username,
            scope,
            csrf_token,
            form_origins,
        }) => {
            let action = format!("/authorize?{}", req.query_string());
            let redirect_origin = form_origins.first().map(String::as_str).unwrap_or_default();
            let body = consent_page(&ConsentPage {
                action: &action,
                csrf_token: &csrf_token,
                client_name: &client_name,
                username: &username,
                scope: &scope,
                redirect_origin,
            });
            pages::html(StatusCode::OK, body, &form_origins)
        }
        Err(e) => {
            let error = OAuthError::from_store(e);
            pages::error(
                super::home::error_status(&error),
                "Unavailable",
                "The service is temporarily unavailable. Please try again.",
            )
        }
    }
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = query_params(&req);
    let raw_session = session_cookie(&req, &state);
    let st = state.clone();
    let view = storage::run(&state.pool, move |store| {
        decide_view(&st, store, &params, raw_session.as_deref(), None, Utc::now())
    })
    .await;
    render(&req, view, false)
}

pub async fn decide(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let form = match super::read_page_form(payload).await {
        Ok(form) => form,
        Err(too_large) => return too_large,
    };
    let params = query_params(&req);
    let approve = match form.get("decision") {
        Some("approve") => true,
        Some("deny") => false,
        _ => {
            return pages::error(
                StatusCode::BAD_REQUEST,
                "Cannot continue",
                "The form did not say whether to allow or deny access.",
            );
        }
    };
    let decision = Decision {
        ip: super::client_ip::client_ip(&req, &state.settings.trusted_proxies),
        approve,
        csrf_token: form.get("csrf_token").unwrap_or("").to_owned(),
    };
    let raw_session = session_cookie(&req, &state);
    let st = state.clone();
    let view = storage::run(&state.pool, move |store| {
        decide_view(
            &st,
            store,
            &params,
            raw_session.as_deref(),
            Some(decision),
            Utc::now(),
        )
    })
    .await;
    render(&req, view, true)
}
