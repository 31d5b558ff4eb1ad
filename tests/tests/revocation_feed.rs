//! Issue 15 end to end: the auth-server's revocation feed followed by two
//! resource-server instances. After each kind of revocation the same access
//! token is refused by both within 5 s; another user's token keeps working;
//! a resource server started afterwards catches up.

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::time::{Duration, Instant};

use e2e::{Agent, ResourceInstance, Stack, http};

const SCOPE: &str = "openid profile notes:read";

fn me(api: &str, token: &str) -> u16 {
    http().get(&format!("{api}/api/me"), Some(token)).status
}

/// How long until `token` is refused by every instance; panics after 5 s.
fn refused_everywhere(instances: &[&ResourceInstance], token: &str) -> Duration {
    let started = Instant::now();
    loop {
        let statuses: Vec<u16> = instances.iter().map(|rs| me(&rs.api, token)).collect();
        if statuses.iter().all(|s| *s == 401) {
            let reply = http().get(&format!("{}/api/me", instances[0].api), Some(token));
            let challenge = reply.header("www-authenticate").unwrap_or_default().to_owned();
            assert!(challenge.contains("error=\"invalid_token\""), "{challenge}");
            return started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still accepted after 5 s: {statuses:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn sign_out(stack: &Stack, browser: &mut Agent) {
    let page = browser.get(&format!("{}/logout", stack.auth), None);
    let csrf = page.input("csrf_token").expect("csrf");
    let done = browser.post_form(&format!("{}/logout", stack.auth), &[("csrf_token", &csrf)], None);
    assert_eq!(done.status, 200, "{}", done.body);
}

fn revoke(stack: &Stack, client_id: &str, token: &str) {
    let reply = http().post_form(
        &format!("{}/revoke", stack.auth),
        &[("token", token), ("client_id", client_id)],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn every_revocation_reaches_two_offline_resource_servers_within_seconds() {
    let stack = Stack::start();
    stack.create_user("alice", &["user"]);
    stack.create_user("bob", &["user"]);
    let client = stack.spa_client(&["openid", "profile", "notes:read"]);
    let (events_id, events_secret) = stack.events_client();
    let feed = [
        ("RESOURCE_EVENTS_CLIENT_ID", events_id.clone()),
        ("RESOURCE_EVENTS_CLIENT_SECRET", events_secret.clone()),
    ];
    let first = stack.start_resource(&feed);
    let second = stack.start_resource(&feed);
    let both = [&first, &second];
    let bob = stack.code_flow(&client.client_id, "bob", SCOPE);
    let bob_token = bob["access_token"].as_str().unwrap().to_owned();

    let mut delays = Vec::new();
    let mut check = |what: &str, token: &str| {
        let delay = refused_everywhere(&both, token);
        println!("{what}: refused by both instances after {delay:?}");
        delays.push(delay);
        for rs in both {
            assert_eq!(
                me(&rs.api, &bob_token),
                200,
                "bob's token keeps working after {what}"
            );
        }
    };

    // Logout.
    let mut browser = Agent::new(&stack.auth);
    let tokens = stack.code_flow_in(&mut browser, &client.client_id, "alice", SCOPE);
    let access = tokens["access_token"].as_str().unwrap();
    for rs in both {
        assert_eq!(me(&rs.api, access), 200);
    }
    sign_out(&stack, &mut browser);
    check("logout", access);

    // RFC 7009 revocation of the refresh token.
    let tokens = stack.code_flow(&client.client_id, "alice", SCOPE);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(me(&first.api, access), 200);
    revoke(
        &stack,
        &client.client_id,
        tokens["refresh_token"].as_str().unwrap(),
    );
    check("refresh-token revocation", access);

    // RFC 7009 revocation of the access token itself.
    let tokens = stack.code_flow(&client.client_id, "alice", SCOPE);
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(me(&first.api, access), 200);
    revoke(&stack, &client.client_id, access);
    check("access-token revocation", access);

    // Refresh-token reuse.
    let tokens = stack.code_flow(&client.client_id, "alice", SCOPE);
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    let refresh_with = |token: &str| {
        http().post_form(
            &format!("{}/token", stack.auth),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", token),
                ("client_id", &client.client_id),
            ],
            None,
        )
    };
    assert_eq!(refresh_with(refresh).status, 200);
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(refresh_with(refresh).status, 400, "reuse is refused");
    check("refresh-token reuse", access);

    // `auth-server user disable`.
    let tokens = stack.code_flow(&client.client_id, "alice", SCOPE);
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    assert_eq!(me(&first.api, &access), 200);
    let mut conn = stack.auth_db.connect();
    auth_server::storage::users::change(
        &mut conn,
        "alice",
        auth_server::storage::users::Change::Disable,
        chrono::Utc::now(),
    )
    .unwrap()
    .expect("alice exists");
    check("user disable", &access);

    // A resource server started now reads the whole feed and refuses too.
    let mut late = stack.start_resource(&feed);
    let started = Instant::now();
    while me(&late.api, &access) != 401 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the new instance caught up"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(me(&late.api, &bob_token), 200);
    late.stop();

    let max = delays.iter().max().unwrap();
    println!("revocation to refusal: max {max:?} over {} cases", delays.len());
    // Both instances report the feed fresh.
    for rs in both {
        let health = http().get(&format!("{}/healthz", rs.admin), None);
        assert_eq!(health.status, 200, "{}", health.body);
        let metrics = http().get(&format!("{}/metrics", rs.admin), None).body;
        assert!(
            metrics.contains("resource_revocation_feed_lag_seconds"),
            "{metrics}"
        );
    }
}

#[test]
fn without_the_feed_settings_a_revoked_token_lives_until_it_expires() {
    let stack = Stack::start();
    stack.create_user("alice", &["user"]);
    let client = stack.spa_client(&["openid", "profile"]);
    let tokens = stack.code_flow(&client.client_id, "alice", "openid profile");
    let access = tokens["access_token"].as_str().unwrap();
    revoke(&stack, &client.client_id, access);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        me(&stack.api, access),
        200,
        "offline validation alone cannot know"
    );
}

#[test]
fn a_resource_server_that_cannot_read_the_feed_is_not_ready() {
    let stack = Stack::start();
    let rs = stack.start_resource_unready(&[
        ("RESOURCE_EVENTS_CLIENT_ID", "not-a-client".into()),
        ("RESOURCE_EVENTS_CLIENT_SECRET", "wrong".into()),
    ]);
    std::thread::sleep(Duration::from_secs(2));
    let ready = http().get(&format!("{}/readyz", rs.admin), None);
    assert_eq!(
        ready.status, 503,
        "it would accept tokens the feed revoked: {}",
        ready.body
    );
}

#[test]
fn an_unreachable_feed_keeps_the_server_serving_and_turns_healthz_unhealthy() {
    let mut stack = Stack::start();
    stack.create_user("alice", &["user"]);
    let client = stack.spa_client(&["openid", "profile"]);
    let (id, secret) = stack.events_client();
    let rs = stack.start_resource(&[
        ("RESOURCE_EVENTS_CLIENT_ID", id),
        ("RESOURCE_EVENTS_CLIENT_SECRET", secret),
        ("RESOURCE_EVENTS_MAX_STALENESS", "2".into()),
    ]);
    let tokens = stack.code_flow(&client.client_id, "alice", "openid profile");
    let access = tokens["access_token"].as_str().unwrap();
    assert_eq!(me(&rs.api, access), 200);
    stack.stop_auth();
    let started = Instant::now();
    loop {
        let health = http().get(&format!("{}/healthz", rs.admin), None);
        if health.status == 503 {
            assert!(health.body.contains("revocation feed stale"), "{}", health.body);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "healthz never turned unhealthy"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        http().get(&format!("{}/readyz", rs.admin), None).status,
        200,
        "still takes traffic"
    );
    assert_eq!(me(&rs.api, access), 200, "keeps serving with what it has");
    let metrics = http().get(&format!("{}/metrics", rs.admin), None).body;
    let lag: f64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("resource_revocation_feed_lag_seconds "))
        .and_then(|v| v.trim().parse().ok())
        .expect("the lag is exported");
    assert!(lag >= 2.0, "lag {lag}");
}
