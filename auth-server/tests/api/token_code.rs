//! The `authorization_code` grant at the token endpoint (issue 3; RFC 6749
//! sections 4.1.3 and 5, RFC 7636 section 4.6, OAuth 2.1 section 4.1.3).

use std::time::Duration;

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;

use crate::helpers::*;

/// A third-party confidential web app.
fn web_client(app: &TestApp) -> (Client, String) {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Notes Exporter".into(),
        confidential: true,
        redirect_uris: vec!["https://exporter.example/cb".into()],
        ..Default::default()
    });
    (client, secret.expect("secret"))
}

/// A user, the SPA, and a code for it: `(app, client, code, verifier)`.
fn spa_with_code() -> (TestApp, Client, String, String) {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (code, verifier) = app.obtain_code(&mut app.browser(), &client, "alice", &[]);
    (app, client, code, verifier)
}

/// A second SPA with the same redirect URI as the first.
fn other_spa(app: &TestApp) -> Client {
    app.create_client(ClientRegistration {
        name: "Other SPA".into(),
        redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
        first_party: true,
        ..Default::default()
    })
    .0
}

fn families(app: &TestApp) -> i64 {
    app.sql_count("SELECT count(*) AS n FROM token_families")
}

/// A token request for `code` with exactly these fields.
fn post_token(app: &TestApp, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Reply {
    app.http().post_form_with("/token", fields, headers)
}

#[test]
fn code_exchange_answers_with_bearer_tokens_that_must_not_be_cached() {
    let (app, client, code, verifier) = spa_with_code();
    let reply = app.redeem_code(&client, None, &code, &verifier);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("pragma"), Some("no-cache"));
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let tokens = reply.json();
    assert_eq!(tokens["token_type"], "Bearer");
    assert_eq!(tokens["expires_in"], 600);
    assert_eq!(tokens["scope"], "profile notes:read notes:write");
    assert_eq!(tokens["access_token"].as_str().unwrap().split('.').count(), 3);
    assert_eq!(tokens["refresh_token"].as_str().unwrap().len(), 43);
}

#[test]
fn reused_code_is_rejected_with_invalid_grant_and_its_tokens_revoked() {
    let (app, client, code, verifier) = spa_with_code();
    let introspector = app.introspector();
    let first = app.redeem_code(&client, None, &code, &verifier);
    assert_eq!(first.status, 200, "{}", first.body);
    let tokens = first.json();
    let access = tokens["access_token"].as_str().unwrap();
    let refresh = tokens["refresh_token"].as_str().unwrap();
    assert_eq!(app.introspect(&introspector, access)["active"], true);

    let second = app.redeem_code(&client, None, &code, &verifier);
    assert_oauth_error(&second, 400, "invalid_grant");

    assert_oauth_error(&app.refresh(&client, refresh), 400, "invalid_grant");
    assert_eq!(app.introspect(&introspector, access), inactive());
    assert_eq!(app.introspect(&introspector, refresh), inactive());
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NOT NULL"),
        1
    );
}

#[test]
fn expired_code_is_rejected_with_invalid_grant() {
    let (app, client, code, verifier) = spa_with_code();
    // Codes are short-lived (RFC 9700 section 4.2.1).
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM authorization_codes \
             WHERE expires_at - created_at <= interval '60 seconds'"
        ),
        1
    );
    app.sql_exec("UPDATE authorization_codes SET expires_at = now() - interval '1 second'");
    let reply = app.redeem_code(&client, None, &code, &verifier);
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(families(&app), 0);
}

#[test]
fn wrong_code_verifier_is_rejected_with_invalid_grant() {
    let (app, client, code, _) = spa_with_code();
    let (other_verifier, _) = pkce();
    let reply = app.redeem_code(&client, None, &code, &other_verifier);
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(families(&app), 0);
}

#[test]
fn missing_code_verifier_is_rejected_with_invalid_grant() {
    let (app, client, code, _) = spa_with_code();
    let reply = post_token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", &client.client_id),
        ],
        &[],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(families(&app), 0);
}

#[test]
fn malformed_code_verifiers_are_rejected_with_invalid_grant() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let mut browser = app.browser();
    for (what, mangle) in [
        ("too short", (|v: &str| v[..42].to_owned()) as fn(&str) -> String),
        ("too long", |_: &str| "a".repeat(129)),
        ("trailing space", |v: &str| format!("{v} ")),
        ("not allowed character", |v: &str| format!("{}+", &v[..42])),
    ] {
        let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
        let reply = app.redeem_code(&client, None, &code, &mangle(&verifier));
        assert_oauth_error(&reply, 400, "invalid_grant");
        assert_eq!(families(&app), 0, "{what}");
    }
}

#[test]
fn challenge_sent_back_as_the_verifier_is_rejected_with_invalid_grant() {
    // A client falling back to `plain` sends the challenge itself.
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (_, challenge) = pkce();
    let back = app.authorize(
        &mut app.browser(),
        &authorize_url(&client, &challenge, &[]),
        "alice",
    );
    let code = query_value(&back, "code").unwrap();
    let reply = app.redeem_code(&client, None, &code, &challenge);
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(families(&app), 0);
}

#[test]
fn verifier_for_a_code_without_a_challenge_is_rejected_with_invalid_grant() {
    // The authorization endpoint never issues such a code; should one exist
    // (older data, a bug elsewhere), a verifier must not make it usable.
    let (app, client, code, verifier) = spa_with_code();
    app.sql_exec("UPDATE authorization_codes SET code_challenge = ''");
    let reply = app.redeem_code(&client, None, &code, &verifier);
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(families(&app), 0);
}

#[test]
fn unknown_code_is_invalid_grant_and_a_missing_code_is_invalid_request() {
    let (app, client, _, verifier) = spa_with_code();
    let (unknown, _) = pkce();
    let reply = app.redeem_code(&client, None, &unknown, &verifier);
    assert_oauth_error(&reply, 400, "invalid_grant");
    let reply = post_token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", &client.client_id),
            ("code_verifier", &verifier),
        ],
        &[],
    );
    assert_oauth_error(&reply, 400, "invalid_request");
}

#[test]
fn code_issued_to_another_client_is_rejected_with_invalid_grant() {
    let (app, _, code, verifier) = spa_with_code();
    let other = other_spa(&app);
    let reply = app.redeem_code(&other, None, &code, &verifier);
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(families(&app), 0);
}

/// Issue 10, item 6: the client is checked before the code is consumed,
/// so a client presenting someone else's code cannot burn it.
#[test]
fn wrong_client_gets_invalid_grant_and_the_code_stays_usable() {
    let (app, client, code, verifier) = spa_with_code();
    let other = other_spa(&app);
    let (web, secret) = web_client(&app);
    assert_oauth_error(
        &app.redeem_code(&other, None, &code, &verifier),
        400,
        "invalid_grant",
    );
    assert_oauth_error(
        &app.redeem_code(&web, Some(&secret), &code, &verifier),
        400,
        "invalid_grant",
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM authorization_codes WHERE used_at IS NOT NULL"),
        0
    );
    let mine = app.redeem_code(&client, None, &code, &verifier);
    assert_eq!(mine.status, 200, "{}", mine.body);
    // A second use by the owner is still a replay that revokes the tokens.
    assert_oauth_error(
        &app.redeem_code(&client, None, &code, &verifier),
        400,
        "invalid_grant",
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NULL"),
        0
    );
}

#[test]
fn redirect_uri_that_differs_from_the_authorization_request_is_rejected_with_invalid_grant() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app
        .create_client(ClientRegistration {
            name: "Two callbacks".into(),
            redirect_uris: vec![
                "http://127.0.0.1:5173/callback".into(),
                "http://127.0.0.1:5173/other".into(),
            ],
            first_party: true,
            ..Default::default()
        })
        .0;
    let mut browser = app.browser();
    for presented in [
        Some("http://127.0.0.1:5173/other"),
        Some("http://127.0.0.1:5173/callback/"),
        None,
    ] {
        let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("client_id", client.client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        if let Some(uri) = presented {
            fields.push(("redirect_uri", uri));
        }
        let reply = post_token(&app, &fields, &[]);
        assert_oauth_error(&reply, 400, "invalid_grant");
    }
    assert_eq!(families(&app), 0);
}

#[test]
fn password_and_other_unknown_grant_types_are_unsupported_grant_type() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (web, secret) = web_client(&app);
    let authorization = basic(&web.client_id, &secret);
    for grant_type in [
        "password",
        "implicit",
        "urn:ietf:params:oauth:grant-type:device_code",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let public = post_token(
            &app,
            &[
                ("grant_type", grant_type),
                ("username", "alice"),
                ("password", PASSWORD),
                ("client_id", &client.client_id),
            ],
            &[],
        );
        assert_oauth_error(&public, 400, "unsupported_grant_type");
        let confidential = post_token(
            &app,
            &[
                ("grant_type", grant_type),
                ("username", "alice"),
                ("password", PASSWORD),
            ],
            &[("Authorization", &authorization)],
        );
        assert_oauth_error(&confidential, 400, "unsupported_grant_type");
    }
    let missing = post_token(&app, &[("client_id", &client.client_id)], &[]);
    assert_oauth_error(&missing, 400, "invalid_request");
    assert_eq!(families(&app), 0);
}

#[test]
fn confidential_client_authenticates_with_basic_and_with_client_secret_post() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, secret) = web_client(&app);
    let mut browser = app.browser();

    let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
    let reply = app.redeem_code(&client, Some(&secret), &code, &verifier);
    assert_eq!(reply.status, 200, "Basic: {}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));

    let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
    let reply = post_token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("code_verifier", &verifier),
            ("client_id", &client.client_id),
            ("client_secret", &secret),
        ],
        &[],
    );
    assert_eq!(reply.status, 200, "client_secret_post: {}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(families(&app), 2);
}

#[test]
fn basic_and_client_secret_post_together_are_refused_with_invalid_request() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, secret) = web_client(&app);
    let (code, verifier) = app.obtain_code(&mut app.browser(), &client, "alice", &[]);
    let authorization = basic(&client.client_id, &secret);
    let reply = post_token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("code_verifier", &verifier),
            ("client_id", &client.client_id),
            ("client_secret", &secret),
        ],
        &[("Authorization", &authorization)],
    );
    assert_oauth_error(&reply, 400, "invalid_request");
    assert_eq!(families(&app), 0);
}

#[test]
fn failed_client_authentication_is_401_invalid_client_with_www_authenticate_for_basic() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let (client, secret) = web_client(&app);
    let (code, verifier) = app.obtain_code(&mut app.browser(), &client, "alice", &[]);
    let fields = |extra: &[(&'static str, String)]| -> Vec<(String, String)> {
        let mut all = vec![
            ("grant_type".to_owned(), "authorization_code".to_owned()),
            ("code".to_owned(), code.clone()),
            (
                "redirect_uri".to_owned(),
                client.redirect_uris[0].as_str().to_owned(),
            ),
            ("code_verifier".to_owned(), verifier.clone()),
        ];
        all.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
        all
    };
    let send = |fields: Vec<(String, String)>, authorization: Option<String>| {
        let pairs: Vec<(&str, &str)> = fields.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let headers: Vec<(&str, &str)> = authorization
            .as_deref()
            .map(|a| vec![("Authorization", a)])
            .unwrap_or_default();
        post_token(&app, &pairs, &headers)
    };
    let wrong = format!("{}x", &secret[..42]);

    let basic_wrong = send(fields(&[]), Some(basic(&client.client_id, &wrong)));
    assert_oauth_error(&basic_wrong, 401, "invalid_client");
    assert!(
        basic_wrong
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic")),
        "{:?}",
        basic_wrong.headers
    );
    let basic_unknown = send(fields(&[]), Some(basic("no-such-client", &secret)));
    assert_oauth_error(&basic_unknown, 401, "invalid_client");
    assert!(
        basic_unknown
            .header("www-authenticate")
            .is_some_and(|h| h.starts_with("Basic"))
    );
    let not_basic = send(fields(&[]), Some(format!("Bearer {secret}")));
    assert_oauth_error(&not_basic, 401, "invalid_client");

    let post_wrong = send(
        fields(&[
            ("client_id", client.client_id.clone()),
            ("client_secret", wrong.clone()),
        ]),
        None,
    );
    assert_oauth_error(&post_wrong, 401, "invalid_client");
    let no_secret = send(fields(&[("client_id", client.client_id.clone())]), None);
    assert_oauth_error(&no_secret, 401, "invalid_client");
    let nobody = send(fields(&[]), None);
    assert_oauth_error(&nobody, 401, "invalid_client");
    assert_eq!(families(&app), 0);
}

#[test]
fn public_client_presenting_a_secret_is_refused_with_invalid_client() {
    let (app, client, code, verifier) = spa_with_code();
    let reply = post_token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("code_verifier", &verifier),
            ("client_id", &client.client_id),
            ("client_secret", "made-up"),
        ],
        &[],
    );
    assert_oauth_error(&reply, 401, "invalid_client");
    assert_eq!(families(&app), 0);
}

#[test]
fn repeated_token_request_parameters_are_refused_with_invalid_request() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let mut browser = app.browser();
    for repeated in ["code", "code_verifier", "redirect_uri", "grant_type", "client_id"] {
        let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", client.client_id.as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let again = *fields.iter().find(|(k, _)| *k == repeated).unwrap();
        fields.push(again);
        let reply = post_token(&app, &fields, &[]);
        assert_oauth_error(&reply, 400, "invalid_request");
    }
    assert_eq!(families(&app), 0);
}

#[test]
fn token_request_that_is_not_a_form_is_refused_with_invalid_request() {
    let (app, client, code, verifier) = spa_with_code();
    let body = serde_json::json!({
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": client.redirect_uris[0].as_str(),
        "client_id": client.client_id,
        "code_verifier": verifier,
    });
    let reply = app
        .http()
        .post_raw("/token", "application/json", &body.to_string(), &[]);
    assert_eq!(reply.status, 400, "{}", reply.body);
    assert_eq!(reply.json()["error"], "invalid_request");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(families(&app), 0);
}

#[test]
fn client_without_the_refresh_grant_gets_no_refresh_token() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app
        .create_client(ClientRegistration {
            name: "No refresh".into(),
            redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
            grant_types: vec!["authorization_code".into()],
            first_party: true,
            ..Default::default()
        })
        .0;
    let (code, verifier) = app.obtain_code(&mut app.browser(), &client, "alice", &[]);
    let reply = app.redeem_code(&client, None, &code, &verifier);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let tokens = reply.json();
    assert!(tokens["access_token"].is_string());
    assert!(tokens.get("refresh_token").is_none(), "{tokens}");
}

#[test]
fn concurrent_exchanges_of_one_code_succeed_once_and_the_replays_revoke_the_tokens() {
    let (app, client, code, verifier) = spa_with_code();
    let base = app.base.clone();
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..6)
            .map(|_| {
                let (base, client, code, verifier) = (&base, &client, &code, &verifier);
                scope.spawn(move || redeem_code_at(base, client, None, code, verifier))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let granted = replies.iter().filter(|r| r.status == 200).count();
    assert_eq!(granted, 1, "one code gave {granted} token responses");
    for reply in replies.iter().filter(|r| r.status != 200) {
        assert_oauth_error(reply, 400, "invalid_grant");
    }
    // The other attempts were replays: what the winner got is revoked.
    assert_eq!(families(&app), 1);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NOT NULL"),
        1
    );
}

#[test]
fn code_replayed_while_its_first_exchange_is_in_flight_still_revokes_the_tokens() {
    use diesel::connection::SimpleConnection as _;
    let (app, client, code, verifier) = spa_with_code();
    // Warm the client cache so the exchanges only touch the grant tables.
    let (unknown, _) = pkce();
    assert_oauth_error(
        &app.redeem_code(&client, None, &unknown, &verifier),
        400,
        "invalid_grant",
    );
    let waiting_on_locks = || {
        app.sql_count(
            "SELECT count(*) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event_type = 'Lock'",
        )
    };
    // Hold the first exchange after it has taken the code (it reads the
    // user next), and replay the code meanwhile.
    let mut locker = app.db.connect();
    locker
        .batch_execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let (first, replay) = std::thread::scope(|scope| {
        let first = scope.spawn(|| app.redeem_code(&client, None, &code, &verifier));
        let held = eventually(Duration::from_secs(10), || {
            (waiting_on_locks() >= 1).then_some(())
        });
        let replay = scope.spawn(|| app.redeem_code(&client, None, &code, &verifier));
        if held.is_some() {
            // The replay either finishes or waits for the first exchange.
            eventually(Duration::from_secs(5), || {
                (replay.is_finished() || waiting_on_locks() >= 2).then_some(())
            });
        }
        locker.batch_execute("COMMIT").unwrap();
        (first.join().unwrap(), replay.join().unwrap())
    });
    assert_eq!(first.status, 200, "{}", first.body);
    assert_oauth_error(&replay, 400, "invalid_grant");
    let refresh = first.json()["refresh_token"].as_str().unwrap().to_owned();
    assert_oauth_error(&app.refresh(&client, &refresh), 400, "invalid_grant");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NOT NULL"),
        1
    );
}

#[test]

fn oversized_token_request_is_refused_with_a_json_error() {
    let (app, client, code, verifier) = spa_with_code();
    let padding = "a".repeat(20 * 1024);
    let reply = post_token(
        &app,
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", &client.client_id),
            ("code_verifier", &verifier),
            ("padding", &padding),
        ],
        &[],
    );
    assert!(matches!(reply.status, 400 | 413), "{}", reply.status);
    assert_eq!(reply.json()["error"], "invalid_request", "{}", reply.body);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
}
