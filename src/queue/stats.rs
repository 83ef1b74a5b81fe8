//! Queue counts (for `GET /queues` and autoscalers).

use redis::AsyncCommands;

use super::Queue;
use crate::{
    error::Result,
    model::{QueueStats, now_ms},
};

impl Queue {
    /// Counts of one queue. Delayed tasks that are due count as ready: they are
    /// queued at the next claim, and autoscalers must see them while every worker is busy.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        let (queued, due, delayed): (u64, u64, u64) = redis::pipe()
            .zcard(self.keys.queue(queue))
            .zcount(self.keys.delayed(queue), "-inf", now_ms())
            .zcard(self.keys.delayed(queue))
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(QueueStats {
            queue: queue.to_owned(),
            ready: queued + due,
            delayed: delayed.saturating_sub(due),
        })
    }

    /// Counts of every queue that ever received a task.
    pub async fn list_queues(&self) -> Result<Vec<QueueStats>> {
        let mut names: Vec<String> = self.conn().await?.smembers(self.keys.queues()).await?;
        names.sort();
        let mut out = Vec::with_capacity(names.len());
        for name in names {
            out.push(self.queue_stats(&name).await?);
        }
        Ok(out)
    }
}
