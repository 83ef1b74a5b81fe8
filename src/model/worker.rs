//! What a worker publishes about itself.

/// What a worker registers about itself.
#[derive(Clone, Debug)]
pub struct WorkerInfo {
    /// Worker name.
    pub name: String,
    /// Host it runs on.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
    /// Queues it consumes.
    pub queues: Vec<String>,
    /// Slots.
    pub concurrency: usize,
    /// Start time, ms.
    pub started_at: i64,
    /// Task names it can run.
    pub task_names: Vec<String>,
    /// Default options of its tasks: (name, options JSON).
    pub task_defaults: Vec<(String, String)>,
    /// Rate limits of its tasks: (name, count, window ms).
    pub rate_limits: Vec<(String, u32, u64)>,
    /// JSON Schemas of its tasks' arguments, where published: (name, schema JSON).
    pub task_schemas: Vec<(String, String)>,
    /// The `command` task's commands and parameters (JSON), if it offers them.
    pub commands: Option<String>,
}

/// What a worker publishes with each heartbeat, besides its registration.
#[derive(Clone, Copy, Debug)]
pub struct WorkerBeat {
    /// Its heartbeat interval: readers judge its silence by it.
    pub heartbeat: std::time::Duration,
    /// Tasks it finished since it started.
    pub processed: u64,
}

/// How a worker is doing, as readers judge it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WorkerStatus {
    /// Heartbeats arrive.
    Online,
    /// No heartbeat for more than 3 of its own heartbeat intervals (hung, paused, partitioned).
    NotResponding,
    /// Shut down cleanly, or silent for longer than the stopped threshold.
    Stopped,
}

impl WorkerStatus {
    /// Every status, in display order.
    pub const ALL: [WorkerStatus; 3] = [Self::Online, Self::NotResponding, Self::Stopped];

    /// The status of a worker whose last heartbeat was at `last_heartbeat_ms`.
    pub fn judge(
        stopped_cleanly: bool,
        last_heartbeat_ms: i64,
        heartbeat: std::time::Duration,
        now_ms: i64,
        stopped_after: std::time::Duration,
    ) -> Self {
        let silent_ms = now_ms - last_heartbeat_ms;
        if stopped_cleanly || silent_ms > stopped_after.as_millis() as i64 {
            Self::Stopped
        } else if silent_ms > 3 * heartbeat.as_millis() as i64 {
            Self::NotResponding
        } else {
            Self::Online
        }
    }

    /// `ONLINE`, `NOT_RESPONDING` or `STOPPED`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Online => "ONLINE",
            Self::NotResponding => "NOT_RESPONDING",
            Self::Stopped => "STOPPED",
        }
    }
}

/// A task running under a lease right now.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ActiveTask {
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// The worker holding its lease.
    pub worker: String,
    /// When it started, ms.
    pub started_at_ms: i64,
}

/// A worker as the registry shows it (`GET /workers`, `inspect workers`).
#[derive(Clone, Debug)]
pub struct WorkerState {
    /// Worker name.
    pub name: String,
    /// Host it runs on.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
    /// celeriac version of the worker.
    pub version: String,
    /// Queues it consumes.
    pub queues: Vec<String>,
    /// Slots.
    pub concurrency: usize,
    /// Start time, ms.
    pub started_at_ms: i64,
    /// Last heartbeat (or clean stop), ms.
    pub last_heartbeat_ms: i64,
    /// Its heartbeat interval.
    pub heartbeat: std::time::Duration,
    /// Judged status.
    pub status: WorkerStatus,
    /// Tasks finished since it started (as of its last heartbeat).
    pub processed: u64,
    /// Tasks it runs now.
    pub active: Vec<ActiveTask>,
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::WorkerStatus;

    #[test]
    fn silence_makes_a_worker_not_responding_then_stopped() {
        let (beat, stopped) = (Duration::from_secs(1), Duration::from_secs(10));
        let judge = |clean, silent_ms| WorkerStatus::judge(clean, 0, beat, silent_ms, stopped);
        assert_eq!(judge(false, 2_999), WorkerStatus::Online);
        assert_eq!(judge(false, 3_001), WorkerStatus::NotResponding);
        assert_eq!(judge(false, 10_001), WorkerStatus::Stopped);
        assert_eq!(judge(true, 0), WorkerStatus::Stopped);
    }
}
