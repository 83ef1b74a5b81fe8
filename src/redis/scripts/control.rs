//! Scripts that steer a task from outside its worker: cancel, resubmit, forget,
//! pause and resume, progress, a completion callback's state, and a queue's purge.

use std::sync::LazyLock;

use redis::{Script, aio::ConnectionLike};

use super::{Ctx, code};
use crate::{error::Result, redis::invocation::Invocation};

static CANCEL: LazyLock<Script> = script!("cancel.lua");
static RESUBMIT: LazyLock<Script> = script!("resubmit.lua");
static FORGET: LazyLock<Script> = script!("forget.lua");
static PROGRESS: LazyLock<Script> = script!("progress.lua");
static CALLBACK_STATUS: LazyLock<Script> = script!("callback_status.lua");
static PAUSE: LazyLock<Script> = script!("pause.lua");
static RESUME: LazyLock<Script> = script!("resume.lua");
static PURGE: LazyLock<Script> = script!("purge.lua");

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

/// Runs `callback_status.lua`: records a task's callback state (JSON).
pub async fn callback_status(conn: &mut impl ConnectionLike, ctx: &Ctx<'_>, id: &str, state_json: &str) -> Result<()> {
    let mut inv = Invocation::new(&CALLBACK_STATUS);
    inv.key(ctx.keys.task(id)).arg(state_json);
    code(inv.invoke_async(conn).await?).map(drop)
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
