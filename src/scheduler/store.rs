//! The schedules' Redis side: one typed function per script (`schedule_save`,
//! `schedule_delete`, `schedule_fire`) and the plain reads of schedules (the
//! leadership's are in `leader.rs`). The scripts are self-contained (no shared prelude);
//! `redis/scripts`' expansion test checks that they stay so.
//!
//! A schedule is the HASH `{ns}:schedule:<name>` (see [`Keys::schedule`]) and one
//! member of the ZSET `{ns}:schedules`, scored by its next run (`+inf` while
//! paused or ended), which is both the listing and the leader's to-do list.

use std::{collections::HashMap, sync::LazyLock};

use chrono::{DateTime, Utc};
use redis::{Script, aio::ConnectionLike};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::{
    error::{QueueError, Result},
    model::schedule::Schedule,
    redis::{invocation::Invocation, keys::Keys},
};

static SCHEDULE_SAVE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../redis/lua/schedule_save.lua")));
static SCHEDULE_DELETE: LazyLock<Script> =
    LazyLock::new(|| Script::new(include_str!("../redis/lua/schedule_delete.lua")));
static SCHEDULE_FIRE: LazyLock<Script> = LazyLock::new(|| Script::new(include_str!("../redis/lua/schedule_fire.lua")));

/// A schedule as stored: its definition and its run history.
#[derive(Clone, Debug, PartialEq)]
pub struct ScheduleRecord {
    /// The definition.
    pub schedule: Schedule,
    /// Bumped by every save; a fire computed from an older version is refused.
    pub version: i64,
    /// The pending due time; `None` while paused or after `end_at`.
    pub next_run_at: Option<DateTime<Utc>>,
    /// When the latest run was enqueued.
    pub last_run_at: Option<DateTime<Utc>>,
    /// The due time of the latest run.
    pub last_due_at: Option<DateTime<Utc>>,
    /// The task of the latest run.
    pub last_task_id: Option<Uuid>,
    /// Runs fired so far (manual runs included).
    pub runs: u64,
    /// Creation time.
    pub created_at: Option<DateTime<Utc>>,
    /// Time of the latest change of the definition.
    pub updated_at: Option<DateTime<Utc>>,
}

impl ScheduleRecord {
    fn from_hash(mut h: HashMap<String, String>) -> Result<Self> {
        let mut take = |k: &str| h.remove(k).filter(|v| !v.is_empty());
        let time = |v: Option<String>| {
            v.and_then(|s| s.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis)
        };
        let def = take("def").ok_or_else(|| QueueError::Corrupt("schedule without a definition".into()))?;
        let schedule =
            serde_json::from_str(&def).map_err(|e| QueueError::Corrupt(format!("schedule definition: {e}")))?;
        Ok(Self {
            schedule,
            version: take("version").and_then(|v| v.parse().ok()).unwrap_or(0),
            next_run_at: time(take("next_run_at")),
            last_run_at: time(take("last_run_at")),
            last_due_at: time(take("last_due_at")),
            last_task_id: take("last_task_id").and_then(|v| v.parse().ok()),
            runs: take("runs").and_then(|v| v.parse().ok()).unwrap_or(0),
            created_at: time(take("created_at")),
            updated_at: time(take("updated_at")),
        })
    }
}

/// The pending due time of a schedule saved at `now`: none while paused.
pub fn initial_next_run(s: &Schedule, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    if s.paused { None } else { s.next_after(now) }
}

fn ms(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(String::new, |t| t.timestamp_millis().to_string())
}

/// What `schedule_save` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Saved {
    /// A new schedule.
    Created,
    /// The definition was replaced.
    Replaced,
    /// The same definition was stored already: nothing changed.
    Unchanged,
    /// Create only, and the name exists.
    Exists,
}

/// Runs `schedule_save.lua`: stores `s` with its pending due time `next`.
pub async fn save(
    conn: &mut impl ConnectionLike,
    keys: &Keys,
    s: &Schedule,
    next: Option<DateTime<Utc>>,
    now_ms: i64,
    create_only: bool,
) -> Result<Saved> {
    let def = serde_json::to_string(s).map_err(|e| QueueError::Corrupt(e.to_string()))?;
    let code: i64 = Invocation::new(&SCHEDULE_SAVE)
        .key(keys.schedule(&s.name))
        .key(keys.schedules())
        .arg(&s.name)
        .arg(def)
        .arg(ms(next))
        .arg(now_ms)
        .arg(if create_only { "1" } else { "0" })
        .arg(keys.schedules_channel())
        .invoke_async(conn)
        .await?;
    match code {
        1 => Ok(Saved::Created),
        2 => Ok(Saved::Replaced),
        0 => Ok(Saved::Unchanged),
        -4 => Ok(Saved::Exists),
        c => Err(QueueError::UnexpectedReply(c)),
    }
}

/// Runs `schedule_delete.lua`; false when there was no such schedule.
pub async fn delete(conn: &mut impl ConnectionLike, keys: &Keys, name: &str) -> Result<bool> {
    let code: i64 = Invocation::new(&SCHEDULE_DELETE)
        .key(keys.schedule(name))
        .key(keys.schedules())
        .arg(name)
        .arg(keys.schedules_channel())
        .invoke_async(conn)
        .await?;
    Ok(code == 1)
}

/// Reads one schedule.
pub async fn get(conn: &mut impl ConnectionLike, keys: &Keys, name: &str) -> Result<Option<ScheduleRecord>> {
    let h: HashMap<String, String> = redis::cmd("HGETALL").arg(keys.schedule(name)).query_async(conn).await?;
    if h.is_empty() {
        return Ok(None);
    }
    ScheduleRecord::from_hash(h).map(Some)
}

/// Reads every schedule, by next run (paused and ended ones last), in one round trip
/// for the index and one pipeline for the records. Unreadable records are logged and left out.
pub async fn list(conn: &mut impl ConnectionLike, keys: &Keys) -> Result<Vec<ScheduleRecord>> {
    let names: Vec<String> = redis::cmd("ZRANGE")
        .arg(keys.schedules())
        .arg(0)
        .arg(-1)
        .query_async(conn)
        .await?;
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for n in &names {
        pipe.cmd("HGETALL").arg(keys.schedule(n));
    }
    let hashes: Vec<HashMap<String, String>> = pipe.query_async(conn).await?;
    Ok(hashes
        .into_iter()
        .filter(|h| !h.is_empty())
        .filter_map(|h| {
            ScheduleRecord::from_hash(h)
                .inspect_err(|e| tracing::error!(error.message = %e, "unreadable schedule"))
                .ok()
        })
        .collect())
}

/// Names of the schedules due at `now_ms` (at most `limit`), earliest first.
pub async fn due(conn: &mut impl ConnectionLike, keys: &Keys, now_ms: i64, limit: usize) -> Result<Vec<String>> {
    Ok(redis::cmd("ZRANGE")
        .arg(keys.schedules())
        .arg("-inf")
        .arg(now_ms)
        .arg("BYSCORE")
        .arg("LIMIT")
        .arg(0)
        .arg(limit)
        .query_async(conn)
        .await?)
}

/// The earliest pending due time of any schedule (ms), if any.
pub async fn next_due_ms(conn: &mut impl ConnectionLike, keys: &Keys) -> Result<Option<i64>> {
    let first: Vec<(String, f64)> = redis::cmd("ZRANGE")
        .arg(keys.schedules())
        .arg(0)
        .arg(0)
        .arg("WITHSCORES")
        .query_async(conn)
        .await?;
    Ok(first
        .first()
        .map(|(_, s)| *s)
        .filter(|s| s.is_finite())
        .map(|s| s as i64))
}

/// The statuses of tasks (`None` where the record expired), in one pipeline.
pub async fn task_statuses(conn: &mut impl ConnectionLike, keys: &Keys, ids: &[Uuid]) -> Result<Vec<Option<String>>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let mut pipe = redis::pipe();
    for id in ids {
        pipe.cmd("HGET").arg(keys.task(&id.to_string())).arg("status");
    }
    Ok(pipe.query_async(conn).await?)
}

/// How a fire call was meant.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FireMode {
    /// Fire the pending due time and advance (leader only).
    Due,
    /// Advance past a missed due time without firing (leader only).
    Skip,
    /// Fire one run now, outside the schedule (API).
    Manual,
}

/// One call of `schedule_fire`.
pub struct Fire<'a> {
    /// The schedule (its definition gives the task).
    pub schedule: &'a Schedule,
    /// What to do.
    pub mode: FireMode,
    /// The caller's fencing token (ignored for manual runs).
    pub token: u64,
    /// The version the caller read.
    pub version: i64,
    /// The due time fired (for manual runs: now).
    pub due: DateTime<Utc>,
    /// The due time after it; `None` when the schedule ends.
    pub next: Option<DateTime<Utc>>,
    /// The caller's clock.
    pub now_ms: i64,
}

/// What `schedule_fire` did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Fired {
    /// A task was enqueued; the schedule's run count is now `runs`.
    Fired {
        /// The task.
        task_id: Uuid,
        /// Runs so far.
        runs: u64,
    },
    /// Advanced without firing.
    Skipped,
    /// No such schedule.
    NotFound,
    /// The caller's fencing token is not the leader's: it fired nothing.
    Stale,
    /// The schedule was saved meanwhile: read it again.
    Changed,
    /// This due time is not pending any more (fired or skipped already).
    NotPending,
}

/// Runs `schedule_fire.lua`.
pub async fn fire(conn: &mut impl ConnectionLike, keys: &Keys, events_maxlen: u64, f: &Fire<'_>) -> Result<Fired> {
    let s = f.schedule;
    let id = Uuid::new_v4();
    let id_str = id.to_string();
    let record = json!({
        "name": s.task,
        "queue": s.queue,
        "args": s.args.to_string(),
        "created_at": f.now_ms.to_string(),
        "schedule": schedule_field(&s.name, f.due).to_string(),
    });
    let mode = match f.mode {
        FireMode::Due => "due",
        FireMode::Skip => "skip",
        FireMode::Manual => "manual",
    };
    let (code, runs): (i64, u64) = Invocation::new(&SCHEDULE_FIRE)
        .key(keys.scheduler_leader())
        .key(keys.schedule(&s.name))
        .key(keys.schedules())
        .key(keys.task(&id_str))
        .key(keys.queue(&s.queue))
        .key(keys.wake(&s.queue))
        .key(keys.queues())
        .key(keys.task_defaults())
        .key(keys.events())
        .key(keys.seq())
        .arg(&s.name)
        .arg(mode)
        .arg(f.token)
        .arg(f.version)
        .arg(f.due.timestamp_millis())
        .arg(ms(f.next))
        .arg(f.now_ms)
        .arg(&id_str)
        .arg(record.to_string())
        .arg(serde_json::to_string(&s.options).unwrap_or_else(|_| "{}".to_owned()))
        .arg(&s.task)
        .arg(&s.queue)
        .arg(events_maxlen)
        .arg(keys.index_prefix())
        .invoke_async(conn)
        .await?;
    match code {
        1 => Ok(Fired::Fired { task_id: id, runs }),
        2 => Ok(Fired::Skipped),
        -1 => Ok(Fired::NotFound),
        -3 => Ok(Fired::Stale),
        -5 => Ok(Fired::Changed),
        -6 => Ok(Fired::NotPending),
        c => Err(QueueError::UnexpectedReply(c)),
    }
}

/// The `schedule` field of a fired task's record, parsed.
pub fn schedule_field(name: &str, due: DateTime<Utc>) -> Value {
    json!({"name": name, "due_at": due.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)})
}
