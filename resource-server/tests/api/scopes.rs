//! Scope and role guards (RFC 6750 section 3.1 `insufficient_scope`) and
//! what `/api/me` and `/api/admin/stats` return.

use serde_json::json;

use crate::helpers::*;

#[test]
fn a_token_without_the_needed_scope_gets_403_naming_the_scope() {
    let s = Setup::new();
    let cases = [
        ("GET", "/api/me", "notes:read notes:write", "profile"),
        ("GET", "/api/notes", "profile notes:write", "notes:read"),
        ("POST", "/api/notes", "profile notes:read", "notes:write"),
        (
            "GET",
            "/api/admin/stats",
            "profile notes:read notes:write",
            "admin",
        ),
    ];
    for (method, path, granted, needed) in cases {
        let token = s
            .key
            .sign(&claims(&s.issuer.url, "u1", granted, &["user", "admin"]));
        let reply = if method == "POST" {
            send_json(
                method,
                &s.url(path),
                Some(&token),
                &json!({"title": "t", "body": "b"}),
            )
        } else {
            request(method, &s.url(path), Some(&token), &[], None)
        };
        let body = assert_insufficient_scope(&reply, needed);
        assert_eq!(body["scope"], needed, "{method} {path}: {body}");
        assert!(
            body["detail"].as_str().unwrap().contains(needed),
            "{method} {path}: {body}"
        );
    }
}

#[test]
fn a_scope_is_matched_whole_not_by_prefix() {
    let s = Setup::new();
    let token = s.key.sign(&claims(
        &s.issuer.url,
        "u1",
        "notes notes:readx profiles",
        &["user"],
    ));
    assert_insufficient_scope(&get(&s.url("/api/notes"), Some(&token)), "notes:read");
    assert_insufficient_scope(&get(&s.url("/api/me"), Some(&token)), "profile");
}

#[test]
fn the_notes_read_scope_does_not_allow_writing() {
    let s = Setup::new();
    let writer = s.token("u1");
    let created = send_json(
        "POST",
        &s.url("/api/notes"),
        Some(&writer),
        &json!({"title": "t", "body": "b"}),
    );
    let location = created.header("location").unwrap().to_owned();
    let reader = s.key.sign(&s.claims("u1", "notes:read"));
    let put = send_json(
        "PUT",
        &s.url(&location),
        Some(&reader),
        &json!({"title": "x", "body": "y"}),
    );
    assert_insufficient_scope(&put, "notes:write");
    let delete = request("DELETE", &s.url(&location), Some(&reader), &[], None);
    assert_insufficient_scope(&delete, "notes:write");
    assert_eq!(get(&s.url(&location), Some(&reader)).json()["title"], "t");
}

#[test]
fn admin_stats_with_the_admin_scope_but_without_the_admin_role_is_403() {
    let s = Setup::new();
    for roles in [&["user"][..], &[][..]] {
        let token = s.key.sign(&claims(&s.issuer.url, "u1", "admin", roles));
        let reply = get(&s.url("/api/admin/stats"), Some(&token));
        assert_insufficient_scope(&reply, "admin");
    }
    // A client-credentials token has no roles claim at all.
    let token = s
        .key
        .sign(&without(&claims(&s.issuer.url, "machine", "admin", &[]), "roles"));
    assert_insufficient_scope(&get(&s.url("/api/admin/stats"), Some(&token)), "admin");
}

#[test]
fn admin_stats_with_the_admin_role_but_without_the_admin_scope_is_403() {
    let s = Setup::new();
    let token = s
        .key
        .sign(&claims(&s.issuer.url, "root", ALL_USER_SCOPES, &["admin"]));
    assert_insufficient_scope(&get(&s.url("/api/admin/stats"), Some(&token)), "admin");
}

#[test]
fn admin_stats_with_scope_and_role_returns_counts_only() {
    let s = Setup::new();
    let secret_title = "secret-title-7f3a";
    let secret_body = "secret-body-9c1e";
    for (user, n) in [("alice", 3), ("bob", 1)] {
        let token = s.token(user);
        for i in 0..n {
            let reply = send_json(
                "POST",
                &s.url("/api/notes"),
                Some(&token),
                &json!({"title": format!("{secret_title}{i}"), "body": secret_body}),
            );
            assert_eq!(reply.status, 201, "{}", reply.body);
        }
    }
    let token = s.key.sign(&claims(&s.issuer.url, "root", "admin", &["admin"]));
    let reply = get(&s.url("/api/admin/stats"), Some(&token));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json")),
        "{reply:?}"
    );
    assert!(!reply.body.contains("secret-"), "{}", reply.body);
    assert!(!reply.body.contains("title") && !reply.body.contains("\"body\""));
    let stats = reply.json();
    assert_eq!(stats["users"], 2, "{stats}");
    assert_eq!(stats["notes"], 4, "{stats}");
    assert_eq!(
        stats["notes_per_user"],
        json!([{"sub": "alice", "notes": 3}, {"sub": "bob", "notes": 1}])
    );
}

#[test]
fn me_returns_sub_username_roles_and_scope() {
    let s = Setup::new();
    let token = s.key.sign(&claims(
        &s.issuer.url,
        "u-42",
        "profile notes:read",
        &["user", "admin"],
    ));
    let reply = get(&s.url("/api/me"), Some(&token));
    assert_eq!(reply.status, 200, "{}", reply.body);
    let me = reply.json();
    let mut keys: Vec<&String> = me.as_object().unwrap().keys().collect();
    keys.sort();
    assert_eq!(keys, ["roles", "scope", "sub", "username"]);
    assert_eq!(me["sub"], "u-42");
    assert_eq!(me["username"], "user-u-42");
    assert_eq!(me["roles"], json!(["user", "admin"]));
    let mut scope: Vec<&str> = me["scope"].as_str().unwrap().split(' ').collect();
    scope.sort_unstable();
    assert_eq!(scope, ["notes:read", "profile"]);
}
