//! The revocation feed's poll (`protocol::events`): reads the events after
//! the reader's cursor and signs each as a SET; with nothing new, waits up
//! to [`LONG_POLL`] for an event (woken at once by one recorded on this
//! instance, otherwise looking every [`RECHECK`]).

use std::sync::Arc;
use std::time::Duration;

use crate::protocol::StoreError;
use crate::protocol::events::{self, Event, Poll};
use crate::protocol::tokens::JwtType;
use crate::state::AppState;
use crate::storage::{self, PgStore};

/// The longest a poll waits for a new event.
pub const LONG_POLL: Duration = Duration::from_secs(5);
/// How often a waiting poll looks at the table.
const RECHECK: Duration = Duration::from_millis(500);

/// One poll's answer.
#[derive(Debug, Clone)]
pub struct Batch {
    /// `(jti, SET)` in feed order.
    pub sets: Vec<(String, String)>,
    /// The cursor to send next time.
    pub cursor: i64,
    /// More events are waiting beyond this batch.
    pub more: bool,
}

/// Why a poll gets no batch.
#[derive(Debug)]
pub enum Refusal {
    /// The cursor is past anything this feed has given (the database was
    /// restored or the feed is another one): read again from the start.
    CursorAhead,
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

/// Answers a poll.
pub async fn poll(state: &Arc<AppState>, poll: Poll) -> Result<Batch, Refusal> {
    let deadline = state.clock.now() + chrono::Duration::from_std(LONG_POLL).unwrap_or_default();
    loop {
        let now = state.clock.now();
        let st = Arc::clone(state);
        // Reading and signing on the blocking pool: a large catch-up read
        // never holds a request worker.
        let batch = storage::run(&state.pool, move |store| read(&st, store, poll, now)).await??;
        let waited_enough = poll.return_immediately || poll.max_events == 0 || now >= deadline;
        if batch.sets.is_empty() && !waited_enough {
            tokio::select! {
                () = state.events_wakeup.notified() => {}
                () = tokio::time::sleep(RECHECK) => {}
            }
            continue;
        }
        return Ok(batch);
    }
}

fn read(
    state: &AppState,
    store: &mut PgStore<'_>,
    poll: Poll,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Result<Batch, Refusal>, StoreError> {
    let ttl = state.settings.access_token_ttl;
    if poll.cursor > storage::events::head(store.conn)? {
        return Ok(Err(Refusal::CursorAhead));
    }
    let mut found: Vec<Event> = storage::events::after(
        store.conn,
        poll.cursor,
        poll.max_events + 1,
        now,
        events::retention(ttl),
    )?;
    let more = found.len() as i64 > poll.max_events;
    found.truncate(usize::try_from(poll.max_events).unwrap_or(0));
    let keys = state.keys.snapshot();
    let current_kid = keys.signing_key(now).map(|k| k.kid.clone());
    let issuer = state.settings.issuer.as_str();
    let mut sets = Vec::with_capacity(found.len());
    for event in &found {
        let set = state.signed_events.get_or_sign(
            event.jti,
            current_kid.as_deref(),
            || -> Result<_, StoreError> {
                let set = keys.sign_typed(
                    JwtType::SecurityEvent,
                    events::set_claims(issuer, event, ttl, now),
                    now,
                )?;
                Ok((current_kid.clone().unwrap_or_default(), set))
            },
        )?;
        sets.push((event.jti.to_string(), set));
    }
    Ok(Ok(Batch {
        sets,
        cursor: found.last().map_or(poll.cursor, |e| e.seq),
        more,
    }))
}
