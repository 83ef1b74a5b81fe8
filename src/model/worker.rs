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
}
