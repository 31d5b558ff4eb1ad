//! The private admin listener, nothing else on it. It binds its own address
//! (`*_ADMIN_LISTEN`) so the public port never exposes it.
//!
//! - `GET /healthz`: 200 when the database answers, the server is
//!   otherwise ready, and nothing it depends on is stale (monitoring, for
//!   the resource server: the revocation feed; unchanged by a drain).
//! - `GET /readyz`: 200 unless the server is draining after SIGTERM (or,
//!   for the resource server, has no keys yet): what a load balancer or a
//!   Kubernetes readiness probe routes by. A database outage does not take
//!   every replica out of rotation: they answer a clear 503 themselves.
//! - `GET /livez`: 200 while the process serves at all (liveness).
//! - `GET /metrics`: Prometheus text.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};

use crate::db::{self, PgPool};
use crate::metrics::Metrics;

/// An extra readiness condition beyond "the database answers" (the
/// resource server needs the issuer's keys).
pub type ReadinessCheck = Arc<dyn Fn() -> bool + Send + Sync>;

struct AdminState {
    pool: PgPool,
    metrics: Arc<Metrics>,
    ready: Option<ReadinessCheck>,
    health: Option<HealthCheck>,
    draining: Arc<AtomicBool>,
}

/// A condition only monitoring looks at (`/healthz`, not `/readyz`): a
/// replica keeps taking traffic while it fails, and says why. `Err` is the
/// one-line reason.
pub type HealthCheck = Arc<dyn Fn() -> Result<(), &'static str> + Send + Sync>;

fn text(status: actix_web::http::StatusCode, body: &'static str) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/plain; charset=utf-8")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-store"))
        .body(body)
}

async fn readyz(state: web::Data<AdminState>) -> HttpResponse {
    use actix_web::http::StatusCode;
    if state.draining.load(Ordering::Acquire) {
        text(StatusCode::SERVICE_UNAVAILABLE, "draining\n")
    } else if state.ready.as_ref().is_some_and(|check| !check()) {
        text(StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
    } else {
        text(StatusCode::OK, "ok\n")
    }
}

async fn livez() -> HttpResponse {
    text(actix_web::http::StatusCode::OK, "ok\n")
}

async fn healthz(state: web::Data<AdminState>) -> HttpResponse {
    let pool = state.pool.clone();
    let healthy = db::run_blocking(move || db::ping(&pool, Duration::from_secs(1)))
        .await
        .unwrap_or(false);
    let ready = state.ready.as_ref().is_none_or(|check| check());
    let concern = state.health.as_ref().and_then(|check| check().err());
    if let (true, true, Some(reason)) = (healthy, ready, concern) {
        return HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body(format!("{reason}\n"));
    }
    if healthy && ready {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ok\n")
    } else if !healthy {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("database unavailable\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("not ready\n")
    }
}

async fn metrics_text(state: web::Data<AdminState>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(state.metrics.render())
}

/// Builds the admin server on an already bound listener.
pub fn server(
    listener: std::net::TcpListener,
    pool: PgPool,
    metrics: Arc<Metrics>,
    ready: Option<ReadinessCheck>,
    health: Option<HealthCheck>,
    draining: Arc<AtomicBool>,
) -> std::io::Result<Server> {
    let state = web::Data::new(AdminState {
        pool,
        metrics,
        ready,
        health,
        draining,
    });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/readyz", web::get().to(readyz))
            .route("/livez", web::get().to(livez))
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}
