//! The breached-password check at `user create` (issue 10, item 7):
//! against a fake k-anonymity range server this test starts, and against a
//! small corpus file.

use std::collections::HashMap;
use std::io::{BufRead as _, BufReader, Write as _};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::helpers::*;

/// A password that passes the strength policy, and the corpus lines of its
/// SHA-1 (computed with the system's `sha1sum`-free way: openssl).
const BREACHED: &str = "purple elephant dances quietly";
const CLEAN: &str = "correct horse battery staple";

fn sha1_hex(text: &str) -> String {
    let digest = openssl::hash::hash(openssl::hash::MessageDigest::sha1(), text.as_bytes()).unwrap();
    digest.iter().map(|b| format!("{b:02X}")).collect()
}

/// A range server that knows `BREACHED` and pads its answers; it records
/// the paths it was asked for.
struct RangeServer {
    url: String,
    asked: Arc<Mutex<Vec<String>>>,
}

fn range_server() -> RangeServer {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let asked = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&asked);
    let known = sha1_hex(BREACHED);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut request_line = String::new();
            let _ = reader.read_line(&mut request_line);
            loop {
                let mut header = String::new();
                if reader.read_line(&mut header).unwrap_or(0) <= 2 {
                    break;
                }
            }
            let path = request_line.split(' ').nth(1).unwrap_or("").to_owned();
            seen.lock().unwrap().push(path.clone());
            let prefix = path.trim_start_matches("/range/");
            let mut body = String::from("0000000000000000000000000000000000A:0\r\n");
            if prefix.eq_ignore_ascii_case(&known[..5]) {
                body.push_str(&format!("{}:42\r\n", &known[5..]));
            }
            body.push_str("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF:7\r\n");
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    RangeServer { url, asked }
}

fn create(env: &HashMap<String, String>, username: &str, password: &str) -> BinaryRun {
    run_auth_binary(
        env,
        &[
            "user",
            "create",
            "--username",
            username,
            "--role",
            "user",
            "--password-stdin",
        ],
        &format!("{password}\n"),
    )
}

fn users(app: &TestApp) -> i64 {
    app.sql_count("SELECT count(*) AS n FROM users")
}

#[test]
fn a_breached_password_is_refused_through_the_range_api_sending_only_a_prefix() {
    let app = spawn_app();
    let server = range_server();
    let mut env = app.env.clone();
    env.insert("AUTH_BREACHED_PASSWORDS_URL".into(), server.url.clone());

    let refused = create(&env, "alice", BREACHED);
    refused.assert_one_line_error("breach");
    assert_eq!(users(&app), 0);

    let accepted = create(&env, "bob", CLEAN);
    assert!(accepted.status.success(), "{accepted:?}");
    assert_eq!(users(&app), 1);

    let asked = server.asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 2, "{asked:?}");
    for path in &asked {
        let prefix = path.strip_prefix("/range/").unwrap_or_else(|| panic!("{path}"));
        assert_eq!(prefix.len(), 5, "only five hex characters leave: {path}");
    }
    assert_eq!(asked[0], format!("/range/{}", &sha1_hex(BREACHED)[..5]));
}

#[test]
fn an_unreachable_range_api_fails_open_by_default_and_closed_when_asked() {
    let app = spawn_app();
    // A port nobody listens on.
    let dead = format!("http://127.0.0.1:{}", free_port());
    let mut env = app.env.clone();
    env.insert("AUTH_BREACHED_PASSWORDS_URL".into(), dead);

    let open = create(&env, "alice", CLEAN);
    assert!(open.status.success(), "{open:?}");
    assert!(
        open.stderr.contains("fail open"),
        "a warning says the check was skipped: {open:?}"
    );

    env.insert("AUTH_BREACHED_PASSWORDS_FAIL".into(), "closed".into());
    let closed = create(&env, "bob", CLEAN);
    closed.assert_one_line_error("cannot be reached");
    assert_eq!(users(&app), 1);
}

#[test]
fn a_breached_password_is_refused_from_a_local_corpus_file() {
    let app = spawn_app();
    let mut lines: Vec<String> = ["one", "two", "three", BREACHED, "four", "five"]
        .iter()
        .map(|p| format!("{}:{}", sha1_hex(p), p.len()))
        .collect();
    lines.sort();
    let dir = std::env::temp_dir().join(format!("breached-file-{}", free_port()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("pwned.txt");
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let mut env = app.env.clone();
    env.insert(
        "AUTH_BREACHED_PASSWORDS_FILE".into(),
        path.to_string_lossy().into_owned(),
    );

    create(&env, "alice", BREACHED).assert_one_line_error("breach");
    let accepted = create(&env, "bob", CLEAN);
    assert!(accepted.status.success(), "{accepted:?}");
    assert_eq!(users(&app), 1);
    std::fs::remove_dir_all(&dir).unwrap();
}
