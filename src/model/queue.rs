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
    /// Tasks held PAUSED.
    pub paused: u64,
    /// Tasks dead-lettered from this queue.
    pub dead: u64,
    /// Whether claims from this queue are paused.
    pub is_paused: bool,
    /// Tasks enqueued during the last minute (created in it, from the queue's listing index).
    pub enqueued_last_min: u64,
    /// Tasks that reached a final state during the last minute (from per-minute buckets).
    pub completed_last_min: u64,
}
