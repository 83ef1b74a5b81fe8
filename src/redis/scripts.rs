//! The Lua scripts (one per state transition), loaded once and called through
//! one typed function each. `common.lua` is prepended to every script, so the
//! shared helpers live in one place. `redis::Script` uses EVALSHA and reloads
//! the script after a Redis restart (NOSCRIPT).

use std::sync::LazyLock;

use redis::{Script, aio::ConnectionLike};

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

/// Most delayed tasks one claim promotes per queue (keeps each script call short).
const PROMOTE_LIMIT: usize = 1000;

/// What `enqueue` needs besides the record's fields.
pub struct EnqueueArgs<'a> {
    /// Task id.
    pub id: &'a str,
    /// Task name.
    pub name: &'a str,
    /// Queue name.
    pub queue: &'a str,
    /// 0–9.
    pub priority: u8,
    /// Due time in ms, or 0 for now.
    pub due_ms: i64,
    /// Refuse names that no worker registered.
    pub require_registered: bool,
    /// The record's fields (besides `status`).
    pub fields: &'a [(&'static str, String)],
}

/// Runs `enqueue.lua`: returns true when the task is ready now, false when delayed.
pub async fn enqueue(
    conn: &mut impl ConnectionLike,
    k: &Keys,
    now_ms: i64,
    events_maxlen: u64,
    a: &EnqueueArgs<'_>,
) -> Result<bool> {
    let mut inv = ENQUEUE.prepare_invoke();
    inv.key(k.task(a.id))
        .key(k.queue(a.queue))
        .key(k.delayed(a.queue))
        .key(k.wake(a.queue))
        .key(k.seq())
        .key(k.events())
        .key(k.queues())
        .key(k.task_names())
        .arg(a.id)
        .arg(now_ms)
        .arg(a.due_ms)
        .arg(a.priority)
        .arg(if a.require_registered { "1" } else { "0" })
        .arg(a.name)
        .arg(a.queue)
        .arg(events_maxlen);
    for (field, value) in a.fields {
        inv.arg(*field).arg(value);
    }
    match inv.invoke_async::<i64>(conn).await? {
        1 => Ok(true),
        2 => Ok(false),
        -1 => Err(QueueError::UnknownTaskName(a.name.to_owned())),
        -2 => Err(QueueError::DuplicateTask),
        c => Err(QueueError::UnexpectedReply(c)),
    }
}

/// One claimed task as the script returns it.
pub type ClaimedRow = (String, String, String, String, String, u32, u32, u32);

/// Runs `claim.lua`: returns the next due time of a delayed task (or -1) and the claimed rows.
#[allow(clippy::too_many_arguments)]
pub async fn claim(
    conn: &mut impl ConnectionLike,
    k: &Keys,
    queues: &[String],
    now_ms: i64,
    max: usize,
    lease_ms: u64,
    worker: &str,
    token_base: &str,
    events_maxlen: u64,
) -> Result<(i64, Vec<ClaimedRow>)> {
    let mut inv = CLAIM.prepare_invoke();
    inv.key(k.leases()).key(k.events()).key(k.seq());
    for q in queues {
        inv.key(k.queue(q)).key(k.delayed(q)).key(k.wake(q));
    }
    inv.arg(now_ms)
        .arg(max)
        .arg(lease_ms)
        .arg(worker)
        .arg(token_base)
        .arg(k.task_prefix())
        .arg(events_maxlen)
        .arg(PROMOTE_LIMIT);
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `heartbeat.lua` for `(id, token)` pairs; returns the ids whose lease is lost.
pub async fn heartbeat(
    conn: &mut impl ConnectionLike,
    k: &Keys,
    now_ms: i64,
    lease_ms: u64,
    held: &[(String, String)],
) -> Result<Vec<String>> {
    let mut inv = HEARTBEAT.prepare_invoke();
    inv.key(k.leases())
        .arg(now_ms)
        .arg(lease_ms)
        .arg(k.task_prefix());
    for (id, token) in held {
        inv.arg(id).arg(token);
    }
    Ok(inv.invoke_async(conn).await?)
}

/// Runs `complete.lua`.
#[allow(clippy::too_many_arguments)]
pub async fn complete(
    conn: &mut impl ConnectionLike,
    k: &Keys,
    id: &str,
    token: &str,
    now_ms: i64,
    result_json: &str,
    result_ttl_ms: u64,
    events_maxlen: u64,
) -> Result<()> {
    let code: i64 = COMPLETE
        .key(k.task(id))
        .key(k.leases())
        .key(k.events())
        .arg(id)
        .arg(token)
        .arg(now_ms)
        .arg(result_json)
        .arg(result_ttl_ms)
        .arg(events_maxlen)
        .arg(k.done_channel(id))
        .invoke_async(conn)
        .await?;
    QueueError::from_script_code(code).map(drop)
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
pub async fn fail(
    conn: &mut impl ConnectionLike,
    k: &Keys,
    now_ms: i64,
    result_ttl_ms: u64,
    events_maxlen: u64,
    a: &FailArgs<'_>,
) -> Result<bool> {
    let code: i64 = FAIL
        .key(k.task(a.id))
        .key(k.leases())
        .key(k.delayed(a.queue))
        .key(k.wake(a.queue))
        .key(k.events())
        .arg(a.id)
        .arg(a.token)
        .arg(now_ms)
        .arg(a.error_json)
        .arg(a.traceback)
        .arg(a.retry_at_ms.unwrap_or(-1))
        .arg(result_ttl_ms)
        .arg(events_maxlen)
        .arg(k.done_channel(a.id))
        .invoke_async(conn)
        .await?;
    QueueError::from_script_code(code).map(|c| c == 2)
}

/// Runs `release.lua` (hand a claimed task back on shutdown).
pub async fn release(
    conn: &mut impl ConnectionLike,
    k: &Keys,
    id: &str,
    token: &str,
    queue: &str,
    now_ms: i64,
    events_maxlen: u64,
) -> Result<()> {
    let code: i64 = RELEASE
        .key(k.task(id))
        .key(k.leases())
        .key(k.queue(queue))
        .key(k.wake(queue))
        .key(k.events())
        .arg(id)
        .arg(token)
        .arg(now_ms)
        .arg(events_maxlen)
        .invoke_async(conn)
        .await?;
    QueueError::from_script_code(code).map(drop)
}

/// Runs `reap.lua`: returns (requeued, dead-lettered).
#[allow(clippy::too_many_arguments)]
pub async fn reap(
    conn: &mut impl ConnectionLike,
    k: &Keys,
    now_ms: i64,
    limit: usize,
    max_lost_deliveries: u32,
    result_ttl_ms: u64,
    events_maxlen: u64,
) -> Result<(u64, u64)> {
    Ok(REAP
        .key(k.leases())
        .key(k.events())
        .key(k.dead_letter())
        .arg(now_ms)
        .arg(limit)
        .arg(k.task_prefix())
        .arg(k.queue_prefix())
        .arg(k.wake_prefix())
        .arg(max_lost_deliveries)
        .arg(result_ttl_ms)
        .arg(events_maxlen)
        .arg(k.done_channel_prefix())
        .invoke_async(conn)
        .await?)
}
