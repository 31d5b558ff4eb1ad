//! The real auth-server and the real resource-server together.

// Tests set up data at the wall-clock time the servers under test read.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use e2e::{Stack, http};
use serde_json::json;

#[test]
fn a_token_from_the_code_flow_is_accepted_by_the_resource_server() {
    let stack = Stack::start();
    let user = stack.create_user("alice", &["user"]);
    let client = stack.spa_client(&["profile", "notes:read", "notes:write"]);
    let tokens = stack.code_flow(&client.client_id, "alice", "profile notes:read notes:write");
    let access = tokens["access_token"].as_str().unwrap();

    let me = http().get(&format!("{}/api/me", stack.api), Some(access));
    assert_eq!(me.status, 200, "{}", me.body);
    let me = me.json();
    assert_eq!(me["sub"], user.id.to_string());
    assert_eq!(me["username"], "alice");
    assert_eq!(me["roles"], json!(["user"]));
    assert_eq!(me["scope"], "notes:read notes:write profile");

    let created = http().send_json(
        "POST",
        &format!("{}/api/notes", stack.api),
        access,
        &json!({"title": "hello", "body": "world"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let listed = http().get(&format!("{}/api/notes", stack.api), Some(access));
    assert_eq!(listed.json()[0]["title"], "hello");
}

#[test]
fn a_refreshed_token_keeps_working_and_a_narrowed_one_is_refused_where_its_scope_is_missing() {
    let stack = Stack::start();
    stack.create_user("bob", &["user"]);
    let client = stack.spa_client(&["profile", "notes:read", "notes:write"]);
    let tokens = stack.code_flow(&client.client_id, "bob", "profile notes:read notes:write");
    let refreshed = http().post_form(
        &format!("{}/token", stack.auth),
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
            ("client_id", &client.client_id),
            ("scope", "notes:read"),
        ],
        None,
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let narrowed = refreshed.json();
    assert_eq!(narrowed["scope"], "notes:read");
    let access = narrowed["access_token"].as_str().unwrap();
    assert_eq!(
        http()
            .get(&format!("{}/api/notes", stack.api), Some(access))
            .status,
        200
    );
    let me = http().get(&format!("{}/api/me", stack.api), Some(access));
    assert_eq!(me.status, 403);
    assert!(
        me.header("www-authenticate")
            .unwrap()
            .contains("scope=\"profile\"")
    );
}

#[test]
fn an_admin_sees_counts_and_a_user_asking_for_admin_is_narrowed() {
    let stack = Stack::start();
    stack.create_user("root", &["user", "admin"]);
    stack.create_user("carol", &["user"]);
    let client = stack.spa_client(&["profile", "notes:read", "notes:write", "admin"]);
    let admin = stack.code_flow(&client.client_id, "root", "profile admin");
    assert_eq!(admin["scope"], "profile admin");
    let stats = http().get(
        &format!("{}/api/admin/stats", stack.api),
        admin["access_token"].as_str(),
    );
    assert_eq!(stats.status, 200, "{}", stats.body);
    let user = stack.code_flow(&client.client_id, "carol", "profile admin");
    assert_eq!(user["scope"], "profile");
    let refused = http().get(
        &format!("{}/api/admin/stats", stack.api),
        user["access_token"].as_str(),
    );
    assert_eq!(refused.status, 403);
}

#[test]
fn client_credentials_tokens_are_accepted_and_carry_no_roles() {
    let stack = Stack::start();
    let (client, secret) = stack.create_client(auth_server::registration::ClientRegistration {
        name: "service".into(),
        confidential: true,
        scopes: vec!["notes:read".into()],
        ..Default::default()
    });
    let secret = secret.unwrap();
    let token = http().post_form(
        &format!("{}/token", stack.auth),
        &[("grant_type", "client_credentials")],
        Some((&client.client_id, &secret)),
    );
    assert_eq!(token.status, 200, "{}", token.body);
    let access = token.json()["access_token"].as_str().unwrap().to_owned();
    let notes = http().get(&format!("{}/api/notes", stack.api), Some(&access));
    assert_eq!(notes.status, 200, "{}", notes.body);
}

/// Pre-publication end to end: a rotated key is published, the resource
/// server learns it on its own refresh schedule, and when the key starts
/// signing not one request is refused.
#[test]
fn key_rotation_is_seamless_between_the_two_servers() {
    use std::time::{Duration, Instant};

    let activation = 12;
    let stack = Stack::start_with(e2e::Options {
        auth_env: vec![
            ("AUTH_KEY_ACTIVATION_DELAY", activation.to_string()),
            ("AUTH_KEY_RELOAD_INTERVAL", "1".into()),
        ],
        ..Default::default()
    });
    stack.create_user("dave", &["user"]);
    let client = stack.spa_client(&["profile", "notes:read"]);
    let first = stack.code_flow(&client.client_id, "dave", "profile");
    let old_kid = kid(first["access_token"].as_str().unwrap());

    // `auth-server keys rotate`, as the CLI does it.
    let key = auth_server::startup::master_key(&auth_server::config::KeyEncryptionKeySource::Configured(
        oauth_common::Secret::new(
            (0..32)
                .map(|i| format!("{:02x}", (i * 7 + 3) as u8))
                .collect::<String>(),
        ),
    ))
    .unwrap();
    let wrap = auth_server::crypto::ServerKeys::derive(&key)
        .unwrap()
        .signing_key_wrap;
    let now = chrono::Utc::now();
    let row = auth_server::keys::generate(&wrap, now, now + chrono::Duration::seconds(activation)).unwrap();
    auth_server::storage::keys::insert(&mut stack.auth_db.connect(), &row).unwrap();

    // Keep using the API through the switch: every request must succeed.
    let deadline = Instant::now() + Duration::from_secs(activation as u64 + 15);
    let mut saw_new_kid = false;
    while Instant::now() < deadline && !saw_new_kid {
        let tokens = stack.code_flow(&client.client_id, "dave", "profile");
        let access = tokens["access_token"].as_str().unwrap();
        let me = http().get(&format!("{}/api/me", stack.api), Some(access));
        assert_eq!(me.status, 200, "refused during rotation: {}", me.body);
        saw_new_kid = kid(access) == row.kid;
        if !saw_new_kid {
            assert_eq!(kid(access), old_kid);
            std::thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(saw_new_kid, "the rotated key never started signing");
    let jwks = http()
        .get(&format!("{}/.well-known/jwks.json", stack.auth), None)
        .json();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert!(
        kids.contains(&old_kid.as_str()),
        "the old key must stay published while its tokens live"
    );
}

fn kid(token: &str) -> String {
    use base64::Engine as _;
    let header = token.split('.').next().unwrap();
    let header: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(header)
            .unwrap(),
    )
    .unwrap();
    header["kid"].as_str().unwrap().to_owned()
}
