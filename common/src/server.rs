//! The one way both servers serve: bind the public and the admin listener
//! (so a port in use is a start-up error, not a half-up server), wrap the
//! public app in the middleware every response passes through, and run both
//! listeners until one stops, then stop both gracefully.
//!
//! Middleware order, outermost first: request span ([`RootSpan`]), request
//! id header, metrics, security headers, then the server's own routes.

use std::net::TcpListener;
use std::sync::Arc;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::from_fn;
use actix_web::rt::task::JoinHandle;
use actix_web::{App, HttpServer, web};
use tracing_actix_web::TracingLogger;

use crate::StartupError;
use crate::admin::{self, ReadinessCheck};
use crate::db::PgPool;
use crate::headers::{self, HeaderPolicy};
use crate::metrics::{self, Metrics};
use crate::telemetry::{self, RootSpan};

/// An address to listen on and the setting that names it (for the error
/// line when it cannot be bound).
#[derive(Debug, Clone, Copy)]
pub struct Address<'a> {
    pub address: &'a str,
    pub setting: &'a str,
}

fn bind(at: Address<'_>) -> Result<(TcpListener, u16), StartupError> {
    let listener = TcpListener::bind(at.address)
        .map_err(|e| StartupError(format!("cannot listen on {} ({}): {e}", at.address, at.setting)))?;
    let port = listener
        .local_addr()
        .map_err(|e| StartupError(e.to_string()))?
        .port();
    Ok((listener, port))
}

/// How the public listener runs.
pub struct Options {
    /// Worker threads; `None` is one per CPU.
    pub workers: Option<usize>,
    /// When set, each worker gets no more blocking threads than its share
    /// of a database pool this size (at least 2): more would only wait for
    /// connections while holding memory. `None` keeps actix's default.
    pub blocking_pool: Option<u32>,
    pub headers: HeaderPolicy,
    /// Recorded per request by the middleware, served on `/metrics`.
    pub metrics: Arc<Metrics>,
    /// What the admin listener reports on `/healthz` and `/metrics`.
    pub pool: PgPool,
    pub ready: Option<ReadinessCheck>,
}

/// The two listeners, bound but not serving yet.
#[derive(Debug)]
pub struct Listeners {
    public: TcpListener,
    admin: TcpListener,
    port: u16,
    admin_port: u16,
}

impl Listeners {
    /// Binds both addresses (port 0 picks a free port).
    pub fn bind(public: Address<'_>, admin: Address<'_>) -> Result<Self, StartupError> {
        let (public, port) = bind(public)?;
        let (admin, admin_port) = bind(admin)?;
        Ok(Self {
            public,
            admin,
            port,
            admin_port,
        })
    }

    /// Builds both servers: `routes` configures the public app (its routes
    /// and app data) inside the shared middleware; the admin listener
    /// serves health and metrics.
    pub fn serve<F>(self, options: Options, routes: F) -> Result<Servers, StartupError>
    where
        F: Fn(&mut web::ServiceConfig) + Clone + Send + 'static,
    {
        let metrics_data = web::Data::from(Arc::clone(&options.metrics));
        let header_policy = web::Data::new(options.headers);
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(metrics_data.clone())
                .app_data(header_policy.clone())
                .configure(routes.clone())
                .wrap(from_fn(headers::security_headers))
                .wrap(from_fn(metrics::record))
                .wrap(from_fn(telemetry::request_id_header))
                .wrap(TracingLogger::<RootSpan>::new())
        });
        if let Some(pool_size) = options.blocking_pool {
            let workers = options
                .workers
                .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
            let pool_size = usize::try_from(pool_size).unwrap_or(16);
            server = server
                .workers(workers)
                .worker_max_blocking_threads((pool_size / workers.max(1)).max(2));
        } else if let Some(workers) = options.workers {
            server = server.workers(workers);
        }
        let public = server
            .listen(self.public)
            .map_err(|e| StartupError(e.to_string()))?
            .run();
        let admin = admin::server(self.admin, options.pool, options.metrics, options.ready)
            .map_err(|e| StartupError(e.to_string()))?;
        Ok(Servers {
            port: self.port,
            admin_port: self.admin_port,
            public,
            admin,
        })
    }
}

/// Both servers, built and bound; they serve once awaited in an actix
/// system ([`Servers::run_until_stopped`]).
pub struct Servers {
    port: u16,
    admin_port: u16,
    public: Server,
    admin: Server,
}

impl Servers {
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn admin_port(&self) -> u16 {
        self.admin_port
    }

    /// Handles to stop the public and the admin listener.
    pub fn handles(&self) -> (ServerHandle, ServerHandle) {
        (self.public.handle(), self.admin.handle())
    }

    /// Serves until the public listener stops (a signal or its handle),
    /// then stops both gracefully (in-flight requests finish) and aborts
    /// `background`, the server's periodic work. Must run inside an actix
    /// system.
    pub async fn run_until_stopped(self, background: JoinHandle<()>) -> std::io::Result<()> {
        let admin_handle = self.admin.handle();
        let public_handle = self.public.handle();
        let admin = actix_web::rt::spawn(self.admin);
        let result = self.public.await;
        admin_handle.stop(true).await;
        public_handle.stop(true).await;
        let _ = admin.await;
        background.abort();
        result
    }
}
