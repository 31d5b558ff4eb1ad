//! Start-up: settings → database (created and migrated) → listeners. The
//! issuer's keys are fetched in the background: the server starts even
//! while the auth server is down and answers `/api` with 503 until it has
//! keys.

use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::{App, HttpServer, web};
use oauth_common::db::{self, PgPool, PoolOptions};
use oauth_common::headers::{self, HeaderPolicy};
use oauth_common::metrics::{self, Metrics};
use oauth_common::telemetry::{self, RootSpan};
use tracing_actix_web::TracingLogger;

use crate::config::Settings;
use crate::storage;
use crate::token::jwks::{HttpJwksSource, JwksCache, JwksSource};
use crate::token::{Challenge, Policy, TokenValidator};

/// At most one JWKS fetch per this interval for unknown key ids.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

pub use oauth_common::StartupError;

fn fail(message: impl Into<String>) -> StartupError {
    StartupError(message.into())
}

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
        ("resource", "RESOURCE_DATABASE_URL"),
    )?)
}

pub struct Application {
    port: u16,
    admin_port: u16,
    server: Server,
    admin: Server,
    validator: Arc<TokenValidator>,
}

impl Application {
    /// Builds the server; keys come from the issuer's JWKS over HTTP.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let source = Box::new(HttpJwksSource::new(&settings.issuer));
        Self::build_with_source(settings, source)
    }

    /// Builds the server with another key source (tests).
    pub fn build_with_source(settings: Settings, source: Box<dyn JwksSource>) -> Result<Self, StartupError> {
        let pool = open_database(&settings)?;
        let listener = TcpListener::bind(&settings.listen).map_err(|e| {
            fail(format!(
                "cannot listen on {} (RESOURCE_LISTEN): {e}",
                settings.listen
            ))
        })?;
        let admin_listener = TcpListener::bind(&settings.admin_listen).map_err(|e| {
            fail(format!(
                "cannot listen on {} (RESOURCE_ADMIN_LISTEN): {e}",
                settings.admin_listen
            ))
        })?;
        let port = listener.local_addr().map_err(|e| fail(e.to_string()))?.port();
        let admin_port = admin_listener
            .local_addr()
            .map_err(|e| fail(e.to_string()))?
            .port();

        let jwks = Arc::new(JwksCache::new(source, UNKNOWN_KID_REFETCH_INTERVAL));
        let validator = Arc::new(TokenValidator::new(
            Arc::clone(&jwks),
            Policy {
                issuer: settings.issuer.clone(),
                audience: settings.audience.clone(),
                leeway: settings.leeway,
                max_lifetime: settings.max_token_lifetime,
            },
        ));
        let challenge = web::Data::new(Challenge {
            realm: "notes".to_owned(),
            resource_metadata: settings.resource_metadata_url(),
        });
        let metrics = Arc::new(Metrics::new("resource"));
        let header_policy = web::Data::new(HeaderPolicy {
            hsts: settings.audience.starts_with("https://"),
        });
        let workers = settings.workers;
        let settings = web::Data::new(settings);
        let validator_data = web::Data::from(Arc::clone(&validator));
        let pool_data = web::Data::new(pool.clone());
        let metrics_data = web::Data::from(Arc::clone(&metrics));

        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(settings.clone())
                .app_data(validator_data.clone())
                .app_data(challenge.clone())
                .app_data(pool_data.clone())
                .app_data(metrics_data.clone())
                .app_data(header_policy.clone())
                .configure(crate::http::configure)
                .wrap(from_fn(headers::security_headers))
                .wrap(from_fn(metrics::record))
                .wrap(from_fn(telemetry::request_id_header))
                .wrap(TracingLogger::<RootSpan>::new())
        });
        if let Some(n) = workers {
            server = server.workers(n);
        }
        let server = server.listen(listener).map_err(|e| fail(e.to_string()))?.run();
        let ready_jwks = Arc::clone(&jwks);
        let admin = oauth_common::admin::server(
            admin_listener,
            pool,
            metrics,
            Some(Arc::new(move || ready_jwks.keys().is_some())),
        )
        .map_err(|e| fail(e.to_string()))?;
        Ok(Self {
            port,
            admin_port,
            server,
            admin,
            validator,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    pub fn handles(&self) -> (ServerHandle, ServerHandle) {
        (self.server.handle(), self.admin.handle())
    }

    pub fn validator(&self) -> Arc<TokenValidator> {
        Arc::clone(&self.validator)
    }

    /// Serves until stopped, keeping the issuer's keys fresh meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let keys = actix_web::rt::spawn(Arc::clone(&self.validator).keep_keys_fresh());
        let admin_handle = self.admin.handle();
        let server_handle = self.server.handle();
        let admin = actix_web::rt::spawn(self.admin);
        let result = self.server.await;
        admin_handle.stop(true).await;
        server_handle.stop(true).await;
        let _ = admin.await;
        keys.abort();
        result
    }
}
