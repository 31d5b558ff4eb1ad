//! `auth-server client ...`: list, change, rotate the secret of, and delete
//! registered clients. Secret hashes are never printed; a new secret is
//! printed once.

use clap::Args;
use oauth_common::Clock;
use serde_json::{Value, json};

use super::{CliError, ClientCommand, confirmed, print_json, time};
use crate::audit::{self, Actor, Event};
use crate::config::Settings;
use crate::crypto;
use crate::domain::ClientKind;
use crate::registration::ClientRegistration;
use crate::startup;
use crate::storage;
use crate::storage::clients::ClientRecord;

#[derive(Debug, Args)]
pub struct Id {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub client_id: String,
}

#[derive(Debug, Args)]
pub struct Update {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub client_id: String,
    #[arg(long)]
    pub name: Option<String>,
    #[arg(long = "add-redirect-uri")]
    pub add_redirect_uris: Vec<String>,
    #[arg(long = "remove-redirect-uri")]
    pub remove_redirect_uris: Vec<String>,
    #[arg(long = "add-post-logout-redirect-uri")]
    pub add_post_logout_redirect_uris: Vec<String>,
    #[arg(long = "remove-post-logout-redirect-uri")]
    pub remove_post_logout_redirect_uris: Vec<String>,
    #[arg(long = "add-scope")]
    pub add_scopes: Vec<String>,
    #[arg(long = "remove-scope")]
    pub remove_scopes: Vec<String>,
    #[arg(long = "add-grant-type")]
    pub add_grant_types: Vec<String>,
    #[arg(long = "remove-grant-type")]
    pub remove_grant_types: Vec<String>,
    #[arg(long = "add-audience")]
    pub add_audiences: Vec<String>,
    #[arg(long = "remove-audience")]
    pub remove_audiences: Vec<String>,
    /// Skip (true) or show (false) the consent page.
    #[arg(long, value_name = "true|false")]
    pub first_party: Option<bool>,
    /// May (true) or may not (false) call the introspection endpoint.
    #[arg(long, value_name = "true|false")]
    pub allow_introspection: Option<bool>,
    /// Where to POST back-channel logout tokens.
    #[arg(
        long = "backchannel-logout-uri",
        conflicts_with = "remove_backchannel_logout_uri"
    )]
    pub backchannel_logout_uri: Option<String>,
    /// Stop sending back-channel logout tokens.
    #[arg(long)]
    pub remove_backchannel_logout_uri: bool,
    /// Refuse (true) or allow (false) OpenID Connect requests without a nonce.
    #[arg(long, value_name = "true|false")]
    pub require_nonce: Option<bool>,
    /// May (true) or may not (false) read the revocation feed.
    #[arg(long, value_name = "true|false")]
    pub allow_events: Option<bool>,
}

#[derive(Debug, Args)]
pub struct RotateSecret {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub client_id: String,
    /// Seconds the old secret keeps working (0 ends it at once).
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u32).range(0..=2_592_000))]
    pub overlap: u32,
}

#[derive(Debug, Args)]
pub struct Delete {
    /// May start with '-' (ids and kids are base64url).
    #[arg(allow_hyphen_values = true)]
    pub client_id: String,
    /// Confirm: the client and every token it holds are gone for good.
    #[arg(long)]
    pub yes: bool,
}

fn no_such_client(id: &str) -> CliError {
    CliError(format!("no client with id {id:?}"))
}

/// A client as JSON, without its secret hashes.
fn client_json(record: &ClientRecord, now: chrono::DateTime<chrono::Utc>) -> Value {
    let client = &record.client;
    let uris =
        |list: &[crate::domain::RedirectUri]| list.iter().map(|u| u.as_str().to_owned()).collect::<Vec<_>>();
    let overlap = client
        .previous_secret
        .as_ref()
        .map(|p| p.expires_at)
        .filter(|until| *until > now);
    json!({
        "client_id": client.client_id,
        "name": client.name,
        "client_type": client.kind.as_str(),
        "redirect_uris": uris(&client.redirect_uris),
        "post_logout_redirect_uris": uris(&client.post_logout_redirect_uris),
        "grant_types": client.grant_types.iter().map(|g| g.as_str()).collect::<Vec<_>>(),
        "scope": client.scopes.to_string(),
        "audiences": client.audiences,
        "first_party": client.first_party,
        "allow_introspection": client.allow_introspection,
        "backchannel_logout_uri": client.backchannel_logout_uri,
        "require_nonce": client.require_nonce,
        "allow_events": client.allow_events,
        "previous_secret_valid_until": time(overlap),
        "created_at": record.created_at.to_rfc3339(),
        "updated_at": record.updated_at.to_rfc3339(),
    })
}

/// Adds `add` to `list` and removes `remove`; removing what is not there
/// is an error (a typo must not pass as done).
fn edit(list: &mut Vec<String>, add: Vec<String>, remove: &[String], what: &str) -> Result<(), CliError> {
    for item in remove {
        let before = list.len();
        list.retain(|x| x != item);
        if list.len() == before {
            return Err(CliError(format!(
                "{what} {item:?} is not registered for this client"
            )));
        }
    }
    for item in add {
        if !list.contains(&item) {
            list.push(item);
        }
    }
    Ok(())
}

pub fn run(settings: &Settings, command: ClientCommand) -> Result<(), CliError> {
    let now = Clock::system().now();
    match command {
        ClientCommand::Create(args) => super::create_client(settings, args),
        ClientCommand::List => {
            let mut conn = startup::open_connection(settings)?;
            let clients = storage::clients::list(&mut conn)?;
            print_json(&Value::Array(
                clients.iter().map(|c| client_json(c, now)).collect(),
            ))
        }
        ClientCommand::Show(Id { client_id }) => {
            let mut conn = startup::open_connection(settings)?;
            let record =
                storage::clients::show(&mut conn, &client_id)?.ok_or_else(|| no_such_client(&client_id))?;
            print_json(&client_json(&record, now))
        }
        ClientCommand::Update(args) => update(settings, args, now),
        ClientCommand::RotateSecret(args) => {
            let mut conn = startup::open_connection(settings)?;
            let record = storage::clients::show(&mut conn, &args.client_id)?
                .ok_or_else(|| no_such_client(&args.client_id))?;
            if record.client.kind != ClientKind::Confidential {
                return Err(CliError("a public client has no secret to rotate".into()));
            }
            let secret = crypto::random_token()?;
            let until = now + chrono::Duration::seconds(i64::from(args.overlap));
            if !storage::clients::rotate_secret(
                &mut conn,
                &args.client_id,
                &crypto::token_hash(&secret),
                until,
                now,
            )? {
                return Err(no_such_client(&args.client_id));
            }
            audit::record(
                Event::ClientSecretRotated,
                Actor::default().client(&args.client_id),
                "client secret rotated by an operator",
            );
            print_json(&json!({
                "client_id": args.client_id,
                "client_secret": secret,
                "previous_secret_valid_until": time(Some(until).filter(|_| args.overlap > 0)),
            }))
        }
        ClientCommand::RetireSecret(Id { client_id }) => {
            let mut conn = startup::open_connection(settings)?;
            let record =
                storage::clients::show(&mut conn, &client_id)?.ok_or_else(|| no_such_client(&client_id))?;
            if record.client.kind != ClientKind::Confidential {
                return Err(CliError("a public client has no secret".into()));
            }
            let ended = storage::clients::retire_secret(&mut conn, &client_id, now)?;
            audit::record(
                Event::ClientSecretRetired,
                Actor::default().client(&client_id),
                "previous client secret retired by an operator",
            );
            print_json(&json!({
                "client_id": client_id,
                "previous_secret_retired": ended,
            }))
        }
        ClientCommand::Delete(args) => {
            confirmed(args.yes, "deleting a client")?;
            let mut conn = startup::open_connection(settings)?;
            let deleted = storage::clients::delete(&mut conn, &args.client_id, Clock::system().now())?
                .ok_or_else(|| no_such_client(&args.client_id))?;
            audit::record(
                Event::ClientDeleted,
                Actor::default().client(&args.client_id),
                "client deleted by an operator",
            );
            print_json(&json!({
                "client_id": args.client_id,
                "deleted": true,
                "refresh_families_deleted": deleted.families,
                "codes_deleted": deleted.codes,
                "consents_deleted": deleted.consents,
            }))
        }
    }
}

fn update(settings: &Settings, args: Update, now: chrono::DateTime<chrono::Utc>) -> Result<(), CliError> {
    let mut conn = startup::open_connection(settings)?;
    let record =
        storage::clients::show(&mut conn, &args.client_id)?.ok_or_else(|| no_such_client(&args.client_id))?;
    let mut wanted = ClientRegistration::of(&record.client);
    if let Some(name) = args.name {
        wanted.name = name;
    }
    edit(
        &mut wanted.redirect_uris,
        args.add_redirect_uris,
        &args.remove_redirect_uris,
        "redirect URI",
    )?;
    edit(
        &mut wanted.post_logout_redirect_uris,
        args.add_post_logout_redirect_uris,
        &args.remove_post_logout_redirect_uris,
        "post-logout redirect URI",
    )?;
    edit(&mut wanted.scopes, args.add_scopes, &args.remove_scopes, "scope")?;
    edit(
        &mut wanted.grant_types,
        args.add_grant_types,
        &args.remove_grant_types,
        "grant type",
    )?;
    edit(
        &mut wanted.audiences,
        args.add_audiences,
        &args.remove_audiences,
        "audience",
    )?;
    if let Some(first_party) = args.first_party {
        wanted.first_party = first_party;
    }
    if let Some(allow) = args.allow_introspection {
        wanted.allow_introspection = allow;
    }
    if args.remove_backchannel_logout_uri {
        wanted.backchannel_logout_uri = None;
    }
    if let Some(uri) = args.backchannel_logout_uri {
        wanted.backchannel_logout_uri = Some(uri);
    }
    if let Some(require) = args.require_nonce {
        wanted.require_nonce = require;
    }
    if let Some(allow) = args.allow_events {
        wanted.allow_events = allow;
    }
    let client = wanted.recheck(&record.client)?;
    if !storage::clients::update(&mut conn, &client, now)? {
        return Err(no_such_client(&args.client_id));
    }
    audit::record(
        Event::ClientUpdated,
        Actor::default().client(&client.client_id),
        "client registration changed by an operator",
    );
    let record = storage::clients::show(&mut conn, &client.client_id)?
        .ok_or_else(|| no_such_client(&client.client_id))?;
    print_json(&client_json(&record, now))
}
