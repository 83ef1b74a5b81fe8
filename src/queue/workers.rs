//! Worker registrations: who runs which queues and tasks, with which defaults
//! and rate limits, and their lifecycle (`worker-online` at start, a heartbeat
//! refresh, STOPPED with `worker-offline` at a clean stop). Readers are in `overview.rs`.

use redis::AsyncCommands;

use super::Queue;
use crate::{
    error::Result,
    model::{WorkerBeat, WorkerInfo, now_ms},
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
        self.register(w, None, ttl, lift_unset, false).await
    }

    /// Registers a starting worker (ONLINE, `worker-online` event); its record
    /// is kept `worker_retention` after its last heartbeat.
    pub async fn worker_online(&self, w: &WorkerInfo, beat: &WorkerBeat) -> Result<()> {
        self.register(w, Some(beat), self.cfg.worker_retention, true, true)
            .await
    }

    /// Refreshes a running worker's registration (its heartbeat).
    pub async fn worker_heartbeat(&self, w: &WorkerInfo, beat: &WorkerBeat) -> Result<()> {
        self.register(w, Some(beat), self.cfg.worker_retention, false, false)
            .await
    }

    async fn register(
        &self,
        w: &WorkerInfo,
        beat: Option<&WorkerBeat>,
        ttl: std::time::Duration,
        lift_unset: bool,
        online_event: bool,
    ) -> Result<()> {
        let k = &self.keys;
        let now = now_ms();
        let key = k.worker(&w.name);
        let mut fields = vec![
            ("name", w.name.clone()),
            ("hostname", w.hostname.clone()),
            ("pid", w.pid.to_string()),
            ("version", env!("CARGO_PKG_VERSION").to_owned()),
            ("queues", w.queues.join(",")),
            ("concurrency", w.concurrency.to_string()),
            ("started_at", w.started_at.to_string()),
            ("last_seen", now.to_string()),
            ("status", "online".to_owned()),
        ];
        // What it runs, read back by `task_types.rs` (names are known while a
        // worker that lists them is).
        fields.push(("tasks", serde_json::to_string(&w.task_names).unwrap_or_default()));
        if let Some(commands) = &w.commands {
            fields.push(("commands", commands.clone()));
        }
        if let Some(beat) = beat {
            fields.push(("heartbeat_ms", beat.heartbeat.as_millis().to_string()));
            fields.push(("processed", beat.processed.to_string()));
        }
        let mut pipe = redis::pipe();
        pipe.zadd(k.workers(), &w.name, now)
            .ignore()
            .hset_multiple(&key, &fields)
            .ignore()
            .pexpire(&key, ttl.as_millis() as i64)
            .ignore();
        if online_event {
            self.worker_event(&mut pipe, "worker-online", w, now);
        }
        if !w.task_names.is_empty() {
            pipe.sadd(k.task_names(), &w.task_names).ignore();
        }
        let without = |set: &mut dyn Iterator<Item = &String>| -> Vec<String> {
            let set: std::collections::HashSet<&String> = set.collect();
            w.task_names.iter().filter(|n| !set.contains(n)).cloned().collect()
        };
        let no_defaults = without(&mut w.task_defaults.iter().map(|(n, _)| n));
        let no_limits = without(&mut w.rate_limits.iter().map(|(n, _, _)| n));
        let no_schemas = without(&mut w.task_schemas.iter().map(|(n, _)| n));
        if !w.task_schemas.is_empty() {
            pipe.hset_multiple(k.task_schemas(), &w.task_schemas).ignore();
        }
        if lift_unset && !no_schemas.is_empty() {
            pipe.hdel(k.task_schemas(), &no_schemas).ignore();
        }
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

    /// Marks a worker STOPPED at once (clean shutdown) with a `worker-offline`
    /// event; it stays listed for `worker_retention`, then is pruned.
    pub async fn worker_stopped(&self, w: &WorkerInfo, processed: u64) -> Result<()> {
        let k = &self.keys;
        let now = now_ms();
        let key = k.worker(&w.name);
        let mut pipe = redis::pipe();
        // The score becomes the stop time, so pruning counts retention from it.
        pipe.zadd(k.workers(), &w.name, now)
            .ignore()
            .hset_multiple(
                &key,
                &[
                    ("status", "stopped".to_owned()),
                    ("stopped_at", now.to_string()),
                    ("processed", processed.to_string()),
                ],
            )
            .ignore()
            .pexpire(&key, self.cfg.worker_retention.as_millis() as i64)
            .ignore();
        self.worker_event(&mut pipe, "worker-offline", w, now);
        pipe.query_async::<()>(&mut self.conn().await?).await?;
        Ok(())
    }

    /// Appends a worker event to the events stream (capped like the transitions' events).
    fn worker_event(&self, pipe: &mut redis::Pipeline, event: &str, w: &WorkerInfo, now: i64) {
        let status = if event == "worker-online" { "ONLINE" } else { "STOPPED" };
        pipe.cmd("XADD")
            .arg(self.keys.events())
            .arg("MAXLEN")
            .arg("~")
            .arg(self.cfg.events_maxlen)
            .arg("*")
            .arg(&[
                ("event", event),
                ("worker", w.name.as_str()),
                ("hostname", w.hostname.as_str()),
                ("queue", ""),
                ("status", status),
                ("ts", &now.to_string()),
            ])
            .ignore();
    }

    /// Task names registered by workers.
    pub async fn registered_task_names(&self) -> Result<Vec<String>> {
        let mut names: Vec<String> = self.conn().await?.smembers(self.keys.task_names()).await?;
        names.sort();
        Ok(names)
    }
}
