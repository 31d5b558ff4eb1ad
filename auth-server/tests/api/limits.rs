//! Failure limits per client address and per client, shared by every
//! instance, and the client address behind a trusted proxy (issue 10,
//! item 4).

use auth_server::registration::ClientRegistration;

use crate::helpers::*;

const WRONG: &str = "wrong password, wrong password";
const LIMITED: &str = "Too many failed sign-ins from your network";

/// A server whose address limit is `ip` failures a minute.
fn app_with(ip: u32, customize: impl FnOnce(&mut std::collections::HashMap<String, String>)) -> TestApp {
    spawn_app_with(|env| {
        env.insert("AUTH_IP_FAILURE_LIMIT".into(), ip.to_string());
        env.insert("AUTH_FAILURE_WINDOW".into(), "60".into());
        customize(env);
    })
}

fn sign_in(browser: &mut Browser, username: &str, password: &str, headers: &[(&str, &str)]) -> Reply {
    let page = browser.get("/login");
    let csrf = page.input_value("csrf_token").expect("csrf token");
    browser.post_form_with(
        "/login",
        &[
            ("username", username),
            ("password", password),
            ("csrf_token", &csrf),
        ],
        headers,
    )
}

fn assert_limited_page(reply: &Reply) {
    assert_eq!(reply.status, 429, "{}", reply.body);
    assert!(reply.body.contains(LIMITED), "{}", reply.body);
    let retry: u64 = reply
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no Retry-After: {:?}", reply.headers));
    assert!((1..=60).contains(&retry), "{retry}");
}

#[test]
fn login_failures_from_one_ip_are_limited_across_accounts() {
    let app = app_with(5, |_| {});
    app.create_user("alice", &["user"]);
    let mut browser = app.browser();
    // Five accounts, one wrong password each: no account throttle is near,
    // but the address has spent its allowance.
    for name in ["u1", "u2", "u3", "u4", "alice"] {
        let reply = sign_in(&mut browser, name, WRONG, &[]);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    // Even the right password is now refused, before it is checked.
    let checked_before = app.state.metrics.event_count("login_failed");
    assert_limited_page(&sign_in(&mut browser, "alice", PASSWORD, &[]));
    assert_eq!(app.state.metrics.event_count("login_failed"), checked_before);
    assert!(!browser.cookies.contains_key("session"));
    // A second instance on the same database is not a second allowance:
    // its first look at the shared state refuses.
    let peer = start_instance(&peer_env(&app)).expect("second instance");
    assert_limited_page(&sign_in(&mut peer.browser(), "alice", PASSWORD, &[]));
    assert_eq!(peer.state.metrics.event_count("login_failed"), 0);
}

#[test]
fn forged_forwarded_for_from_untrusted_peer_is_ignored() {
    // No trusted proxies: X-Forwarded-For is whatever the client wrote.
    let app = app_with(3, |_| {});
    let mut browser = app.browser();
    for i in 0..3 {
        let forged = format!("198.51.100.{i}");
        let reply = sign_in(&mut browser, "nobody", WRONG, &[("X-Forwarded-For", &forged)]);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    let reply = sign_in(
        &mut browser,
        "nobody",
        WRONG,
        &[("X-Forwarded-For", "198.51.100.99")],
    );
    assert_limited_page(&reply);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM rate_limits WHERE key = 'ip:127.0.0.1'"),
        1
    );
}

#[test]
fn trusted_proxy_forwarded_for_names_the_client() {
    let app = app_with(3, |env| {
        env.insert("AUTH_TRUSTED_PROXIES".into(), "127.0.0.1/32".into());
    });
    app.create_user("alice", &["user"]);
    let attacker = [("X-Forwarded-For", "203.0.113.5")];
    for _ in 0..3 {
        assert_eq!(
            sign_in(&mut app.browser(), "nobody", WRONG, &attacker).status,
            200
        );
    }
    assert_limited_page(&sign_in(&mut app.browser(), "nobody", WRONG, &attacker));
    // The attacker cannot hide behind a forged entry of its own: the proxy
    // appended the real address on the right.
    let forged = [("X-Forwarded-For", "192.0.2.44, 203.0.113.5")];
    assert_limited_page(&sign_in(&mut app.browser(), "alice", PASSWORD, &forged));
    // Another client behind the same proxy is not affected.
    let neighbour = [("X-Forwarded-For", "203.0.113.6")];
    assert_eq!(
        sign_in(&mut app.browser(), "alice", PASSWORD, &neighbour).status,
        303
    );
}

/// A confidential machine client: (client_id, secret).
fn machine(app: &TestApp) -> (String, String) {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Batch".into(),
        confidential: true,
        ..Default::default()
    });
    (client.client_id, secret.expect("secret"))
}

fn client_credentials(app: &TestApp, id: &str, secret: &str, headers: &[(&str, &str)]) -> Reply {
    let authorization = basic(id, secret);
    let mut all = vec![("Authorization", authorization.as_str())];
    all.extend_from_slice(headers);
    app.http()
        .post_form_with("/token", &[("grant_type", "client_credentials")], &all)
}

fn assert_slow_down(reply: &Reply) {
    assert_oauth_error(reply, 429, "slow_down");
    assert!(
        reply
            .header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| (1..=60).contains(&s)),
        "{:?}",
        reply.headers
    );
}

#[test]
fn token_endpoint_failures_are_limited_per_ip() {
    let app = app_with(3, |env| {
        env.insert("AUTH_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    });
    let (id, secret) = machine(&app);
    let from = [("X-Forwarded-For", "203.0.113.7")];
    for _ in 0..3 {
        assert_oauth_error(
            &client_credentials(&app, &id, "wrong", &from),
            401,
            "invalid_client",
        );
    }
    // Refused before the secret is checked, even the right one.
    assert_slow_down(&client_credentials(&app, &id, &secret, &from));
    // Introspection and revocation share the limit.
    let revoke = app.http().post_form_with(
        "/revoke",
        &[("token", "x")],
        &[("Authorization", &basic(&id, &secret)), from[0]],
    );
    assert_slow_down(&revoke);
    // Another address is fine.
    let other = [("X-Forwarded-For", "203.0.113.8")];
    assert_eq!(client_credentials(&app, &id, &secret, &other).status, 200);
}

#[test]
fn invalid_grant_counts_against_the_address() {
    let app = app_with(3, |_| {});
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    for _ in 0..3 {
        assert_oauth_error(&app.refresh(&client, "not-a-refresh-token"), 400, "invalid_grant");
    }
    assert_slow_down(&app.refresh(&client, "not-a-refresh-token"));
}

#[test]
fn failures_for_one_client_from_many_addresses_are_limited_per_client() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_CLIENT_FAILURE_LIMIT".into(), "3".into());
        env.insert("AUTH_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    });
    let (id, secret) = machine(&app);
    let (other_id, other_secret) = machine(&app);
    for i in 0..3 {
        let from = format!("198.51.100.{i}");
        let reply = client_credentials(&app, &id, "wrong", &[("X-Forwarded-For", &from)]);
        assert_oauth_error(&reply, 401, "invalid_client");
    }
    let fresh = [("X-Forwarded-For", "198.51.100.200")];
    assert_slow_down(&client_credentials(&app, &id, &secret, &fresh));
    assert_eq!(
        client_credentials(&app, &other_id, &other_secret, &fresh).status,
        200
    );
}

/// Bad refresh tokens name a public client but prove nothing about it:
/// they count against the address only, so nobody can spend a public
/// client's allowance (and its own users' expired tokens cannot either).
#[test]
fn invalid_grants_do_not_spend_a_public_clients_allowance() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_CLIENT_FAILURE_LIMIT".into(), "3".into());
        env.insert("AUTH_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    });
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    for i in 0..10 {
        let from = format!("198.51.100.{i}");
        let reply = app.http().post_form_with(
            "/token",
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", "stolen-or-expired"),
                ("client_id", client.client_id.as_str()),
            ],
            &[("X-Forwarded-For", &from)],
        );
        assert_oauth_error(&reply, 400, "invalid_grant");
    }
    let tokens = app.code_flow(&client, "alice", &[]);
    assert_eq!(app.refresh(&client, str_at(&tokens, "refresh_token")).status, 200);
}

/// A burst of parallel guesses from one address cannot all pass the
/// limit's look before the first of them is counted.
#[test]
fn a_parallel_burst_from_one_address_is_bounded() {
    let app = app_with(5, |_| {});
    let mut forms: Vec<(Browser, String)> = (0..40)
        .map(|_| {
            let mut browser = app.browser();
            let csrf = browser.get("/login").input_value("csrf_token").expect("csrf");
            (browser, csrf)
        })
        .collect();
    let barrier = std::sync::Barrier::new(40);
    let statuses: Vec<u16> = std::thread::scope(|s| {
        let handles: Vec<_> = forms
            .iter_mut()
            .enumerate()
            .map(|(i, (browser, csrf))| {
                let barrier = &barrier;
                s.spawn(move || {
                    barrier.wait();
                    let user = format!("user{i}");
                    browser
                        .post_form(
                            "/login",
                            &[("username", &user), ("password", WRONG), ("csrf_token", csrf)],
                        )
                        .status
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let checked = app.state.metrics.event_count("login_failed");
    let bound = 5 + auth_server::limits::MAX_CHECKS_PER_ADDRESS as u64;
    assert!(
        checked <= bound,
        "{checked} checks for a limit of 5: {statuses:?}"
    );
    assert!(statuses.iter().filter(|s| **s == 429).count() >= 40 - bound as usize);
}

#[test]
fn successful_token_requests_are_not_limited() {
    let app = app_with(3, |_| {});
    let (id, secret) = machine(&app);
    for _ in 0..200 {
        let reply = client_credentials(&app, &id, &secret, &[]);
        assert_eq!(reply.status, 200, "{}", reply.body);
    }
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM rate_limits"), 0);
}

#[test]
fn the_optional_request_rate_limits_successful_traffic_too() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_REQUEST_RATE_PER_IP".into(), "5".into());
    });
    let (id, secret) = machine(&app);
    let statuses: Vec<u16> = (0..20)
        .map(|_| client_credentials(&app, &id, &secret, &[]).status)
        .collect();
    assert!(statuses.contains(&200), "{statuses:?}");
    assert!(statuses.contains(&429), "{statuses:?}");
}
