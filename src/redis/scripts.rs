//! The Lua scripts (one per state transition), loaded once and called through
//! one typed function each. `common.lua` is prepended to every script, so the
//! shared rules live in one place, and every call starts with the same context
//! (events and seq keys, now, TTL, stream cap, key prefixes) built by [`Ctx`].
//! `redis::Script` uses EVALSHA and reloads a script after a Redis restart.

use std::sync::LazyLock;

use redis::{Script, ScriptInvocation, aio::ConnectionLike};

use super::keys::Keys;
use crate::error::{QueueError, Result};

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| {
            Script::new(concat!(
                include_str!("lua/common.lua"),
                include_str!(concat!("lua/", $file))
            ))
        })
    };
}

static ENQUEUE: LazyLock<Script> = script!("enqueue.lua");
static CLAIM: LazyLock<Script> = script!("claim.lua");
static HEARTBEAT: LazyLock<Script> = script!("heartbeat.lua");
static COMPLETE: LazyLock<Script> = script!("complete.lua");
static FAIL: LazyLock<Script> = script!("fail.lua");
static REAP: LazyLock<Script> = script!("reap.lua");
static RELEASE: LazyLock<Script> = script!("release.lua");
static CANCEL: LazyLock<Script> = script!("cancel.lua");
static RESUBMIT: LazyLock<Script> = script!("resubmit.lua");
static FORGET: LazyLock<Script> = script!("forget.lua");
static PROGRESS: LazyLock<Script> = script!("progress.lua");
static WORKFLOW: LazyLock<Script> = script!("workflow.lua");

/// Most delayed tasks one claim promotes per queue (keeps each script call short).
const PROMOTE_LIMIT: usize = 1000;

/// The context every script receives first (see `common.lua`).
pub struct Ctx<'a> {
    /// Key builder of the namespace.
    pub keys: &'a Keys,
    /// The caller's clock, ms since the epoch.
    pub now_ms: i64,
    /// How long final records are kept, ms.
    pub result_ttl_ms: u64,
    /// Approximate cap of the events stream.
    pub events_maxlen: u64,
}

impl Ctx<'_> {
    fn invocation<'s>(&self, script: &'s Script) -> ScriptInvocation<'s> {
        let k = self.keys;
        let mut inv = script.prepare_invoke();
        inv.key(k.events())
            .key(k.seq())
            .arg(self.now_ms)
            .arg(self.result_ttl_ms)
            .arg(self.events_maxlen)
            .arg(k.task_prefix())
            .arg(k.queue_prefix())
            .arg(k.delayed_prefix())
            .arg(k.wake_prefix())
            .arg(k.workflow_prefix())
            .arg(k.done_channel_prefix())
            .arg(k.idempotency_prefix());
        inv
    }
}

/// A task as `enqueue` and `workflow` write it.
pub struct TaskSpec<'a> {
    /// Task id.
    pub id: &'a str,
    /// Task name.
    pub name: &'a str,
    /// Queue name.
    pub queue: &'a str,
    /// The record's fields as a JSON object of strings.
    pub record_json: String,
    /// Options given with the task, JSON.
    pub options_json: String,
    /// Refuse the name unless a worker registered it.
    pub require_registered: bool,
}

/// What `enqueue` needs besides the task.
pub struct EnqueueArgs<'a> {
    /// The task.
    pub task: TaskSpec<'a>,
    /// Due time in ms, or 0 for now.
    pub due_ms: i64,
    /// Revoke if not started by then (ms), or 0.
    pub expires_at_ms: i64,
    /// Parent task id.
    pub parent: Option<&'a str>,
    /// Idempotency key.
    pub idempotency_key: Option<&'a str>,
}

/// What became of an enqueue.
#[derive(Debug, PartialEq, Eq)]
pub enum Enqueued {
    /// Queued now.
    Ready,
    /// Waiting for its due time.
    Delayed,
    /// The idempotency key was used before: the earlier task's id.
    Existing(String),
}

/// Runs `enqueue.lua`.
pub async fn enqueue(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, a: &EnqueueArgs<'_>) -> Result<Enqueued> {
    let k = ctx.keys;
    let t = &a.task;
    let task_key = k.task(t.id);
    let mut inv = ctx.invocation(&ENQUEUE);
    inv.key(&task_key)
        .key(k.queue(t.queue))
        .key(k.delayed(t.queue))
        .key(k.wake(t.queue))
        .key(k.queues())
        .key(k.task_names())
        .key(k.task_defaults())
        .key(a.parent.map_or_else(|| task_key.clone(), |p| k.task(p)))
        .key(a.idempotency_key.map_or_else(|| task_key.clone(), |i| k.idempotency(i)))
        .arg(t.id)
        .arg(&t.record_json)
        .arg(&t.options_json)
        .arg(a.due_ms)
        .arg(a.expires_at_ms)
        .arg(flag(t.require_registered))
        .arg(flag(a.parent.is_some()))
        .arg(flag(a.idempotency_key.is_some()))
        .arg(t.name)
        .arg(t.queue)
        .arg(a.idempotency_key.unwrap_or(""));
    let (code, id): (i64, String) = inv.invoke_async(conn).await?;
    match code {
        1 => Ok(Enqueued::Ready),
        2 => Ok(Enqueued::Delayed),
        3 => Ok(Enqueued::Existing(id)),
        -1 => Err(QueueError::UnknownTaskName(t.name.to_owned())),
        -2 => Err(QueueError::DuplicateTask),
        c => Err(QueueError::UnexpectedReply(c)),
    }
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// One claimed task as the script returns it:
/// id, token, name, args, queue, attempts, retries, max_retries, options.
pub type ClaimedRow = (String, String, String, String, String, u32, u32, u32, String);

/// Runs `claim.lua`: returns the next due time of a delayed task (or -1) and the claimed rows.
pub async fn claim(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    queues: &[String],
    max: usize,
    lease_ms: u64,
    worker: &str,
    token_base: &str,
) -> Result<(i64, Vec<ClaimedRow>)> {
    let k = ctx.keys;
    let mut inv = ctx.invocation(&CLAIM);
    inv.key(k.leases()).key(k.rate_limits());
    for q in queues {
        inv.key(k.queue(q)).key(k.delayed(q)).key(k.wake(q));
    }
    inv.arg(max)
        .arg(lease_ms)
        .arg(worker)
        .arg(token_base)
        .arg(PROMOTE_LIMIT)
        .arg(k.rate_log_prefix());
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `heartbeat.lua` for `(id, token)` pairs; returns the ids whose lease is
/// lost and the ids whose cancellation was requested.
pub async fn heartbeat(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    lease_ms: u64,
    held: &[(String, String)],
) -> Result<(Vec<String>, Vec<String>)> {
    let mut inv = ctx.invocation(&HEARTBEAT);
    inv.key(ctx.keys.leases()).arg(lease_ms);
    for (id, token) in held {
        inv.arg(id).arg(token);
    }
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `complete.lua`.
pub async fn complete(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    id: &str,
    token: &str,
    result_json: &str,
) -> Result<()> {
    let mut inv = ctx.invocation(&COMPLETE);
    inv.key(ctx.keys.task(id))
        .key(ctx.keys.leases())
        .arg(id)
        .arg(token)
        .arg(result_json);
    QueueError::from_script_code(inv.invoke_async(conn).await?).map(drop)
}

/// What `fail` needs to know.
pub struct FailArgs<'a> {
    /// Task id.
    pub id: &'a str,
    /// Lease token.
    pub token: &'a str,
    /// Queue (for the delayed set and wake marker).
    pub queue: &'a str,
    /// `{"exc_type", "exc_message"}` as JSON.
    pub error_json: &'a str,
    /// The error chain.
    pub traceback: &'a str,
    /// When to retry, or `None` for a final failure.
    pub retry_at_ms: Option<i64>,
}

/// Runs `fail.lua`: returns true when a retry was scheduled.
pub async fn fail(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, a: &FailArgs<'_>) -> Result<bool> {
    let k = ctx.keys;
    let mut inv = ctx.invocation(&FAIL);
    inv.key(k.task(a.id))
        .key(k.leases())
        .key(k.delayed(a.queue))
        .key(k.wake(a.queue))
        .arg(a.id)
        .arg(a.token)
        .arg(a.error_json)
        .arg(a.traceback)
        .arg(a.retry_at_ms.unwrap_or(-1));
    QueueError::from_script_code(inv.invoke_async(conn).await?).map(|c| c == 2)
}

/// Most times a task is handed back by workers that do not have it before it
/// fails (with one-second delays: about five minutes).
const MAX_HANDBACKS: u32 = 300;

/// Runs `release.lua`: hand a claimed task back, to its queue's front, or to its
/// delayed set until `due_ms` (when not 0).
pub async fn release(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str, token: &str, due_ms: i64) -> Result<()> {
    let mut inv = ctx.invocation(&RELEASE);
    inv.key(ctx.keys.task(id))
        .key(ctx.keys.leases())
        .arg(id)
        .arg(token)
        .arg(due_ms)
        .arg(MAX_HANDBACKS)
        .arg(ctx.keys.rate_log_prefix());
    QueueError::from_script_code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `reap.lua`: returns (requeued, dead-lettered).
pub async fn reap(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    limit: usize,
    max_lost_deliveries: u32,
) -> Result<(u64, u64)> {
    let mut inv = ctx.invocation(&REAP);
    inv.key(ctx.keys.leases())
        .key(ctx.keys.dead_letter())
        .arg(limit)
        .arg(max_lost_deliveries);
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `cancel.lua`: returns true when the task was revoked at once, false
/// when it is running and its worker was asked to stop.
pub async fn cancel(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<bool> {
    let mut inv = ctx.invocation(&CANCEL);
    inv.key(ctx.keys.task(id)).arg(id).arg(ctx.keys.cancel_channel());
    final_code(inv.invoke_async(conn).await?).map(|c| c == 1)
}

/// Runs `resubmit.lua`.
pub async fn resubmit(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<()> {
    let mut inv = ctx.invocation(&RESUBMIT);
    inv.key(ctx.keys.task(id)).key(ctx.keys.dead_letter()).arg(id);
    final_code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `forget.lua`.
pub async fn forget(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<()> {
    let mut inv = ctx.invocation(&FORGET);
    inv.key(ctx.keys.task(id)).arg(id);
    final_code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `progress.lua`.
pub async fn progress(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    id: &str,
    token: &str,
    progress_json: &str,
) -> Result<()> {
    let mut inv = ctx.invocation(&PROGRESS);
    inv.key(ctx.keys.task(id)).arg(id).arg(token).arg(progress_json);
    QueueError::from_script_code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `workflow.lua`: `tasks` are the header tasks in order, then the callback if any.
pub async fn workflow(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    id: &str,
    kind: &str,
    tasks: &[TaskSpec<'_>],
    has_callback: bool,
) -> Result<()> {
    let k = ctx.keys;
    let mut inv = ctx.invocation(&WORKFLOW);
    inv.key(k.workflow(id))
        .key(k.queues())
        .key(k.task_names())
        .key(k.task_defaults());
    for t in tasks {
        inv.key(k.task(t.id));
    }
    let header = tasks.len() - usize::from(has_callback);
    inv.arg(id).arg(kind).arg(header).arg(flag(has_callback));
    for t in tasks {
        inv.arg(t.id)
            .arg(&t.record_json)
            .arg(&t.options_json)
            .arg(t.name)
            .arg(t.queue)
            .arg(flag(t.require_registered));
    }
    let (code, name): (i64, String) = inv.invoke_async(conn).await?;
    match code {
        1 => Ok(()),
        -1 => Err(QueueError::UnknownTaskName(name)),
        c => Err(QueueError::UnexpectedReply(c)),
    }
}

/// Maps the codes of the control scripts (`-4`: the task is in the wrong state).
fn final_code(code: i64) -> Result<i64> {
    match code {
        -4 => Err(QueueError::Conflict),
        c => QueueError::from_script_code(c),
    }
}
