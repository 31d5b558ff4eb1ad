//! Start-up: settings → database (created and migrated) → listeners. The
//! issuer's keys are fetched in the background: the server starts even
//! while the auth server is down and answers `/api` with 503 until it has
//! keys.

use std::sync::Arc;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use actix_web::web;
use oauth_common::Clock;
use oauth_common::db::{self, PgPool, PoolOptions};
use oauth_common::headers::HeaderPolicy;
use oauth_common::metrics::Metrics;
use oauth_common::server::{self, Address, Listeners, Servers};

use crate::config::Settings;
use crate::storage;
use crate::token::feed::Feed;
use crate::token::jwks::{HttpJwksSource, JwksCache, JwksSource};
use crate::token::{Challenge, Policy, TokenValidator};

/// At most one JWKS fetch per this interval for unknown key ids.
pub const UNKNOWN_KID_REFETCH_INTERVAL: Duration = Duration::from_secs(10);

pub use oauth_common::StartupError;

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
    servers: Servers,
    validator: Arc<TokenValidator>,
    /// The revocation feed, when `RESOURCE_EVENTS_CLIENT_ID` is set.
    feed: Option<Arc<Feed>>,
    metrics: Arc<Metrics>,
}

impl Application {
    /// Builds the server; keys come from the issuer's JWKS over HTTP.
    pub fn build(settings: Settings) -> Result<Self, StartupError> {
        let source = Box::new(HttpJwksSource::new(&settings.issuer));
        Self::build_with(settings, source, Clock::system())
    }

    /// Builds the server with another key source and clock (tests).
    pub fn build_with(
        settings: Settings,
        source: Box<dyn JwksSource>,
        clock: Clock,
    ) -> Result<Self, StartupError> {
        let pool = open_database(&settings)?;
        let listeners = Listeners::bind(
            Address {
                address: &settings.listen,
                setting: "RESOURCE_LISTEN",
            },
            Address {
                address: &settings.admin_listen,
                setting: "RESOURCE_ADMIN_LISTEN",
            },
        )?;

        let jwks = Arc::new(JwksCache::new(source, UNKNOWN_KID_REFETCH_INTERVAL).with_clock(clock.clone()));
        let validator = Arc::new(
            TokenValidator::new(
                Arc::clone(&jwks),
                Policy {
                    issuer: settings.issuer.clone(),
                    audience: settings.audience.clone(),
                    leeway: settings.leeway,
                    max_lifetime: settings.max_token_lifetime,
                },
            )
            .with_clock(clock.clone()),
        );
        let challenge = web::Data::new(Challenge {
            realm: "notes".to_owned(),
            resource_metadata: settings.resource_metadata_url(),
        });
        let ready_jwks = Arc::clone(&jwks);
        let feed = match &settings.events {
            Some(events) => {
                tracing::info!(client_id = %events.client_id, "following the issuer's revocation feed");
                Some(Arc::new(Feed::new(
                    &settings.issuer,
                    events,
                    clock.now().timestamp(),
                )))
            }
            None => {
                tracing::warn!(
                    "revocation feed off (RESOURCE_EVENTS_CLIENT_ID is not set): a revoked access token is accepted until it expires"
                );
                None
            }
        };
        let health: Option<oauth_common::admin::HealthCheck> = feed.as_ref().map(|feed| {
            let status = Arc::clone(&feed.status);
            let clock = clock.clone();
            Arc::new(move || {
                if status.fresh(clock.now().timestamp()) {
                    Ok(())
                } else {
                    Err("revocation feed stale")
                }
            }) as oauth_common::admin::HealthCheck
        });
        let metrics = Arc::new(Metrics::new("resource"));
        let options = server::Options {
            workers: settings.workers,
            blocking_pool: None,
            headers: HeaderPolicy {
                hsts: settings.audience.starts_with("https://"),
            },
            metrics: Arc::clone(&metrics),
            pool: pool.clone(),
            ready: Some({
                let feed = feed.as_ref().map(|f| Arc::clone(&f.status));
                Arc::new(move || ready_jwks.keys().is_some() && feed.as_ref().is_none_or(|f| f.caught_up()))
            }),
            health,
            drain: settings.drain,
        };
        let settings = web::Data::new(settings);
        let validator_data = web::Data::from(Arc::clone(&validator));
        let pool_data = web::Data::new(pool);
        let clock_data = web::Data::new(clock);
        let servers = listeners.serve(options, move |cfg: &mut web::ServiceConfig| {
            cfg.app_data(settings.clone())
                .app_data(validator_data.clone())
                .app_data(challenge.clone())
                .app_data(pool_data.clone())
                .app_data(clock_data.clone());
            crate::http::configure(cfg);
        })?;
        Ok(Self {
            servers,
            validator,
            feed,
            metrics,
        })
    }

    pub fn port(&self) -> u16 {
        self.servers.port()
    }

    pub fn admin_port(&self) -> u16 {
        self.servers.admin_port()
    }

    pub fn handles(&self) -> (ServerHandle, ServerHandle) {
        self.servers.handles()
    }

    pub fn validator(&self) -> Arc<TokenValidator> {
        Arc::clone(&self.validator)
    }

    /// Serves until stopped, keeping the issuer's keys fresh and following
    /// the revocation feed meanwhile.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let validator = Arc::clone(&self.validator);
        let feed = self.feed.clone();
        let metrics = Arc::clone(&self.metrics);
        let background = actix_web::rt::spawn(async move {
            let keys = Arc::clone(&validator).keep_keys_fresh();
            match feed {
                Some(feed) => {
                    let follow = crate::token::feed::follow(feed, validator, metrics);
                    futures_util::future::join(keys, follow).await;
                }
                None => keys.await,
            }
        });
        self.servers.run_until_stopped(background).await
    }
}
