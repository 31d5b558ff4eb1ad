//! The `client_credentials` grant (RFC 6749 section 4.4) and client
//! authentication at the token endpoint (section 2.3.1).

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;
use chrono::Utc;
use serde_json::Value;

use crate::helpers::*;

const AUDIENCES: [&str; 2] = ["https://api.example/one", "https://api.example/two"];

/// A machine client allowed `profile notes:read`, with two audiences.
fn service(app: &TestApp) -> (Client, String) {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Reporting job".into(),
        confidential: true,
        scopes: vec!["profile".into(), "notes:read".into()],
        audiences: AUDIENCES.iter().map(|a| (*a).to_owned()).collect(),
        ..Default::default()
    });
    (client, secret.unwrap())
}

fn with_basic(app: &TestApp, id: &str, secret: &str, fields: &[(&str, &str)]) -> Reply {
    let authorization = basic(id, secret);
    app.http()
        .post_form_with("/token", fields, &[("Authorization", &authorization)])
}

const GRANT: (&str, &str) = ("grant_type", "client_credentials");

/// `aud` as a list, whether the token wrote one value or an array.
fn audiences(claims: &Value) -> Vec<String> {
    match &claims["aud"] {
        Value::String(one) => vec![one.clone()],
        Value::Array(many) => many.iter().map(|v| v.as_str().unwrap().to_owned()).collect(),
        other => panic!("aud is {other}"),
    }
}

/// Checks a successful client_credentials response for `client`.
fn assert_machine_token(app: &TestApp, reply: &Reply, client: &Client, scope: &str) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], scope);
    assert!(body.get("refresh_token").is_none(), "{body}");
    assert!(
        body["expires_in"].as_i64().is_some_and(|e| e > 0 && e <= 600),
        "{body}"
    );

    let token = str_at(&body, "access_token");
    assert_eq!(jwt_header(token)["typ"], "at+jwt");
    assert!(
        app.state.keys.snapshot().verify(token, Utc::now()).is_some(),
        "signed with a published key"
    );
    let claims = jwt_claims(token);
    assert_eq!(claims["sub"], client.client_id.as_str());
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["scope"], scope);
    assert!(claims.get("roles").is_none(), "no roles for a machine: {claims}");
    assert!(claims.get("preferred_username").is_none(), "{claims}");
    assert_eq!(audiences(&claims), client.audiences);
    for claim in ["exp", "iat", "jti"] {
        assert!(claims.get(claim).is_some(), "{claim} missing: {claims}");
    }
}

#[test]
fn client_secret_basic_issues_a_token_about_the_client_with_all_allowed_scopes() {
    let app = spawn_app();
    let (client, secret) = service(&app);
    assert_eq!(client.audiences, AUDIENCES);
    let reply = with_basic(&app, &client.client_id, &secret, &[GRANT]);
    assert_machine_token(&app, &reply, &client, "profile notes:read");
}

#[test]
fn client_secret_post_issues_the_requested_scopes_that_are_allowed() {
    let app = spawn_app();
    let (client, secret) = service(&app);
    let reply = app.http().post_form(
        "/token",
        &[
            GRANT,
            ("client_id", &client.client_id),
            ("client_secret", &secret),
            ("scope", "notes:read notes:write admin"),
        ],
    );
    assert_machine_token(&app, &reply, &client, "notes:read");
}

#[test]
fn single_audience_defaults_to_the_resource_server() {
    let app = spawn_app();
    let (client, secret) = app.create_client(ClientRegistration {
        name: "svc".into(),
        confidential: true,
        ..Default::default()
    });
    let reply = with_basic(&app, &client.client_id, &secret.unwrap(), &[GRANT]);
    assert_machine_token(&app, &reply, &client, "profile notes:read notes:write");
    assert_eq!(client.audiences, [app.state.settings.default_audience.as_str()]);
}

#[test]
fn machine_client_may_get_the_admin_scope_without_roles() {
    let app = spawn_app();
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Admin job".into(),
        confidential: true,
        scopes: vec!["admin".into()],
        ..Default::default()
    });
    let reply = with_basic(
        &app,
        &client.client_id,
        &secret.unwrap(),
        &[GRANT, ("scope", "admin")],
    );
    assert_machine_token(&app, &reply, &client, "admin");
}

#[test]
fn both_authentication_methods_at_once_is_invalid_request() {
    let app = spawn_app();
    let (client, secret) = service(&app);
    let reply = with_basic(
        &app,
        &client.client_id,
        &secret,
        &[
            GRANT,
            ("client_id", &client.client_id),
            ("client_secret", &secret),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_request");
}

#[test]
fn wrong_secret_with_basic_is_invalid_client_with_a_basic_challenge() {
    let app = spawn_app();
    let (client, _) = service(&app);
    let reply = with_basic(&app, &client.client_id, "not-the-secret", &[GRANT]);
    assert_oauth_error(&reply, 401, "invalid_client");
    let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
    assert!(challenge.starts_with("Basic"), "{challenge}");
}

#[test]
fn wrong_secret_in_the_body_is_invalid_client_without_a_challenge() {
    let app = spawn_app();
    let (client, _) = service(&app);
    let reply = app.http().post_form(
        "/token",
        &[
            GRANT,
            ("client_id", &client.client_id),
            ("client_secret", "not-the-secret"),
        ],
    );
    assert_oauth_error(&reply, 401, "invalid_client");
    assert_eq!(reply.header("www-authenticate"), None);
}

#[test]
fn unknown_client_is_invalid_client() {
    let app = spawn_app();
    let reply = with_basic(&app, "no-such-client", "whatever", &[GRANT]);
    assert_oauth_error(&reply, 401, "invalid_client");
    assert!(reply.header("www-authenticate").is_some());

    let reply = app.http().post_form(
        "/token",
        &[
            GRANT,
            ("client_id", "no-such-client"),
            ("client_secret", "whatever"),
        ],
    );
    assert_oauth_error(&reply, 401, "invalid_client");
}

#[test]
fn confidential_client_without_its_secret_is_invalid_client() {
    let app = spawn_app();
    let (client, _) = service(&app);
    let reply = app
        .http()
        .post_form("/token", &[GRANT, ("client_id", &client.client_id)]);
    assert_oauth_error(&reply, 401, "invalid_client");

    let reply = app.http().post_form("/token", &[GRANT]);
    assert_oauth_error(&reply, 401, "invalid_client");
}

/// RFC 6749 section 4.4: the grant is for confidential clients only. A
/// public client identifies itself but cannot be registered for the grant,
/// so it is `unauthorized_client` (section 5.2: "the authenticated client
/// is not authorized to use this authorization grant type").
#[test]
fn public_client_asking_for_client_credentials_is_unauthorized_client() {
    let app = spawn_app();
    let spa = app.spa_client();
    let reply = app
        .http()
        .post_form("/token", &[GRANT, ("client_id", &spa.client_id)]);
    assert_oauth_error(&reply, 400, "unauthorized_client");

    // A public client has no secret to present.
    let reply = app.http().post_form(
        "/token",
        &[GRANT, ("client_id", &spa.client_id), ("client_secret", "made-up")],
    );
    assert_oauth_error(&reply, 401, "invalid_client");
}

#[test]
fn client_without_the_grant_is_unauthorized_client() {
    let app = spawn_app();
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Web app".into(),
        confidential: true,
        redirect_uris: vec!["https://app.example/callback".into()],
        ..Default::default()
    });
    let reply = with_basic(&app, &client.client_id, &secret.unwrap(), &[GRANT]);
    assert_oauth_error(&reply, 400, "unauthorized_client");
}

#[test]
fn scope_outside_the_allowed_set_is_invalid_scope() {
    let app = spawn_app();
    let (client, secret) = service(&app);
    let reply = with_basic(&app, &client.client_id, &secret, &[GRANT, ("scope", "admin")]);
    assert_oauth_error(&reply, 400, "invalid_scope");
    let reply = with_basic(&app, &client.client_id, &secret, &[GRANT, ("scope", "email")]);
    assert_oauth_error(&reply, 400, "invalid_scope");
}

/// The hot path needs no database: the client comes from the in-memory
/// cache and the signing key is held in memory.
#[test]
fn cached_client_gets_tokens_while_the_database_is_unreachable() {
    let db = oauth_common::testing::TestDatabase::create("auth_test");
    let mut proxy = oauth_common::testing::TcpProxy::to_postgres();
    let url = db.url_via(&proxy);
    let env = test_env(&url, |_| {});
    let app = start(db, env);
    let (client, secret) = service(&app);
    let ok = with_basic(&app, &client.client_id, &secret, &[GRANT]);
    assert_machine_token(&app, &ok, &client, "profile notes:read");

    proxy.stop();
    let reply = with_basic(&app, &client.client_id, &secret, &[GRANT]);
    assert_machine_token(&app, &reply, &client, "profile notes:read");
    let wrong = with_basic(&app, &client.client_id, "not-the-secret", &[GRANT]);
    assert_oauth_error(&wrong, 401, "invalid_client");
    proxy.start_again();
}

/// The client cache is short (a rotated secret is seen within 5 s), but
/// while the database cannot be reached a registration cached in the last
/// five minutes still decides: the hot path keeps serving.
#[test]
fn a_client_cached_before_an_outage_still_authenticates_after_the_cache_lifetime() {
    let db = oauth_common::testing::TestDatabase::create("auth_test");
    let mut proxy = oauth_common::testing::TcpProxy::to_postgres();
    let url = db.url_via(&proxy);
    let env = test_env(&url, |_| {});
    let app = start(db, env);
    let (client, secret) = service(&app);
    let ok = with_basic(&app, &client.client_id, &secret, &[GRANT]);
    assert_machine_token(&app, &ok, &client, "profile notes:read");

    proxy.stop();
    std::thread::sleep(std::time::Duration::from_secs(6));
    let reply = with_basic(&app, &client.client_id, &secret, &[GRANT]);
    assert_machine_token(&app, &reply, &client, "profile notes:read");
    let wrong = with_basic(&app, &client.client_id, "not-the-secret", &[GRANT]);
    assert_oauth_error(&wrong, 401, "invalid_client");
    proxy.start_again();
}
