//! The consume step: take free slots, claim that many tasks in one script call,
//! start each under the task tracker. [`Consumer::process_batch`] is one step
//! (what the loop calls and what tests drive); [`Consumer::run`] is the loop,
//! which blocks on the queues' wake markers (BZPOPMIN) when nothing is ready.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{
    sync::{OwnedSemaphorePermit, Semaphore, mpsc},
    task::{AbortHandle, JoinHandle},
};
use tokio_util::{
    sync::{CancellationToken, DropGuard},
    task::TaskTracker,
};
use uuid::Uuid;

use super::{
    StopDetails, WorkerError, executor,
    health::LoopLiveness,
    metrics::WorkerMetrics,
    recorder::{Handoff, NextClaim, Recorder},
};
use crate::{
    config::WorkerConfig,
    error::QueueError,
    model::{ClaimedTask, now_ms},
    queue::Queue,
    redis::connect::BlockingConnection,
    tasks::Registry,
};

/// A task this worker runs now.
pub(super) struct InFlight {
    /// Shared with the running task (a claimed task's `args` may be large).
    pub(super) task: Arc<ClaimedTask>,
    /// Fired when the task must stop: cancelled through the API, or lease lost.
    pub(super) revoke: CancellationToken,
    abort: Option<AbortHandle>,
}

/// Running tasks by id, shared with the lease keeper and the cancel listener.
pub(super) type InFlightMap = Arc<Mutex<HashMap<Uuid, InFlight>>>;

/// Removes a task from the in-flight map however its execution ends (even by
/// panic or abort), so no lease is extended for a task nobody runs.
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

/// What one [`Consumer::process_batch`] step did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// Every slot is busy: nothing was claimed.
    Full,
    /// This many tasks were claimed and started.
    Started(usize),
    /// Nothing was ready; the earliest delayed task is due then (ms), if any.
    Idle {
        /// When the earliest delayed task of these queues is due, ms.
        next_due_ms: Option<i64>,
    },
}

/// Claims and starts tasks of one worker's queues.
pub struct Consumer {
    queue: Queue,
    name: String,
    queues: Vec<String>,
    wake_keys: Vec<String>,
    blocking: BlockingConnection,
    slots: Arc<Semaphore>,
    block_max: Duration,
    launcher: Launcher,
    /// Cancelled when the worker stops claiming (its drain, or its drop).
    claiming: CancellationToken,
    _stop_claiming_on_drop: DropGuard,
    /// Starts the tasks the recorder claims for the slots its successes free.
    handoffs: Option<JoinHandle<()>>,
}

/// What starting a task needs: shared by the consume loop and the handoffs.
#[derive(Clone)]
struct Launcher {
    queue: Queue,
    /// Shared by every running task: cloning the registry itself per task (a
    /// BTreeMap of boxed handlers) was about 16 % of the worker's CPU.
    registry: Arc<Registry>,
    in_flight: InFlightMap,
    tracker: TaskTracker,
    cancel_grace: Duration,
    metrics: WorkerMetrics,
    recorder: Recorder,
}

impl Consumer {
    /// A consumer for `cfg`'s queues and concurrency.
    pub fn new(cfg: &WorkerConfig, queue: Queue, registry: Registry) -> Result<Self, WorkerError> {
        let claiming = CancellationToken::new();
        let (handoff, handed) = mpsc::unbounded_channel();
        let next = NextClaim {
            queues: cfg.queues.clone(),
            worker: cfg.name.clone(),
            claiming: claiming.clone(),
            handoff,
        };
        let launcher = Launcher {
            queue: queue.clone(),
            registry: Arc::new(registry),
            in_flight: InFlightMap::default(),
            tracker: TaskTracker::new(),
            cancel_grace: cfg.cancel_grace,
            metrics: WorkerMetrics::default(),
            recorder: Recorder::start(queue.clone(), Some(next)),
        };
        let handoffs = tokio::spawn(start_handoffs(launcher.clone(), handed, claiming.clone()));
        Ok(Self {
            wake_keys: cfg.queues.iter().map(|q| queue.keys().wake(q)).collect(),
            blocking: BlockingConnection::new(&cfg.redis, cfg.block_max)?,
            queue,
            name: cfg.name.clone(),
            queues: cfg.queues.clone(),
            slots: Arc::new(Semaphore::new(cfg.concurrency)),
            block_max: cfg.block_max,
            launcher,
            _stop_claiming_on_drop: claiming.clone().drop_guard(),
            claiming,
            handoffs: Some(handoffs),
        })
    }

    /// The running tasks (shared with the lease keeper and the cancel listener).
    pub(super) fn in_flight(&self) -> InFlightMap {
        self.launcher.in_flight.clone()
    }

    /// This worker's task metrics.
    pub fn metrics(&self) -> WorkerMetrics {
        self.launcher.metrics.clone()
    }

    /// One step: claims as many tasks as there are free slots (one script call)
    /// and starts them. Capacity first: never claims a task there is no slot for.
    pub async fn process_batch(&self) -> Result<Batch, QueueError> {
        let mut permits = Vec::new();
        while let Ok(p) = self.slots.clone().try_acquire_owned() {
            permits.push(p);
        }
        if permits.is_empty() {
            return Ok(Batch::Full);
        }
        self.claim_and_start(permits).await
    }

    async fn claim_and_start(&self, mut permits: Vec<OwnedSemaphorePermit>) -> Result<Batch, QueueError> {
        let claim = self.queue.claim(&self.queues, permits.len(), &self.name).await?;
        if claim.tasks.is_empty() {
            return Ok(Batch::Idle {
                next_due_ms: claim.next_due_ms,
            });
        }
        let started = claim.tasks.len();
        permits.truncate(started);
        for (task, permit) in claim.tasks.into_iter().zip(permits) {
            self.launcher.start(task, permit);
        }
        Ok(Batch::Started(started))
    }

    /// Claims and starts tasks until `shutdown` fires, blocking in Redis while
    /// nothing is ready (no polling). `liveness` ticks at every turn.
    pub async fn run(&mut self, liveness: &LoopLiveness, shutdown: &CancellationToken) {
        let mut backoff = Backoff::default();
        while !shutdown.is_cancelled() {
            liveness.tick();
            let first = tokio::select! {
                permit = self.slots.clone().acquire_owned() => permit.expect("semaphore is never closed"),
                () = shutdown.cancelled() => break,
                // Every slot busy: keep the loop (and its liveness) turning.
                () = tokio::time::sleep(self.block_max) => continue,
            };
            let mut permits = vec![first];
            while let Ok(p) = self.slots.clone().try_acquire_owned() {
                permits.push(p);
            }
            let pause = match self.claim_and_start(permits).await {
                Ok(Batch::Started(_) | Batch::Full) => {
                    backoff.reset();
                    continue;
                }
                Ok(Batch::Idle { next_due_ms }) => {
                    let until_due = next_due_ms.map(|due| Duration::from_millis((due - now_ms()).max(10) as u64));
                    let timeout = until_due.map_or(self.block_max, |d| d.min(self.block_max));
                    tokio::select! {
                        woken = self.blocking.wait_for_wake(&self.wake_keys, timeout) => match woken {
                            Ok(_) => { backoff.reset(); continue }
                            Err(e) => {
                                tracing::warn!(error.message = %e, "waiting for work failed");
                                backoff.next()
                            }
                        },
                        () = shutdown.cancelled() => break,
                    }
                }
                Err(e) => {
                    tracing::warn!(error.message = %e, "claim failed");
                    backoff.next()
                }
            };
            tokio::select! { () = tokio::time::sleep(pause) => {}, () = shutdown.cancelled() => break }
        }
    }

    /// Stops: running tasks get `grace` to finish; what still runs then is
    /// aborted and handed back to its queue (its lease released, not left to expire).
    pub async fn drain(mut self, grace: Duration) -> StopDetails {
        // No more claims, by the loop or with completions; what was handed over
        // and not started yet goes back to its queue.
        self.claiming.cancel();
        if let Some(handoffs) = self.handoffs.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), handoffs).await;
        }
        let l = &self.launcher;
        l.tracker.close();
        let running = l.tracker.len();
        tracing::info!(running, ?grace, "stopped claiming, waiting for running tasks");
        let drained = tokio::time::timeout(grace, l.tracker.wait()).await.is_ok();
        let leftovers: Vec<InFlight> = l
            .in_flight
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
            let _ = tokio::time::timeout(Duration::from_secs(5), l.tracker.wait()).await;
            for f in &leftovers {
                match l.queue.release(&f.task).await {
                    Ok(()) => released += 1,
                    Err(QueueError::NotRunning | QueueError::LeaseLost) => {
                        tracing::debug!(task_id = %f.task.id, name = %f.task.name, "finished or reassigned before its release")
                    }
                    Err(e) => {
                        tracing::warn!(task_id = %f.task.id, name = %f.task.name, error.message = %e, "cannot release task; its lease will expire")
                    }
                }
            }
        }
        StopDetails {
            finished_in_grace: running.saturating_sub(leftovers.len()),
            released,
        }
    }
}

impl Launcher {
    /// Runs `task` in `slot` under the tracker, listed in the in-flight map.
    fn start(&self, task: ClaimedTask, slot: OwnedSemaphorePermit) {
        let task = Arc::new(task);
        let revoke = CancellationToken::new();
        let id = task.id;
        self.in_flight.lock().expect("in-flight lock").insert(
            id,
            InFlight {
                task: task.clone(),
                revoke: revoke.clone(),
                abort: None,
            },
        );
        let this = self.clone();
        let handle = self.tracker.spawn(async move {
            let _in_flight = InFlightGuard {
                map: this.in_flight.clone(),
                id,
            };
            let _running = this.metrics.started();
            let began = std::time::Instant::now();
            let (queue, recorder, registry) = (&this.queue, &this.recorder, &this.registry);
            let outcome = executor::execute(
                queue,
                recorder,
                registry,
                &task,
                revoke.clone(),
                this.cancel_grace,
                slot,
            )
            .await;
            let secs = began.elapsed().as_secs_f64();
            this.metrics
                .finished(&task.name, &task.queue, outcome, revoke.is_cancelled(), secs);
        });
        if let Some(f) = self.in_flight.lock().expect("in-flight lock").get_mut(&id) {
            f.abort = Some(handle.abort_handle());
        }
    }
}

/// Starts the tasks the recorder claimed for freed slots until the worker stops
/// claiming; those handed over after that go back to their queue.
async fn start_handoffs(launcher: Launcher, mut handed: mpsc::UnboundedReceiver<Handoff>, claiming: CancellationToken) {
    loop {
        tokio::select! {
            biased;
            () = claiming.cancelled() => break,
            next = handed.recv() => match next {
                Some((task, slot)) => launcher.start(task, slot),
                None => return,
            },
        }
    }
    handed.close();
    while let Some((task, _slot)) = handed.recv().await {
        if let Err(e) = launcher.queue.release(&task).await {
            tracing::warn!(task_id = %task.id, error.message = %e, "cannot hand a claimed task back; its lease will expire");
        }
    }
}

/// Exponential backoff for reconnects: 100 ms doubling to 5 s.
#[derive(Default)]
pub(super) struct Backoff {
    failures: u32,
}

impl Backoff {
    pub(super) fn next(&mut self) -> Duration {
        self.failures = self.failures.saturating_add(1);
        Duration::from_millis(100u64 << self.failures.min(6)).min(Duration::from_secs(5))
    }

    pub(super) fn reset(&mut self) {
        self.failures = 0;
    }
}
