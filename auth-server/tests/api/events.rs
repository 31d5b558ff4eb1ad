//! The revocation feed (issue 15) at the auth-server: who may read it,
//! what each revocation records, the SETs' shape and signature, the cursor,
//! the long poll, retention, and that a restart loses nothing.

use std::time::{Duration, Instant};

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Value, json};

use crate::helpers::*;

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const GRANT_REVOKED: &str = "urn:x-oauth-notes:secevent:grant-revoked";
const TOKEN_REVOKED: &str = "urn:x-oauth-notes:secevent:token-revoked";
const CLIENT_REVOKED: &str = "urn:x-oauth-notes:secevent:client-revoked";

/// A client that may read the feed, and its Basic header.
fn reader(app: &TestApp) -> String {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Notes API".into(),
        confidential: true,
        allow_events: true,
        ..Default::default()
    });
    basic(&client.client_id, &secret.unwrap())
}

fn poll(app: &TestApp, authorization: &str, body: Value) -> Reply {
    app.http().post_raw(
        "/events",
        "application/json",
        &body.to_string(),
        &[("Authorization", authorization)],
    )
}

/// Every SET of a poll from `cursor`, verified against the JWKS (RFC 8417
/// section 2.3: `typ: secevent+jwt`), and the next cursor.
fn read(app: &TestApp, authorization: &str, cursor: &str) -> (Vec<Value>, String) {
    let reply = poll(
        app,
        authorization,
        json!({ "cursor": cursor, "returnImmediately": true }),
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    let jwks: JwkSet = serde_json::from_value(app.http().get("/.well-known/jwks.json").json()).unwrap();
    let sets = body["sets"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(jti, set)| {
            let set = set.as_str().unwrap();
            let header = jsonwebtoken::decode_header(set).unwrap();
            assert_eq!(header.typ.as_deref(), Some("secevent+jwt"));
            let key = DecodingKey::from_jwk(jwks.find(&header.kid.unwrap()).unwrap()).unwrap();
            let mut validation = Validation::new(Algorithm::ES256);
            validation.set_issuer(&[app.issuer.as_str()]);
            validation.validate_aud = false;
            validation.set_required_spec_claims(&["iss"]);
            let claims = jsonwebtoken::decode::<Value>(set, &key, &validation)
                .unwrap()
                .claims;
            assert_eq!(claims["jti"], Value::from(jti.clone()));
            claims
        })
        .collect();
    (sets, body["cursor"].as_str().unwrap().to_owned())
}

fn of_type<'a>(sets: &'a [Value], event_type: &str) -> Vec<&'a Value> {
    sets.iter()
        .filter(|s| s["events"].get(event_type).is_some())
        .collect()
}

fn spa(app: &TestApp) -> Client {
    app.create_client(ClientRegistration {
        name: "SPA".into(),
        redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
        first_party: true,
        ..Default::default()
    })
    .0
}

#[test]
fn the_feed_is_named_in_the_metadata_and_only_allow_events_clients_read_it() {
    let app = spawn_app();
    let metadata = app.http().get("/.well-known/oauth-authorization-server").json();
    assert_eq!(
        metadata["revocation_feed_endpoint"],
        Value::from(format!("{}/events", app.issuer))
    );
    let (other, secret) = app.create_client(ClientRegistration {
        name: "Batch".into(),
        confidential: true,
        ..Default::default()
    });
    let refused = poll(&app, &basic(&other.client_id, &secret.unwrap()), json!({}));
    assert_oauth_error(&refused, 400, "unauthorized_client");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM rate_limits WHERE key LIKE 'client:%'"),
        0,
        "an authenticated client is not counted as a failed secret"
    );
    let anonymous = app.http().post_raw("/events", "application/json", "{}", &[]);
    assert_oauth_error(&anonymous, 401, "invalid_client");
    let authorization = reader(&app);
    let (sets, cursor) = read(&app, &authorization, "0");
    assert!(sets.is_empty());
    assert_eq!(cursor, "0");
    let bad = poll(&app, &authorization, json!({ "cursor": "nope" }));
    assert_oauth_error(&bad, 400, "invalid_request");
    let public = ClientRegistration {
        name: "x".into(),
        redirect_uris: vec!["http://127.0.0.1:5173/cb".into()],
        allow_events: true,
        ..Default::default()
    };
    assert!(
        public.check("aud").is_err(),
        "a public client cannot read the feed"
    );
}

#[test]
fn logout_records_the_session_and_its_grants_sid_as_caep_session_revoked() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let authorization = reader(&app);
    let client = spa(&app);
    let mut browser = app.browser();
    let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
    let tokens = app.redeem_code(&client, None, &code, &verifier).json();
    let sid = jwt_claims(tokens["access_token"].as_str().unwrap())["sid"].clone();
    let page = browser.get("/logout");
    let csrf = page.input_value("csrf_token").unwrap();
    browser.post_form("/logout", &[("csrf_token", &csrf)]);
    let (sets, cursor) = read(&app, &authorization, "0");
    let sessions = of_type(&sets, SESSION_REVOKED);
    assert_eq!(sessions.len(), 1, "{sets:?}");
    assert_eq!(sessions[0]["sub_id"], json!({ "format": "opaque", "id": sid }));
    assert!(sessions[0]["events"][SESSION_REVOKED]["event_timestamp"].is_i64());
    // Read with the cursor: nothing again.
    let (again, next) = read(&app, &authorization, &cursor);
    assert!(again.is_empty());
    assert_eq!(next, cursor);
}

#[test]
fn rfc7009_revocations_reuse_and_operator_actions_are_recorded() {
    let app = spawn_app();
    let alice = app.create_user("alice", &["user"]);
    let authorization = reader(&app);
    let client = spa(&app);
    // RFC 7009: an access token, then a refresh token.
    let tokens = app.code_flow(&client, "alice", &[]);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(app.revoke_public(&client, access).status, 200);
    let jti = jwt_claims(access)["jti"].clone();
    assert_eq!(
        app.revoke_public(&client, tokens["refresh_token"].as_str().unwrap())
            .status,
        200
    );
    let grant = jwt_claims(access)["grant_id"].clone();
    let (sets, cursor) = read(&app, &authorization, "0");
    assert_eq!(of_type(&sets, TOKEN_REVOKED)[0]["sub_id"]["id"], jti);
    assert_eq!(of_type(&sets, GRANT_REVOKED)[0]["sub_id"]["id"], grant);
    // Reuse detection revokes the grant.
    let tokens = app.code_flow(&client, "alice", &[]);
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.refresh(&client, refresh).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    assert_oauth_error(&app.refresh(&client, refresh), 400, "invalid_grant");
    let (sets, cursor) = read(&app, &authorization, &cursor);
    assert_eq!(
        of_type(&sets, GRANT_REVOKED)[0]["sub_id"]["id"],
        jwt_claims(tokens["access_token"].as_str().unwrap())["grant_id"]
    );
    // `user disable`: every session of the user.
    let disabled = run_auth_binary(&app.env, &["user", "disable", "alice"], "");
    assert!(disabled.status.success(), "{disabled:?}");
    let (sets, cursor) = read(&app, &authorization, &cursor);
    assert_eq!(
        of_type(&sets, SESSION_REVOKED)
            .iter()
            .map(|s| s["sub_id"].clone())
            .collect::<Vec<_>>(),
        [json!({ "format": "iss_sub", "iss": app.issuer, "sub": alice.id.to_string() })]
    );
    // `client rotate-secret --overlap 0` and `client delete`.
    let (machine, _) = app.create_client(ClientRegistration {
        name: "Batch".into(),
        confidential: true,
        ..Default::default()
    });
    let rotated = run_auth_binary(
        &app.env,
        &["client", "rotate-secret", &machine.client_id, "--overlap", "0"],
        "",
    );
    assert!(rotated.status.success(), "{rotated:?}");
    let deleted = run_auth_binary(&app.env, &["client", "delete", &client.client_id, "--yes"], "");
    assert!(deleted.status.success(), "{deleted:?}");
    let (sets, _) = read(&app, &authorization, &cursor);
    let clients: Vec<Value> = of_type(&sets, CLIENT_REVOKED)
        .iter()
        .map(|s| s["sub_id"]["id"].clone())
        .collect();
    assert_eq!(
        clients,
        [
            Value::from(machine.client_id.clone()),
            Value::from(client.client_id.clone())
        ]
    );
}

#[test]
fn a_long_poll_waits_for_the_next_event_and_returns_it_at_once() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let authorization = reader(&app);
    let client = spa(&app);
    let tokens = app.code_flow(&client, "alice", &[]);
    let started = Instant::now();
    let empty = poll(&app, &authorization, json!({ "cursor": "0" }));
    let waited = started.elapsed();
    assert!(empty.json()["sets"].as_object().unwrap().is_empty());
    assert!(
        waited >= Duration::from_secs(4),
        "a poll with nothing new waits: {waited:?}"
    );
    let base = app.base.clone();
    let auth = authorization.clone();
    let waiter = std::thread::spawn(move || {
        let started = Instant::now();
        let reply = Browser::new(&base).post_raw(
            "/events",
            "application/json",
            r#"{"cursor":"0"}"#,
            &[("Authorization", &auth)],
        );
        (reply, started.elapsed())
    });
    std::thread::sleep(Duration::from_millis(1000));
    assert_eq!(
        app.revoke_public(&client, tokens["refresh_token"].as_str().unwrap())
            .status,
        200
    );
    let (reply, elapsed) = waiter.join().unwrap();
    assert_eq!(
        reply.json()["sets"].as_object().unwrap().len(),
        1,
        "{}",
        reply.body
    );
    assert!(
        elapsed < Duration::from_millis(2500),
        "woken by the event: {elapsed:?}"
    );
}

#[test]
fn events_past_the_retention_are_not_served_and_are_cleaned_up() {
    let app = spawn_app();
    let authorization = reader(&app);
    app.sql_exec(
        "INSERT INTO revocation_events (jti, kind, subject, revoked_at) VALUES
           (gen_random_uuid(), 'user', 'old', now() - interval '2 hours'),
           (gen_random_uuid(), 'user', 'new', now())",
    );
    let (sets, _) = read(&app, &authorization, "0");
    assert_eq!(sets.len(), 1);
    assert_eq!(sets[0]["sub_id"]["sub"], Value::from("new"));
    actix_web::rt::System::new().block_on(auth_server::background::cleanup(&app.state, 100));
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM revocation_events"), 1);
}

#[test]
fn an_auth_server_restart_loses_no_event() {
    let mut app = spawn_app();
    app.create_user("alice", &["user"]);
    let authorization = reader(&app);
    let client = spa(&app);
    let tokens = app.code_flow(&client, "alice", &[]);
    assert_eq!(
        app.revoke_public(&client, tokens["refresh_token"].as_str().unwrap())
            .status,
        200
    );
    app.stop();
    let restarted = start_instance(&peer_env(&app)).expect("restarts on the same database");
    let reply = restarted.browser().post_raw(
        "/events",
        "application/json",
        r#"{"returnImmediately":true}"#,
        &[("Authorization", &authorization)],
    );
    assert_eq!(
        reply.json()["sets"].as_object().unwrap().len(),
        1,
        "{}",
        reply.body
    );
}

#[test]
fn an_operator_change_names_every_grant_of_the_user_so_a_racing_refresh_is_refused_too() {
    let app = spawn_app();
    let alice = app.create_user("alice", &["user"]);
    let authorization = reader(&app);
    let client = spa(&app);
    let first = app.code_flow(&client, "alice", &[]);
    let second = app.code_flow(&client, "alice", &[]);
    let disabled = run_auth_binary(&app.env, &["user", "disable", "alice"], "");
    assert!(disabled.status.success(), "{disabled:?}");
    let (sets, _) = read(&app, &authorization, "0");
    let mut grants: Vec<Value> = of_type(&sets, GRANT_REVOKED)
        .iter()
        .map(|s| s["sub_id"]["id"].clone())
        .collect();
    grants.sort_by_key(|g| g.to_string());
    let mut expected = vec![
        jwt_claims(first["access_token"].as_str().unwrap())["grant_id"].clone(),
        jwt_claims(second["access_token"].as_str().unwrap())["grant_id"].clone(),
    ];
    expected.sort_by_key(|g| g.to_string());
    assert_eq!(grants, expected);
    assert_eq!(
        of_type(&sets, SESSION_REVOKED)[0]["sub_id"]["sub"],
        Value::from(alice.id.to_string())
    );
}

#[test]
fn a_revocation_that_cannot_record_its_event_is_not_made_and_a_retry_records_both() {
    use diesel::RunQueryDsl as _;
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let authorization = reader(&app);
    let client = spa(&app);
    let tokens = app.code_flow(&client, "alice", &[]);
    let access = tokens["access_token"].as_str().unwrap();
    // Another session holds the feed's ordering lock past the lock timeout.
    let mut holder = app.db.connect();
    diesel::sql_query("SELECT pg_advisory_lock(x'0a175e120015'::bigint)")
        .execute(&mut holder)
        .unwrap();
    let failed = app.revoke_public(&client, access);
    assert_ne!(failed.status, 200, "{}", failed.body);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM revoked_access_tokens"),
        0,
        "nothing revoked without its event"
    );
    diesel::sql_query("SELECT pg_advisory_unlock(x'0a175e120015'::bigint)")
        .execute(&mut holder)
        .unwrap();
    assert_eq!(app.revoke_public(&client, access).status, 200);
    let (sets, _) = read(&app, &authorization, "0");
    assert_eq!(of_type(&sets, TOKEN_REVOKED).len(), 1);
}

#[test]
fn wrong_secrets_for_the_feed_reader_never_lock_it_out() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_CLIENT_FAILURE_LIMIT".into(), "3".into());
    });
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Notes API".into(),
        confidential: true,
        allow_events: true,
        ..Default::default()
    });
    for _ in 0..6 {
        let wrong = poll(&app, &basic(&client.client_id, "not-the-secret"), json!({}));
        assert_oauth_error(&wrong, 401, "invalid_client");
    }
    let right = poll(
        &app,
        &basic(&client.client_id, &secret.unwrap()),
        json!({ "returnImmediately": true }),
    );
    assert_eq!(right.status, 200, "{}", right.body);
}

#[test]
fn a_cursor_this_feed_never_gave_is_refused_so_the_reader_starts_again() {
    let app = spawn_app();
    let authorization = reader(&app);
    let ahead = poll(
        &app,
        &authorization,
        json!({ "cursor": "99999999", "returnImmediately": true }),
    );
    assert_oauth_error(&ahead, 400, "invalid_request");
}

#[test]
fn another_user_signing_in_in_the_same_browser_ends_the_first_users_session_in_the_feed() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let authorization = reader(&app);
    let client = spa(&app);
    let mut browser = app.browser();
    let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
    let alices = app.redeem_code(&client, None, &code, &verifier).json();
    // Bob signs in on the same browser's sign-in page.
    let page = browser.get("/login?fresh=1");
    let csrf = page.input_value("csrf_token").unwrap();
    let signed_in = browser.post_form(
        "/login",
        &[("username", "bob"), ("password", PASSWORD), ("csrf_token", &csrf)],
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let (sets, _) = read(&app, &authorization, "0");
    let access = jwt_claims(alices["access_token"].as_str().unwrap());
    assert_eq!(of_type(&sets, SESSION_REVOKED)[0]["sub_id"]["id"], access["sid"]);
    assert_eq!(
        of_type(&sets, GRANT_REVOKED)[0]["sub_id"]["id"],
        access["grant_id"]
    );
}
