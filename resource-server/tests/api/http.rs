//! The HTTP surface around the routes: CORS for `RESOURCE_CORS_ORIGINS`,
//! security headers and request ids, RFC 9728 metadata, the admin port, and
//! problem+json for unknown routes.

use serde_json::json;

use crate::helpers::*;

fn preflight(s: &Setup, path: &str, origin: &str, method: &str) -> Reply {
    request(
        "OPTIONS",
        &s.url(path),
        None,
        &[
            ("Origin", origin),
            ("Access-Control-Request-Method", method),
            ("Access-Control-Request-Headers", "authorization, content-type"),
        ],
        None,
    )
}

fn list_contains(value: Option<&str>, wanted: &str) -> bool {
    value.is_some_and(|v| v.split(',').any(|item| item.trim().eq_ignore_ascii_case(wanted)))
}

#[test]
fn a_preflight_from_an_allowed_origin_is_answered_with_204_and_the_allowed_methods_and_headers() {
    let s = Setup::new();
    for (path, method) in [
        ("/api/notes", "POST"),
        ("/api/notes/0190b2c4-0000-7000-8000-000000000000", "PUT"),
        ("/api/notes/0190b2c4-0000-7000-8000-000000000000", "DELETE"),
        ("/api/me", "GET"),
    ] {
        let reply = preflight(&s, path, CORS_ORIGIN, method);
        assert_eq!(reply.status, 204, "{path}: {reply:?}");
        assert_eq!(reply.header("access-control-allow-origin"), Some(CORS_ORIGIN));
        let methods = reply.header("access-control-allow-methods");
        for m in ["GET", "POST", "PUT", "DELETE"] {
            assert!(list_contains(methods, m), "{m} in {methods:?}");
        }
        let headers = reply.header("access-control-allow-headers");
        for h in ["authorization", "content-type"] {
            assert!(list_contains(headers, h), "{h} in {headers:?}");
        }
        assert_eq!(
            reply.header("access-control-allow-credentials"),
            None,
            "tokens go in a header: no credentials"
        );
        assert!(list_contains(reply.header("vary"), "Origin"), "{reply:?}");
    }
}

#[test]
fn a_preflight_from_another_origin_gets_no_cors_headers() {
    let s = Setup::new();
    for origin in [
        "https://evil.example.com",
        "http://127.0.0.1:5174",
        "http://127.0.0.1:51730",
        "http://localhost:5173",
        "null",
    ] {
        let reply = preflight(&s, "/api/notes", origin, "POST");
        assert!(!(200..300).contains(&reply.status), "{origin}: {reply:?}");
        assert_eq!(reply.header("access-control-allow-origin"), None, "{origin}");
        assert_eq!(reply.header("access-control-allow-methods"), None, "{origin}");
    }
}

#[test]
fn responses_to_an_allowed_origin_carry_cors_headers_even_on_errors() {
    // A SPA must be able to read the 401 challenge and the Location of a
    // new note.
    let s = Setup::new();
    let origin = [("Origin", CORS_ORIGIN)];
    let token = s.token("alice");

    let ok = request("GET", &s.url("/api/me"), Some(&token), &origin, None);
    assert_eq!(ok.status, 200);
    assert_eq!(ok.header("access-control-allow-origin"), Some(CORS_ORIGIN));
    assert!(list_contains(ok.header("vary"), "Origin"), "{ok:?}");

    let denied = request("GET", &s.url("/api/me"), None, &origin, None);
    assert_eq!(denied.status, 401);
    assert_eq!(denied.header("access-control-allow-origin"), Some(CORS_ORIGIN));
    let exposed = denied.header("access-control-expose-headers");
    for h in ["WWW-Authenticate", "Retry-After", "Location", "Link"] {
        assert!(list_contains(exposed, h), "{h} in {exposed:?}");
    }
    assert_eq!(denied.header("access-control-allow-credentials"), None);

    let body = json!({"title": "t", "body": "b"}).to_string();
    let created = request(
        "POST",
        &s.url("/api/notes"),
        Some(&token),
        &[("Origin", CORS_ORIGIN), ("Content-Type", "application/json")],
        Some(&body),
    );
    assert_eq!(created.status, 201);
    assert_eq!(created.header("access-control-allow-origin"), Some(CORS_ORIGIN));
}

#[test]
fn responses_to_another_origin_carry_no_cors_headers() {
    let s = Setup::new();
    let token = s.token("alice");
    for origin in ["https://evil.example.com", "null"] {
        let reply = request(
            "GET",
            &s.url("/api/me"),
            Some(&token),
            &[("Origin", origin)],
            None,
        );
        assert_eq!(reply.header("access-control-allow-origin"), None, "{origin}");
        assert_eq!(reply.header("access-control-expose-headers"), None, "{origin}");
    }
}

#[test]
fn every_response_has_nosniff_no_store_and_a_request_id() {
    let s = Setup::new();
    let token = s.token("alice");
    let big = json!({"title": "t", "body": "b".repeat(70_000)}).to_string();
    let created = send_json(
        "POST",
        &s.url("/api/notes"),
        Some(&token),
        &json!({"title": "t", "body": "b"}),
    );
    let location = created.header("location").unwrap().to_owned();
    let mut replies = vec![created];
    replies.extend([
        get(&s.url("/api/me"), Some(&token)),
        get(&s.url("/api/notes"), Some(&token)),
        get(&s.url("/api/me"), None),
        get(&s.url("/api/admin/stats"), Some(&token)),
        get(&s.url("/api/nothing-here"), Some(&token)),
        get(&s.url("/nothing-here"), None),
        request(
            "POST",
            &s.url("/api/notes"),
            Some(&token),
            &[("Content-Type", "application/json")],
            Some(&big),
        ),
        request(
            "POST",
            &s.url("/api/notes"),
            Some(&token),
            &[("Content-Type", "text/plain")],
            Some("x"),
        ),
        send_json(
            "POST",
            &s.url("/api/notes"),
            Some(&token),
            &json!({"title": "", "body": ""}),
        ),
        get(&s.url("/.well-known/oauth-protected-resource"), None),
        preflight(&s, "/api/notes", CORS_ORIGIN, "POST"),
        request("DELETE", &s.url(&location), Some(&token), &[], None),
    ]);
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [201, 200, 200, 401, 403, 404, 404, 413, 415, 422, 200, 204, 204]
    );
    let mut ids = std::collections::HashSet::new();
    for reply in &replies {
        assert_eq!(
            reply.header("x-content-type-options"),
            Some("nosniff"),
            "{reply:?}"
        );
        let id = reply
            .header("x-request-id")
            .unwrap_or_else(|| panic!("no request id: {reply:?}"));
        assert!(!id.is_empty());
        assert!(ids.insert(id.to_owned()), "request ids are unique");
        assert!(reply.header("x-frame-options").is_some(), "{reply:?}");
    }
    // API answers are per user: never cached by shared caches.
    for reply in &replies[..10] {
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    }
}

#[test]
fn protected_resource_metadata_is_served_at_both_well_known_paths() {
    let s = Setup::new();
    for path in [
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource/api",
    ] {
        let reply = get(&s.url(path), None);
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        assert!(
            reply
                .header("content-type")
                .is_some_and(|c| c.starts_with("application/json")),
            "{reply:?}"
        );
        let meta = reply.json();
        assert_eq!(meta["resource"], AUDIENCE);
        assert_eq!(meta["authorization_servers"], json!([s.issuer.url]));
        assert_eq!(meta["bearer_methods_supported"], json!(["header"]));
        let scopes: Vec<&str> = meta["scopes_supported"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap())
            .collect();
        for scope in ["profile", "notes:read", "notes:write", "admin"] {
            assert!(scopes.contains(&scope), "{scope} in {scopes:?}");
        }
    }
    // The challenge points at the RFC 9728 section 3.1 location.
    assert!(RESOURCE_METADATA.ends_with("/.well-known/oauth-protected-resource/api"));
}

#[test]
fn the_admin_port_counts_requests_by_route_and_status() {
    let s = Setup::new();
    let token = s.token("alice");
    for _ in 0..3 {
        assert_eq!(get(&s.url("/api/me"), Some(&token)).status, 200);
    }
    assert_eq!(get(&s.url("/api/me"), None).status, 401);
    let metrics = get(&format!("{}/metrics", s.app.admin), None);
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "{metrics:?}"
    );
    let lines: Vec<&str> = metrics.body.lines().collect();
    assert!(
        lines.contains(&"resource_http_requests_total{method=\"GET\",route=\"/api/me\",status=\"200\"} 3"),
        "{}",
        metrics.body
    );
    assert!(
        lines.contains(&"resource_http_requests_total{method=\"GET\",route=\"/api/me\",status=\"401\"} 1"),
        "{}",
        metrics.body
    );
    assert!(
        metrics
            .body
            .contains("# TYPE resource_http_requests_total counter")
    );
    assert!(!metrics.body.contains(&token), "no tokens in metrics");
}

#[test]
fn the_admin_endpoints_are_not_on_the_public_port() {
    let s = Setup::new();
    for path in ["/metrics", "/healthz"] {
        assert_problem(&get(&s.url(path), None), 404);
    }
    assert_eq!(get(&format!("{}/healthz", s.app.admin), None).status, 200);
    assert_eq!(get(&format!("{}/api/me", s.app.admin), None).status, 404);
}

#[test]
fn an_unknown_route_is_a_404_problem() {
    let s = Setup::new();
    let token = s.token("alice");
    for path in ["/api/nothing", "/api/notes/a/b", "/api", "/nothing", "/"] {
        assert_problem(&get(&s.url(path), Some(&token)), 404);
        assert_problem(&get(&s.url(path), None), 404);
    }
}

#[test]
fn an_unsupported_method_on_a_known_route_is_a_problem() {
    let s = Setup::new();
    let token = s.token("alice");
    for (method, path) in [
        ("POST", "/api/me"),
        ("PATCH", "/api/notes"),
        ("DELETE", "/api/notes"),
        ("PATCH", "/api/notes/0190b2c4-0000-7000-8000-000000000000"),
    ] {
        let reply = request(method, &s.url(path), Some(&token), &[], None);
        assert!(matches!(reply.status, 404 | 405), "{method} {path}: {reply:?}");
        assert_problem(&reply, reply.status);
    }
}

#[test]
fn resource_metadata_is_served_only_for_our_own_resource_path() {
    let s = Setup::new();
    assert_eq!(
        get(&s.url("/.well-known/oauth-protected-resource/api"), None).status,
        200
    );
    assert_problem(
        &get(&s.url("/.well-known/oauth-protected-resource/other"), None),
        404,
    );
}

#[test]
fn resource_metadata_answers_cors_for_allowed_origins() {
    let s = Setup::new();
    let reply = request(
        "GET",
        &s.url("/.well-known/oauth-protected-resource"),
        None,
        &[("Origin", "http://127.0.0.1:5173")],
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(
        reply.header("access-control-allow-origin"),
        Some("http://127.0.0.1:5173")
    );
}
