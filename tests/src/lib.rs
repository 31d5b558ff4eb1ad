//! A whole system in one process for end-to-end tests and benchmarks: an
//! auth-server and a resource-server, each on its own fresh database, on
//! free loopback ports.

// Tests set up data at the wall-clock time the servers under test read.
#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::collections::HashMap;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::Utc;
use oauth_common::config::ConfigSource;
use oauth_common::testing::TestDatabase;
use serde_json::Value;

pub const PASSWORD: &str = "correct horse battery staple";
pub const SPA_REDIRECT: &str = "http://127.0.0.1:5173/callback";

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn env(pairs: &[(&str, String)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
}

struct Running {
    handles: (ServerHandle, ServerHandle),
    thread: Option<JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self) {
        // Once: a stopped server's handle may never answer again.
        if self.thread.is_none() {
            return;
        }
        let (server, admin) = self.handles.clone();
        // A server whose system has already ended may never answer `stop`.
        actix_web::rt::System::new().block_on(async {
            let stop = async {
                server.stop(false).await;
                admin.stop(false).await;
            };
            let _ = actix_web::rt::time::timeout(std::time::Duration::from_secs(15), stop).await;
        });
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Both servers. Dropping it stops them and drops their databases.
pub struct Stack {
    pub issuer: String,
    pub auth: String,
    pub auth_admin: String,
    pub api: String,
    pub resource_admin: String,
    pub audience: String,
    auth_running: Running,
    resource_running: Running,
    pub auth_db: TestDatabase,
    pub resource_db: TestDatabase,
}

/// Knobs for [`Stack::start_with`].
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Extra auth-server settings.
    pub auth_env: Vec<(&'static str, String)>,
    /// Workers per server (default 2).
    pub workers: Option<usize>,
    /// Database pool size per server (default 4).
    pub pool_size: Option<u32>,
}

impl Stack {
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    pub fn start_with(options: Options) -> Self {
        let workers = options.workers.unwrap_or(2).to_string();
        let pool = options.pool_size.unwrap_or(4).to_string();
        let auth_db = TestDatabase::create("e2e_auth");
        let resource_db = TestDatabase::create("e2e_resource");
        let auth_port = free_port();
        let resource_port = free_port();
        let issuer = format!("http://127.0.0.1:{auth_port}");
        let audience = format!("http://127.0.0.1:{resource_port}/api");
        let key: String = (0..32).map(|i| format!("{:02x}", (i * 7 + 3) as u8)).collect();

        let mut auth_env = env(&[
            ("AUTH_DATABASE_URL", auth_db.url()),
            ("AUTH_LISTEN", format!("127.0.0.1:{auth_port}")),
            ("AUTH_ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("AUTH_ISSUER", issuer.clone()),
            ("AUTH_KEY_ENCRYPTION_KEY", key),
            ("AUTH_DEFAULT_AUDIENCE", audience.clone()),
            ("AUTH_WORKERS", workers.clone()),
            ("AUTH_DATABASE_POOL_SIZE", pool.clone()),
        ]);
        for (k, v) in options.auth_env {
            auth_env.insert(k.to_owned(), v);
        }
        let auth_settings = auth_server::config::Settings::from_source(&ConfigSource::from_maps(
            auth_server::config::KEYS,
            HashMap::new(),
            auth_env,
        ))
        .expect("auth settings");
        let auth_app = auth_server::startup::Application::build(auth_settings).expect("auth-server starts");
        let auth = format!("http://127.0.0.1:{}", auth_app.port());
        let auth_admin = format!("http://127.0.0.1:{}", auth_app.admin_port());
        let auth_handles = auth_app.handles();
        let auth_thread = std::thread::spawn(move || {
            let _ = actix_web::rt::System::new().block_on(auth_app.run_until_stopped());
        });

        let resource_env = env(&[
            ("RESOURCE_DATABASE_URL", resource_db.url()),
            ("RESOURCE_LISTEN", format!("127.0.0.1:{resource_port}")),
            ("RESOURCE_ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("RESOURCE_ISSUER", issuer.clone()),
            ("RESOURCE_AUDIENCE", audience.clone()),
            ("RESOURCE_WORKERS", workers),
            ("RESOURCE_DATABASE_POOL_SIZE", pool),
        ]);
        let resource_settings = resource_server::config::Settings::from_source(&ConfigSource::from_maps(
            resource_server::config::KEYS,
            HashMap::new(),
            resource_env,
        ))
        .expect("resource settings");
        let resource_app =
            resource_server::startup::Application::build(resource_settings).expect("resource-server starts");
        let api = format!("http://127.0.0.1:{}", resource_app.port());
        let resource_admin = format!("http://127.0.0.1:{}", resource_app.admin_port());
        let resource_handles = resource_app.handles();
        let resource_thread = std::thread::spawn(move || {
            let _ = actix_web::rt::System::new().block_on(resource_app.run_until_stopped());
        });

        let stack = Self {
            issuer,
            auth,
            auth_admin,
            api,
            resource_admin,
            audience,
            auth_running: Running {
                handles: auth_handles,
                thread: Some(auth_thread),
            },
            resource_running: Running {
                handles: resource_handles,
                thread: Some(resource_thread),
            },
            auth_db,
            resource_db,
        };
        stack.wait_ready();
        stack
    }

    /// Waits until the resource server has the issuer's keys.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if http()
                .get(&format!("{}/healthz", self.resource_admin), None)
                .status
                == 200
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("the resource server never loaded the issuer's keys");
    }

    pub fn create_user(&self, username: &str, roles: &[&str]) -> auth_server::model::User {
        use auth_server::domain::{Password, PasswordHash, Roles, Username};
        let name = Username::parse(username).expect("username");
        let hash = PasswordHash::create(&Password::parse(PASSWORD, &name).expect("password")).expect("hash");
        let roles = Roles::parse(roles).expect("roles");
        let mut conn = self.auth_db.connect();
        auth_server::storage::users::create(&mut conn, name.as_str(), &hash, &roles, Utc::now())
            .expect("user")
    }

    /// Registers a client; returns its id and secret.
    pub fn create_client(
        &self,
        registration: auth_server::registration::ClientRegistration,
    ) -> (auth_server::model::Client, Option<String>) {
        let new = registration.check(&self.audience).expect("registration");
        let mut conn = self.auth_db.connect();
        auth_server::storage::clients::insert(&mut conn, &new.client, Utc::now()).expect("client");
        (new.client, new.secret)
    }

    /// A first-party public client (like the demo SPA).
    pub fn spa_client(&self, scopes: &[&str]) -> auth_server::model::Client {
        self.create_client(auth_server::registration::ClientRegistration {
            name: "SPA".into(),
            redirect_uris: vec![SPA_REDIRECT.into()],
            scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
            first_party: true,
            ..Default::default()
        })
        .0
    }

    /// Signs in through the login page and runs the code flow with PKCE;
    /// returns the token response.
    pub fn code_flow(&self, client_id: &str, username: &str, scope: &str) -> Value {
        self.code_flow_in(&mut Agent::new(&self.auth), client_id, username, scope)
    }

    /// [`Stack::code_flow`] in `browser`, which keeps the session cookie
    /// (to sign out with it later).
    pub fn code_flow_in(&self, browser: &mut Agent, client_id: &str, username: &str, scope: &str) -> Value {
        let verifier = URL_SAFE_NO_PAD.encode(random_bytes());
        let challenge = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()));
        let mut authorize = url::Url::parse(&format!("{}/authorize", self.auth)).expect("url");
        authorize
            .query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", client_id)
            .append_pair("redirect_uri", SPA_REDIRECT)
            .append_pair("scope", scope)
            .append_pair("state", "e2e-state")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let to_login = browser.get(authorize.as_str(), None);
        assert_eq!(to_login.status, 302, "{}", to_login.body);
        let login_page = browser.get(to_login.header("location").expect("location"), None);
        let csrf = login_page.input("csrf_token").expect("csrf_token");
        let action = login_page.form_action().expect("form action");
        let signed_in = browser.post_form(
            &action,
            &[
                ("username", username),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
            None,
        );
        assert_eq!(signed_in.status, 303, "{}", signed_in.body);
        let back = browser.get(signed_in.header("location").expect("location"), None);
        assert_eq!(back.status, 302, "{}", back.body);
        let location = url::Url::parse(back.header("location").expect("location")).expect("redirect");
        let param = |name: &str| {
            location
                .query_pairs()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.into_owned())
        };
        assert_eq!(param("state").as_deref(), Some("e2e-state"));
        assert_eq!(param("iss").as_deref(), Some(self.issuer.as_str()));
        let code = param("code").unwrap_or_else(|| panic!("no code: {location}"));
        let token = http().post_form(
            &format!("{}/token", self.auth),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", SPA_REDIRECT),
                ("client_id", client_id),
                ("code_verifier", &verifier),
            ],
            None,
        );
        assert_eq!(token.status, 200, "{}", token.body);
        token.json()
    }
}

/// Another resource-server instance of the stack (same database), with
/// settings of its own.
pub struct ResourceInstance {
    pub api: String,
    pub admin: String,
    running: Running,
}

impl ResourceInstance {
    pub fn stop(&mut self) {
        self.running.stop();
    }
}

impl Drop for ResourceInstance {
    fn drop(&mut self) {
        self.running.stop();
    }
}

impl Stack {
    /// A confidential client that may read the revocation feed: id, secret.
    pub fn events_client(&self) -> (String, String) {
        let (client, secret) = self.create_client(auth_server::registration::ClientRegistration {
            name: "Notes API".into(),
            confidential: true,
            allow_events: true,
            ..Default::default()
        });
        (
            client.client_id,
            secret.expect("a confidential client has a secret"),
        )
    }

    /// Stops the auth-server (its database stays).
    pub fn stop_auth(&mut self) {
        self.auth_running.stop();
    }

    /// Starts one more resource server on the stack's database with
    /// `extra` settings, and waits until it is ready (`/readyz`).
    pub fn start_resource(&self, extra: &[(&'static str, String)]) -> ResourceInstance {
        let instance = self.start_resource_unready(extra);
        let deadline = Instant::now() + Duration::from_secs(20);
        while http().get(&format!("{}/readyz", instance.admin), None).status != 200 {
            assert!(
                Instant::now() < deadline,
                "the resource server never became ready"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        instance
    }

    /// [`Stack::start_resource`] without waiting for it to be ready.
    pub fn start_resource_unready(&self, extra: &[(&'static str, String)]) -> ResourceInstance {
        let mut resource_env = env(&[
            ("RESOURCE_DATABASE_URL", self.resource_db.url()),
            ("RESOURCE_LISTEN", "127.0.0.1:0".into()),
            ("RESOURCE_ADMIN_LISTEN", "127.0.0.1:0".into()),
            ("RESOURCE_ISSUER", self.issuer.clone()),
            ("RESOURCE_AUDIENCE", self.audience.clone()),
            ("RESOURCE_WORKERS", "2".into()),
            ("RESOURCE_DATABASE_POOL_SIZE", "4".into()),
        ]);
        for (k, v) in extra {
            resource_env.insert((*k).to_owned(), v.clone());
        }
        let settings = resource_server::config::Settings::from_source(&ConfigSource::from_maps(
            resource_server::config::KEYS,
            HashMap::new(),
            resource_env,
        ))
        .expect("resource settings");
        let app = resource_server::startup::Application::build(settings).expect("resource-server starts");
        let api = format!("http://127.0.0.1:{}", app.port());
        let admin = format!("http://127.0.0.1:{}", app.admin_port());
        let handles = app.handles();
        let thread = std::thread::spawn(move || {
            let _ = actix_web::rt::System::new().block_on(app.run_until_stopped());
        });
        ResourceInstance {
            api,
            admin,
            running: Running {
                handles,
                thread: Some(thread),
            },
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        self.resource_running.stop();
        self.auth_running.stop();
    }
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("rng");
    bytes
}

/// A response read whole.
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

    pub fn input(&self, name: &str) -> Option<String> {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self.body.find(&marker)? + marker.len();
        let end = self.body[start..].find('"')? + start;
        Some(unescape(&self.body[start..end]))
    }

    pub fn form_action(&self) -> Option<String> {
        let start = self.body.find("action=\"")? + "action=\"".len();
        let end = self.body[start..].find('"')? + start;
        Some(unescape(&self.body[start..end]))
    }
}

fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// An HTTP client that follows no redirects, keeps cookies for one origin
/// and never treats a status as an error.
pub struct Agent {
    base: String,
    agent: ureq::Agent,
    cookies: HashMap<String, String>,
    /// Sent with every request (for example `X-Forwarded-For`).
    headers: Vec<(String, String)>,
}

pub fn http() -> Agent {
    Agent::new("")
}

impl Agent {
    pub fn new(base: &str) -> Self {
        Self::build(base, None)
    }

    /// An agent for an HTTPS `base` whose certificate chains to the PEM
    /// root `root_pem` (a test proxy's own CA).
    pub fn trusting(base: &str, root_pem: &[u8]) -> Self {
        Self::build(base, Some(root_pem))
    }

    fn build(base: &str, root_pem: Option<&[u8]>) -> Self {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(30)))
            .max_redirects(0)
            .http_status_as_error(false)
            .proxy(None);
        if let Some(pem) = root_pem {
            let root = ureq::tls::Certificate::from_pem(pem).expect("PEM root");
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .provider(ureq::tls::TlsProvider::NativeTls)
                    .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![root])))
                    .build(),
            );
        }
        Self {
            base: base.to_owned(),
            agent: config.build().into(),
            cookies: HashMap::new(),
            headers: Vec::new(),
        }
    }

    /// Sends `name: value` with every request from now on.
    pub fn with_header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    fn absolute(&self, url: &str) -> String {
        if url.starts_with("http") {
            url.to_owned()
        } else {
            format!("{}{}", self.base, url)
        }
    }

    fn read(&mut self, response: Result<ureq::http::Response<ureq::Body>, ureq::Error>) -> Reply {
        self.try_read(response).expect("request sent")
    }

    fn try_read(
        &mut self,
        response: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Reply, String> {
        let mut response = response.map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let mut headers = HashMap::new();
        for (name, value) in response.headers() {
            let value = value.to_str().unwrap_or("").to_owned();
            if name.as_str().eq_ignore_ascii_case("set-cookie")
                && let Some((k, v)) = value.split(';').next().and_then(|p| p.split_once('='))
            {
                if v.is_empty() {
                    self.cookies.remove(k);
                } else {
                    self.cookies.insert(k.to_owned(), v.to_owned());
                }
            }
            headers.insert(name.as_str().to_ascii_lowercase(), value);
        }
        let body = response.body_mut().read_to_string().map_err(|e| e.to_string())?;
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn cookie_header(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    pub fn get(&mut self, url: &str, bearer: Option<&str>) -> Reply {
        self.try_get(url, bearer).expect("request sent")
    }

    /// [`Agent::get`], with a failure to get any answer as an error.
    pub fn try_get(&mut self, url: &str, bearer: Option<&str>) -> Result<Reply, String> {
        let mut request = self.agent.get(&self.absolute(url));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(cookie) = self.cookie_header() {
            request = request.header("Cookie", &cookie);
        }
        if let Some(token) = bearer {
            request = request.header("Authorization", &format!("Bearer {token}"));
        }
        let response = request.call();
        self.try_read(response)
    }

    pub fn post_form(&mut self, url: &str, fields: &[(&str, &str)], basic: Option<(&str, &str)>) -> Reply {
        self.try_post_form(url, fields, basic).expect("request sent")
    }

    /// [`Agent::post_form`], with a failure to get any answer as an error.
    pub fn try_post_form(
        &mut self,
        url: &str,
        fields: &[(&str, &str)],
        basic: Option<(&str, &str)>,
    ) -> Result<Reply, String> {
        let mut request = self.agent.post(&self.absolute(url));
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        if let Some(cookie) = self.cookie_header() {
            request = request.header("Cookie", &cookie);
        }
        if let Some((id, secret)) = basic {
            let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{id}:{secret}"));
            request = request.header("Authorization", &format!("Basic {encoded}"));
        }
        let response = request.send_form(fields.iter().copied());
        self.try_read(response)
    }

    pub fn send_json(&mut self, method: &str, url: &str, bearer: &str, body: &Value) -> Reply {
        let request = ureq::http::Request::builder()
            .method(method)
            .uri(self.absolute(url))
            .header("Authorization", format!("Bearer {bearer}"))
            .header("Content-Type", "application/json")
            .body(body.to_string())
            .expect("request");
        let response = self.agent.run(request);
        self.read(response)
    }
}
