//! Metadata (RFC 8414), the JWKS, access tokens checked by an independent
//! JWT library (RFC 9068), signing-key rotation, several instances on one
//! database, and CORS (issue 3).

use std::collections::BTreeSet;
use std::time::Duration;

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::Value;

use crate::helpers::*;

const METADATA: &str = "/.well-known/oauth-authorization-server";
const DEFAULT_AUDIENCE: &str = "http://127.0.0.1:8081/api";
const SPA_ORIGIN: &str = "http://127.0.0.1:5173";

/// The path of `jwks_uri` as the metadata gives it.
fn jwks_path(base: &str) -> String {
    let metadata = Browser::new(base).get(METADATA).json();
    let uri = url::Url::parse(metadata["jwks_uri"].as_str().expect("jwks_uri")).expect("url");
    uri.path().to_owned()
}

fn jwks_at(base: &str) -> Value {
    let reply = Browser::new(base).get(&jwks_path(base));
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()
}

fn kids(jwks: &Value) -> BTreeSet<String> {
    jwks["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .map(|k| k["kid"].as_str().expect("kid").to_owned())
        .collect()
}

fn kid_of(token: &str) -> String {
    jwt_header(token)["kid"].as_str().expect("kid").to_owned()
}

/// Verifies `token` with `jsonwebtoken` against `jwks` the way a resource
/// server would (signature with the key named by `kid`, ES256 only, issuer,
/// audience, expiry) and returns its claims.
fn verify(token: &str, jwks: &Value, issuer: &str, audience: &str) -> Result<Value, String> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| format!("JWKS: {e}"))?;
    let header = jsonwebtoken::decode_header(token).map_err(|e| format!("header: {e}"))?;
    if header.typ.as_deref() != Some("at+jwt") {
        return Err(format!("typ is {:?}", header.typ));
    }
    let kid = header.kid.ok_or("no kid")?;
    let jwk = set
        .find(&kid)
        .ok_or_else(|| format!("kid {kid} is not published"))?;
    let key = DecodingKey::from_jwk(jwk).map_err(|e| format!("key: {e}"))?;
    let mut validation = Validation::new(Algorithm::ES256);
    validation.set_issuer(&[issuer]);
    validation.set_audience(&[audience]);
    validation.set_required_spec_claims(&["exp", "iat", "iss", "sub", "aud"]);
    jsonwebtoken::decode::<Value>(token, &key, &validation)
        .map(|data| data.claims)
        .map_err(|e| format!("verification failed: {e}"))
}

/// A confidential client for `client_credentials` and its token endpoint
/// authorization header.
fn machine_client(app: &TestApp) -> (Client, String) {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Batch job".into(),
        confidential: true,
        ..Default::default()
    });
    let authorization = basic(&client.client_id, &secret.expect("secret"));
    (client, authorization)
}

fn machine_token(base: &str, authorization: &str) -> String {
    let reply = Browser::new(base).post_form_with(
        "/token",
        &[("grant_type", "client_credentials")],
        &[("Authorization", authorization)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.json()["access_token"].as_str().expect("token").to_owned()
}

fn reload(state: &actix_web::web::Data<auth_server::state::AppState>) {
    actix_web::rt::System::new().block_on(auth_server::background::reload(state));
}

/// Stores a signing key made with the server's wrapping key.
fn insert_key(app: &TestApp, created: DateTime<Utc>, activates: DateTime<Utc>) -> String {
    let row = auth_server::keys::generate(&app.state.server_keys.signing_key_wrap, created, activates)
        .expect("key");
    auth_server::storage::keys::insert(&mut app.db.connect(), &row).expect("insert key");
    row.kid
}

// ---------------------------------------------------------------------------
// Metadata and JWKS

#[test]
fn metadata_lists_the_endpoints_and_capabilities_of_the_interface() {
    let app = spawn_app();
    let reply = app.http().get(METADATA);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let m = reply.json();
    let issuer = app.issuer.as_str();
    assert_eq!(m["issuer"], issuer);
    for (field, path) in [
        ("authorization_endpoint", "/authorize"),
        ("token_endpoint", "/token"),
        ("introspection_endpoint", "/introspect"),
        ("revocation_endpoint", "/revoke"),
    ] {
        assert_eq!(m[field], format!("{issuer}{path}"), "{field}");
    }
    let jwks_uri = m["jwks_uri"].as_str().unwrap();
    assert!(jwks_uri.starts_with(&format!("{issuer}/")), "{jwks_uri}");
    assert_eq!(app.http().get(jwks_uri).status, 200);

    let set = |field: &str| -> BTreeSet<String> {
        m[field]
            .as_array()
            .unwrap_or_else(|| panic!("{field} is not a list: {m}"))
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect()
    };
    let strings = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
    assert_eq!(set("response_types_supported"), strings(&["code"]));
    assert_eq!(
        set("grant_types_supported"),
        strings(&["authorization_code", "refresh_token", "client_credentials"])
    );
    assert_eq!(set("code_challenge_methods_supported"), strings(&["S256"]));
    assert!(
        set("token_endpoint_auth_methods_supported").is_superset(&strings(&[
            "client_secret_basic",
            "client_secret_post",
            "none"
        ]))
    );
    assert!(set("scopes_supported").is_superset(&strings(&[
        "profile",
        "notes:read",
        "notes:write",
        "admin"
    ])));
    assert_eq!(m["authorization_response_iss_parameter_supported"], true);
}

#[test]
fn jwks_publishes_public_keys_only_with_kid_alg_and_use_and_is_cacheable() {
    let app = spawn_app();
    let path = jwks_path(&app.base);
    let reply = app.http().get(&path);
    assert_eq!(reply.status, 200);
    let jwks = reply.json();
    let keys = jwks["keys"].as_array().unwrap();
    assert!(!keys.is_empty());
    for key in keys {
        assert!(key["kid"].as_str().is_some_and(|k| !k.is_empty()), "{key}");
        assert_eq!(key["alg"], "ES256", "{key}");
        assert_eq!(key["use"], "sig", "{key}");
        assert_eq!(key["kty"], "EC", "{key}");
        assert_eq!(key["crv"], "P-256", "{key}");
        for private in ["d", "p", "q", "dp", "dq", "qi", "k", "oth"] {
            assert!(key.get(private).is_none(), "private member {private}: {key}");
        }
    }
    let etag = reply.header("etag").expect("ETag");
    assert!(etag.starts_with('"') && etag.ends_with('"'), "{etag}");
    // Cached, but for less than the pre-publication delay (default 900 s),
    // so every cache has a new key before it signs.
    let cache = reply.header("cache-control").expect("Cache-Control");
    let max_age: u64 = cache
        .split(',')
        .find_map(|d| d.trim().strip_prefix("max-age="))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no max-age: {cache}"));
    assert!(max_age > 0 && max_age < 900, "{cache}");
}

#[test]
fn jwks_answers_304_to_a_matching_if_none_match() {
    let app = spawn_app();
    let path = jwks_path(&app.base);
    let first = app.http().get(&path);
    let etag = first.header("etag").unwrap().to_owned();

    let again = app.http().get_with(&path, &[("If-None-Match", &etag)]);
    assert_eq!(again.status, 304);
    assert_eq!(again.body, "");
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    let listed = app
        .http()
        .get_with(&path, &[("If-None-Match", &format!("\"other\", {etag}"))]);
    assert_eq!(listed.status, 304);

    let stale = app.http().get_with(&path, &[("If-None-Match", "\"stale\"")]);
    assert_eq!(stale.status, 200);
    assert_eq!(stale.json(), first.json());
}

#[test]
fn access_token_verifies_against_the_published_jwks_with_an_independent_library_and_carries_every_claim() {
    let app = spawn_app();
    let alice = app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let before = Utc::now().timestamp();
    let tokens = app.code_flow(&client, "alice", &[("scope", "profile notes:read")]);
    let token = tokens["access_token"].as_str().unwrap();
    let jwks = jwks_at(&app.base);

    let header = jwt_header(token);
    assert_eq!(header["typ"], "at+jwt");
    assert_eq!(header["alg"], "ES256");
    assert!(kids(&jwks).contains(&kid_of(token)));

    let claims = verify(token, &jwks, &app.issuer, DEFAULT_AUDIENCE).unwrap();
    assert_eq!(claims["iss"], app.issuer.as_str());
    assert_eq!(claims["sub"], alice.id.to_string());
    assert_eq!(claims["aud"], DEFAULT_AUDIENCE);
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["scope"], "profile notes:read");
    assert_eq!(claims["roles"], serde_json::json!(["user"]));
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16), "{claims}");
    for time in ["iat", "exp"] {
        assert!(
            claims[time].is_i64() || claims[time].is_u64(),
            "{time} must be an integer: {claims}"
        );
    }
    let iat = claims["iat"].as_i64().unwrap();
    let exp = claims["exp"].as_i64().unwrap();
    assert!(iat >= before - 1 && iat <= Utc::now().timestamp() + 1, "{claims}");
    assert_eq!(exp - iat, 600);
    assert_eq!(tokens["expires_in"], 600);

    // A second token gets another jti.
    let other = app.code_flow(&client, "alice", &[("scope", "profile")]);
    let other_claims = jwt_claims(other["access_token"].as_str().unwrap());
    assert_ne!(other_claims["jti"], claims["jti"]);

    // The verification is real: a changed payload or the wrong audience or
    // issuer fail.
    let mut forged_claims = claims.clone();
    forged_claims["scope"] = "profile notes:read admin".into();
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    parts[1] = base64_url(&serde_json::to_vec(&forged_claims).unwrap());
    assert!(verify(&parts.join("."), &jwks, &app.issuer, DEFAULT_AUDIENCE).is_err());
    assert!(verify(token, &jwks, &app.issuer, "https://other.example/api").is_err());
    assert!(verify(token, &jwks, "https://other.example", DEFAULT_AUDIENCE).is_err());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[test]
fn access_token_audience_is_the_clients_registered_audience() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app
        .create_client(ClientRegistration {
            name: "Notes app".into(),
            redirect_uris: vec![format!("{SPA_ORIGIN}/callback")],
            audiences: vec!["https://notes.example/api".into()],
            first_party: true,
            ..Default::default()
        })
        .0;
    let tokens = app.code_flow(&client, "alice", &[]);
    let token = tokens["access_token"].as_str().unwrap();
    let jwks = jwks_at(&app.base);
    let claims = verify(token, &jwks, &app.issuer, "https://notes.example/api").unwrap();
    assert_eq!(claims["aud"], "https://notes.example/api");
    assert!(verify(token, &jwks, &app.issuer, DEFAULT_AUDIENCE).is_err());
}

// ---------------------------------------------------------------------------
// Key rotation

#[test]
fn rotated_key_is_published_before_it_signs_then_signs_while_the_old_key_stays_published() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_KEY_ACTIVATION_DELAY".into(), "6".into());
        env.insert("AUTH_KEY_RELOAD_INTERVAL".into(), "1".into());
        env.insert("AUTH_ACCESS_TOKEN_TTL".into(), "2".into());
    });
    let (_, authorization) = machine_client(&app);
    let before = jwks_at(&app.base);
    assert_eq!(kids(&before).len(), 1, "{before}");
    let old_kid = kids(&before).into_iter().next().unwrap();
    let old_etag = app
        .http()
        .get(&jwks_path(&app.base))
        .header("etag")
        .unwrap()
        .to_owned();

    let rotated = run_auth_binary(&app.env, &["keys", "rotate"], "");
    assert!(rotated.status.success(), "{rotated:?}");
    let out = rotated.json();
    let new_kid = out["kid"].as_str().unwrap().to_owned();
    let activates_at: DateTime<Utc> = out["activates_at"].as_str().unwrap().parse().unwrap();
    assert!(activates_at > Utc::now(), "{out}");

    // Published first (each instance reloads every second) ...
    let published = eventually(Duration::from_secs(10), || {
        let jwks = jwks_at(&app.base);
        kids(&jwks).contains(&new_kid).then_some(jwks)
    })
    .expect("the new key was not published");
    assert!(kids(&published).contains(&old_kid));
    let etag = app
        .http()
        .get(&jwks_path(&app.base))
        .header("etag")
        .unwrap()
        .to_owned();
    assert_ne!(etag, old_etag, "the ETag did not change with the key set");

    // ... while tokens are still signed with the old key.
    let early = machine_token(&app.base, &authorization);
    assert!(
        Utc::now() < activates_at,
        "too slow to observe the pending key before {activates_at}"
    );
    assert_eq!(kid_of(&early), old_kid, "a pending key signed a token");

    // After the delay the new key signs.
    let late = eventually(Duration::from_secs(15), || {
        let token = machine_token(&app.base, &authorization);
        (kid_of(&token) == new_kid).then_some(token)
    })
    .expect("the new key never signed");
    let iat = jwt_claims(&late)["iat"].as_i64().unwrap();
    assert!(
        iat >= activates_at.timestamp(),
        "signed at {iat} before {activates_at}"
    );

    // The old key stays published while its tokens may be alive, and both
    // tokens verify against the published set.
    let jwks = jwks_at(&app.base);
    assert!(kids(&jwks).contains(&old_kid), "{jwks}");
    assert!(kids(&jwks).contains(&new_kid), "{jwks}");
    verify(&early, &jwks, &app.issuer, DEFAULT_AUDIENCE).unwrap();
    verify(&late, &jwks, &app.issuer, DEFAULT_AUDIENCE).unwrap();
}

#[test]
fn retired_key_stays_published_until_its_tokens_expired_then_leaves_jwks_and_database() {
    // Access tokens live 2 s; a retired key stays 2 s + 60 s of leeway after
    // the key that replaced it started signing. Keys with past timestamps
    // stand in for waiting.
    let app = spawn_app_with(|env| {
        env.insert("AUTH_ACCESS_TOKEN_TTL".into(), "2".into());
    });
    let (_, authorization) = machine_client(&app);
    let current = kids(&jwks_at(&app.base)).into_iter().next().unwrap();
    let now = Utc::now();
    let ago = |secs: i64| now - chrono::Duration::seconds(secs);
    // Replaced 70 s ago: gone. Replaced 30 s ago: stays.
    let long_retired = insert_key(&app, ago(3 * 3600), ago(2 * 3600));
    let recently_retired = insert_key(&app, ago(2 * 3600), ago(70));
    let replaced_just_now = insert_key(&app, ago(3600), ago(30));
    let pending = insert_key(&app, now, now + chrono::Duration::hours(1));
    reload(&app.state);

    let jwks = jwks_at(&app.base);
    let published = kids(&jwks);
    assert!(!published.contains(&long_retired), "{jwks}");
    for kid in [&recently_retired, &replaced_just_now, &current, &pending] {
        assert!(published.contains(kid), "{kid} missing: {jwks}");
    }
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM signing_keys WHERE kid = '{long_retired}'"
        )),
        0,
        "a key nobody can verify with is still stored"
    );
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM signing_keys"), 4);

    // The newest active key signs; the pending one does not yet.
    let token = machine_token(&app.base, &authorization);
    assert_eq!(kid_of(&token), current);
    verify(&token, &jwks, &app.issuer, DEFAULT_AUDIENCE).unwrap();
}

// ---------------------------------------------------------------------------
// Several instances

#[test]
fn second_instance_on_the_same_database_publishes_the_same_keys_and_redeems_the_other_ones_codes() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let peer = start_instance(&peer_env(&app)).expect("second instance starts");
    assert_eq!(peer.issuer, app.issuer);
    assert_eq!(jwks_at(&peer.base), jwks_at(&app.base));

    // A code from the first, redeemed at the second.
    let mut browser = app.browser();
    let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
    let reply = redeem_code_at(&peer.base, &client, None, &code, &verifier);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    verify(&token, &jwks_at(&app.base), &app.issuer, DEFAULT_AUDIENCE).unwrap();

    // The session is shared too: the second instance knows the browser.
    let mut same_browser = peer.browser();
    same_browser.cookies = browser.cookies.clone();
    let (peer_verifier, challenge) = pkce();
    let reply = same_browser.get(&authorize_url(&client, &challenge, &[]));
    assert_eq!(reply.status, 302, "{}", reply.body);
    let back = reply.location(&peer.base).unwrap();
    assert_eq!(query_value(&back, "iss").as_deref(), Some(app.issuer.as_str()));
    let code = query_value(&back, "code").expect("code from the second instance");

    // A code from the second, redeemed at the first.
    let reply = app.redeem_code(&client, None, &code, &peer_verifier);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let token = reply.json()["access_token"].as_str().unwrap().to_owned();
    verify(&token, &jwks_at(&peer.base), &app.issuer, DEFAULT_AUDIENCE).unwrap();

    // A key added by either is published by both.
    let pending = insert_key(&app, Utc::now(), Utc::now() + chrono::Duration::hours(1));
    reload(&app.state);
    reload(&peer.state);
    let jwks = jwks_at(&peer.base);
    assert!(kids(&jwks).contains(&pending));
    assert_eq!(jwks, jwks_at(&app.base));
}

#[test]
fn instance_with_another_key_encryption_key_refuses_to_start_with_a_clear_error() {
    let app = spawn_app();
    let mut env = peer_env(&app);
    env.insert("AUTH_KEY_ENCRYPTION_KEY".into(), "ab".repeat(32));
    let error = match start_instance(&env) {
        Ok(_) => panic!("started with a key that cannot open the signing keys"),
        Err(e) => e,
    };
    assert!(error.contains("AUTH_KEY_ENCRYPTION_KEY"), "{error}");
}

// ---------------------------------------------------------------------------
// CORS

#[test]
fn cors_allows_public_clients_redirect_origins_on_token_revocation_jwks_and_metadata() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let spa = app.spa_client();
    let jwks = jwks_path(&app.base);

    for path in ["/token", "/revoke", jwks.as_str(), METADATA] {
        let preflight = app.http().options(
            path,
            &[
                ("Origin", SPA_ORIGIN),
                ("Access-Control-Request-Method", "POST"),
                ("Access-Control-Request-Headers", "content-type"),
            ],
        );
        assert_eq!(preflight.status, 204, "{path}: {}", preflight.body);
        assert_eq!(
            preflight.header("access-control-allow-origin"),
            Some(SPA_ORIGIN),
            "{path}"
        );
        let methods = preflight.header("access-control-allow-methods").unwrap_or("");
        assert!(
            methods.contains("POST") || methods.contains("GET"),
            "{path}: {methods}"
        );
    }
    for path in [jwks.as_str(), METADATA] {
        let reply = app.http().get_with(path, &[("Origin", SPA_ORIGIN)]);
        assert_eq!(reply.status, 200);
        assert_eq!(
            reply.header("access-control-allow-origin"),
            Some(SPA_ORIGIN),
            "{path}"
        );
    }

    // A real code exchange from the browser app.
    let (code, verifier) = app.obtain_code(&mut app.browser(), &spa, "alice", &[]);
    let reply = app.http().post_form_with(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", spa.redirect_uris[0].as_str()),
            ("client_id", &spa.client_id),
            ("code_verifier", &verifier),
        ],
        &[("Origin", SPA_ORIGIN)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("access-control-allow-origin"), Some(SPA_ORIGIN));
}

#[test]
fn cors_is_refused_to_other_origins_and_to_confidential_clients_origins() {
    let app = spawn_app();
    app.spa_client();
    app.create_client(ClientRegistration {
        name: "Server-side app".into(),
        confidential: true,
        redirect_uris: vec!["https://exporter.example/cb".into()],
        ..Default::default()
    });
    let jwks = jwks_path(&app.base);
    for origin in [
        "https://evil.example",
        "https://exporter.example",
        "http://127.0.0.1:5174",
        "null",
    ] {
        for path in ["/token", "/revoke", jwks.as_str(), METADATA] {
            let preflight = app.http().options(
                path,
                &[("Origin", origin), ("Access-Control-Request-Method", "POST")],
            );
            assert_eq!(
                preflight.header("access-control-allow-origin"),
                None,
                "{origin} {path}"
            );
        }
        let reply = app.http().get_with(METADATA, &[("Origin", origin)]);
        assert_eq!(reply.header("access-control-allow-origin"), None, "{origin}");
    }
}

#[test]
fn authorization_endpoint_login_page_and_introspection_never_send_cors_headers() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let spa = app.spa_client();
    let (_, challenge) = pkce();
    let authorize = authorize_url(&spa, &challenge, &[]);
    let mut browser = app.browser();
    let origin = [("Origin", SPA_ORIGIN)];
    let preflight = [("Origin", SPA_ORIGIN), ("Access-Control-Request-Method", "POST")];
    for path in [authorize.as_str(), "/login", "/"] {
        let get = browser.get_with(path, &origin);
        assert_eq!(get.header("access-control-allow-origin"), None, "GET {path}");
        let options = app.http().options(path, &preflight);
        assert_eq!(
            options.header("access-control-allow-origin"),
            None,
            "OPTIONS {path}"
        );
    }
    app.login(&mut browser, "alice");
    let signed_in = browser.get_with(&authorize, &origin);
    assert_eq!(signed_in.status, 302);
    assert_eq!(signed_in.header("access-control-allow-origin"), None);
    let options = app.http().options("/introspect", &preflight);
    assert_eq!(options.header("access-control-allow-origin"), None);
}
