//! The worker's optional health port: `/healthz` answers 200 only while the
//! consume loop is turning ([`LoopLiveness`], not to be confused with the lease
//! heartbeat), `/readyz` while Redis answers, `/metrics` this worker's task
//! metrics (see `metrics.rs`).

use std::{
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
    time::Duration,
};

use poem::{EndpointExt, Route, Server, get, handler, http::StatusCode, listener::TcpAcceptor, web::Data};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::metrics::{self, WorkerMetrics};
use crate::{error::ErrorBody, model::now_ms, queue::Queue};

/// Liveness of the consume loop: the time of its last turn.
#[derive(Clone, Debug)]
pub struct LoopLiveness {
    last_tick_ms: Arc<AtomicI64>,
    stale_after: Duration,
}

impl LoopLiveness {
    /// A heartbeat that counts as stale `stale_after` without a tick.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            last_tick_ms: Arc::new(AtomicI64::new(now_ms())),
            stale_after,
        }
    }

    /// Records a turn of the loop.
    pub fn tick(&self) {
        self.last_tick_ms.store(now_ms(), Ordering::Relaxed);
    }

    /// Milliseconds since the last turn.
    pub fn age_ms(&self) -> i64 {
        now_ms() - self.last_tick_ms.load(Ordering::Relaxed)
    }

    /// True while the loop turned recently enough.
    pub fn is_alive(&self) -> bool {
        self.age_ms() <= self.stale_after.as_millis() as i64
    }
}

#[handler]
fn healthz(liveness: Data<&LoopLiveness>) -> (StatusCode, poem::web::Json<serde_json::Value>) {
    let age = liveness.age_ms();
    if liveness.is_alive() {
        (
            StatusCode::OK,
            poem::web::Json(json!({"status": "ok", "last_loop_ms_ago": age})),
        )
    } else {
        let error = ErrorBody::json("stalled", format!("consume loop has not turned for {age} ms"));
        (StatusCode::SERVICE_UNAVAILABLE, poem::web::Json(error))
    }
}

#[handler]
async fn readyz(queue: Data<&Queue>) -> (StatusCode, poem::web::Json<serde_json::Value>) {
    match tokio::time::timeout(Duration::from_secs(2), queue.ping()).await {
        Ok(Ok(())) => (StatusCode::OK, poem::web::Json(json!({"status": "ready"}))),
        Ok(Err(e @ crate::error::QueueError::RedisAuth(_))) => {
            let error = ErrorBody::json("redis_auth_failed", e.to_string());
            (StatusCode::SERVICE_UNAVAILABLE, poem::web::Json(error))
        }
        _ => {
            let error = ErrorBody::json("redis_unavailable", "redis is unreachable");
            (StatusCode::SERVICE_UNAVAILABLE, poem::web::Json(error))
        }
    }
}

#[handler]
fn metrics_text(metrics: Data<&WorkerMetrics>) -> poem::Response {
    poem::Response::builder()
        .content_type(metrics::CONTENT_TYPE)
        .body(metrics.encode())
}

/// Serves the health endpoints on a bound `acceptor` until `shutdown` fires.
pub async fn serve(
    acceptor: TcpAcceptor,
    liveness: LoopLiveness,
    queue: Queue,
    metrics: WorkerMetrics,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .at("/metrics", get(metrics_text))
        .data(liveness)
        .data(queue)
        .data(metrics);
    Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, shutdown.cancelled_owned(), Some(Duration::from_secs(1)))
        .await
}

/// The health port of a scheduler-only process (`--beat-only`): `/healthz`
/// answers while the process runs, `/readyz` while Redis answers.
pub async fn serve_for_scheduler(
    addr: std::net::SocketAddr,
    queue: Queue,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    use poem::listener::Listener;
    let acceptor = poem::listener::TcpListener::bind(addr).into_acceptor().await?;
    let liveness = LoopLiveness::new(Duration::from_secs(30));
    let ticker = liveness.clone();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        while !stop.is_cancelled() {
            ticker.tick();
            tokio::select! { () = tokio::time::sleep(Duration::from_secs(1)) => {}, () = stop.cancelled() => {} }
        }
    });
    serve(acceptor, liveness, queue, WorkerMetrics::default(), shutdown).await
}
