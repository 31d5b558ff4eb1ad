//! `clients`: registration and lookup.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::PgStore;
use super::schema::clients;
use crate::domain::{ClientKind, GrantType, RedirectUri, ScopeSet};
use crate::model::Client;
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
            client_id: self.client_id,
            name: self.name,
            secret_hash: self.secret_hash,
            audiences: self.audiences,
            first_party: self.first_party,
            allow_introspection: self.allow_introspection,
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
