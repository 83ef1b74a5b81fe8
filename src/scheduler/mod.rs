//! The scheduler: fires periodic tasks exactly once, from any number of processes.
//!
//! Every scheduler process runs [`run`]: it takes part in the leader election
//! ([`leader`]), and while it leads it fires the schedules that are due
//! ([`store::fire`], one script per due time that checks the fencing token and
//! that the due time is still pending), then sleeps until the earliest next due
//! time, the next lease renewal, or a change notification (pub/sub on
//! [`Keys::schedules_channel`], published by every save and delete), whichever
//! comes first. It never polls Redis for due work.
//!
//! Missed due times (found later than `misfire_grace`): `skip` advances to the
//! first due time after now without firing; `catch_up` fires one run for the
//! missed period, then continues from now.
//!
//! [`Keys::schedules_channel`]: crate::redis::keys::Keys::schedules_channel

pub mod file;
pub mod leader;
pub mod store;

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    config::{EngineConfig, SchedulerConfig},
    error::QueueError,
    model::now_ms,
    model::schedule::Missed,
    queue::Queue,
};
use leader::{Elector, Role};
use store::{Fire, FireMode, Fired};

/// Why the scheduler could not start.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    /// Redis client setup failed.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Most schedules handled per round of firing (keeps each round short).
const DUE_BATCH: usize = 100;
/// Rounds of firing before the loop renews its lease again.
const MAX_ROUNDS: usize = 20;

/// Runs a scheduler process over its own connection until `shutdown` fires.
pub async fn run_standalone(
    cfg: SchedulerConfig,
    engine: EngineConfig,
    shutdown: CancellationToken,
) -> Result<(), SchedulerError> {
    cfg.validate()?;
    let queue = Queue::connect(&cfg.redis, engine)?;
    run(queue, cfg, shutdown).await
}

/// Runs the scheduler on `queue` until `shutdown` fires; a leader gives up its
/// leadership when it stops.
pub async fn run(queue: Queue, cfg: SchedulerConfig, shutdown: CancellationToken) -> Result<(), SchedulerError> {
    cfg.validate()?;
    let changed = Arc::new(Notify::new());
    tokio::spawn(listen_for_changes(
        crate::redis::connect::client(&cfg.redis)?,
        queue.keys().schedules_channel(),
        changed.clone(),
        shutdown.clone(),
    ));
    if let Some(path) = cfg.file.clone() {
        file::watch(queue.clone(), path, shutdown.clone()).await;
    }
    let mut elector = Elector::new(cfg.name.clone(), cfg.lease);
    let grace_ms = cfg.misfire_grace.as_millis() as i64;
    let mut leading = None;
    while !shutdown.is_cancelled() {
        let wait = match elector.step(&queue).await {
            Ok(Role::Leader(token)) => {
                leading = Some(token);
                match fire_due(&queue, token, grace_ms).await {
                    Ok(Some(next)) => elector
                        .renew_every()
                        .min(Duration::from_millis((next - now_ms()).max(0) as u64)),
                    Ok(None) => elector.renew_every(),
                    Err(FireError::Stale) => {
                        elector.lost();
                        leading = None;
                        elector.renew_every()
                    }
                    Err(FireError::Queue(e)) => {
                        tracing::warn!(error.cause_chain = ?e, error.message = %e, "firing schedules failed");
                        Duration::from_millis(500)
                    }
                }
            }
            Ok(Role::Standby(wait)) => {
                leading = None;
                wait
            }
            Err(e) => {
                tracing::warn!(error.cause_chain = ?e, error.message = %e, "scheduler election failed");
                Duration::from_millis(500)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => break,
            () = changed.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
    if leading.is_some()
        && let Err(e) = elector.release(&queue).await
    {
        tracing::warn!(error.message = %e, "could not give up the scheduler leadership");
    }
    Ok(())
}

enum FireError {
    Stale,
    Queue(QueueError),
}

impl From<QueueError> for FireError {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

/// Fires every due schedule; returns the earliest next due time (ms).
async fn fire_due(queue: &Queue, token: u64, grace_ms: i64) -> Result<Option<i64>, FireError> {
    let keys = queue.keys();
    let mut conn = queue.connection();
    let maxlen = queue.config().events_maxlen;
    for _ in 0..MAX_ROUNDS {
        let now = now_ms();
        let names = store::due(&mut conn, keys, now, DUE_BATCH).await?;
        if names.is_empty() {
            break;
        }
        for name in names {
            let rec = match store::get(&mut conn, keys, &name).await {
                Ok(Some(rec)) => rec,
                Ok(None) => continue,
                Err(QueueError::Corrupt(why)) => {
                    tracing::error!(schedule = %name, why, "unreadable schedule; it is not fired");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let Some(due) = rec.next_run_at else { continue };
            let now_t = DateTime::<Utc>::from_timestamp_millis(now).unwrap_or_else(Utc::now);
            let late = now - due.timestamp_millis() > grace_ms;
            let (mode, next) = match (late, rec.schedule.missed) {
                (false, _) => (FireMode::Due, rec.schedule.next_after(due)),
                (true, Missed::Skip) => (FireMode::Skip, rec.schedule.next_after(now_t)),
                (true, Missed::CatchUp) => (FireMode::Due, rec.schedule.next_after(now_t)),
            };
            let fire = Fire {
                schedule: &rec.schedule,
                mode,
                token,
                version: rec.version,
                due,
                next,
                now_ms: now,
            };
            match store::fire(&mut conn, keys, maxlen, &fire).await? {
                Fired::Fired { task_id, runs } => {
                    tracing::info!(schedule = %name, %task_id, runs, due_at = %due, "schedule fired");
                }
                Fired::Skipped => tracing::info!(schedule = %name, due_at = %due, "missed due time skipped"),
                Fired::Stale => return Err(FireError::Stale),
                // Saved, deleted or fired meanwhile: the next round reads it again.
                Fired::NotFound | Fired::Changed | Fired::NotPending => {}
            }
        }
    }
    let next = store::next_due_ms(&mut conn, keys).await?;
    // A schedule that stays due (unreadable) must not turn the loop into a busy one.
    let now = now_ms();
    Ok(next.map(|n| if n <= now { now + 200 } else { n }))
}

/// Wakes the loop whenever a schedule is saved or deleted. One pub/sub
/// connection per process; when it drops, the loop still wakes at each lease
/// renewal, and the listener connects again.
async fn listen_for_changes(client: redis::Client, channel: String, changed: Arc<Notify>, shutdown: CancellationToken) {
    while !shutdown.is_cancelled() {
        match client.get_async_pubsub().await {
            Ok(mut pubsub) => {
                if pubsub.subscribe(&channel).await.is_ok() {
                    // Anything saved while not subscribed is read now.
                    changed.notify_one();
                    let mut messages = pubsub.on_message();
                    loop {
                        tokio::select! {
                            () = shutdown.cancelled() => return,
                            msg = messages.next() => match msg {
                                Some(_) => changed.notify_one(),
                                None => break,
                            },
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error.message = %e, "schedule change listener cannot connect"),
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}
