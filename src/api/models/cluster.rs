//! Queues, workers and health: what the cluster looks like.

use chrono::{DateTime, Utc};
use poem_openapi::Object;

use crate::model::QueueStats;

/// Counts of one queue.
#[derive(Debug, Object)]
pub struct QueueView {
    /// Queue name.
    pub name: String,
    /// Queue name (the first field of this object; kept for existing clients).
    pub queue: String,
    /// Tasks ready to be claimed, due delayed tasks included (the figure to autoscale workers on).
    pub ready: u64,
    /// Tasks waiting for their time (countdown, ETA, retry backoff).
    pub delayed: u64,
    /// Tasks running under a lease.
    pub running: u64,
    /// Tasks held PAUSED.
    pub paused: u64,
    /// Tasks of this queue given up after too many lost deliveries.
    pub dead: u64,
    /// Whether workers are told not to claim from this queue.
    pub is_paused: bool,
    /// Seconds the task at the head of the queue (the next to run) has been ready; 0 when empty.
    pub oldest_ready_age_s: f64,
    /// ONLINE workers consuming this queue.
    pub workers: u64,
    /// Tasks enqueued during the last minute.
    pub enqueued_last_min: u64,
    /// Tasks finished during the last minute.
    pub completed_last_min: u64,
}

impl From<QueueStats> for QueueView {
    fn from(s: QueueStats) -> Self {
        Self {
            name: s.queue.clone(),
            queue: s.queue,
            ready: s.ready,
            delayed: s.delayed,
            running: s.running,
            paused: s.paused,
            dead: s.dead,
            is_paused: s.is_paused,
            oldest_ready_age_s: s.oldest_ready_age_s,
            workers: s.workers,
            enqueued_last_min: s.enqueued_last_min,
            completed_last_min: s.completed_last_min,
        }
    }
}

/// A task running on a worker.
#[derive(Debug, Object)]
pub struct ActiveTaskView {
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// The worker running it.
    pub worker: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Seconds it has been running.
    pub runtime_s: f64,
}

impl From<&crate::model::ActiveTask> for ActiveTaskView {
    fn from(a: &crate::model::ActiveTask) -> Self {
        Self {
            task_id: a.task_id.clone(),
            name: a.name.clone(),
            queue: a.queue.clone(),
            worker: a.worker.clone(),
            started_at: ms_to_time(a.started_at_ms),
            runtime_s: (crate::model::now_ms() - a.started_at_ms).max(0) as f64 / 1000.0,
        }
    }
}

/// A worker, as its registration and heartbeats show it.
#[derive(Debug, Object)]
pub struct WorkerView {
    /// Worker name (unique).
    pub name: String,
    /// Host it runs on.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
    /// celeriac version.
    pub version: String,
    /// Queues it consumes, in order of preference.
    pub queues: Vec<String>,
    /// Tasks it runs at once.
    pub concurrency: u64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (or its clean stop).
    pub last_heartbeat: DateTime<Utc>,
    /// Its heartbeat interval, seconds.
    pub heartbeat_s: f64,
    /// `ONLINE`, `NOT_RESPONDING` (no heartbeat for more than 3 intervals) or
    /// `STOPPED` (shut down cleanly, or silent longer than the stopped threshold).
    pub status: String,
    /// Tasks it runs now.
    pub active: Vec<ActiveTaskView>,
    /// Tasks claimed but not started yet: always empty, since a worker starts
    /// every task it claims (it claims only for free slots).
    pub reserved: Vec<ActiveTaskView>,
    /// Tasks it finished since it started (as of its last heartbeat).
    pub processed: u64,
}

impl From<crate::model::WorkerState> for WorkerView {
    fn from(w: crate::model::WorkerState) -> Self {
        Self {
            active: w.active.iter().map(Into::into).collect(),
            reserved: Vec::new(),
            hostname: w.hostname,
            pid: w.pid,
            version: w.version,
            queues: w.queues,
            concurrency: w.concurrency as u64,
            started_at: ms_to_time(w.started_at_ms),
            last_heartbeat: ms_to_time(w.last_heartbeat_ms),
            heartbeat_s: w.heartbeat.as_secs_f64(),
            status: w.status.as_str().to_owned(),
            processed: w.processed,
            name: w.name,
        }
    }
}

/// `GET /workers` body.
#[derive(Debug, Object)]
pub struct WorkerList {
    /// Registered workers (STOPPED ones until their retention ends), by name.
    pub workers: Vec<WorkerView>,
}

/// Milliseconds since the epoch as a time (the epoch for nonsense).
pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// `/healthz` and `/readyz` body.
#[derive(Debug, Object)]
pub struct HealthView {
    /// `ok` or `ready`.
    pub status: String,
}
