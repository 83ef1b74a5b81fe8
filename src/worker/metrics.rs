//! The worker's own metrics, served at `/metrics` on its health port
//! (Prometheus / OpenMetrics text): tasks by outcome, their durations, tasks
//! running now. `processed` (tasks finished since start) is published with
//! each heartbeat for `GET /workers`.
//!
//! Outcomes: `success`, `failure`, `retry`, `revoked` (cancelled while running).
//! A task whose lease was lost, whose outcome could not be recorded, or that was
//! handed back to another worker is not counted: another attempt will be.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

use super::executor::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TaskLabels {
    name: String,
    queue: String,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct NameQueue {
    name: String,
    queue: String,
}

/// Task seconds buckets: from 5 ms to 10 minutes.
const DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0, 600.0,
];

/// Metrics of one worker process. Cheap to clone (shared).
#[derive(Clone)]
pub struct WorkerMetrics {
    inner: Arc<Inner>,
}

struct Inner {
    registry: Registry,
    tasks: Family<TaskLabels, Counter>,
    durations: Family<NameQueue, Histogram>,
    running: Gauge,
    processed: AtomicU64,
}

impl Default for WorkerMetrics {
    fn default() -> Self {
        let tasks = Family::<TaskLabels, Counter>::default();
        let durations =
            Family::<NameQueue, Histogram>::new_with_constructor(|| Histogram::new(DURATION_BUCKETS.iter().copied()));
        let running = Gauge::default();
        let mut registry = Registry::default();
        registry.register(
            "celeriac_tasks",
            "Tasks finished by this worker, by outcome",
            tasks.clone(),
        );
        registry.register(
            "celeriac_task_duration_seconds",
            "Run time of the tasks this worker finished",
            durations.clone(),
        );
        registry.register(
            "celeriac_tasks_running",
            "Tasks running on this worker now",
            running.clone(),
        );
        Self {
            inner: Arc::new(Inner {
                registry,
                tasks,
                durations,
                running,
                processed: AtomicU64::new(0),
            }),
        }
    }
}

impl WorkerMetrics {
    /// A task starts; the returned guard counts it as running until dropped.
    pub fn started(&self) -> RunningGuard {
        self.inner.running.inc();
        RunningGuard(self.clone())
    }

    /// A task ended with `outcome` after `secs`; `revoked` when its cancellation fired.
    pub fn finished(&self, name: &str, queue: &str, outcome: Outcome, revoked: bool, secs: f64) {
        let label = match outcome {
            Outcome::Succeeded | Outcome::Failed if revoked => "revoked",
            Outcome::Succeeded => "success",
            Outcome::Failed => "failure",
            Outcome::Retrying => "retry",
            Outcome::LeaseLost | Outcome::Unrecorded | Outcome::HandedBack => return,
        };
        let (name, queue) = (name.to_owned(), queue.to_owned());
        self.inner.processed.fetch_add(1, Ordering::Relaxed);
        self.inner
            .durations
            .get_or_create(&NameQueue {
                name: name.clone(),
                queue: queue.clone(),
            })
            .observe(secs);
        self.inner
            .tasks
            .get_or_create(&TaskLabels {
                name,
                queue,
                outcome: label,
            })
            .inc();
    }

    /// Tasks finished since start.
    pub fn processed(&self) -> u64 {
        self.inner.processed.load(Ordering::Relaxed)
    }

    /// The metrics in the OpenMetrics text format (which Prometheus reads).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.inner.registry);
        out
    }
}

/// Counts a task as running while alive.
pub struct RunningGuard(WorkerMetrics);

impl Drop for RunningGuard {
    fn drop(&mut self) {
        self.0.inner.running.dec();
    }
}

/// Content type of [`WorkerMetrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
