//! Start-up: settings → database (created and migrated) → keys → listeners.
//! `Application::build` does everything that can fail before serving, so a
//! misconfiguration is one clear line and a non-zero exit, not a half-up
//! server.

use std::io::Write as _;
use std::path::Path;
use std::sync::Arc;

use actix_web::dev::ServerHandle;
use actix_web::web;
use oauth_common::Clock;
use oauth_common::db::{self, PgPool, PoolOptions};
use oauth_common::headers::HeaderPolicy;
use oauth_common::metrics::Metrics;
use oauth_common::server::{self, Address, Listeners, Servers};

use crate::config::{KeyEncryptionKeySource, Settings};
use crate::crypto::{self, ServerKeys};
use crate::keys::{self, KeyManager};
use crate::state::AppState;
use crate::storage;

pub use oauth_common::StartupError;

fn fail(message: impl Into<String>) -> StartupError {
    StartupError(message.into())
}

/// Creates the database if needed, connects, and runs pending migrations.
pub fn open_database(settings: &Settings) -> Result<PgPool, StartupError> {
    let options = PoolOptions {
        max_size: settings.pool_size,
        ..PoolOptions::default()
    };
    Ok(db::prepare(
        &settings.database_url,
        &options,
        storage::MIGRATIONS,
        storage::MIGRATION_LOCK,
        ("auth", "AUTH_DATABASE_URL"),
    )?)
}

/// For one-shot commands: the database created and migrated, and one plain
/// connection to it (no pool, so no thread is left connecting at exit).
pub fn open_connection(settings: &Settings) -> Result<diesel::PgConnection, StartupError> {
    let unreachable =
        |e: &dyn std::fmt::Display| fail(format!("cannot reach the auth database (AUTH_DATABASE_URL): {e}"));
    db::ensure_database(&settings.database_url).map_err(|e| unreachable(&e))?;
    let mut conn = db::connect_once(&settings.database_url).map_err(|e| unreachable(&e))?;
    db::migrate(&mut conn, storage::MIGRATIONS, storage::MIGRATION_LOCK).map_err(fail)?;
    Ok(conn)
}

/// The 32-byte key that protects signing keys and CSRF tokens.
pub fn master_key(source: &KeyEncryptionKeySource) -> Result<[u8; 32], StartupError> {
    match source {
        KeyEncryptionKeySource::Configured(secret) => {
            crypto::parse_master_key(secret.expose()).map_err(|e| fail(e.0))
        }
        KeyEncryptionKeySource::DevelopmentFile(path) => development_key(path),
    }
}

fn development_key(path: &Path) -> Result<[u8; 32], StartupError> {
    if let Ok(text) = std::fs::read_to_string(path) {
        return crypto::parse_master_key(&text)
            .map_err(|e| fail(format!("development key file {}: {e}", path.display())));
    }
    let key = crypto::random_bytes::<32>().map_err(|e| fail(e.0))?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| fail(format!("cannot create {}: {e}", dir.display())))?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| {
        fail(format!(
            "cannot write development key file {}: {e}",
            path.display()
        ))
    })?;
    let hex: String = key.iter().map(|b| format!("{b:02x}")).collect();
    file.write_all(hex.as_bytes()).map_err(|e| {
        fail(format!(
            "cannot write development key file {}: {e}",
            path.display()
        ))
    })?;
    tracing::warn!(
        path = %path.display(),
        "generated a development key-encryption key; set AUTH_KEY_ENCRYPTION_KEY outside local development"
    );
    Ok(key)
}

/// The keys derived from the KEK and, while a rotation is under way, from
/// `AUTH_KEY_ENCRYPTION_KEY_PREVIOUS`.
pub fn server_keys(settings: &Settings) -> Result<ServerKeys, StartupError> {
    let master = master_key(&settings.key_encryption_key)?;
    let previous = settings
        .key_encryption_key_previous
        .as_ref()
        .map(|secret| {
            crypto::parse_master_key(secret.expose())
                .map_err(|e| fail(format!("AUTH_KEY_ENCRYPTION_KEY_PREVIOUS: {}", e.0)))
        })
        .transpose()?;
    ServerKeys::derive_with_previous(&master, previous.as_ref()).map_err(|e| fail(e.0))
}

/// Loads the signing keys, creating the first one on a fresh database.
pub fn load_keys(
    conn: &mut diesel::PgConnection,
    server_keys: &ServerKeys,
    settings: &Settings,
) -> Result<KeyManager, StartupError> {
    // Start-up reads the system clock directly: there is no state yet.
    let clock = Clock::system();
    let now = clock.now();
    let created = storage::keys::insert_if_none(conn, || {
        Ok(keys::generate(&server_keys.signing_key_wrap, now, now)?)
    })
    .map_err(|e| fail(format!("cannot create the first signing key: {e}")))?;
    if created {
        tracing::info!("created the first signing key");
    }
    let rows = storage::keys::load_all(conn).map_err(|e| fail(e.to_string()))?;
    KeyManager::new(
        &rows,
        &server_keys.signing_key_wraps(),
        settings.access_token_ttl,
        clock.now(),
    )
    .map_err(|e| fail(e.0))
}

/// A built, bound, not yet running server.
pub struct Application {
    servers: Servers,
    state: web::Data<AppState>,
}

impl Application {
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let pool = open_database(&settings)?;
        let server_keys = server_keys(&settings)?;
        let keys = {
            let mut conn = pool
                .get()
                .map_err(|e| fail(format!("cannot reach the auth database: {e}")))?;
            load_keys(&mut conn, &server_keys, &settings)?
        };

        let listeners = Listeners::bind(
            Address {
                address: &settings.listen,
                setting: "AUTH_LISTEN",
            },
            Address {
                address: &settings.admin_listen,
                setting: "AUTH_ADMIN_LISTEN",
            },
        )?;

        let metrics = Arc::new(Metrics::new("auth"));
        let options = server::Options {
            workers: settings.workers,
            blocking_pool: Some(settings.pool_size),
            headers: HeaderPolicy {
                hsts: settings.issuer.is_https(),
            },
            metrics: Arc::clone(&metrics),
            pool: pool.clone(),
            ready: None,
            health: None,
            drain: settings.drain,
        };
        let state = web::Data::new(
            AppState::new(settings, pool, Arc::new(keys), server_keys, metrics)
                .map_err(|e| fail(e.to_string()))?,
        );
        let app_state = state.clone();
        let servers = listeners.serve(options, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(app_state.clone());
            crate::http::configure(cfg);
        })?;
        Ok(Self { servers, state })
    }

    pub fn port(&self) -> u16 {
        self.servers.port()
    }

    pub fn admin_port(&self) -> u16 {
        self.servers.admin_port()
    }

    /// Handles to stop both listeners.
    pub fn handles(&self) -> (ServerHandle, ServerHandle) {
        self.servers.handles()
    }

    /// Serves until stopped; runs the background tasks (key reload,
    /// cleanup) meanwhile. Must run inside an actix system.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let background = crate::background::spawn(self.state.clone());
        self.servers.run_until_stopped(background).await
    }

    /// The shared state, for tests that inspect or poke the running server.
    pub fn state(&self) -> web::Data<AppState> {
        self.state.clone()
    }
}
