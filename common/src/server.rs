//! The one way both servers serve: bind the public and the admin listener
//! (so a port in use is a start-up error, not a half-up server), wrap the
//! public app in the middleware every response passes through, and run both
//! listeners until one stops, then stop both gracefully.
//!
//! Middleware order, outermost first: request span ([`RootSpan`]), request
//! id header, metrics, security headers, then the server's own routes.

use std::net::TcpListener;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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
    /// What only `/healthz` reports (see `admin::HealthCheck`).
    pub health: Option<crate::admin::HealthCheck>,
    /// After SIGTERM or SIGINT, how long the server keeps serving while
    /// `/readyz` says it is draining (so a load balancer stops sending to
    /// it) before it stops accepting and finishes what is in flight.
    pub drain: Duration,
}

/// How long in-flight requests may take to finish once the listener has
/// stopped accepting; what is still running then is cut.
pub const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

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
        let draining = Arc::new(AtomicBool::new(false));
        let draining_data = web::Data::from(Arc::clone(&draining));
        let mut server = HttpServer::new(move || {
            App::new()
                .app_data(metrics_data.clone())
                .app_data(header_policy.clone())
                .app_data(draining_data.clone())
                .configure(routes.clone())
                .wrap(from_fn(headers::security_headers))
                .wrap(from_fn(metrics::record))
                .wrap(from_fn(telemetry::request_id_header))
                .wrap(TracingLogger::<RootSpan>::new())
                // Outermost, so every response of a draining server closes.
                .wrap(from_fn(close_while_draining))
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
            // Signals are ours (`Servers::run_until_stopped`): drain first.
            .disable_signals()
            .shutdown_timeout(SHUTDOWN_TIMEOUT.as_secs())
            .listen(self.public)
            .map_err(|e| StartupError(e.to_string()))?
            .run();
        let admin = admin::server(
            self.admin,
            options.pool,
            options.metrics,
            options.ready,
            options.health,
            Arc::clone(&draining),
        )
        .map_err(|e| StartupError(e.to_string()))?;
        Ok(Servers {
            port: self.port,
            admin_port: self.admin_port,
            public,
            admin,
            draining,
            drain: options.drain,
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
    draining: Arc<AtomicBool>,
    drain: Duration,
}

/// While draining, every response asks the client to close its connection,
/// so keep-alive clients reconnect (to another instance, behind a load
/// balancer) instead of finding the connection closed under a request.
async fn close_while_draining(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let draining = req
        .app_data::<web::Data<AtomicBool>>()
        .is_some_and(|d| d.load(Ordering::Acquire));
    let mut res = next.call(req).await?;
    if draining {
        res.response_mut()
            .head_mut()
            .set_connection_type(actix_web::http::ConnectionType::Close);
    }
    Ok(res)
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn termination() {
    #[cfg(unix)]
    {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
            (Ok(mut term), Ok(mut int)) => {
                first_of(term.recv(), int.recv()).await;
            }
            _ => std::future::pending::<()>().await,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = actix_web::rt::signal::ctrl_c().await;
    }
}

/// Waits for whichever of two futures finishes first.
async fn first_of<A: std::future::Future, B: std::future::Future>(a: A, b: B) {
    let a = std::pin::pin!(a);
    let b = std::pin::pin!(b);
    futures_util::future::select(a, b).await;
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

    /// Serves until the public listener stops (its handle, or SIGTERM /
    /// SIGINT), then stops both gracefully and aborts `background`, the
    /// server's periodic work. On a signal the server first drains: for
    /// `drain` it keeps serving while `/readyz` answers 503 and every
    /// response closes its connection; then it stops accepting and gives
    /// in-flight requests up to [`SHUTDOWN_TIMEOUT`]. Must run inside an
    /// actix system.
    pub async fn run_until_stopped(self, background: JoinHandle<()>) -> std::io::Result<()> {
        let admin_handle = self.admin.handle();
        let public_handle = self.public.handle();
        let admin = actix_web::rt::spawn(self.admin);
        let (draining, drain, stopper) = (self.draining, self.drain, public_handle.clone());
        let on_signal = actix_web::rt::spawn(async move {
            termination().await;
            tracing::info!(drain_seconds = drain.as_secs_f64(), "stopping: draining first");
            draining.store(true, Ordering::Release);
            let drained = actix_web::rt::time::sleep(drain);
            let second = termination();
            let (drained, second) = (std::pin::pin!(drained), std::pin::pin!(second));
            match futures_util::future::select(drained, second).await {
                futures_util::future::Either::Left(_) => {
                    tracing::info!("stopping: no new connections; finishing requests in flight");
                    stopper.stop(true).await;
                }
                // A second signal: stop now.
                futures_util::future::Either::Right(_) => {
                    tracing::info!("stopping at once (second signal)");
                    stopper.stop(false).await;
                }
            }
        });
        let result = self.public.await;
        on_signal.abort();
        admin_handle.stop(true).await;
        public_handle.stop(true).await;
        let _ = admin.await;
        background.abort();
        result
    }
}
