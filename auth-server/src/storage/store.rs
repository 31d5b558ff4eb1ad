//! `PgStore`: one connection seen through the protocol's store traits.

use chrono::{DateTime, Utc};
use diesel::PgConnection;
use uuid::Uuid;

use super::{clients, grants, sessions, users};
use crate::model::{Client, User};
use crate::protocol::StoreError;
use crate::protocol::client_auth::ClientDirectory;
use crate::protocol::grants::{
    CodeStore, Consumed, FamilyStore, NewCode, NewFamily, NewRefreshToken, RevocationReason, UserDirectory,
};
use crate::protocol::session::{Session, SessionStore};

pub struct PgStore<'c> {
    pub conn: &'c mut PgConnection,
}

impl<'c> PgStore<'c> {
    pub fn new(conn: &'c mut PgConnection) -> Self {
        Self { conn }
    }
}

impl ClientDirectory for PgStore<'_> {
    fn client(&mut self, client_id: &str) -> Result<Option<Client>, StoreError> {
        clients::find(self.conn, client_id)
    }
}

impl UserDirectory for PgStore<'_> {
    fn user(&mut self, id: Uuid) -> Result<Option<User>, StoreError> {
        users::find_by_id(self.conn, id)
    }
}

impl CodeStore for PgStore<'_> {
    fn insert_code(&mut self, code: &NewCode) -> Result<(), StoreError> {
        grants::insert_code(self.conn, code)
    }
    fn consume_code(
        &mut self,
        code_hash: &[u8],
        client_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Consumed, StoreError> {
        grants::consume_code(self.conn, code_hash, client_id, now)
    }
}

impl FamilyStore for PgStore<'_> {
    fn create_family(&mut self, family: &NewFamily) -> Result<(), StoreError> {
        grants::create_family(self.conn, family)
    }
    fn insert_refresh_token(&mut self, token: &NewRefreshToken) -> Result<(), StoreError> {
        grants::insert_refresh_token(self.conn, token)
    }
    fn revoke_family(
        &mut self,
        family_id: Uuid,
        reason: RevocationReason,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        grants::revoke_family(self.conn, family_id, reason, now)
    }
}

impl SessionStore for PgStore<'_> {
    fn create_session(
        &mut self,
        id_hash: &[u8],
        user_id: Uuid,
        now: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        sessions::create(self.conn, id_hash, user_id, now, expires_at)
    }
    fn find_session(
        &mut self,
        id_hash: &[u8],
        now: DateTime<Utc>,
        idle: chrono::Duration,
    ) -> Result<Option<Session>, StoreError> {
        sessions::find(self.conn, id_hash, now, idle)
    }
    fn delete_session(&mut self, id_hash: &[u8]) -> Result<(), StoreError> {
        sessions::delete(self.conn, id_hash)
    }
}

impl crate::protocol::refresh::RefreshStore for PgStore<'_> {
    fn in_transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        use diesel::connection::{AnsiTransactionManager, TransactionManager};
        AnsiTransactionManager::begin_transaction(&mut *self.conn)?;
        match f(self) {
            Ok(value) => {
                AnsiTransactionManager::commit_transaction(&mut *self.conn)?;
                Ok(value)
            }
            Err(e) => {
                if let Err(rollback) = AnsiTransactionManager::rollback_transaction(&mut *self.conn) {
                    tracing::error!(error = %rollback, "rollback failed");
                }
                Err(e)
            }
        }
    }

    fn read_refresh_token(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<crate::protocol::refresh::RefreshRecord>, StoreError> {
        grants::read_refresh_token(self.conn, token_hash)
    }

    fn lock_refresh_token(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<crate::protocol::refresh::RefreshRecord>, StoreError> {
        grants::lock_refresh_token(self.conn, token_hash)
    }

    fn claim_and_rotate(
        &mut self,
        token_hash: &[u8],
        client_id: &str,
        spend: &crate::protocol::refresh::Spend<'_>,
        successor: &NewRefreshToken,
    ) -> Result<bool, StoreError> {
        grants::claim_and_rotate(self.conn, token_hash, client_id, spend, successor)
    }

    fn mark_spent(
        &mut self,
        token_hash: &[u8],
        spend: &crate::protocol::refresh::Spend<'_>,
    ) -> Result<(), StoreError> {
        grants::mark_spent(self.conn, token_hash, spend)
    }
}

impl crate::protocol::introspect::IntrospectionStore for PgStore<'_> {
    fn access_token_revoked(&mut self, jti: Uuid, family: Option<Uuid>) -> Result<bool, StoreError> {
        grants::access_token_revoked(self.conn, jti, family)
    }
    fn refresh_token_info(
        &mut self,
        token_hash: &[u8],
    ) -> Result<Option<crate::protocol::introspect::RefreshInfo>, StoreError> {
        grants::refresh_token_info(self.conn, token_hash)
    }
}

impl crate::protocol::revoke::RevocationStore for PgStore<'_> {
    fn refresh_token_owner(&mut self, token_hash: &[u8]) -> Result<Option<(Uuid, String)>, StoreError> {
        grants::refresh_token_owner(self.conn, token_hash)
    }
    fn revoke_access_token(&mut self, jti: Uuid, expires_at: DateTime<Utc>) -> Result<(), StoreError> {
        grants::revoke_access_token(self.conn, jti, expires_at)
    }
}
