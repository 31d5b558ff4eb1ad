//! Operator commands (issue 12) through the real binary, against a server
//! that keeps serving: every command's effect and JSON, and a bad input
//! that gets one line on standard error and changes nothing.

use std::time::Duration;

use auth_server::model::Client;
use auth_server::registration::ClientRegistration;
use serde_json::Value;

use crate::helpers::*;

const NEW_PASSWORD: &str = "a brand new passphrase, long enough";
const BAD_CREDENTIALS: &str = "Incorrect username or password.";

fn cli(app: &TestApp, args: &[&str]) -> BinaryRun {
    run_auth_binary(&app.env, args, "")
}

/// Runs a command that must succeed; returns its JSON.
fn ok(app: &TestApp, args: &[&str], stdin: &str) -> Value {
    let run = run_auth_binary(&app.env, args, stdin);
    assert!(run.status.success(), "{args:?}: {run:?}");
    assert!(
        !run.stdout.contains("$argon2"),
        "a hash was printed: {}",
        run.stdout
    );
    run.json()
}

/// Posts the login form once.
fn sign_in(browser: &mut Browser, username: &str, password: &str) -> Reply {
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

fn assert_refused_like_a_wrong_password(reply: &Reply) {
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(reply.body.contains(BAD_CREDENTIALS), "{}", reply.body);
}

/// A signed-in browser and a token response for `username` through the
/// first-party SPA.
fn signed_in(app: &TestApp, spa: &Client, username: &str) -> (Browser, Value) {
    let mut browser = app.browser();
    app.login(&mut browser, username);
    let tokens = app.code_flow(spa, username, &[]);
    (browser, tokens)
}

/// Whether the browser's session still authorizes without a sign-in.
fn session_alive(app: &TestApp, browser: &mut Browser, spa: &Client) -> bool {
    let (_, challenge) = pkce();
    let reply = browser.get(&authorize_url(spa, &challenge, &[]));
    let location = reply.header("location").unwrap_or_default().to_owned();
    assert!(
        matches!(reply.status, 302 | 303),
        "{}: {}",
        reply.status,
        reply.body
    );
    let _ = app;
    !location.contains("/login")
}

fn password_hash(app: &TestApp, username: &str) -> String {
    use diesel::prelude::*;
    #[derive(QueryableByName)]
    struct Hash {
        #[diesel(sql_type = diesel::sql_types::Text)]
        password_hash: String,
    }
    diesel::sql_query("SELECT password_hash FROM users WHERE username = $1")
        .bind::<diesel::sql_types::Text, _>(username)
        .get_result::<Hash>(&mut app.db.connect())
        .expect("hash")
        .password_hash
}

fn machine_client(app: &TestApp) -> (Client, String) {
    let (client, secret) = app.create_client(ClientRegistration {
        name: "Batch job".into(),
        confidential: true,
        ..Default::default()
    });
    (client, secret.expect("secret"))
}

fn machine_token(app: &TestApp, id: &str, secret: &str) -> Reply {
    app.http().post_form_with(
        "/token",
        &[("grant_type", "client_credentials")],
        &[("Authorization", &basic(id, secret))],
    )
}

// ---------------------------------------------------------------------------
// user list / show

#[test]
fn user_list_and_show_print_users_without_hashes_and_unknown_names_are_one_line_errors() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    app.create_user("root", &["user", "admin"]);

    let all = ok(&app, &["user", "list"], "");
    let names: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|u| str_at(u, "username"))
        .collect();
    assert_eq!(names, ["alice", "root"]);
    for user in all.as_array().unwrap() {
        assert!(user.get("password_hash").is_none(), "{user}");
        assert_eq!(user["disabled"], false);
    }
    let admins = ok(&app, &["user", "list", "--role", "admin"], "");
    assert_eq!(admins.as_array().unwrap().len(), 1);
    assert_eq!(admins[0]["username"], "root");
    assert_eq!(
        ok(&app, &["user", "list", "--disabled"], ""),
        Value::Array(vec![])
    );

    let shown = ok(&app, &["user", "show", "ALICE"], "");
    assert_eq!(shown["username"], "alice");
    assert_eq!(shown["roles"], serde_json::json!(["user"]));
    for field in ["id", "created_at", "disabled", "locked_until", "last_sign_in_at"] {
        assert!(shown.get(field).is_some(), "{field} missing from {shown}");
    }
    assert_eq!(shown["last_sign_in_at"], Value::Null);
    app.login(&mut app.browser(), "alice");
    let shown = ok(&app, &["user", "show", "alice"], "");
    assert!(shown["last_sign_in_at"].is_string(), "{shown}");

    cli(&app, &["user", "show", "nobody"]).assert_one_line_error("no user named");
    cli(&app, &["user", "list", "--role", "root"]).assert_one_line_error("role");
}

// ---------------------------------------------------------------------------
// user set-password

#[test]
fn set_password_replaces_the_hash_ends_sessions_and_refresh_families_and_refuses_weak_ones() {
    let app = spawn_app();
    let spa = app.spa_client();
    app.create_user("alice", &["user"]);
    let (mut browser, tokens) = signed_in(&app, &spa, "alice");
    let before = password_hash(&app, "alice");

    // Bad input first: nothing changes.
    for (password, needle) in [("short", "password"), ("alicealicealice", "password")] {
        run_auth_binary(
            &app.env,
            &["user", "set-password", "alice", "--password-stdin"],
            &format!("{password}\n"),
        )
        .assert_one_line_error(needle);
    }
    run_auth_binary(
        &app.env,
        &["user", "set-password", "nobody", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    )
    .assert_one_line_error("no user named");
    cli(&app, &["user", "set-password", "alice"]).assert_one_line_error("--password-stdin");
    assert_eq!(password_hash(&app, "alice"), before);
    assert!(session_alive(&app, &mut browser, &spa));

    let out = ok(
        &app,
        &["user", "set-password", "alice", "--password-stdin"],
        &format!("{NEW_PASSWORD}\n"),
    );
    assert_eq!(out["username"], "alice");
    assert!(out["sessions_ended"].as_u64().unwrap() >= 1, "{out}");
    assert!(out["refresh_families_revoked"].as_u64().unwrap() >= 1, "{out}");
    assert_ne!(password_hash(&app, "alice"), before);
    assert!(password_hash(&app, "alice").starts_with("$argon2id$"));

    assert!(!session_alive(&app, &mut browser, &spa), "the session ended");
    let refreshed = app.refresh(&spa, str_at(&tokens, "refresh_token"));
    assert_oauth_error(&refreshed, 400, "invalid_grant");
    assert_refused_like_a_wrong_password(&sign_in(&mut app.browser(), "alice", PASSWORD));
    assert_eq!(sign_in(&mut app.browser(), "alice", NEW_PASSWORD).status, 303);
}

#[test]
fn set_password_refuses_a_breached_password() {
    let breached = "purple elephant dances quietly";
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), breached.as_bytes()).unwrap();
    let hex: String = digest.iter().map(|b| format!("{b:02X}")).collect();
    let dir = std::env::temp_dir().join(format!("breached-op-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pwned.txt");
    std::fs::write(&path, format!("{hex}:7\n")).unwrap();
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let before = password_hash(&app, "alice");
    let mut env = app.env.clone();
    env.insert(
        "AUTH_BREACHED_PASSWORDS_FILE".into(),
        path.to_string_lossy().into_owned(),
    );
    run_auth_binary(
        &env,
        &["user", "set-password", "alice", "--password-stdin"],
        &format!("{breached}\n"),
    )
    .assert_one_line_error("breach");
    assert_eq!(password_hash(&app, "alice"), before);
    let _ = std::fs::remove_dir_all(dir);
}

// ---------------------------------------------------------------------------
// user set-roles

#[test]
fn set_roles_replaces_the_roles_revokes_refresh_families_and_refuses_unknown_roles() {
    let app = spawn_app();
    let spa = app.spa_client();
    app.create_user("alice", &["user"]);
    let (_browser, tokens) = signed_in(&app, &spa, "alice");

    cli(&app, &["user", "set-roles", "alice", "--role", "root"]).assert_one_line_error("role");
    cli(&app, &["user", "set-roles", "nobody", "--role", "admin"]).assert_one_line_error("no user named");
    cli(&app, &["user", "set-roles", "alice"]).assert_one_line_error("--role");
    assert_eq!(
        ok(&app, &["user", "show", "alice"], "")["roles"],
        serde_json::json!(["user"])
    );

    let out = ok(
        &app,
        &["user", "set-roles", "alice", "--role", "user", "--role", "admin"],
        "",
    );
    assert_eq!(out["roles"], serde_json::json!(["user", "admin"]));
    assert!(out["refresh_families_revoked"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(out["sessions_ended"], 0, "new roles need no new sign-in");
    let refreshed = app.refresh(&spa, str_at(&tokens, "refresh_token"));
    assert_oauth_error(&refreshed, 400, "invalid_grant");

    // Tokens issued from then on carry the new roles.
    let fresh = app.code_flow(&spa, "alice", &[]);
    let claims = jwt_claims(str_at(&fresh, "access_token"));
    assert_eq!(claims["roles"], serde_json::json!(["user", "admin"]));
}

// ---------------------------------------------------------------------------
// user disable / enable, while serving

#[test]
fn a_disabled_user_cannot_sign_in_and_their_refresh_token_is_refused_while_client_tokens_still_work() {
    let app = spawn_app();
    let spa = app.spa_client();
    let (machine, secret) = machine_client(&app);
    app.create_user("alice", &["user"]);
    let (mut browser, tokens) = signed_in(&app, &spa, "alice");

    cli(&app, &["user", "disable", "nobody"]).assert_one_line_error("no user named");
    let out = ok(&app, &["user", "disable", "alice"], "");
    assert_eq!(out["disabled"], true);
    assert!(out["sessions_ended"].as_u64().unwrap() >= 1, "{out}");
    assert!(out["refresh_families_revoked"].as_u64().unwrap() >= 1, "{out}");

    // The right password gets the wrong-password answer.
    assert_refused_like_a_wrong_password(&sign_in(&mut app.browser(), "alice", PASSWORD));
    assert!(!session_alive(&app, &mut browser, &spa));
    let refreshed = app.refresh(&spa, str_at(&tokens, "refresh_token"));
    assert_oauth_error(&refreshed, 400, "invalid_grant");
    let introspector = app.introspector();
    assert_eq!(
        app.introspect(&introspector, str_at(&tokens, "access_token")),
        inactive()
    );
    // Client tokens are not the user's.
    assert_eq!(machine_token(&app, &machine.client_id, &secret).status, 200);
    let disabled = ok(&app, &["user", "list", "--disabled"], "");
    assert_eq!(disabled[0]["username"], "alice");

    let out = ok(&app, &["user", "enable", "alice"], "");
    assert_eq!(out["disabled"], false);
    assert_eq!(sign_in(&mut app.browser(), "alice", PASSWORD).status, 303);
    // What was revoked stays revoked.
    let refreshed = app.refresh(&spa, str_at(&tokens, "refresh_token"));
    assert_oauth_error(&refreshed, 400, "invalid_grant");
}

#[test]
fn a_code_issued_before_disable_cannot_be_exchanged_after_it() {
    let app = spawn_app();
    let spa = app.spa_client();
    app.create_user("alice", &["user"]);
    let mut browser = app.browser();
    let (verifier, challenge) = pkce();
    let back = app.authorize(&mut browser, &authorize_url(&spa, &challenge, &[]), "alice");
    let code = query_value(&back, "code").expect("code");
    ok(&app, &["user", "disable", "alice"], "");
    let reply = app.http().post_form(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", spa.redirect_uris[0].as_str()),
            ("client_id", &spa.client_id),
            ("code_verifier", &verifier),
        ],
    );
    assert_oauth_error(&reply, 400, "invalid_grant");
}

// ---------------------------------------------------------------------------
// user unlock

#[test]
fn unlock_clears_the_sign_in_throttle_of_a_locked_account() {
    let app = spawn_app();
    app.create_user("alice", &["user"]);
    let mut attacker = app.browser();
    let mut locked = false;
    for _ in 0..20 {
        sign_in(&mut attacker, "alice", "wrong password, wrong password");
        if ok(&app, &["user", "show", "alice"], "")["locked_until"].is_string() {
            locked = true;
            break;
        }
    }
    assert!(locked, "the account never locked");
    // Locked: even the right password is refused.
    assert_refused_like_a_wrong_password(&sign_in(&mut app.browser(), "alice", PASSWORD));

    cli(&app, &["user", "unlock", "nobody"]).assert_one_line_error("no user named");
    let out = ok(&app, &["user", "unlock", "alice"], "");
    assert!(out["was_locked_until"].is_string(), "{out}");
    assert_eq!(out["locked_until"], Value::Null);
    assert_eq!(sign_in(&mut app.browser(), "alice", PASSWORD).status, 303);
}

// ---------------------------------------------------------------------------
// user delete

#[test]
fn user_delete_needs_yes_then_removes_the_user_with_sessions_grants_and_consents() {
    let app = spawn_app();
    let spa = app.spa_client();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let (mut browser, tokens) = signed_in(&app, &spa, "alice");
    app.sql_exec(&format!(
        "INSERT INTO consents (user_id, client_id, scopes, granted_at)
         SELECT id, '{}', ARRAY['profile'], now() FROM users WHERE username = 'alice'",
        spa.client_id
    ));

    cli(&app, &["user", "delete", "alice"]).assert_one_line_error("--yes");
    cli(&app, &["user", "delete", "nobody", "--yes"]).assert_one_line_error("no user named");
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM users"), 2);

    let introspector = app.introspector();
    let out = ok(&app, &["user", "delete", "alice", "--yes"], "");
    assert_eq!(out["deleted"], true);
    assert_eq!(out["consents_deleted"], 1);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM users"), 1);
    for table in [
        "browser_sessions",
        "consents",
        "token_families",
        "authorization_codes",
    ] {
        assert_eq!(
            app.sql_count(&format!("SELECT count(*) AS n FROM {table}")),
            0,
            "{table} still holds alice's rows"
        );
    }
    assert!(!session_alive(&app, &mut browser, &spa));
    assert_eq!(
        app.introspect(&introspector, str_at(&tokens, "access_token")),
        inactive()
    );
    assert_oauth_error(
        &app.refresh(&spa, str_at(&tokens, "refresh_token")),
        400,
        "invalid_grant",
    );
    cli(&app, &["user", "show", "alice"]).assert_one_line_error("no user named");
}

// ---------------------------------------------------------------------------
// client list / show / update

#[test]
fn client_list_and_show_never_print_secret_hashes() {
    let app = spawn_app();
    let spa = app.spa_client();
    let (machine, secret) = machine_client(&app);
    let all = ok(&app, &["client", "list"], "");
    let ids: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|c| str_at(c, "client_id"))
        .collect();
    assert_eq!(ids, [spa.client_id.as_str(), machine.client_id.as_str()]);
    let shown = ok(&app, &["client", "show", &machine.client_id], "");
    assert_eq!(shown["client_type"], "confidential");
    assert_eq!(shown["grant_types"], serde_json::json!(["client_credentials"]));
    let text = shown.to_string();
    assert!(!text.contains("secret_hash") && !text.contains(&secret), "{text}");
    cli(&app, &["client", "show", "nope"]).assert_one_line_error("no client");

    // Ids are base64url: one may start with '-' and is still an id, not a flag.
    let dashed = format!("-{}", machine.client_id);
    app.sql_exec(&format!(
        "UPDATE clients SET client_id = '{dashed}' WHERE client_id = '{}'",
        machine.client_id
    ));
    assert_eq!(
        ok(&app, &["client", "show", &dashed], "")["client_id"],
        dashed.as_str()
    );
    cli(&app, &["client", "delete", &dashed]).assert_one_line_error("--yes");
    assert_eq!(
        ok(&app, &["client", "delete", &dashed, "--yes"], "")["deleted"],
        true
    );
}

#[test]
fn client_update_changes_the_registration_with_the_checks_of_create() {
    let app = spawn_app();
    let spa = app.spa_client();
    let before = ok(&app, &["client", "show", &spa.client_id], "");

    for (args, needle) in [
        (vec!["--add-redirect-uri", "/relative"], "absolute"),
        (
            vec!["--add-redirect-uri", "https://a.example/cb#frag"],
            "fragment",
        ),
        (
            vec!["--remove-redirect-uri", "https://never.example/cb"],
            "not registered",
        ),
        (vec!["--add-scope", "email"], "scope"),
        (
            vec![
                "--remove-scope",
                "openid",
                "--remove-scope",
                "profile",
                "--remove-scope",
                "notes:read",
                "--remove-scope",
                "notes:write",
            ],
            "scope",
        ),
        (vec!["--add-grant-type", "client_credentials"], "confidential"),
        (vec!["--allow-introspection", "true"], "confidential"),
        (vec!["--name", " "], "name"),
    ] {
        let mut all = vec!["client", "update", spa.client_id.as_str()];
        all.extend(args.iter().copied());
        cli(&app, &all).assert_one_line_error(needle);
    }
    cli(&app, &["client", "update", "nope", "--name", "x"]).assert_one_line_error("no client");
    let unchanged = ok(&app, &["client", "show", &spa.client_id], "");
    assert_eq!(unchanged, before);

    let out = ok(
        &app,
        &[
            "client",
            "update",
            &spa.client_id,
            "--name",
            "Notes SPA",
            "--add-redirect-uri",
            "http://127.0.0.1:5173/other",
            "--remove-scope",
            "notes:write",
            "--first-party",
            "false",
        ],
        "",
    );
    assert_eq!(out["name"], "Notes SPA");
    assert_eq!(
        out["redirect_uris"],
        serde_json::json!(["http://127.0.0.1:5173/callback", "http://127.0.0.1:5173/other"])
    );
    assert_eq!(out["scope"], "openid profile notes:read");
    assert_eq!(out["first_party"], false);
    assert_eq!(ok(&app, &["client", "show", &spa.client_id], ""), out);
}

#[test]
fn a_scope_removed_from_a_client_is_not_granted_by_its_next_refresh() {
    let app = spawn_app();
    let spa = app.spa_client();
    app.create_user("alice", &["user"]);
    let tokens = app.code_flow(&spa, "alice", &[]);
    ok(
        &app,
        &[
            "client",
            "update",
            &spa.client_id,
            "--remove-scope",
            "notes:write",
        ],
        "",
    );
    // The server's client cache holds the old registration for a moment.
    std::thread::sleep(Duration::from_secs(6));
    let refreshed = app.refresh(&spa, str_at(&tokens, "refresh_token"));
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    assert_eq!(refreshed.json()["scope"], "profile notes:read");
}

// ---------------------------------------------------------------------------
// client rotate-secret / retire-secret, while serving

#[test]
fn after_rotate_secret_both_secrets_work_during_the_overlap_and_only_the_new_one_after() {
    let app = spawn_app();
    let (machine, old) = machine_client(&app);
    // The server has the client cached with the old secret.
    assert_eq!(machine_token(&app, &machine.client_id, &old).status, 200);

    cli(&app, &["client", "rotate-secret", "nope"]).assert_one_line_error("no client");
    let spa = app.spa_client();
    cli(&app, &["client", "rotate-secret", &spa.client_id]).assert_one_line_error("public");
    cli(
        &app,
        &[
            "client",
            "rotate-secret",
            &machine.client_id,
            "--overlap",
            "99999999",
        ],
    )
    .assert_one_line_error("overlap");

    let out = ok(
        &app,
        &["client", "rotate-secret", &machine.client_id, "--overlap", "3"],
        "",
    );
    let new = str_at(&out, "client_secret").to_owned();
    assert_ne!(new, old);
    assert!(out["previous_secret_valid_until"].is_string(), "{out}");
    let stored = app.sql_count(&format!(
        "SELECT count(*) AS n FROM clients WHERE client_id = '{}' AND secret_hash = sha256('{}'::bytea)",
        machine.client_id, new
    ));
    assert_eq!(stored, 1, "only the SHA-256 of the new secret is stored");

    // At once, on an instance that had the old registration cached.
    assert_eq!(machine_token(&app, &machine.client_id, &new).status, 200);
    assert_eq!(machine_token(&app, &machine.client_id, &old).status, 200);
    std::thread::sleep(Duration::from_millis(3200));
    assert_oauth_error(
        &machine_token(&app, &machine.client_id, &old),
        401,
        "invalid_client",
    );
    assert_eq!(machine_token(&app, &machine.client_id, &new).status, 200);

    // retire-secret ends a running overlap: at once where the server knows
    // the secret as the replaced one, and within the client cache's 5 s
    // where it still had it cached as the current one.
    let out = ok(&app, &["client", "rotate-secret", &machine.client_id], "");
    let newest = str_at(&out, "client_secret").to_owned();
    assert_eq!(machine_token(&app, &machine.client_id, &newest).status, 200);
    assert_eq!(machine_token(&app, &machine.client_id, &new).status, 200);
    let retired = ok(&app, &["client", "retire-secret", &machine.client_id], "");
    assert_eq!(retired["previous_secret_retired"], true);
    assert_oauth_error(
        &machine_token(&app, &machine.client_id, &new),
        401,
        "invalid_client",
    );
    assert_eq!(machine_token(&app, &machine.client_id, &newest).status, 200);

    // --overlap 0 is the leaked-secret case: the replaced secret stops
    // within the cache lifetime on an instance that had cached it.
    let out = ok(
        &app,
        &["client", "rotate-secret", &machine.client_id, "--overlap", "0"],
        "",
    );
    let last = str_at(&out, "client_secret").to_owned();
    assert_eq!(machine_token(&app, &machine.client_id, &last).status, 200);
    let refused = eventually(Duration::from_secs(7), || {
        (machine_token(&app, &machine.client_id, &newest).status == 401).then_some(())
    });
    assert!(
        refused.is_some(),
        "the replaced secret still works after the cache lifetime"
    );
    cli(&app, &["client", "retire-secret", "nope"]).assert_one_line_error("no client");
}

// ---------------------------------------------------------------------------
// client delete

#[test]
fn client_delete_needs_yes_then_revokes_everything_the_client_holds() {
    let app = spawn_app();
    let spa = app.spa_client();
    let (machine, secret) = machine_client(&app);
    app.create_user("alice", &["user"]);
    let tokens = app.code_flow(&spa, "alice", &[]);
    let machine_access = machine_token(&app, &machine.client_id, &secret).json();
    let introspector = app.introspector();

    cli(&app, &["client", "delete", &spa.client_id]).assert_one_line_error("--yes");
    cli(&app, &["client", "delete", "nope", "--yes"]).assert_one_line_error("no client");
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM clients"), 3);

    let out = ok(&app, &["client", "delete", &spa.client_id, "--yes"], "");
    assert_eq!(out["deleted"], true);
    assert!(out["refresh_families_deleted"].as_u64().unwrap() >= 1, "{out}");
    assert_eq!(
        app.introspect(&introspector, str_at(&tokens, "access_token")),
        inactive()
    );

    ok(&app, &["client", "delete", &machine.client_id, "--yes"], "");
    assert_eq!(
        app.introspect(&introspector, str_at(&machine_access, "access_token")),
        inactive(),
        "a deleted client's client-credentials token is inactive"
    );
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM token_families"), 0);
    cli(&app, &["client", "show", &spa.client_id]).assert_one_line_error("no client");
}

// ---------------------------------------------------------------------------
// Races between an operator's change and a sign-in under way

/// Holds alice's row locked the way an operator's `user set-password`
/// transaction does, lets a sign-in with the old password get past its
/// Argon2 check and queue behind the lock, then commits a new hash and
/// ends the sessions, as the command does.
fn sign_in_racing(app: &TestApp, change: &str) -> (Browser, Reply) {
    use diesel::connection::SimpleConnection as _;
    let mut operator = app.db.connect();
    operator
        .batch_execute("BEGIN; SELECT 1 FROM users WHERE username = 'alice' FOR UPDATE")
        .unwrap();
    let mut browser = app.browser();
    let signing_in = std::thread::spawn(move || {
        let reply = sign_in(&mut browser, "alice", PASSWORD);
        (browser, reply)
    });
    // Long enough for the password check; the sign-in then waits on the row.
    std::thread::sleep(Duration::from_secs(2));
    operator
        .batch_execute(&format!("{change}; DELETE FROM browser_sessions; COMMIT"))
        .unwrap();
    signing_in.join().unwrap()
}

#[test]
fn a_sign_in_under_way_when_the_password_changes_starts_no_session() {
    let app = spawn_app();
    let spa = app.spa_client();
    app.create_user("alice", &["user"]);
    app.create_user("bob", &["user"]);
    let (mut browser, reply) = sign_in_racing(
        &app,
        "UPDATE users SET password_hash = (SELECT password_hash FROM users WHERE username = 'bob')
         WHERE username = 'alice'",
    );
    assert_refused_like_a_wrong_password(&reply);
    assert!(!session_alive(&app, &mut browser, &spa));
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM browser_sessions"), 0);
}

#[test]
fn a_sign_in_under_way_when_the_user_is_disabled_leaves_no_session_for_a_later_enable() {
    let app = spawn_app();
    let spa = app.spa_client();
    app.create_user("alice", &["user"]);
    let (_browser, reply) = sign_in_racing(
        &app,
        "UPDATE users SET disabled_at = now() WHERE username = 'alice'",
    );
    assert_refused_like_a_wrong_password(&reply);
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM browser_sessions"), 0);
    let _ = spa;
}
