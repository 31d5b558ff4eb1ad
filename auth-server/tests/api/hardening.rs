//! Attacks from the security review of the token lifecycle (issue 10):
//! the refresh grace window used as an oracle, and revocations racing a
//! rotation or a code exchange. Each test reproduces the attack.

use std::sync::Barrier;
use std::time::Duration;

use auth_server::model::Client;
use diesel::connection::SimpleConnection as _;

use crate::helpers::*;

const SCOPE: &str = "profile notes:read notes:write";

fn setup(grace_seconds: u32) -> (TestApp, Client) {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_REFRESH_GRACE_SECONDS".into(), grace_seconds.to_string());
    });
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    (app, client)
}

fn live_refresh_tokens(app: &TestApp) -> i64 {
    app.sql_count(
        "SELECT count(*) AS n FROM refresh_tokens r JOIN token_families f ON f.id = r.family_id
         WHERE r.used_at IS NULL AND f.revoked_at IS NULL",
    )
}

fn live_families(app: &TestApp) -> i64 {
    app.sql_count("SELECT count(*) AS n FROM token_families WHERE revoked_at IS NULL")
}

/// Confirms the logout page in `browser` (ends its session).
fn logout(browser: &mut Browser) -> Reply {
    let page = browser.get("/logout");
    assert_eq!(page.status, 200, "{}", page.body);
    let csrf = page.input_value("csrf_token").expect("csrf_token");
    browser.post_form("/logout", &[("csrf_token", &csrf)])
}

// ---------------------------------------------------------------------------
// 1. The grace window is no oracle.

/// The review's sequence: the thief probes the unspent token with a request
/// the real client never sends, the real client rotates, and the thief
/// repeats its request inside the grace window hoping for the successor.
#[test]
fn grace_window_oracle_thief_cannot_follow_the_chain() {
    let (app, client) = setup(30);
    let tokens = app.code_flow(&client, "alice", &[("scope", SCOPE)]);
    let stolen = str_at(&tokens, "refresh_token").to_owned();
    let probe = [("scope", "admin")];

    // 1. The probe is refused and leaves no trace.
    let refused = app.refresh_with(&client, &stolen, &probe);
    assert_oauth_error(&refused, 400, "invalid_scope");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM refresh_tokens WHERE used_at IS NOT NULL"),
        0
    );

    // 2. The real client rotates.
    let legit = app.refresh(&client, &stolen);
    assert_eq!(legit.status, 200, "{}", legit.body);
    let successor = str_at(&legit.json(), "refresh_token").to_owned();

    // 3. The thief repeats its request inside the window: that is reuse.
    let replay = app.refresh_with(&client, &stolen, &probe);
    assert_oauth_error(&replay, 400, "invalid_grant");
    assert!(!replay.body.contains(&successor), "{}", replay.body);
    assert_eq!(live_refresh_tokens(&app), 0, "the family is revoked");
    assert_oauth_error(&app.refresh(&client, &successor), 400, "invalid_grant");
}

#[test]
fn replay_with_another_scope_inside_the_window_is_reuse() {
    let (app, client) = setup(30);
    let tokens = app.code_flow(&client, "alice", &[("scope", SCOPE)]);
    let r0 = str_at(&tokens, "refresh_token").to_owned();
    let first = app.refresh_with(&client, &r0, &[("scope", "profile")]);
    assert_eq!(first.status, 200, "{}", first.body);
    // No scope parameter is another request than `scope=profile`.
    assert_oauth_error(&app.refresh(&client, &r0), 400, "invalid_grant");
    assert_eq!(live_refresh_tokens(&app), 0);
}

#[test]
fn identical_replay_inside_the_window_gets_the_same_pair() {
    let (app, client) = setup(30);
    let tokens = app.code_flow(&client, "alice", &[("scope", SCOPE)]);
    let r0 = str_at(&tokens, "refresh_token").to_owned();
    let first = app.refresh_with(&client, &r0, &[("scope", "notes:read profile")]);
    assert_eq!(first.status, 200, "{}", first.body);
    // The same scope set, written in another order and spacing.
    let again = app.refresh_with(&client, &r0, &[("scope", "profile  notes:read")]);
    assert_eq!(again.status, 200, "{}", again.body);
    let (first, again) = (first.json(), again.json());
    assert_eq!(again["refresh_token"], first["refresh_token"]);
    assert_eq!(again["access_token"], first["access_token"]);
    assert_eq!(live_refresh_tokens(&app), 1);
}

#[test]
fn identical_replay_after_the_window_is_reuse() {
    let (app, client) = setup(30);
    let tokens = app.code_flow(&client, "alice", &[("scope", SCOPE)]);
    let r0 = str_at(&tokens, "refresh_token").to_owned();
    let first = app.refresh(&client, &r0);
    assert_eq!(first.status, 200, "{}", first.body);
    app.sql_exec(
        "UPDATE refresh_tokens SET grace_until = now() - interval '1 second' WHERE grace_until IS NOT NULL",
    );
    assert_oauth_error(&app.refresh(&client, &r0), 400, "invalid_grant");
    assert_eq!(live_refresh_tokens(&app), 0);
}

// ---------------------------------------------------------------------------
// 2. Revocation wins against a racing rotation or code exchange.

/// Waits until a backend of this test's database is waiting for a lock.
fn wait_for_lock_wait(app: &TestApp) {
    let waiting = eventually(Duration::from_secs(10), || {
        (app.sql_count(
            "SELECT count(*) AS n FROM pg_stat_activity
              WHERE datname = current_database() AND wait_event_type = 'Lock'",
        ) > 0)
            .then_some(())
    });
    assert!(waiting.is_some(), "the request never reached its lock");
}

/// The worst point of a lock-free rotation: after it read the token and
/// minted the successor, before it spends the token. A logout that commits
/// there must win: the rotation is refused and nothing it minted is live.
#[test]
fn rotation_paused_before_its_claim_loses_to_a_logout() {
    let (app, client) = setup(2);
    let mut browser = app.browser();
    let tokens = app.code_flow_in(&mut browser, &client, None, "alice", &[("scope", SCOPE)]);
    let r0 = str_at(&tokens, "refresh_token").to_owned();

    // Hold the token row, so the rotation stops at its claim.
    let mut holder = app.db.connect();
    holder
        .batch_execute("BEGIN; SELECT 1 FROM refresh_tokens FOR UPDATE;")
        .expect("lock the token row");

    std::thread::scope(|s| {
        let rotation = s.spawn(|| app.refresh(&client, &r0));
        wait_for_lock_wait(&app);
        // The logout completes (and commits) while the rotation waits.
        let out = logout(&mut browser);
        assert_eq!(out.status, 200, "{}", out.body);
        holder.batch_execute("COMMIT").expect("release");
        let reply = rotation.join().unwrap();
        assert_oauth_error(&reply, 400, "invalid_grant");
    });
    assert_eq!(live_refresh_tokens(&app), 0);
    assert_eq!(live_families(&app), 0);
}

/// Fifteen refreshes of one token racing a logout, a hundred times: no
/// refresh token stays usable and no access token stays active.
#[test]
fn hundred_refresh_races_against_logout_leave_nothing_live() {
    let (app, client) = setup(2);
    let introspector = app.introspector();
    for round in 0..100 {
        let mut browser = app.browser();
        let tokens = app.code_flow_in(&mut browser, &client, None, "alice", &[("scope", SCOPE)]);
        let r0 = str_at(&tokens, "refresh_token").to_owned();
        let barrier = &Barrier::new(16);
        let issued: Vec<(String, String)> = std::thread::scope(|s| {
            let refreshes: Vec<_> = (0..15)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        let reply = app.refresh(&client, &r0);
                        (reply.status == 200).then(|| {
                            let body = reply.json();
                            (
                                str_at(&body, "access_token").to_owned(),
                                str_at(&body, "refresh_token").to_owned(),
                            )
                        })
                    })
                })
                .collect();
            let browser = &mut browser;
            let out = s.spawn(move || {
                barrier.wait();
                logout(browser)
            });
            assert_eq!(out.join().unwrap().status, 200, "round {round}");
            refreshes.into_iter().filter_map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(live_refresh_tokens(&app), 0, "round {round}");
        for (access, refresh) in &issued {
            assert_eq!(app.introspect(&introspector, access), inactive(), "round {round}");
            assert_oauth_error(&app.refresh(&client, refresh), 400, "invalid_grant");
        }
    }
    assert_eq!(live_families(&app), 0);
}

/// A code exchange racing a logout of the session that approved the code:
/// afterwards no grant of that session is live, whoever won.
#[test]
fn code_exchange_racing_logout_leaves_no_live_family() {
    let (app, client) = setup(2);
    for round in 0..50 {
        let mut browser = app.browser();
        let (code, verifier) = app.obtain_code(&mut browser, &client, "alice", &[]);
        let barrier = &Barrier::new(2);
        let (exchange, out) = std::thread::scope(|s| {
            let exchange = s.spawn(|| {
                barrier.wait();
                app.redeem_code(&client, None, &code, &verifier)
            });
            let browser = &mut browser;
            let out = s.spawn(move || {
                barrier.wait();
                logout(browser)
            });
            (exchange.join().unwrap(), out.join().unwrap())
        });
        assert_eq!(out.status, 200, "round {round}");
        assert_eq!(live_families(&app), 0, "round {round}: {}", exchange.body);
        if exchange.status == 200 {
            let refresh = str_at(&exchange.json(), "refresh_token").to_owned();
            assert_oauth_error(&app.refresh(&client, &refresh), 400, "invalid_grant");
        } else {
            assert_oauth_error(&exchange, 400, "invalid_grant");
        }
    }
}

/// An authorization request that read the session just before a logout
/// ended it cannot store a code for it afterwards: the code is stored only
/// while the session row exists, under a lock that the logout's delete
/// waits for.
#[test]
fn authorization_racing_logout_issues_no_code_for_the_ended_session() {
    let (app, client) = setup(2);
    let mut browser = app.browser();
    app.login(&mut browser, "alice");
    let (_, challenge) = pkce();
    let url = authorize_url(&client, &challenge, &[]);

    // Hold the session row, as a logout deleting it would.
    let mut holder = app.db.connect();
    holder
        .batch_execute("BEGIN; SELECT 1 FROM browser_sessions FOR UPDATE;")
        .expect("lock the session row");
    std::thread::scope(|s| {
        let request = s.spawn(|| browser.get(&url));
        wait_for_lock_wait(&app);
        holder
            .batch_execute("DELETE FROM browser_sessions; COMMIT;")
            .expect("end the session");
        let reply = request.join().unwrap();
        let location = reply.header("location").unwrap_or("").to_owned();
        assert!(
            !location.contains("code="),
            "a code for an ended session: {location}"
        );
    });
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM authorization_codes"), 0);
}
