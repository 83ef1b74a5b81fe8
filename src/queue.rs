//! The queue facade used by both binaries: enqueue and read tasks (API), claim,
//! heartbeat, complete, fail, release and reap them (worker). Each method is one
//! round trip: a Lua script for every transition, a plain read otherwise.

use std::collections::HashMap;

use deadpool_redis::Pool;
use redis::AsyncCommands;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    config::EngineConfig,
    error::{QueueError, Result},
    redis::{
        keys::Keys,
        scripts::{self, EnqueueArgs, FailArgs},
    },
    task::{ClaimedTask, NewTask, TaskRecord, now_ms},
};

/// Handle to one namespace of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    pool: Pool,
    keys: Keys,
    cfg: EngineConfig,
}

/// The outcome of a claim.
#[derive(Debug, Default)]
pub struct Claim {
    /// Tasks now leased to the caller.
    pub tasks: Vec<ClaimedTask>,
    /// When the earliest delayed task of these queues is due (ms), if any.
    pub next_due_ms: Option<i64>,
}

/// A task's failure as stored: `result` gets `{"exc_type", "exc_message"}`.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Kind of error, like an exception class name (`TaskError`, `TimeLimitExceeded`, …).
    pub exc_type: String,
    /// Its message.
    pub message: String,
    /// The error chain, outermost first.
    pub traceback: String,
}

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
}

impl Queue {
    /// A queue over `pool` in the namespace of `keys`.
    pub fn new(pool: Pool, keys: Keys, cfg: EngineConfig) -> Self {
        Self { pool, keys, cfg }
    }

    /// The key builder of this namespace.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The engine settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    async fn conn(&self) -> Result<deadpool_redis::Connection> {
        Ok(self.pool.get().await?)
    }

    fn ttl_ms(&self) -> u64 {
        self.cfg.result_ttl.as_millis() as u64
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Enqueues a task; `require_registered` refuses names no worker registered.
    pub async fn enqueue(&self, task: &NewTask, require_registered: bool) -> Result<Uuid> {
        let id = Uuid::new_v4();
        self.enqueue_with_id(id, task, require_registered).await?;
        Ok(id)
    }

    /// Enqueues a task under a given id.
    pub async fn enqueue_with_id(
        &self,
        id: Uuid,
        task: &NewTask,
        require_registered: bool,
    ) -> Result<()> {
        let now = now_ms();
        let due_ms = task.eta.map_or(0, |eta| eta.timestamp_millis());
        let id_str = id.to_string();
        let mut fields = vec![
            ("id", id_str.clone()),
            ("name", task.name.clone()),
            ("queue", task.queue.clone()),
            ("args", task.args.to_string()),
            ("priority", task.priority.min(9).to_string()),
            ("max_retries", task.max_retries.to_string()),
            ("attempts", "0".to_owned()),
            ("retries", "0".to_owned()),
            ("created_at", now.to_string()),
        ];
        if due_ms > now {
            fields.push(("eta", due_ms.to_string()));
        }
        if let Some(parent) = task.parent_id {
            fields.push(("parent_id", parent.to_string()));
        }
        let args = EnqueueArgs {
            id: &id_str,
            name: &task.name,
            queue: &task.queue,
            priority: task.priority.min(9),
            due_ms,
            require_registered,
            fields: &fields,
        };
        scripts::enqueue(
            &mut self.conn().await?,
            &self.keys,
            now,
            self.cfg.events_maxlen,
            &args,
        )
        .await?;
        Ok(())
    }

    /// Reads a task record; `None` when it does not exist (or expired).
    pub async fn get(&self, id: &Uuid) -> Result<Option<TaskRecord>> {
        let hash: HashMap<String, String> = self
            .conn()
            .await?
            .hgetall(self.keys.task(&id.to_string()))
            .await?;
        if hash.is_empty() {
            return Ok(None);
        }
        TaskRecord::from_hash(hash).map(Some)
    }

    /// Claims up to `max` ready tasks of `queues` (in order of preference) for `worker`,
    /// promoting due delayed tasks first.
    pub async fn claim(&self, queues: &[String], max: usize, worker: &str) -> Result<Claim> {
        let token_base = Uuid::new_v4().simple().to_string();
        let (next_due, rows) = scripts::claim(
            &mut self.conn().await?,
            &self.keys,
            queues,
            now_ms(),
            max,
            self.cfg.lease.as_millis() as u64,
            worker,
            &token_base,
            self.cfg.events_maxlen,
        )
        .await?;
        let tasks = rows
            .into_iter()
            .map(
                |(id, token, name, args, queue, attempts, retries, max_retries)| {
                    Ok(ClaimedTask {
                        id: id
                            .parse()
                            .map_err(|_| QueueError::Corrupt(format!("task id {id:?}")))?,
                        token,
                        name,
                        args: serde_json::from_str(&args).unwrap_or(Value::Null),
                        queue,
                        attempts,
                        retries,
                        max_retries,
                    })
                },
            )
            .collect::<Result<_>>()?;
        Ok(Claim {
            tasks,
            next_due_ms: (next_due >= 0).then_some(next_due),
        })
    }

    /// Extends the leases of held tasks; returns the ids whose lease was lost.
    pub async fn heartbeat(&self, held: &[(Uuid, String)]) -> Result<Vec<Uuid>> {
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let pairs: Vec<(String, String)> = held
            .iter()
            .map(|(id, t)| (id.to_string(), t.clone()))
            .collect();
        let lost = scripts::heartbeat(
            &mut self.conn().await?,
            &self.keys,
            now_ms(),
            self.cfg.lease.as_millis() as u64,
            &pairs,
        )
        .await?;
        Ok(lost.iter().filter_map(|id| id.parse().ok()).collect())
    }

    /// Records a task's success. `Err(LeaseLost)` when another worker owns it now.
    pub async fn complete(&self, task: &ClaimedTask, result: &Value) -> Result<()> {
        scripts::complete(
            &mut self.conn().await?,
            &self.keys,
            &task.id.to_string(),
            &task.token,
            now_ms(),
            &result.to_string(),
            self.ttl_ms(),
            self.cfg.events_maxlen,
        )
        .await
    }

    /// Records a failed attempt: a retry at `retry_at_ms`, or a final failure when `None`.
    /// Returns true when a retry was scheduled.
    pub async fn fail(
        &self,
        task: &ClaimedTask,
        failure: &Failure,
        retry_at_ms: Option<i64>,
    ) -> Result<bool> {
        let error =
            serde_json::json!({"exc_type": failure.exc_type, "exc_message": failure.message});
        let args = FailArgs {
            id: &task.id.to_string(),
            token: &task.token,
            queue: &task.queue,
            error_json: &error.to_string(),
            traceback: &failure.traceback,
            retry_at_ms,
        };
        scripts::fail(
            &mut self.conn().await?,
            &self.keys,
            now_ms(),
            self.ttl_ms(),
            self.cfg.events_maxlen,
            &args,
        )
        .await
    }

    /// Hands a claimed task back to its queue (graceful shutdown).
    pub async fn release(&self, task: &ClaimedTask) -> Result<()> {
        scripts::release(
            &mut self.conn().await?,
            &self.keys,
            &task.id.to_string(),
            &task.token,
            &task.queue,
            now_ms(),
            self.cfg.events_maxlen,
        )
        .await
    }

    /// Returns tasks with expired leases to their queues; returns (requeued, dead-lettered).
    pub async fn reap(&self) -> Result<(u64, u64)> {
        self.reap_at(now_ms()).await
    }

    /// [`Queue::reap`] as if the time were `now_ms` (tests move time forward this way).
    pub async fn reap_at(&self, now_ms: i64) -> Result<(u64, u64)> {
        scripts::reap(
            &mut self.conn().await?,
            &self.keys,
            now_ms,
            1000,
            self.cfg.max_lost_deliveries,
            self.ttl_ms(),
            self.cfg.events_maxlen,
        )
        .await
    }

    /// Registers (or refreshes) a worker and the task names it runs; the
    /// registration expires after `ttl` without a refresh.
    pub async fn register_worker(&self, w: &WorkerInfo, ttl: std::time::Duration) -> Result<()> {
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

    /// Counts of one queue.
    pub async fn queue_stats(&self, queue: &str) -> Result<QueueStats> {
        let (ready, delayed): (u64, u64) = redis::pipe()
            .zcard(self.keys.queue(queue))
            .zcard(self.keys.delayed(queue))
            .query_async(&mut self.conn().await?)
            .await?;
        Ok(QueueStats {
            queue: queue.to_owned(),
            ready,
            delayed,
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
