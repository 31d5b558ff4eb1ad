//! The private admin listener: `GET /healthz` and `GET /metrics`, nothing
//! else. It binds its own address (`*_ADMIN_LISTEN`) so the public port never
//! exposes it.

use std::sync::Arc;
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, dev::Server, web};

use crate::db::{self, PgPool};
use crate::metrics::Metrics;

struct AdminState {
    pool: PgPool,
    metrics: Arc<Metrics>,
}

async fn healthz(state: web::Data<AdminState>) -> HttpResponse {
    let pool = state.pool.clone();
    let healthy =
        db::blocking(move || Ok::<_, db::BlockingJoinError>(db::ping(&pool, Duration::from_secs(1))))
            .await
            .unwrap_or(false);
    if healthy {
        HttpResponse::Ok()
            .content_type("text/plain; charset=utf-8")
            .body("ok\n")
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("database unavailable\n")
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
) -> std::io::Result<Server> {
    let state = web::Data::new(AdminState { pool, metrics });
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
