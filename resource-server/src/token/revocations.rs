//! What the issuer's revocation feed has said, in memory: per kind of
//! subject (session `sid`, `grant_id`, token `jti`, user `sub`,
//! `client_id`) the time of its latest revocation. A token of a revoked
//! subject issued (`iat`) at or before that time is refused; a later one
//! (the user signed in again, the client got a new token) is not.
//!
//! Per request this is at most five hash lookups under a read lock: no
//! network call, no database. Entries are dropped once no token they could
//! refuse can still be valid (`retention`), so memory is bounded by the
//! revocation rate.

use std::collections::HashMap;
use std::sync::RwLock;

use serde_json::{Map, Value};

use super::Claims;

/// OpenID CAEP 1.0 section 3.1: a session, or (subject `iss_sub`) every
/// session of a user.
pub const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
pub const GRANT_REVOKED: &str = "urn:x-oauth-notes:secevent:grant-revoked";
pub const TOKEN_REVOKED: &str = "urn:x-oauth-notes:secevent:token-revoked";
pub const CLIENT_REVOKED: &str = "urn:x-oauth-notes:secevent:client-revoked";

/// What an event names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Session,
    Grant,
    Token,
    User,
    Client,
}

/// One revocation: tokens of `subject` issued at or before `at` (seconds)
/// are refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: Kind,
    pub subject: String,
    pub at: i64,
}

/// Reads a verified SET's event. `None` for an event this server does not
/// act on or a subject of another issuer.
pub fn from_set(claims: &Map<String, Value>, issuer: &str) -> Option<Revocation> {
    let events = claims.get("events")?.as_object()?;
    if events.len() != 1 {
        return None;
    }
    let (event_type, event) = events.iter().next()?;
    let sub_id = claims.get("sub_id")?.as_object()?;
    let format = sub_id.get("format")?.as_str()?;
    let text = |name: &str| sub_id.get(name).and_then(Value::as_str).filter(|s| !s.is_empty());
    let (kind, subject) = match (event_type.as_str(), format) {
        (SESSION_REVOKED, "opaque") => (Kind::Session, text("id")?),
        (SESSION_REVOKED, "iss_sub") if text("iss") == Some(issuer) => (Kind::User, text("sub")?),
        (GRANT_REVOKED, "opaque") => (Kind::Grant, text("id")?),
        (TOKEN_REVOKED, "opaque") => (Kind::Token, text("id")?),
        (CLIENT_REVOKED, "opaque") => (Kind::Client, text("id")?),
        _ => return None,
    };
    let at = event
        .get("event_timestamp")
        .and_then(Value::as_i64)
        .or_else(|| claims.get("toe").and_then(Value::as_i64))?;
    Some(Revocation {
        kind,
        subject: subject.to_owned(),
        at,
    })
}

#[derive(Debug, Default)]
struct Inner {
    by_kind: HashMap<Kind, HashMap<String, i64>>,
}

/// The revocations the feed delivered, kept for `retention` seconds.
#[derive(Debug)]
pub struct Revocations {
    inner: RwLock<Inner>,
    retention: i64,
}

impl Revocations {
    /// `retention`: seconds a revocation is kept after its time; at least
    /// the longest token lifetime accepted plus the leeway.
    pub fn new(retention: i64) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            retention,
        }
    }

    /// Records a revocation (a later time for the same subject wins).
    pub fn add(&self, revocation: Revocation) {
        let mut inner = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let times = inner.by_kind.entry(revocation.kind).or_default();
        let at = times.entry(revocation.subject).or_insert(revocation.at);
        *at = (*at).max(revocation.at);
    }

    /// Whether the token was revoked by anything the feed said.
    pub fn refuses(&self, claims: &Claims) -> bool {
        let inner = match self.inner.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        if inner.by_kind.is_empty() {
            return false;
        }
        let revoked = |kind: Kind, subject: Option<&str>| {
            subject
                .and_then(|s| inner.by_kind.get(&kind)?.get(s))
                .is_some_and(|at| claims.iat <= *at)
        };
        revoked(Kind::Token, Some(&claims.jti))
            || revoked(Kind::Session, claims.sid.as_deref())
            || revoked(Kind::Grant, claims.grant_id.as_deref())
            || revoked(Kind::User, Some(&claims.sub))
            || revoked(Kind::Client, Some(&claims.client_id))
    }

    /// Drops revocations older than the retention at `now` (seconds).
    pub fn prune(&self, now: i64) {
        let mut inner = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let oldest = now - self.retention;
        for times in inner.by_kind.values_mut() {
            times.retain(|_, at| *at >= oldest);
        }
    }

    /// How many subjects are held.
    pub fn len(&self) -> usize {
        let inner = match self.inner.read() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        inner.by_kind.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn claims(iat: i64) -> Claims {
        Claims {
            sub: "u1".into(),
            client_id: "c1".into(),
            scope: Default::default(),
            roles: vec![],
            username: None,
            jti: "j1".into(),
            exp: iat + 600,
            iat,
            sid: Some("s1".into()),
            grant_id: Some("g1".into()),
            kid: "k".into(),
        }
    }

    fn revocation(kind: Kind, subject: &str, at: i64) -> Revocation {
        Revocation {
            kind,
            subject: subject.into(),
            at,
        }
    }

    #[test]
    fn each_kind_refuses_tokens_issued_until_its_time_and_no_later() {
        for (kind, subject) in [
            (Kind::Session, "s1"),
            (Kind::Grant, "g1"),
            (Kind::Token, "j1"),
            (Kind::User, "u1"),
            (Kind::Client, "c1"),
        ] {
            let revocations = Revocations::new(900);
            assert!(!revocations.refuses(&claims(100)));
            revocations.add(revocation(kind, subject, 100));
            assert!(revocations.refuses(&claims(100)), "{kind:?}");
            assert!(revocations.refuses(&claims(99)), "{kind:?}");
            assert!(!revocations.refuses(&claims(101)), "{kind:?}: issued after");
            revocations.add(revocation(kind, "someone-else", 200));
            assert!(!revocations.refuses(&claims(150)), "{kind:?}: another subject");
        }
    }

    #[test]
    fn old_revocations_are_pruned() {
        let revocations = Revocations::new(900);
        revocations.add(revocation(Kind::User, "u1", 100));
        revocations.add(revocation(Kind::User, "u2", 1000));
        revocations.prune(1000);
        assert_eq!(revocations.len(), 2);
        revocations.prune(1001);
        assert_eq!(revocations.len(), 1);
    }

    #[test]
    fn sets_are_read_by_event_type_and_subject_format() {
        let issuer = "https://as.example";
        let set = |event_type: &str, sub_id: Value| {
            json!({ "iss": issuer, "sub_id": sub_id, "toe": 5,
                    "events": { event_type: { "event_timestamp": 7 } } })
        };
        let read = |v: Value| from_set(v.as_object().unwrap(), issuer);
        assert_eq!(
            read(set(SESSION_REVOKED, json!({ "format": "opaque", "id": "s1" }))),
            Some(revocation(Kind::Session, "s1", 7))
        );
        assert_eq!(
            read(set(
                SESSION_REVOKED,
                json!({ "format": "iss_sub", "iss": issuer, "sub": "u1" })
            )),
            Some(revocation(Kind::User, "u1", 7))
        );
        assert_eq!(
            read(set(
                SESSION_REVOKED,
                json!({ "format": "iss_sub", "iss": "https://other", "sub": "u1" })
            )),
            None
        );
        assert_eq!(
            read(set(CLIENT_REVOKED, json!({ "format": "opaque", "id": "c1" }))),
            Some(revocation(Kind::Client, "c1", 7))
        );
        assert_eq!(
            read(set("urn:unknown", json!({ "format": "opaque", "id": "x" }))),
            None
        );
    }
}
