//! Logout (confirmation form, CSRF, revocation of the session's token
//! families, post-logout redirect) and the cleanup of expired rows.

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;
use auth_server::storage::cleanup::{Lifetimes, Sweep, sweep_batch};
use chrono::Utc;

use crate::helpers::*;

const SIGNED_OUT_URI: &str = "http://127.0.0.1:5173/signed-out";

fn setup() -> (TestApp, Client) {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let client = app.create_client(ClientRegistration {
        name: "Test SPA".into(),
        redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
        post_logout_redirect_uris: vec![SIGNED_OUT_URI.into()],
        first_party: true,
        ..Default::default()
    });
    (app, client.0)
}

/// Whether `browser` is signed in: an authorization request goes straight
/// back to the client instead of to the login page.
fn signed_in(app: &TestApp, browser: &mut Browser, client: &Client) -> bool {
    let (_, challenge) = pkce();
    let reply = browser.get(&authorize_url(client, &challenge, &[]));
    assert_eq!(reply.status, 302, "{}", reply.body);
    let location = reply.location(&app.base).expect("location");
    if location.path() == "/login" {
        return false;
    }
    assert!(
        location.as_str().starts_with(client.redirect_uris[0].as_str()),
        "{location}"
    );
    true
}

/// Opens the confirmation page for `query` and returns its form's action
/// and CSRF token.
fn confirmation(browser: &mut Browser, query: &str) -> (String, String) {
    let page = browser.get(&format!("/logout{query}"));
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<form method=\"post\""), "{}", page.body);
    let csrf = page.input_value("csrf_token").expect("csrf_token");
    let action = page.form_action().expect("form action");
    (action, csrf)
}

fn signed_in_browser(app: &TestApp) -> Browser {
    let mut browser = app.browser();
    app.login(&mut browser, "alice");
    browser
}

#[test]
fn get_logout_shows_a_confirmation_form_and_changes_nothing() {
    let (app, client) = setup();
    let mut browser = signed_in_browser(&app);
    let tokens = app.code_flow_in(&mut browser, &client, None, "alice", &[]);

    let (action, _) = confirmation(&mut browser, "");
    assert_eq!(action, "/logout");

    assert!(signed_in(&app, &mut browser, &client));
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM browser_sessions"), 1);
    let reply = app.refresh(&client, str_at(&tokens, "refresh_token"));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn post_logout_without_the_right_csrf_token_is_forbidden() {
    let (app, client) = setup();
    let mut browser = signed_in_browser(&app);
    let tokens = app.code_flow_in(&mut browser, &client, None, "alice", &[]);

    // A token from another session of the same user is no good either.
    let mut elsewhere = signed_in_browser(&app);
    let (_, foreign) = confirmation(&mut elsewhere, "");

    for fields in [
        vec![],
        vec![("csrf_token", "")],
        vec![("csrf_token", "forged")],
        vec![("csrf_token", foreign.as_str())],
    ] {
        let reply = browser.post_form("/logout", &fields);
        assert_eq!(reply.status, 403, "{fields:?}: {}", reply.body);
        assert!(reply.header("location").is_none());
    }

    assert!(signed_in(&app, &mut browser, &client));
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM browser_sessions"), 2);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NOT NULL"),
        0
    );
    let reply = app.refresh(&client, str_at(&tokens, "refresh_token"));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

#[test]
fn logout_ends_the_session_and_revokes_only_that_sessions_families() {
    let (app, client) = setup();
    let other_client = app.spa_client();
    let introspector = app.introspector();

    let mut browser = signed_in_browser(&app);
    let first = app.code_flow_in(&mut browser, &client, None, "alice", &[]);
    let second = app.code_flow_in(&mut browser, &other_client, None, "alice", &[]);
    // A rotated token is still the same family.
    let rotated = app.refresh(&client, str_at(&first, "refresh_token"));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated = rotated.json();

    let mut phone = signed_in_browser(&app);
    let elsewhere = app.code_flow_in(&mut phone, &client, None, "alice", &[]);
    let session_cookie = browser.cookies.get("session").expect("session cookie").clone();

    let (action, csrf) = confirmation(&mut browser, "");
    let reply = browser.post_form(&action, &[("csrf_token", &csrf)]);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.header("location").is_none());
    assert!(!browser.cookies.contains_key("session"), "cookie is cleared");

    // The session is gone on the server, not just from the browser.
    assert!(!signed_in(&app, &mut browser, &client));
    let mut replayed = app.browser();
    replayed.cookies.insert("session".into(), session_cookie);
    assert!(!signed_in(&app, &mut replayed, &client));

    for (c, token) in [(&client, &rotated), (&other_client, &second)] {
        assert_oauth_error(
            &app.refresh(c, str_at(token, "refresh_token")),
            400,
            "invalid_grant",
        );
    }
    for token in [str_at(&first, "access_token"), str_at(&rotated, "access_token")] {
        assert_eq!(app.introspect(&introspector, token), inactive());
    }

    // Another session of the same user is untouched.
    assert!(signed_in(&app, &mut phone, &client));
    assert_eq!(
        app.introspect(&introspector, str_at(&elsewhere, "access_token"))["active"],
        true
    );
    let reply = app.refresh(&client, str_at(&elsewhere, "refresh_token"));
    assert_eq!(reply.status, 200, "{}", reply.body);
}

/// Signs in, confirms logout with `query`, and returns the POST's reply.
fn logout_with(app: &TestApp, query: &str) -> Reply {
    let mut browser = signed_in_browser(app);
    let (action, csrf) = confirmation(&mut browser, query);
    let reply = browser.post_form(&action, &[("csrf_token", &csrf)]);
    assert!(!browser.cookies.contains_key("session"), "{query}: signed out");
    reply
}

fn query(pairs: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse("http://x/").unwrap();
    url.query_pairs_mut().extend_pairs(pairs);
    format!("?{}", url.query().unwrap())
}

#[test]
fn post_logout_redirect_is_followed_on_an_exact_match_for_the_client() {
    let (app, client) = setup();
    let reply = logout_with(
        &app,
        &query(&[
            ("post_logout_redirect_uri", SIGNED_OUT_URI),
            ("client_id", &client.client_id),
            ("state", "xyz"),
        ]),
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(
        reply.header("location"),
        Some(format!("{SIGNED_OUT_URI}?state=xyz").as_str())
    );

    // A client that registered no post-logout URI may use a redirect URI.
    let plain = app.spa_client();
    let callback = plain.redirect_uris[0].as_str();
    let reply = logout_with(
        &app,
        &query(&[
            ("post_logout_redirect_uri", callback),
            ("client_id", &plain.client_id),
        ]),
    );
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), Some(callback));
}

#[test]
fn post_logout_redirect_without_an_exact_match_shows_a_page() {
    let (app, client) = setup();
    let stranger = app.create_client(ClientRegistration {
        name: "Other SPA".into(),
        redirect_uris: vec!["http://127.0.0.1:5174/callback".into()],
        post_logout_redirect_uris: vec!["http://127.0.0.1:5174/bye".into()],
        first_party: true,
        ..Default::default()
    });
    let id = client.client_id.as_str();
    let cases: Vec<Vec<(&str, &str)>> = vec![
        // Near misses of the registered URI.
        vec![
            ("post_logout_redirect_uri", "http://127.0.0.1:5173/signed-out/"),
            ("client_id", id),
        ],
        vec![
            ("post_logout_redirect_uri", "http://127.0.0.1:5173/Signed-Out"),
            ("client_id", id),
        ],
        vec![
            ("post_logout_redirect_uri", "http://127.0.0.1:5173/signed-out?x=1"),
            ("client_id", id),
        ],
        vec![
            ("post_logout_redirect_uri", "http://localhost:5173/signed-out"),
            ("client_id", id),
        ],
        // Another client's URI.
        vec![
            ("post_logout_redirect_uri", "http://127.0.0.1:5174/bye"),
            ("client_id", id),
        ],
        // The client's redirect URI once it registered post-logout URIs.
        vec![
            ("post_logout_redirect_uri", "http://127.0.0.1:5173/callback"),
            ("client_id", id),
        ],
        // No client, or an unknown one.
        vec![("post_logout_redirect_uri", SIGNED_OUT_URI)],
        vec![
            ("post_logout_redirect_uri", SIGNED_OUT_URI),
            ("client_id", "nobody"),
        ],
        vec![
            ("post_logout_redirect_uri", SIGNED_OUT_URI),
            ("client_id", &stranger.0.client_id),
        ],
    ];
    for case in cases {
        let reply = logout_with(&app, &query(&case));
        assert_eq!(reply.status, 200, "{case:?}: {}", reply.body);
        assert!(reply.header("location").is_none(), "{case:?}");
    }
}

// ---------------------------------------------------------------------------
// Cleanup

const BATCH: i64 = 7;

/// SQL for the hashes of `n` rows labelled `label`.
fn hashes(label: &str, n: u32) -> String {
    format!("(SELECT sha256(('{label}-' || g)::bytea) FROM generate_series(1, {n}) g)")
}

fn ids(label: &str, n: u32) -> String {
    format!("(SELECT md5('{label}-' || g)::uuid FROM generate_series(1, {n}) g)")
}

/// Fills every table cleanup looks at with expired rows and live ones.
fn seed(app: &TestApp, client: &Client) {
    let cid = &client.client_id;
    let user = "(SELECT id FROM users LIMIT 1)";
    let code = |label: &str, n: u32, expires: &str| {
        format!(
            "INSERT INTO authorization_codes (code_hash, client_id, user_id, redirect_uri,
               redirect_uri_given, scopes, code_challenge, family_id, created_at, expires_at)
             SELECT sha256(('{label}-' || g)::bytea), '{cid}', {user}, 'http://127.0.0.1:5173/callback',
               true, '{{profile}}', 'challenge', gen_random_uuid(), now() - interval '3 hours', {expires}
             FROM generate_series(1, {n}) g;"
        )
    };
    let session = |label: &str, n: u32, last_seen: &str, expires: &str| {
        format!(
            "INSERT INTO browser_sessions (id_hash, user_id, created_at, last_seen_at, expires_at)
             SELECT sha256(('{label}-' || g)::bytea), {user}, now() - interval '5 hours', {last_seen}, {expires}
             FROM generate_series(1, {n}) g;"
        )
    };
    let family = |label: &str, n: u32, created: &str, expires: &str, revoked: &str| {
        format!(
            "INSERT INTO token_families (id, client_id, user_id, scopes, created_at, expires_at, revoked_at)
             SELECT md5('{label}-' || g)::uuid, '{cid}', {user}, '{{profile}}', {created}, {expires}, {revoked}
             FROM generate_series(1, {n}) g;"
        )
    };
    // `n` tokens spread over the families labelled `families` (of `f` rows).
    let tokens = |label: &str, n: u32, families: &str, f: u32, expires: &str, used: &str, grace: &str| {
        format!(
            "INSERT INTO refresh_tokens (token_hash, family_id, client_id, created_at, expires_at,
               used_at, successor_sealed, grace_until)
             SELECT sha256(('{label}-' || g)::bytea), md5('{families}-' || (1 + g % {f}))::uuid, '{cid}',
               now() - interval '2 hours', {expires}, {used},
               CASE WHEN {used} IS NULL THEN NULL ELSE 'sealed'::bytea END, {grace}
             FROM generate_series(1, {n}) g;"
        )
    };
    let revoked_jti = |label: &str, n: u32, expires: &str| {
        format!(
            "INSERT INTO revoked_access_tokens (jti, expires_at)
             SELECT md5('{label}-' || g)::uuid, {expires} FROM generate_series(1, {n}) g;"
        )
    };
    let null = "NULL::timestamptz";
    let sql = [
        code("code-old", 20, "now() - interval '2 hours'"),
        // Recently expired codes are kept a while to recognise replays.
        code("code-recent", 3, "now() - interval '5 minutes'"),
        code("code-live", 3, "now() + interval '1 minute'"),
        session("session-expired", 15, "now()", "now() - interval '1 minute'"),
        session(
            "session-idle",
            5,
            "now() - interval '2 hours'",
            "now() + interval '7 hours'",
        ),
        session("session-live", 3, "now()", "now() + interval '7 hours'"),
        family(
            "family-expired",
            10,
            "now() - interval '31 days'",
            "now() - interval '1 minute'",
            null,
        ),
        family(
            "family-expired-empty",
            9,
            "now() - interval '31 days'",
            "now() - interval '1 minute'",
            null,
        ),
        family(
            "family-revoked",
            8,
            "now() - interval '2 days'",
            "now() + interval '28 days'",
            "now() - interval '1 hour'",
        ),
        family(
            "family-live",
            3,
            "now() - interval '1 day'",
            "now() + interval '29 days'",
            null,
        ),
        tokens(
            "rt-of-expired-family",
            20,
            "family-expired",
            10,
            "now() + interval '1 day'",
            null,
            null,
        ),
        tokens(
            "rt-of-revoked-family",
            16,
            "family-revoked",
            8,
            "now() + interval '1 day'",
            null,
            null,
        ),
        tokens(
            "rt-idle-expired",
            12,
            "family-live",
            3,
            "now() - interval '1 minute'",
            "now() - interval '1 day'",
            "now() - interval '1 day'",
        ),
        tokens(
            "rt-live",
            3,
            "family-live",
            3,
            "now() + interval '14 days'",
            null,
            null,
        ),
        // Spent but still inside their idle lifetime: kept, so a reuse is
        // recognised; their sealed successor goes once the window is over.
        tokens(
            "rt-spent",
            9,
            "family-live",
            3,
            "now() + interval '13 days'",
            "now() - interval '1 hour'",
            "now() - interval '1 hour'",
        ),
        tokens(
            "rt-in-grace",
            1,
            "family-live",
            3,
            "now() + interval '14 days'",
            "now()",
            "now() + interval '1 minute'",
        ),
        revoked_jti("jti-expired", 25, "now() - interval '1 minute'"),
        revoked_jti("jti-live", 3, "now() + interval '5 minutes'"),
    ]
    .join("\n");
    app.sql_exec(&sql);
}

fn count_where(app: &TestApp, table: &str, column: &str, rows: &str) -> i64 {
    app.sql_count(&format!(
        "SELECT count(*) AS n FROM {table} WHERE {column} IN {rows}"
    ))
}

fn codes(app: &TestApp, label: &str, n: u32) -> i64 {
    count_where(app, "authorization_codes", "code_hash", &hashes(label, n))
}
fn sessions(app: &TestApp, label: &str, n: u32) -> i64 {
    count_where(app, "browser_sessions", "id_hash", &hashes(label, n))
}
fn refresh_rows(app: &TestApp, label: &str, n: u32) -> i64 {
    count_where(app, "refresh_tokens", "token_hash", &hashes(label, n))
}
fn families(app: &TestApp, label: &str, n: u32) -> i64 {
    count_where(app, "token_families", "id", &ids(label, n))
}
fn jtis(app: &TestApp, label: &str, n: u32) -> i64 {
    count_where(app, "revoked_access_tokens", "jti", &ids(label, n))
}
fn sealed(app: &TestApp) -> i64 {
    app.sql_count("SELECT count(*) AS n FROM refresh_tokens WHERE successor_sealed IS NOT NULL")
}

fn assert_only_live_rows_left(app: &TestApp) {
    assert_eq!(codes(app, "code-old", 20), 0);
    assert_eq!(codes(app, "code-recent", 3), 3);
    assert_eq!(codes(app, "code-live", 3), 3);
    assert_eq!(sessions(app, "session-expired", 15), 0);
    assert_eq!(sessions(app, "session-idle", 5), 0);
    assert_eq!(sessions(app, "session-live", 3), 3);
    assert_eq!(refresh_rows(app, "rt-of-expired-family", 20), 0);
    assert_eq!(refresh_rows(app, "rt-of-revoked-family", 16), 0);
    assert_eq!(refresh_rows(app, "rt-idle-expired", 12), 0);
    assert_eq!(refresh_rows(app, "rt-live", 3), 3);
    assert_eq!(refresh_rows(app, "rt-spent", 9), 9);
    assert_eq!(refresh_rows(app, "rt-in-grace", 1), 1);
    assert_eq!(sealed(app), 1, "only the pair inside its window is kept");
    assert_eq!(families(app, "family-expired", 10), 0);
    assert_eq!(families(app, "family-expired-empty", 9), 0);
    assert_eq!(families(app, "family-revoked", 8), 0);
    assert_eq!(families(app, "family-live", 3), 3);
    assert_eq!(jtis(app, "jti-expired", 25), 0);
    assert_eq!(jtis(app, "jti-live", 3), 3);
}

fn lifetimes(app: &TestApp) -> Lifetimes {
    Lifetimes {
        session_idle: app.state.settings.session_idle_ttl,
        access_token: app.state.settings.access_token_ttl,
    }
}

#[test]
fn one_cleanup_statement_touches_at_most_one_batch() {
    let (app, client) = setup();
    seed(&app, &client);
    let mut conn = app.db.connect();
    let mut once = |sweep: Sweep| sweep_batch(&mut conn, sweep, Utc::now(), BATCH, lifetimes(&app)).unwrap();

    assert_eq!(once(Sweep::Codes), 7);
    assert_eq!(codes(&app, "code-old", 20), 13);
    assert_eq!(once(Sweep::Sessions), 7);
    assert_eq!(
        sessions(&app, "session-expired", 15) + sessions(&app, "session-idle", 5),
        13
    );
    assert_eq!(once(Sweep::GracePairs), 7);
    assert_eq!(sealed(&app), 9 + 12 + 1 - 7);
    assert_eq!(once(Sweep::RefreshTokens), 7);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM refresh_tokens"),
        20 + 16 + 12 + 3 + 9 + 1 - 7
    );
    assert_eq!(once(Sweep::Families), 7);
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families"),
        10 + 9 + 8 + 3 - 7
    );
    assert_eq!(once(Sweep::RevokedAccessTokens), 7);
    assert_eq!(jtis(&app, "jti-expired", 25), 18);

    // Nothing live was touched.
    assert_eq!(codes(&app, "code-live", 3) + codes(&app, "code-recent", 3), 6);
    assert_eq!(sessions(&app, "session-live", 3), 3);
    assert_eq!(refresh_rows(&app, "rt-live", 3), 3);
    assert_eq!(refresh_rows(&app, "rt-spent", 9), 9);
    assert_eq!(families(&app, "family-live", 3), 3);
    assert_eq!(jtis(&app, "jti-live", 3), 3);
}

#[test]
fn cleanup_deletes_expired_rows_in_batches_and_leaves_live_ones() {
    let (app, client) = setup();
    seed(&app, &client);
    let report = actix_web::rt::System::new().block_on(auth_server::background::cleanup(&app.state, BATCH));

    let total = |sweep: Sweep| report.iter().find(|(s, _)| *s == sweep).map(|(_, n)| *n).unwrap();
    assert_eq!(total(Sweep::Codes), 20);
    assert_eq!(total(Sweep::Sessions), 20);
    assert_eq!(total(Sweep::GracePairs), 9 + 12);
    assert_eq!(total(Sweep::RefreshTokens), 20 + 16 + 12);
    assert_eq!(total(Sweep::Families), 10 + 9 + 8);
    assert_eq!(total(Sweep::RevokedAccessTokens), 25);
    assert_only_live_rows_left(&app);
}

#[test]
fn cleanup_can_run_on_several_instances_at_once() {
    let (app, client) = setup();
    seed(&app, &client);
    std::thread::scope(|s| {
        let runs: Vec<_> = (0..3)
            .map(|_| {
                s.spawn(|| {
                    actix_web::rt::System::new().block_on(auth_server::background::cleanup(&app.state, BATCH))
                })
            })
            .collect();
        for run in runs {
            run.join().unwrap();
        }
    });
    assert_only_live_rows_left(&app);
}

#[test]
fn cleanup_leaves_a_real_sign_in_working() {
    let (app, client) = setup();
    let introspector = app.introspector();
    let mut browser = signed_in_browser(&app);
    let tokens = app.code_flow_in(&mut browser, &client, None, "alice", &[]);
    let rotated = app.refresh(&client, str_at(&tokens, "refresh_token"));
    assert_eq!(rotated.status, 200, "{}", rotated.body);
    let rotated = rotated.json();
    seed(&app, &client);

    actix_web::rt::System::new().block_on(auth_server::background::cleanup(&app.state, BATCH));

    assert!(signed_in(&app, &mut browser, &client));
    assert_eq!(
        app.introspect(&introspector, str_at(&rotated, "access_token"))["active"],
        true
    );
    let reply = app.refresh(&client, str_at(&rotated, "refresh_token"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    // The spent token is still recognised as a reuse after cleanup.
    app.sql_exec(
        "UPDATE refresh_tokens SET grace_until = now() - interval '1 second' WHERE grace_until IS NOT NULL",
    );
    assert_oauth_error(
        &app.refresh(&client, str_at(&tokens, "refresh_token")),
        400,
        "invalid_grant",
    );
    assert_oauth_error(
        &app.refresh(&client, str_at(&reply.json(), "refresh_token")),
        400,
        "invalid_grant",
    );
}

#[test]
fn the_server_cleans_up_on_its_own() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_CLEANUP_INTERVAL".into(), "1".into());
        env.insert("AUTH_KEY_RELOAD_INTERVAL".into(), "1".into());
    });
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    seed(&app, &client);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while jtis(&app, "jti-expired", 25) > 0 || codes(&app, "code-old", 20) > 0 {
        assert!(std::time::Instant::now() < deadline, "no cleanup within 20 s");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // Let the run that deleted those finish its other sweeps.
    while families(&app, "family-revoked", 8) > 0 {
        assert!(std::time::Instant::now() < deadline, "cleanup did not finish");
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_only_live_rows_left(&app);
}

#[test]
fn code_issued_before_logout_cannot_start_a_grant_after_it() {
    let (app, client) = setup();
    let mut browser = signed_in_browser(&app);
    let (verifier, challenge) = pkce();
    let back = app.authorize(&mut browser, &authorize_url(&client, &challenge, &[]), "alice");
    let code = query_value(&back, "code").expect("code");

    let (action, csrf) = confirmation(&mut browser, "");
    let reply = browser.post_form(&action, &[("csrf_token", &csrf)]);
    assert_eq!(reply.status, 200, "{}", reply.body);

    // The session that approved the code is over: the code must not
    // produce a refresh-token family that outlives it.
    let reply = app.http().post_form(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", &client.client_id),
            ("code_verifier", &verifier),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NULL"),
        0
    );
}

#[test]
fn logout_without_a_session_still_shows_the_form_and_then_follows_the_redirect() {
    let (app, client) = setup();
    let mut browser = app.browser();
    let q = query(&[
        ("post_logout_redirect_uri", SIGNED_OUT_URI),
        ("client_id", &client.client_id),
    ]);
    let (action, csrf) = confirmation(&mut browser, &q);
    // Without the form's token nothing happens.
    let forged = app.browser().post_form(&action, &[("csrf_token", &csrf)]);
    assert_eq!(forged.status, 403, "{}", forged.body);
    let reply = browser.post_form(&action, &[("csrf_token", &csrf)]);
    assert_eq!(reply.status, 303, "{}", reply.body);
    assert_eq!(reply.header("location"), Some(SIGNED_OUT_URI));
}

/// Introspection calls a token active until `exp` plus the 30 s leeway, so
/// the row that revokes it must outlive that too, including rows written
/// before introspection had the leeway (they expire at `exp`).
#[test]
fn a_revoked_jti_is_kept_until_its_tokens_exp_plus_the_leeway() {
    let (app, _client) = setup();
    app.sql_exec(
        "INSERT INTO revoked_access_tokens (jti, expires_at) VALUES
           (md5('within-leeway-1')::uuid, now() - interval '10 seconds'),
           (md5('past-leeway-1')::uuid, now() - interval '2 minutes');",
    );
    let mut conn = app.db.connect();
    let swept = sweep_batch(
        &mut conn,
        Sweep::RevokedAccessTokens,
        Utc::now(),
        BATCH,
        lifetimes(&app),
    )
    .unwrap();
    assert_eq!(swept, 1);
    assert_eq!(jtis(&app, "within-leeway", 1), 1);
    assert_eq!(jtis(&app, "past-leeway", 1), 0);
}
