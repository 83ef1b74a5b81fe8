//! Scripts that create tasks: one (`enqueue`), a batch (`enqueue_batch`, all or
//! nothing) and a workflow's members (`workflow`).

use std::sync::LazyLock;

use redis::{Script, aio::ConnectionLike};

use super::Ctx;
use crate::{
    error::{QueueError, Result},
    redis::invocation::Invocation,
};

static ENQUEUE: LazyLock<Script> = script!("enqueue.lua");
static WORKFLOW: LazyLock<Script> = script!("workflow.lua");
static ENQUEUE_BATCH: LazyLock<Script> = script!("enqueue_batch.lua");

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

/// What became of a batch.
#[derive(Debug, PartialEq, Eq)]
pub enum BatchEnqueued {
    /// Every task was created.
    Created,
    /// A batch with the same idempotency key was accepted before: its tasks' ids.
    Existing(Vec<String>),
    /// A task's name is not registered (the name, its index in the batch): nothing was created.
    UnknownName(String, usize),
}

/// Runs `enqueue_batch.lua`: `tasks` with their due times (ms, 0: now), all
/// or nothing, at most once per `idempotency_key` (kept for the result TTL).
pub async fn enqueue_batch(
    conn: &mut impl ConnectionLike,
    ctx: &Ctx<'_>,
    tasks: &[(TaskSpec<'_>, i64)],
    idempotency_key: Option<&str>,
) -> Result<BatchEnqueued> {
    let k = ctx.keys;
    let mut inv = Invocation::new(&ENQUEUE_BATCH);
    inv.key(k.queues())
        .key(k.task_names())
        .key(k.task_defaults())
        .key(k.seq())
        .key(k.events())
        .key(idempotency_key.map_or_else(|| k.queues(), |i| k.batch_idempotency(i)));
    for (t, _) in tasks {
        inv.key(k.task(t.id));
    }
    inv.arg(ctx.now_ms)
        .arg(ctx.events_maxlen)
        .arg(k.index_prefix())
        .arg(k.queue_prefix())
        .arg(k.delayed_prefix())
        .arg(k.wake_prefix())
        .arg(idempotency_key.unwrap_or(""))
        .arg(k.task_prefix())
        .arg(ctx.result_ttl_ms);
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
    let (c, detail, index): (i64, String, usize) = inv.invoke_async(conn).await?;
    match c {
        -5 => Ok(BatchEnqueued::UnknownName(detail, index)),
        3 => Ok(BatchEnqueued::Existing(detail.split(',').map(str::to_owned).collect())),
        c => QueueError::from_script_code(c, &detail).map(|_| BatchEnqueued::Created),
    }
}
