//! Throttling of repeated failed sign-ins (ASVS V6.3).

use crate::helpers::*;

const THROTTLED: &str = "Too many failed sign-ins for this account";

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
    assert_eq!(blocked.status, 429, "{}", blocked.body);
    assert!(blocked.body.contains(THROTTLED), "{}", blocked.body);
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
    assert_eq!(blocked.status, 429);
    assert!(blocked.body.contains(THROTTLED));
}

#[test]
fn the_block_ends_by_itself_and_a_success_clears_the_count() {
    let app = spawn_app();
    app.create_user("carol", &["user"]);
    let mut browser = app.browser();
    fail_times(&mut browser, "carol", 6);
    assert_eq!(attempt(&mut browser, "carol", PASSWORD).status, 429);
    // Let the block run out without waiting for it.
    app.sql_exec("UPDATE login_throttle SET blocked_until = now() - interval '1 second'");
    assert_eq!(attempt(&mut browser, "carol", PASSWORD).status, 303);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM login_throttle"), 0);
    // The count starts again from zero: five more failures are free.
    let mut other = app.browser();
    fail_times(&mut other, "carol", 5);
    assert_eq!(attempt(&mut other, "carol", PASSWORD).status, 303);
}
