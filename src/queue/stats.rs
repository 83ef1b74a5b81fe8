//! Queue counts (for `GET /queues` and autoscalers), read with the workers and
//! leases in `overview.rs` (running tasks, ONLINE consumers, age of the head).

use super::Queue;
use crate::{error::Result, model::QueueStats};

impl Queue {
    /// Counts of one queue. Delayed tasks that are due count as ready: they are
    /// queued at the next claim, and autoscalers must see them while every worker is busy.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        let mut overview = self.overview(Some(&[queue.to_owned()])).await?;
        Ok(overview.queues.pop().unwrap_or_default())
    }

    /// Counts of every queue that ever received a task.
    pub async fn list_queues(&self) -> Result<Vec<QueueStats>> {
        Ok(self.overview(None).await?.queues)
    }
}
