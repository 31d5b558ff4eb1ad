use serde_json::json;

use crate::helpers::*;

#[test]
fn a_valid_token_reads_me_and_creates_a_note() {
    let key = TestKey::new("k1");
    let issuer = FakeIssuer::start(&[&key]);
    let app = spawn_app(&issuer.url);
    app.wait_ready();
    let token = key.sign(&claims(
        &issuer.url,
        "u1",
        "profile notes:read notes:write",
        &["user"],
    ));
    let me = get(&app.url("/api/me"), Some(&token));
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["sub"], "u1");
    let created = send_json(
        "POST",
        &app.url("/api/notes"),
        Some(&token),
        &json!({"title": "t", "body": "b"}),
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let list = get(&app.url("/api/notes"), Some(&token));
    assert_eq!(list.json().as_array().unwrap().len(), 1);
}
