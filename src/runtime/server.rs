//! The HTTP server for probes and metrics: `/live` (the process is serving), `/ready` (every
//! watch has finished its first list, none is failing, and we are not shutting down) and
//! `/metrics` (OpenMetrics text).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::error::Error;
use crate::runtime::context::Ctx;

async fn live() -> &'static str {
    "alive"
}

async fn ready(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    match ctx.not_ready_reason() {
        None => (StatusCode::OK, "ready".to_string()),
        Some(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn metrics(State(ctx): State<Arc<Ctx>>) -> impl IntoResponse {
    ctx.refresh_gauges();
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], ctx.metrics.encode())
}

/// Binds `addr` (an error names it) and serves until `shutdown`.
pub(crate) async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, Error> {
    tokio::net::TcpListener::bind(addr).await.map_err(|source| Error::Listen { addr, source })
}

pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    ctx: Arc<Ctx>,
    shutdown: CancellationToken,
) -> Result<(), Error> {
    let app = Router::new()
        .route("/live", get(live))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics))
        .with_state(ctx);
    axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await.map_err(Error::Server)?;
    Ok(())
}
