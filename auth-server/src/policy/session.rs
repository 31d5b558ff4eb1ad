//! Browser sessions as the pages see them.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::crypto;
use crate::protocol::StoreError;
use crate::protocol::session::{Session, SessionStore as _};
use crate::state::AppState;
use crate::storage::{self, PgStore};

/// Looks up the browser session for a raw session id (inside a store
/// closure).
pub fn find_session(
    store: &mut PgStore<'_>,
    raw: Option<&str>,
    now: DateTime<Utc>,
    idle: std::time::Duration,
) -> Result<Option<Session>, StoreError> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let idle = chrono::Duration::from_std(idle).unwrap_or(chrono::Duration::MAX);
    store.find_session(&crypto::token_hash(raw), now, idle)
}

/// The browser session for the session cookie, if it is live.
pub async fn current(state: &Arc<AppState>, raw: Option<String>) -> Result<Option<Session>, StoreError> {
    let idle = state.settings.session_idle_ttl;
    let now = state.clock.now();
    storage::run(&state.pool, move |store| {
        find_session(store, raw.as_deref(), now, idle)
    })
    .await
}
