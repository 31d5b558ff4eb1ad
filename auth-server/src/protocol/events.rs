//! The revocation feed: Security Event Tokens (RFC 8417) that tell offline
//! validators what ended, pulled in the shape of RFC 8936's poll request
//! and response, with a cursor of our own (see `docs/revocation-feed.md`).
//!
//! Each event names one thing access tokens depend on and a time: every
//! token of that subject issued (`iat`) at or before the time is refused.
//!
//! | kind | subject | event type | `sub_id` (RFC 9493) |
//! | --- | --- | --- | --- |
//! | session | the browser session's `sid` | CAEP `session-revoked` | `opaque` |
//! | user | the user's id (`sub`) | CAEP `session-revoked` (every session) | `iss_sub` |
//! | grant | the refresh family (`grant_id`) | ours: `grant-revoked` | `opaque` |
//! | token | one access token's `jti` | ours: `token-revoked` | `opaque` |
//! | client | the client id (`client_id`) | ours: `client-revoked` | `opaque` |

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use uuid::Uuid;

use super::OAuthError;

pub use oauth_common::secevent::{CLIENT_REVOKED, GRANT_REVOKED, SESSION_REVOKED, TOKEN_REVOKED};

/// Events per poll when the request does not say.
pub const DEFAULT_MAX_EVENTS: i64 = 1000;
/// The most events one response carries.
pub const MAX_EVENTS: i64 = 5000;

/// What ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Session,
    Grant,
    Token,
    User,
    Client,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Session => "session",
            Kind::Grant => "grant",
            Kind::Token => "token",
            Kind::User => "user",
            Kind::Client => "client",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Some(match text {
            "session" => Kind::Session,
            "grant" => Kind::Grant,
            "token" => Kind::Token,
            "user" => Kind::User,
            "client" => Kind::Client,
            _ => return None,
        })
    }
}

/// A stored event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The feed position (the cursor).
    pub seq: i64,
    pub jti: Uuid,
    pub kind: Kind,
    pub subject: String,
    pub revoked_at: DateTime<Utc>,
    /// When the revoked token expires (token events); otherwise every
    /// token the event refuses expires within the access-token lifetime.
    pub tokens_expire_by: Option<DateTime<Utc>>,
}

/// Allowed for clock differences between the instances that sign tokens
/// and record events.
const SKEW: Duration = Duration::from_secs(60);

/// The most leeway a validator may allow past `exp`
/// (`RESOURCE_LEEWAY_SECONDS` is at most 300).
const MAX_LEEWAY: Duration = Duration::from_secs(300);

/// How long an event is kept: past the access-token lifetime, the skew
/// allowance and the most leeway a validator may give, no token it could
/// refuse is valid anywhere.
pub fn retention(access_token_ttl: Duration) -> Duration {
    access_token_ttl + SKEW + MAX_LEEWAY
}

/// When every token `event` can refuse has expired (before any validator's
/// leeway): the revoked token's own expiry, or the access-token lifetime
/// (plus the skew allowance) after the revocation.
pub fn tokens_expire_by(event: &Event, access_token_ttl: Duration) -> i64 {
    match event.tokens_expire_by {
        Some(at) => at.timestamp(),
        None => {
            let ttl = i64::try_from((access_token_ttl + SKEW).as_secs()).unwrap_or(i64::MAX);
            event.revoked_at.timestamp().saturating_add(ttl)
        }
    }
}

/// The SET's claims (RFC 8417 section 2.2): `iss`, `jti`, `iat`, `toe`, the
/// subject as RFC 9493 `sub_id`, and the one event with its timestamp and
/// `tokens_expire_by` (ours: when a validator may forget it).
pub fn set_claims(
    issuer: &str,
    event: &Event,
    access_token_ttl: Duration,
    now: DateTime<Utc>,
) -> Map<String, Value> {
    let (event_type, sub_id) = match event.kind {
        Kind::Session => (
            SESSION_REVOKED,
            json!({ "format": "opaque", "id": event.subject }),
        ),
        Kind::User => (
            SESSION_REVOKED,
            json!({ "format": "iss_sub", "iss": issuer, "sub": event.subject }),
        ),
        Kind::Grant => (GRANT_REVOKED, json!({ "format": "opaque", "id": event.subject })),
        Kind::Token => (TOKEN_REVOKED, json!({ "format": "opaque", "id": event.subject })),
        Kind::Client => (CLIENT_REVOKED, json!({ "format": "opaque", "id": event.subject })),
    };
    let at = event.revoked_at.timestamp();
    let mut claims = Map::new();
    claims.insert("iss".into(), json!(issuer));
    claims.insert("jti".into(), json!(event.jti.to_string()));
    claims.insert("iat".into(), json!(now.timestamp()));
    claims.insert("toe".into(), json!(at));
    claims.insert("sub_id".into(), sub_id);
    claims.insert(
        "events".into(),
        json!({ event_type: {
            "event_timestamp": at,
            "tokens_expire_by": tokens_expire_by(event, access_token_ttl),
        } }),
    );
    claims
}

/// An RFC 8936 section 2.4 poll request, with our `cursor`. `ack` and
/// `setErrs` are accepted and ignored: every reader keeps its own cursor,
/// and events expire by time rather than by acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Poll {
    /// The last `seq` the reader has; 0 (or absent) reads from the start.
    pub cursor: i64,
    pub max_events: i64,
    /// When false and nothing is new, the answer waits a little for an event.
    pub return_immediately: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PollBody {
    #[serde(default)]
    cursor: Option<String>,
    #[serde(default)]
    max_events: Option<i64>,
    #[serde(default)]
    return_immediately: Option<bool>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for RFC 8936 clients; see `Poll`")]
    ack: Option<Vec<String>>,
    #[serde(default)]
    #[allow(dead_code, reason = "accepted for RFC 8936 clients; see `Poll`")]
    set_errs: Option<Value>,
}

/// Parses the JSON body of a poll request (an empty body is the default
/// poll from the start).
pub fn parse_poll(body: &[u8]) -> Result<Poll, OAuthError> {
    let body: PollBody = if body.iter().all(u8::is_ascii_whitespace) {
        PollBody {
            cursor: None,
            max_events: None,
            return_immediately: None,
            ack: None,
            set_errs: None,
        }
    } else {
        serde_json::from_slice(body)
            .map_err(|_| OAuthError::InvalidRequest("the poll request is not valid JSON"))?
    };
    let cursor = match body.cursor.as_deref() {
        None | Some("") => 0,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|c| *c >= 0)
            .ok_or(OAuthError::InvalidRequest("cursor is not one this feed gave"))?,
    };
    let max_events = match body.max_events {
        None => DEFAULT_MAX_EVENTS,
        Some(n) if n >= 0 => n.min(MAX_EVENTS),
        Some(_) => return Err(OAuthError::InvalidRequest("maxEvents must not be negative")),
    };
    Ok(Poll {
        cursor,
        max_events,
        return_immediately: body.return_immediately.unwrap_or(false),
    })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone as _;

    use super::*;

    const TTL: Duration = Duration::from_secs(600);

    #[test]
    fn an_event_says_when_its_tokens_expire() {
        let session = set_claims("https://as.example", &event(Kind::Session, "s1"), TTL, now());
        assert_eq!(
            session["events"][SESSION_REVOKED]["tokens_expire_by"],
            json!(1_800_000_000 + 600 + 60)
        );
        let token = Event {
            tokens_expire_by: Some(Utc.timestamp_opt(1_800_000_123, 0).single().unwrap()),
            ..event(Kind::Token, "j1")
        };
        let claims = set_claims("https://as.example", &token, TTL, now());
        assert_eq!(
            claims["events"][TOKEN_REVOKED]["tokens_expire_by"],
            json!(1_800_000_123)
        );
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(1_800_000_100, 0).single().unwrap()
    }

    fn event(kind: Kind, subject: &str) -> Event {
        Event {
            seq: 7,
            jti: Uuid::from_u128(1),
            kind,
            subject: subject.into(),
            revoked_at: Utc.timestamp_opt(1_800_000_000, 0).single().unwrap(),
            tokens_expire_by: None,
        }
    }

    #[test]
    fn a_session_event_is_caep_session_revoked_with_an_opaque_subject() {
        let claims = set_claims("https://as.example", &event(Kind::Session, "s1"), TTL, now());
        assert_eq!(claims["sub_id"], json!({ "format": "opaque", "id": "s1" }));
        assert_eq!(
            claims["events"][SESSION_REVOKED]["event_timestamp"],
            json!(1_800_000_000)
        );
        assert_eq!(claims["toe"], json!(1_800_000_000));
    }

    #[test]
    fn a_user_event_names_the_user_by_issuer_and_subject() {
        let claims = set_claims("https://as.example", &event(Kind::User, "u1"), TTL, now());
        assert_eq!(
            claims["sub_id"],
            json!({ "format": "iss_sub", "iss": "https://as.example", "sub": "u1" })
        );
        assert!(claims["events"].get(SESSION_REVOKED).is_some());
    }

    #[test]
    fn grant_token_and_client_events_have_types_of_their_own() {
        for (kind, event_type) in [
            (Kind::Grant, GRANT_REVOKED),
            (Kind::Token, TOKEN_REVOKED),
            (Kind::Client, CLIENT_REVOKED),
        ] {
            let claims = set_claims("https://as.example", &event(kind, "x"), TTL, now());
            assert!(claims["events"].get(event_type).is_some(), "{kind:?}");
        }
    }

    #[test]
    fn poll_requests_default_and_bound_what_they_ask() {
        assert_eq!(
            parse_poll(b"").unwrap(),
            Poll {
                cursor: 0,
                max_events: DEFAULT_MAX_EVENTS,
                return_immediately: false
            }
        );
        let poll =
            parse_poll(br#"{"cursor":"42","maxEvents":99999,"returnImmediately":true,"ack":["a"]}"#).unwrap();
        assert_eq!(poll.cursor, 42);
        assert_eq!(poll.max_events, MAX_EVENTS);
        assert!(poll.return_immediately);
        for bad in [
            &b"{"[..],
            br#"{"cursor":"-1"}"#,
            br#"{"cursor":"x"}"#,
            br#"{"maxEvents":-1}"#,
        ] {
            assert!(parse_poll(bad).is_err());
        }
    }
}
