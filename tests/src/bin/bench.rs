//! Load benchmark: starts the release `auth-server` and `resource-server`
//! binaries against fresh local databases, drives them from this process
//! over loopback HTTP/1.1 keep-alive connections, and prints requests per
//! second, p50/p99 latency and each server's peak resident memory.
//!
//! ```text
//! cargo build --release -p auth-server -p resource-server -p e2e
//! target/release/bench [--seconds 5]
//! target/release/bench --feed [--seconds 5]   # the revocation feed (issue 15)
//! ```
//!
//! Run on demand, not in CI: the numbers depend on the machine (see
//! `docs/performance.md` for the figures measured on the 2-core CI kind).

#![allow(
    // Tests set up data at the wall-clock time the servers under test read.
    clippy::disallowed_methods,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout,
    clippy::print_stderr
)]

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine as _;
use e2e::{Agent, PASSWORD, SPA_REDIRECT, free_port, http};
use oauth_common::testing::TestDatabase;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

struct Server {
    name: &'static str,
    child: Child,
}

impl Server {
    /// Starts peak tracking again from now (Linux `clear_refs`, value 5).
    fn reset_peak(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.child.id()), "5");
    }

    /// A `/proc/PID/status` figure in KiB (`VmRSS:`, `VmHWM:`).
    fn status_kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap_or_default();
        status
            .lines()
            .find(|l| l.starts_with(field))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    }

    /// The resident set now.
    fn rss_kib(&self) -> u64 {
        self.status_kib("VmRSS:")
    }

    fn peak_rss_kib(&self) -> u64 {
        self.status_kib("VmHWM:")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn binary(name: &str) -> PathBuf {
    if name == "bench" {
        return std::env::current_exe().expect("current exe");
    }
    let here = std::env::current_exe().expect("current exe");
    let path = here.parent().expect("bin dir").join(name);
    assert!(
        path.exists(),
        "{} is missing: cargo build --release -p {name}",
        path.display()
    );
    path
}

fn wait_until_listening(addr: &str) {
    for _ in 0..100 {
        if std::net::TcpStream::connect(addr).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{addr} never listened");
}

fn wait_healthy(url: &str) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(2)))
        .http_status_as_error(false)
        .build()
        .into();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if agent.get(url).call().is_ok_and(|r| r.status().as_u16() == 200) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{url} never became healthy");
}

fn spawn(name: &'static str, args: &[&str], env: &[(&str, String)]) -> Server {
    let mut command = Command::new(binary(name));
    command.args(args).stdout(Stdio::null()).stderr(Stdio::null());
    for (k, v) in env {
        command.env(k, v);
    }
    Server {
        name,
        child: command.spawn().expect("spawn server"),
    }
}

fn cli(args: &[&str], env: &[(&str, String)], stdin: Option<&str>) -> String {
    use std::io::Write as _;
    let mut command = Command::new(binary("auth-server"));
    command
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        command.env(k, v);
    }
    let mut child = command.spawn().expect("auth-server cli");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    }
    let out = child.wait_with_output().expect("cli output");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// One request shape; `body` may depend on the connection's state.
#[derive(Clone)]
enum Load {
    Get {
        path: String,
        bearer: Option<String>,
    },
    Post {
        path: String,
        body: String,
        basic: Option<String>,
    },
    /// Each connection rotates its own refresh-token chain.
    Refresh {
        client_id: String,
        tokens: Arc<Vec<String>>,
    },
}

struct Outcome {
    requests: u64,
    errors: u64,
    latencies_us: Vec<u32>,
}

async fn read_response(reader: &mut BufReader<TcpStream>) -> std::io::Result<(u16, Vec<u8>)> {
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut length = 0usize;
    loop {
        line.clear();
        reader.read_line(&mut line).await?;
        if line == "\r\n" || line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap_or(0);
        }
    }
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body).await?;
    Ok((status, body))
}

fn request_bytes(host: &str, load: &Load, refresh: Option<&str>) -> Vec<u8> {
    match load {
        Load::Get { path, bearer } => {
            let auth = bearer
                .as_ref()
                .map(|t| format!("Authorization: Bearer {t}\r\n"))
                .unwrap_or_default();
            format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{auth}\r\n").into_bytes()
        }
        Load::Post { path, body, basic } => {
            let auth = basic
                .as_ref()
                .map(|b| format!("Authorization: Basic {b}\r\n"))
                .unwrap_or_default();
            format!(
                "POST {path} HTTP/1.1\r\nHost: {host}\r\n{auth}Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
        Load::Refresh { client_id, .. } => {
            let body = format!(
                "grant_type=refresh_token&client_id={client_id}&refresh_token={}",
                refresh.unwrap_or_default()
            );
            format!(
                "POST /token HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            )
            .into_bytes()
        }
    }
}

async fn connection(addr: String, load: Load, index: usize, stop: Arc<AtomicBool>) -> Outcome {
    let mut outcome = Outcome {
        requests: 0,
        errors: 0,
        latencies_us: Vec::with_capacity(100_000),
    };
    let stream = TcpStream::connect(&addr).await.expect("connect");
    stream.set_nodelay(true).ok();
    let mut reader = BufReader::new(stream);
    let mut refresh = match &load {
        Load::Refresh { tokens, .. } => Some(tokens[index].clone()),
        _ => None,
    };
    while !stop.load(Ordering::Relaxed) {
        let bytes = request_bytes(&addr, &load, refresh.as_deref());
        let started = Instant::now();
        if reader.get_mut().write_all(&bytes).await.is_err() {
            outcome.errors += 1;
            break;
        }
        match read_response(&mut reader).await {
            Ok((status, body)) => {
                outcome
                    .latencies_us
                    .push(u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX));
                outcome.requests += 1;
                if status != 200 {
                    outcome.errors += 1;
                }
                if refresh.is_some() && status == 200 {
                    let json: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                    refresh = json["refresh_token"].as_str().map(str::to_owned);
                }
            }
            Err(_) => {
                outcome.errors += 1;
                break;
            }
        }
    }
    outcome
}

struct Report {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: u64,
}

fn run(addr: &str, load: &Load, connections: usize, seconds: u64) -> Report {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let stop = Arc::new(AtomicBool::new(false));
        let tasks: Vec<_> = (0..connections)
            .map(|i| tokio::spawn(connection(addr.to_owned(), load.clone(), i, stop.clone())))
            .collect();
        let started = Instant::now();
        tokio::time::sleep(Duration::from_secs(seconds)).await;
        stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        let mut requests = 0;
        let mut errors = 0;
        for task in tasks {
            let outcome = task.await.expect("task");
            requests += outcome.requests;
            errors += outcome.errors;
            all.extend(outcome.latencies_us);
        }
        let elapsed = started.elapsed().as_secs_f64();
        all.sort_unstable();
        let pick = |q: f64| {
            all.get(((all.len() as f64 * q) as usize).min(all.len().saturating_sub(1)))
                .copied()
                .unwrap_or(0) as f64
                / 1000.0
        };
        Report {
            rps: requests as f64 / elapsed,
            p50_ms: pick(0.50),
            p99_ms: pick(0.99),
            errors,
        }
    })
}

/// The reference for the fixed cost of a request: a bare actix-web GET
/// handler with the servers' worker count, no middleware, serving a body
/// the size of a one-key JWKS. Run as `bench --serve-bare PORT` (the
/// benchmark starts it as a child process, like the servers).
fn serve_bare(port: u16) {
    const BODY: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","kid":"bench-reference-key-id-0000000000","use":"sig","alg":"ES256"}]}"#;
    let workers = std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .filter(|w| *w > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
    let served = actix_web::rt::System::new().block_on(async move {
        actix_web::HttpServer::new(|| {
            actix_web::App::new().route(
                "/bare",
                actix_web::web::get().to(|| async {
                    actix_web::HttpResponse::Ok()
                        .content_type("application/json")
                        .body(BODY)
                }),
            )
        })
        .workers(workers)
        .bind(("127.0.0.1", port))?
        .run()
        .await
    });
    if let Err(e) = served {
        eprintln!("bare server: {e}");
    }
}

fn main() {
    let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
    if let Some(port) = arg("--serve-bare").and_then(|p| p.parse().ok()) {
        serve_bare(port);
        return;
    }
    let seconds: u64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(5);
    // `--only TEXT` runs the cases whose name contains TEXT.
    let only = arg("--only");
    let auth_db = TestDatabase::reserve("bench_auth");
    let resource_db = TestDatabase::reserve("bench_resource");
    let auth_port = free_port();
    let resource_port = free_port();
    let issuer = format!("http://127.0.0.1:{auth_port}");
    let audience = format!("http://127.0.0.1:{resource_port}/api");
    let key: String = (0..32).map(|i| format!("{:02x}", (i * 11 + 5) as u8)).collect();
    let auth_env = vec![
        ("AUTH_DATABASE_URL", auth_db.url()),
        ("AUTH_LISTEN", format!("127.0.0.1:{auth_port}")),
        ("AUTH_ADMIN_LISTEN", format!("127.0.0.1:{}", free_port())),
        ("AUTH_ISSUER", issuer.clone()),
        ("AUTH_KEY_ENCRYPTION_KEY", key),
        ("AUTH_DEFAULT_AUDIENCE", audience.clone()),
        ("AUTH_LOG_FORMAT", "json".to_owned()),
        // The spray phase names its client addresses in X-Forwarded-For,
        // as a reverse proxy would.
        ("AUTH_TRUSTED_PROXIES", "127.0.0.1".to_owned()),
        (
            "AUTH_WORKERS",
            std::env::var("BENCH_WORKERS").unwrap_or_else(|_| "0".to_owned()),
        ),
    ];
    let auth_admin = auth_env[2].1.clone();

    println!("preparing: users, clients, tokens ...");
    cli(&["migrate"], &auth_env, None);
    cli(
        &[
            "user",
            "create",
            "--username",
            "bench",
            "--role",
            "user",
            "--password-stdin",
        ],
        &auth_env,
        Some(PASSWORD),
    );
    let spa: serde_json::Value = serde_json::from_str(&cli(
        &[
            "client",
            "create",
            "--name",
            "spa",
            "--public",
            "--first-party",
            "--redirect-uri",
            SPA_REDIRECT,
        ],
        &auth_env,
        None,
    ))
    .unwrap();
    let service: serde_json::Value = serde_json::from_str(&cli(
        &[
            "client",
            "create",
            "--name",
            "svc",
            "--confidential",
            "--allow-introspection",
            "--grant-type",
            "client_credentials",
            "--scope",
            "notes:read",
        ],
        &auth_env,
        None,
    ))
    .unwrap();
    let spa_id = spa["client_id"].as_str().unwrap().to_owned();
    let basic = base64::engine::general_purpose::STANDARD.encode(format!(
        "{}:{}",
        service["client_id"].as_str().unwrap(),
        service["client_secret"].as_str().unwrap()
    ));

    let auth = spawn("auth-server", &["serve"], &auth_env);
    wait_healthy(&format!("http://{auth_admin}/healthz"));
    let resource_admin = format!("127.0.0.1:{}", free_port());
    let resource = spawn(
        "resource-server",
        &["serve"],
        &[
            ("RESOURCE_DATABASE_URL", resource_db.url()),
            ("RESOURCE_LISTEN", format!("127.0.0.1:{resource_port}")),
            ("RESOURCE_ADMIN_LISTEN", resource_admin.clone()),
            ("RESOURCE_ISSUER", issuer.clone()),
            ("RESOURCE_AUDIENCE", audience.clone()),
            ("RESOURCE_LOG_FORMAT", "json".to_owned()),
            (
                "RESOURCE_WORKERS",
                std::env::var("BENCH_WORKERS").unwrap_or_else(|_| "0".to_owned()),
            ),
        ],
    );
    wait_healthy(&format!("http://{resource_admin}/healthz"));

    // 64 independent refresh chains (one per connection), by the code flow.
    let stack_view = CodeFlow {
        auth: issuer.clone(),
        client_id: spa_id.clone(),
        forwarded_for: None,
        exchanges: std::cell::RefCell::new(Vec::new()),
    };
    let chains: Vec<_> = (0..64).map(|_| stack_view.tokens()).collect();
    let exchange_latency = {
        let mut times = stack_view.exchanges.borrow().clone();
        times.sort_unstable();
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        (ms(times[times.len() / 2]), ms(times[times.len() * 99 / 100]))
    };
    if let Some(soak_seconds) = arg("--soak").and_then(|s| s.parse().ok()) {
        let rate: f64 = arg("--rate").and_then(|r| r.parse().ok()).unwrap_or(20.0);
        soak(
            &Soak {
                auth: issuer.clone(),
                api: format!("http://127.0.0.1:{resource_port}"),
                client_id: spa_id.clone(),
                seconds: soak_seconds,
                rate,
            },
            &auth,
            &resource,
        );
        return;
    }
    if std::env::args().any(|a| a == "--feed") {
        feed(&FeedBench {
            auth_env: &auth_env,
            auth_db_url: auth_db.url(),
            resource_db_url: resource_db.url(),
            issuer: &issuer,
            audience: &audience,
            api_off: format!("127.0.0.1:{resource_port}"),
            spa_id: &spa_id,
            chains: &chains,
            seconds,
        });
        return;
    }
    let access = chains[0]["access_token"].as_str().unwrap().to_owned();
    let refresh_tokens: Vec<String> = chains
        .iter()
        .map(|t| t["refresh_token"].as_str().unwrap().to_owned())
        .collect();
    let auth_addr = format!("127.0.0.1:{auth_port}");
    let api_addr = format!("127.0.0.1:{resource_port}");
    let bare_port = free_port();
    let bare_addr = format!("127.0.0.1:{bare_port}");
    let _bare = spawn("bench", &["--serve-bare", &bare_port.to_string()], &[]);
    wait_until_listening(&bare_addr);

    let cases: Vec<(&str, String, Load, Vec<usize>)> = vec![
        (
            "client_credentials token",
            auth_addr.clone(),
            Load::Post {
                path: "/token".into(),
                body: "grant_type=client_credentials".into(),
                basic: Some(basic.clone()),
            },
            vec![16, 64],
        ),
        (
            "refresh rotation",
            auth_addr.clone(),
            Load::Refresh {
                client_id: spa_id.clone(),
                tokens: Arc::new(refresh_tokens),
            },
            vec![16, 64],
        ),
        (
            "introspection (JWT)",
            auth_addr.clone(),
            Load::Post {
                path: "/introspect".into(),
                body: format!("token={access}"),
                basic: Some(basic.clone()),
            },
            vec![16, 64],
        ),
        (
            "JWKS reference: bare actix GET",
            bare_addr.clone(),
            Load::Get {
                path: "/bare".into(),
                bearer: None,
            },
            vec![16, 64],
        ),
        (
            "JWKS",
            auth_addr.clone(),
            Load::Get {
                path: "/.well-known/jwks.json".into(),
                bearer: None,
            },
            vec![16, 64],
        ),
        (
            "resource metadata (no auth)",
            api_addr.clone(),
            Load::Get {
                path: "/.well-known/oauth-protected-resource".into(),
                bearer: None,
            },
            vec![64],
        ),
        (
            "GET /api/me",
            api_addr.clone(),
            Load::Get {
                path: "/api/me".into(),
                bearer: Some(access.clone()),
            },
            vec![64],
        ),
        (
            "GET /api/notes",
            api_addr.clone(),
            Load::Get {
                path: "/api/notes".into(),
                bearer: Some(access.clone()),
            },
            vec![64],
        ),
    ];

    // A few notes so the list endpoint reads rows.
    for i in 0..10 {
        let created = http().send_json(
            "POST",
            &format!("{audience}/notes"),
            &access,
            &serde_json::json!({"title": format!("note {i}"), "body": "benchmark"}),
        );
        assert_eq!(created.status, 201, "{}", created.body);
    }

    let setup_peak = (
        auth.peak_rss_kib() as f64 / 1024.0,
        resource.peak_rss_kib() as f64 / 1024.0,
    );
    // Measure the load phases on their own: setup signs in 64 times, and
    // each Argon2id check (m = 19 MiB, as the issue sets) needs its memory.
    auth.reset_peak();
    resource.reset_peak();
    println!(
        "\n{seconds} s per row, load generator and servers on this machine ({} cores)\n",
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    let mut rates = std::collections::HashMap::new();
    println!("| case | connections | requests/s | p50 ms | p99 ms | non-200 |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (name, addr, load, connections) in &cases {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        for &n in connections {
            // Refresh chains are spent by the 16-connection run; the
            // 64-connection run gets fresh chains.
            let load = match load {
                Load::Refresh { client_id, .. } if n == 64 => Load::Refresh {
                    client_id: client_id.clone(),
                    tokens: Arc::new(
                        (0..64)
                            .map(|_| stack_view.tokens()["refresh_token"].as_str().unwrap().to_owned())
                            .collect(),
                    ),
                },
                other => other.clone(),
            };
            let _warm = run(addr, &load_for_warmup(&load), n.min(8), 1);
            let report = run(addr, &load, n, seconds);
            rates.insert((*name, n), report.rps);
            println!(
                "| {name} | {n} | {:.0} | {:.2} | {:.2} | {} |",
                report.rps, report.p50_ms, report.p99_ms, report.errors
            );
        }
    }
    for n in [16, 64] {
        if let (Some(jwks), Some(bare)) = (
            rates.get(&("JWKS", n)),
            rates.get(&("JWKS reference: bare actix GET", n)),
        ) {
            println!(
                "JWKS at {n} connections: {:.0} % of the bare actix GET",
                100.0 * jwks / bare
            );
        }
    }
    if only.as_deref().is_none_or(|o| "spray".contains(o)) {
        spray(&issuer, seconds * 4);
    }
    println!();
    println!(
        "code exchange (POST /token, authorization_code, one at a time, 64 samples): p50 {:.2} ms, p99 {:.2} ms",
        exchange_latency.0, exchange_latency.1
    );
    println!(
        "peak resident memory during setup (64 sign-ins, Argon2id): auth-server {:.1} MiB, resource-server {:.1} MiB",
        setup_peak.0, setup_peak.1
    );
    for server in [&auth, &resource] {
        println!(
            "peak resident memory of {} during the load phases: {:.1} MiB",
            server.name,
            server.peak_rss_kib() as f64 / 1024.0
        );
    }
}

/// Warm-up must not spend the refresh chains the measured run uses.
fn load_for_warmup(load: &Load) -> Load {
    match load {
        Load::Refresh { .. } => Load::Get {
            path: "/.well-known/jwks.json".into(),
            bearer: None,
        },
        other => other.clone(),
    }
}

struct CodeFlow {
    auth: String,
    client_id: String,
    /// The client address a proxy would name in `X-Forwarded-For`.
    forwarded_for: Option<String>,
    /// How long each code exchange (POST /token) took, one at a time.
    exchanges: std::cell::RefCell<Vec<Duration>>,
}

impl CodeFlow {
    fn tokens(&self) -> serde_json::Value {
        let mut browser = Agent::new(&self.auth);
        if let Some(address) = &self.forwarded_for {
            browser = browser.with_header("X-Forwarded-For", address);
        }
        let verifier = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(uuid::Uuid::new_v4().as_bytes().repeat(2));
        let challenge = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(openssl::sha::sha256(verifier.as_bytes()));
        let mut url = url::Url::parse(&format!("{}/authorize", self.auth)).unwrap();
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.client_id)
            .append_pair("redirect_uri", SPA_REDIRECT)
            .append_pair("scope", "profile notes:read notes:write")
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        let login = browser.get(url.as_str(), None);
        let page = browser.get(login.header("location").unwrap(), None);
        let csrf = page.input("csrf_token").unwrap();
        let action = page.form_action().unwrap();
        let signed_in = browser.post_form(
            &action,
            &[
                ("username", "bench"),
                ("password", PASSWORD),
                ("csrf_token", &csrf),
            ],
            None,
        );
        let back = browser.get(signed_in.header("location").unwrap(), None);
        let location = url::Url::parse(back.header("location").unwrap()).unwrap();
        let code = location
            .query_pairs()
            .find(|(k, _)| k == "code")
            .unwrap()
            .1
            .into_owned();
        let started = Instant::now();
        let reply = http().post_form(
            &format!("{}/token", self.auth),
            &[
                ("grant_type", "authorization_code"),
                ("code", &code),
                ("redirect_uri", SPA_REDIRECT),
                ("client_id", &self.client_id),
                ("code_verifier", &verifier),
            ],
            None,
        );
        self.exchanges.borrow_mut().push(started.elapsed());
        reply.json()
    }
}

/// One sign-in from `address` (named in `X-Forwarded-For`): the status and
/// how long the POST took.
fn sign_in_from(auth: &str, address: &str, username: &str, password: &str) -> (u16, Duration) {
    let mut agent = Agent::new(auth).with_header("X-Forwarded-For", address);
    let page = agent.get("/login", None);
    let Some(csrf) = page.input("csrf_token") else {
        return (page.status, Duration::ZERO);
    };
    let started = Instant::now();
    let reply = agent.post_form(
        "/login",
        &[
            ("username", username),
            ("password", password),
            ("csrf_token", &csrf),
        ],
        None,
    );
    (reply.status, started.elapsed())
}

/// Fifty addresses spray wrong passwords for random usernames at full
/// speed for `seconds`; meanwhile a user signs in from a clean address
/// three times. Prints what the sprayers got and the clean sign-ins'
/// latency.
fn spray(auth: &str, seconds: u64) {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    let sprayers: Vec<_> = (0..50)
        .map(|i| {
            let (auth, stop, statuses) = (auth.to_owned(), Arc::clone(&stop), Arc::clone(&statuses));
            std::thread::spawn(move || {
                let address = format!("198.18.0.{}", i + 1);
                let mut n = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    n += 1;
                    let user = format!("spray-{i}-{n}");
                    let (status, _) = sign_in_from(&auth, &address, &user, "wrong password, wrong password");
                    *statuses.lock().unwrap().entry(status).or_default() += 1;
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(seconds / 4));
    let mut clean = Vec::new();
    for _ in 0..3 {
        clean.push(sign_in_from(auth, "203.0.113.200", "bench", PASSWORD));
        std::thread::sleep(Duration::from_secs(seconds / 8));
    }
    let remaining = Duration::from_secs(seconds).saturating_sub(started.elapsed());
    std::thread::sleep(remaining);
    stop.store(true, Ordering::Relaxed);
    for sprayer in sprayers {
        let _ = sprayer.join();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let statuses = statuses.lock().unwrap().clone();
    let total: u64 = statuses.values().sum();
    println!();
    println!(
        "spray: 50 addresses, random usernames, wrong passwords, {elapsed:.0} s: {total} attempts, by status {statuses:?}"
    );
    println!(
        "clean sign-in during the spray (another address, right password): {}",
        clean
            .iter()
            .map(|(status, took)| format!("{status} in {:.0} ms", took.as_secs_f64() * 1000.0))
            .collect::<Vec<_>>()
            .join(", ")
    );
}

/// `bench --soak SECONDS [--rate N]`: a fixed rate of N mixed operations per
/// second (in turn: a sign-in with its code exchange, a refresh, `GET
/// /api/me`, `GET /api/notes`), reported per minute with errors, p50/p99 per
/// operation and both servers' resident memory.
struct Soak {
    auth: String,
    api: String,
    client_id: String,
    seconds: u64,
    rate: f64,
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Op {
    SignIn,
    Refresh,
    Me,
    Notes,
}

const OPS: [Op; 4] = [Op::SignIn, Op::Refresh, Op::Me, Op::Notes];

/// The minute it ran in, the operation, how long it took, whether it worked.
type Sample = (u64, Op, Duration, bool);

fn soak(plan: &Soak, auth: &Server, resource: &Server) {
    const THREADS: usize = 8;
    let interval = Duration::from_secs_f64(THREADS as f64 / plan.rate);
    let start = Instant::now();
    let end = start + Duration::from_secs(plan.seconds);
    let samples: Arc<std::sync::Mutex<Vec<Sample>>> = Arc::default();
    println!(
        "soak: {:.0} operations/s for {} s ({THREADS} threads, one every {:.0} ms each)",
        plan.rate,
        plan.seconds,
        interval.as_secs_f64() * 1000.0
    );
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let samples = Arc::clone(&samples);
            // Each thread is a user at its own address.
            let flow = CodeFlow {
                auth: plan.auth.clone(),
                client_id: plan.client_id.clone(),
                forwarded_for: Some(format!("198.51.100.{}", t + 1)),
                exchanges: std::cell::RefCell::new(Vec::new()),
            };
            let first = flow.tokens();
            let api = plan.api.clone();
            std::thread::spawn(move || {
                let mut access = first["access_token"].as_str().unwrap_or_default().to_owned();
                let mut refresh = first["refresh_token"].as_str().unwrap_or_default().to_owned();
                // Threads start spread over one interval.
                let mut next = start + interval.mul_f64(t as f64 / THREADS as f64);
                let mut k = t;
                while next < end {
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                    let op = OPS[k % OPS.len()];
                    k += 1;
                    let began = Instant::now();
                    let ok = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match op {
                        Op::SignIn => flow.tokens().get("access_token").is_some(),
                        Op::Refresh => {
                            let reply = http().post_form(
                                &format!("{}/token", flow.auth),
                                &[
                                    ("grant_type", "refresh_token"),
                                    ("refresh_token", &refresh),
                                    ("client_id", &flow.client_id),
                                ],
                                None,
                            );
                            if reply.status == 200 {
                                let body = reply.json();
                                access = body["access_token"].as_str().unwrap_or_default().to_owned();
                                refresh = body["refresh_token"].as_str().unwrap_or_default().to_owned();
                            }
                            reply.status == 200
                        }
                        Op::Me => http().get(&format!("{api}/api/me"), Some(&access)).status == 200,
                        Op::Notes => http().get(&format!("{api}/api/notes"), Some(&access)).status == 200,
                    }))
                    .unwrap_or(false);
                    let minute = start.elapsed().as_secs() / 60;
                    samples.lock().unwrap().push((minute, op, began.elapsed(), ok));
                    next += interval;
                }
            })
        })
        .collect();
    // Memory every ten seconds.
    let mut memory = Vec::new();
    while Instant::now() < end {
        memory.push((start.elapsed().as_secs(), auth.rss_kib(), resource.rss_kib()));
        std::thread::sleep(
            Duration::from_secs(10)
                .min(end.saturating_duration_since(Instant::now()) + Duration::from_millis(1)),
        );
    }
    // The last figure is taken under load, before the threads finish.
    memory.push((start.elapsed().as_secs(), auth.rss_kib(), resource.rss_kib()));
    for thread in threads {
        let _ = thread.join();
    }
    let samples = samples.lock().unwrap();
    let minutes = samples.iter().map(|s| s.0).max().unwrap_or(0);
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "minute | ops | errors | p99 ms: sign-in+exchange refresh /api/me /api/notes | RSS MiB auth resource"
    );
    for minute in 0..=minutes {
        let of_minute: Vec<_> = samples.iter().filter(|s| s.0 == minute).collect();
        let errors = of_minute.iter().filter(|s| !s.3).count();
        let p99 = |op: Op| {
            let mut times: Vec<Duration> = of_minute.iter().filter(|s| s.1 == op).map(|s| s.2).collect();
            times.sort_unstable();
            times
                .get(times.len().saturating_sub(1).min(times.len() * 99 / 100))
                .map_or(0.0, |d| ms(*d))
        };
        let rss = memory
            .iter()
            .rev()
            .find(|m| m.0 / 60 <= minute)
            .map_or((0.0, 0.0), |m| (m.1 as f64 / 1024.0, m.2 as f64 / 1024.0));
        println!(
            "{minute:>6} | {:>5} | {errors:>6} | {:>8.1} {:>8.1} {:>8.1} {:>8.1} | {:>6.1} {:>6.1}",
            of_minute.len(),
            p99(Op::SignIn),
            p99(Op::Refresh),
            p99(Op::Me),
            p99(Op::Notes),
            rss.0,
            rss.1
        );
    }
    let errors = samples.iter().filter(|s| !s.3).count();
    // Growth from the end of the first minute (caches and pools warm) to
    // the end.
    let warm = memory
        .iter()
        .find(|m| m.0 >= 60)
        .or(memory.first())
        .copied()
        .unwrap_or((0, 1, 1));
    let last = memory.last().copied().unwrap_or(warm);
    let growth = |from: u64, to: u64| (to as f64 - from as f64) / from.max(1) as f64 * 100.0;
    println!(
        "soak total: {} operations, {errors} errors; RSS growth after the first minute: auth {:+.1} %, resource {:+.1} %",
        samples.len(),
        growth(warm.1, last.1),
        growth(warm.2, last.2)
    );
}

/// What the revocation-feed benchmark needs from the common setup.
struct FeedBench<'a> {
    auth_env: &'a [(&'static str, String)],
    auth_db_url: String,
    resource_db_url: String,
    issuer: &'a str,
    audience: &'a str,
    /// The resource server without the feed: today's figure.
    api_off: String,
    spa_id: &'a str,
    chains: &'a [serde_json::Value],
    seconds: u64,
}

/// Issue 15: `GET /api/me` with the feed on and 10,000 revocations held,
/// next to the same server without the feed, in alternating runs; then the
/// delay from an RFC 7009 revocation to the resource server's refusal over
/// 100 trials.
fn feed(bench: &FeedBench<'_>) {
    use diesel::{Connection as _, RunQueryDsl as _};
    let events: serde_json::Value = serde_json::from_str(&cli(
        &[
            "client",
            "create",
            "--name",
            "api",
            "--confidential",
            "--allow-events",
        ],
        bench.auth_env,
        None,
    ))
    .unwrap();
    let mut conn = diesel::PgConnection::establish(&bench.auth_db_url).expect("auth database");
    diesel::sql_query(
        "INSERT INTO revocation_events (jti, kind, subject, revoked_at)
         SELECT gen_random_uuid(), 'grant', gen_random_uuid()::text, now() FROM generate_series(1, 10000)",
    )
    .execute(&mut conn)
    .expect("10,000 revocations");
    let port = free_port();
    let admin = format!("127.0.0.1:{}", free_port());
    let _on = spawn(
        "resource-server",
        &["serve"],
        &[
            ("RESOURCE_DATABASE_URL", bench.resource_db_url.clone()),
            ("RESOURCE_LISTEN", format!("127.0.0.1:{port}")),
            ("RESOURCE_ADMIN_LISTEN", admin.clone()),
            ("RESOURCE_ISSUER", bench.issuer.to_owned()),
            ("RESOURCE_AUDIENCE", bench.audience.to_owned()),
            ("RESOURCE_LOG_FORMAT", "json".to_owned()),
            (
                "RESOURCE_EVENTS_CLIENT_ID",
                events["client_id"].as_str().unwrap().to_owned(),
            ),
            (
                "RESOURCE_EVENTS_CLIENT_SECRET",
                events["client_secret"].as_str().unwrap().to_owned(),
            ),
            (
                "RESOURCE_WORKERS",
                std::env::var("BENCH_WORKERS").unwrap_or_else(|_| "0".to_owned()),
            ),
        ],
    );
    wait_healthy(&format!("http://{admin}/healthz"));
    let deadline = Instant::now() + Duration::from_secs(60);
    let held = loop {
        let metrics = http().get(&format!("http://{admin}/metrics"), None).body;
        let held = metrics
            .lines()
            .find_map(|l| l.strip_prefix("resource_revocations_held "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(0.0);
        if held >= 10_000.0 || Instant::now() > deadline {
            break held;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    println!("the resource server with the feed holds {held:.0} revocations");
    let api_on = format!("127.0.0.1:{port}");
    let access = bench.chains[0]["access_token"].as_str().unwrap().to_owned();
    let me = Load::Get {
        path: "/api/me".into(),
        bearer: Some(access),
    };
    println!("\n| run | /api/me without the feed (req/s) | with the feed, 10,000 held (req/s) | ratio |");
    println!("| ---: | ---: | ---: | ---: |");
    let (mut off_sum, mut on_sum) = (0.0, 0.0);
    for round in 1..=3 {
        let _warm = run(&bench.api_off, &me, 8, 1);
        let off = run(&bench.api_off, &me, 64, bench.seconds);
        let _warm = run(&api_on, &me, 8, 1);
        let on = run(&api_on, &me, 64, bench.seconds);
        assert_eq!(off.errors + on.errors, 0, "every /api/me answered 200");
        off_sum += off.rps;
        on_sum += on.rps;
        println!(
            "| {round} | {:.0} | {:.0} | {:.1} % |",
            off.rps,
            on.rps,
            100.0 * on.rps / off.rps
        );
    }
    println!("mean: with the feed {:.1} % of without", 100.0 * on_sum / off_sum);

    // Revocation to refusal: refresh a chain for a fresh access token, see
    // it accepted, revoke it (RFC 7009), then poll until it is refused.
    let mut refresh = bench.chains[1]["refresh_token"].as_str().unwrap().to_owned();
    let mut delays = Vec::new();
    for _ in 0..100 {
        let reply = http().post_form(
            &format!("{}/token", bench.issuer),
            &[
                ("grant_type", "refresh_token"),
                ("refresh_token", &refresh),
                ("client_id", bench.spa_id),
            ],
            None,
        );
        assert_eq!(reply.status, 200, "{}", reply.body);
        let tokens = reply.json();
        refresh = tokens["refresh_token"].as_str().unwrap().to_owned();
        let access = tokens["access_token"].as_str().unwrap().to_owned();
        let me_url = format!("http://{api_on}/api/me");
        assert_eq!(http().get(&me_url, Some(&access)).status, 200);
        let started = Instant::now();
        let revoked = http().post_form(
            &format!("{}/revoke", bench.issuer),
            &[("token", &access), ("client_id", bench.spa_id)],
            None,
        );
        assert_eq!(revoked.status, 200);
        while http().get(&me_url, Some(&access)).status != 401 {
            assert!(started.elapsed() < Duration::from_secs(10), "never refused");
            std::thread::sleep(Duration::from_millis(2));
        }
        delays.push(started.elapsed());
    }
    delays.sort_unstable();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "revocation to refusal over {} trials: median {:.1} ms, p90 {:.1} ms, max {:.1} ms",
        delays.len(),
        ms(delays[delays.len() / 2]),
        ms(delays[delays.len() * 9 / 10]),
        ms(delays[delays.len() - 1])
    );
}
