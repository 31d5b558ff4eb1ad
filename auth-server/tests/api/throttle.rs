//! Throttling of repeated failed sign-ins (ASVS V6.3). A throttled
//! account answers exactly like a wrong password (issue 10, item 3).

use std::sync::Barrier;

use crate::helpers::*;

const BAD_CREDENTIALS: &str = "Incorrect username or password.";

/// Asserts the answer a wrong password gets.
fn assert_refused_like_a_wrong_password(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains(BAD_CREDENTIALS), "{}", reply.body);
}

/// Posts the login form once; returns the reply.
fn attempt(browser: &mut Browser, username: &str, password: &str) -> Reply {
    let page = browser.get("/login");
    let csrf = page.input_value("csrf_token").expect("csrf token");
    browser.post_form(
        "/login",
        &[
            ("username", username),
            ("password", password),
            ("csrf_token", &csrf),
        ],
    )
}

fn fail_times(browser: &mut Browser, username: &str, times: usize) {
    for _ in 0..times {
        let reply = attempt(browser, username, "wrong password, wrong password");
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert!(reply.body.contains("Incorrect username or password."));
    }
}

#[test]
fn repeated_failed_sign_ins_throttle_that_account_only() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let mut browser = app.browser();
    // Five failures are free; the sixth blocks the account for 5 s.
    fail_times(&mut browser, "alice", 6);
    let blocked = attempt(&mut browser, "Alice", PASSWORD);
    assert_refused_like_a_wrong_password(&blocked);
    assert!(
        !browser.cookies.contains_key("session"),
        "a throttled attempt must not sign in"
    );
    // Another account is not affected.
    assert_eq!(attempt(&mut app.browser(), "bob", PASSWORD).status, 303);
}

#[test]
fn throttling_looks_the_same_for_an_account_that_does_not_exist() {
    let app = spawn_app();
    let mut browser = app.browser();
    fail_times(&mut browser, "nobody", 6);
    let blocked = attempt(&mut browser, "nobody", PASSWORD);
    assert_refused_like_a_wrong_password(&blocked);
}

#[test]
fn the_block_ends_by_itself_and_a_success_clears_the_count() {
    let app = spawn_app();
    app.create_user("carol", &["user"]);
    let mut browser = app.browser();
    fail_times(&mut browser, "carol", 6);
    assert_refused_like_a_wrong_password(&attempt(&mut browser, "carol", PASSWORD));
    // Let the block run out without waiting for it.
    app.sql_exec("UPDATE login_throttle SET blocked_until = now() - interval '1 second'");
    assert_eq!(attempt(&mut browser, "carol", PASSWORD).status, 303);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM login_throttle"), 0);
    // The count starts again from zero: five more failures are free.
    let mut other = app.browser();
    fail_times(&mut other, "carol", 5);
    assert_eq!(attempt(&mut other, "carol", PASSWORD).status, 303);
}

/// The locked answer and the wrong-password answer are the same page: same
/// status, same message, same form, the username kept.
#[test]
fn locked_account_answers_like_a_wrong_password() {
    let app = spawn_app();
    app.create_user("dave", &["user"]);
    let mut browser = app.browser();
    let wrong = attempt(&mut browser, "dave", "wrong password, wrong password");
    fail_times(&mut browser, "dave", 5);
    let locked = attempt(&mut browser, "dave", PASSWORD);
    assert_refused_like_a_wrong_password(&locked);
    let strip = |body: &str| {
        body.lines()
            .filter(|l| !l.contains("csrf_token"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(strip(&locked.body), strip(&wrong.body));
    assert_eq!(locked.header("retry-after"), wrong.header("retry-after"));
    assert!(!browser.cookies.contains_key("session"));
}

/// Thirty wrong passwords at once for one account, split over two
/// instances on one database (and coming from thirty addresses, so only
/// the account's count is in play), count like thirty in a row: six reach
/// the password check (five free, the sixth starts the block) and the rest
/// are refused, so the account ends up in the same state.
#[test]
fn parallel_failures_across_two_instances_all_count() {
    let app = spawn_app_with(|env| {
        env.insert("AUTH_TRUSTED_PROXIES".into(), "127.0.0.1".into());
    });
    app.create_user("erin", &["user"]);
    let peer = start_instance(&peer_env(&app)).expect("second instance");
    let bases = [app.base.clone(), peer.base.clone()];
    // Forms first, so the thirty posts leave together.
    let mut forms: Vec<(Browser, String)> = (0..30)
        .map(|i| {
            let mut browser = Browser::new(&bases[i % 2]);
            let page = browser.get("/login");
            let csrf = page.input_value("csrf_token").expect("csrf");
            (browser, csrf)
        })
        .collect();
    let barrier = Barrier::new(30);
    let replies: Vec<Reply> = std::thread::scope(|s| {
        let handles: Vec<_> = forms
            .iter_mut()
            .enumerate()
            .map(|(i, (browser, csrf))| {
                let barrier = &barrier;
                s.spawn(move || {
                    let from = format!("198.51.100.{i}");
                    barrier.wait();
                    browser.post_form_with(
                        "/login",
                        &[
                            ("username", "erin"),
                            ("password", "wrong password, wrong password"),
                            ("csrf_token", csrf.as_str()),
                        ],
                        &[("X-Forwarded-For", &from)],
                    )
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for reply in &replies {
        assert_refused_like_a_wrong_password(reply);
    }
    assert_eq!(
        app.sql_count("SELECT failures::bigint AS n FROM login_throttle WHERE key = 'account:erin'"),
        6,
        "as many failures counted as in a sequential run"
    );
    assert_eq!(
        app.sql_count(
            "SELECT count(*) AS n FROM login_throttle WHERE key = 'account:erin' AND blocked_until > now()"
        ),
        1
    );
    // Exactly six attempts reached a password check, over both instances.
    let checked =
        app.state.metrics.event_count("login_failed") + peer.state.metrics.event_count("login_failed");
    assert_eq!(checked, 6);
    // Sequentially, the same account is now refused even with its password.
    assert_refused_like_a_wrong_password(&attempt(&mut app.browser(), "erin", PASSWORD));
}
