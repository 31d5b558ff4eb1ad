//! The `refresh_token` grant: rotation on every use, reuse detection that
//! revokes the whole family, the grace window for concurrent refreshes,
//! client binding, scope narrowing, idle and absolute expiry.

use std::sync::Barrier;

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;

use crate::helpers::*;

const SCOPE: &str = "profile notes:read notes:write";

/// A server with the given grace window, a user and a first-party SPA.
fn setup(grace_seconds: u32) -> (TestApp, Client) {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_REFRESH_GRACE_SECONDS".into(), grace_seconds.to_string());
    });
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    (app, client)
}

fn tokens(app: &TestApp, client: &Client) -> (String, String) {
    let t = app.code_flow(client, "alice", &[("scope", SCOPE)]);
    (
        str_at(&t, "access_token").to_owned(),
        str_at(&t, "refresh_token").to_owned(),
    )
}

/// Refreshes and expects success; returns (access token, refresh token).
fn rotate(app: &TestApp, client: &Client, refresh_token: &str) -> (String, String) {
    let reply = app.refresh(client, refresh_token);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    (
        str_at(&body, "access_token").to_owned(),
        str_at(&body, "refresh_token").to_owned(),
    )
}

/// Ends every grace window now, as if the clock had moved on.
fn close_grace_windows(app: &TestApp) {
    app.sql_exec(
        "UPDATE refresh_tokens SET grace_until = now() - interval '1 second' WHERE grace_until IS NOT NULL",
    );
}

fn live_refresh_tokens(app: &TestApp) -> i64 {
    app.sql_count(
        "SELECT count(*) AS n FROM refresh_tokens r JOIN token_families f ON f.id = r.family_id
         WHERE r.used_at IS NULL AND f.revoked_at IS NULL",
    )
}

#[test]
fn public_client_refresh_always_rotates_and_the_spent_token_is_refused() {
    let (app, client) = setup(0);
    let (a0, r0) = tokens(&app, &client);

    let reply = app.refresh(&client, &r0);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let body = reply.json();
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["scope"], SCOPE);
    assert!(body["expires_in"].as_i64().is_some_and(|e| e > 0), "{body}");
    let (a1, r1) = (str_at(&body, "access_token"), str_at(&body, "refresh_token"));
    assert_ne!(r1, r0, "a public client's refresh token must rotate");
    assert_ne!(a1, a0);
    let claims = jwt_claims(a1);
    assert_eq!(claims["client_id"], client.client_id.as_str());
    assert_eq!(claims["scope"], SCOPE);
    assert_eq!(claims["roles"], serde_json::json!(["user"]));

    let (_, r2) = rotate(&app, &client, r1);
    assert_ne!(r2, r1);
    assert_ne!(r2, r0);

    let refused = app.refresh(&client, r1);
    assert_oauth_error(&refused, 400, "invalid_grant");
}

#[test]
fn confidential_client_refresh_also_rotates() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Web app".into(),
        confidential: true,
        redirect_uris: vec!["https://app.example/callback".into()],
        first_party: true,
        ..Default::default()
    });
    let secret = secret.unwrap();
    let mut browser = app.browser();
    let t = app.code_flow_in(&mut browser, &client, Some(&secret), "alice", &[]);
    let r0 = str_at(&t, "refresh_token");
    let authorization = basic(&client.client_id, &secret);
    let reply = app.http().post_form_with(
        "/token",
        &[("grant_type", "refresh_token"), ("refresh_token", r0)],
        &[("Authorization", &authorization)],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let r1 = str_at(&reply.json(), "refresh_token").to_owned();
    assert_ne!(r1, r0);

    // The same token without the client's secret is not a valid request
    // from that client.
    let unauthenticated = app.http().post_form(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", &r1),
            ("client_id", &client.client_id),
        ],
    );
    assert_oauth_error(&unauthenticated, 401, "invalid_client");
}

#[test]
fn reusing_a_spent_token_after_the_window_revokes_the_whole_family() {
    let (app, client) = setup(2);
    let introspector = app.introspector();
    let (a0, r0) = tokens(&app, &client);
    let (a1, r1) = rotate(&app, &client, &r0);
    let (a2, r2) = rotate(&app, &client, &r1);
    assert_eq!(app.introspect(&introspector, &a2)["active"], true);

    close_grace_windows(&app);
    let reuse = app.refresh(&client, &r0);
    assert_oauth_error(&reuse, 400, "invalid_grant");

    // The newest token, which was never used, dies with its family.
    assert_oauth_error(&app.refresh(&client, &r2), 400, "invalid_grant");
    for token in [&a0, &a1, &a2, &r2] {
        assert_eq!(app.introspect(&introspector, token), inactive());
    }
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM token_families WHERE revoked_reason = 'refresh_token_reused'"
        ),
        1
    );
}

#[test]
fn reuse_without_a_grace_window_revokes_the_family_at_once() {
    let (app, client) = setup(0);
    let introspector = app.introspector();
    let (_, r0) = tokens(&app, &client);
    let (a1, r1) = rotate(&app, &client, &r0);

    assert_oauth_error(&app.refresh(&client, &r0), 400, "invalid_grant");
    assert_oauth_error(&app.refresh(&client, &r1), 400, "invalid_grant");
    assert_eq!(app.introspect(&introspector, &a1), inactive());
}

#[test]
fn replay_by_the_same_client_inside_the_window_returns_the_same_successor() {
    let (app, client) = setup(30);
    let (_, r0) = tokens(&app, &client);
    let first = app.refresh(&client, &r0);
    assert_eq!(first.status, 200, "{}", first.body);
    let again = app.refresh(&client, &r0);
    assert_eq!(again.status, 200, "{}", again.body);
    assert_eq!(again.header("cache-control"), Some("no-store"));
    let (first, again) = (first.json(), again.json());
    assert_eq!(again["access_token"], first["access_token"]);
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    assert_eq!(again["scope"], first["scope"]);
    assert_eq!(live_refresh_tokens(&app), 1, "still exactly one live chain");

    // The successor carries on.
    rotate(&app, &client, str_at(&first, "refresh_token"));
}

#[test]
fn concurrent_refreshes_inside_the_window_share_one_successor_and_one_chain() {
    // A generous window so a slow machine cannot push a caller past it.
    let (app, client) = setup(30);
    let introspector = app.introspector();
    let (_, r0) = tokens(&app, &client);

    let barrier = Barrier::new(20);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    app.refresh(&client, &r0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    for reply in &replies {
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let first = replies[0].json();
    for reply in &replies[1..] {
        let body = reply.json();
        assert_eq!(body["refresh_token"], first["refresh_token"]);
        assert_eq!(body["access_token"], first["access_token"]);
    }
    assert_eq!(live_refresh_tokens(&app), 1, "exactly one chain survives");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM refresh_tokens"),
        2,
        "only one successor was minted"
    );

    // The shared successor works; after the window any older token revokes.
    let r1 = str_at(&first, "refresh_token").to_owned();
    let (a2, r2) = rotate(&app, &client, &r1);
    close_grace_windows(&app);
    assert_oauth_error(&app.refresh(&client, &r0), 400, "invalid_grant");
    assert_oauth_error(&app.refresh(&client, &r2), 400, "invalid_grant");
    assert_eq!(app.introspect(&introspector, &a2), inactive());
}

#[test]
fn concurrent_refreshes_without_a_window_have_one_winner_and_revoke_the_family() {
    let (app, client) = setup(0);
    let (_, r0) = tokens(&app, &client);

    let barrier = Barrier::new(20);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..20)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    app.refresh(&client, &r0)
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });

    let winners: Vec<&Reply> = replies.iter().filter(|r| r.status == 200).collect();
    assert_eq!(winners.len(), 1, "{replies:#?}");
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_oauth_error(reply, 400, "invalid_grant");
    }
    let successor = str_at(&winners[0].json(), "refresh_token").to_owned();
    assert_oauth_error(&app.refresh(&client, &successor), 400, "invalid_grant");
    assert_eq!(live_refresh_tokens(&app), 0);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NOT NULL"),
        1
    );
}

#[test]
fn replay_inside_the_window_by_another_client_revokes_the_family() {
    let (app, client) = setup(30);
    let other = app.spa_client();
    let (_, r0) = tokens(&app, &client);
    let (a1, r1) = rotate(&app, &client, &r0);

    assert_oauth_error(&app.refresh(&other, &r0), 400, "invalid_grant");

    assert_oauth_error(&app.refresh(&client, &r1), 400, "invalid_grant");
    assert_oauth_error(&app.refresh(&client, &r0), 400, "invalid_grant");
    assert_eq!(app.introspect(&app.introspector(), &a1), inactive());
}

#[test]
fn refresh_by_another_client_is_invalid_grant_and_leaves_the_token_usable() {
    let (app, client) = setup(2);
    let other = app.spa_client();
    let (_, r0) = tokens(&app, &client);

    assert_oauth_error(&app.refresh(&other, &r0), 400, "invalid_grant");
    rotate(&app, &client, &r0);
}

#[test]
fn refresh_may_narrow_the_scope() {
    let (app, client) = setup(2);
    let (_, r0) = tokens(&app, &client);

    let reply = app.refresh_with(&client, &r0, &[("scope", "notes:read")]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["scope"], "notes:read");
    assert_eq!(jwt_claims(str_at(&body, "access_token"))["scope"], "notes:read");

    // Omitting scope means the scope originally granted (RFC 6749 section 6).
    let later = app.refresh(&client, str_at(&body, "refresh_token"));
    assert_eq!(later.status, 200, "{}", later.body);
    assert_eq!(later.json()["scope"], SCOPE);
}

#[test]
fn refresh_may_not_widen_the_scope() {
    let (app, client) = setup(2);
    let t = app.code_flow(&client, "alice", &[("scope", "profile")]);
    let r0 = str_at(&t, "refresh_token");

    let reply = app.refresh_with(&client, r0, &[("scope", "profile notes:write")]);
    assert_oauth_error(&reply, 400, "invalid_scope");

    // The refused request did not spend the token.
    let reply = app.refresh(&client, r0);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["scope"], "profile");
}

#[test]
fn idle_expired_refresh_token_is_invalid_grant() {
    let (app, client) = setup(2);
    let (_, r0) = tokens(&app, &client);
    app.sql_exec("UPDATE refresh_tokens SET expires_at = now() - interval '1 second'");
    assert_oauth_error(&app.refresh(&client, &r0), 400, "invalid_grant");
}

#[test]
fn refresh_after_the_family_absolute_lifetime_is_invalid_grant() {
    let (app, client) = setup(2);
    let (_, r0) = tokens(&app, &client);
    let (_, r1) = rotate(&app, &client, &r0);
    app.sql_exec("UPDATE token_families SET expires_at = now() - interval '1 second'");
    assert_oauth_error(&app.refresh(&client, &r1), 400, "invalid_grant");
}

#[test]
fn rotation_never_extends_the_family_absolute_lifetime() {
    let (app, client) = setup(2);
    let (_, r0) = tokens(&app, &client);
    // Less than the idle lifetime (14 days by default) is left.
    app.sql_exec(
        "UPDATE token_families SET expires_at = now() + interval '1 hour';
         UPDATE refresh_tokens SET expires_at = now() + interval '1 hour';",
    );
    let (_, r1) = rotate(&app, &client, &r0);
    rotate(&app, &client, &r1);
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM refresh_tokens r JOIN token_families f ON f.id = r.family_id
             WHERE r.expires_at > f.expires_at"
        ),
        0,
        "a successor may not outlive its family"
    );
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM token_families WHERE expires_at > now() + interval '1 hour'"
        ),
        0,
        "refreshing must not extend the family"
    );
}

#[test]
fn unknown_or_missing_refresh_token_is_refused() {
    let (app, client) = setup(2);
    assert_oauth_error(
        &app.refresh(&client, "not-a-token-we-issued"),
        400,
        "invalid_grant",
    );
    let reply = app.http().post_form(
        "/token",
        &[("grant_type", "refresh_token"), ("client_id", &client.client_id)],
    );
    assert_oauth_error(&reply, 400, "invalid_request");
}

#[test]
fn refresh_narrows_the_scope_to_the_users_current_roles() {
    let app = spawn_app();
    app.create_user("root", &["admin"]);
    let (client, _) = app.create_client(ClientRegistration {
        name: "Admin console".into(),
        redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
        scopes: vec!["profile".into(), "admin".into()],
        first_party: true,
        ..Default::default()
    });
    let t = app.code_flow(&client, "root", &[("scope", "profile admin")]);
    assert_eq!(t["scope"], "profile admin");

    app.sql_exec("UPDATE users SET roles = '{user}' WHERE username = 'root'");
    let reply = app.refresh(&client, str_at(&t, "refresh_token"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let body = reply.json();
    assert_eq!(body["scope"], "profile");
    let claims = jwt_claims(str_at(&body, "access_token"));
    assert_eq!(claims["scope"], "profile");
    assert_eq!(claims["roles"], serde_json::json!(["user"]));
}

#[test]
fn refresh_asking_for_a_scope_name_never_granted_is_invalid_scope() {
    let (app, client) = setup(2);
    let t = app.code_flow(&client, "alice", &[("scope", "profile")]);
    let r0 = str_at(&t, "refresh_token");
    let reply = app.refresh_with(&client, r0, &[("scope", "profile email")]);
    assert_oauth_error(&reply, 400, "invalid_scope");
}
