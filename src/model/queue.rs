//! What is known of a queue (counts, pause state).

/// Counts of one queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueStats {
    /// Queue name.
    pub queue: String,
    /// Tasks ready to be claimed.
    pub ready: u64,
    /// Tasks waiting for their time (countdown, ETA, retry).
    pub delayed: u64,
}
