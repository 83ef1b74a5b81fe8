//! Operator controls of a queue: pause and resume claims, purge waiting tasks;
//! the dead letter: list and requeue.

use uuid::Uuid;

use super::{Cursor, Queue, TaskPage};
use crate::{
    error::{QueueError, Result},
    model::QueueStats,
    redis::scripts,
};

/// Tasks one purge script call revokes (keeps each call short).
const PURGE_BATCH: usize = 500;

impl Queue {
    /// Pauses claims from `queue` (idempotent): workers skip it at their next
    /// claim; running tasks finish; new tasks are accepted and wait.
    pub async fn pause_queue(&self, queue: &str) -> Result<QueueStats> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        pipe.sadd(k.paused_queues(), queue).ignore();
        pipe.sadd(k.queues(), queue).ignore();
        pipe.query_async::<()>(&mut self.conn().await?).await?;
        self.queue_stats(queue).await
    }

    /// Resumes claims from `queue` (idempotent) and wakes a worker for its tasks.
    pub async fn resume_queue(&self, queue: &str) -> Result<QueueStats> {
        let k = &self.keys;
        let mut pipe = redis::pipe();
        pipe.srem(k.paused_queues(), queue).ignore();
        pipe.zadd(k.wake(queue), "w", 0).ignore();
        pipe.query_async::<()>(&mut self.conn().await?).await?;
        self.queue_stats(queue).await
    }

    /// Revokes every ready and delayed task of `queue` (result reason "purged"),
    /// in bounded script calls; running tasks are untouched. Returns how many.
    pub async fn purge_queue(&self, queue: &str) -> Result<u64> {
        let mut conn = self.conn().await?;
        let mut total = 0;
        loop {
            let n = scripts::purge(&mut conn, &self.ctx(), queue, PURGE_BATCH).await?;
            total += n;
            if (n as usize) < PURGE_BATCH {
                return Ok(total);
            }
        }
    }

    /// One page of dead-lettered task ids, the latest given up first.
    pub async fn list_dead_letter(&self, limit: usize, cursor: Option<Cursor>) -> Result<TaskPage> {
        self.page_of_index(self.keys.dead_letter(), limit, cursor).await
    }

    /// Queues a dead-lettered task again as a new attempt (as a retry does).
    /// `Err(NotFound)` when it is not in the dead letter.
    pub async fn requeue_dead(&self, id: &Uuid) -> Result<()> {
        let score: Option<f64> = redis::cmd("ZSCORE")
            .arg(self.keys.dead_letter())
            .arg(id.to_string())
            .query_async(&mut self.conn().await?)
            .await?;
        if score.is_none() {
            return Err(QueueError::NotFound);
        }
        self.resubmit(id).await
    }
}
