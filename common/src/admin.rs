//! The private admin listener: `GET /healthz` (200 when the database
//! answers and the server is otherwise ready) and `GET /metrics`, nothing
//! else. It binds its own address (`*_ADMIN_LISTEN`) so the public port never
//! exposes it.

use std::sync::Arc;
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
}

async fn healthz(state: web::Data<AdminState>) -> HttpResponse {
    let pool = state.pool.clone();
    let healthy = db::run_blocking(move || db::ping(&pool, Duration::from_secs(1)))
        .await
        .unwrap_or(false);
    let ready = state.ready.as_ref().is_none_or(|check| check());
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
) -> std::io::Result<Server> {
    let state = web::Data::new(AdminState { pool, metrics, ready });
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .route("/healthz", web::get().to(healthz))
            .route("/metrics", web::get().to(metrics_text))
    })
    .workers(1)
    .listen(listener)?
    .run();
    Ok(server)
}
