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
use crate::storage;

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

/// Answers a poll.
pub async fn poll(state: &Arc<AppState>, poll: Poll) -> Result<Batch, StoreError> {
    let retention = events::retention(state.settings.access_token_ttl);
    let deadline = state.clock.now() + chrono::Duration::from_std(LONG_POLL).unwrap_or_default();
    loop {
        let (cursor, limit) = (poll.cursor, poll.max_events + 1);
        let now = state.clock.now();
        let mut found: Vec<Event> = storage::run(&state.pool, move |store| {
            storage::events::after(store.conn, cursor, limit, now, retention)
        })
        .await?;
        let waited_enough = poll.return_immediately || poll.max_events == 0 || now >= deadline;
        if found.is_empty() && !waited_enough {
            tokio::select! {
                () = state.events_wakeup.notified() => {}
                () = tokio::time::sleep(RECHECK) => {}
            }
            continue;
        }
        let more = found.len() as i64 > poll.max_events;
        found.truncate(usize::try_from(poll.max_events).unwrap_or(0));
        let keys = state.keys.snapshot();
        let issuer = state.settings.issuer.as_str();
        let mut sets = Vec::with_capacity(found.len());
        for event in &found {
            let set = keys.sign_typed(
                JwtType::SecurityEvent,
                events::set_claims(issuer, event, now),
                now,
            )?;
            sets.push((event.jti.to_string(), set));
        }
        return Ok(Batch {
            sets,
            cursor: found.last().map_or(poll.cursor, |e| e.seq),
            more,
        });
    }
}
