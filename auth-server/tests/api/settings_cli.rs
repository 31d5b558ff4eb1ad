//! The foundation through the real binary (issue 2): the command line,
//! settings from the environment, `_FILE` variants and config files, log
//! redaction, the admin listener, and what happens when Postgres is away.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use oauth_common::testing::{TcpProxy, TestDatabase};
use serde_json::Value;

use crate::helpers::*;

const USER_CREATE: [&str; 2] = ["user", "create"];

fn user_create(env: &HashMap<String, String>, args: &[&str], password: &str) -> BinaryRun {
    let mut all = USER_CREATE.to_vec();
    all.extend_from_slice(args);
    run_auth_binary(env, &all, &format!("{password}\n"))
}

fn client_create(env: &HashMap<String, String>, args: &[&str]) -> BinaryRun {
    let mut all = vec!["client", "create"];
    all.extend_from_slice(args);
    run_auth_binary(env, &all, "")
}

fn users(app: &TestApp) -> i64 {
    app.sql_count("SELECT count(*) AS n FROM users")
}

fn clients(app: &TestApp) -> i64 {
    app.sql_count("SELECT count(*) AS n FROM clients")
}

/// A private scratch directory, removed at the end.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("auth-server-test-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    fn file(&self, name: &str, contents: &str) -> String {
        let path = self.0.join(name);
        std::fs::write(&path, contents).unwrap();
        path.to_str().unwrap().to_owned()
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

// ---------------------------------------------------------------------------
// user create

#[test]
fn user_create_prints_json_and_stores_an_argon2id_hash_of_the_password_from_stdin() {
    let app = spawn_app();
    let run = user_create(
        &app.env,
        &[
            "--username",
            "carol",
            "--role",
            "user",
            "--role",
            "admin",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(run.status.success(), "{run:?}");
    let out = run.json();
    assert_eq!(out["username"], "carol");
    let id = uuid::Uuid::parse_str(out["id"].as_str().unwrap()).unwrap();
    assert_eq!(id.get_version_num(), 7, "ids are uuid v7");
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM users WHERE id = '{id}' AND username = 'carol' \
             AND password_hash LIKE '$argon2id$%' AND roles @> ARRAY['user', 'admin']"
        )),
        1
    );
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM users WHERE users::text LIKE '%horse battery%'"),
        0,
        "the password is stored in clear"
    );
    // The password works on the login page.
    let mut browser = app.browser();
    app.login(&mut browser, "carol");
}

#[test]
fn user_create_refuses_weak_passwords_with_one_line_and_writes_nothing() {
    let app = spawn_app();
    let too_long = "Xk9!".repeat(33);
    for (what, password) in [
        ("too short", "Tr0ub4dor&3"),
        ("common", "password1234"),
        ("repetitive", "aaaaaaaaaaaaaaaa"),
        ("the username", "carolcarolcarol"),
        ("too long", too_long.as_str()),
        ("empty", ""),
    ] {
        let run = user_create(
            &app.env,
            &["--username", "carol", "--role", "user", "--password-stdin"],
            password,
        );
        assert!(!run.status.success(), "{what}: {run:?}");
        run.assert_one_line_error("password");
    }
    assert_eq!(users(&app), 0);
}

#[test]
fn user_create_refuses_bad_usage_with_one_line_and_writes_nothing() {
    let app = spawn_app();
    for (what, args, needle) in [
        (
            "unknown role",
            vec!["--username", "carol", "--role", "wizard", "--password-stdin"],
            "role",
        ),
        (
            "no role",
            vec!["--username", "carol", "--password-stdin"],
            "--role",
        ),
        (
            "no --password-stdin",
            vec!["--username", "carol", "--role", "user"],
            "--password-stdin",
        ),
        (
            "password in argv",
            vec!["--username", "carol", "--role", "user", "--password", PASSWORD],
            "--password",
        ),
        (
            "bad username",
            vec!["--username", "carol smith", "--role", "user", "--password-stdin"],
            "username",
        ),
    ] {
        let run = user_create(&app.env, &args, PASSWORD);
        assert!(!run.status.success(), "{what}: {run:?}");
        run.assert_one_line_error(needle);
    }
    assert_eq!(users(&app), 0);
}

#[test]
fn user_create_refuses_a_username_taken_in_any_case() {
    let app = spawn_app();
    let args = |name: &'static str| vec!["--username", name, "--role", "user", "--password-stdin"];
    let first = user_create(&app.env, &args("Carol"), PASSWORD);
    assert!(first.status.success(), "{first:?}");
    for name in ["Carol", "carol", "CAROL", "  carol "] {
        let run = user_create(&app.env, &args(name), PASSWORD);
        run.assert_one_line_error("taken");
    }
    assert_eq!(users(&app), 1);
}

// ---------------------------------------------------------------------------
// client create

#[test]
fn client_create_public_prints_json_without_a_secret() {
    let app = spawn_app();
    let run = client_create(
        &app.env,
        &[
            "--name",
            "Notes SPA",
            "--public",
            "--redirect-uri",
            "http://127.0.0.1:5173/callback",
            "--first-party",
        ],
    );
    assert!(run.status.success(), "{run:?}");
    let out = run.json();
    let client_id = out["client_id"].as_str().unwrap();
    assert!(out.get("client_secret").is_none(), "{out}");
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM clients WHERE client_id = '{client_id}' \
             AND client_type = 'public' AND secret_hash IS NULL AND first_party \
             AND redirect_uris = ARRAY['http://127.0.0.1:5173/callback']"
        )),
        1
    );
}

#[test]
fn client_create_confidential_shows_the_secret_once_and_stores_only_its_sha256() {
    let app = spawn_app();
    let run = client_create(&app.env, &["--name", "Batch job", "--confidential"]);
    assert!(run.status.success(), "{run:?}");
    let out = run.json();
    let client_id = out["client_id"].as_str().unwrap().to_owned();
    let secret = out["client_secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 43, "a secret of at least 256 bits: {secret}");
    assert!(
        secret
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM clients WHERE client_id = '{client_id}' \
             AND secret_hash = sha256(convert_to('{secret}', 'UTF8'))"
        )),
        1,
        "secret_hash is not SHA-256 of the secret"
    );
    assert_eq!(
        app.sql_count(&format!(
            "SELECT count(*) AS n FROM clients \
             WHERE position('{secret}' in clients::text) > 0 \
             OR position(encode(convert_to('{secret}', 'UTF8'), 'hex') in clients::text) > 0"
        )),
        0,
        "the secret is stored in clear"
    );
    // The secret shown is the one that works.
    let reply = app.http().post_form_with(
        "/token",
        &[("grant_type", "client_credentials")],
        &[("Authorization", &basic(&client_id, &secret))],
    );
    assert_eq!(reply.status, 200, "{}", reply.body);

    let web = client_create(
        &app.env,
        &[
            "--name",
            "Web app",
            "--confidential",
            "--redirect-uri",
            "https://app.example/cb",
            "--allow-introspection",
        ],
    );
    assert!(web.status.success(), "{web:?}");
    assert!(web.json()["client_secret"].is_string());
}

#[test]
fn client_create_refuses_bad_input_with_one_line_and_writes_nothing() {
    let app = spawn_app();
    let public = |extra: &[&'static str]| {
        let mut args = vec!["--name", "App", "--public"];
        args.extend_from_slice(extra);
        args
    };
    let cases: Vec<(&str, Vec<&str>, &str)> = vec![
        (
            "relative redirect URI",
            public(&["--redirect-uri", "/callback"]),
            "redirect",
        ),
        (
            "redirect URI with a fragment",
            public(&["--redirect-uri", "https://app.example/cb#top"]),
            "fragment",
        ),
        (
            "http redirect URI on a public host",
            public(&["--redirect-uri", "http://app.example/cb"]),
            "https",
        ),
        (
            "unknown grant type",
            public(&[
                "--redirect-uri",
                "https://app.example/cb",
                "--grant-type",
                "password",
            ]),
            "grant",
        ),
        (
            "unknown scope",
            public(&["--redirect-uri", "https://app.example/cb", "--scope", "email"]),
            "scope",
        ),
        ("public client without a redirect URI", public(&[]), "redirect"),
        (
            "both kinds",
            vec!["--name", "App", "--public", "--confidential"],
            "--confidential",
        ),
        ("no kind", vec!["--name", "App"], "--public"),
    ];
    for (what, args, needle) in cases {
        let run = client_create(&app.env, &args);
        assert!(!run.status.success(), "{what}: {run:?}");
        run.assert_one_line_error(needle);
    }
    assert_eq!(clients(&app), 0);
}

// ---------------------------------------------------------------------------
// keys rotate and migrate

#[test]
fn keys_rotate_adds_a_pending_key_that_is_published_but_does_not_sign_yet() {
    let app = spawn_app();
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM signing_keys"), 1);
    let run = run_auth_binary(&app.env, &["keys", "rotate"], "");
    assert!(run.status.success(), "{run:?}");
    let out = run.json();
    let kid = out["kid"].as_str().unwrap().to_owned();
    assert_eq!(out["alg"], "ES256");
    let activates_at: chrono::DateTime<chrono::Utc> = out["activates_at"].as_str().unwrap().parse().unwrap();
    // Default activation delay: 900 s.
    assert!(
        activates_at > chrono::Utc::now() + chrono::Duration::seconds(800),
        "{out}"
    );
    assert_eq!(app.sql_count("SELECT count(*) AS n FROM signing_keys"), 2);

    actix_web::rt::System::new().block_on(auth_server::background::reload(&app.state));
    let jwks = app.http().get("/.well-known/jwks.json").json();
    assert!(jwks.to_string().contains(&kid), "{jwks}");
    app.create_user("alice", &["user"]);
    let tokens = app.code_flow(&app.spa_client(), "alice", &[]);
    assert_ne!(
        jwt_header(tokens["access_token"].as_str().unwrap())["kid"],
        kid.as_str()
    );
}

#[test]
fn migrate_creates_a_missing_database_and_can_run_again() {
    let db = TestDatabase::reserve("auth_test");
    let env = test_env(&db.url(), |_| {});
    for round in 1..=2 {
        let run = run_auth_binary(&env, &["migrate"], "");
        assert!(run.status.success(), "round {round}: {run:?}");
    }
    use diesel::connection::SimpleConnection as _;
    db.connect()
        .batch_execute("SELECT 1 FROM users, clients, signing_keys LIMIT 1")
        .expect("migrated tables");
}

// ---------------------------------------------------------------------------
// Settings

#[test]
fn secret_settings_can_come_from_files() {
    let app = spawn_app();
    let dir = TempDir::new();
    let mut env = app.env.clone();
    let url = env.remove("AUTH_DATABASE_URL").unwrap();
    let key = env.remove("AUTH_KEY_ENCRYPTION_KEY").unwrap();
    env.insert(
        "AUTH_DATABASE_URL_FILE".into(),
        dir.file("db-url", &format!("{url}\n")),
    );
    env.insert("AUTH_KEY_ENCRYPTION_KEY_FILE".into(), dir.file("kek", &key));
    let run = user_create(
        &env,
        &["--username", "dave", "--role", "user", "--password-stdin"],
        PASSWORD,
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM users WHERE username = 'dave'"),
        1
    );
    // The key from the file opens the stored signing keys.
    let rotated = run_auth_binary(&env, &["keys", "rotate"], "");
    assert!(rotated.status.success(), "{rotated:?}");
}

#[test]
fn a_secret_and_its_file_variant_together_are_an_error() {
    let app = spawn_app();
    let dir = TempDir::new();
    let mut env = app.env.clone();
    let url = env["AUTH_DATABASE_URL"].clone();
    env.insert("AUTH_DATABASE_URL_FILE".into(), dir.file("db-url", &url));
    let run = run_auth_binary(&env, &["migrate"], "");
    run.assert_one_line_error("AUTH_DATABASE_URL_FILE");
}

#[test]
fn unknown_key_in_a_config_file_is_an_error() {
    let app = spawn_app();
    let dir = TempDir::new();
    let config = dir.file(
        "auth.conf",
        "# settings\nAUTH_ACCESS_TOKEN_TTL=300\nAUTH_ACCES_TOKEN_TTL=60\n",
    );
    let run = run_auth_binary(&app.env, &["--config", &config, "migrate"], "");
    run.assert_one_line_error("AUTH_ACCES_TOKEN_TTL");

    let mut env = app.env.clone();
    env.insert("AUTH_CONFIG_FILE".into(), config);
    let run = run_auth_binary(&env, &["migrate"], "");
    run.assert_one_line_error("AUTH_ACCES_TOKEN_TTL");
}

#[test]
fn config_file_values_are_used_and_the_environment_overrides_them() {
    let app = spawn_app();
    let dir = TempDir::new();
    let mut env = app.env.clone();
    let url = env.remove("AUTH_DATABASE_URL").unwrap();
    env.remove("AUTH_ISSUER");
    let config = dir.file(
        "auth.conf",
        &format!("AUTH_DATABASE_URL=\"{url}\"\nAUTH_ISSUER=http://auth.example.com\n"),
    );
    // The file's issuer is read (and refused: http on a public host) ...
    let run = run_auth_binary(&env, &["--config", &config, "migrate"], "");
    run.assert_one_line_error("AUTH_ISSUER");
    // ... unless the environment overrides it; the database URL still comes
    // from the file.
    env.insert("AUTH_ISSUER".into(), "http://127.0.0.1:9".into());
    let run = run_auth_binary(
        &env,
        &[
            "--config",
            &config,
            "user",
            "create",
            "--username",
            "erin",
            "--role",
            "user",
            "--password-stdin",
        ],
        PASSWORD,
    );
    assert!(run.status.success(), "{run:?}");
    assert_eq!(
        app.sql_count("SELECT count(*) AS n FROM users WHERE username = 'erin'"),
        1
    );
}

#[test]
fn http_issuer_on_a_non_loopback_host_is_an_error() {
    let app = spawn_app();
    for issuer in ["http://auth.example.com", "http://10.0.0.1:8080"] {
        let mut env = app.env.clone();
        env.insert("AUTH_ISSUER".into(), issuer.into());
        let run = run_auth_binary(&env, &["migrate"], "");
        run.assert_one_line_error("https");
    }
}

#[test]
fn non_loopback_issuer_without_a_key_encryption_key_is_an_error() {
    let app = spawn_app();
    let mut env = app.env.clone();
    env.remove("AUTH_KEY_ENCRYPTION_KEY");
    env.insert("AUTH_ISSUER".into(), "https://auth.example.com".into());
    let run = run_auth_binary(&env, &["migrate"], "");
    run.assert_one_line_error("AUTH_KEY_ENCRYPTION_KEY");
}

// ---------------------------------------------------------------------------
// `serve` as a separate process

/// `auth-server serve` running as a child process, its output captured.
struct ServeProcess {
    child: Child,
    output: Arc<Mutex<String>>,
    readers: Vec<JoinHandle<()>>,
    base: String,
    admin: String,
}

fn capture(stream: impl std::io::Read + Send + 'static, into: Arc<Mutex<String>>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            let Ok(line) = line else { break };
            let mut all = into.lock().unwrap();
            all.push_str(&line);
            all.push('\n');
        }
    })
}

impl ServeProcess {
    /// Starts `serve` with `env`, which must name fixed ports.
    fn start(env: &HashMap<String, String>) -> Self {
        let mut child = auth_binary(env)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start auth-server serve");
        let output = Arc::new(Mutex::new(String::new()));
        let readers = vec![
            capture(child.stdout.take().unwrap(), Arc::clone(&output)),
            capture(child.stderr.take().unwrap(), Arc::clone(&output)),
        ];
        Self {
            child,
            output,
            readers,
            base: format!("http://{}", env["AUTH_LISTEN"]),
            admin: format!("http://{}", env["AUTH_ADMIN_LISTEN"]),
        }
    }

    fn wait_until_ready(&mut self) {
        let admin = self.admin.trim_start_matches("http://").to_owned();
        let ready = eventually(Duration::from_secs(30), || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("serve exited with {status}: {}", self.output.lock().unwrap());
            }
            std::net::TcpStream::connect(&admin).ok()?;
            (Browser::new(&self.admin).get("/healthz").status == 200).then_some(())
        });
        assert!(ready.is_some(), "not ready: {}", self.output.lock().unwrap());
    }

    /// Stops the server with SIGTERM and returns everything it printed.
    fn stop(mut self) -> String {
        let pid = self.child.id().to_string();
        let _ = std::process::Command::new("kill").args(["-TERM", &pid]).status();
        let exited = eventually(Duration::from_secs(20), || self.child.try_wait().ok().flatten());
        if exited.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        self.output.lock().unwrap().clone()
    }
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Settings for a `serve` process on fixed ports.
fn serve_env(
    db: &TestDatabase,
    customize: impl FnOnce(&mut HashMap<String, String>),
) -> HashMap<String, String> {
    test_env(&db.url(), |env| {
        env.insert("AUTH_ADMIN_LISTEN".into(), format!("127.0.0.1:{}", free_port()));
        customize(env);
    })
}

fn request_id(reply: &Reply) -> String {
    let id = reply
        .header("x-request-id")
        .unwrap_or_else(|| panic!("no x-request-id: {:?}", reply.headers));
    assert!(!id.is_empty());
    id.to_owned()
}

#[test]
fn logs_of_a_login_and_token_requests_hold_no_secrets_and_carry_request_ids() {
    let db = TestDatabase::create("auth_test");
    let env = serve_env(&db, |env| {
        env.insert("AUTH_LOG_FORMAT".into(), "json".into());
        env.insert("RUST_LOG".into(), "debug".into());
    });
    let created = user_create(
        &env,
        &["--username", "alice", "--role", "user", "--password-stdin"],
        PASSWORD,
    );
    assert!(created.status.success(), "{created:?}");
    let web = client_create(
        &env,
        &[
            "--name",
            "Web app",
            "--confidential",
            "--first-party",
            "--redirect-uri",
            "http://127.0.0.1:5173/callback",
        ],
    )
    .json();
    let batch = client_create(&env, &["--name", "Batch", "--confidential"]).json();
    let web_id = web["client_id"].as_str().unwrap().to_owned();
    let web_secret = web["client_secret"].as_str().unwrap().to_owned();
    let batch_id = batch["client_id"].as_str().unwrap().to_owned();
    let batch_secret = batch["client_secret"].as_str().unwrap().to_owned();

    let server = {
        let mut server = ServeProcess::start(&env);
        server.wait_until_ready();
        server
    };
    let mut ids = Vec::new();
    let mut browser = Browser::new(&server.base);
    let (verifier, challenge) = pkce();
    let state = format!("st-{}", &pkce().0[..20]);
    let wrong_password = format!("wrong-{}", &pkce().0[..20]);
    let query: String = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs([
            ("response_type", "code"),
            ("client_id", web_id.as_str()),
            ("redirect_uri", "http://127.0.0.1:5173/callback"),
            ("state", state.as_str()),
            ("code_challenge", challenge.as_str()),
            ("code_challenge_method", "S256"),
        ])
        .finish();

    let to_login = browser.get(&format!("/authorize?{query}"));
    assert_eq!(to_login.status, 302, "{}", to_login.body);
    ids.push(request_id(&to_login));
    let page = browser.get(to_login.header("location").unwrap());
    ids.push(request_id(&page));
    let csrf = page.input_value("csrf_token").unwrap();
    let action = page.form_action().unwrap();
    let login_cookie = browser.cookies["login"].clone();
    let failed = browser.post_form(
        &action,
        &[
            ("username", "alice"),
            ("password", &wrong_password),
            ("csrf_token", &csrf),
        ],
    );
    ids.push(request_id(&failed));
    let signed_in = browser.post_form(
        &action,
        &[
            ("username", "alice"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    ids.push(request_id(&signed_in));
    let session = browser.cookies["session"].clone();
    let back = browser.get(signed_in.header("location").unwrap());
    ids.push(request_id(&back));
    let code = query_value(&back.location(&server.base).unwrap(), "code").unwrap();

    let web_basic = basic(&web_id, &web_secret);
    let exchanged = Browser::new(&server.base).post_form_with(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &code),
            ("redirect_uri", "http://127.0.0.1:5173/callback"),
            ("code_verifier", &verifier),
        ],
        &[("Authorization", &web_basic)],
    );
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let token_request_id = request_id(&exchanged);
    ids.push(token_request_id.clone());
    let tokens = exchanged.json();
    let refreshed = Browser::new(&server.base).post_form_with(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", tokens["refresh_token"].as_str().unwrap()),
        ],
        &[("Authorization", &web_basic)],
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    ids.push(request_id(&refreshed));
    let machine = Browser::new(&server.base).post_form(
        "/token",
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &batch_id),
            ("client_secret", &batch_secret),
        ],
    );
    assert_eq!(machine.status, 200, "{}", machine.body);
    ids.push(request_id(&machine));

    let logs = server.stop();
    assert!(!logs.trim().is_empty(), "the server logged nothing");

    let mut secrets: Vec<(&str, String)> = vec![
        ("password", PASSWORD.to_owned()),
        ("wrong password", wrong_password),
        ("code", code),
        ("code_verifier", verifier),
        ("client secret", web_secret),
        ("client secret (post)", batch_secret),
        ("session cookie", session),
        ("pre-login cookie", login_cookie),
        ("csrf token", csrf),
        ("Authorization header", web_basic.clone()),
        (
            "Basic credentials",
            web_basic.trim_start_matches("Basic ").to_owned(),
        ),
        ("state", state),
    ];
    for response in [&tokens, &refreshed.json(), &machine.json()] {
        if let Some(refresh) = response["refresh_token"].as_str() {
            secrets.push(("refresh token", refresh.to_owned()));
        }
        let access = response["access_token"].as_str().unwrap();
        secrets.push(("access token", access.to_owned()));
        let mut parts = access.split('.');
        parts.next();
        secrets.push(("access token payload", parts.next().unwrap().to_owned()));
        secrets.push(("access token signature", parts.next().unwrap().to_owned()));
    }
    for (what, secret) in &secrets {
        assert!(!secret.is_empty(), "{what}");
        assert!(
            !logs.contains(secret.as_str()),
            "the logs contain the {what}:\n{logs}"
        );
    }

    // JSON lines, and requests are logged with their request id.
    for line in logs.lines().filter(|l| l.starts_with('{')) {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
    let token_line = logs
        .lines()
        .find(|l| l.contains(&format!("\"request_id\":\"{token_request_id}\"")) && l.contains("/token"))
        .unwrap_or_else(|| panic!("no log line for request {token_request_id}:\n{logs}"));
    assert!(serde_json::from_str::<Value>(token_line).is_ok());
    let logged = ids
        .iter()
        .filter(|id| logs.contains(&format!("\"request_id\":\"{id}\"")))
        .count();
    assert_eq!(logged, ids.len(), "some requests were not logged:\n{logs}");
}

/// Issue 10, item 8: every security decision leaves one `audit` event with
/// the request id, client address, client id and user id, and none of them
/// holds a password, token, code, secret or cookie.
#[test]
fn every_security_decision_is_audited_without_secrets() {
    let db = TestDatabase::create("auth_test");
    let env = serve_env(&db, |env| {
        env.insert("AUTH_LOG_FORMAT".into(), "json".into());
        env.insert("RUST_LOG".into(), "info".into());
        env.insert("AUTH_REFRESH_GRACE_SECONDS".into(), "0".into());
        env.insert("AUTH_CLIENT_FAILURE_LIMIT".into(), "2".into());
    });
    let created = user_create(
        &env,
        &["--username", "alice", "--role", "user", "--password-stdin"],
        PASSWORD,
    );
    assert!(created.status.success(), "{created:?}");
    let mut cli_logs = created.stderr.clone();
    let app_run = client_create(
        &env,
        &[
            "--name",
            "Third-party app",
            "--confidential",
            "--redirect-uri",
            "http://127.0.0.1:5173/callback",
        ],
    );
    cli_logs.push_str(&app_run.stderr);
    let web = app_run.json();
    let web_id = web["client_id"].as_str().unwrap().to_owned();
    let web_secret = web["client_secret"].as_str().unwrap().to_owned();
    let batch = client_create(&env, &["--name", "Batch", "--confidential"]).json();
    let batch_id = batch["client_id"].as_str().unwrap().to_owned();
    let rotated = run_auth_binary(&env, &["keys", "rotate"], "");
    assert!(rotated.status.success(), "{rotated:?}");
    cli_logs.push_str(&rotated.stderr);

    let server = {
        let mut server = ServeProcess::start(&env);
        server.wait_until_ready();
        server
    };
    let base = server.base.clone();
    let mut browser = Browser::new(&base);
    let wrong = format!("wrong-{}", &pkce().0[..20]);
    let sign_in = |browser: &mut Browser, name: &str, password: &str| {
        let page = browser.get("/login");
        let csrf = page.input_value("csrf_token").unwrap();
        browser.post_form(
            "/login",
            &[("username", name), ("password", password), ("csrf_token", &csrf)],
        )
    };
    assert_eq!(sign_in(&mut browser, "alice", &wrong).status, 200);
    assert_eq!(sign_in(&mut browser, "alice", PASSWORD).status, 303);
    let session = browser.cookies["session"].clone();

    // Consent: denied once, then granted.
    let authorize = |browser: &mut Browser, decision: &str| {
        let (verifier, challenge) = pkce();
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs([
                ("response_type", "code"),
                ("client_id", web_id.as_str()),
                ("redirect_uri", "http://127.0.0.1:5173/callback"),
                ("state", "s"),
                ("code_challenge", challenge.as_str()),
                ("code_challenge_method", "S256"),
            ])
            .finish();
        let page = browser.get(&format!("/authorize?{query}"));
        assert!(is_consent_page(&page), "{}", page.body);
        let back = decide_consent(browser, &page, decision);
        (back.location(&base).unwrap(), verifier)
    };
    authorize(&mut browser, "deny");
    let (back, verifier) = authorize(&mut browser, "approve");
    let code = query_value(&back, "code").unwrap();
    let web_basic = basic(&web_id, &web_secret);
    let token = |fields: &[(&str, &str)]| {
        Browser::new(&base).post_form_with("/token", fields, &[("Authorization", &web_basic)])
    };
    let exchanged = token(&[
        ("grant_type", "authorization_code"),
        ("code", &code),
        ("redirect_uri", "http://127.0.0.1:5173/callback"),
        ("code_verifier", &verifier),
    ]);
    assert_eq!(exchanged.status, 200, "{}", exchanged.body);
    let tokens = exchanged.json();
    let r0 = tokens["refresh_token"].as_str().unwrap().to_owned();
    let refreshed = token(&[("grant_type", "refresh_token"), ("refresh_token", &r0)]);
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    let r1 = refreshed.json()["refresh_token"].as_str().unwrap().to_owned();
    // Reuse of the spent token revokes the family.
    let reused = token(&[("grant_type", "refresh_token"), ("refresh_token", &r0)]);
    assert_eq!(reused.status, 400, "{}", reused.body);
    let revoked = Browser::new(&base).post_form_with(
        "/revoke",
        &[("token", tokens["access_token"].as_str().unwrap())],
        &[("Authorization", &web_basic)],
    );
    assert_eq!(revoked.status, 200);
    // A machine client fails to authenticate until it is throttled.
    for expected in [401, 401, 429] {
        let reply = Browser::new(&base).post_form(
            "/token",
            &[
                ("grant_type", "client_credentials"),
                ("client_id", &batch_id),
                ("client_secret", "wrong-secret-value"),
            ],
        );
        assert_eq!(reply.status, expected, "{}", reply.body);
    }
    // An account locked by failed sign-ins.
    let mut other = Browser::new(&base);
    for _ in 0..6 {
        sign_in(&mut other, "bob", &wrong);
    }
    sign_in(&mut other, "bob", &wrong);
    // Logout.
    let page = browser.get("/logout");
    let csrf = page.input_value("csrf_token").unwrap();
    assert_eq!(browser.post_form("/logout", &[("csrf_token", &csrf)]).status, 200);

    let logs = server.stop();
    let events: Vec<Value> = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["target"] == "audit")
        .collect();
    for name in [
        "sign_in_failed",
        "sign_in_succeeded",
        "consent_denied",
        "consent_granted",
        "refresh_reuse_detected",
        "token_revoked",
        "client_authentication_failed",
        "throttled",
        "account_locked",
        "logged_out",
    ] {
        let event = events
            .iter()
            .find(|e| e["audit"] == name)
            .unwrap_or_else(|| panic!("no {name} event in:\n{logs}"));
        assert_eq!(event["client_ip"], "127.0.0.1", "{event}");
        let request_id = event["spans"]
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|span| span["request_id"].as_str());
        assert!(
            request_id.is_some_and(|id| !id.is_empty()),
            "{name} has no request id: {event}"
        );
        assert!(
            event.get("client_id").is_some() && event.get("user_id").is_some(),
            "{event}"
        );
    }
    let by_name = |name: &str| events.iter().find(|e| e["audit"] == name).unwrap().clone();
    assert_eq!(by_name("refresh_reuse_detected")["client_id"], web_id.as_str());
    assert_ne!(by_name("refresh_reuse_detected")["user_id"], "-");
    assert_ne!(by_name("sign_in_succeeded")["user_id"], "-");
    assert_eq!(by_name("consent_granted")["client_id"], web_id.as_str());
    for name in ["user_created", "client_created", "key_rotated"] {
        assert!(cli_logs.contains(name), "no {name} in the CLI log: {cli_logs}");
    }

    let mut secrets = vec![
        PASSWORD.to_owned(),
        wrong,
        code,
        verifier,
        web_secret,
        session,
        r0,
        r1,
        tokens["access_token"].as_str().unwrap().to_owned(),
        web_basic.trim_start_matches("Basic ").to_owned(),
    ];
    secrets.push("wrong-secret-value".into());
    for secret in &secrets {
        assert!(!logs.contains(secret.as_str()), "a secret is in the log:\n{logs}");
        assert!(!cli_logs.contains(secret.as_str()), "a secret is in the CLI log");
    }
}

// ---------------------------------------------------------------------------
// Admin listener and database outages

#[test]
fn admin_listener_serves_health_and_metrics_and_the_public_port_serves_neither() {
    let app = spawn_app();
    let mut admin = Browser::new(&app.admin);
    let health = admin.get("/healthz");
    assert_eq!(health.status, 200, "{}", health.body);

    for _ in 0..2 {
        assert_eq!(app.http().get("/.well-known/jwks.json").status, 200);
    }
    assert_eq!(app.http().post_form("/token", &[]).status, 400);
    let metrics = admin.get("/metrics");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{:?}",
        metrics.headers
    );
    let text = metrics.body;
    assert!(
        text.contains(
            "auth_http_requests_total{method=\"GET\",route=\"/.well-known/jwks.json\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(
        text.contains("auth_http_requests_total{method=\"POST\",route=\"/token\",status=\"400\"} 1"),
        "{text}"
    );
    assert!(
        text.contains(
            "auth_http_request_duration_seconds_count{method=\"GET\",route=\"/.well-known/jwks.json\",status=\"200\"} 2"
        ),
        "{text}"
    );
    assert!(text.contains("le=\"+Inf\""), "{text}");

    for path in ["/healthz", "/metrics"] {
        assert_eq!(app.http().get(path).status, 404, "{path} on the public port");
    }
    for path in ["/authorize", "/login", "/.well-known/jwks.json", "/"] {
        assert_eq!(admin.get(path).status, 404, "{path} on the admin port");
    }
}

#[test]
fn database_outage_turns_health_and_requests_into_503_and_the_server_recovers() {
    let mut proxy = TcpProxy::to_postgres();
    let db = TestDatabase::create("auth_test");
    let env = test_env(&db.url_via(&proxy), |_| {});
    let app = start(db, env);
    app.create_user("alice", &["user"]);
    let client = app.spa_client();
    let (_, challenge) = pkce();
    let authorize = authorize_url(&client, &challenge, &[]);
    let health = || Browser::new(&app.admin).get("/healthz").status;
    assert_eq!(health(), 200);
    assert_eq!(app.browser().get(&authorize).status, 302);

    proxy.stop();
    assert!(
        eventually(Duration::from_secs(10), || (health() == 503).then_some(())).is_some(),
        "/healthz did not turn 503"
    );
    let started = Instant::now();
    let page = app.browser().get(&authorize);
    assert_eq!(page.status, 503, "{}", page.body);
    assert_eq!(page.header("location"), None);
    let token = app.http().post_form(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", "whatever"),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("client_id", &client.client_id),
            ("code_verifier", &pkce().0),
        ],
    );
    assert_eq!(token.status, 503, "{}", token.body);
    assert_eq!(token.header("cache-control"), Some("no-store"));
    let error = token.json()["error"].as_str().unwrap().to_owned();
    assert!(
        matches!(error.as_str(), "server_error" | "temporarily_unavailable"),
        "{error}"
    );
    assert!(
        !token.body.to_lowercase().contains("connection"),
        "{}",
        token.body
    );
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "answers took {:?}",
        started.elapsed()
    );

    proxy.start_again();
    assert!(
        eventually(Duration::from_secs(20), || (health() == 200).then_some(())).is_some(),
        "/healthz did not recover"
    );
    assert_eq!(app.browser().get(&authorize).status, 302);
}

#[test]
fn unreachable_database_at_start_up_exits_non_zero_with_one_clear_line() {
    let port = free_port();
    let db = TestDatabase::reserve("auth_test");
    let env = serve_env(&db, |env| {
        env.insert(
            "AUTH_DATABASE_URL".into(),
            format!("postgres://127.0.0.1:{port}/{}", db.name),
        );
    });
    let mut child = auth_binary(&env)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = eventually(Duration::from_secs(20), || child.try_wait().ok().flatten());
    if status.is_none() {
        let _ = child.kill();
        panic!("serve did not exit although the database is unreachable");
    }
    let output = child.wait_with_output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "{stderr}");
    assert!(lines[0].contains("cannot reach the auth database"), "{stderr}");
    assert!(lines[0].contains("AUTH_DATABASE_URL"), "{stderr}");
}
