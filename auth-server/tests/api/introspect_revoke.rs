//! Introspection (RFC 7662) and revocation (RFC 7009).

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;
use chrono::Utc;
use serde_json::{Value, json};

use crate::helpers::*;

const SCOPE: &str = "profile notes:read";

/// A server, alice, a SPA, an introspecting resource server, and one
/// token response of the SPA for alice.
fn setup() -> (TestApp, Client, (String, String), Value) {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let introspector = app.introspector();
    let tokens = app.code_flow(&client, "alice", &[("scope", SCOPE)]);
    (app, client, introspector, tokens)
}

/// A confidential first-party app allowed to introspect, with its own
/// tokens for alice: refresh tokens are introspectable only by the client
/// they belong to (issue 10, item 5).
fn own_setup() -> (TestApp, Client, (String, String), Value) {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Web app".into(),
        confidential: true,
        allow_introspection: true,
        first_party: true,
        redirect_uris: vec!["https://web.example/cb".into()],
        ..Default::default()
    });
    let secret = secret.unwrap();
    let tokens = app.code_flow_in(
        &mut app.browser(),
        &client,
        Some(&secret),
        "alice",
        &[("scope", SCOPE)],
    );
    let caller = (client.client_id.clone(), secret);
    (app, client, caller, tokens)
}

fn access(tokens: &Value) -> &str {
    str_at(tokens, "access_token")
}

fn refresh(tokens: &Value) -> &str {
    str_at(tokens, "refresh_token")
}

/// Re-signs `token`'s claims with the server's key after `change`.
fn resign(app: &TestApp, token: &str, change: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let Value::Object(mut claims) = jwt_claims(token) else {
        panic!("claims are an object")
    };
    change(&mut claims);
    app.state.keys.snapshot().sign(claims, Utc::now()).unwrap()
}

// ---------------------------------------------------------------------------
// Introspection

#[test]
fn active_access_token_introspects_with_its_claims() {
    let (app, client, introspector, tokens) = setup();
    let token = access(&tokens);
    let claims = jwt_claims(token);
    let answer = app.introspect(&introspector, token);

    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["scope"], SCOPE);
    assert_eq!(answer["client_id"], client.client_id.as_str());
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["token_type"], "Bearer");
    assert_eq!(answer["iss"], app.issuer.as_str());
    for claim in ["sub", "aud", "exp", "iat", "jti"] {
        assert!(!answer[claim].is_null(), "{claim} missing: {answer}");
        assert_eq!(answer[claim], claims[claim], "{claim}");
    }
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM users WHERE username = 'alice' AND id::text = '{}'",
            str_at(&answer, "sub")
        )),
        1,
        "sub is the user's id"
    );

    // client_secret_post works as well as Basic.
    let reply = app.http().post_form(
        "/introspect",
        &[
            ("token", token),
            ("client_id", &introspector.0),
            ("client_secret", &introspector.1),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json(), answer);
}

#[test]
fn client_credentials_token_introspects_without_a_username() {
    let app = spawn_app();
    let introspector = app.introspector();
    let (client, secret) = app.create_client(ClientRegistration {
        name: "svc".into(),
        confidential: true,
        ..Default::default()
    });
    let authorization = basic(&client.client_id, &secret.unwrap());
    let reply = app.http().post_form_with(
        "/token",
        &[("grant_type", "client_credentials")],
        &[("Authorization", &authorization)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = app.introspect(&introspector, str_at(&reply.json(), "access_token"));
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["sub"], client.client_id.as_str());
    assert_eq!(answer["client_id"], client.client_id.as_str());
    assert!(answer.get("username").is_none(), "{answer}");
}

#[test]
fn expired_access_token_is_exactly_inactive() {
    let (app, _, introspector, tokens) = setup();
    let now = Utc::now().timestamp();
    let expired = resign(&app, access(&tokens), |c| {
        c.insert("iat".into(), json!(now - 700));
        c.insert("exp".into(), json!(now - 100));
    });
    assert_eq!(app.introspect(&introspector, &expired), inactive());

    // The same claims with a live expiry are active: only `exp` decided.
    let live = resign(&app, access(&tokens), |_| {});
    assert_eq!(app.introspect(&introspector, &live)["active"], true);
}

#[test]
fn access_token_becomes_inactive_when_its_lifetime_and_the_leeway_end() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_ACCESS_TOKEN_TTL".into(), "1".into());
    });
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let introspector = app.introspector();
    let tokens = app.code_flow(&client, "alice", &[]);
    let exp = jwt_claims(access(&tokens))["exp"].as_i64().unwrap();
    assert!(exp - jwt_claims(access(&tokens))["iat"].as_i64().unwrap() == 1);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while Utc::now().timestamp() <= exp {
        assert!(std::time::Instant::now() < deadline, "clock did not pass exp");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    // Past `exp`, within the clock-skew leeway the resource server allows too.
    assert_eq!(app.introspect(&introspector, access(&tokens))["active"], true);
    let leeway = i64::try_from(oauth_common::jwt::DEFAULT_LEEWAY.as_secs()).unwrap();
    let beyond = resign(&app, access(&tokens), |c| {
        c.insert("exp".into(), json!(Utc::now().timestamp() - leeway));
    });
    assert_eq!(app.introspect(&introspector, &beyond), inactive());
}

#[test]
fn tampered_or_foreign_access_tokens_are_exactly_inactive() {
    let (app, _, introspector, tokens) = setup();
    let token = access(&tokens);
    let other_issuer = resign(&app, token, |c| {
        c.insert("iss".into(), json!("https://evil.example"));
    });
    assert_eq!(app.introspect(&introspector, &other_issuer), inactive());

    // Claims changed without re-signing.
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims = jwt_claims(token);
    claims["scope"] = json!("admin");
    parts[1] = base64_url(&serde_json::to_vec(&claims).unwrap());
    assert_eq!(app.introspect(&introspector, &parts.join(".")), inactive());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn revoked_access_token_is_exactly_inactive() {
    let (app, client, introspector, tokens) = setup();
    let reply = app.revoke_public(&client, access(&tokens));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.introspect(&introspector, access(&tokens)), inactive());
}

#[test]
fn active_refresh_token_introspects_from_the_database() {
    let (app, client, introspector, tokens) = own_setup();
    let user_id = jwt_claims(access(&tokens))["sub"].clone();
    let answer = app.introspect(&introspector, refresh(&tokens));
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["scope"], SCOPE);
    assert_eq!(answer["client_id"], client.client_id.as_str());
    assert_eq!(answer["sub"], user_id);
    assert_eq!(answer["username"], "alice");
    assert_eq!(answer["iss"], app.issuer.as_str());
    assert_eq!(answer["token_type"], "refresh_token");
    let (iat, exp) = (answer["iat"].as_i64().unwrap(), answer["exp"].as_i64().unwrap());
    assert!(iat <= Utc::now().timestamp() && exp > iat, "{answer}");
}

/// Issue 4 lists `aud` and `jti` among the fields of every active token;
/// the refresh-token answer has neither.
#[test]

fn active_refresh_token_introspection_names_its_audience_and_id() {
    let (app, client, introspector, tokens) = own_setup();
    let answer = app.introspect(&introspector, refresh(&tokens));
    assert_eq!(answer["active"], true, "{answer}");
    assert_eq!(answer["aud"], json!(client.audiences[0]), "{answer}");
    assert!(answer["jti"].as_str().is_some_and(|j| !j.is_empty()), "{answer}");
}

#[test]
fn spent_refresh_token_is_exactly_inactive() {
    let (app, _, introspector, tokens) = own_setup();
    let reply = app.http().post_form_with(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh(&tokens)),
        ],
        &[("Authorization", &basic(&introspector.0, &introspector.1))],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.introspect(&introspector, refresh(&tokens)), inactive());
    assert_eq!(
        app.introspect(&introspector, str_at(&reply.json(), "refresh_token"))["active"],
        true
    );
}

#[test]
fn unknown_or_garbage_token_is_exactly_inactive() {
    let (app, _, introspector, _) = setup();
    for token in [
        "nope",
        "Y2hhbmdlbWVjaGFuZ2VtZWNoYW5nZW1lY2hhbmdlbWU",
        "a.b.c",
        "eyJhbGciOiJub25lIn0.eyJzdWIiOiJ4In0.",
        "\u{e9}\u{1f600}",
    ] {
        assert_eq!(app.introspect(&introspector, token), inactive(), "{token}");
    }
}

#[test]
fn token_type_hint_is_only_a_hint() {
    let (app, _, introspector, tokens) = own_setup();
    for (token, wrong_hint, token_type) in [
        (access(&tokens), "refresh_token", "Bearer"),
        (refresh(&tokens), "access_token", "refresh_token"),
        (access(&tokens), "something_else", "Bearer"),
    ] {
        let reply = app.introspect_as(
            &introspector,
            &[("token", token), ("token_type_hint", wrong_hint)],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let answer = reply.json();
        assert_eq!(answer["active"], true, "{wrong_hint}: {answer}");
        assert_eq!(answer["token_type"], token_type);
    }
}

/// Issue 10, item 5: a caller sees only tokens meant for one of its
/// audiences, or issued to it; anything else is exactly inactive.
#[test]
fn introspection_of_a_token_for_another_audience_is_inactive() {
    let (app, _, introspector, tokens) = setup();
    assert_eq!(app.introspect(&introspector, access(&tokens))["active"], true);
    let (other, secret) = app.create_client(ClientRegistration {
        name: "Billing service".into(),
        confidential: true,
        allow_introspection: true,
        audiences: vec!["https://billing.example/api".into()],
        ..Default::default()
    });
    let other = (other.client_id, secret.unwrap());
    assert_eq!(app.introspect(&other, access(&tokens)), inactive());
    // Its own client-credentials token (audience billing) it does see.
    let own = app.http().post_form_with(
        "/token",
        &[("grant_type", "client_credentials")],
        &[("Authorization", &basic(&other.0, &other.1))],
    );
    assert_eq!(own.status, 200, "{}", own.body);
    assert_eq!(app.introspect(&other, access(&own.json()))["active"], true);
    assert_eq!(app.introspect(&introspector, access(&own.json())), inactive());
}

#[test]
fn refresh_token_is_introspectable_only_by_its_client() {
    let (app, _, introspector, tokens) = setup();
    assert_eq!(app.introspect(&introspector, refresh(&tokens)), inactive());
    let (app2, _, owner, own_tokens) = own_setup();
    assert_eq!(app2.introspect(&owner, refresh(&own_tokens))["active"], true);
    let stranger = app2.introspector();
    assert_eq!(app2.introspect(&stranger, refresh(&own_tokens)), inactive());
    drop(app);
}

#[test]
fn introspection_needs_an_authorized_confidential_client() {
    let (app, client, introspector, tokens) = setup();
    let token = access(&tokens);

    let anonymous = app.http().post_form("/introspect", &[("token", token)]);
    assert_oauth_error(&anonymous, 401, "invalid_client");

    let wrong_secret = app.introspect_as(&(introspector.0.clone(), "wrong".into()), &[("token", token)]);
    assert_oauth_error(&wrong_secret, 401, "invalid_client");
    assert!(wrong_secret.header("www-authenticate").is_some());

    let (plain, secret) = app.create_client(ClientRegistration {
        name: "not allowed".into(),
        confidential: true,
        ..Default::default()
    });
    let not_allowed = app.introspect_as(&(plain.client_id.clone(), secret.unwrap()), &[("token", token)]);
    assert_oauth_error(&not_allowed, 401, "invalid_client");

    let public = app.http().post_form(
        "/introspect",
        &[("token", token), ("client_id", &client.client_id)],
    );
    assert_oauth_error(&public, 401, "invalid_client");
}

#[test]
fn introspection_without_a_token_is_invalid_request() {
    let (app, _, introspector, _) = setup();
    let reply = app.introspect_as(&introspector, &[("token_type_hint", "access_token")]);
    assert_oauth_error(&reply, 400, "invalid_request");
}

// ---------------------------------------------------------------------------
// Revocation

#[test]
fn revoking_a_refresh_token_revokes_its_family() {
    let (app, client, introspector, tokens) = setup();
    let rotated = app.refresh(&client, refresh(&tokens));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated = rotated.json();

    // A public client revokes its own token by client_id alone.
    let reply = app.revoke_public(&client, refresh(&rotated));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    assert_oauth_error(&app.refresh(&client, refresh(&rotated)), 400, "invalid_grant");
    for token in [access(&tokens), access(&rotated), refresh(&rotated)] {
        assert_eq!(app.introspect(&introspector, token), inactive());
    }
}

#[test]
fn revoking_with_the_wrong_hint_still_revokes() {
    let (app, client, introspector, tokens) = setup();
    let reply = app.http().post_form(
        "/revoke",
        &[
            ("token", refresh(&tokens)),
            ("token_type_hint", "access_token"),
            ("client_id", &client.client_id),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_oauth_error(&app.refresh(&client, refresh(&tokens)), 400, "invalid_grant");

    let tokens = app.code_flow(&client, "alice", &[("scope", SCOPE)]);
    let reply = app.http().post_form(
        "/revoke",
        &[
            ("token", access(&tokens)),
            ("token_type_hint", "refresh_token"),
            ("client_id", &client.client_id),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.introspect(&introspector, access(&tokens)), inactive());
}

#[test]
fn revoking_an_access_token_leaves_the_other_tokens_active() {
    let (app, client, introspector, tokens) = setup();
    let rotated = app.refresh(&client, refresh(&tokens));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated = rotated.json();

    let reply = app.revoke_public(&client, access(&tokens));
    assert_eq!(reply.status, 200, "{}", reply.body);

    assert_eq!(app.introspect(&introspector, access(&tokens)), inactive());
    assert_eq!(app.introspect(&introspector, access(&rotated))["active"], true);
    let again = app.refresh(&client, refresh(&rotated));
    assert_eq!(again.status, 200, "{}", again.body);
}

#[test]
fn confidential_client_revokes_its_client_credentials_token() {
    let app = spawn_app();
    let introspector = app.introspector();
    let (client, secret) = app.create_client(ClientRegistration {
        name: "svc".into(),
        confidential: true,
        ..Default::default()
    });
    let authorization = basic(&client.client_id, &secret.unwrap());
    let issue = || {
        let reply = app.http().post_form_with(
            "/token",
            &[("grant_type", "client_credentials")],
            &[("Authorization", &authorization)],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        str_at(&reply.json(), "access_token").to_owned()
    };
    let (revoked, kept) = (issue(), issue());
    let reply = app.http().post_form_with(
        "/revoke",
        &[("token", &revoked)],
        &[("Authorization", &authorization)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(app.introspect(&introspector, &revoked), inactive());
    assert_eq!(app.introspect(&introspector, &kept)["active"], true);
}

#[test]
fn revoking_another_clients_token_succeeds_and_changes_nothing() {
    let (app, client, introspector, tokens) = setup();
    let other = app.spa_client();
    for token in [access(&tokens), refresh(&tokens)] {
        let reply = app.revoke_public(&other, token);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // A confidential client cannot either.
    let authorization = basic(&introspector.0, &introspector.1);
    for token in [access(&tokens), refresh(&tokens)] {
        let reply = app.http().post_form_with(
            "/revoke",
            &[("token", token)],
            &[("Authorization", &authorization)],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
    }

    assert_eq!(app.introspect(&introspector, access(&tokens))["active"], true);
    let reply = app.refresh(&client, refresh(&tokens));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn revoking_an_unknown_or_already_revoked_token_succeeds() {
    let (app, client, _, tokens) = setup();
    for token in ["not-a-token", "a.b.c"] {
        let reply = app.revoke_public(&client, token);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    for _ in 0..2 {
        assert_eq!(app.revoke_public(&client, refresh(&tokens)).status, 200);
        assert_eq!(app.revoke_public(&client, access(&tokens)).status, 200);
    }
}

#[test]
fn revocation_without_a_token_is_invalid_request() {
    let (app, client, _, _) = setup();
    let reply = app
        .http()
        .post_form("/revoke", &[("client_id", client.client_id.as_str())]);
    assert_oauth_error(&reply, 400, "invalid_request");
}

#[test]
fn revocation_needs_client_authentication() {
    let (app, client, introspector, tokens) = setup();
    let anonymous = app.http().post_form("/revoke", &[("token", refresh(&tokens))]);
    assert_oauth_error(&anonymous, 401, "invalid_client");

    let authorization = basic(&introspector.0, "wrong");
    let wrong_secret = app.http().post_form_with(
        "/revoke",
        &[("token", refresh(&tokens))],
        &[("Authorization", &authorization)],
    );
    assert_oauth_error(&wrong_secret, 401, "invalid_client");
    assert!(wrong_secret.header("www-authenticate").is_some());

    // Nothing was revoked.
    let reply = app.refresh(&client, refresh(&tokens));
    assert_eq!(reply.status, 200, "{}", reply.body);
}
