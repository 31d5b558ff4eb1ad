//! Test harness: a fake issuer (metadata + JWKS over real HTTP, with keys
//! generated at test time), a resource server per test with its own
//! database, and a token builder.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::{App, HttpResponse, HttpServer, web};
use josekit::jwk::KeyPair as _;
use josekit::jwk::alg::ec::EcKeyPair;
use josekit::jws::{ES256, JwsHeader};
use josekit::jwt::{self, JwtPayload};
use oauth_common::config::ConfigSource;
use oauth_common::testing::TestDatabase;
use resource_server::config::{KEYS, Settings};
use resource_server::startup::Application;
use serde_json::{Map, Value, json};

pub const AUDIENCE: &str = "http://127.0.0.1:8081/api";

static LOGGING: Once = Once::new();

fn init_logging() {
    LOGGING.call_once(|| {
        if std::env::var("TEST_LOG").is_ok() {
            oauth_common::telemetry::init(oauth_common::telemetry::LogFormat::Pretty);
        }
    });
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// A signing key made for the test.
#[derive(Clone)]
pub struct TestKey {
    pub kid: String,
    pub pair: EcKeyPair,
}

impl TestKey {
    pub fn new(kid: &str) -> Self {
        Self {
            kid: kid.to_owned(),
            pair: ES256.generate_key_pair().expect("key pair"),
        }
    }

    /// The public JWK as a JWKS entry.
    pub fn jwk(&self) -> Value {
        let mut jwk = self.pair.to_jwk_public_key();
        jwk.set_key_id(&self.kid);
        jwk.set_algorithm("ES256");
        jwk.set_key_use("sig");
        Value::Object(jwk.into())
    }

    /// Signs `claims` with header `typ`/`kid` (overridable).
    pub fn sign_with_header(&self, claims: &Value, typ: Option<&str>, kid: Option<&str>) -> String {
        let mut header = JwsHeader::new();
        if let Some(typ) = typ {
            header.set_token_type(typ);
        }
        if let Some(kid) = kid {
            header.set_key_id(kid);
        }
        let map: Map<String, Value> = claims.as_object().cloned().unwrap_or_default();
        let payload = JwtPayload::from_map(map).expect("payload");
        let signer = ES256
            .signer_from_der(self.pair.to_der_private_key())
            .expect("signer");
        jwt::encode_with_signer(&payload, &header, &signer).expect("sign")
    }

    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with_header(claims, Some("at+jwt"), Some(&self.kid))
    }
}

pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// Valid claims for `issuer` with the given scope; tests override fields.
pub fn claims(issuer: &str, sub: &str, scope: &str, roles: &[&str]) -> Value {
    let now = now();
    json!({
        "iss": issuer,
        "sub": sub,
        "aud": AUDIENCE,
        "exp": now + 300,
        "iat": now,
        "jti": uuid::Uuid::new_v4().to_string(),
        "client_id": "test-client",
        "scope": scope,
        "roles": roles,
        "preferred_username": format!("user-{sub}"),
    })
}

/// An issuer that serves RFC 8414 metadata and a JWKS we control.
pub struct FakeIssuer {
    pub url: String,
    pub keys: Arc<Mutex<Vec<Value>>>,
    /// SETs the fake revocation feed serves, in order (the cursor is the
    /// count already read).
    pub events: Arc<Mutex<Vec<String>>>,
    pub jwks_requests: Arc<AtomicU64>,
    handle: Option<ServerHandle>,
    thread: Option<JoinHandle<()>>,
    port: u16,
}

#[derive(Clone)]
struct IssuerState {
    url: String,
    keys: Arc<Mutex<Vec<Value>>>,
    requests: Arc<AtomicU64>,
    events: Arc<Mutex<Vec<String>>>,
}

async fn metadata(state: web::Data<IssuerState>) -> HttpResponse {
    HttpResponse::Ok().json(json!({
        "issuer": state.url,
        "jwks_uri": format!("{}/jwks", state.url),
        "revocation_feed_endpoint": format!("{}/events", state.url),
    }))
}

/// A feed that answers like the auth-server's (`POST /events`), briefly
/// waiting when there is nothing new.
async fn events(state: web::Data<IssuerState>, body: web::Json<Value>) -> HttpResponse {
    let cursor: usize = body["cursor"].as_str().and_then(|c| c.parse().ok()).unwrap_or(0);
    for _ in 0..10 {
        let all = state.events.lock().expect("events").clone();
        if all.len() > cursor {
            let sets: Map<String, Value> = all[cursor..]
                .iter()
                .enumerate()
                .map(|(i, set)| (format!("e{}", cursor + i), Value::from(set.clone())))
                .collect();
            return HttpResponse::Ok().json(json!({
                "sets": sets, "moreAvailable": false, "cursor": all.len().to_string(),
            }));
        }
        actix_web::rt::time::sleep(Duration::from_millis(100)).await;
    }
    HttpResponse::Ok().json(json!({ "sets": {}, "moreAvailable": false, "cursor": cursor.to_string() }))
}

async fn jwks(state: web::Data<IssuerState>) -> HttpResponse {
    state.requests.fetch_add(1, Ordering::SeqCst);
    let keys = state.keys.lock().expect("keys").clone();
    HttpResponse::Ok()
        .insert_header(("Cache-Control", "public, max-age=300"))
        .json(json!({ "keys": keys }))
}

impl FakeIssuer {
    /// Starts serving `keys` now.
    pub fn start(keys: &[&TestKey]) -> Self {
        let mut issuer = Self::not_started(keys);
        issuer.run();
        issuer
    }

    /// Reserves the address but does not listen yet (the auth server is
    /// down); call [`FakeIssuer::run`] later.
    pub fn not_started(keys: &[&TestKey]) -> Self {
        let port = free_port();
        Self {
            url: format!("http://127.0.0.1:{port}"),
            keys: Arc::new(Mutex::new(keys.iter().map(|k| k.jwk()).collect())),
            events: Arc::new(Mutex::new(Vec::new())),
            jwks_requests: Arc::new(AtomicU64::new(0)),
            handle: None,
            thread: None,
            port,
        }
    }

    pub fn run(&mut self) {
        let state = IssuerState {
            url: self.url.clone(),
            keys: self.keys.clone(),
            requests: self.jwks_requests.clone(),
            events: self.events.clone(),
        };
        let server = HttpServer::new(move || {
            App::new()
                .app_data(web::Data::new(state.clone()))
                .route("/.well-known/oauth-authorization-server", web::get().to(metadata))
                .route("/jwks", web::get().to(jwks))
                .route("/events", web::post().to(events))
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", self.port))
        .expect("bind fake issuer")
        .run();
        self.handle = Some(server.handle());
        self.thread = Some(std::thread::spawn(move || {
            let _ = actix_web::rt::System::new().block_on(server);
        }));
    }

    pub fn publish(&self, key: &TestKey) {
        self.keys.lock().expect("keys").push(key.jwk());
    }

    pub fn jwks_requests(&self) -> u64 {
        self.jwks_requests.load(Ordering::SeqCst)
    }
}

impl Drop for FakeIssuer {
    fn drop(&mut self) {
        if let Some(handle) = self.handle.take() {
            actix_web::rt::System::new().block_on(async {
                let _ = actix_web::rt::time::timeout(Duration::from_secs(15), handle.stop(false)).await;
            });
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

pub struct TestApp {
    pub base: String,
    pub admin: String,
    pub issuer: String,
    handles: Option<(ServerHandle, ServerHandle)>,
    thread: Option<JoinHandle<()>>,
    pub db: TestDatabase,
}

pub fn spawn_app(issuer: &str) -> TestApp {
    spawn_app_with(issuer, |_| {})
}

pub fn spawn_app_with(issuer: &str, customize: impl FnOnce(&mut HashMap<String, String>)) -> TestApp {
    init_logging();
    let db = TestDatabase::create("resource_test");
    let mut env: HashMap<String, String> = [
        ("RESOURCE_DATABASE_URL", db.url()),
        ("RESOURCE_LISTEN", "127.0.0.1:0".to_owned()),
        ("RESOURCE_ADMIN_LISTEN", "127.0.0.1:0".to_owned()),
        ("RESOURCE_ISSUER", issuer.to_owned()),
        ("RESOURCE_AUDIENCE", AUDIENCE.to_owned()),
        ("RESOURCE_CORS_ORIGINS", "http://127.0.0.1:5173".to_owned()),
        ("RESOURCE_WORKERS", "2".to_owned()),
        ("RESOURCE_DATABASE_POOL_SIZE", "4".to_owned()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    customize(&mut env);
    let settings =
        Settings::from_source(&ConfigSource::from_maps(KEYS, HashMap::new(), env)).expect("settings");
    let app = Application::build(settings).expect("server starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let admin = format!("http://127.0.0.1:{}", app.admin_port());
    let handles = app.handles();
    let thread = std::thread::spawn(move || {
        let _ = actix_web::rt::System::new().block_on(app.run_until_stopped());
    });
    TestApp {
        base,
        admin,
        issuer: issuer.to_owned(),
        handles: Some(handles),
        thread: Some(thread),
        db,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base, path)
    }

    /// Waits until the server has loaded the issuer's keys.
    pub fn wait_ready(&self) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::time::Instant::now() < deadline {
            if get(&format!("{}/healthz", self.admin), None).status == 200 {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("resource server never became ready");
    }
}

impl Drop for TestApp {
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

#[derive(Debug, Clone)]
pub struct Reply {
    pub status: u16,
    pub headers: HashMap<String, String>,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(30)))
        .max_redirects(0)
        .http_status_as_error(false)
        .proxy(None)
        .build()
        .into()
}

fn read(response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
    let mut response = response.expect("request sent");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_ascii_lowercase(),
                v.to_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let body = response.body_mut().read_to_string().unwrap_or_default();
    Reply {
        status,
        headers,
        body,
    }
}

/// Any request: `token` goes in `Authorization: Bearer`.
pub fn request(
    method: &str,
    url: &str,
    token: Option<&str>,
    headers: &[(&str, &str)],
    body: Option<&str>,
) -> Reply {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    if let Some(token) = token {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    let agent = agent();
    let response = match body {
        Some(body) => agent.run(builder.body(body.to_owned()).expect("request")),
        None => agent.run(builder.body(()).expect("request")),
    };
    read(response)
}

pub fn get(url: &str, token: Option<&str>) -> Reply {
    request("GET", url, token, &[], None)
}

pub fn send_json(method: &str, url: &str, token: Option<&str>, body: &Value) -> Reply {
    request(
        method,
        url,
        token,
        &[("Content-Type", "application/json")],
        Some(&body.to_string()),
    )
}

// ---------------------------------------------------------------------------
// Shared by the token, key, notes and HTTP tests.

/// Where the 401/403 challenges point (RFC 9728 section 5.1), derived from
/// [`AUDIENCE`].
pub const RESOURCE_METADATA: &str = "http://127.0.0.1:8081/.well-known/oauth-protected-resource/api";

/// The browser origin [`spawn_app`] allows.
pub const CORS_ORIGIN: &str = "http://127.0.0.1:5173";

/// Every scope a user can hold.
pub const ALL_USER_SCOPES: &str = "profile notes:read notes:write";

/// A started issuer with one key and a ready server that trusts it.
pub struct Setup {
    pub key: TestKey,
    pub issuer: FakeIssuer,
    pub app: TestApp,
}

impl Setup {
    pub fn new() -> Self {
        let key = TestKey::new("k1");
        let issuer = FakeIssuer::start(&[&key]);
        let app = spawn_app(&issuer.url);
        app.wait_ready();
        Self { key, issuer, app }
    }

    /// Valid claims for `sub` with `scope` and the `user` role.
    pub fn claims(&self, sub: &str, scope: &str) -> Value {
        claims(&self.issuer.url, sub, scope, &["user"])
    }

    /// A valid user token for `sub` with every user scope.
    pub fn token(&self, sub: &str) -> String {
        self.key.sign(&self.claims(sub, ALL_USER_SCOPES))
    }

    pub fn url(&self, path: &str) -> String {
        self.app.url(path)
    }
}

/// `claims` with `name` set to `value`.
pub fn with(claims: &Value, name: &str, value: Value) -> Value {
    let mut claims = claims.clone();
    claims[name] = value;
    claims
}

/// `claims` without `name`.
pub fn without(claims: &Value, name: &str) -> Value {
    let mut claims = claims.clone();
    if let Some(map) = claims.as_object_mut() {
        map.remove(name);
    }
    claims
}

pub fn b64url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A compact JWS built by hand, so tests can send what no library would.
pub fn raw_jwt(header: &Value, claims: &Value, signature: &[u8]) -> String {
    format!(
        "{}.{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes()),
        b64url(signature)
    )
}

/// Polls `check` every 50 ms until it holds or `within` has passed.
pub fn eventually(within: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = std::time::Instant::now() + within;
    loop {
        if check() {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Asserts an RFC 9457 problem response with `status` that leaks nothing
/// internal; returns the parsed body.
pub fn assert_problem(reply: &Reply, status: u16) -> Value {
    assert_eq!(reply.status, status, "{reply:?}");
    assert_eq!(
        reply.header("content-type"),
        Some("application/problem+json"),
        "{reply:?}"
    );
    let body = reply.json();
    assert_eq!(body["status"], status, "{body}");
    assert!(body["title"].is_string(), "{body}");
    assert!(body["detail"].is_string(), "{body}");
    let lower = reply.body.to_ascii_lowercase();
    for leak in [
        "panicked",
        "stack backtrace",
        "src/",
        ".rs:",
        "select ",
        "insert into",
        "diesel",
        "postgres",
        "sqlstate",
    ] {
        assert!(
            !lower.contains(leak),
            "problem body leaks {leak:?}: {}",
            reply.body
        );
    }
    body
}

/// Asserts a 401 for a missing token: a challenge with no error code
/// (RFC 6750 section 3.1) and a problem body.
pub fn assert_missing_token(reply: &Reply) {
    assert_problem(reply, 401);
    let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
    assert_eq!(
        challenge,
        format!("Bearer realm=\"notes\", resource_metadata=\"{RESOURCE_METADATA}\""),
        "{reply:?}"
    );
}

/// Asserts a 401 `invalid_token` challenge and a problem body that says no
/// more than the reason class.
pub fn assert_invalid_token(reply: &Reply) {
    let body = assert_problem(reply, 401);
    assert_eq!(body["detail"], "The access token is not valid.", "{body}");
    let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
    assert!(
        challenge.starts_with("Bearer realm=\"notes\", error=\"invalid_token\""),
        "{challenge}"
    );
    assert!(
        challenge.ends_with(&format!("resource_metadata=\"{RESOURCE_METADATA}\"")),
        "{challenge}"
    );
}

/// Asserts a 403 `insufficient_scope` challenge naming `scope`.
pub fn assert_insufficient_scope(reply: &Reply, scope: &str) -> Value {
    let body = assert_problem(reply, 403);
    let challenge = reply.header("www-authenticate").expect("WWW-Authenticate");
    assert_eq!(
        challenge,
        format!(
            "Bearer realm=\"notes\", error=\"insufficient_scope\", scope=\"{scope}\", \
             resource_metadata=\"{RESOURCE_METADATA}\""
        ),
        "{reply:?}"
    );
    body
}

impl TestKey {
    /// Signs any header and claims, even ones josekit would refuse to
    /// build (a string `exp`, an array `iss`).
    pub fn sign_raw(&self, header: &Value, claims: &Value) -> String {
        use josekit::jws::JwsSigner as _;
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let signer = ES256
            .signer_from_der(self.pair.to_der_private_key())
            .expect("signer");
        let signature = signer.sign(input.as_bytes()).expect("sign");
        format!("{input}.{}", b64url(&signature))
    }

    /// The header [`TestKey::sign`] uses.
    pub fn header(&self) -> Value {
        json!({"alg": "ES256", "typ": "at+jwt", "kid": self.kid})
    }
}

impl FakeIssuer {
    /// Stops serving (the auth server goes down); [`FakeIssuer::run`]
    /// starts it again on the same address.
    pub fn stop(&mut self) {
        if let Some(handle) = self.handle.take() {
            actix_web::rt::System::new().block_on(async {
                let _ = actix_web::rt::time::timeout(Duration::from_secs(15), handle.stop(false)).await;
            });
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
