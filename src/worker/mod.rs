//! The worker: claims tasks from Redis and runs them, `concurrency` at a time.
//!
//! One consume loop takes a free slot first (a semaphore permit), then claims
//! as many tasks as there are free slots in one script call; when nothing is
//! ready it blocks on the queues' wake markers (BZPOPMIN) until work arrives,
//! the next delayed task is due, or `block_max` passes. A heartbeat task extends
//! the leases of running tasks, a reaper task returns tasks whose worker died.
//! On shutdown the loop stops claiming, running tasks get `grace` to finish, and
//! what is still running then is cancelled and released back to its queue.

pub mod builtin;
pub mod executor;
pub mod health;
pub mod registry;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use poem::listener::Listener;
use rand::Rng;
use tokio::{sync::Semaphore, task::AbortHandle};
use tokio_util::{sync::CancellationToken, task::TaskTracker};
use uuid::Uuid;

pub use registry::{Registry, TaskContext, TaskError, TaskErrorKind, TaskResult};

use crate::{
    config::WorkerConfig,
    error::QueueError,
    queue::{Queue, WorkerInfo},
    redis::{BlockingConnection, Connection, keys::Keys},
    task::{ClaimedTask, RateLimit, now_ms},
};

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

struct InFlight {
    task: ClaimedTask,
    /// Fired when the task must stop: cancelled through the API, or lease lost.
    revoke: CancellationToken,
    abort: Option<AbortHandle>,
}

type InFlightMap = Arc<Mutex<HashMap<Uuid, InFlight>>>;

struct InFlightGuard {
    map: InFlightMap,
    id: Uuid,
}

impl Drop for InFlightGuard {
    fn drop(&mut self) {
        if let Ok(mut map) = self.map.lock() {
            map.remove(&self.id);
        }
    }
}

/// Runs a worker until `shutdown` fires, then drains and returns.
pub async fn run(
    cfg: WorkerConfig,
    registry: Registry,
    shutdown: CancellationToken,
) -> Result<StopDetails, WorkerError> {
    cfg.validate()?;
    let queue = Queue::new(
        Connection::new(&cfg.redis)?,
        Keys::new(&cfg.redis.namespace),
        cfg.engine.clone(),
    );
    let beat = health::Heartbeat::new((cfg.block_max * 3).max(Duration::from_secs(30)));
    let background = CancellationToken::new();
    if let Some(addr) = cfg.health_addr {
        let acceptor = poem::listener::TcpListener::bind(addr)
            .into_acceptor()
            .await
            .map_err(WorkerError::Health)?;
        tokio::spawn(health::serve(acceptor, beat.clone(), queue.clone(), background.clone()));
    }
    let in_flight: InFlightMap = Arc::default();
    let mut rate_limits: HashMap<String, RateLimit> = registry.rate_limits().into_iter().collect();
    rate_limits.extend(cfg.rate_limits.iter().cloned());
    let info = WorkerInfo {
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
    };
    // Registered before the first claim, so rate limits and defaults hold from the start.
    if let Err(e) = queue.register_worker(&info, cfg.heartbeat_interval() * 3, true).await {
        tracing::warn!(error.message = %e, "worker registration failed; retrying with the heartbeat");
    }
    tokio::spawn(cancel_listener(
        redis::Client::open(cfg.redis.url.as_str()).map_err(crate::error::QueueError::from)?,
        queue.keys().cancel_channel(),
        in_flight.clone(),
        background.clone(),
    ));
    tokio::spawn(heartbeat_loop(
        queue.clone(),
        info,
        in_flight.clone(),
        cfg.heartbeat_interval(),
        background.clone(),
    ));
    tokio::spawn(reaper_loop(queue.clone(), cfg.reap_interval(), background.clone()));
    tracing::info!(worker = %cfg.name, queues = ?cfg.queues, concurrency = cfg.concurrency, tasks = ?registry.names(), "worker started");

    let tracker = TaskTracker::new();
    if let Err(e) = consume_loop(&cfg, &queue, &registry, &beat, &in_flight, &tracker, &shutdown).await {
        background.cancel();
        return Err(e);
    }

    tracker.close();
    let running = tracker.len();
    tracing::info!(running, grace = ?cfg.grace, "stopped claiming, waiting for running tasks");
    let drained = tokio::time::timeout(cfg.grace, tracker.wait()).await.is_ok();
    let leftovers: Vec<InFlight> = in_flight
        .lock()
        .expect("in-flight lock")
        .drain()
        .map(|(_, f)| f)
        .collect();
    let mut released = 0;
    if !drained {
        // Abort without signalling first: a task told to stop could record a
        // failure between the signal and the abort, instead of being handed back.
        for f in &leftovers {
            if let Some(abort) = &f.abort {
                abort.abort();
            }
        }
        // Aborted tasks stop at their next await; none may record after its release.
        let _ = tokio::time::timeout(Duration::from_secs(5), tracker.wait()).await;
        for f in &leftovers {
            match queue.release(&f.task).await {
                Ok(()) => released += 1,
                Err(QueueError::NotRunning | QueueError::LeaseLost) => {
                    tracing::debug!(task_id = %f.task.id, "finished or reassigned before its release")
                }
                Err(e) => {
                    tracing::warn!(task_id = %f.task.id, error.message = %e, "cannot release task; its lease will expire")
                }
            }
        }
    }
    background.cancel();
    if let Err(e) = queue.unregister_worker(&cfg.name).await {
        tracing::warn!(error.message = %e, "cannot unregister worker");
    }
    let details = StopDetails {
        finished_in_grace: running.saturating_sub(leftovers.len()),
        released,
    };
    tracing::info!(?details, "worker stopped");
    Ok(details)
}

async fn consume_loop(
    cfg: &WorkerConfig,
    queue: &Queue,
    registry: &Registry,
    beat: &health::Heartbeat,
    in_flight: &InFlightMap,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
) -> Result<(), WorkerError> {
    let slots = Arc::new(Semaphore::new(cfg.concurrency));
    let wake_keys: Vec<String> = cfg.queues.iter().map(|q| queue.keys().wake(q)).collect();
    let mut blocking = BlockingConnection::new(&cfg.redis, cfg.block_max)?;
    let mut backoff = Backoff::default();
    while !shutdown.is_cancelled() {
        beat.tick();
        // Capacity first: never claim a task there is no slot for.
        let first = tokio::select! {
            permit = slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
            () = shutdown.cancelled() => break,
            // Every slot busy: keep the loop (and its health) turning.
            () = tokio::time::sleep(cfg.block_max) => continue,
        };
        let mut permits = vec![first];
        while let Ok(p) = slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        let claim = match queue.claim(&cfg.queues, permits.len(), &cfg.name).await {
            Ok(claim) => claim,
            Err(e) => {
                drop(permits);
                let delay = backoff.next();
                tracing::warn!(error.message = %e, retry_in = ?delay, "claim failed");
                tokio::select! { () = tokio::time::sleep(delay) => {}, () = shutdown.cancelled() => break }
                continue;
            }
        };
        if claim.tasks.is_empty() {
            drop(permits);
            let until_due = claim
                .next_due_ms
                .map(|due| Duration::from_millis((due - now_ms()).max(10) as u64));
            let timeout = until_due.map_or(cfg.block_max, |d| d.min(cfg.block_max));
            tokio::select! {
                woken = blocking.wait_for_wake(&wake_keys, timeout) => match woken {
                    Ok(_) => backoff.reset(),
                    Err(e) => {
                        let delay = backoff.next();
                        tracing::warn!(error.message = %e, retry_in = ?delay, "waiting for work failed");
                        tokio::select! { () = tokio::time::sleep(delay) => {}, () = shutdown.cancelled() => break }
                    }
                },
                () = shutdown.cancelled() => break,
            }
            continue;
        }
        backoff.reset();
        permits.truncate(claim.tasks.len());
        for (task, permit) in claim.tasks.into_iter().zip(permits) {
            let revoke = CancellationToken::new();
            let id = task.id;
            in_flight.lock().expect("in-flight lock").insert(
                id,
                InFlight {
                    task: task.clone(),
                    revoke: revoke.clone(),
                    abort: None,
                },
            );
            let (queue, registry, map) = (queue.clone(), registry.clone(), in_flight.clone());
            let grace = cfg.cancel_grace;
            let handle = tracker.spawn(async move {
                // Leaves the in-flight map however the task ends (even by panic or abort),
                // so the heartbeat never keeps extending the lease of a task nobody runs.
                let _in_flight = InFlightGuard { map, id };
                executor::execute(&queue, &registry, &task, revoke, grace).await;
                drop(permit);
            });
            if let Some(f) = in_flight.lock().expect("in-flight lock").get_mut(&id) {
                f.abort = Some(handle.abort_handle());
            }
        }
    }
    Ok(())
}

/// Extends the leases of running tasks and refreshes the worker registration;
/// tasks whose lease was lost or whose cancellation was requested are revoked.
async fn heartbeat_loop(
    queue: Queue,
    info: WorkerInfo,
    in_flight: InFlightMap,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = ticker.tick() => {}, () = stop.cancelled() => return }
        let held: Vec<(Uuid, String)> = in_flight
            .lock()
            .expect("in-flight lock")
            .values()
            .map(|f| (f.task.id, f.task.token.clone()))
            .collect();
        match queue.heartbeat(&held).await {
            Ok((lost, cancelled)) => {
                let map = in_flight.lock().expect("in-flight lock");
                for id in lost {
                    if let Some(f) = map.get(&id) {
                        tracing::warn!(task_id = %id, "lease lost; cancelling the task");
                        f.revoke.cancel();
                    }
                }
                for id in cancelled {
                    if let Some(f) = map.get(&id) {
                        f.revoke.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error.message = %e, "heartbeat failed"),
        }
        if let Err(e) = queue.register_worker(&info, every * 3, false).await {
            tracing::warn!(error.message = %e, "worker registration failed");
        }
    }
}

/// Returns tasks whose lease expired to their queues, every `every` (with jitter
/// so that many workers do not reap in lockstep).
async fn reaper_loop(queue: Queue, every: Duration, stop: CancellationToken) {
    loop {
        let jitter = every.mul_f64(rand::rng().random_range(0.75..1.25));
        tokio::select! { () = tokio::time::sleep(jitter) => {}, () = stop.cancelled() => return }
        match queue.reap().await {
            Ok((0, 0)) => {}
            Ok((requeued, dead)) => {
                tracing::warn!(requeued, dead, "reaped tasks with expired leases")
            }
            Err(e) => tracing::debug!(error.message = %e, "reap failed"),
        }
    }
}

/// Revokes running tasks as soon as they are cancelled through the API
/// (the heartbeat catches any message missed while disconnected).
async fn cancel_listener(client: redis::Client, channel: String, in_flight: InFlightMap, stop: CancellationToken) {
    use futures_util::StreamExt;
    let mut backoff = Backoff::default();
    while !stop.is_cancelled() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                tokio::select! { () = tokio::time::sleep(backoff.next()) => continue, () = stop.cancelled() => return }
            }
        };
        backoff.reset();
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => {
                        let Ok(id) = msg.get_payload::<String>().map(|p| p.parse::<Uuid>()) else { continue };
                        let Ok(id) = id else { continue };
                        if let Some(f) = in_flight.lock().expect("in-flight lock").get(&id) {
                            tracing::info!(task_id = %id, "cancellation requested");
                            f.revoke.cancel();
                        }
                    }
                    None => break,
                },
                () = stop.cancelled() => return,
            }
        }
    }
}

/// Exponential backoff for reconnects: 100 ms doubling to 5 s.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(100u64 << self.failures.min(6)).min(Duration::from_secs(5))
    }

    fn reset(&mut self) {
        self.failures = 0;
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
