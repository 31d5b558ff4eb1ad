//! What the issuer's revocation feed has said, in memory: per kind of
//! subject (session `sid`, `grant_id`, token `jti`, user `sub`,
//! `client_id`) the time of its latest revocation.
//!
//! A session, a grant or a single token never comes back once revoked, so
//! every token naming one is refused, whenever it was issued (a refresh
//! that raced the revocation cannot slip through on its `iat`). A user or
//! a client lives on (re-enabled, a new secret), so only its tokens issued
//! (`iat`) at or before the revocation are refused.
//!
//! Per request this is at most five hash lookups under a read lock: no
//! network call, no database. Entries are dropped once no token they could
//! refuse can still be valid (`retention`), so memory is bounded by the
//! revocation rate.

use std::collections::HashMap;
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};

use serde_json::{Map, Value};

use super::Claims;

pub use oauth_common::secevent::{CLIENT_REVOKED, GRANT_REVOKED, SESSION_REVOKED, TOKEN_REVOKED};

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
/// are refused. `until`, when the issuer says it, is when every token the
/// revocation can refuse has expired (the issuer knows its access-token
/// lifetime, and a revoked token's own `exp`): the entry is dropped then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub kind: Kind,
    pub subject: String,
    pub at: i64,
    pub until: Option<i64>,
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
        until: event.get("tokens_expire_by").and_then(Value::as_i64),
    })
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    at: i64,
    /// When the entry can go: no token it refuses is valid any more.
    drop_at: i64,
}

#[derive(Debug, Default)]
struct Inner {
    by_kind: HashMap<Kind, HashMap<String, Entry>>,
}

/// The revocations the feed delivered.
#[derive(Debug)]
pub struct Revocations {
    inner: RwLock<Inner>,
    /// The longest an entry is kept: the longest token lifetime accepted
    /// plus the leeway, whatever the issuer says.
    retention: i64,
    leeway: i64,
    /// When [`Revocations::prune`] next scans (it takes the write lock).
    next_prune: AtomicI64,
}

/// Seconds between two scans for expired entries.
const PRUNE_EVERY: i64 = 10;

impl Revocations {
    /// `retention`: the longest token lifetime accepted plus `leeway`
    /// (seconds); an entry is never kept longer.
    pub fn new(retention: i64, leeway: i64) -> Self {
        Self {
            inner: RwLock::new(Inner::default()),
            retention,
            leeway,
            next_prune: AtomicI64::new(0),
        }
    }

    /// Records a revocation (a later time for the same subject wins).
    pub fn add(&self, revocation: Revocation) {
        let limit = revocation.at.saturating_add(self.retention);
        let drop_at = match revocation.until {
            Some(until) => until.saturating_add(self.leeway).min(limit),
            None => limit,
        };
        let mut inner = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let entries = inner.by_kind.entry(revocation.kind).or_default();
        let entry = entries.entry(revocation.subject).or_insert(Entry {
            at: revocation.at,
            drop_at,
        });
        entry.at = entry.at.max(revocation.at);
        entry.drop_at = entry.drop_at.max(drop_at);
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
        let entry =
            |kind: Kind, subject: Option<&str>| subject.and_then(|s| inner.by_kind.get(&kind)?.get(s));
        let ended = |kind: Kind, subject: Option<&str>| entry(kind, subject).is_some();
        let issued_before =
            |kind: Kind, subject: &str| entry(kind, Some(subject)).is_some_and(|e| claims.iat <= e.at);
        ended(Kind::Token, Some(&claims.jti))
            || ended(Kind::Session, claims.sid.as_deref())
            || ended(Kind::Grant, claims.grant_id.as_deref())
            || issued_before(Kind::User, &claims.sub)
            || issued_before(Kind::Client, &claims.client_id)
    }

    /// Drops the entries whose tokens have all expired at `now` (seconds);
    /// scans at most every few seconds, whatever calls it.
    pub fn prune(&self, now: i64) {
        if now < self.next_prune.load(Ordering::Relaxed) {
            return;
        }
        self.next_prune.store(now + PRUNE_EVERY, Ordering::Relaxed);
        let mut inner = match self.inner.write() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        for entries in inner.by_kind.values_mut() {
            entries.retain(|_, e| e.drop_at >= now);
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
            until: None,
        }
    }

    #[test]
    fn users_and_clients_refuse_tokens_issued_until_their_time_and_no_later() {
        for (kind, subject) in [(Kind::User, "u1"), (Kind::Client, "c1")] {
            let revocations = Revocations::new(900, 30);
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
    fn sessions_grants_and_tokens_are_refused_whenever_their_tokens_were_issued() {
        for (kind, subject) in [(Kind::Session, "s1"), (Kind::Grant, "g1"), (Kind::Token, "j1")] {
            let revocations = Revocations::new(900, 30);
            revocations.add(revocation(kind, subject, 100));
            // A refresh that raced the revocation is issued a moment later.
            assert!(revocations.refuses(&claims(102)), "{kind:?}");
            revocations.add(revocation(kind, "someone-else", 200));
            let mut other = claims(150);
            other.jti = "j2".into();
            other.sid = Some("s2".into());
            other.grant_id = Some("g2".into());
            assert!(revocations.refuses(&claims(150)), "{kind:?}");
            assert!(!revocations.refuses(&other), "{kind:?}: another subject");
        }
    }

    #[test]
    fn entries_go_when_their_tokens_have_expired() {
        let revocations = Revocations::new(900, 30);
        revocations.add(revocation(Kind::User, "u1", 100));
        revocations.add(Revocation {
            until: Some(700),
            ..revocation(Kind::Token, "j9", 100)
        });
        revocations.add(revocation(Kind::User, "u2", 1000));
        revocations.prune(730);
        assert_eq!(revocations.len(), 3);
        revocations.next_prune.store(0, Ordering::Relaxed);
        revocations.prune(731);
        assert_eq!(
            revocations.len(),
            2,
            "the token's entry went at its exp plus the leeway"
        );
        revocations.next_prune.store(0, Ordering::Relaxed);
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
