//! The notes API: CRUD, ownership (another user's note is a 404), input
//! validation as RFC 9457 problems, and keyset pagination.

use std::collections::HashSet;

use serde_json::{Value, json};

use crate::helpers::*;

fn create(s: &Setup, token: &str, title: &str, body: &str) -> Reply {
    send_json(
        "POST",
        &s.url("/api/notes"),
        Some(token),
        &json!({"title": title, "body": body}),
    )
}

/// Creates a note and returns its location and JSON.
fn created(s: &Setup, token: &str, title: &str, body: &str) -> (String, Value) {
    let reply = create(s, token, title, body);
    assert_eq!(reply.status, 201, "{}", reply.body);
    let location = reply.header("location").expect("Location").to_owned();
    (location, reply.json())
}

fn post_raw(s: &Setup, token: &str, content_type: Option<&str>, body: &str) -> Reply {
    let headers: Vec<(&str, &str)> = content_type.map(|c| ("Content-Type", c)).into_iter().collect();
    request("POST", &s.url("/api/notes"), Some(token), &headers, Some(body))
}

fn assert_note_shape(note: &Value) {
    let mut keys: Vec<&String> = note.as_object().expect("object").keys().collect();
    keys.sort();
    assert_eq!(
        keys,
        ["body", "created_at", "id", "title", "updated_at"],
        "{note}"
    );
    assert!(
        uuid::Uuid::parse_str(note["id"].as_str().unwrap()).is_ok(),
        "{note}"
    );
    for field in ["created_at", "updated_at"] {
        let text = note[field].as_str().unwrap();
        assert!(
            chrono::DateTime::parse_from_rfc3339(text).is_ok(),
            "{field}: {text}"
        );
    }
}

/// The field names a 422 problem lists.
fn invalid_fields(reply: &Reply) -> Vec<String> {
    let body = assert_problem(reply, 422);
    body["errors"]
        .as_array()
        .unwrap_or_else(|| panic!("no errors member: {body}"))
        .iter()
        .map(|e| e["field"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_note_can_be_created_read_replaced_and_deleted() {
    let s = Setup::new();
    let token = s.token("alice");

    let reply = create(&s, &token, "first", "hello");
    assert_eq!(reply.status, 201, "{}", reply.body);
    assert!(
        reply
            .header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    let note = reply.json();
    assert_note_shape(&note);
    assert_eq!(note["title"], "first");
    assert_eq!(note["body"], "hello");
    assert_eq!(note["created_at"], note["updated_at"]);
    let id = note["id"].as_str().unwrap();
    let location = reply.header("location").unwrap();
    assert_eq!(location, format!("/api/notes/{id}"));

    let read = get(&s.url(location), Some(&token));
    assert_eq!(read.status, 200, "{}", read.body);
    assert_eq!(read.json(), note);

    let put = send_json(
        "PUT",
        &s.url(location),
        Some(&token),
        &json!({"title": "second", "body": ""}),
    );
    assert_eq!(put.status, 200, "{}", put.body);
    let replaced = put.json();
    assert_note_shape(&replaced);
    assert_eq!(replaced["id"], note["id"]);
    assert_eq!(replaced["title"], "second");
    assert_eq!(replaced["body"], "");
    assert_eq!(replaced["created_at"], note["created_at"]);
    let created_at = chrono::DateTime::parse_from_rfc3339(note["created_at"].as_str().unwrap()).unwrap();
    let updated_at = chrono::DateTime::parse_from_rfc3339(replaced["updated_at"].as_str().unwrap()).unwrap();
    assert!(updated_at >= created_at);
    assert_eq!(get(&s.url(location), Some(&token)).json(), replaced);

    let list = get(&s.url("/api/notes"), Some(&token));
    assert_eq!(list.status, 200);
    assert_eq!(list.json(), json!([replaced]));

    let deleted = request("DELETE", &s.url(location), Some(&token), &[], None);
    assert_eq!(deleted.status, 204, "{}", deleted.body);
    assert_eq!(deleted.body, "");
    assert_problem(&get(&s.url(location), Some(&token)), 404);
    assert_problem(&request("DELETE", &s.url(location), Some(&token), &[], None), 404);
    let put = send_json(
        "PUT",
        &s.url(location),
        Some(&token),
        &json!({"title": "again", "body": ""}),
    );
    assert_problem(&put, 404);
    assert_eq!(get(&s.url("/api/notes"), Some(&token)).json(), json!([]));
}

#[test]
fn another_users_note_is_a_404_for_read_update_and_delete_and_stays_unchanged() {
    let s = Setup::new();
    let alice = s.token("alice");
    let bob = s.token("bob");
    let (location, note) = created(&s, &alice, "alice's", "private");

    let missing = format!("/api/notes/{}", uuid::Uuid::now_v7());
    let not_found = get(&s.url(&missing), Some(&bob));
    let not_found_body = assert_problem(&not_found, 404);

    let read = get(&s.url(&location), Some(&bob));
    assert_eq!(
        assert_problem(&read, 404),
        not_found_body,
        "indistinguishable from missing"
    );
    let put = send_json(
        "PUT",
        &s.url(&location),
        Some(&bob),
        &json!({"title": "bob was here", "body": "x"}),
    );
    assert_eq!(assert_problem(&put, 404), not_found_body);
    let delete = request("DELETE", &s.url(&location), Some(&bob), &[], None);
    assert_eq!(assert_problem(&delete, 404), not_found_body);

    assert_eq!(get(&s.url("/api/notes"), Some(&bob)).json(), json!([]));
    let after = get(&s.url(&location), Some(&alice));
    assert_eq!(after.status, 200);
    assert_eq!(after.json(), note, "the note is unchanged");
}

#[test]
fn a_non_uuid_note_id_is_a_404() {
    let s = Setup::new();
    let token = s.token("alice");
    for id in [
        "abc",
        "1",
        "00000000-0000-0000-0000-00000000000g",
        "%27%20or%201%3D1",
    ] {
        let path = format!("/api/notes/{id}");
        assert_problem(&get(&s.url(&path), Some(&token)), 404);
        let put = send_json(
            "PUT",
            &s.url(&path),
            Some(&token),
            &json!({"title": "t", "body": ""}),
        );
        assert_problem(&put, 404);
        assert_problem(&request("DELETE", &s.url(&path), Some(&token), &[], None), 404);
    }
}

#[test]
fn an_unknown_field_is_refused_with_a_problem() {
    let s = Setup::new();
    let token = s.token("alice");
    let reply = send_json(
        "POST",
        &s.url("/api/notes"),
        Some(&token),
        &json!({"title": "t", "body": "b", "owner": "bob"}),
    );
    assert!(matches!(reply.status, 400 | 422), "{reply:?}");
    assert_problem(&reply, reply.status);
    let (location, _) = created(&s, &token, "t", "b");
    let put = send_json(
        "PUT",
        &s.url(&location),
        Some(&token),
        &json!({"title": "t", "body": "b", "id": uuid::Uuid::now_v7()}),
    );
    assert!(matches!(put.status, 400 | 422), "{put:?}");
    assert_problem(&put, put.status);
    assert_eq!(
        get(&s.url("/api/notes"), Some(&token))
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_missing_or_mistyped_field_is_refused_with_a_problem() {
    let s = Setup::new();
    let token = s.token("alice");
    for body in [
        json!({"title": "t"}),
        json!({"body": "b"}),
        json!({"title": 5, "body": "b"}),
        json!({"title": "t", "body": null}),
        json!("t"),
    ] {
        let reply = send_json("POST", &s.url("/api/notes"), Some(&token), &body);
        assert!(matches!(reply.status, 400 | 422), "{body}: {reply:?}");
        assert_problem(&reply, reply.status);
    }
}

#[test]
fn an_empty_or_201_character_title_is_a_422_naming_the_field() {
    let s = Setup::new();
    let token = s.token("alice");
    for title in [String::new(), "t".repeat(201), "é".repeat(201)] {
        let reply = create(&s, &token, &title, "b");
        assert_eq!(
            invalid_fields(&reply),
            ["title"],
            "{} chars",
            title.chars().count()
        );
        assert!(reply.json()["detail"].as_str().unwrap().contains("title"));
    }
    let (location, _) = created(&s, &token, "t", "b");
    let put = send_json(
        "PUT",
        &s.url(&location),
        Some(&token),
        &json!({"title": "", "body": "b"}),
    );
    assert_eq!(invalid_fields(&put), ["title"]);
    assert_eq!(get(&s.url(&location), Some(&token)).json()["title"], "t");
}

#[test]
fn titles_and_bodies_at_their_limits_are_accepted_counting_characters() {
    let s = Setup::new();
    let token = s.token("alice");
    let (_, note) = created(&s, &token, &"t".repeat(200), &"b".repeat(20_000));
    assert_eq!(note["title"].as_str().unwrap().len(), 200);
    // Multi-byte characters count once each (the database checks char_length).
    let (_, note) = created(&s, &token, &"😀".repeat(200), &"é".repeat(20_000));
    assert_eq!(note["title"].as_str().unwrap().chars().count(), 200);
}

#[test]
fn a_body_of_20001_characters_is_a_422_naming_the_field() {
    let s = Setup::new();
    let token = s.token("alice");
    let reply = create(&s, &token, "t", &"b".repeat(20_001));
    assert_eq!(invalid_fields(&reply), ["body"]);
    let reply = create(&s, &token, "", &"b".repeat(20_001));
    assert_eq!(invalid_fields(&reply), ["title", "body"]);
}

#[test]
fn a_request_body_over_64_kib_is_a_413() {
    let s = Setup::new();
    let token = s.token("alice");
    let big = json!({"title": "t", "body": "b".repeat(64 * 1024)}).to_string();
    assert!(big.len() > 64 * 1024);
    let reply = post_raw(&s, &token, Some("application/json"), &big);
    assert_problem(&reply, 413);
    let (location, _) = created(&s, &token, "t", "b");
    let put = request(
        "PUT",
        &s.url(&location),
        Some(&token),
        &[("Content-Type", "application/json")],
        Some(&big),
    );
    assert_problem(&put, 413);
}

#[test]
fn a_body_that_is_not_json_is_a_415() {
    let s = Setup::new();
    let token = s.token("alice");
    let json_text = json!({"title": "t", "body": "b"}).to_string();
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        None,
    ] {
        let reply = post_raw(&s, &token, content_type, &json_text);
        assert_problem(&reply, 415);
    }
    assert_eq!(get(&s.url("/api/notes"), Some(&token)).json(), json!([]));
}

#[test]
fn a_nul_character_is_a_422_not_a_500() {
    let s = Setup::new();
    let token = s.token("alice");
    let reply = create(&s, &token, "a\u{0}b", "b");
    assert_eq!(invalid_fields(&reply), ["title"]);
    let reply = create(&s, &token, "t", "a\u{0}b");
    assert_eq!(invalid_fields(&reply), ["body"]);
}

#[test]
fn malformed_json_is_a_400() {
    let s = Setup::new();
    let token = s.token("alice");
    for text in ["{", "{\"title\": \"t\", \"body\": }", "", "null", "\"\\ud800\""] {
        let reply = post_raw(&s, &token, Some("application/json"), text);
        assert_problem(&reply, 400);
    }
}

#[test]
fn markup_is_stored_as_given_and_served_only_as_json() {
    let s = Setup::new();
    let token = s.token("alice");
    let title = "<script>alert(1)</script>";
    let body = "<img src=x onerror=alert(1)> & \"quotes\" 'single'";
    let (location, note) = created(&s, &token, title, body);
    assert_eq!(note["title"], title);
    assert_eq!(note["body"], body);
    let read = get(&s.url(&location), Some(&token));
    assert!(
        read.header("content-type")
            .is_some_and(|c| c.starts_with("application/json"))
    );
    assert_eq!(read.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(read.json()["title"], title);
}

/// The `rel="next"` target of a `Link` header, if any.
fn next_link(reply: &Reply) -> Option<String> {
    let link = reply.header("link")?;
    let (target, params) = link.split_once(';')?;
    assert_eq!(params.trim(), "rel=\"next\"", "{link}");
    Some(
        target
            .trim()
            .trim_start_matches('<')
            .trim_end_matches('>')
            .to_owned(),
    )
}

#[test]
fn notes_are_listed_newest_first_in_pages_without_duplicates_or_gaps() {
    let s = Setup::new();
    let token = s.token("alice");
    let mut ids = Vec::new();
    for i in 0..7 {
        let (_, note) = created(&s, &token, &format!("note {i}"), "");
        ids.push(note["id"].as_str().unwrap().to_owned());
    }
    // Someone else's notes never show up.
    created(&s, &s.token("bob"), "bob's", "");
    ids.reverse();

    let mut seen = Vec::new();
    let mut path = "/api/notes?limit=3".to_owned();
    let mut pages = Vec::new();
    loop {
        let reply = get(&s.url(&path), Some(&token));
        assert_eq!(reply.status, 200, "{path}: {}", reply.body);
        let page = reply.json();
        let page = page.as_array().unwrap();
        pages.push(page.len());
        seen.extend(page.iter().map(|n| n["id"].as_str().unwrap().to_owned()));
        match next_link(&reply) {
            Some(next) => {
                assert!(next.starts_with("/api/notes?"), "{next}");
                assert!(next.contains("limit=3"), "{next}");
                path = next;
            }
            None => break,
        }
        assert!(pages.len() < 10, "pagination does not end");
    }
    assert_eq!(pages, [3, 3, 1]);
    assert_eq!(seen, ids, "newest first, no duplicates, no gaps");
    assert_eq!(seen.iter().collect::<HashSet<_>>().len(), 7);

    // The whole list in one page (default limit) has no Link.
    let all = get(&s.url("/api/notes"), Some(&token));
    assert_eq!(all.header("link"), None);
    let all: Vec<String> = all
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(all, ids);

    // A page that ends exactly at the last note has no Link either.
    let exact = get(&s.url("/api/notes?limit=7"), Some(&token));
    assert_eq!(exact.json().as_array().unwrap().len(), 7);
    assert_eq!(exact.header("link"), None);
}

#[test]
fn a_limit_outside_1_to_100_is_a_400() {
    let s = Setup::new();
    let token = s.token("alice");
    for limit in ["0", "101", "abc", "-1", "", "1.5", "99999999999999999999"] {
        let reply = get(&s.url(&format!("/api/notes?limit={limit}")), Some(&token));
        let body = assert_problem(&reply, 400);
        assert!(body["detail"].as_str().unwrap().contains("limit"), "{body}");
    }
    for limit in ["1", "100"] {
        let reply = get(&s.url(&format!("/api/notes?limit={limit}")), Some(&token));
        assert_eq!(reply.status, 200, "limit={limit}: {}", reply.body);
    }
}

#[test]
fn a_bad_cursor_is_a_400() {
    let s = Setup::new();
    let token = s.token("alice");
    let forged = b64url(b"123.not-a-uuid");
    for cursor in ["abc", "!!!", forged.as_str(), ""] {
        let reply = get(&s.url(&format!("/api/notes?cursor={cursor}")), Some(&token));
        let body = assert_problem(&reply, 400);
        assert!(body["detail"].as_str().unwrap().contains("cursor"), "{body}");
    }
}

#[test]
fn a_malformed_query_string_is_a_400_problem() {
    let s = Setup::new();
    let token = s.token("alice");
    let reply = get(&s.url("/api/notes?limit=1&limit=2"), Some(&token));
    assert_problem(&reply, 400);
}

#[test]
fn json_with_a_charset_parameter_is_accepted() {
    let s = Setup::new();
    let token = s.token("alice");
    let body = json!({"title": "t", "body": "b"}).to_string();
    let reply = post_raw(&s, &token, Some("application/json; charset=utf-8"), &body);
    assert_eq!(reply.status, 201, "{}", reply.body);
}

#[test]
fn a_cursor_outside_the_databases_time_range_is_a_400_not_a_500() {
    let s = Setup::new();
    let token = s.token("alice");
    created(&s, &token, "t", "b");
    let id = uuid::Uuid::now_v7();
    for micros in [
        i64::MIN,
        -8_000_000_000_000_000_000,
        -300_000_000_000_000_000,
        i64::MAX,
    ] {
        let cursor = b64url(format!("{micros}.{id}").as_bytes());
        let reply = get(&s.url(&format!("/api/notes?cursor={cursor}")), Some(&token));
        assert_problem(&reply, 400);
    }
}

#[test]
fn a_chunked_request_body_over_64_kib_is_a_413() {
    use std::io::{Read as _, Write as _};
    let s = Setup::new();
    let token = s.token("alice");
    let body = json!({"title": "t", "body": "b".repeat(70_000)}).to_string();
    let addr = s.app.base.trim_start_matches("http://").to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut raw = format!(
        "POST /api/notes HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    for chunk in body.as_bytes().chunks(8192) {
        raw.extend(format!("{:x}\r\n", chunk.len()).as_bytes());
        raw.extend(chunk);
        raw.extend(b"\r\n");
    }
    raw.extend(b"0\r\n\r\n");
    // The server may answer and close before reading everything.
    let _ = stream.write_all(&raw);
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 413"), "{response}");
    assert!(
        response
            .to_ascii_lowercase()
            .contains("content-type: application/problem+json"),
        "{response}"
    );
    assert_eq!(get(&s.url("/api/notes"), Some(&token)).json(), json!([]));
}

#[test]
fn a_json_array_is_not_a_note() {
    let s = Setup::new();
    let token = s.token("u1");
    let reply = post_raw(&s, &token, Some("application/json"), r#"["a title", "a body"]"#);
    assert_problem(&reply, 400);
}
