//! Worker registrations: who runs which queues and tasks, with which defaults and rate limits.

use redis::AsyncCommands;

use super::Queue;
use crate::{
    error::Result,
    model::{WorkerInfo, now_ms},
};

impl Queue {
    /// Registers (or refreshes) a worker, the task names it runs and their
    /// defaults and rate limits; the registration expires after `ttl` without a refresh.
    ///
    /// With `lift_unset` (at startup), the worker speaks for the names it registers:
    /// a default or limit it does not set is removed (so a limit taken out of the
    /// configuration goes away on restart). Heartbeats only re-assert what it sets,
    /// so workers with different settings do not undo each other every beat.
    pub async fn register_worker(&self, w: &WorkerInfo, ttl: std::time::Duration, lift_unset: bool) -> Result<()> {
        let k = &self.keys;
        let now = now_ms();
        let key = k.worker(&w.name);
        let mut pipe = redis::pipe();
        pipe.zadd(k.workers(), &w.name, now)
            .ignore()
            .hset_multiple(
                &key,
                &[
                    ("name", w.name.clone()),
                    ("hostname", w.hostname.clone()),
                    ("pid", w.pid.to_string()),
                    ("queues", w.queues.join(",")),
                    ("concurrency", w.concurrency.to_string()),
                    ("started_at", w.started_at.to_string()),
                    ("last_seen", now.to_string()),
                ],
            )
            .ignore()
            .pexpire(&key, ttl.as_millis() as i64)
            .ignore();
        if !w.task_names.is_empty() {
            pipe.sadd(k.task_names(), &w.task_names).ignore();
        }
        let without = |set: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            let set: std::collections::HashSet<&String> = set.collect();
            w.task_names.iter().filter(|n| !set.contains(n)).cloned().collect()
        };
        let no_defaults = without(&mut w.task_defaults.iter().map(|(n, _)| n));
        let no_limits = without(&mut w.rate_limits.iter().map(|(n, _, _)| n));
        if !w.task_defaults.is_empty() {
            pipe.hset_multiple(k.task_defaults(), &w.task_defaults).ignore();
        }
        if lift_unset && !no_defaults.is_empty() {
            pipe.hdel(k.task_defaults(), &no_defaults).ignore();
        }
        if !w.rate_limits.is_empty() {
            let limits: Vec<(&str, String)> = w
                .rate_limits
                .iter()
                .map(|(name, count, window)| (name.as_str(), format!("{count} {window}")))
                .collect();
            pipe.hset_multiple(k.rate_limits(), &limits).ignore();
        }
        if lift_unset && !no_limits.is_empty() {
            pipe.hdel(k.rate_limits(), &no_limits).ignore();
        }
        pipe.query_async::<()>(&mut self.conn().await?).await?;
        Ok(())
    }

    /// Removes a worker's registration (clean shutdown).
    pub async fn unregister_worker(&self, name: &str) -> Result<()> {
        redis::pipe()
            .zrem(self.keys.workers(), name)
            .ignore()
            .del(self.keys.worker(name))
            .ignore()
            .query_async::<()>(&mut self.conn().await?)
            .await?;
        Ok(())
    }

    /// Task names registered by workers.
    pub async fn registered_task_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.conn().await?.smembers(self.keys.task_names()).await?;
        names.sort();
        Ok(names)
    }
}
