//! Following the revocation feed (issue 15) against a fake issuer: a
//! signed event refuses the tokens it names within seconds; a tampered,
//! unsigned, mistyped or foreign-key event is ignored and counted.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CLIENT_REVOKED: &str = "urn:x-oauth-notes:secevent:client-revoked";

struct Feed {
    key: TestKey,
    issuer: FakeIssuer,
    app: TestApp,
}

fn start() -> Feed {
    let key = TestKey::new("k1");
    let issuer = FakeIssuer::start(&[&key]);
    let app = spawn_app_with(&issuer.url, |env| {
        env.insert("RESOURCE_EVENTS_CLIENT_ID".into(), "api".into());
        env.insert("RESOURCE_EVENTS_CLIENT_SECRET".into(), "s3cret".into());
    });
    app.wait_ready();
    Feed { key, issuer, app }
}

impl Feed {
    fn token(&self, sub: &str, sid: &str) -> String {
        let claims = with(
            &claims(&self.issuer.url, sub, "profile", &["user"]),
            "sid",
            json!(sid),
        );
        self.key.sign(&claims)
    }

    fn event(&self, event_type: &str, sub_id: Value) -> Value {
        json!({
            "iss": self.issuer.url, "jti": uuid::Uuid::new_v4().to_string(), "iat": now(),
            "sub_id": sub_id, "events": { event_type: { "event_timestamp": now() } },
        })
    }

    fn publish(&self, set: String) {
        self.issuer.events.lock().unwrap().push(set);
    }

    fn signed(&self, claims: &Value) -> String {
        self.key
            .sign_with_header(claims, Some("secevent+jwt"), Some(&self.key.kid))
    }

    fn me(&self, token: &str) -> u16 {
        get(&self.app.url("/api/me"), Some(token)).status
    }

    fn rejected(&self) -> bool {
        get(&format!("{}/metrics", self.app.admin), None)
            .body
            .contains("event=\"revocation_event_rejected\"")
    }
}

#[test]
fn a_signed_session_revoked_event_refuses_that_sessions_tokens_and_no_others() {
    let feed = start();
    let revoked = feed.token("u1", "session-1");
    let other = feed.token("u2", "session-2");
    assert_eq!(feed.me(&revoked), 200);
    feed.publish(feed.signed(&feed.event(SESSION_REVOKED, json!({ "format": "opaque", "id": "session-1" }))));
    assert!(eventually(Duration::from_secs(5), || feed.me(&revoked) == 401));
    assert_invalid_token(&get(&feed.app.url("/api/me"), Some(&revoked)));
    assert_eq!(feed.me(&other), 200);
    // A session never comes back: a token naming it is refused whenever it
    // was issued (a refresh that raced the logout).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(feed.me(&feed.token("u1", "session-1")), 401);
    // A user's revocation, by contrast, refuses only what was issued before.
    feed.publish(feed.signed(&feed.event(
        SESSION_REVOKED,
        json!({ "format": "iss_sub", "iss": feed.issuer.url, "sub": "u2" }),
    )));
    assert!(eventually(Duration::from_secs(5), || feed.me(&other) == 401));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(feed.me(&feed.token("u2", "session-3")), 200);
}

#[test]
fn tampered_unsigned_mistyped_and_foreign_events_are_ignored_and_counted() {
    let feed = start();
    let token = with(
        &claims(&feed.issuer.url, "u1", "profile", &["user"]),
        "client_id",
        json!("c1"),
    );
    let token = feed.key.sign(&token);
    let revoke_client = feed.event(CLIENT_REVOKED, json!({ "format": "opaque", "id": "c1" }));
    // Signed for another client, then the payload swapped.
    let genuine = feed.signed(&feed.event(CLIENT_REVOKED, json!({ "format": "opaque", "id": "c2" })));
    let parts: Vec<&str> = genuine.split('.').collect();
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64url(revoke_client.to_string().as_bytes()),
        parts[2]
    );
    let unsigned = raw_jwt(
        &json!({ "alg": "none", "typ": "secevent+jwt" }),
        &revoke_client,
        b"",
    );
    let as_access_token = feed.key.sign(&revoke_client);
    for set in [tampered, unsigned, as_access_token] {
        feed.publish(set);
    }
    assert!(eventually(Duration::from_secs(5), || feed.rejected()));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(feed.me(&token), 200, "no forged event took effect");
    // The genuine one for c1 does.
    feed.publish(feed.signed(&revoke_client));
    assert!(eventually(Duration::from_secs(5), || feed.me(&token) == 401));
}

#[test]
fn an_event_signed_by_a_key_the_issuer_never_published_is_given_up_after_the_jwks_was_refetched() {
    let feed = start();
    let token = with(
        &claims(&feed.issuer.url, "u1", "profile", &["user"]),
        "client_id",
        json!("c1"),
    );
    let token = feed.key.sign(&token);
    let revoke_client = feed.event(CLIENT_REVOKED, json!({ "format": "opaque", "id": "c1" }));
    let stranger = TestKey::new("k2");
    feed.publish(stranger.sign_with_header(&revoke_client, Some("secevent+jwt"), Some("k2")));
    feed.publish(feed.signed(&feed.event(SESSION_REVOKED, json!({ "format": "opaque", "id": "s9" }))));
    // Read again for a while (the key could be new), then given up.
    assert!(eventually(Duration::from_secs(40), || feed.rejected()));
    assert_eq!(feed.me(&token), 200, "the stranger's event took no effect");
    assert!(
        feed.issuer.jwks_requests() >= 2,
        "the JWKS was fetched again first"
    );
}
