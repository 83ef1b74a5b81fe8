//! The worker: claims tasks from Redis and runs them, `concurrency` at a time.
//!
//! | file | what |
//! | --- | --- |
//! | `consume.rs` | the consume step (free slots → one claim → start tasks), its loop, and the start of the tasks claimed with successes |
//! | `executor.rs` | one task under its time limits, its outcome recorded under its lease |
//! | `recorder.rs` | group commit: successes that finish together are recorded in one call, which also claims the next tasks for their slots |
//! | `lease.rs` | the lease keeper (heartbeat) and the cancel listener |
//! | `reaper.rs` | returns tasks whose lease expired |
//! | `health.rs` | the optional health port (`/healthz`, `/readyz`, `/metrics`) and the consume loop's liveness |
//! | `metrics.rs` | task counters and durations, `processed` for the heartbeat |
//!
//! On shutdown the loop stops claiming, running tasks get `grace` to finish, and
//! what is still running then is aborted and released back to its queue.

mod consume;
pub mod executor;
pub mod health;
mod lease;
pub mod metrics;
mod reaper;
pub mod recorder;

use std::{collections::HashMap, time::Duration};

use poem::listener::Listener;
use tokio_util::sync::CancellationToken;

pub use consume::{Batch, Consumer};

use crate::{
    config::WorkerConfig,
    model::{RateLimit, WorkerBeat, WorkerInfo, now_ms},
    queue::Queue,
    redis::connect,
    tasks::Registry,
};
use health::LoopLiveness;

/// Why the worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Redis client setup failed.
    #[error(transparent)]
    Queue(#[from] crate::error::QueueError),
    /// The health port could not be bound.
    #[error("cannot bind the health port")]
    Health(#[source] std::io::Error),
}

/// How the worker stopped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StopDetails {
    /// Tasks that finished during the grace period.
    pub finished_in_grace: usize,
    /// Tasks still running at the end of the grace period, handed back to their queues.
    pub released: usize,
}

/// Runs a worker until `shutdown` fires, then drains and returns.
pub async fn run(
    cfg: WorkerConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<StopDetails, WorkerError> {
    cfg.validate()?;
    let queue = Queue::connect(&cfg.redis, cfg.engine.clone())?;
    let liveness = LoopLiveness::new((cfg.block_max * 3).max(Duration::from_secs(30)));
    let background = CancellationToken::new();
    let mut consumer = Consumer::new(&cfg, queue.clone(), registry.clone())?;
    let metrics = consumer.metrics();
    if let Some(addr) = cfg.health_addr {
        let acceptor = poem::listener::TcpListener::bind(addr)
            .into_acceptor()
            .await
            .map_err(WorkerError::Health)?;
        tokio::spawn(health::serve(
            acceptor,
            liveness.clone(),
            queue.clone(),
            metrics.clone(),
            background.clone(),
        ));
    }
    let info = registration(&cfg, &registry);
    let every = cfg.heartbeat_interval();
    // Registered before the first claim, so rate limits and defaults hold from the start.
    let beat = WorkerBeat {
        heartbeat: every,
        processed: 0,
    };
    if let Err(e) = queue.worker_online(&info, &beat).await {
        tracing::warn!(error.message = %e, "worker registration failed; retrying with the heartbeat");
    }
    let in_flight = consumer.in_flight();
    let cancels = connect::client(&cfg.redis)?;
    tokio::spawn(lease::listen_for_cancels(
        cancels,
        queue.keys().cancel_channel(),
        in_flight.clone(),
        background.clone(),
    ));
    tokio::spawn(lease::keep_leases(
        queue.clone(),
        info.clone(),
        in_flight,
        metrics.clone(),
        every,
        background.clone(),
    ));
    tokio::spawn(reaper::run(queue.clone(), cfg.reap_interval(), background.clone()));
    tracing::info!(worker = %cfg.name, queues = ?cfg.queues, concurrency = cfg.concurrency, tasks = ?registry.names(), "worker started");

    consumer.run(&liveness, &shutdown).await;
    let details = consumer.drain(cfg.grace).await;
    background.cancel();
    if let Err(e) = queue.worker_stopped(&info, metrics.processed()).await {
        tracing::warn!(error.message = %e, "cannot mark the worker stopped");
    }
    tracing::info!(?details, "worker stopped");
    Ok(details)
}

/// What this worker publishes about itself: its tasks, their defaults, and the
/// rate limits of registration overridden by configuration.
fn registration(cfg: &WorkerConfig, registry: &Registry) -> WorkerInfo {
    let mut rate_limits: HashMap<String, RateLimit> = registry.rate_limits().into_iter().collect();
    rate_limits.extend(cfg.rate_limits.iter().cloned());
    WorkerInfo {
        name: cfg.name.clone(),
        hostname: hostname(),
        pid: std::process::id(),
        queues: cfg.queues.clone(),
        concurrency: cfg.concurrency,
        started_at: now_ms(),
        task_names: registry.names(),
        task_defaults: registry
            .defaults()
            .into_iter()
            .map(|(name, o)| (name, serde_json::to_string(&o).unwrap_or_else(|_| "{}".to_owned())))
            .collect(),
        task_schemas: registry
            .args_schemas()
            .into_iter()
            .map(|(name, schema)| (name, schema.to_string()))
            .collect(),
        commands: (!registry.commands().is_empty())
            .then(|| serde_json::to_string(registry.commands()).unwrap_or_else(|_| "[]".to_owned())),
        rate_limits: rate_limits
            .into_iter()
            .filter(|(name, l)| {
                let valid = l.is_valid();
                if !valid {
                    tracing::warn!(task = %name, "ignoring a rate limit of zero starts or an empty window");
                }
                valid
            })
            .map(|(name, l)| (name, l.count, l.window.as_millis() as u64))
            .collect(),
    }
}

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// `<hostname>-<pid>`, the default worker name.
pub fn default_worker_name() -> String {
    format!("{}-{}", hostname(), std::process::id())
}
