//! Test harness: each test gets its own server on free ports and its own
//! freshly created database, dropped at the end, so tests run in parallel.
//! Logs go nowhere unless `TEST_LOG=1`.

use std::collections::HashMap;
use std::sync::Once;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use auth_server::config::{KEYS, Settings};
use auth_server::domain::{Password, PasswordHash, Roles, Username};
use auth_server::model::{Client, User};
use auth_server::registration::ClientRegistration;
use auth_server::startup::Application;
use auth_server::state::AppState;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use chrono::Utc;
use oauth_common::config::ConfigSource;
use oauth_common::testing::TestDatabase;
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";

static LOGGING: Once = Once::new();

fn init_logging() {
    LOGGING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            oauth_common::telemetry::init(oauth_common::telemetry::LogFormat::Pretty);
        }
    });
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub issuer: String,
    pub state: web::Data<AppState>,
    pub env: HashMap<String, String>,
    handles: Option<(ServerHandle, ServerHandle)>,
    thread: Option<JoinHandle<()>>,
    // Dropped last: after the server has stopped.
    pub db: TestDatabase,
}

/// Settings for a test server; `customize` may change any of them.
pub fn test_env(
    db_url: &str,
    customize: impl FnOnce(&mut HashMap<String, String>),
) -> HashMap<String, String> {
    let port = free_port();
    let key: String = (0..32).map(|_| format!("{:02x}", rand_byte())).collect();
    let mut env: HashMap<String, String> = [
        ("AUTH_DATABASE_URL", db_url.to_owned()),
        ("AUTH_LISTEN", format!("127.0.0.1:{port}")),
        ("AUTH_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("AUTH_ISSUER", format!("http://127.0.0.1:{port}")),
        ("AUTH_KEY_ENCRYPTION_KEY", key),
        ("AUTH_WORKERS", "2".to_owned()),
        ("AUTH_DATABASE_POOL_SIZE", "4".to_owned()),
        // Every test client comes from 127.0.0.1; tests of the failure
        // limits set their own.
        ("AUTH_IP_FAILURE_LIMIT", "100000".to_owned()),
        ("AUTH_CLIENT_FAILURE_LIMIT", "100000".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    customize(&mut env);
    env
}

fn rand_byte() -> u8 {
    let mut b = [0u8; 1];
    getrandom::fill(&mut b).expect("rng");
    b[0]
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

pub fn spawn_app_with(customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    let db = TestDatabase::create("auth_test");
    let env = test_env(&db.url(), customize);
    start(db, env)
}

/// Starts a server with exactly these settings on an existing database.
pub fn start(db: TestDatabase, env: HashMap<String, String>) -> TestApp {
    init_logging();
    let settings = Settings::from_source(&ConfigSource::from_maps(KEYS, HashMap::new(), env.clone()))
        .expect("test settings");
    let issuer = settings.issuer.as_str().to_owned();
    let app = Application::build(settings).expect("server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    let state = app.state();
    let handles = app.handles();
    let thread = std::thread::spawn(move || {
        let _ = actix_web::rt::System::new().block_on(app.run_until_stopped());
    });
    TestApp {
        base,
        admin,
        issuer,
        state,
        env,
        handles: Some(handles),
        thread: Some(thread),
        db,
    }
}

impl TestApp {
    /// Stops the server (the database stays until the value is dropped).
    pub fn stop(&mut self) {
        if let Some((server, admin)) = self.handles.take() {
            // A server whose system has already ended may never answer `stop`.
            actix_web::rt::System::new().block_on(async {
                let stop = async {
                    server.stop(false).await;
                    admin.stop(false).await;
                };
                let _ = actix_web::rt::time::timeout(std::time::Duration::from_secs(15), stop).await;
            });
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn create_user(&self, username: &str, roles: &[&str]) -> User {
        let name = Username::parse(username).expect("username");
        let password = Password::parse(PASSWORD, &name).expect("password");
        let hash = PasswordHash::create(&password).expect("hash");
        let roles = Roles::parse(roles).expect("roles");
        let mut conn = self.db.connect();
        match auth_server::storage::users::create(&mut conn, name.as_str(), &hash, &roles, Utc::now()) {
            Ok(user) => user,
            Err(e) => panic!("create user: {e:?}"),
        }
    }

    /// Registers a client; returns it and its secret (confidential only).
    pub fn create_client(&self, registration: ClientRegistration) -> (Client, Option<String>) {
        let new = registration
            .check(&self.state.settings.default_audience)
            .unwrap_or_else(|e| panic!("registration: {e}"));
        let mut conn = self.db.connect();
        auth_server::storage::clients::insert(&mut conn, &new.client, Utc::now()).expect("insert client");
        (new.client, new.secret)
    }

    /// A first-party public SPA client with one redirect URI.
    pub fn spa_client(&self) -> Client {
        self.create_client(ClientRegistration {
            name: "Test SPA".into(),
            redirect_uris: vec!["http://127.0.0.1:5173/callback".into()],
            first_party: true,
            ..Default::default()
        })
        .0
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }

    /// A client for the JSON endpoints (no cookies, no redirects).
    pub fn http(&self) -> Browser {
        Browser::new(&self.base)
    }

    pub fn sql_count(&self, sql: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        let mut conn = self.db.connect();
        diesel::sql_query(sql)
            .get_result::<Count>(&mut conn)
            .expect("count query")
            .n
    }

    pub fn sql_exec(&self, sql: &str) {
        use diesel::connection::SimpleConnection as _;
        let mut conn = self.db.connect();
        conn.batch_execute(sql).expect("sql");
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop();
    }
}

/// PKCE verifier and S256 challenge.
pub fn pkce() -> (String, String) {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("rng");
    let verifier = URL_SAFE_NO_PAD.encode(bytes);
    let challenge = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()));
    (verifier, challenge)
}

pub fn basic(client_id: &str, secret: &str) -> String {
    format!("Basic {}", STANDARD.encode(format!("{client_id}:{secret}")))
}

/// A response, read whole.
#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, Vec<String>>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .get(&name.to_ascii_lowercase())
            .and_then(|v| v.first())
            .map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }

    /// The `Location` header resolved to an absolute URL.
    pub fn location(&self, base: &str) -> Option<url::Url> {
        let location = self.header("location")?;
        url::Url::parse(base).ok()?.join(location).ok()
    }

    /// The value of a hidden input (or any input) named `name`.
    pub fn input_value(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(html_unescape(&self.body[start..end]))
    }

    /// The `action` of the first form.
    pub fn form_action(&self) -> Option<String> {
        let start = self.body.find("action=\"")? + "action=\"".len();
        let end = self.body[start..].find('"')? + start;
        Some(html_unescape(&self.body[start..end]))
    }
}

pub fn html_unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// A tiny user agent: no redirects followed, its own cookie jar.
pub struct Browser {
    base: String,
    agent: ureq::Agent,
    pub cookies: HashMap<String, String>,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None)
            .build()
            .into();
        Self {
            base: base.to_owned(),
            agent,
            cookies: HashMap::new(),
        }
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{}", self.base, url)
        }
    }

    fn cookie_header(&self) -> Option<String> {
        if self.cookies.is_empty() {
            return None;
        }
        Some(
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; "),
        )
    }

    fn read(&mut self, response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        let mut response = response.expect("request sent");
        let status = response.status().as_u16();
        let mut headers: HashMap<String, Vec<String>> = HashMap::new();
        for (name, value) in response.headers() {
            headers
                .entry(name.as_str().to_ascii_lowercase())
                .or_default()
                .push(value.to_str().unwrap_or("").to_owned());
        }
        for set in headers.get("set-cookie").cloned().unwrap_or_default() {
            let pair = set.split(';').next().unwrap_or("");
            if let Some((k, v)) = pair.split_once('=') {
                let expired = set.to_ascii_lowercase().contains("max-age=0");
                if expired || v.is_empty() {
                    self.cookies.remove(k.trim());
                } else {
                    self.cookies.insert(k.trim().to_owned(), v.to_owned());
                }
            }
        }
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Reply {
            status,
            headers,
            body,
        }
    }

    pub fn get(&mut self, url: &str) -> Reply {
        self.get_with(url, &[])
    }

    pub fn get_with(&mut self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.get(&self.absolute(url));
        if let Some(cookie) = self.cookie_header() {
            request = request.header("Cookie", &cookie);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.call();
        self.read(response)
    }

    pub fn post_form(&mut self, url: &str, fields: &[(&str, &str)]) -> Reply {
        self.post_form_with(url, fields, &[])
    }

    pub fn post_form_with(&mut self, url: &str, fields: &[(&str, &str)], headers: &[(&str, &str)]) -> Reply {
        let mut request = self.agent.post(&self.absolute(url));
        if let Some(cookie) = self.cookie_header() {
            request = request.header("Cookie", &cookie);
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send_form(fields.iter().copied());
        self.read(response)
    }

    /// Sends a raw body with a content type.
    pub fn post_raw(&mut self, url: &str, content_type: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = self
            .agent
            .post(&self.absolute(url))
            .header("Content-Type", content_type);
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = request.send(body);
        self.read(response)
    }

    pub fn options(&mut self, url: &str, headers: &[(&str, &str)]) -> Reply {
        let mut request = ureq::http::Request::builder()
            .method("OPTIONS")
            .uri(self.absolute(url));
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let response = self.agent.run(request.body(()).expect("request"));
        self.read(response)
    }
}

/// An authorization request URL with the given extra parameters.
pub fn authorize_url(client: &Client, challenge: &str, extra: &[(&str, &str)]) -> String {
    let mut url = url::Url::parse("http://placeholder/authorize").expect("url");
    {
        let mut q = url.query_pairs_mut();
        q.append_pair("response_type", "code")
            .append_pair("client_id", &client.client_id)
            .append_pair("redirect_uri", client.redirect_uris[0].as_str())
            .append_pair("state", "st4te")
            .append_pair("code_challenge", challenge)
            .append_pair("code_challenge_method", "S256");
        for (k, v) in extra {
            q.append_pair(k, v);
        }
    }
    format!("/authorize?{}", url.query().unwrap_or(""))
}

impl TestApp {
    /// Signs `browser` in as `username` through the login page.
    pub fn login(&self, browser: &mut Browser, username: &str) {
        let page = browser.get("/login");
        assert_eq!(page.status, 200, "{}", page.body);
        let csrf = page.input_value("csrf_token").expect("csrf token");
        let reply = browser.post_form(
            "/login",
            &[
                ("username", username),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
        );
        assert_eq!(reply.status, 303, "login failed: {}", reply.body);
    }

    /// Runs an authorization request for a signed-in browser and returns
    /// the redirect back to the client (follows login if needed).
    pub fn authorize(&self, browser: &mut Browser, url: &str, username: &str) -> url::Url {
        let first = browser.get(url);
        let reply = sign_in_if_asked(browser, first, username);
        assert!(
            matches!(reply.status, 302 | 303),
            "expected a redirect, got {}: {}",
            reply.status,
            reply.body
        );
        reply.location(&self.base).expect("location")
    }

    /// The full code flow for a first-party public client; returns the
    /// token response.
    pub fn code_flow(&self, client: &Client, username: &str, extra: &[(&str, &str)]) -> Value {
        let mut browser = self.browser();
        let (verifier, challenge) = pkce();
        let back = self.authorize(&mut browser, &authorize_url(client, &challenge, extra), username);
        let code = query_value(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
        let reply = self.http().post_form(
            "/token",
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", client.redirect_uris[0].as_str()),
                ("client_id", &client.client_id),
                ("code_verifier", &verifier),
            ],
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }
}

pub fn query_value(url: &url::Url, name: &str) -> Option<String> {
    url.query_pairs()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

/// The claims of a JWT, without verifying it (tests verify separately).
pub fn jwt_claims(token: &str) -> Value {
    let payload = token.split('.').nth(1).expect("payload");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).expect("base64")).expect("json")
}

pub fn jwt_header(token: &str) -> Value {
    let header = token.split('.').next().expect("header");
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(header).expect("base64")).expect("json")
}

// ---------------------------------------------------------------------------
// Token lifecycle: refresh, client_credentials, introspection, revocation,
// logout.

/// Asserts an RFC 6749 section 5.2 error: this status, this `error` code,
/// and a response that must not be cached.
pub fn assert_oauth_error(reply: &Reply, status: u16, code: &str) {
    assert_eq!(reply.status, status, "{}", reply.body);
    assert_eq!(reply.json()["error"], code, "{}", reply.body);
    assert_eq!(
        reply.header("cache-control"),
        Some("no-store"),
        "{:?}",
        reply.headers
    );
}

/// `{"active": false}`, the only thing an inactive token may say.
pub fn inactive() -> Value {
    serde_json::json!({ "active": false })
}

impl TestApp {
    /// The code flow in `browser` (so the grant belongs to its session);
    /// confidential clients pass their secret and authenticate with Basic.
    pub fn code_flow_in(
        &self,
        browser: &mut Browser,
        client: &Client,
        secret: Option<&str>,
        username: &str,
        extra: &[(&str, &str)],
    ) -> Value {
        let (verifier, challenge) = pkce();
        let back = self.authorize(browser, &authorize_url(client, &challenge, extra), username);
        let code = query_value(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
        let mut fields = vec![
            ("grant_type", "authorization_code"),
            ("code", code.as_str()),
            ("redirect_uri", client.redirect_uris[0].as_str()),
            ("code_verifier", verifier.as_str()),
        ];
        let authorization = secret.map(|s| basic(&client.client_id, s));
        let mut headers = Vec::new();
        match &authorization {
            Some(h) => headers.push(("Authorization", h.as_str())),
            None => fields.push(("client_id", client.client_id.as_str())),
        }
        let reply = self.http().post_form_with("/token", &fields, &headers);
        assert_eq!(reply.status, 200, "{}", reply.body);
        reply.json()
    }

    /// A confidential client allowed to introspect: (client_id, secret).
    pub fn introspector(&self) -> (String, String) {
        let (client, secret) = self.create_client(ClientRegistration {
            name: "Resource server".into(),
            confidential: true,
            allow_introspection: true,
            ..Default::default()
        });
        (client.client_id, secret.expect("secret"))
    }

    /// `POST /introspect` authenticated with Basic as `caller`.
    pub fn introspect_as(&self, caller: &(String, String), fields: &[(&str, &str)]) -> Reply {
        let authorization = basic(&caller.0, &caller.1);
        self.http()
            .post_form_with("/introspect", fields, &[("Authorization", &authorization)])
    }

    /// The introspection answer for `token` (asserts 200).
    pub fn introspect(&self, caller: &(String, String), token: &str) -> Value {
        let reply = self.introspect_as(caller, &[("token", token)]);
        assert_eq!(reply.status, 200, "{}", reply.body);
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        reply.json()
    }

    /// `grant_type=refresh_token` by a public client.
    pub fn refresh(&self, client: &Client, refresh_token: &str) -> Reply {
        self.refresh_with(client, refresh_token, &[])
    }

    pub fn refresh_with(&self, client: &Client, refresh_token: &str, extra: &[(&str, &str)]) -> Reply {
        let mut fields = vec![
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client.client_id.as_str()),
        ];
        fields.extend_from_slice(extra);
        self.http().post_form("/token", &fields)
    }

    /// `POST /revoke` by a public client (client_id alone).
    pub fn revoke_public(&self, client: &Client, token: &str) -> Reply {
        self.http().post_form(
            "/revoke",
            &[("token", token), ("client_id", client.client_id.as_str())],
        )
    }
}

/// The string at `key` of a JSON object.
pub fn str_at<'v>(value: &'v Value, key: &str) -> &'v str {
    value[key]
        .as_str()
        .unwrap_or_else(|| panic!("no string {key:?} in {value}"))
}

// ---------------------------------------------------------------------------
// Foundation and code flow: the real binary, a second instance on the same
// database, and authorizations that go through the consent page.

/// What one run of the `auth-server` binary printed.
#[derive(Debug)]
pub struct BinaryRun {
    pub status: std::process::ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl BinaryRun {
    /// Standard output as one JSON value.
    pub fn json(&self) -> Value {
        serde_json::from_str(self.stdout.trim())
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }

    /// The non-empty lines of standard error.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr.lines().filter(|l| !l.trim().is_empty()).collect()
    }

    /// Asserts a failure: non-zero status, exactly one line on standard
    /// error that contains `needle`, nothing on standard output.
    pub fn assert_one_line_error(&self, needle: &str) {
        assert!(!self.status.success(), "expected a failure: {self:?}");
        let lines = self.stderr_lines();
        assert_eq!(lines.len(), 1, "expected one line on stderr: {self:?}");
        assert!(
            lines[0].to_lowercase().contains(&needle.to_lowercase()),
            "stderr does not mention {needle:?}: {self:?}"
        );
        assert_eq!(self.stdout.trim(), "", "{self:?}");
    }
}

/// A command for the real binary with exactly these settings: the test
/// process's own `AUTH_*` and `RUST_LOG` variables do not leak in.
pub fn auth_binary(env: &HashMap<String, String>) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_auth-server"));
    command.env_clear();
    for (key, value) in std::env::vars() {
        if matches!(key.as_str(), "PATH" | "HOME" | "USER" | "LANG") || key.starts_with("PG") {
            command.env(key, value);
        }
    }
    command.envs(env).current_dir(std::env::temp_dir());
    command
}

/// Runs the binary with `args`, feeding `stdin`, and waits for it.
pub fn run_auth_binary(env: &HashMap<String, String>, args: &[&str], stdin: &str) -> BinaryRun {
    use std::io::Write as _;
    use std::process::Stdio;
    let mut child = auth_binary(env)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start auth-server");
    if let Some(mut input) = child.stdin.take() {
        // The program may exit before reading (bad arguments).
        let _ = input.write_all(stdin.as_bytes());
    }
    let output = child.wait_with_output().expect("auth-server ran");
    BinaryRun {
        status: output.status,
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// Another server instance on an existing database; unlike [`TestApp`] it
/// does not own the database.
pub struct Instance {
    pub base: String,
    pub admin: String,
    pub issuer: String,
    pub state: web::Data<AppState>,
    handles: Option<(ServerHandle, ServerHandle)>,
    thread: Option<JoinHandle<()>>,
}

/// The settings of a second instance behind the same public issuer as
/// `first`: same database and key-encryption key, its own ports.
pub fn peer_env(first: &TestApp) -> HashMap<String, String> {
    let mut env = first.env.clone();
    env.insert("AUTH_LISTEN".into(), format!("127.0.0.1:{}", free_port()));
    env.insert("AUTH_ADMIN_LISTEN".into(), "127.0.0.1:0".into());
    env
}

/// Starts an instance with these settings, or says why it could not.
pub fn start_instance(env: &HashMap<String, String>) -> Result<Instance, String> {
    init_logging();
    let settings = Settings::from_source(&ConfigSource::from_maps(KEYS, HashMap::new(), env.clone()))
        .map_err(|e| e.to_string())?;
    let issuer = settings.issuer.as_str().to_owned();
    let app = Application::build(settings).map_err(|e| e.to_string())?;
    let base = format!("http://127.0.0.1:{}", app.port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    let state = app.state();
    let handles = app.handles();
    let thread = std::thread::spawn(move || {
        let _ = actix_web::rt::System::new().block_on(app.run_until_stopped());
    });
    Ok(Instance {
        base,
        admin,
        issuer,
        state,
        handles: Some(handles),
        thread: Some(thread),
    })
}

impl Instance {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    pub fn browser(&self) -> Browser {
        Browser::new(&self.base)
    }
}

impl Drop for Instance {
    fn drop(&mut self) {
        if let Some((server, admin)) = self.handles.take() {
            // A server whose system has already ended may never answer `stop`.
            actix_web::rt::System::new().block_on(async {
                let stop = async {
                    server.stop(false).await;
                    admin.stop(false).await;
                };
                let _ = actix_web::rt::time::timeout(std::time::Duration::from_secs(15), stop).await;
            });
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `check` until it returns `Some` or `within` has passed.
pub fn eventually<T>(within: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = std::time::Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return Some(found);
        }
        if std::time::Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether a reply is the consent page.
pub fn is_consent_page(reply: &Reply) -> bool {
    reply.status == 200 && reply.body.contains("name=\"decision\" value=\"approve\"")
}

/// Signs in through the login page when `reply` redirects there; returns
/// the answer to the authorization request after sign-in.
pub fn sign_in_if_asked(browser: &mut Browser, reply: Reply, username: &str) -> Reply {
    let to_login = matches!(reply.status, 302 | 303)
        && reply.header("location").is_some_and(|l| l.starts_with("/login"));
    if !to_login {
        return reply;
    }
    let login_url = reply.header("location").expect("location").to_owned();
    let page = browser.get(&login_url);
    let csrf = page.input_value("csrf_token").expect("csrf");
    let action = page.form_action().expect("action");
    let posted = browser.post_form(
        &action,
        &[
            ("username", username),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
    );
    assert_eq!(posted.status, 303, "{}", posted.body);
    let next = posted.header("location").expect("location").to_owned();
    browser.get(&next)
}

/// Answers the consent page shown in `page` with `decision`.
pub fn decide_consent(browser: &mut Browser, page: &Reply, decision: &str) -> Reply {
    assert!(is_consent_page(page), "not the consent page: {}", page.body);
    let csrf = page.input_value("csrf_token").expect("csrf");
    let action = page.form_action().expect("action");
    browser.post_form(&action, &[("csrf_token", &csrf), ("decision", decision)])
}

impl TestApp {
    /// Like [`TestApp::authorize`], but approves the consent page when it
    /// is shown.
    pub fn authorize_approving(&self, browser: &mut Browser, url: &str, username: &str) -> url::Url {
        let first = browser.get(url);
        let mut reply = sign_in_if_asked(browser, first, username);
        if is_consent_page(&reply) {
            reply = decide_consent(browser, &reply, "approve");
            assert_eq!(reply.status, 303, "{}", reply.body);
        }
        assert!(
            matches!(reply.status, 302 | 303),
            "expected a redirect, got {}: {}",
            reply.status,
            reply.body
        );
        reply.location(&self.base).expect("location")
    }

    /// A fresh code for `client` (signing in and approving as needed):
    /// `(code, verifier)`.
    pub fn obtain_code(
        &self,
        browser: &mut Browser,
        client: &Client,
        username: &str,
        extra: &[(&str, &str)],
    ) -> (String, String) {
        let (verifier, challenge) = pkce();
        let back = self.authorize_approving(browser, &authorize_url(client, &challenge, extra), username);
        let code = query_value(&back, "code").unwrap_or_else(|| panic!("no code in {back}"));
        (code, verifier)
    }

    /// `grant_type=authorization_code` for `client`: Basic when `secret` is
    /// given, `client_id` in the body otherwise.
    pub fn redeem_code(&self, client: &Client, secret: Option<&str>, code: &str, verifier: &str) -> Reply {
        redeem_code_at(&self.base, client, secret, code, verifier)
    }
}

/// `grant_type=authorization_code` at the server at `base`.
pub fn redeem_code_at(
    base: &str,
    client: &Client,
    secret: Option<&str>,
    code: &str,
    verifier: &str,
) -> Reply {
    let mut fields = vec![
        ("grant_type", "authorization_code"),
        ("code", code),
        ("redirect_uri", client.redirect_uris[0].as_str()),
        ("code_verifier", verifier),
    ];
    let authorization = secret.map(|s| basic(&client.client_id, s));
    let mut headers = Vec::new();
    match &authorization {
        Some(h) => headers.push(("Authorization", h.as_str())),
        None => fields.push(("client_id", client.client_id.as_str())),
    }
    Browser::new(base).post_form_with("/token", &fields, &headers)
}

/// Whether a `Location` (or any URL) carries a query parameter `name`.
pub fn has_query(url: &url::Url, name: &str) -> bool {
    url.query_pairs().any(|(k, _)| k == name)
}
