//! The queue facade used by both binaries: enqueue and read tasks (API), claim,
//! heartbeat, complete, fail, release and reap them (worker). Each method is one
//! round trip: a Lua script for every transition, a plain read otherwise.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    config::EngineConfig,
    error::{QueueError, Result},
    redis::{
        Connection, TrackedConnection,
        keys::Keys,
        scripts::{self, Ctx, EnqueueArgs, Enqueued, FailArgs, TaskSpec},
    },
    task::{ClaimedTask, NewTask, TaskRecord, TaskStatus, now_ms},
};

/// Handle to one namespace of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    conn: Connection,
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
    /// Default options of its tasks: (name, options JSON).
    pub task_defaults: Vec<(String, String)>,
    /// Rate limits of its tasks: (name, count, window ms).
    pub rate_limits: Vec<(String, u32, u64)>,
}

/// The outcome of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueue {
    /// The task's id.
    pub id: Uuid,
    /// False when an earlier task with the same idempotency key was found (its id is returned).
    pub created: bool,
}

/// What a cancel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// The task had not started: it is REVOKED and will never run.
    Revoked,
    /// The task is running: its worker was told to stop; it ends REVOKED when it does.
    Requested,
}

/// Kinds of workflows (Celery's canvas primitives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowKind {
    /// One task after the other, each fed the previous result.
    Chain,
    /// Tasks in parallel; the result lists every result in order.
    Group,
    /// A group, then a callback fed the list of results.
    Chord,
}

impl WorkflowKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chain => "chain",
            Self::Group => "group",
            Self::Chord => "chord",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "chain" => Self::Chain,
            "group" => Self::Group,
            "chord" => Self::Chord,
            _ => return None,
        })
    }
}

/// A created workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowCreated {
    /// Workflow id.
    pub id: Uuid,
    /// Ids of the header tasks, in order.
    pub task_ids: Vec<Uuid>,
    /// Id of the chord's callback.
    pub callback_id: Option<Uuid>,
}

/// A workflow as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowRecord {
    /// Workflow id.
    pub id: Uuid,
    /// Kind.
    pub kind: WorkflowKind,
    /// STARTED until it ends SUCCESS, FAILURE or REVOKED.
    pub status: TaskStatus,
    /// Header tasks.
    pub task_ids: Vec<Uuid>,
    /// The chord's callback.
    pub callback_id: Option<Uuid>,
    /// Header tasks finished.
    pub done: u32,
    /// Header tasks in all.
    pub total: u32,
    /// Header tasks that did not succeed.
    pub failed: u32,
    /// The chain task that stopped the chain.
    pub failed_task: Option<Uuid>,
    /// Chain: the last task's result; group: every result in order (null while
    /// running); chord: the callback's result.
    pub result: Value,
    /// Creation time.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it ended.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl Queue {
    /// A queue over the connection `conn` in the namespace of `keys`.
    pub fn new(conn: Connection, keys: Keys, cfg: EngineConfig) -> Self {
        Self { conn, keys, cfg }
    }

    /// The key builder of this namespace.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The engine settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    async fn conn(&self) -> Result<TrackedConnection> {
        Ok(self.conn.handle())
    }

    fn ctx_at(&self, now_ms: i64) -> Ctx<'_> {
        Ctx {
            keys: &self.keys,
            now_ms,
            result_ttl_ms: self.cfg.result_ttl.as_millis() as u64,
            events_maxlen: self.cfg.events_maxlen,
        }
    }

    fn ctx(&self) -> Ctx<'_> {
        self.ctx_at(now_ms())
    }

    fn lease_ms(&self) -> u64 {
        self.cfg.lease.as_millis() as u64
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }

    /// Enqueues a task; `require_registered` refuses names no worker registered.
    pub async fn enqueue(&self, task: &NewTask, require_registered: bool) -> Result<Enqueue> {
        let id = Uuid::new_v4();
        let ctx = self.ctx();
        let id_str = id.to_string();
        let parent = task.parent_id.map(|p| p.to_string());
        let args = EnqueueArgs {
            task: task_spec(&id_str, task, ctx.now_ms, require_registered, true),
            due_ms: task.eta.map_or(0, |eta| eta.timestamp_millis()),
            parent: parent.as_deref(),
            idempotency_key: task.idempotency_key.as_deref(),
        };
        match scripts::enqueue(&mut self.conn().await?, &ctx, &args).await? {
            Enqueued::Ready | Enqueued::Delayed => Ok(Enqueue { id, created: true }),
            Enqueued::Existing(earlier) => Ok(Enqueue {
                id: parse_id(&earlier)?,
                created: false,
            }),
        }
    }

    /// Reads a task record; `None` when it does not exist (or expired).
    pub async fn get(&self, id: &Uuid) -> Result<Option<TaskRecord>> {
        let hash: HashMap<String, String> = self.conn().await?.hgetall(self.keys.task(&id.to_string())).await?;
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
            &self.ctx(),
            queues,
            max,
            self.lease_ms(),
            worker,
            &token_base,
        )
        .await?;
        let tasks = rows
            .into_iter()
            .map(
                |(id, token, name, args, queue, attempts, retries, max_retries, options)| {
                    Ok(ClaimedTask {
                        id: parse_id(&id)?,
                        token,
                        name,
                        args: serde_json::from_str(&args).unwrap_or(Value::Null),
                        queue,
                        attempts,
                        retries,
                        max_retries,
                        options: crate::task::TaskOptions::from_stored(&options),
                    })
                },
            )
            .collect::<Result<_>>()?;
        Ok(Claim {
            tasks,
            next_due_ms: (next_due >= 0).then_some(next_due),
        })
    }

    /// Extends the leases of held tasks; returns the ids whose lease was lost and
    /// the ids whose cancellation was requested.
    pub async fn heartbeat(&self, held: &[(Uuid, String)]) -> Result<(Vec<Uuid>, Vec<Uuid>)> {
        if held.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let pairs: Vec<(String, String)> = held.iter().map(|(id, t)| (id.to_string(), t.clone())).collect();
        let (lost, cancelled) =
            scripts::heartbeat(&mut self.conn().await?, &self.ctx(), self.lease_ms(), &pairs).await?;
        let ids = |v: Vec<String>| v.iter().filter_map(|id| id.parse().ok()).collect();
        Ok((ids(lost), ids(cancelled)))
    }

    /// Records a task's success. `Err(LeaseLost)` when another worker owns it now.
    pub async fn complete(&self, task: &ClaimedTask, result: &Value) -> Result<()> {
        let id = task.id.to_string();
        scripts::complete(
            &mut self.conn().await?,
            &self.ctx(),
            &id,
            &task.token,
            &result.to_string(),
        )
        .await
    }

    /// Records a failed attempt: a retry at `retry_at_ms`, or a final failure when `None`.
    /// Returns true when a retry was scheduled.
    pub async fn fail(&self, task: &ClaimedTask, failure: &Failure, retry_at_ms: Option<i64>) -> Result<bool> {
        let error = serde_json::json!({"exc_type": failure.exc_type, "exc_message": failure.message});
        let args = FailArgs {
            id: &task.id.to_string(),
            token: &task.token,
            queue: &task.queue,
            error_json: &error.to_string(),
            traceback: &failure.traceback,
            retry_at_ms,
        };
        scripts::fail(&mut self.conn().await?, &self.ctx(), &args).await
    }

    /// Hands a claimed task back to the front of its queue (graceful shutdown).
    pub async fn release(&self, task: &ClaimedTask) -> Result<()> {
        self.release_after(task, std::time::Duration::ZERO).await
    }

    /// Hands a claimed task back, to be claimed again after `delay` (by any worker).
    pub async fn release_after(&self, task: &ClaimedTask, delay: std::time::Duration) -> Result<()> {
        let id = task.id.to_string();
        let ctx = self.ctx();
        let due = if delay.is_zero() {
            0
        } else {
            ctx.now_ms + delay.as_millis() as i64
        };
        scripts::release(&mut self.conn().await?, &ctx, &id, &task.token, due).await
    }

    /// Records the progress of a running task (JSON), under its lease.
    pub async fn progress(&self, task_id: &Uuid, token: &str, progress: &Value) -> Result<()> {
        let id = task_id.to_string();
        scripts::progress(&mut self.conn().await?, &self.ctx(), &id, token, &progress.to_string()).await
    }

    /// Returns tasks with expired leases to their queues; returns (requeued, dead-lettered).
    pub async fn reap(&self) -> Result<(u64, u64)> {
        self.reap_at(now_ms()).await
    }

    /// [`Queue::reap`] as if the time were `now_ms` (tests move time forward this way).
    pub async fn reap_at(&self, now_ms: i64) -> Result<(u64, u64)> {
        scripts::reap(
            &mut self.conn().await?,
            &self.ctx_at(now_ms),
            1000,
            self.cfg.max_lost_deliveries,
        )
        .await
    }

    /// Cancels a task. `Err(Conflict)` when it is already final, `Err(NotFound)` when unknown.
    pub async fn cancel(&self, id: &Uuid) -> Result<Cancel> {
        let revoked = scripts::cancel(&mut self.conn().await?, &self.ctx(), &id.to_string()).await?;
        Ok(if revoked { Cancel::Revoked } else { Cancel::Requested })
    }

    /// Queues a FAILURE or REVOKED task again. `Err(Conflict)` in any other state.
    pub async fn resubmit(&self, id: &Uuid) -> Result<()> {
        scripts::resubmit(&mut self.conn().await?, &self.ctx(), &id.to_string()).await
    }

    /// Deletes a final task's record. `Err(Conflict)` when it is not final.
    pub async fn forget(&self, id: &Uuid) -> Result<()> {
        scripts::forget(&mut self.conn().await?, &self.ctx(), &id.to_string()).await
    }

    /// Creates a workflow and its tasks in one script: a chain or group of
    /// `tasks`, or a chord of `tasks` and `callback`.
    pub async fn create_workflow(
        &self,
        kind: WorkflowKind,
        tasks: &[NewTask],
        callback: Option<&NewTask>,
        require_registered: impl Fn(&str) -> bool,
    ) -> Result<WorkflowCreated> {
        let ctx = self.ctx();
        let id = Uuid::new_v4();
        let all: Vec<(String, &NewTask)> = tasks
            .iter()
            .chain(callback)
            .map(|t| (Uuid::new_v4().to_string(), t))
            .collect();
        let specs: Vec<TaskSpec<'_>> = all
            .iter()
            .map(|(tid, t)| task_spec(tid, t, ctx.now_ms, require_registered(&t.name), false))
            .collect();
        scripts::workflow(
            &mut self.conn().await?,
            &ctx,
            &id.to_string(),
            kind.as_str(),
            &specs,
            callback.is_some(),
        )
        .await?;
        let ids = all.iter().map(|(tid, _)| parse_id(tid)).collect::<Result<Vec<_>>>()?;
        let (task_ids, callback_id) = match callback {
            Some(_) => (ids[..ids.len() - 1].to_vec(), ids.last().copied()),
            None => (ids, None),
        };
        Ok(WorkflowCreated {
            id,
            task_ids,
            callback_id,
        })
    }

    /// Reads a workflow; `None` when unknown or expired.
    pub async fn get_workflow(&self, id: &Uuid) -> Result<Option<WorkflowRecord>> {
        let mut h: HashMap<String, String> = self.conn().await?.hgetall(self.keys.workflow(&id.to_string())).await?;
        if h.is_empty() {
            return Ok(None);
        }
        let corrupt = |what: &str| QueueError::Corrupt(format!("workflow field {what}"));
        let kind = h
            .get("kind")
            .and_then(|k| WorkflowKind::parse(k))
            .ok_or_else(|| corrupt("kind"))?;
        let status = h
            .get("status")
            .and_then(|s| TaskStatus::parse(s))
            .ok_or_else(|| corrupt("status"))?;
        let num = |h: &HashMap<String, String>, k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0u32);
        let (total, done, failed) = (num(&h, "total"), num(&h, "done"), num(&h, "failed"));
        let task_ids: Vec<Uuid> = h
            .get("tasks")
            .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
            .unwrap_or_default()
            .iter()
            .filter_map(|t| t.parse().ok())
            .collect();
        let json = |v: Option<String>| {
            v.and_then(|s| serde_json::from_str::<Value>(&s).ok())
                .unwrap_or(Value::Null)
        };
        let result = match kind {
            WorkflowKind::Group if status != TaskStatus::Started => {
                Value::Array((0..total).map(|i| json(h.remove(&format!("r:{i}")))).collect())
            }
            _ => json(h.remove("result")),
        };
        let time = |v: Option<&String>| {
            v.and_then(|s| s.parse::<i64>().ok())
                .and_then(chrono::DateTime::from_timestamp_millis)
        };
        Ok(Some(WorkflowRecord {
            id: *id,
            kind,
            status,
            callback_id: h.get("callback").and_then(|c| c.parse().ok()),
            failed_task: h.get("failed_task").and_then(|c| c.parse().ok()),
            task_ids,
            done,
            total,
            failed,
            result,
            created_at: time(h.get("created_at")),
            finished_at: time(h.get("finished_at")),
        }))
    }

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

fn parse_id(id: &str) -> Result<Uuid> {
    id.parse().map_err(|_| QueueError::Corrupt(format!("task id {id:?}")))
}

/// A new task's record as field/value pairs, with the options given with it,
/// as the scripts take them (registration defaults are merged in Lua).
/// `standalone` (not a workflow member): the record also carries the task's own
/// ETA, expiry and idempotency key.
fn task_spec<'a>(
    id: &'a str,
    task: &'a NewTask,
    now_ms: i64,
    require_registered: bool,
    standalone: bool,
) -> TaskSpec<'a> {
    let o = &task.options;
    let priority = o.priority.unwrap_or(0).min(9);
    let options_json = serde_json::to_string(o).unwrap_or_else(|_| "{}".to_owned());
    // id, name, queue, status, priority, options, counters and created_at are
    // written by the script from its own arguments.
    let mut fields = vec![
        ("args", task.args.to_string()),
        ("max_retries", o.max_retries.unwrap_or(0).to_string()),
    ];
    if let Some(parent) = task.parent_id {
        fields.push(("parent_id", parent.to_string()));
    }
    // An explicit expiry wins over the `expires` option (seconds from now).
    let explicit = if standalone {
        task.expires_at.map_or(0, |t| t.timestamp_millis())
    } else {
        0
    };
    let expires_at_ms = match o.expires {
        _ if explicit > 0 => explicit,
        Some(secs) => now_ms + (secs * 1000.0).floor() as i64,
        None => 0,
    };
    if expires_at_ms > 0 {
        fields.push(("expires_at", expires_at_ms.to_string()));
    }
    if standalone {
        if let Some(eta) = task.eta.map(|eta| eta.timestamp_millis()).filter(|&due| due > now_ms) {
            fields.push(("eta", eta.to_string()));
        }
        if let Some(key) = &task.idempotency_key {
            fields.push(("idempotency_key", key.clone()));
        }
    }
    TaskSpec {
        id,
        name: &task.name,
        queue: &task.queue,
        fields,
        options_json,
        priority,
        expires_at_ms,
        require_registered,
    }
}
