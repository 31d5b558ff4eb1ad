//! The JWKS cache against a live (fake) issuer: refetch on an unknown `kid`
//! at most once per 10 s, seamless key rotation, and start-up while the
//! issuer is down (503 with `Retry-After`, then recovery).

use std::time::Duration;

use crate::helpers::*;

fn me_with(app: &TestApp, token: &str) -> Reply {
    get(&app.url("/api/me"), Some(token))
}

#[test]
fn a_flood_of_unknown_kids_causes_exactly_one_jwks_refetch_and_is_refused() {
    let s = Setup::new();
    let before = s.issuer.jwks_requests();
    let claims = s.claims("u1", "profile");
    let tokens: Vec<String> = (0..20)
        .map(|_| {
            let kid = uuid::Uuid::new_v4().to_string();
            s.key.sign_with_header(&claims, Some("at+jwt"), Some(&kid))
        })
        .collect();
    let replies: Vec<Reply> = std::thread::scope(|scope| {
        let handles: Vec<_> = tokens
            .iter()
            .map(|t| scope.spawn(|| me_with(&s.app, t)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for reply in &replies {
        assert_invalid_token(reply);
    }
    assert_eq!(
        s.issuer.jwks_requests(),
        before + 1,
        "one refetch for the whole flood"
    );

    // Still inside the 10 s window: more unknown kids fetch nothing.
    for _ in 0..5 {
        let kid = uuid::Uuid::new_v4().to_string();
        let token = s.key.sign_with_header(&claims, Some("at+jwt"), Some(&kid));
        assert_invalid_token(&me_with(&s.app, &token));
    }
    assert_eq!(s.issuer.jwks_requests(), before + 1, "no refetch inside 10 s");

    // The known key keeps working throughout.
    let ok = me_with(&s.app, &s.key.sign(&claims));
    assert_eq!(ok.status, 200, "{}", ok.body);
}

#[test]
fn a_rotated_key_is_accepted_on_its_first_request() {
    let s = Setup::new();
    let old = s.key.sign(&s.claims("u1", "profile"));
    assert_eq!(me_with(&s.app, &old).status, 200);
    let before = s.issuer.jwks_requests();

    let new_key = TestKey::new("k2");
    s.issuer.publish(&new_key);
    let token = new_key.sign(&s.claims("u1", "profile"));
    let first = me_with(&s.app, &token);
    assert_eq!(first.status, 200, "the first request with the new key: {first:?}");
    assert_eq!(s.issuer.jwks_requests(), before + 1);

    // Both keys work afterwards, without further fetches.
    let again = key_token(&new_key, &s);
    assert_eq!(me_with(&s.app, &again).status, 200);
    let old_again = key_token(&s.key, &s);
    assert_eq!(me_with(&s.app, &old_again).status, 200);
    assert_eq!(s.issuer.jwks_requests(), before + 1);
}

fn key_token(key: &TestKey, s: &Setup) -> String {
    key.sign(&s.claims("u1", "profile"))
}

#[test]
fn a_key_published_inside_the_refetch_window_is_accepted_once_the_window_has_passed() {
    // The refetch limit must delay, not lose, a key: after the window a
    // token with a newer key is accepted again.
    let s = Setup::new();
    let k2 = TestKey::new("k2");
    s.issuer.publish(&k2);
    assert_eq!(me_with(&s.app, &key_token(&k2, &s)).status, 200);
    let k3 = TestKey::new("k3");
    s.issuer.publish(&k3);
    let token = key_token(&k3, &s);
    assert!(
        eventually(Duration::from_secs(15), || me_with(&s.app, &token).status == 200),
        "a key published right after a refetch is accepted once the 10 s window has passed"
    );
}

fn healthz(app: &TestApp) -> u16 {
    get(&format!("{}/healthz", app.admin), None).status
}

#[test]
fn while_the_issuer_is_down_api_answers_503_with_retry_after_then_recovers() {
    let key = TestKey::new("k1");
    let mut issuer = FakeIssuer::not_started(&[&key]);
    let app = spawn_app(&issuer.url);
    let token = key.sign(&claims(&issuer.url, "u1", "profile notes:read", &["user"]));

    for path in ["/api/me", "/api/notes"] {
        let reply = get(&app.url(path), Some(&token));
        assert_problem(&reply, 503);
        assert!(
            reply
                .header("retry-after")
                .is_some_and(|v| v.parse::<u64>().is_ok_and(|n| n > 0)),
            "{reply:?}"
        );
        assert_eq!(
            reply.header("www-authenticate"),
            None,
            "503 is not an authentication challenge"
        );
    }
    assert_eq!(healthz(&app), 503);
    // Let the background fetch fail and back off a few times first.
    let down_since = std::time::Instant::now();
    while down_since.elapsed() < Duration::from_secs(1) {
        assert_eq!(get(&app.url("/api/me"), Some(&token)).status, 503);
        std::thread::sleep(Duration::from_millis(100));
    }

    issuer.run();
    assert!(
        eventually(Duration::from_secs(10), || healthz(&app) == 200),
        "healthz turns 200 once the keys are fetched"
    );
    let reply = get(&app.url("/api/me"), Some(&token));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["sub"], "u1");
}

#[test]
fn while_the_issuer_is_down_a_request_without_a_token_is_still_a_401() {
    // Nothing to check against the keys: the client simply has to log in.
    let key = TestKey::new("k1");
    let issuer = FakeIssuer::not_started(&[&key]);
    let app = spawn_app(&issuer.url);
    assert_missing_token(&get(&app.url("/api/me"), None));
}

#[test]
fn the_issuer_going_down_after_start_does_not_affect_known_keys() {
    let mut s = Setup::new();
    s.issuer.stop();
    let token = s.key.sign(&s.claims("u1", "profile"));
    assert_eq!(me_with(&s.app, &token).status, 200);
    // An unknown kid tries the (unreachable) issuer once. The key may be a
    // rotation we could not fetch, so the answer is 503 with Retry-After,
    // not a 401 that would make the client drop a possibly valid token; the
    // keys we have stay in place.
    let stranger = s
        .key
        .sign_with_header(&s.claims("u1", "profile"), Some("at+jwt"), Some("k-unknown"));
    let refused = me_with(&s.app, &stranger);
    assert_eq!(refused.status, 503, "{}", refused.body);
    assert!(refused.header("retry-after").is_some());
    let fresh = s.key.sign(&s.claims("u2", "profile"));
    assert_eq!(me_with(&s.app, &fresh).status, 200);
    assert_eq!(healthz(&s.app), 200);
}

#[test]
fn metadata_is_served_while_the_issuer_is_down() {
    let key = TestKey::new("k1");
    let issuer = FakeIssuer::not_started(&[&key]);
    let app = spawn_app(&issuer.url);
    let reply = get(&app.url("/.well-known/oauth-protected-resource"), None);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["authorization_servers"][0], issuer.url);
}

/// An issuer whose JWKS may be cached for `max-age=1` (which the server
/// raises to its 10 s floor), to watch the scheduled refresh.
struct ShortCacheIssuer {
    url: String,
    keys: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
    requests: std::sync::Arc<std::sync::atomic::AtomicU64>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ShortCacheIssuer {
    fn start(key: &TestKey) -> Self {
        use actix_web::{App, HttpResponse, HttpServer, web};
        use serde_json::json;
        let port = free_port();
        let url = format!("http://127.0.0.1:{port}");
        let keys = std::sync::Arc::new(std::sync::Mutex::new(vec![key.jwk()]));
        let requests = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (issuer, served, count) = (url.clone(), keys.clone(), requests.clone());
        let server = HttpServer::new(move || {
            let issuer = issuer.clone();
            let served = served.clone();
            let count = count.clone();
            App::new()
                .route(
                    "/.well-known/oauth-authorization-server",
                    web::get().to(move || {
                        let body = json!({"issuer": issuer, "jwks_uri": format!("{issuer}/jwks")});
                        async move { HttpResponse::Ok().json(body) }
                    }),
                )
                .route(
                    "/jwks",
                    web::get().to(move || {
                        count.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let body = json!({"keys": served.lock().unwrap().clone()});
                        async move {
                            HttpResponse::Ok()
                                .insert_header(("Cache-Control", "max-age=1"))
                                .json(body)
                        }
                    }),
                )
        })
        .workers(1)
        .disable_signals()
        .bind(("127.0.0.1", port))
        .unwrap()
        .run();
        let handle = server.handle();
        let thread = std::thread::spawn(move || {
            let _ = actix_web::rt::System::new().block_on(server);
        });
        Self {
            url,
            keys,
            requests,
            handle,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> u64 {
        self.requests.load(std::sync::atomic::Ordering::SeqCst)
    }
}

impl Drop for ShortCacheIssuer {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn keys_are_refreshed_in_the_background_on_the_jwks_max_age() {
    let k1 = TestKey::new("k1");
    let issuer = ShortCacheIssuer::start(&k1);
    let app = spawn_app(&issuer.url);
    app.wait_ready();
    let after_start = issuer.requests();
    let k2 = TestKey::new("k2");
    issuer.keys.lock().unwrap().push(k2.jwk());
    assert!(
        eventually(Duration::from_secs(15), || issuer.requests() > after_start),
        "the JWKS is fetched again within the (clamped) max-age"
    );
    // The key arrived with the scheduled refresh: no refetch is needed.
    let refreshed = issuer.requests();
    let token = k2.sign(&claims(&issuer.url, "u1", "profile", &["user"]));
    assert_eq!(me_with(&app, &token).status, 200);
    assert_eq!(issuer.requests(), refreshed);
}
