//! OpenID Connect (issue 14): discovery, the ID token, `nonce`, `prompt`,
//! `max_age`, `login_hint`, `id_token_hint`, UserInfo, RP-initiated and
//! back-channel logout. Each test names the section it holds us to.

use std::collections::VecDeque;
use std::io::{Read as _, Write as _};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;
use base64::Engine as _;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::helpers::*;

const SPA_ORIGIN: &str = "http://127.0.0.1:5173";
const NONCE: &str = "n-0S6_WzA2Mj";

/// Verifies an ID token (or logout token) with an independent library
/// against the published JWKS: ES256, `kid`, `iss`, `aud`; returns the
/// header's `typ` and the claims.
fn verify(app: &TestApp, token: &str, audience: &str) -> Result<(Option<String>, Value), String> {
    let jwks: JwkSet = serde_json::from_value(app.http().get("/.well-known/jwks.json").json())
        .map_err(|e| format!("JWKS: {e}"))?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    let kid = header.kid.ok_or("no kid")?;
    let key =
        DecodingKey::from_jwk(jwks.find(&kid).ok_or("kid not published")?).map_err(|e| e.to_string())?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[app.issuer.as_str()]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    let claims = jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map_err(|e| format!("verification failed: {e}"))?
        .claims;
    Ok((header.typ, claims))
}

/// A public client (first-party unless `third_party`) allowed `openid`.
fn oidc_client(app: &TestApp, third_party: bool, customize: impl FnOnce(&mut ClientRegistration)) -> Client {
    let mut registration = ClientRegistration {
        name: "OIDC App".into(),
        redirect_uris: vec![format!("{SPA_ORIGIN}/callback")],
        post_logout_redirect_uris: vec![format!("{SPA_ORIGIN}/")],
        scopes: ["openid", "profile", "notes:read"].map(String::from).to_vec(),
        first_party: !third_party,
        ..Default::default()
    };
    customize(&mut registration);
    app.create_client(registration).0
}

/// The answer to an authorization request that must not show a page.
fn redirect_of(app: &TestApp, browser: &mut Browser, url: &str) -> url::Url {
    let reply = browser.get(url);
    assert!(
        matches!(reply.status, 302 | 303),
        "{}: {}",
        reply.status,
        reply.body
    );
    let location = reply.location(&app.base).expect("location");
    assert!(
        location.as_str().starts_with(SPA_ORIGIN),
        "expected a redirect to the client, got {location}"
    );
    location
}

/// Signs in, approves, and exchanges the code: the token response.
fn sign_in_with(app: &TestApp, browser: &mut Browser, client: &Client, extra: &[(&str, &str)]) -> Value {
    let (code, verifier) = app.obtain_code(browser, client, "alice", extra);
    let reply = app.redeem_code(client, None, &code, &verifier);
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

/// A `prompt=none` authorization request for `client` carrying `hint` as
/// its `id_token_hint`.
fn silent_with_hint(client: &Client, hint: &str) -> String {
    let (_, challenge) = pkce();
    let mut params = openid(&[("prompt", "none")]);
    params.push(("id_token_hint", hint));
    authorize_url(client, &challenge, &params)
}

fn openid<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![("scope", "openid profile notes:read"), ("nonce", NONCE)];
    all.extend_from_slice(extra);
    all
}

// ---------------------------------------------------------------------
// Discovery
// ---------------------------------------------------------------------

#[test]
fn discovery_1_0_section_3_openid_configuration_has_every_field_and_agrees_with_rfc8414() {
    let app = spawn_app();
    let oidc = app.http().get("/.well-known/openid-configuration");
    assert_eq!(oidc.status, 200);
    let doc = oidc.json();
    let url = |path: &str| Value::from(format!("{}{path}", app.issuer));
    assert_eq!(doc["issuer"], Value::from(app.issuer.clone()));
    assert_eq!(doc["userinfo_endpoint"], url("/userinfo"));
    assert_eq!(doc["end_session_endpoint"], url("/logout"));
    assert_eq!(doc["subject_types_supported"], serde_json::json!(["public"]));
    assert_eq!(
        doc["id_token_signing_alg_values_supported"],
        serde_json::json!(["ES256"])
    );
    assert_eq!(doc["response_types_supported"], serde_json::json!(["code"]));
    assert_eq!(doc["frontchannel_logout_supported"], Value::Bool(false));
    assert_eq!(doc["backchannel_logout_supported"], Value::Bool(true));
    assert_eq!(doc["request_uri_parameter_supported"], Value::Bool(false));
    for claim in ["sub", "iss", "auth_time", "nonce", "sid", "preferred_username"] {
        assert!(
            doc["claims_supported"]
                .as_array()
                .unwrap()
                .contains(&Value::from(claim)),
            "{claim}"
        );
    }
    assert!(
        doc["scopes_supported"]
            .as_array()
            .unwrap()
            .contains(&Value::from("openid"))
    );
    let rfc8414 = app.http().get("/.well-known/oauth-authorization-server").json();
    for (field, value) in rfc8414.as_object().unwrap() {
        assert_eq!(&doc[field], value, "{field} differs between the two documents");
    }
}

// ---------------------------------------------------------------------
// The ID token
// ---------------------------------------------------------------------

#[test]
fn core_3_1_3_3_and_3_1_3_7_the_token_response_carries_a_valid_id_token() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let id_token = tokens["id_token"].as_str().expect("an id_token");
    let (typ, claims) = verify(&app, id_token, &client.client_id).expect("the ID token verifies");
    assert!(matches!(typ.as_deref(), None | Some("JWT")), "typ {typ:?}");
    let access = jwt_claims(tokens["access_token"].as_str().unwrap());
    assert_eq!(claims["sub"], access["sub"], "the same sub as the access token");
    assert_eq!(claims["azp"], Value::from(client.client_id.clone()));
    assert_eq!(claims["nonce"], Value::from(NONCE), "nonce echoed exactly");
    assert!(claims["auth_time"].as_i64().unwrap() <= claims["iat"].as_i64().unwrap());
    assert!(claims["exp"].as_i64().unwrap() > claims["iat"].as_i64().unwrap());
    // Section 3.1.3.6: at_hash is the left half of SHA-256 of the token.
    let digest = auth_server::crypto::sha256(tokens["access_token"].as_str().unwrap().as_bytes());
    let expected = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&digest[..16]);
    assert_eq!(claims["at_hash"], Value::from(expected));
    let sid = claims["sid"].as_str().expect("sid");
    assert_eq!(
        access["sid"],
        Value::from(sid),
        "the access token names the same session"
    );
    assert!(access["grant_id"].is_string(), "and its grant");
    assert!(
        claims.get("preferred_username").is_none(),
        "profile claims come from userinfo"
    );
}

#[test]
fn core_3_1_3_7_a_tampered_id_token_fails_verification() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let tokens = sign_in_with(&app, &mut app.browser(), &client, &openid(&[]));
    let id_token = tokens["id_token"].as_str().unwrap();
    let parts: Vec<&str> = id_token.split('.').collect();
    let mut claims = jwt_claims(id_token);
    claims["nonce"] = Value::from("attacker-chosen");
    let forged_payload = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims.to_string());
    let forged = format!("{}.{forged_payload}.{}", parts[0], parts[2]);
    assert!(verify(&app, &forged, &client.client_id).is_err());
}

#[test]
fn without_openid_there_is_no_id_token_and_openid_is_never_a_default() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let explicit = sign_in_with(&app, &mut app.browser(), &client, &[("scope", "profile")]);
    assert!(explicit.get("id_token").is_none());
    // No scope parameter: the client's scopes, except openid (Core 3.1.2.1).
    let default = sign_in_with(&app, &mut app.browser(), &client, &[]);
    assert!(default.get("id_token").is_none(), "{default}");
    assert!(!default["scope"].as_str().unwrap().contains("openid"));
}

#[test]
fn core_3_1_2_1_a_code_issued_for_one_nonce_never_yields_another() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let mut browser = app.browser();
    let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &openid(&[]));
    // A nonce in the token request is not a parameter there: ignored.
    let reply = app.http().post_form(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", &client.client_id),
            ("code_verifier", &verifier),
            ("nonce", "another-nonce"),
        ],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let claims = jwt_claims(reply.json()["id_token"].as_str().unwrap());
    assert_eq!(claims["nonce"], Value::from(NONCE));
    // The same code again, with another nonce: refused (and its tokens revoked).
    let again = app.http().post_form(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", &client.client_id),
            ("code_verifier", &verifier),
            ("nonce", "yet-another"),
        ],
    );
    assert_oauth_error(&again, 400, "invalid_grant");
}

#[test]
fn core_12_2_a_refresh_returns_a_new_id_token_with_the_same_sub_and_auth_time_and_no_nonce() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let tokens = sign_in_with(&app, &mut app.browser(), &client, &openid(&[]));
    let first = jwt_claims(tokens["id_token"].as_str().unwrap());
    std::thread::sleep(Duration::from_millis(1100));
    let reply = app.refresh(&client, tokens["refresh_token"].as_str().unwrap());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let refreshed = reply.json();
    let id_token = refreshed["id_token"].as_str().expect("a new id_token");
    let (_, second) = verify(&app, id_token, &client.client_id).expect("verifies");
    assert_eq!(second["sub"], first["sub"]);
    assert_eq!(second["auth_time"], first["auth_time"]);
    assert_eq!(second["sid"], first["sid"]);
    assert!(second.get("nonce").is_none(), "{second}");
    assert!(second["iat"].as_i64() > first["iat"].as_i64());
    // Narrowed without openid: no ID token.
    let narrowed = app.refresh_with(
        &client,
        refreshed["refresh_token"].as_str().unwrap(),
        &[("scope", "profile")],
    );
    assert_eq!(narrowed.status, 200, "{}", narrowed.body);
    assert!(narrowed.json().get("id_token").is_none());
}

#[test]
fn rfc8725_3_11_an_id_token_is_not_an_access_token() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let tokens = sign_in_with(&app, &mut app.browser(), &client, &openid(&[]));
    let id_token = tokens["id_token"].as_str().unwrap();
    assert_eq!(jwt_header(id_token)["typ"], Value::from("JWT"));
    let reply = app
        .http()
        .get_with("/userinfo", &[("Authorization", &format!("Bearer {id_token}"))]);
    assert_eq!(reply.status, 401);
}

// ---------------------------------------------------------------------
// Authorization request parameters
// ---------------------------------------------------------------------

#[test]
fn core_3_1_2_6_prompt_none_without_a_session_is_login_required() {
    let app = spawn_app();
    let client = oidc_client(&app, false, |_| {});
    let (_, challenge) = pkce();
    let back = redirect_of(
        &app,
        &mut app.browser(),
        &authorize_url(&client, &challenge, &openid(&[("prompt", "none")])),
    );
    assert_eq!(query_value(&back, "error").as_deref(), Some("login_required"));
    assert_eq!(query_value(&back, "state").as_deref(), Some("st4te"));
    assert_eq!(query_value(&back, "iss").as_deref(), Some(app.issuer.as_str()));
}

#[test]
fn core_3_1_2_6_prompt_none_with_a_session_issues_a_code_and_without_consent_is_consent_required() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let third_party = oidc_client(&app, true, |_| {});
    let mut browser = app.browser();
    app.login(&mut browser, "alice");
    let (_, challenge) = pkce();
    let quiet = authorize_url(&third_party, &challenge, &openid(&[("prompt", "none")]));
    let back = redirect_of(&app, &mut browser, &quiet);
    assert_eq!(query_value(&back, "error").as_deref(), Some("consent_required"));
    // Once approved, the same silent request gets a code.
    sign_in_with(&app, &mut browser, &third_party, &openid(&[]));
    let back = redirect_of(&app, &mut browser, &quiet);
    assert!(query_value(&back, "code").is_some(), "{back}");
}

#[test]
fn core_3_1_2_1_prompt_login_and_max_age_0_force_a_fresh_sign_in() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let mut browser = app.browser();
    let first = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let first_auth = jwt_claims(first["id_token"].as_str().unwrap())["auth_time"].clone();
    for extra in [("prompt", "login"), ("max_age", "0")] {
        std::thread::sleep(Duration::from_millis(1100));
        let (_, challenge) = pkce();
        let reply = browser.get(&authorize_url(&client, &challenge, &openid(&[extra])));
        let location = reply.header("location").unwrap_or_default().to_owned();
        assert!(location.starts_with("/login?"), "{extra:?}: {location}");
        // The sign-in page shows the form although a session is live.
        let page = browser.get(&location);
        assert!(
            page.input_value("csrf_token").is_some(),
            "{extra:?}: {}",
            page.body
        );
        let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[extra]));
        let claims = jwt_claims(tokens["id_token"].as_str().unwrap());
        assert!(claims["auth_time"].as_i64() > first_auth.as_i64(), "{extra:?}");
        assert_eq!(
            claims["sid"],
            jwt_claims(first["id_token"].as_str().unwrap())["sid"],
            "signing in again in the same browser keeps the session id"
        );
    }
}

#[test]
fn core_3_1_2_1_max_age_older_than_the_sign_in_asks_again_and_prompt_none_refuses() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let mut browser = app.browser();
    app.login(&mut browser, "alice");
    app.sql_exec("UPDATE browser_sessions SET auth_time = now() - interval '10 minutes'");
    let (_, challenge) = pkce();
    let fresh_enough = browser.get(&authorize_url(
        &client,
        &challenge,
        &openid(&[("max_age", "3600")]),
    ));
    assert_eq!(fresh_enough.status, 302, "{}", fresh_enough.body);
    assert!(fresh_enough.header("location").unwrap().starts_with(SPA_ORIGIN));
    let stale = browser.get(&authorize_url(&client, &challenge, &openid(&[("max_age", "60")])));
    assert!(stale.header("location").unwrap().starts_with("/login?"));
    let quiet = redirect_of(
        &app,
        &mut browser,
        &authorize_url(
            &client,
            &challenge,
            &openid(&[("max_age", "60"), ("prompt", "none")]),
        ),
    );
    assert_eq!(query_value(&quiet, "error").as_deref(), Some("login_required"));
}

#[test]
fn core_3_1_2_1_prompt_consent_shows_the_consent_page_again() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, true, |_| {});
    let mut browser = app.browser();
    sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let (_, challenge) = pkce();
    let remembered = browser.get(&authorize_url(&client, &challenge, &openid(&[])));
    assert_eq!(remembered.status, 302, "remembered consent skips the page");
    let asked = browser.get(&authorize_url(
        &client,
        &challenge,
        &openid(&[("prompt", "consent")]),
    ));
    assert!(is_consent_page(&asked), "{}", asked.body);
}

#[test]
fn core_3_1_2_1_unknown_prompt_values_and_request_objects_get_the_named_errors() {
    let app = spawn_app();
    let client = oidc_client(&app, false, |_| {});
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    for (extra, error) in [
        (("prompt", "create"), "invalid_request"),
        (("prompt", "none login"), "invalid_request"),
        (("max_age", "soon"), "invalid_request"),
        (("request", "eyJhbGciOiJub25lIn0.e30."), "request_not_supported"),
        (
            ("request_uri", "https://attacker.example/r"),
            "request_uri_not_supported",
        ),
        (("id_token_hint", "not-a-jwt"), "invalid_request"),
    ] {
        let back = redirect_of(
            &app,
            &mut browser,
            &authorize_url(&client, &challenge, &openid(&[extra])),
        );
        assert_eq!(query_value(&back, "error").as_deref(), Some(error), "{extra:?}");
        assert_eq!(query_value(&back, "state").as_deref(), Some("st4te"));
    }
}

#[test]
fn core_3_1_2_1_nonce_is_required_when_the_client_says_so() {
    let app = spawn_app();
    let client = oidc_client(&app, false, |r| r.require_nonce = true);
    let (_, challenge) = pkce();
    let back = redirect_of(
        &app,
        &mut app.browser(),
        &authorize_url(&client, &challenge, &[("scope", "openid")]),
    );
    assert_eq!(query_value(&back, "error").as_deref(), Some("invalid_request"));
}

#[test]
fn core_3_1_2_1_login_hint_fills_in_the_username() {
    let app = spawn_app();
    let client = oidc_client(&app, false, |_| {});
    let (_, challenge) = pkce();
    let mut browser = app.browser();
    let reply = browser.get(&authorize_url(
        &client,
        &challenge,
        &openid(&[("login_hint", "ada")]),
    ));
    let page = browser.get(reply.header("location").unwrap());
    assert!(
        page.body.contains(r#"name="username" type="text" autocomplete="username" autocapitalize="none" required maxlength="64" value="ada""#),
        "{}",
        page.body
    );
}

#[test]
fn core_3_1_2_1_id_token_hint_for_another_user_with_prompt_none_is_login_required() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let mut bobs = app.browser();
    let (code, verifier) = app.obtain_code(&mut bobs, &client, "bob", &openid(&[]));
    let bob_id_token = app.redeem_code(&client, None, &code, &verifier).json()["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut alices = app.browser();
    let alice_id_token = sign_in_with(&app, &mut alices, &client, &openid(&[]))["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let for_bob = silent_with_hint(&client, &bob_id_token);
    let back = redirect_of(&app, &mut alices, &for_bob);
    assert_eq!(query_value(&back, "error").as_deref(), Some("login_required"));
    let for_alice = silent_with_hint(&client, &alice_id_token);
    let back = redirect_of(&app, &mut alices, &for_alice);
    assert!(query_value(&back, "code").is_some(), "{back}");
}

// ---------------------------------------------------------------------
// UserInfo
// ---------------------------------------------------------------------

#[test]
fn core_5_3_userinfo_answers_get_and_post_with_the_claims_the_scopes_allow() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let tokens = sign_in_with(&app, &mut app.browser(), &client, &openid(&[]));
    let access = tokens["access_token"].as_str().unwrap();
    let bearer = format!("Bearer {access}");
    let sub = jwt_claims(access)["sub"].clone();
    let get = app.http().get_with("/userinfo", &[("Authorization", &bearer)]);
    assert_eq!(get.status, 200, "{}", get.body);
    assert_eq!(get.header("cache-control"), Some("no-store"));
    assert_eq!(
        get.json(),
        serde_json::json!({ "sub": sub, "preferred_username": "alice" })
    );
    let post = app
        .http()
        .post_form_with("/userinfo", &[], &[("Authorization", &bearer)]);
    assert_eq!(post.status, 200, "{}", post.body);
    // RFC 6750 section 2.2: the token in the form body.
    let body = app.http().post_form("/userinfo", &[("access_token", access)]);
    assert_eq!(body.json()["sub"], sub);
    // Without profile: sub only.
    let bare = sign_in_with(&app, &mut app.browser(), &client, &[("scope", "openid")]);
    let reply = app.http().get_with(
        "/userinfo",
        &[(
            "Authorization",
            &format!("Bearer {}", bare["access_token"].as_str().unwrap()),
        )],
    );
    assert_eq!(reply.json(), serde_json::json!({ "sub": sub }));
}

#[test]
fn rfc6750_3_1_userinfo_errors_carry_www_authenticate() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let none = app.http().get("/userinfo");
    assert_eq!(none.status, 401);
    assert_eq!(none.header("www-authenticate"), Some("Bearer"));
    let bad = app
        .http()
        .get_with("/userinfo", &[("Authorization", "Bearer not.a.token")]);
    assert_eq!(bad.status, 401);
    assert_eq!(
        bad.header("www-authenticate"),
        Some("Bearer error=\"invalid_token\"")
    );
    let malformed = app
        .http()
        .get_with("/userinfo", &[("Authorization", "Bearer a b")]);
    assert_eq!(malformed.status, 400);
    let no_openid = sign_in_with(&app, &mut app.browser(), &client, &[("scope", "profile")]);
    let reply = app.http().get_with(
        "/userinfo",
        &[(
            "Authorization",
            &format!("Bearer {}", no_openid["access_token"].as_str().unwrap()),
        )],
    );
    assert_eq!(reply.status, 403);
    assert!(
        reply
            .header("www-authenticate")
            .unwrap()
            .contains("insufficient_scope")
    );
    let put = app.http().post_raw("/userinfo", "text/plain", "", &[]);
    assert_eq!(put.status, 401, "a POST without a token is unauthenticated");
}

#[test]
fn core_5_3_userinfo_refuses_a_token_whose_session_was_logged_out() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let bearer = format!("Bearer {}", tokens["access_token"].as_str().unwrap());
    assert_eq!(
        app.http()
            .get_with("/userinfo", &[("Authorization", &bearer)])
            .status,
        200
    );
    let page = browser.get("/logout");
    let csrf = page.input_value("csrf_token").unwrap();
    assert_eq!(browser.post_form("/logout", &[("csrf_token", &csrf)]).status, 200);
    assert_eq!(
        app.http()
            .get_with("/userinfo", &[("Authorization", &bearer)])
            .status,
        401
    );
}

#[test]
fn userinfo_answers_cors_preflights_from_registered_spa_origins_only() {
    let app = spawn_app();
    oidc_client(&app, false, |_| {});
    // The CORS allow-list is reloaded in the background; read it now.
    let allowed = eventually(Duration::from_secs(5), || {
        let reply = app.http().options(
            "/userinfo",
            &[
                ("Origin", SPA_ORIGIN),
                ("Access-Control-Request-Method", "GET"),
                ("Access-Control-Request-Headers", "authorization"),
            ],
        );
        (reply.header("access-control-allow-origin") == Some(SPA_ORIGIN)).then_some(())
    });
    assert!(allowed.is_some());
    let other = app.http().options(
        "/userinfo",
        &[
            ("Origin", "https://evil.example"),
            ("Access-Control-Request-Method", "GET"),
        ],
    );
    assert!(other.header("access-control-allow-origin").is_none());
}

// ---------------------------------------------------------------------
// RP-Initiated Logout 1.0
// ---------------------------------------------------------------------

#[test]
fn rp_initiated_logout_2_names_the_app_and_returns_to_the_registered_uri_with_state() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |r| r.name = "Notes Web".into());
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let id_token = tokens["id_token"].as_str().unwrap();
    let mut query = url::form_urlencoded::Serializer::new(String::new());
    query
        .append_pair("id_token_hint", id_token)
        .append_pair("post_logout_redirect_uri", &format!("{SPA_ORIGIN}/"))
        .append_pair("state", "bye");
    let url = format!("/logout?{}", query.finish());
    let page = browser.get(&url);
    assert_eq!(page.status, 200);
    assert!(
        page.body
            .contains("<strong>Notes Web</strong> asks you to sign out."),
        "{}",
        page.body
    );
    let csrf = page.input_value("csrf_token").unwrap();
    let action = page.form_action().unwrap();
    let done = browser.post_form(&action, &[("csrf_token", &csrf)]);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("{SPA_ORIGIN}/?state=bye").as_str())
    );
}

#[test]
fn rp_initiated_logout_2_refuses_a_redirect_when_client_id_and_hint_disagree_or_the_uri_is_unregistered() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |_| {});
    let other = oidc_client(&app, false, |_| {});
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let id_token = tokens["id_token"].as_str().unwrap();
    for (client_id, uri) in [
        (other.client_id.as_str(), format!("{SPA_ORIGIN}/")),
        (client.client_id.as_str(), "https://attacker.example/".to_owned()),
    ] {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        query
            .append_pair("id_token_hint", id_token)
            .append_pair("client_id", client_id)
            .append_pair("post_logout_redirect_uri", &uri);
        let page = browser.get(&format!("/logout?{}", query.finish()));
        assert!(!page.body.contains("asks you to sign out"), "{}", page.body);
        let csrf = page.input_value("csrf_token").unwrap();
        let done = browser.post_form(&page.form_action().unwrap(), &[("csrf_token", &csrf)]);
        assert_eq!(done.status, 200, "no redirect: {:?}", done.header("location"));
    }
}

// ---------------------------------------------------------------------
// Back-Channel Logout 1.0
// ---------------------------------------------------------------------

/// A stand-in relying party: records the form bodies POSTed to it and
/// answers each with the next queued status (200 when none is queued).
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<String>>>,
    statuses: Arc<Mutex<VecDeque<u16>>>,
    stop: Arc<AtomicBool>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/backchannel", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let statuses = Arc::new(Mutex::new(VecDeque::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (b, s, st) = (bodies.clone(), statuses.clone(), stop.clone());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                if st.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(mut stream) = stream else { continue };
                let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
                let mut data = Vec::new();
                let mut buf = [0u8; 4096];
                let body = loop {
                    let Ok(n) = stream.read(&mut buf) else { break None };
                    if n == 0 {
                        break None;
                    }
                    data.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&data).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                let (k, v) = l.split_once(':')?;
                                k.eq_ignore_ascii_case("content-length")
                                    .then(|| v.trim().parse::<usize>().ok())?
                            })
                            .unwrap_or(0);
                        if data.len() >= end + 4 + length {
                            break Some(text[end + 4..end + 4 + length].to_owned());
                        }
                    }
                };
                let status = s.lock().unwrap().pop_front().unwrap_or(200);
                if let Some(body) = body {
                    b.lock().unwrap().push(body);
                }
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                );
            }
        });
        Self {
            url,
            bodies,
            statuses,
            stop,
        }
    }

    /// The logout tokens received so far.
    fn tokens(&self) -> Vec<String> {
        self.bodies
            .lock()
            .unwrap()
            .iter()
            .filter_map(|body| {
                url::form_urlencoded::parse(body.as_bytes())
                    .find(|(k, _)| k == "logout_token")
                    .map(|(_, v)| v.into_owned())
            })
            .collect()
    }

    fn wait_for(&self, count: usize) -> Vec<String> {
        eventually(Duration::from_secs(15), || {
            let tokens = self.tokens();
            (tokens.len() >= count).then_some(tokens)
        })
        .unwrap_or_else(|| panic!("expected {count} logout tokens, got {}", self.tokens().len()))
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(
            self.url
                .trim_start_matches("http://")
                .trim_end_matches("/backchannel"),
        );
    }
}

fn backchannel_client(app: &TestApp, receiver: &Receiver) -> Client {
    oidc_client(app, false, |r| {
        r.backchannel_logout_uri = Some(receiver.url.clone())
    })
}

/// Checks a Logout Token as section 2.6 tells a relying party to.
fn check_logout_token(app: &TestApp, token: &str, client: &Client, id_token: &Value) {
    let (typ, claims) = verify(app, token, &client.client_id).expect("the logout token verifies");
    assert_eq!(typ.as_deref(), Some("logout+jwt"));
    assert_eq!(
        claims["events"],
        serde_json::json!({ "http://schemas.openid.net/event/backchannel-logout": {} })
    );
    assert_eq!(claims["sub"], id_token["sub"]);
    assert_eq!(claims["sid"], id_token["sid"]);
    assert!(claims["jti"].is_string());
    assert!(claims.get("nonce").is_none());
}

#[test]
fn backchannel_logout_2_5_logout_posts_a_signed_logout_token_to_the_client() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let receiver = Receiver::start();
    let client = backchannel_client(&app, &receiver);
    let bystander = oidc_client(&app, false, |_| {});
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    sign_in_with(&app, &mut browser, &bystander, &openid(&[]));
    let id_token = jwt_claims(tokens["id_token"].as_str().unwrap());
    let page = browser.get("/logout");
    let csrf = page.input_value("csrf_token").unwrap();
    let started = std::time::Instant::now();
    let done = browser.post_form("/logout", &[("csrf_token", &csrf)]);
    assert_eq!(done.status, 200);
    let received = receiver.wait_for(1);
    println!("logout token delivered {:?} after the logout", started.elapsed());
    assert_eq!(received.len(), 1, "one token for the one client with a URI");
    check_logout_token(&app, &received[0], &client, &id_token);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM backchannel_logouts"), 0);
}

#[test]
fn backchannel_logout_2_5_a_failed_delivery_is_retried_and_counted() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let receiver = Receiver::start();
    receiver.statuses.lock().unwrap().push_back(503);
    let client = backchannel_client(&app, &receiver);
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let page = browser.get("/logout");
    let csrf = page.input_value("csrf_token").unwrap();
    browser.post_form("/logout", &[("csrf_token", &csrf)]);
    let received = receiver.wait_for(2);
    check_logout_token(
        &app,
        &received[1],
        &client,
        &jwt_claims(tokens["id_token"].as_str().unwrap()),
    );
    let metrics = eventually(Duration::from_secs(5), || {
        let text = Browser::new(&app.admin).get("/metrics").body;
        (text.contains(r#"event="backchannel_logout_delivered"} 1"#)).then_some(text)
    })
    .expect("delivery counted");
    assert!(
        metrics.contains(r#"event="backchannel_logout_failed"} 1"#),
        "{metrics}"
    );
}

#[test]
fn backchannel_logout_an_operator_disabling_the_user_and_refresh_reuse_log_the_client_out() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let receiver = Receiver::start();
    let client = backchannel_client(&app, &receiver);
    // Reuse detection: the stolen family's client is told.
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.refresh(&client, refresh).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    assert_oauth_error(&app.refresh(&client, refresh), 400, "invalid_grant");
    let received = receiver.wait_for(1);
    check_logout_token(
        &app,
        &received[0],
        &client,
        &jwt_claims(tokens["id_token"].as_str().unwrap()),
    );
    // An operator disables the user: every session ends.
    let mut other = app.browser();
    let second = sign_in_with(&app, &mut other, &client, &openid(&[]));
    let mut conn = app.db.connect();
    auth_server::storage::users::change(
        &mut conn,
        "alice",
        auth_server::storage::users::Change::Disable,
        chrono::Utc::now(),
    )
    .unwrap()
    .expect("alice exists");
    // Both of alice's sessions had a grant of this client: two more.
    let received = receiver.wait_for(3);
    let subs: Vec<Value> = received.iter().map(|t| jwt_claims(t)["sid"].clone()).collect();
    assert!(subs.contains(&jwt_claims(second["id_token"].as_str().unwrap())["sid"]));
}

#[test]
fn backchannel_logout_uri_must_be_https_or_loopback_without_a_fragment() {
    let app = spawn_app();
    for bad in [
        "http://rp.example/logout",
        "https://rp.example/logout#f",
        "javascript:alert(1)",
        "/relative",
    ] {
        let registration = ClientRegistration {
            name: "RP".into(),
            redirect_uris: vec![format!("{SPA_ORIGIN}/callback")],
            backchannel_logout_uri: Some(bad.into()),
            ..Default::default()
        };
        assert!(registration.check("aud").is_err(), "{bad}");
    }
    let ok = ClientRegistration {
        name: "RP".into(),
        redirect_uris: vec![format!("{SPA_ORIGIN}/callback")],
        backchannel_logout_uri: Some("https://rp.example/logout?x=1".into()),
        ..Default::default()
    };
    assert!(ok.check("aud").is_ok());
    drop(app);
}

#[test]
fn client_credentials_never_grant_openid_there_is_no_user() {
    let app = spawn_app();
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Batch".into(),
        confidential: true,
        scopes: ["openid", "profile"].map(String::from).to_vec(),
        ..Default::default()
    });
    let authorization = basic(&client.client_id, &secret.unwrap());
    let only_openid = app.http().post_form_with(
        "/token",
        &[("grant_type", "client_credentials"), ("scope", "openid")],
        &[("Authorization", &authorization)],
    );
    assert_oauth_error(&only_openid, 400, "invalid_scope");
    let default = app.http().post_form_with(
        "/token",
        &[("grant_type", "client_credentials")],
        &[("Authorization", &authorization)],
    );
    assert_eq!(default.status, 200, "{}", default.body);
    assert_eq!(default.json()["scope"], Value::from("profile"));
    assert!(default.json().get("id_token").is_none());
}

#[test]
fn cli_registers_and_changes_the_backchannel_logout_uri_and_require_nonce() {
    let app = spawn_app();
    let created = run_auth_binary(
        &app.env,
        &[
            "client",
            "create",
            "--name",
            "RP",
            "--confidential",
            "--redirect-uri",
            "https://rp.example/cb",
            "--backchannel-logout-uri",
            "https://rp.example/backchannel",
            "--require-nonce",
        ],
        "",
    );
    assert!(created.status.success(), "{created:?}");
    let client = created.json();
    assert_eq!(
        client["backchannel_logout_uri"],
        Value::from("https://rp.example/backchannel")
    );
    assert_eq!(client["require_nonce"], Value::Bool(true));
    assert!(client["scope"].as_str().unwrap().starts_with("openid "));
    let id = client["client_id"].as_str().unwrap();
    let updated = run_auth_binary(
        &app.env,
        &[
            "client",
            "update",
            id,
            "--remove-backchannel-logout-uri",
            "--require-nonce",
            "false",
        ],
        "",
    );
    assert!(updated.status.success(), "{updated:?}");
    assert_eq!(updated.json()["backchannel_logout_uri"], Value::Null);
    assert_eq!(updated.json()["require_nonce"], Value::Bool(false));
    let bad = run_auth_binary(
        &app.env,
        &[
            "client",
            "update",
            id,
            "--backchannel-logout-uri",
            "http://rp.example/x",
        ],
        "",
    );
    bad.assert_one_line_error("back-channel logout URI");
}

#[test]
fn backchannel_logout_a_client_whose_endpoint_hangs_does_not_hold_up_the_others() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    // Accepts connections and never answers.
    let blackhole = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead_uri = format!("http://{}/logout", blackhole.local_addr().unwrap());
    let held: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
    let keep = held.clone();
    std::thread::spawn(move || {
        for stream in blackhole.incoming().flatten() {
            keep.lock().unwrap().push(stream);
        }
    });
    let dead = oidc_client(&app, false, |r| r.backchannel_logout_uri = Some(dead_uri.clone()));
    let receiver = Receiver::start();
    let alive = backchannel_client(&app, &receiver);
    let mut browsers = Vec::new();
    for _ in 0..3 {
        let mut browser = app.browser();
        sign_in_with(&app, &mut browser, &dead, &openid(&[]));
        sign_in_with(&app, &mut browser, &alive, &openid(&[]));
        browsers.push(browser);
    }
    let started = std::time::Instant::now();
    for browser in &mut browsers {
        let page = browser.get("/logout");
        let csrf = page.input_value("csrf_token").unwrap();
        browser.post_form("/logout", &[("csrf_token", &csrf)]);
    }
    let delivered = eventually(Duration::from_secs(4), || {
        (receiver.tokens().len() >= 3).then_some(())
    });
    assert!(
        delivered.is_some(),
        "after {:?} the healthy client had {} of 3 tokens",
        started.elapsed(),
        receiver.tokens().len()
    );
}

#[test]
fn core_3_1_2_1_an_id_token_hint_of_another_client_is_refused() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let first = oidc_client(&app, false, |_| {});
    let tracker = oidc_client(&app, true, |_| {});
    let mut browser = app.browser();
    let id_token = sign_in_with(&app, &mut browser, &first, &openid(&[]))["id_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let probe = silent_with_hint(&tracker, &id_token);
    let back = redirect_of(&app, &mut browser, &probe);
    assert_eq!(query_value(&back, "error").as_deref(), Some("invalid_request"));
}

#[test]
fn rp_initiated_logout_2_a_form_post_from_the_client_gets_the_confirmation_page() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = oidc_client(&app, false, |r| r.name = "Notes Web".into());
    let mut browser = app.browser();
    let tokens = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    let id_token = tokens["id_token"].as_str().unwrap();
    let page = browser.post_form(
        "/logout",
        &[
            ("id_token_hint", id_token),
            ("post_logout_redirect_uri", &format!("{SPA_ORIGIN}/")),
            ("state", "bye"),
        ],
    );
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body
            .contains("<strong>Notes Web</strong> asks you to sign out."),
        "{}",
        page.body
    );
    let csrf = page.input_value("csrf_token").unwrap();
    let done = browser.post_form(&page.form_action().unwrap(), &[("csrf_token", &csrf)]);
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("{SPA_ORIGIN}/?state=bye").as_str())
    );
}

#[test]
fn backchannel_logout_another_user_signing_in_in_the_same_browser_ends_the_first_users_session() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let receiver = Receiver::start();
    let client = backchannel_client(&app, &receiver);
    let mut browser = app.browser();
    let alices = sign_in_with(&app, &mut browser, &client, &openid(&[]));
    // Bob signs in in the same browser.
    let (_, challenge) = pkce();
    let reply = browser.get(&authorize_url(
        &client,
        &challenge,
        &openid(&[("prompt", "login")]),
    ));
    let page = browser.get(reply.header("location").unwrap());
    let csrf = page.input_value("csrf_token").unwrap();
    let signed_in = browser.post_form(
        &page.form_action().unwrap(),
        &[("username", "bob"), ("password", PASSWORD), ("csrf_token", &csrf)],
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let received = receiver.wait_for(1);
    check_logout_token(
        &app,
        &received[0],
        &client,
        &jwt_claims(alices["id_token"].as_str().unwrap()),
    );
    assert_oauth_error(
        &app.refresh(&client, alices["refresh_token"].as_str().unwrap()),
        400,
        "invalid_grant",
    );
}
