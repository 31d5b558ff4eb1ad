//! Through a real proxy (issue 13): Debian's `caddy` with `tls internal` on
//! loopback, configured by `deploy/Caddyfile`, in front of two auth-server
//! instances and the resource server (the real binaries), all on one
//! Postgres reached through a TCP proxy that the test can cut.
//!
//! Skipped, with a line saying so, when `caddy` is not installed (`.ci/run`
//! installs it).

#![allow(
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use e2e::{Agent, PASSWORD, Reply, SPA_REDIRECT};
use oauth_common::testing::{TcpProxy, TestDatabase};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// `target/debug` (or wherever this test binary lives), with the two
/// server binaries built.
fn binaries() -> PathBuf {
    let dir = std::env::current_exe()
        .unwrap()
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .to_path_buf();
    if !dir.join("auth-server").exists() || !dir.join("resource-server").exists() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let built = Command::new(cargo)
            .args(["build", "--bin", "auth-server", "--bin", "resource-server"])
            .current_dir(repo())
            .status()
            .unwrap();
        assert!(built.success());
    }
    dir
}

fn caddy() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("caddy"))
        .find(|p| p.exists())
}

/// A free port on every one of `hosts`.
fn free_port_on(hosts: &[&str]) -> u16 {
    loop {
        let port = e2e::free_port();
        if hosts
            .iter()
            .all(|h| std::net::TcpListener::bind((*h, port)).is_ok())
        {
            return port;
        }
    }
}

/// A child process with its output kept.
struct Process {
    name: String,
    program: PathBuf,
    args: Vec<String>,
    env: HashMap<String, String>,
    child: Option<Child>,
    output: Arc<Mutex<String>>,
}

impl Process {
    fn start(name: &str, program: &Path, args: &[&str], env: HashMap<String, String>) -> Self {
        let mut process = Self {
            name: name.to_owned(),
            program: program.to_path_buf(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            env,
            child: None,
            output: Arc::new(Mutex::new(String::new())),
        };
        process.spawn();
        process
    }

    fn spawn(&mut self) {
        let mut command = Command::new(&self.program);
        command.env_clear();
        for (key, value) in std::env::vars() {
            if matches!(key.as_str(), "PATH" | "HOME" | "USER" | "LANG") || key.starts_with("PG") {
                command.env(key, value);
            }
        }
        let mut child = command
            .args(&self.args)
            .envs(&self.env)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn std::io::Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let output = Arc::clone(&self.output);
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    let mut out = output.lock().unwrap();
                    out.push_str(&line);
                    out.push('\n');
                }
            });
        }
        self.child = Some(child);
    }

    fn output(&self) -> String {
        self.output.lock().unwrap().clone()
    }

    fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    /// Sends SIGTERM and waits for the exit; returns the status and how long
    /// the process took.
    fn terminate(&mut self) -> (ExitStatus, Duration) {
        let started = Instant::now();
        self.signal("-TERM");
        let status = self.child.take().unwrap().wait().unwrap();
        (status, started.elapsed())
    }

    fn kill(&mut self) {
        self.signal("-KILL");
        let _ = self.child.take().unwrap().wait();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Waits until `url` answers 200 (plain HTTP on loopback).
fn wait_for(url: &str, within: Duration) {
    let deadline = Instant::now() + within;
    let mut agent = Agent::new("");
    loop {
        if agent.try_get(url, None).is_ok_and(|r| r.status == 200) {
            return;
        }
        assert!(Instant::now() < deadline, "{url} never answered 200");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn kek() -> String {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).unwrap();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Everything the test runs.
struct System {
    issuer: String,
    root: Vec<u8>,
    auth: [Process; 2],
    /// `127.0.0.x:port` of each auth instance and its admin port.
    auth_hosts: [&'static str; 2],
    auth_port: u16,
    auth_admin: u16,
    resource: Process,
    resource_base: String,
    resource_admin: String,
    auth_env: HashMap<String, String>,
    _caddy: Process,
    db_proxy: TcpProxy,
    auth_db: TestDatabase,
    _resource_db: TestDatabase,
    _dir: TempDir,
}

struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl System {
    fn start(caddy: &Path) -> Self {
        let bin = binaries();
        let dir = std::env::temp_dir().join(format!("proxy-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let auth_hosts = ["127.0.0.2", "127.0.0.3"];
        let https_port = free_port_on(&["127.0.0.1"]);
        let http_port = free_port_on(&["127.0.0.1"]);
        let auth_port = free_port_on(&auth_hosts);
        let auth_admin = free_port_on(&auth_hosts);
        let resource_port = free_port_on(&["127.0.0.4"]);
        let resource_admin_port = free_port_on(&["127.0.0.4"]);
        let issuer = format!("https://127.0.0.1:{https_port}");
        let audience = format!("{issuer}/api");

        let env = |pairs: &[(&str, String)]| -> HashMap<String, String> {
            pairs.iter().map(|(k, v)| ((*k).to_owned(), v.clone())).collect()
        };
        let caddy = Process::start(
            "caddy",
            caddy,
            &[
                "run",
                "--config",
                &std::env::var("PROXY_TEST_CADDYFILE")
                    .unwrap_or_else(|_| repo().join("deploy/Caddyfile").display().to_string()),
                "--adapter",
                "caddyfile",
            ],
            env(&[
                ("XDG_DATA_HOME", dir.join("data").display().to_string()),
                ("XDG_CONFIG_HOME", dir.join("config").display().to_string()),
                ("CADDY_ADMIN", "off".into()),
                ("SITE_ADDRESS", issuer.clone()),
                ("TLS_ISSUER", "internal".into()),
                ("HTTP_PORT", http_port.to_string()),
                ("HTTPS_PORT", https_port.to_string()),
                (
                    "AUTH_UPSTREAMS",
                    auth_hosts.map(|h| format!("{h}:{auth_port}")).join(" "),
                ),
                ("AUTH_HEALTH_PORT", auth_admin.to_string()),
                ("RESOURCE_UPSTREAMS", format!("127.0.0.4:{resource_port}")),
                ("RESOURCE_HEALTH_PORT", resource_admin_port.to_string()),
                ("HEALTH_INTERVAL", "300ms".into()),
                ("MAX_BODY", "1MB".into()),
            ]),
        );
        let root_path = dir.join("data/caddy/pki/authorities/local/root.crt");
        let deadline = Instant::now() + Duration::from_secs(20);
        while !root_path.exists() {
            assert!(Instant::now() < deadline, "caddy made no CA: {}", caddy.output());
            std::thread::sleep(Duration::from_millis(100));
        }
        // Written first, then filled: wait for a whole certificate.
        std::thread::sleep(Duration::from_millis(300));
        let root = std::fs::read(&root_path).unwrap();

        let db_proxy = TcpProxy::to_postgres();
        let auth_db = TestDatabase::create("proxy_auth");
        let resource_db = TestDatabase::create("proxy_resource");
        let key = kek();
        let auth_env = |host: &str| {
            env(&[
                ("AUTH_DATABASE_URL", auth_db.url_via(&db_proxy)),
                ("AUTH_LISTEN", format!("{host}:{auth_port}")),
                ("AUTH_ADMIN_LISTEN", format!("{host}:{auth_admin}")),
                ("AUTH_ISSUER", issuer.clone()),
                ("AUTH_DEFAULT_AUDIENCE", audience.clone()),
                ("AUTH_KEY_ENCRYPTION_KEY", key.clone()),
                ("AUTH_TRUSTED_PROXIES", "127.0.0.1".into()),
                ("AUTH_LOG_FORMAT", "json".into()),
                ("AUTH_WORKERS", "2".into()),
                ("AUTH_DATABASE_POOL_SIZE", "4".into()),
                ("AUTH_DRAIN_SECONDS", "2".into()),
                // The in-flight phase signs in many times from 127.0.0.1.
                ("AUTH_IP_FAILURE_LIMIT", "1000000".into()),
                // A refresh whose commit was in doubt when Postgres went away
                // (committed, but the answer lost: the client got a 503) is
                // replayed after the ten-second outage; inside the grace
                // window it gets the same successor instead of counting as
                // reuse.
                ("AUTH_REFRESH_GRACE_SECONDS", "30".into()),
                ("RUST_LOG", "info".into()),
            ])
        };
        let first = Process::start(
            "auth-a",
            &bin.join("auth-server"),
            &["serve"],
            auth_env(auth_hosts[0]),
        );
        wait_for(
            &format!("http://{}:{auth_admin}/readyz", auth_hosts[0]),
            Duration::from_secs(30),
        );
        let second = Process::start(
            "auth-b",
            &bin.join("auth-server"),
            &["serve"],
            auth_env(auth_hosts[1]),
        );
        wait_for(
            &format!("http://{}:{auth_admin}/readyz", auth_hosts[1]),
            Duration::from_secs(30),
        );

        let root_file = dir.join("root.crt");
        std::fs::write(&root_file, &root).unwrap();
        let resource = Process::start(
            "resource",
            &bin.join("resource-server"),
            &["serve"],
            env(&[
                ("RESOURCE_DATABASE_URL", resource_db.url_via(&db_proxy)),
                ("RESOURCE_LISTEN", format!("127.0.0.4:{resource_port}")),
                (
                    "RESOURCE_ADMIN_LISTEN",
                    format!("127.0.0.4:{resource_admin_port}"),
                ),
                ("RESOURCE_ISSUER", issuer.clone()),
                ("RESOURCE_AUDIENCE", audience.clone()),
                ("RESOURCE_LOG_FORMAT", "json".into()),
                ("RESOURCE_WORKERS", "2".into()),
                ("RESOURCE_DATABASE_POOL_SIZE", "4".into()),
                ("RESOURCE_DRAIN_SECONDS", "2".into()),
                // Its HTTPS client trusts the proxy's CA.
                ("SSL_CERT_FILE", root_file.display().to_string()),
                ("RUST_LOG", "info".into()),
            ]),
        );
        let resource_admin = format!("http://127.0.0.4:{resource_admin_port}");
        wait_for(&format!("{resource_admin}/readyz"), Duration::from_secs(30));

        let auth_env_a = auth_env(auth_hosts[0]);
        let system = Self {
            issuer,
            root,
            auth: [first, second],
            auth_hosts,
            auth_port,
            auth_admin,
            resource,
            resource_base: format!("http://127.0.0.4:{resource_port}"),
            resource_admin,
            auth_env: auth_env_a,
            _caddy: caddy,
            db_proxy,
            auth_db,
            _resource_db: resource_db,
            _dir: TempDir(dir),
        };
        // Caddy's health checks have seen every upstream.
        let deadline = Instant::now() + Duration::from_secs(20);
        while system
            .agent()
            .try_get("/.well-known/oauth-authorization-server", None)
            .map(|r| r.status)
            != Ok(200)
        {
            assert!(Instant::now() < deadline, "the proxy never answered");
            std::thread::sleep(Duration::from_millis(200));
        }
        system
    }

    fn agent(&self) -> Agent {
        Agent::trusting(&self.issuer, &self.root)
    }

    fn cli(&self, args: &[&str], stdin: &str) -> Value {
        let mut child = Command::new(binaries().join("auth-server"))
            .args(args)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .envs(&self.auth_env)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(stdin.as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    }

    fn instance(&self, i: usize) -> String {
        format!("http://{}:{}", self.auth_hosts[i], self.auth_port)
    }

    fn restart(&mut self, i: usize) {
        self.auth[i].spawn();
        wait_for(
            &format!("http://{}:{}/readyz", self.auth_hosts[i], self.auth_admin),
            Duration::from_secs(30),
        );
        // Caddy's next health check passes.
        std::thread::sleep(Duration::from_millis(900));
    }

    fn sql_count(&self, sql: &str) -> i64 {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query(sql)
            .get_result::<Count>(&mut self.auth_db.connect())
            .unwrap()
            .n
    }
}

/// The code flow with PKCE through `agent` (the proxy); returns the token
/// response.
fn code_flow(system: &System, client_id: &str, username: &str) -> Value {
    let mut browser = system.agent();
    let verifier = URL_SAFE_NO_PAD.encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
    let challenge = URL_SAFE_NO_PAD.encode(openssl::sha::sha256(verifier.as_bytes()));
    let mut authorize = url::Url::parse(&format!("{}/authorize", system.issuer)).unwrap();
    authorize
        .query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", SPA_REDIRECT)
        .append_pair("scope", "profile notes:read notes:write")
        .append_pair("state", "proxy-state")
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let to_login = browser.get(authorize.as_str(), None);
    assert_eq!(to_login.status, 302, "{}", to_login.body);
    let login = browser.get(to_login.header("location").unwrap(), None);
    let csrf = login.input("csrf_token").expect("csrf_token");
    let signed_in = browser.post_form(
        &login.form_action().unwrap(),
        &[
            ("username", username),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
        None,
    );
    assert_eq!(signed_in.status, 303, "{}", signed_in.body);
    let back = browser.get(signed_in.header("location").unwrap(), None);
    assert_eq!(back.status, 302, "{}", back.body);
    let location = url::Url::parse(back.header("location").unwrap()).unwrap();
    let param = |name: &str| {
        location
            .query_pairs()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.into_owned())
    };
    assert_eq!(
        param("iss").as_deref(),
        Some(system.issuer.as_str()),
        "the issuer is the proxy's"
    );
    let token = system.agent().post_form(
        "/token",
        &[
            ("grant_type", "authorization_code"),
            ("code", &param("code").unwrap()),
            ("redirect_uri", SPA_REDIRECT),
            ("client_id", client_id),
            ("code_verifier", &verifier),
        ],
        None,
    );
    assert_eq!(token.status, 200, "{}", token.body);
    token.json()
}

fn refresh_at(base: &str, root: Option<&[u8]>, client_id: &str, refresh_token: &str) -> Reply {
    let mut agent = match root {
        Some(root) => Agent::trusting(base, root),
        None => Agent::new(base),
    };
    agent.post_form(
        "/token",
        &[
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
            ("client_id", client_id),
        ],
        None,
    )
}

/// One HTTP/1.0 request over TLS to the proxy from `source` (a loopback
/// address of the test's choosing), so the client address is known.
fn raw_https(system: &System, source: &str, request: &str) -> String {
    let port: u16 = system.issuer.rsplit(':').next().unwrap().parse().unwrap();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let tcp = runtime.block_on(async {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
        socket.connect(([127, 0, 0, 1], port).into()).await.unwrap()
    });
    let tcp = tcp.into_std().unwrap();
    tcp.set_nonblocking(false).unwrap();
    // A server that answers before reading a declared body may leave the
    // connection open; what arrived by then is the answer.
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls()).unwrap();
    builder
        .cert_store_mut()
        .add_cert(openssl::x509::X509::from_pem(&system.root).unwrap())
        .unwrap();
    let connector = builder.build();
    let mut config = connector.configure().unwrap();
    config.set_verify_hostname(false);
    let mut tls = config.connect("127.0.0.1", tcp).unwrap();
    tls.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = tls.read_to_end(&mut response);
    String::from_utf8_lossy(&response).into_owned()
}

/// Requests in a loop on a few threads until stopped; every answer that is
/// not what `ok` accepts, or no answer at all, is kept.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<(usize, Vec<String>)>>,
}

impl Load {
    fn start(
        threads: usize,
        work: impl Fn(&mut Agent) -> Result<Reply, String> + Send + Sync + 'static,
        system: &System,
    ) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let work = Arc::new(work);
        let handles = (0..threads)
            .map(|_| {
                let stop = Arc::clone(&stop);
                let work = Arc::clone(&work);
                let mut agent = system.agent();
                std::thread::spawn(move || {
                    let (mut done, mut failures) = (0, Vec::new());
                    while !stop.load(Ordering::Relaxed) {
                        match work(&mut agent) {
                            Ok(r) if r.status < 400 => {}
                            Ok(r) => failures.push(format!(
                                "{} {}",
                                r.status,
                                r.body.chars().take(120).collect::<String>()
                            )),
                            Err(e) => failures.push(e),
                        }
                        done += 1;
                    }
                    (done, failures)
                })
            })
            .collect();
        Self {
            stop,
            threads: handles,
        }
    }

    fn finish(self) -> (usize, Vec<String>) {
        self.stop.store(true, Ordering::Relaxed);
        self.threads.into_iter().map(|t| t.join().unwrap()).fold(
            (0, Vec::new()),
            |(n, mut all), (done, failures)| {
                all.extend(failures);
                (n + done, all)
            },
        )
    }
}

#[test]
fn two_instances_behind_caddy_serve_survive_a_kill_a_rolling_restart_and_a_database_outage() {
    let Some(caddy) = caddy() else {
        println!("skipped: caddy is not installed (apt-get install caddy; .ci/run does)");
        return;
    };
    let mut system = System::start(&caddy);
    system.cli(
        &[
            "user",
            "create",
            "--username",
            "alice",
            "--role",
            "user",
            "--password-stdin",
        ],
        PASSWORD,
    );
    system.cli(
        &[
            "user",
            "create",
            "--username",
            "target",
            "--role",
            "user",
            "--password-stdin",
        ],
        PASSWORD,
    );
    let spa = system.cli(
        &[
            "client",
            "create",
            "--name",
            "SPA",
            "--public",
            "--first-party",
            "--redirect-uri",
            SPA_REDIRECT,
        ],
        "",
    );
    let spa = spa["client_id"].as_str().unwrap().to_owned();
    let machine = system.cli(&["client", "create", "--name", "Batch", "--confidential"], "");
    let machine = (
        machine["client_id"].as_str().unwrap().to_owned(),
        machine["client_secret"].as_str().unwrap().to_owned(),
    );

    // --- The code flow, refresh and /api over HTTPS through the proxy.
    println!("phase: The code flow, refresh and /api over HTT");
    let tokens = code_flow(&system, &spa, "alice");
    let access = tokens["access_token"].as_str().unwrap().to_owned();
    let me = system.agent().get("/api/me", Some(&access));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["username"], "alice");
    let refreshed = refresh_at(
        &system.issuer,
        Some(&system.root),
        &spa,
        tokens["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(refreshed.status, 200, "{}", refreshed.body);
    // A refresh token issued through one instance rotates on each instance
    // directly (they share the database).
    let on_b = refresh_at(
        &system.instance(1),
        None,
        &spa,
        refreshed.json()["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(on_b.status, 200, "{}", on_b.body);
    let on_a = refresh_at(
        &system.instance(0),
        None,
        &spa,
        on_b.json()["refresh_token"].as_str().unwrap(),
    );
    assert_eq!(on_a.status, 200, "{}", on_a.body);
    let live_refresh = on_a.json()["refresh_token"].as_str().unwrap().to_owned();

    // --- HSTS and the security headers on every response; 413 for a big body.
    println!("phase: HSTS and the security headers on every r");
    let mut agent = system.agent();
    for (path, reply) in [
        ("/login", agent.get("/login", None)),
        (
            "/.well-known/jwks.json",
            agent.get("/.well-known/jwks.json", None),
        ),
        (
            "/token",
            agent.post_form("/token", &[("grant_type", "password")], None),
        ),
        ("/api/me", agent.get("/api/me", None)),
        ("/api/notes", agent.get("/api/notes", Some(&access))),
    ] {
        let hsts = reply.header("strict-transport-security").unwrap_or_default();
        assert!(hsts.contains("max-age="), "{path}: no HSTS: {:?}", reply.headers);
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"), "{path}");
    }
    // The proxy refuses a declared body over its limit before reading it.
    let too_big = raw_https(
        &system,
        "127.0.0.1",
        "POST /token HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: 2000000\r\n\r\n",
    );
    assert!(
        too_big.starts_with("HTTP/1.0 413") || too_big.starts_with("HTTP/1.1 413"),
        "{too_big}"
    );

    // --- The real client address reaches the servers; a forged one does not.
    println!("phase: The real client address reaches the serv");
    let login = raw_https(
        &system,
        "127.0.0.7",
        "GET /login HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n",
    );
    let cookie = login
        .lines()
        .filter(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .map(|l| {
            l.split_once(':')
                .unwrap()
                .1
                .trim()
                .split(';')
                .next()
                .unwrap()
                .to_owned()
        })
        .collect::<Vec<_>>()
        .join("; ");
    let marker = "name=\"csrf_token\" value=\"";
    let start = login.find(marker).expect("a login form") + marker.len();
    let csrf = &login[start..start + login[start..].find('"').unwrap()];
    let form = format!(
        "username=alice&password=wrong-wrong-wrong&csrf_token={}",
        urlencode(csrf)
    );
    let failed = raw_https(
        &system,
        "127.0.0.7",
        &format!(
            "POST /login HTTP/1.0\r\nHost: 127.0.0.1\r\nX-Forwarded-For: 6.6.6.6\r\nCookie: {cookie}\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    assert!(failed.contains("Incorrect username or password."), "{failed}");
    std::thread::sleep(Duration::from_millis(300));
    let logs = format!("{}{}", system.auth[0].output(), system.auth[1].output());
    let audit = logs
        .lines()
        .find(|l| l.contains("sign_in_failed"))
        .unwrap_or_else(|| panic!("no sign_in_failed audit line in:\n{logs}"));
    assert!(audit.contains("127.0.0.7"), "{audit}");
    assert!(!logs.contains("6.6.6.6"), "a forged address reached the logs");

    // --- Sign-in throttling counts across both instances (round robin).
    println!("phase: Sign-in throttling counts across both in");
    // Six failures on instance A, then the right password on instance B:
    // B answers as for a locked account.
    for _ in 0..6 {
        let mut browser = Agent::new(&system.instance(0));
        let page = browser.get("/login", None);
        let csrf = page.input("csrf_token").unwrap();
        let reply = browser.post_form(
            "/login",
            &[
                ("username", "target"),
                ("password", "nope-nope-nope"),
                ("csrf_token", &csrf),
            ],
            None,
        );
        assert!(
            reply.body.contains("Incorrect username or password."),
            "{}",
            reply.body
        );
    }
    let mut browser = Agent::new(&system.instance(1));
    let page = browser.get("/login", None);
    let csrf = page.input("csrf_token").unwrap();
    let locked = browser.post_form(
        "/login",
        &[
            ("username", "target"),
            ("password", PASSWORD),
            ("csrf_token", &csrf),
        ],
        None,
    );
    assert_eq!(locked.status, 200, "the account was not locked across instances");
    assert!(
        locked.body.contains("Incorrect username or password."),
        "{}",
        locked.body
    );

    let client_credentials = {
        let machine = machine.clone();
        move |agent: &mut Agent| {
            agent.try_post_form(
                "/token",
                &[("grant_type", "client_credentials")],
                Some((&machine.0, &machine.1)),
            )
        }
    };

    // --- SIGKILL one instance under load: the other keeps serving.
    println!("phase: SIGKILL one instance under load: the oth");
    let load = Load::start(4, client_credentials.clone(), &system);
    std::thread::sleep(Duration::from_secs(1));
    let killed_at = Instant::now();
    system.auth[0].kill();
    std::thread::sleep(Duration::from_secs(1));
    let (during_kill, kill_failures) = load.finish();
    let load = Load::start(4, client_credentials.clone(), &system);
    std::thread::sleep(Duration::from_secs(2));
    let (after_kill, after_failures) = load.finish();
    println!(
        "SIGKILL: {during_kill} requests around the kill, {} failed ({:?}); {after_kill} after, {} failed",
        kill_failures.len(),
        kill_failures.first(),
        after_failures.len()
    );
    assert_no_failures(&system, "after the kill", &after_failures);
    // Only what was in flight on the killed instance fails, as a 502.
    assert!(after_kill > 100 && during_kill > 100, "too little load to tell");
    assert!(
        kill_failures.iter().all(|f| f.starts_with("502")),
        "{kill_failures:?}"
    );
    assert!(
        kill_failures.len() * 20 < during_kill,
        "{} of {during_kill} failed",
        kill_failures.len()
    );
    let _ = killed_at;
    system.restart(0);

    // --- Rolling restart through Caddy: SIGTERM each in turn under load.
    println!("phase: Rolling restart through Caddy: SIGTERM e");
    let load = Load::start(4, client_credentials.clone(), &system);
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..2 {
        let (status, took) = system.auth[i].terminate();
        println!(
            "auth instance {i}: SIGTERM -> exit {status} in {:.2} s",
            took.as_secs_f64()
        );
        assert!(status.success(), "exit status {status}");
        assert!(took < Duration::from_secs(2 + 10 + 2), "{took:?}");
        system.restart(i);
    }
    let (rolling, rolling_failures) = load.finish();
    println!(
        "rolling restart: {rolling} requests, {} failed",
        rolling_failures.len()
    );
    assert_no_failures(&system, "rolling restart", &rolling_failures);

    // --- SIGTERM with slow requests directly on one instance (no proxy):
    // every connection is closed cleanly by the drain (`Connection: close`)
    // and in-flight requests finish; only connections racing the listener
    // close (a handshake the kernel completed, the request sent, the socket
    // then closed) can fail: a handful, where main cut every keep-alive
    // connection. Then new connections are refused.
    let stop = Arc::new(AtomicBool::new(false));
    let direct: Vec<_> = (0..16)
        .map(|t| {
            let stop = Arc::clone(&stop);
            let base = system.instance(1);
            std::thread::spawn(move || {
                let (mut answered, mut refused, mut cut) = (0, 0, Vec::new());
                let mut agent = Agent::new(&base);
                let mut n = 0;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let page = match agent.try_get("/login", None) {
                        Ok(page) => page,
                        Err(e) if e.contains("refused") || e.contains("Connection refused") => {
                            refused += 1;
                            std::thread::sleep(Duration::from_millis(50));
                            continue;
                        }
                        Err(e) => {
                            cut.push(e);
                            continue;
                        }
                    };
                    let Some(csrf) = page.input("csrf_token") else {
                        continue;
                    };
                    // An unknown user: a whole Argon2 check, no lockout.
                    let user = format!("nobody-{t}-{n}");
                    match agent.try_post_form(
                        "/login",
                        &[
                            ("username", &user),
                            ("password", "wrong-wrong-wrong"),
                            ("csrf_token", &csrf),
                        ],
                        None,
                    ) {
                        Ok(_) => answered += 1,
                        Err(e) if e.contains("refused") => refused += 1,
                        Err(e) => cut.push(e),
                    }
                }
                (answered, refused, cut)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(1));
    let (status, took) = system.auth[1].terminate();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::Relaxed);
    let (mut answered, mut refused, mut cut) = (0, 0, Vec::new());
    for thread in direct {
        let (a, r, c) = thread.join().unwrap();
        answered += a;
        refused += r;
        cut.extend(c);
    }
    println!(
        "SIGTERM under 16 direct sign-in loops: exit {status} in {:.2} s; {answered} answered, {refused} refused after the listener closed, {} cut",
        took.as_secs_f64(),
        cut.len()
    );
    assert!(status.success());
    assert!(answered > 16, "{answered}");
    assert!(
        cut.len() * 50 <= answered,
        "{} of {answered} requests cut by the stop: {:?}",
        cut.len(),
        &cut[..cut.len().min(5)]
    );
    system.restart(1);

    // --- Postgres unreachable for ten seconds under load.
    println!("phase: Postgres unreachable for ten seconds und");
    let before_families = system.sql_count("SELECT count(*) AS n FROM token_families");
    // Writers across the cut: notes created at the resource server, and
    // refresh chains rotated at the auth-server, each answer 2xx or a 503
    // JSON error, nothing else.
    let writers_stop = Arc::new(AtomicBool::new(false));
    let chains: Vec<String> = (0..2)
        .map(|_| {
            code_flow(&system, &spa, "alice")["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    let families_before_cut = system.sql_count("SELECT count(*) AS n FROM token_families");
    let writers: Vec<_> = chains
        .into_iter()
        .enumerate()
        .map(|(i, mut refresh)| {
            let stop = Arc::clone(&writers_stop);
            let mut agent = system.agent();
            let (spa, access) = (spa.clone(), access.clone());
            std::thread::spawn(move || {
                let (mut created, mut rotations, mut odd) = (0usize, 0usize, Vec::new());
                while !stop.load(Ordering::Relaxed) {
                    let note = serde_json::json!({ "title": format!("w{i}"), "body": "across the cut" });
                    let reply = agent.send_json("POST", "/api/notes", &access, &note);
                    match reply.status {
                        201 => created += 1,
                        503 => {}
                        other => odd.push(format!("notes {other} {}", reply.body)),
                    }
                    let reply = agent.try_post_form(
                        "/token",
                        &[
                            ("grant_type", "refresh_token"),
                            ("refresh_token", &refresh),
                            ("client_id", &spa),
                        ],
                        None,
                    );
                    match reply {
                        Ok(r) if r.status == 200 => {
                            refresh = r.json()["refresh_token"].as_str().unwrap().to_owned();
                            rotations += 1;
                        }
                        Ok(r) if r.status == 503 && r.body.contains("temporarily") => {}
                        Ok(r) => odd.push(format!("refresh {} {}", r.status, r.body)),
                        Err(e) => odd.push(e),
                    }
                    std::thread::sleep(Duration::from_millis(30));
                }
                (created, rotations, refresh, odd)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    system.db_proxy.stop();
    let cut_at = Instant::now();
    let mut latencies = Vec::new();
    let mut agent = system.agent();
    while cut_at.elapsed() < Duration::from_secs(10) {
        let started = Instant::now();
        let reply = agent.get("/api/notes", Some(&access));
        let took = started.elapsed();
        assert_eq!(reply.status, 503, "{}", reply.body);
        assert_eq!(
            reply.header("content-type"),
            Some("application/problem+json"),
            "{}",
            reply.body
        );
        assert!(reply.header("retry-after").is_some());
        latencies.push(took);
        std::thread::sleep(Duration::from_millis(50));
    }
    // Client credentials keep being issued from the client cache.
    let cached = system.agent().try_post_form(
        "/token",
        &[("grant_type", "client_credentials")],
        Some((&machine.0, &machine.1)),
    );
    println!(
        "during the outage, client_credentials answered {:?}",
        cached.as_ref().map(|r| r.status)
    );
    system.db_proxy.start_again();
    let back_at = Instant::now();
    // Back when the API answers and both auth instances reach the database.
    let health: Vec<String> = (0..2)
        .map(|i| format!("http://{}:{}/healthz", system.auth_hosts[i], system.auth_admin))
        .collect();
    let mut plain = Agent::new("");
    let recovered = loop {
        let api = agent.get("/api/notes", Some(&access)).status == 200;
        let auth = health
            .iter()
            .all(|url| plain.try_get(url, None).is_ok_and(|r| r.status == 200));
        if api && auth {
            break back_at.elapsed();
        }
        assert!(
            back_at.elapsed() < Duration::from_secs(5),
            "no recovery within 5 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut sorted = latencies[1..].to_vec();
    sorted.sort();
    let p99 = sorted[(sorted.len() * 99 / 100).min(sorted.len() - 1)];
    println!(
        "database outage: {} answers, first {:.0} ms, then p99 {:.1} ms, max {:.1} ms; recovered in {:.0} ms",
        latencies.len(),
        latencies[0].as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        sorted.last().unwrap().as_secs_f64() * 1000.0,
        recovered.as_secs_f64() * 1000.0
    );
    assert!(p99 < Duration::from_millis(100), "{p99:?}");
    assert!(recovered < Duration::from_secs(1), "{recovered:?}");
    std::thread::sleep(Duration::from_millis(500));
    writers_stop.store(true, Ordering::Relaxed);
    let mut created = 0;
    for writer in writers {
        let (c, rotations, refresh, odd) = writer.join().unwrap();
        assert!(
            odd.is_empty(),
            "answers other than 2xx or 503 across the cut: {odd:?}"
        );
        assert!(rotations > 0);
        // The chain is intact: its newest token rotates once more.
        let reply = refresh_at(&system.issuer, Some(&system.root), &spa, &refresh);
        assert_eq!(
            reply.status, 200,
            "a refresh chain broke across the cut: {}",
            reply.body
        );
        created += c;
    }
    let stored = {
        use diesel::prelude::*;
        #[derive(QueryableByName)]
        struct Count {
            #[diesel(sql_type = diesel::sql_types::BigInt)]
            n: i64,
        }
        diesel::sql_query("SELECT count(*) AS n FROM notes WHERE title IN ('w0', 'w1')")
            .get_result::<Count>(&mut system._resource_db.connect())
            .unwrap()
            .n
    };
    let in_doubt = (stored as usize).saturating_sub(created);
    println!(
        "writers across the cut: {created} notes answered 201, {stored} stored ({in_doubt} committed while the cut lost the answer)"
    );
    // None lost; at most the one write per writer that was in flight at the
    // cut can have committed without its answer reaching the client.
    assert!(stored as usize >= created, "a note answered 201 was lost");
    assert!(
        in_doubt <= 2,
        "{in_doubt} notes stored without a 201: more than were in flight"
    );
    assert_eq!(
        system.sql_count("SELECT count(*) AS n FROM token_families"),
        families_before_cut,
        "refresh rotation made or lost a family"
    );
    let _ = before_families;
    // Nothing lost or duplicated: the refresh token from before still
    // rotates once, and no family appeared or vanished.
    let notes = {
        let access = access.clone();
        move |agent: &mut Agent| agent.try_get("/api/notes", Some(&access))
    };
    let load = Load::start(2, notes, &system);
    let after = refresh_at(&system.issuer, Some(&system.root), &spa, &live_refresh);
    if after.status != 200 {
        let logs = format!("{}{}", system.auth[0].output(), system.auth[1].output());
        let tail: Vec<&str> = logs
            .lines()
            .filter(|l| {
                l.contains("WARN")
                    || l.contains("ERROR")
                    || l.contains("\"level\":\"WARN")
                    || l.contains("database")
            })
            .collect();
        panic!(
            "refresh after the outage: {} {}\n{}",
            after.status,
            after.body,
            tail[tail.len().saturating_sub(15)..].join("\n")
        );
    }
    let (_, outage_after) = load.finish();
    assert!(outage_after.is_empty(), "{outage_after:?}");

    // --- SIGTERM ends the resource server cleanly too.
    println!("phase: SIGTERM ends the resource server cleanly");
    let (status, took) = system.resource.terminate();
    println!(
        "resource server: SIGTERM -> exit {status} in {:.2} s",
        took.as_secs_f64()
    );
    assert!(status.success());
    let _ = (&system.resource_base, &system.resource_admin);
}

/// Fails with the failures and what the proxy logged about its upstreams.
fn assert_no_failures(system: &System, what: &str, failures: &[String]) {
    if failures.is_empty() {
        return;
    }
    let caddy_log = system._caddy.output();
    let _ = std::fs::write(std::env::temp_dir().join("proxy-test-caddy.log"), &caddy_log);
    let _ = std::fs::write(
        std::env::temp_dir().join("proxy-test-auth.log"),
        format!("{}{}", system.auth[0].output(), system.auth[1].output()),
    );
    let health: Vec<&str> = caddy_log
        .lines()
        .filter(|l| {
            !l.contains("\"logger\":\"http.log.access")
                || l.contains("\"status\":503")
                || l.contains("\"status\":502")
        })
        .filter(|l| !l.contains("tls") && !l.contains("pki"))
        .collect();
    panic!(
        "{what}: {} failed, first {:?}\ncaddy said:\n{}",
        failures.len(),
        &failures[..failures.len().min(5)],
        health.join("\n")
    );
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
