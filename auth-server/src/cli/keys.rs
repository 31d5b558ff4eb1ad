//! `auth-server keys list | retire | rewrap` (`keys rotate` lives beside
//! the other original commands).

use clap::Args;
use oauth_common::Clock;
use serde_json::{Value, json};

use super::{CliError, KeysCommand, print_json, time};
use crate::audit::Event;
use crate::config::Settings;
use crate::keys::lifecycle::{Retirement, Timeline, retirement};
use crate::keys::{self, RETIREMENT_LEEWAY};
use crate::startup;
use crate::storage;

#[derive(Debug, Args)]
pub struct Retire {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub kid: String,
    /// Retire it even though tokens it signed may still be valid (they stop
    /// verifying); for a compromised key.
    #[arg(long)]
    pub force: bool,
}

pub fn run(settings: &Settings, command: KeysCommand) -> Result<(), CliError> {
    match command {
        KeysCommand::Rotate => rotate(settings),
        KeysCommand::List => list(settings),
        KeysCommand::Retire(args) => retire(settings, &args),
        KeysCommand::Rewrap => rewrap(settings),
    }
}

/// Adds a key that signs after `AUTH_KEY_ACTIVATION_DELAY`, under the
/// rotation lock so it cannot race a scheduled rotation.
fn rotate(settings: &Settings) -> Result<(), CliError> {
    let mut conn = startup::open_connection(settings)?;
    let server_keys = startup::server_keys(settings)?;
    // Fails early if the configured key cannot open the existing keys.
    startup::load_keys(&mut conn, &server_keys, settings)?;
    let now = Clock::system().now();
    let delay = chrono::Duration::from_std(settings.key_activation_delay)?;
    let row = keys::generate(&server_keys.signing_key_wrap, now, now + delay)?;
    let added = storage::keys::with_rotation_lock(&mut conn, |conn| storage::keys::insert(conn, &row))?;
    if added.is_none() {
        return Err(CliError("another key change is in progress; try again".into()));
    }
    tracing::info!(target: "audit", audit = Event::KeyRotated.as_str(), kid = %row.kid, "audit: key_rotated");
    print_json(&json!({ "kid": row.kid, "alg": row.alg, "activates_at": row.activates_at.to_rfc3339() }))
}

fn list(settings: &Settings) -> Result<(), CliError> {
    let mut conn = startup::open_connection(settings)?;
    let rows = storage::keys::load_all(&mut conn)?;
    let now = Clock::system().now();
    let timeline = Timeline::new(&rows, settings.access_token_ttl, RETIREMENT_LEEWAY);
    let out: Vec<Value> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            // When it stops being published: when it was retired, or when
            // the tokens it signed expire once a newer key took over.
            let retires = row.retired_at.or_else(|| timeline.tokens_valid_until(i, now));
            json!({
                "kid": row.kid,
                "alg": row.alg,
                "created_at": row.created_at.to_rfc3339(),
                "activates_at": row.activates_at.to_rfc3339(),
                "retires_at": time(retires),
                "state": timeline.state(i, now).as_str(),
            })
        })
        .collect();
    print_json(&Value::Array(out))
}

fn retire(settings: &Settings, args: &Retire) -> Result<(), CliError> {
    let mut conn = startup::open_connection(settings)?;
    let now = Clock::system().now();
    // Under the rotation lock, so a scheduled rotation cannot interleave.
    let decided = storage::keys::with_rotation_lock(&mut conn, |conn| {
        let rows = storage::keys::load_all(conn)?;
        let Some(i) = rows.iter().position(|r| r.kid == args.kid) else {
            return Ok(Err(format!("no signing key with kid {:?}", args.kid)));
        };
        let timeline = Timeline::new(&rows, settings.access_token_ttl, RETIREMENT_LEEWAY);
        // Other instances see the change at their next reload; allow a
        // minute of clock skew on top.
        let settle = settings.key_reload_interval + RETIREMENT_LEEWAY;
        let promote = match retirement(&timeline, i, now, args.force, settle) {
            Retirement::Refused(why) => return Ok(Err(format!("refusing to retire {}: {why}", args.kid))),
            Retirement::Now => None,
            Retirement::Forced { promote } => promote.and_then(|j| rows.get(j)).map(|r| r.kid.clone()),
        };
        storage::keys::retire(conn, &args.kid, promote.as_deref(), now)?;
        Ok(Ok(promote))
    })?;
    let promoted = match decided {
        None => return Err(CliError("another key change is in progress; try again".into())),
        Some(Err(why)) => return Err(CliError(why)),
        Some(Ok(promoted)) => promoted,
    };
    tracing::info!(
        target: "audit",
        audit = Event::KeyRetired.as_str(),
        kid = %args.kid,
        forced = args.force,
        "audit: key_retired"
    );
    print_json(&json!({
        "kid": args.kid,
        "state": "retired",
        "retired_at": now.to_rfc3339(),
        "forced": args.force,
        "promoted": promoted,
    }))
}

/// Seals every private key under the current KEK. Each key is one
/// compare-and-set update, so the command can be interrupted and run again;
/// a key already under the current KEK is left as it is.
fn rewrap(settings: &Settings) -> Result<(), CliError> {
    let server_keys = startup::server_keys(settings)?;
    let wraps = server_keys.signing_key_wraps();
    let Some(current) = wraps.first().copied() else {
        return Err(CliError("no key-encryption key".into()));
    };
    let mut conn = startup::open_connection(settings)?;
    let rows = storage::keys::load_all(&mut conn)?;
    // Every key must open before any is changed.
    let opened = rows
        .iter()
        .map(|row| keys::open_sealed_at(row, &wraps).map(|(der, at)| (row, der, at)))
        .collect::<Result<Vec<_>, _>>()?;
    let (mut rewrapped, mut unchanged) = (Vec::new(), Vec::new());
    for (row, der, at) in opened {
        if at == 0 {
            unchanged.push(row.kid.clone());
            continue;
        }
        let sealed = keys::reseal(row, &der, &current)?;
        if !storage::keys::reseal(&mut conn, &row.kid, &row.private_key_sealed, &sealed)? {
            // Another run got there first; what it stored must open.
            let now_stored = storage::keys::load_all(&mut conn)?
                .into_iter()
                .find(|r| r.kid == row.kid);
            if let Some(stored) = now_stored {
                keys::open_sealed_at(&stored, &[current])?;
            }
        }
        rewrapped.push(row.kid.clone());
    }
    tracing::info!(
        target: "audit",
        audit = Event::KeysRewrapped.as_str(),
        rewrapped = rewrapped.len(),
        "audit: keys_rewrapped"
    );
    print_json(&json!({ "rewrapped": rewrapped, "unchanged": unchanged }))
}
