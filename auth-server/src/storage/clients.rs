//! `clients`: registration and lookup.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::PgStore;
use super::schema::clients;
use crate::domain::{ClientKind, GrantType, RedirectUri, ScopeSet};
use crate::model::{Client, PreviousSecret};
use crate::protocol::StoreError;
use crate::protocol::client_auth::ClientDirectory;

#[derive(Queryable, Selectable)]
#[diesel(table_name = clients, check_for_backend(diesel::pg::Pg))]
struct ClientRow {
    client_id: String,
    name: String,
    client_type: String,
    secret_hash: Option<Vec<u8>>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    audiences: Vec<String>,
    first_party: bool,
    allow_introspection: bool,
    backchannel_logout_uri: Option<String>,
    require_nonce: bool,
    allow_events: bool,
    previous_secret_hash: Option<Vec<u8>>,
    previous_secret_expires_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl ClientRow {
    fn into_client(self) -> Result<Client, StoreError> {
        let bad = |what: &str, e: String| {
            StoreError::Corrupt(format!("stored client {}: bad {what}: {e}", self.client_id))
        };
        let parse_uris = |uris: &[String]| -> Result<Vec<RedirectUri>, String> {
            uris.iter().map(|u| RedirectUri::parse(u)).collect()
        };
        Ok(Client {
            kind: ClientKind::parse(&self.client_type).map_err(|e| bad("type", e))?,
            redirect_uris: parse_uris(&self.redirect_uris).map_err(|e| bad("redirect URI", e))?,
            post_logout_redirect_uris: parse_uris(&self.post_logout_redirect_uris)
                .map_err(|e| bad("post-logout redirect URI", e))?,
            grant_types: self
                .grant_types
                .iter()
                .map(|g| GrantType::parse(g))
                .collect::<Result<_, _>>()
                .map_err(|e| bad("grant type", e))?,
            scopes: ScopeSet::parse_known(&self.scopes).map_err(|e| bad("scope", e))?,
            previous_secret: match (self.previous_secret_hash, self.previous_secret_expires_at) {
                (Some(hash), Some(expires_at)) => Some(PreviousSecret { hash, expires_at }),
                _ => None,
            },
            client_id: self.client_id,
            name: self.name,
            secret_hash: self.secret_hash,
            audiences: self.audiences,
            first_party: self.first_party,
            allow_introspection: self.allow_introspection,
            backchannel_logout_uri: self.backchannel_logout_uri,
            require_nonce: self.require_nonce,
            allow_events: self.allow_events,
        })
    }
}

#[derive(Insertable)]
#[diesel(table_name = clients)]
struct NewClientRow<'a> {
    client_id: &'a str,
    name: &'a str,
    client_type: &'a str,
    secret_hash: Option<&'a [u8]>,
    redirect_uris: Vec<String>,
    post_logout_redirect_uris: Vec<String>,
    grant_types: Vec<String>,
    scopes: Vec<String>,
    audiences: &'a [String],
    first_party: bool,
    allow_introspection: bool,
    backchannel_logout_uri: Option<&'a str>,
    require_nonce: bool,
    allow_events: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

pub fn insert(conn: &mut PgConnection, client: &Client, now: DateTime<Utc>) -> Result<(), StoreError> {
    let uris = |list: &[RedirectUri]| list.iter().map(|u| u.as_str().to_owned()).collect();
    let row = NewClientRow {
        client_id: &client.client_id,
        name: &client.name,
        client_type: client.kind.as_str(),
        secret_hash: client.secret_hash.as_deref(),
        redirect_uris: uris(&client.redirect_uris),
        post_logout_redirect_uris: uris(&client.post_logout_redirect_uris),
        grant_types: client.grant_types.iter().map(|g| g.as_str().to_owned()).collect(),
        scopes: client.scopes.to_strings(),
        audiences: &client.audiences,
        first_party: client.first_party,
        allow_introspection: client.allow_introspection,
        backchannel_logout_uri: client.backchannel_logout_uri.as_deref(),
        require_nonce: client.require_nonce,
        allow_events: client.allow_events,
        created_at: now,
        updated_at: now,
    };
    diesel::insert_into(clients::table).values(&row).execute(conn)?;
    Ok(())
}

pub fn find(conn: &mut PgConnection, client_id: &str) -> Result<Option<Client>, StoreError> {
    clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?
        .map(ClientRow::into_client)
        .transpose()
}

/// A client as the operator commands show it: the registration and when
/// it was made and last changed.
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub client: Client,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

fn record(row: ClientRow) -> Result<ClientRecord, StoreError> {
    let (created_at, updated_at) = (row.created_at, row.updated_at);
    Ok(ClientRecord {
        client: row.into_client()?,
        created_at,
        updated_at,
    })
}

/// Every client, oldest first.
pub fn list(conn: &mut PgConnection) -> Result<Vec<ClientRecord>, StoreError> {
    clients::table
        .order((clients::created_at.asc(), clients::client_id.asc()))
        .select(ClientRow::as_select())
        .load(conn)?
        .into_iter()
        .map(record)
        .collect()
}

pub fn show(conn: &mut PgConnection, client_id: &str) -> Result<Option<ClientRecord>, StoreError> {
    clients::table
        .find(client_id)
        .select(ClientRow::as_select())
        .first(conn)
        .optional()?
        .map(record)
        .transpose()
}

/// Replaces the registration of `client.client_id` (never its id, type or
/// secrets). Returns false when there is no such client.
pub fn update(conn: &mut PgConnection, client: &Client, now: DateTime<Utc>) -> Result<bool, StoreError> {
    let uris = |list: &[RedirectUri]| -> Vec<String> { list.iter().map(|u| u.as_str().to_owned()).collect() };
    let changed = diesel::update(clients::table.find(&client.client_id))
        .set((
            clients::name.eq(&client.name),
            clients::redirect_uris.eq(uris(&client.redirect_uris)),
            clients::post_logout_redirect_uris.eq(uris(&client.post_logout_redirect_uris)),
            clients::grant_types.eq(client
                .grant_types
                .iter()
                .map(|g| g.as_str().to_owned())
                .collect::<Vec<_>>()),
            clients::scopes.eq(client.scopes.to_strings()),
            clients::audiences.eq(&client.audiences),
            clients::first_party.eq(client.first_party),
            clients::allow_introspection.eq(client.allow_introspection),
            clients::backchannel_logout_uri.eq(client.backchannel_logout_uri.as_deref()),
            clients::require_nonce.eq(client.require_nonce),
            clients::allow_events.eq(client.allow_events),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
    Ok(changed == 1)
}

/// Makes `new_hash` the client's secret; the current one keeps working
/// until `overlap_until` (a past time ends it at once). Only for
/// confidential clients; returns false when there is none with this id.
pub fn rotate_secret(
    conn: &mut PgConnection,
    client_id: &str,
    new_hash: &[u8],
    overlap_until: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        // One statement: the old hash moves aside as the new one comes in, so
        // two rotations at once cannot lose a secret that was printed.
        let changed = diesel::update(
            clients::table
                .find(client_id)
                .filter(clients::client_type.eq(ClientKind::Confidential.as_str())),
        )
        .set((
            clients::previous_secret_hash.eq(clients::secret_hash),
            clients::previous_secret_expires_at.eq(Some(overlap_until)),
            clients::secret_hash.eq(Some(new_hash)),
            clients::updated_at.eq(now),
        ))
        .execute(conn)?;
        // No overlap: the old secret is treated as compromised, and the access
        // tokens the client holds are refused by offline validators too.
        if changed == 1 && overlap_until <= now {
            super::events::record(conn, crate::protocol::events::Kind::Client, client_id, now)?;
        }
        Ok(changed == 1)
    })
}

/// Ends a rotation's overlap: only the current secret works from now on.
/// Returns whether an overlap was running.
pub fn retire_secret(
    conn: &mut PgConnection,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    conn.transaction(|conn| {
        let until: Option<Option<DateTime<Utc>>> = clients::table
            .find(client_id)
            .select(clients::previous_secret_expires_at)
            .for_update()
            .first(conn)
            .optional()?;
        let Some(Some(until)) = until else {
            return Ok(false);
        };
        diesel::update(clients::table.find(client_id))
            .set((
                clients::previous_secret_hash.eq(None::<Vec<u8>>),
                clients::previous_secret_expires_at.eq(None::<DateTime<Utc>>),
                clients::updated_at.eq(now),
            ))
            .execute(conn)?;
        let ended_early = until > now;
        if ended_early {
            // Ending an overlap early is the leaked-secret runbook.
            super::events::record(conn, crate::protocol::events::Kind::Client, client_id, now)?;
        }
        Ok(ended_early)
    })
}

/// What deleting a client took with it.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeletedClient {
    pub families: usize,
    pub codes: usize,
    pub consents: usize,
}

/// Deletes the client with its codes, token families (and so their refresh
/// tokens and the access tokens issued from them) and remembered consents.
/// Its client-credentials tokens introspect as inactive from then on (see
/// `access_token_revoked`). `None` when there is no such client.
pub fn delete(
    conn: &mut PgConnection,
    client_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<DeletedClient>, StoreError> {
    use super::schema::{authorization_codes, consents, token_families};
    conn.transaction(|conn| {
        // Counted for the operator; the foreign keys cascade anyway. Codes
        // first: this waits for an exchange holding one, whose family is
        // then deleted next. No lock on the client row before that: the
        // exchange's family insert needs a key-share lock on it.
        let codes =
            diesel::delete(authorization_codes::table.filter(authorization_codes::client_id.eq(client_id)))
                .execute(conn)?;
        let deleted: Vec<uuid::Uuid> =
            diesel::delete(token_families::table.filter(token_families::client_id.eq(client_id)))
                .returning(token_families::id)
                .get_results(conn)?;
        let families = deleted.len();
        super::events::record_grants(conn, &deleted, now)?;
        let consents =
            diesel::delete(consents::table.filter(consents::client_id.eq(client_id))).execute(conn)?;
        // Waits for anything still being stored for the client, which its
        // foreign keys then take with it.
        if diesel::delete(clients::table.find(client_id)).execute(conn)? == 0 {
            return Ok(None);
        }
        super::events::record(conn, crate::protocol::events::Kind::Client, client_id, now)?;
        Ok(Some(DeletedClient {
            families,
            codes,
            consents,
        }))
    })
}

/// Redirect URIs of every public client, for the CORS allow-list.
pub fn public_redirect_uris(conn: &mut PgConnection) -> Result<Vec<String>, StoreError> {
    let lists: Vec<Vec<String>> = clients::table
        .filter(clients::client_type.eq(ClientKind::Public.as_str()))
        .select(clients::redirect_uris)
        .load(conn)?;
    Ok(lists.into_iter().flatten().collect())
}

/// The stored secret hash, for tests that check no plain secret is kept.
pub fn raw_secret_hash(conn: &mut PgConnection, client_id: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(clients::table
        .find(client_id)
        .select(clients::secret_hash)
        .first::<Option<Vec<u8>>>(conn)
        .optional()?
        .flatten())
}

impl ClientDirectory for PgStore<'_> {
    fn client(&mut self, client_id: &str) -> Result<Option<Client>, StoreError> {
        find(self.conn, client_id)
    }
}
