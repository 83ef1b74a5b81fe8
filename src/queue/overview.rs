//! What operators look at: workers with their running tasks, and queue counts,
//! read from indexes in a few pipelined round trips (never SCAN or KEYS).
//!
//! Running tasks come from the leases ZSET (every leased task; bounded by the
//! total concurrency of the workers) and one HMGET per leased task. Worker
//! registrations come from the workers ZSET (name → last heartbeat ms) and one
//! HGETALL each. Workers silent for longer than `worker_retention` (and names
//! whose record expired) are pruned here, on read: the ZSET never grows with
//! the names of killed workers.

use std::{collections::HashMap, time::Duration};

use redis::{FromRedisValue, Value};

use super::Queue;
use crate::{
    error::Result,
    model::{ActiveTask, QueueStats, WorkerState, WorkerStatus, now_ms},
};

/// Workers, running tasks and queue counts, read together.
#[derive(Clone, Debug, Default)]
pub struct Overview {
    /// Queues (the ones asked for, or every queue that ever received a task), by name.
    pub queues: Vec<QueueStats>,
    /// Registered workers (pruned after retention), by name.
    pub workers: Vec<WorkerState>,
    /// Every task under a lease, oldest start first.
    pub active: Vec<ActiveTask>,
}

fn parse<T: FromRedisValue>(v: Value) -> Result<T> {
    Ok(redis::from_redis_value(v).map_err(redis::RedisError::from)?)
}

/// Takes the next reply of a pipeline.
fn next<T: FromRedisValue>(replies: &mut impl Iterator<Item = Value>) -> Result<T> {
    parse(replies.next().unwrap_or(Value::Nil))
}

impl Queue {
    /// Workers, running tasks and the counts of `queues` (every known queue when `None`).
    pub async fn overview(&self, queues: Option<&[String]>) -> Result<Overview> {
        let k = &self.keys;
        let now = now_ms();
        let mut conn = self.conn().await?;

        // Round trip 1: the indexes.
        let mut pipe = redis::pipe();
        pipe.cmd("ZRANGE").arg(k.workers()).arg(0).arg(-1).arg("WITHSCORES");
        pipe.cmd("ZRANGE").arg(k.leases()).arg(0).arg(-1);
        if queues.is_none() {
            pipe.smembers(k.queues());
        }
        let mut replies = pipe.query_async::<Vec<Value>>(&mut conn).await?.into_iter();
        let registered: Vec<(String, f64)> = next(&mut replies)?;
        let leased: Vec<String> = next(&mut replies)?;
        let mut names: Vec<String> = match queues {
            Some(q) => q.to_vec(),
            None => next(&mut replies)?,
        };
        names.sort();
        names.dedup();

        // Round trip 2: the records and counts.
        let retention_ms = self.cfg.worker_retention.as_millis() as i64;
        let (kept, mut gone): (Vec<_>, Vec<_>) = registered
            .into_iter()
            .partition(|(_, score)| (*score as i64) >= now - retention_ms);
        let mut gone: Vec<String> = gone.drain(..).map(|(n, _)| n).collect();
        let mut pipe = redis::pipe();
        for (name, _) in &kept {
            pipe.hgetall(k.worker(name));
        }
        for id in &leased {
            pipe.cmd("HMGET")
                .arg(k.task(id))
                .arg(&["name", "queue", "worker", "started_at"]);
        }
        for q in &names {
            pipe.zcard(k.queue(q))
                .zcount(k.delayed(q), "-inf", now)
                .zcard(k.delayed(q))
                .cmd("ZRANGE")
                .arg(k.queue(q))
                .arg(0)
                .arg(0)
                .cmd("ZRANGE")
                .arg(k.delayed(q))
                .arg(0)
                .arg(0)
                .arg("WITHSCORES");
            // PAUSED tasks of the queue: the (small) PAUSED index is walked.
            pipe.cmd("ZINTERCARD")
                .arg(2)
                .arg(k.status_index("PAUSED"))
                .arg(k.queue_index(q))
                .hget(k.dead_letter_counts(), q)
                .sismember(k.paused_queues(), q)
                .zcount(k.queue_index(q), format!("({}", now - 60_000), "+inf")
                .cmd("HMGET")
                .arg(k.finished_per_minute(q))
                .arg(now / 60_000)
                .arg(now / 60_000 - 1);
        }
        let mut replies = if pipe.is_empty() {
            Vec::new().into_iter()
        } else {
            pipe.query_async::<Vec<Value>>(&mut conn).await?.into_iter()
        };
        let mut records = Vec::with_capacity(kept.len());
        for (name, score) in kept {
            let h: HashMap<String, String> = next(&mut replies)?;
            if h.is_empty() {
                gone.push(name);
            } else {
                records.push((name, score as i64, h));
            }
        }
        let mut active = Vec::with_capacity(leased.len());
        for id in leased {
            let f: Vec<Option<String>> = next(&mut replies)?;
            let [name, queue, worker, started] = <[Option<String>; 4]>::try_from(f).unwrap_or_default();
            // A lease whose record is gone (forgotten) is not running anything.
            let (Some(name), Some(queue)) = (name, queue) else {
                continue;
            };
            active.push(ActiveTask {
                task_id: id,
                name,
                queue,
                worker: worker.unwrap_or_default(),
                started_at_ms: started.and_then(|s| s.parse().ok()).unwrap_or(now),
            });
        }
        active.sort_by_key(|a| a.started_at_ms);
        let mut stats = Vec::with_capacity(names.len());
        let mut heads = Vec::new();
        for q in names {
            let (queued, due, delayed): (u64, u64, u64) =
                (next(&mut replies)?, next(&mut replies)?, next(&mut replies)?);
            let head: Vec<String> = next(&mut replies)?;
            let first_delayed: Vec<(String, f64)> = next(&mut replies)?;
            let paused: u64 = next(&mut replies)?;
            let dead: Option<i64> = next(&mut replies)?;
            let is_paused: bool = next(&mut replies)?;
            let enqueued_last_min: u64 = next(&mut replies)?;
            let finished: Vec<Option<u64>> = next(&mut replies)?;
            // The last 60 s from minute buckets: this minute, and the part of
            // the previous one that is still inside the window.
            let into_minute = (now % 60_000) as f64 / 60_000.0;
            let (this, prev) = (
                finished.first().copied().flatten().unwrap_or(0),
                finished.get(1).copied().flatten().unwrap_or(0),
            );
            let completed_last_min = this + (prev as f64 * (1.0 - into_minute)).round() as u64;
            // A due delayed task has waited since its due time.
            let due_since = first_delayed
                .first()
                .map(|(_, due)| *due as i64)
                .filter(|due| *due <= now);
            heads.push((head.into_iter().next(), due_since));
            stats.push(QueueStats {
                running: active.iter().filter(|a| a.queue == q).count() as u64,
                queue: q,
                ready: queued + due,
                delayed: delayed.saturating_sub(due),
                paused,
                dead: dead.unwrap_or(0).max(0) as u64,
                is_paused,
                enqueued_last_min,
                completed_last_min,
                ..QueueStats::default()
            });
        }

        // Round trip 3 (when a queue has ready tasks): when its head became ready.
        let mut pipe = redis::pipe();
        for (head, _) in &heads {
            if let Some(id) = head {
                pipe.cmd("HMGET").arg(k.task(id)).arg(&["created_at", "eta"]);
            }
        }
        let mut replies = if pipe.is_empty() {
            Vec::new().into_iter()
        } else {
            pipe.query_async::<Vec<Value>>(&mut conn).await?.into_iter()
        };
        for (s, (head, due_since)) in stats.iter_mut().zip(heads) {
            let mut since = due_since;
            if head.is_some() {
                let f: Vec<Option<i64>> = next(&mut replies)?;
                let ready_since = f.into_iter().flatten().max();
                since = since.into_iter().chain(ready_since).min();
            }
            s.oldest_ready_age_s = since.map_or(0.0, |t| (now - t).max(0) as f64 / 1000.0);
        }

        let default_beat = self.cfg.lease / 3;
        let mut workers: Vec<WorkerState> = records
            .into_iter()
            .map(|(name, last, h)| worker_state(name, last, h, now, default_beat, &self.cfg, &active))
            .collect();
        workers.sort_by(|a, b| a.name.cmp(&b.name));
        for s in &mut stats {
            s.workers = workers
                .iter()
                .filter(|w| w.status == WorkerStatus::Online && w.queues.contains(&s.queue))
                .count() as u64;
        }

        if !gone.is_empty() {
            let mut pipe = redis::pipe();
            pipe.zrem(k.workers(), &gone).ignore();
            for name in &gone {
                pipe.del(k.worker(name)).ignore();
            }
            pipe.query_async::<()>(&mut conn).await?;
            self.forget_unregistered_tasks().await?;
        }
        Ok(Overview {
            queues: stats,
            workers,
            active,
        })
    }

    /// Registered workers with their running tasks.
    pub async fn workers(&self) -> Result<Vec<WorkerState>> {
        Ok(self.overview(Some(&[])).await?.workers)
    }

    /// One worker, if registered (and not yet pruned).
    pub async fn worker(&self, name: &str) -> Result<Option<WorkerState>> {
        Ok(self.workers().await?.into_iter().find(|w| w.name == name))
    }

    /// Every task under a lease.
    pub async fn active_tasks(&self) -> Result<Vec<ActiveTask>> {
        Ok(self.overview(Some(&[])).await?.active)
    }
}

fn worker_state(
    name: String,
    last_ms: i64,
    mut h: HashMap<String, String>,
    now: i64,
    default_beat: Duration,
    cfg: &crate::config::EngineConfig,
    active: &[ActiveTask],
) -> WorkerState {
    let mut take = |f: &str| h.remove(f).unwrap_or_default();
    let heartbeat = take("heartbeat_ms").parse().map_or(default_beat, Duration::from_millis);
    let stopped = take("status") == "stopped";
    let status = WorkerStatus::judge(stopped, last_ms, heartbeat, now, cfg.worker_stopped_after);
    WorkerState {
        hostname: take("hostname"),
        pid: take("pid").parse().unwrap_or_default(),
        version: take("version"),
        queues: take("queues")
            .split(',')
            .filter(|q| !q.is_empty())
            .map(str::to_owned)
            .collect(),
        concurrency: take("concurrency").parse().unwrap_or_default(),
        started_at_ms: take("started_at").parse().unwrap_or_default(),
        last_heartbeat_ms: last_ms,
        heartbeat,
        status,
        processed: take("processed").parse().unwrap_or_default(),
        active: active.iter().filter(|a| a.worker == name).cloned().collect(),
        name,
    }
}
