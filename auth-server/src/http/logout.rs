//! `GET /logout` (a confirmation form) and `POST /logout` (CSRF-protected):
//! ends the browser session and revokes every refresh-token family the
//! session produced (and expires its unredeemed codes, which would start
//! new ones). `post_logout_redirect_uri` is followed only when it exactly
//! matches a URI registered for the `client_id` given with it.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use diesel::Connection as _;

use super::{cookies, find_session, pages, query_params, session_cookie};
use crate::audit::{self, Actor, Event};
use crate::client_cache::CachedClients;
use crate::crypto;
use crate::pages::Signed;
use crate::protocol::client_auth::ClientDirectory as _;
use crate::protocol::session::{CsrfPurpose, csrf_ok, csrf_token};
use crate::protocol::{Params, StoreError};
use crate::state::AppState;
use crate::storage;

/// The validated place to go after logout, with `state` appended.
fn destination(
    state: &AppState,
    store: &mut crate::storage::PgStore<'_>,
    params: &Params,
) -> Result<Option<String>, StoreError> {
    let (Some(uri), Some(client_id)) = (params.get("post_logout_redirect_uri"), params.get("client_id"))
    else {
        return Ok(None);
    };
    let mut clients = CachedClients {
        cache: &state.clients,
        store,
    };
    let Some(client) = clients.client(client_id)? else {
        return Ok(None);
    };
    if !client.accepts_post_logout_redirect(uri) {
        return Ok(None);
    }
    let Ok(mut url) = url::Url::parse(uri) else {
        return Ok(None);
    };
    if let Some(s) = params.get("state") {
        url.query_pairs_mut().append_pair("state", s);
    }
    Ok(Some(url.into()))
}

fn origin_of(location: &str) -> Vec<String> {
    url::Url::parse(location)
        .ok()
        .map(|u| u.origin().ascii_serialization())
        .into_iter()
        .collect()
}

pub async fn show(req: HttpRequest, state: web::Data<AppState>) -> HttpResponse {
    let params = query_params(&req);
    let raw = session_cookie(&req, &state);
    let st = state.clone();
    let lookup = raw.clone();
    let found = storage::run(&state.pool, move |store| {
        let session = find_session(store, lookup.as_deref(), Utc::now(), st.settings.session_idle_ttl)?;
        Ok((session, destination(&st, store, &params)?))
    })
    .await;
    let (session, destination) = match found {
        Ok(found) => found,
        Err(e) => return pages::unavailable(e),
    };
    // Every visit gets the form. A session that has idled out may still
    // have grants to revoke; without any session the form is bound to the
    // pre-login cookie and only finishes the redirect.
    let (binding, new_cookie) = match (&raw, cookies::read(&req, state.cookies.login)) {
        (Some(raw), _) => (raw.clone(), None),
        (None, Some(existing)) => (without_session(&existing), None),
        (None, None) => match crypto::random_token() {
            Ok(fresh) => (without_session(&fresh), Some(fresh)),
            Err(e) => return pages::unavailable(e.into()),
        },
    };
    let Ok(token) = csrf_token(&state.server_keys.csrf, CsrfPurpose::Logout, &binding) else {
        return pages::unavailable(StoreError::Failed("csrf".into()));
    };
    let action = if req.query_string().is_empty() {
        "/logout".to_owned()
    } else {
        format!("/logout?{}", req.query_string())
    };
    let origins = destination.as_deref().map(origin_of).unwrap_or_default();
    let who = match (&raw, &session) {
        (_, Some(session)) => Signed::In(&session.user.username),
        (Some(_), None) => Signed::Expired,
        (None, None) => Signed::Out,
    };
    let mut page = pages::html(
        StatusCode::OK,
        crate::pages::logout_page(&action, &token, who),
        &origins,
    );
    if let Some(fresh) = new_cookie {
        let _ = page.add_cookie(&cookies::set(state.cookies.login, fresh));
    }
    page
}

/// The CSRF binding of a logout form shown to a browser without a session.
fn without_session(login_cookie: &str) -> String {
    format!("no-session:{login_cookie}")
}

pub async fn submit(req: HttpRequest, state: web::Data<AppState>, payload: web::Payload) -> HttpResponse {
    let form = match super::read_page_form(payload).await {
        Ok(form) => form,
        Err(too_large) => return too_large,
    };
    let params = query_params(&req);
    let raw = session_cookie(&req, &state);
    let binding = match (&raw, cookies::read(&req, state.cookies.login)) {
        (Some(raw), _) => Some(raw.clone()),
        (None, login) => login.map(|l| without_session(&l)),
    };
    let presented = form.get("csrf_token").unwrap_or("");
    if !binding.is_some_and(|b| csrf_ok(&state.server_keys.csrf, CsrfPurpose::Logout, &b, presented)) {
        tracing::warn!("logout refused: CSRF token missing or wrong");
        return pages::error(
            StatusCode::FORBIDDEN,
            "This page expired",
            "The sign-out form expired. Open the sign-out page again.",
        );
    }
    let st = state.clone();
    let ip = super::client_ip::client_ip(&req, &state.settings.trusted_proxies);
    let ended = raw.is_some();
    let done = storage::run(&state.pool, move |store| {
        let mut revoked = 0;
        if let Some(raw) = raw {
            let hash = crypto::token_hash(&raw);
            let now = Utc::now();
            // One transaction, in this order: the session row first, so no
            // new code can be stored for it (`insert_code`); then its codes,
            // which waits for exchanges holding one (`expire_session_codes`);
            // then its families, which now include theirs.
            revoked = store.conn.transaction(|conn| {
                storage::sessions::delete(conn, &hash)?;
                storage::grants::expire_session_codes(conn, &hash)?;
                storage::grants::revoke_session_families(conn, &hash, now)
            })?;
        }
        Ok((revoked, destination(&st, store, &params)?))
    })
    .await;
    let (revoked, destination) = match done {
        Ok(done) => done,
        Err(e) => return pages::unavailable(e),
    };
    tracing::info!(revoked_families = revoked, "logged out");
    if ended {
        audit::record(
            Event::LoggedOut,
            Actor::ip(ip),
            "session ended; its grants revoked",
        );
    }
    let mut response = match destination {
        Some(location) => pages::redirect(&location, true),
        None => pages::html(
            StatusCode::OK,
            crate::pages::message_page("Signed out", "You have signed out."),
            &[],
        ),
    };
    let _ = response.add_cookie(&cookies::remove(state.cookies.session));
    response
}
