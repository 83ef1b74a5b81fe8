//! Scripts of a claimed task's life: claim (with the successes that free its
//! slots), the receipt of a claim whose answer was lost, heartbeat, complete,
//! fail (retry), release, and the reaper's return of expired leases.

use std::sync::LazyLock;

use redis::{Script, aio::ConnectionLike};

use super::{Ctx, code};
use crate::{
    error::{QueueError, Result},
    redis::invocation::Invocation,
};

static CLAIM: LazyLock<Script> = script!("claim.lua");
static CLAIM_RECEIPT: LazyLock<Script> = script!("claim_receipt.lua");
static HEARTBEAT: LazyLock<Script> = script!("heartbeat.lua");
static COMPLETE: LazyLock<Script> = script!("complete.lua");
static FAIL: LazyLock<Script> = script!("fail.lua");
static REAP: LazyLock<Script> = script!("reap.lua");
static RELEASE: LazyLock<Script> = script!("release.lua");

/// Most delayed tasks one claim promotes per queue (keeps each script call short).
const PROMOTE_LIMIT: usize = 1000;

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
