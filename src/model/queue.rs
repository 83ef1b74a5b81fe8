//! What is known of a queue (counts, pause state).

/// Counts of one queue.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Tasks ready to be claimed (due delayed tasks included).
    pub ready: u64,
    /// Tasks waiting for their time (countdown, ETA, retry).
    pub delayed: u64,
    /// Tasks running under a lease.
    pub running: u64,
    /// Age of the task at the head of the queue (the next to run), seconds; 0 when empty.
    pub oldest_ready_age_s: f64,
    /// ONLINE workers consuming this queue.
    pub workers: u64,
    /// Tasks held PAUSED. TODO(lua): filled when task pause lands.
    pub paused: u64,
    /// Tasks dead-lettered from this queue. TODO(lua): filled with the dead-letter index.
    pub dead: u64,
    /// Whether claims from this queue are paused. TODO(lua): filled when queue pause lands.
    pub is_paused: bool,
    /// Tasks enqueued during the last minute. TODO(lua): per-minute counters.
    pub enqueued_last_min: u64,
    /// Tasks finished during the last minute. TODO(lua): per-minute counters.
    pub completed_last_min: u64,
}
