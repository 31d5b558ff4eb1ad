//! Sign-in, consent and logout policy: the decisions behind the pages,
//! apart from HTTP. Each entry point takes what a handler extracted (form
//! fields, cookie values, the client address) and returns an outcome the
//! handler maps to a response. Policy may reach the database through
//! `storage::run` and the password verifier, and uses `protocol/` for the
//! OAuth rules; it never names actix or diesel.

pub mod authorize;
pub mod backchannel;
pub mod events;
pub mod login;
pub mod logout;
pub mod session;
pub mod tokens;

use std::sync::Arc;

use crate::limits::Kind;
use crate::protocol::StoreError;
use crate::state::AppState;

/// Counts one failure against each key in the limits every instance shares
/// (and remembers here the keys that are now over their limit).
pub async fn record_failures(state: &Arc<AppState>, keys: Vec<(Kind, String)>) -> Result<(), StoreError> {
    let st = Arc::clone(state);
    let now = state.clock.now();
    crate::storage::run(&state.pool, move |store| {
        for (kind, key) in &keys {
            st.limits.record_failure(store.conn, *kind, key, now)?;
        }
        Ok(())
    })
    .await
}
