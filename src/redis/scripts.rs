//! The Lua scripts (one per state transition), loaded once and called through
//! one typed function each.
//!
//! Shared Lua pieces live in `lua/includes/`; a script names each piece it uses
//! with a marker line `--- @include "includes/<name>"`, expanded by
//! `invocation.rs` when the script is first used. Every script
//! takes its own KEYS and ARGV (see its header): every key known before the call
//! is a KEY; key prefixes go in ARGV only where a script learns ids inside Redis.
//! Refusal codes mean the same in every script and are mapped by
//! [`QueueError::from_script_code`]. Calls go out as EVALSHA, and a script is
//! loaded again after a Redis restart (`Invocation`).

use std::sync::LazyLock;

use redis::{Script, aio::ConnectionLike};

use super::{
    invocation::{Invocation, expand},
    keys::Keys,
};
use crate::error::{QueueError, Result};

macro_rules! script {
    ($file:literal) => {
        LazyLock::new(|| Script::new(&expand(include_str!(concat!("lua/", $file)))))
    };
}

/// Every script's source, for the expansion test.
#[cfg(test)]
static SOURCES: &[(&str, &str)] = &[
    ("enqueue", include_str!("lua/enqueue.lua")),
    ("claim", include_str!("lua/claim.lua")),
    ("claim_receipt", include_str!("lua/claim_receipt.lua")),
    ("heartbeat", include_str!("lua/heartbeat.lua")),
    ("complete", include_str!("lua/complete.lua")),
    ("fail", include_str!("lua/fail.lua")),
    ("reap", include_str!("lua/reap.lua")),
    ("release", include_str!("lua/release.lua")),
    ("cancel", include_str!("lua/cancel.lua")),
    ("resubmit", include_str!("lua/resubmit.lua")),
    ("forget", include_str!("lua/forget.lua")),
    ("progress", include_str!("lua/progress.lua")),
    ("workflow", include_str!("lua/workflow.lua")),
    ("callback_status", include_str!("lua/callback_status.lua")),
    ("enqueue_batch", include_str!("lua/enqueue_batch.lua")),
    ("pause", include_str!("lua/pause.lua")),
    ("resume", include_str!("lua/resume.lua")),
    ("list_page", include_str!("lua/list_page.lua")),
    ("trim_indexes", include_str!("lua/trim_indexes.lua")),
    ("purge", include_str!("lua/purge.lua")),
];

static ENQUEUE: LazyLock<Script> = script!("enqueue.lua");
static CLAIM: LazyLock<Script> = script!("claim.lua");
static CLAIM_RECEIPT: LazyLock<Script> = script!("claim_receipt.lua");
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
static CALLBACK_STATUS: LazyLock<Script> = script!("callback_status.lua");
static ENQUEUE_BATCH: LazyLock<Script> = script!("enqueue_batch.lua");
static PAUSE: LazyLock<Script> = script!("pause.lua");
static RESUME: LazyLock<Script> = script!("resume.lua");
static LIST_PAGE: LazyLock<Script> = script!("list_page.lua");
static TRIM_INDEXES: LazyLock<Script> = script!("trim_indexes.lua");
static PURGE: LazyLock<Script> = script!("purge.lua");

/// Most delayed tasks one claim promotes per queue (keeps each script call short).
const PROMOTE_LIMIT: usize = 1000;

/// What every script call may need besides its own arguments: the namespace's
/// keys, the caller's clock, and the engine's settings.
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
    /// Appends what `includes/finalize` needs, in the order every finalizing
    /// script reads it: result TTL, then the done channel, idempotency, task,
    /// workflow, queue, wake and listing index key prefixes (a workflow's
    /// members are learned inside Redis).
    fn finalize_args(&self, inv: &mut Invocation) {
        let k = self.keys;
        inv.arg(self.result_ttl_ms)
            .arg(k.done_channel_prefix())
            .arg(k.idempotency_prefix())
            .arg(k.task_prefix())
            .arg(k.workflow_prefix())
            .arg(k.queue_prefix())
            .arg(k.wake_prefix())
            .arg(k.index_prefix());
    }
}

/// Maps a script's reply code (no name attached).
fn code(c: i64) -> Result<i64> {
    QueueError::from_script_code(c, "")
}

/// A task as `enqueue` and `workflow` write it.
pub struct TaskSpec<'a> {
    /// Task id.
    pub id: &'a str,
    /// Task name.
    pub name: &'a str,
    /// Queue name.
    pub queue: &'a str,
    /// The record's fields other than those the script writes from its own
    /// arguments (id, name, queue, status, priority, options, counters,
    /// created_at), as field/value pairs written as they are (Lua decodes no JSON
    /// for them); registration defaults may then override `max_retries` and
    /// `expires_at`.
    pub fields: Vec<(&'static str, String)>,
    /// Options given with the task, JSON (merged with registration defaults in Lua).
    pub options_json: String,
    /// Priority from the given options, 0 to 9.
    pub priority: u8,
    /// The expiry the record's fields carry, ms (0: none).
    pub expires_at_ms: i64,
    /// Refuse the name unless a worker registered it.
    pub require_registered: bool,
}

/// What `enqueue` needs besides the task.
pub struct EnqueueArgs<'a> {
    /// The task.
    pub task: TaskSpec<'a>,
    /// Due time in ms, or 0 for now.
    pub due_ms: i64,
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
    let mut inv = Invocation::new(&ENQUEUE);
    inv.key(&task_key)
        .key(k.queue(t.queue))
        .key(k.delayed(t.queue))
        .key(k.wake(t.queue))
        .key(k.queues())
        .key(k.task_names())
        .key(k.task_defaults())
        .key(k.seq())
        .key(k.events())
        .key(a.parent.map_or_else(|| task_key.clone(), |p| k.task(p)))
        .key(a.idempotency_key.map_or_else(|| task_key.clone(), |i| k.idempotency(i)))
        .arg(t.id)
        .arg(t.name)
        .arg(t.queue)
        .arg(ctx.now_ms)
        .arg(a.due_ms)
        .arg(ctx.events_maxlen)
        .arg(flag(t.require_registered))
        .arg(flag(a.parent.is_some()))
        .arg(a.idempotency_key.unwrap_or(""))
        .arg(k.task_prefix())
        .arg(&t.options_json)
        .arg(u32::from(t.priority))
        .arg(t.expires_at_ms)
        .arg(k.index_prefix());
    for (field, value) in &t.fields {
        inv.arg(*field).arg(value);
    }
    let (c, detail): (i64, String) = inv.invoke_async(conn).await?;
    match QueueError::from_script_code(c, &detail)? {
        1 => Ok(Enqueued::Ready),
        2 => Ok(Enqueued::Delayed),
        3 => Ok(Enqueued::Existing(detail)),
        c => Err(QueueError::UnexpectedReply(c)),
    }
}

fn flag(on: bool) -> &'static str {
    if on { "1" } else { "0" }
}

/// One claimed task as the script returns it:
/// id, token, name, args, queue, attempts, retries, max_retries, options.
pub type ClaimedRow = (String, String, String, String, String, u32, u32, u32, String);

/// What one `claim.lua` call did.
pub struct Claimed {
    /// When the earliest delayed task of the queues is due (ms), or -1.
    pub next_due_ms: i64,
    /// The tasks now leased to the caller.
    pub rows: Vec<ClaimedRow>,
    /// Each completion's outcome, in order (what [`complete`] says).
    pub completed: Vec<Result<()>>,
}

/// What a `claim.lua` call asks for, besides the successes it records first.
pub struct ClaimArgs<'a> {
    /// The queues to claim from, in order of preference (empty: claim nothing).
    pub queues: &'a [String],
    /// At most this many tasks.
    pub max: usize,
    /// How long each lease lasts (ms).
    pub lease_ms: u64,
    /// The claiming worker's name (its leases and listing index).
    pub worker: &'a str,
    /// Unique per call: each lease token is this and the task's place in the call.
    pub token_base: &'a str,
}

/// Runs `claim.lua`: records `done` (successes, at most [`COMPLETE_BATCH_MAX`]),
/// then leases up to `args.max` tasks of `args.queues` to `args.worker`.
pub async fn claim(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    done: &[Completion<'_>],
    args: &ClaimArgs<'_>,
) -> Result<Claimed> {
    debug_assert!(done.len() <= COMPLETE_BATCH_MAX);
    let k = ctx.keys;
    let mut inv = Invocation::new(&CLAIM);
    inv.key(k.leases())
        .key(k.rate_limits())
        .key(k.seq())
        .key(k.events())
        .key(k.paused_queues())
        .key(k.claim_fence(args.token_base));
    for q in args.queues {
        inv.key(k.queue(q)).key(k.delayed(q)).key(k.wake(q));
    }
    for c in done {
        inv.key(k.task(c.id));
    }
    inv.arg(ctx.now_ms)
        .arg(args.max)
        .arg(args.lease_ms)
        .arg(args.worker)
        .arg(args.token_base)
        .arg(PROMOTE_LIMIT)
        .arg(k.rate_log_prefix())
        .arg(ctx.events_maxlen);
    ctx.finalize_args(&mut inv);
    inv.arg(args.queues.len());
    for q in args.queues {
        inv.arg(q);
    }
    for c in done {
        inv.arg(c.id).arg(c.token).arg(c.result_json);
    }
    let (next_due_ms, rows, codes): (i64, Vec<ClaimedRow>, Vec<i64>) = inv.invoke_async(conn).await?;
    if codes.len() != done.len() {
        return Err(QueueError::UnexpectedReply(codes.len() as i64));
    }
    Ok(Claimed {
        next_due_ms,
        rows,
        completed: codes.into_iter().map(|c| code(c).map(drop)).collect(),
    })
}

/// What a claim call did, read back by [`claim_receipt`] after its answer was lost.
pub struct ClaimReceipt {
    /// The tasks the call leased that are still leased under its tokens.
    pub rows: Vec<ClaimedRow>,
    /// Per success the call carried, in order: whether it was recorded.
    pub recorded: Vec<bool>,
}

/// Runs `claim_receipt.lua` for the claim call `args` made at `ctx.now_ms`
/// carrying `done`: fences that call (if it has not run yet, it never will), then
/// reads what it did. Asking again is harmless; the fence lasts `fence_ms`.
pub async fn claim_receipt(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    done: &[Completion<'_>],
    args: &ClaimArgs<'_>,
    fence_ms: u64,
) -> Result<ClaimReceipt> {
    let k = ctx.keys;
    let lease_deadline = ctx.now_ms + args.lease_ms as i64;
    let mut inv = Invocation::new(&CLAIM_RECEIPT);
    inv.key(k.leases())
        .key(k.claim_fence(args.token_base))
        .arg(lease_deadline)
        .arg(args.token_base)
        .arg(fence_ms)
        .arg(k.task_prefix());
    for c in done {
        inv.arg(c.id).arg(c.token);
    }
    let (rows, recorded): (Vec<ClaimedRow>, Vec<i64>) = inv.invoke_async(conn).await?;
    if recorded.len() != done.len() {
        return Err(QueueError::UnexpectedReply(recorded.len() as i64));
    }
    Ok(ClaimReceipt {
        rows,
        recorded: recorded.into_iter().map(|r| r == 1).collect(),
    })
}

/// Runs `heartbeat.lua` for `(id, token)` pairs; returns the ids whose lease is
/// lost and the ids whose cancellation was requested.
pub async fn heartbeat(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    lease_ms: u64,
    held: &[(String, String)],
) -> Result<(Vec<String>, Vec<String>)> {
    let mut inv = Invocation::new(&HEARTBEAT);
    inv.key(ctx.keys.leases())
        .arg(ctx.now_ms)
        .arg(lease_ms)
        .arg(ctx.keys.task_prefix());
    for (id, token) in held {
        inv.arg(id).arg(token);
    }
    Ok(inv.invoke_async(conn).await?)
}

/// Most completions one `complete.lua` call records (Lua unpacks their ids
/// into one ZREM; the call stays short).
pub const COMPLETE_BATCH_MAX: usize = 500;

/// One completion: task id, lease token, result JSON.
pub struct Completion<'a> {
    /// Task id.
    pub id: &'a str,
    /// Lease token.
    pub token: &'a str,
    /// The result as JSON text.
    pub result_json: &'a str,
}

/// Runs `complete.lua` for up to [`COMPLETE_BATCH_MAX`] completions; returns
/// each one's outcome, in order.
pub async fn complete(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    batch: &[Completion<'_>],
) -> Result<Vec<Result<()>>> {
    debug_assert!(batch.len() <= COMPLETE_BATCH_MAX);
    let k = ctx.keys;
    let mut inv = Invocation::new(&COMPLETE);
    inv.key(k.leases()).key(k.events()).key(k.seq());
    for c in batch {
        inv.key(k.task(c.id));
    }
    inv.arg(ctx.now_ms).arg(ctx.events_maxlen);
    ctx.finalize_args(&mut inv);
    for c in batch {
        inv.arg(c.id).arg(c.token).arg(c.result_json);
    }
    let codes: Vec<i64> = inv.invoke_async(conn).await?;
    if codes.len() != batch.len() {
        return Err(QueueError::UnexpectedReply(codes.len() as i64));
    }
    Ok(codes.into_iter().map(|c| code(c).map(drop)).collect())
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
    let mut inv = Invocation::new(&FAIL);
    inv.key(k.task(a.id))
        .key(k.leases())
        .key(k.delayed(a.queue))
        .key(k.wake(a.queue))
        .key(k.events())
        .key(k.seq())
        .arg(a.id)
        .arg(a.token)
        .arg(a.error_json)
        .arg(a.traceback)
        .arg(a.retry_at_ms.unwrap_or(-1))
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen);
    ctx.finalize_args(&mut inv);
    code(inv.invoke_async(conn).await?).map(|c| c == 2)
}

/// Most times a task is handed back by workers that do not have it before it
/// fails (with one-second delays: about five minutes).
const MAX_HANDBACKS: u32 = 300;

/// Runs `release.lua`: hand a claimed task back, to its queue's front, or to its
/// delayed set until `due_ms` (when not 0).
pub async fn release(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str, token: &str, due_ms: i64) -> Result<()> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&RELEASE);
    inv.key(k.task(id))
        .key(k.leases())
        .key(k.events())
        .key(k.seq())
        .arg(id)
        .arg(token)
        .arg(due_ms)
        .arg(MAX_HANDBACKS)
        .arg(k.rate_log_prefix())
        .arg(k.delayed_prefix())
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen);
    ctx.finalize_args(&mut inv);
    code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `reap.lua`: returns (requeued, dead-lettered).
pub async fn reap(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    limit: usize,
    max_lost_deliveries: u32,
) -> Result<(u64, u64)> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&REAP);
    inv.key(k.leases())
        .key(k.dead_letter())
        .key(k.events())
        .key(k.seq())
        .key(k.dead_letter_counts())
        .arg(ctx.now_ms)
        .arg(limit)
        .arg(max_lost_deliveries)
        .arg(ctx.events_maxlen);
    ctx.finalize_args(&mut inv);
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `cancel.lua`: returns true when the task was revoked at once, false
/// when it is running and its worker was asked to stop.
pub async fn cancel(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<bool> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&CANCEL);
    inv.key(k.task(id))
        .key(k.events())
        .key(k.seq())
        .arg(id)
        .arg(k.cancel_channel())
        .arg(k.delayed_prefix())
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen);
    ctx.finalize_args(&mut inv);
    code(inv.invoke_async(conn).await?).map(|c| c == 1)
}

/// Runs `resubmit.lua`.
pub async fn resubmit(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<()> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&RESUBMIT);
    inv.key(k.task(id))
        .key(k.dead_letter())
        .key(k.events())
        .key(k.seq())
        .key(k.dead_letter_counts())
        .arg(id)
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen)
        .arg(k.workflow_prefix())
        .arg(k.idempotency_prefix())
        .arg(k.queue_prefix())
        .arg(k.wake_prefix())
        .arg(k.index_prefix());
    code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `forget.lua`.
pub async fn forget(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<()> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&FORGET);
    inv.key(k.task(id))
        .key(k.events())
        .arg(id)
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen);
    code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `progress.lua`.
pub async fn progress(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    id: &str,
    token: &str,
    progress_json: &str,
) -> Result<()> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&PROGRESS);
    inv.key(k.task(id))
        .key(k.events())
        .arg(id)
        .arg(token)
        .arg(progress_json)
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen);
    code(inv.invoke_async(conn).await?).map(drop)
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
    let mut inv = Invocation::new(&WORKFLOW);
    inv.key(k.workflow(id))
        .key(k.queues())
        .key(k.task_names())
        .key(k.task_defaults())
        .key(k.seq())
        .key(k.events());
    for t in tasks {
        inv.key(k.task(t.id)).key(k.queue(t.queue)).key(k.wake(t.queue));
    }
    let header = tasks.len() - usize::from(has_callback);
    inv.arg(id)
        .arg(kind)
        .arg(header)
        .arg(flag(has_callback))
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen)
        .arg(k.index_prefix());
    for t in tasks {
        inv.arg(t.id)
            .arg(t.name)
            .arg(t.queue)
            .arg(flag(t.require_registered))
            .arg(&t.options_json)
            .arg(u32::from(t.priority))
            .arg(t.expires_at_ms)
            .arg(t.fields.len() * 2);
        for (field, value) in &t.fields {
            inv.arg(*field).arg(value);
        }
    }
    let (c, name): (i64, String) = inv.invoke_async(conn).await?;
    QueueError::from_script_code(c, &name).map(drop)
}

/// Runs `callback_status.lua`: records a task's callback state (JSON).
pub async fn callback_status(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str, state_json: &str) -> Result<()> {
    let mut inv = Invocation::new(&CALLBACK_STATUS);
    inv.key(ctx.keys.task(id)).arg(state_json);
    code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `enqueue_batch.lua`: `tasks` with their due times (ms, 0: now), all
/// or nothing. An unknown name is reported with its index in `tasks`.
pub async fn enqueue_batch(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    tasks: &[(TaskSpec<'_>, i64)],
) -> Result<std::result::Result<(), (String, usize)>> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&ENQUEUE_BATCH);
    inv.key(k.queues())
        .key(k.task_names())
        .key(k.task_defaults())
        .key(k.seq())
        .key(k.events());
    for (t, _) in tasks {
        inv.key(k.task(t.id));
    }
    inv.arg(ctx.now_ms)
        .arg(ctx.events_maxlen)
        .arg(k.index_prefix())
        .arg(k.queue_prefix())
        .arg(k.delayed_prefix())
        .arg(k.wake_prefix());
    for (t, due_ms) in tasks {
        inv.arg(t.id)
            .arg(t.name)
            .arg(t.queue)
            .arg(flag(t.require_registered))
            .arg(&t.options_json)
            .arg(u32::from(t.priority))
            .arg(t.expires_at_ms)
            .arg(*due_ms)
            .arg(t.fields.len() * 2);
        for (field, value) in &t.fields {
            inv.arg(*field).arg(value);
        }
    }
    let (c, name, index): (i64, String, usize) = inv.invoke_async(conn).await?;
    match c {
        -5 => Ok(Err((name, index))),
        c => QueueError::from_script_code(c, &name).map(|_| Ok(())),
    }
}

/// What `pause` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Paused {
    /// The task left its queue and is PAUSED.
    Paused,
    /// The task is running: nothing changed (cancel it instead).
    Running,
}

/// Runs `pause.lua`. `Err(Conflict)` when the task is not waiting.
pub async fn pause(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<Paused> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&PAUSE);
    inv.key(k.task(id))
        .key(k.events())
        .arg(id)
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen)
        .arg(k.queue_prefix())
        .arg(k.delayed_prefix())
        .arg(k.index_prefix());
    match code(inv.invoke_async(conn).await?)? {
        2 => Ok(Paused::Running),
        _ => Ok(Paused::Paused),
    }
}

/// Runs `resume.lua`. `Err(Conflict)` when the task is not PAUSED.
pub async fn resume(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str) -> Result<()> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&RESUME);
    inv.key(k.task(id))
        .key(k.events())
        .key(k.seq())
        .arg(id)
        .arg(ctx.now_ms)
        .arg(ctx.events_maxlen)
        .arg(k.queue_prefix())
        .arg(k.delayed_prefix())
        .arg(k.wake_prefix())
        .arg(k.index_prefix());
    code(inv.invoke_async(conn).await?).map(drop)
}

/// Runs `list_page.lua`: per index in `indexes`, up to `per_index` entries
/// `(id, score)` newest first, strictly after `cursor` (score, id), with scores
/// between `low` and `high` (Redis score bounds: `(ms`, `ms`, `-inf`, `+inf`).
/// The leases ZSET given as an index stands for the STARTED tasks.
pub async fn list_page(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    indexes: &[String],
    cursor: Option<(i64, &str)>,
    high: &str,
    low: &str,
    per_index: usize,
) -> Result<Vec<Vec<(String, f64)>>> {
    let mut inv = Invocation::new(&LIST_PAGE);
    for key in indexes {
        inv.key(key);
    }
    let (score, id) = cursor.unwrap_or((0, ""));
    inv.arg(score)
        .arg(id)
        .arg(high)
        .arg(low)
        .arg(per_index)
        .arg(keys.task_prefix())
        .arg(keys.leases());
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `trim_indexes.lua`: removes up to `batch` entries per listing index
/// whose record expired; returns how many it removed.
pub async fn trim_indexes(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, batch: usize) -> Result<u64> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&TRIM_INDEXES);
    inv.key(k.queues())
        .key(k.task_names())
        .key(k.workers())
        .key(k.schedules())
        .arg(ctx.now_ms)
        .arg(ctx.result_ttl_ms)
        .arg(batch)
        .arg(k.task_prefix())
        .arg(k.index_prefix());
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `purge.lua`: revokes up to `limit` of `queue`'s ready, then delayed
/// tasks; returns how many it took out.
pub async fn purge(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, queue: &str, limit: usize) -> Result<u64> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&PURGE);
    inv.key(k.queue(queue))
        .key(k.delayed(queue))
        .key(k.events())
        .key(k.seq())
        .arg(ctx.now_ms)
        .arg(limit)
        .arg(ctx.events_maxlen);
    ctx.finalize_args(&mut inv);
    Ok(inv.invoke_async(conn).await?)
}

#[cfg(test)]
mod tests {
    use super::{SOURCES, expand};
    use crate::redis::invocation::{INCLUDES, include_marker};

    #[test]
    fn every_script_expands_with_no_marker_left_and_its_own_lines_in_order() {
        for (name, source) in SOURCES {
            let expanded = expand(source);
            assert!(
                !expanded.lines().any(|l| include_marker(l).is_some()),
                "{name}: a marker is left"
            );
            // The script's own lines appear in order: Redis' line numbers of an
            // error point at them, shifted only by the pieces included before.
            let mut rest = expanded.as_str();
            for line in source.lines().filter(|l| include_marker(l).is_none()) {
                let at = rest
                    .find(&format!("{line}\n"))
                    .unwrap_or_else(|| panic!("{name}: line {line:?} missing or out of order"));
                rest = &rest[at + line.len() + 1..];
            }
            // Its header stays on line 1.
            assert_eq!(expanded.lines().next(), source.lines().next(), "{name}");
        }
    }

    #[test]
    fn each_piece_is_included_once_after_its_own_includes() {
        let expanded = expand(SOURCES.iter().find(|(n, _)| *n == "claim").unwrap().1);
        for (name, body) in INCLUDES {
            let first_line = body.lines().next().unwrap();
            let count = expanded.matches(first_line).count();
            if [
                "includes/finalize",
                "includes/emit",
                "includes/ready",
                "includes/status",
            ]
            .contains(name)
            {
                assert_eq!(count, 1, "{name} in claim");
            }
        }
        let at = |piece: &str| expanded.find(piece).unwrap_or_else(|| panic!("{piece} missing"));
        assert!(at("local function emit(") < at("local function finish_workflow("));
        assert!(at("local finalize\n") < at("local function revoke_waiting_chain("));
        assert!(at("local function advance_workflow(") < at("finalize = function("));
    }

    #[test]
    fn every_include_is_used_by_some_script() {
        for (name, _) in INCLUDES {
            assert!(
                SOURCES
                    .iter()
                    .any(|(_, s)| expand(s).contains(&format!("-- >> {name}\n"))),
                "{name} is never included"
            );
        }
    }
}
