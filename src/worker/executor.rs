//! Runs one claimed task under its time limits and records its outcome.

use std::{future::Future, panic::AssertUnwindSafe, pin::pin, time::Duration};

use futures_util::FutureExt;
use rand::Rng;
use tokio::sync::OwnedSemaphorePermit;
use tokio_util::sync::CancellationToken;

use super::recorder::Recorder;
use crate::tasks::{Registry, TaskContext, TaskError, TaskErrorKind, TaskResult};
use crate::{
    error::QueueError,
    model::{ClaimedTask, TaskOptions, now_ms},
    queue::{Failure, Queue},
};

/// Default base of the exponential retry delay.
const RETRY_BACKOFF: f64 = 1.0;
/// Default cap of the retry delay (Celery's `retry_backoff_max`).
const RETRY_BACKOFF_MAX: f64 = 600.0;

/// How long a task this worker cannot run waits before it is offered again.
const NOT_REGISTERED_DELAY: Duration = Duration::from_secs(1);

/// Longest retry delay whatever the options say (a year).
const MAX_RETRY_DELAY: Duration = Duration::from_secs(365 * 24 * 3600);

/// What became of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded SUCCESS (or REVOKED, when it was cancelled while running).
    Succeeded,
    /// Recorded a failed attempt with a retry scheduled.
    Retrying,
    /// Recorded FAILURE (or REVOKED).
    Failed,
    /// The lease was taken away: another worker owns the task, this result was dropped.
    LeaseLost,
    /// Redis could not be reached in time to record the outcome; the lease will
    /// expire and the task run again.
    Unrecorded,
    /// This worker does not have the task: it went back to its queue for another worker.
    HandedBack,
}

/// Runs `task` and records the outcome under its lease.
///
/// The task sees one cancellation signal (`ctx.cancellation()`), fired by its
/// soft time limit or by `revoke` (cancelled through the API, or lease lost).
/// After `revoke`, it has `cancel_grace` to stop before it is aborted; at its
/// hard time limit it is aborted and fails with `TimeLimitExceeded`.
#[tracing::instrument(skip_all, fields(task_id = %task.id, name = %task.name, attempt = task.attempts))]
pub async fn execute(
    queue: &Queue,
    recorder: &Recorder,
    registry: &Registry,
    task: &ClaimedTask,
    revoke: CancellationToken,
    cancel_grace: Duration,
    slot: OwnedSemaphorePermit,
) -> Outcome {
    let signal = CancellationToken::new();
    let ctx = TaskContext::new(task, signal.clone(), queue.clone());
    let Some(fut) = registry.call(&task.name, ctx, task.args.clone()) else {
        // Another worker on this queue registered it: hand it back for one of them.
        tracing::warn!("task is not registered in this worker; handing it back");
        return match queue.release_after(task, NOT_REGISTERED_DELAY).await {
            Ok(()) => Outcome::HandedBack,
            Err(_) => Outcome::Unrecorded,
        };
    };
    let result = run_limited(fut, &task.options, &signal, &revoke, cancel_grace).await;
    record(queue, recorder, task, result, slot).await
}

async fn run_limited(
    fut: impl Future<Output = TaskResult>,
    options: &TaskOptions,
    signal: &CancellationToken,
    revoke: &CancellationToken,
    cancel_grace: Duration,
) -> TaskResult {
    let mut run = pin!(AssertUnwindSafe(fut).catch_unwind());
    let mut soft = pin!(sleep_secs(options.soft_time_limit));
    let mut hard = pin!(sleep_secs(options.time_limit));
    let mut revoked = pin!(async {
        revoke.cancelled().await;
        signal.cancel();
        tokio::time::sleep(cancel_grace).await;
    });
    let mut soft_fired = false;
    loop {
        tokio::select! {
            r = &mut run => {
                let r = r.unwrap_or_else(|panic| Err(TaskError::new("Panic", anyhow::anyhow!("{}", panic_message(&panic)))));
                return match r {
                    Err(e) if soft_fired && e.kind() != TaskErrorKind::Timeout => Err(TaskError::timeout_soft(e)),
                    r => r,
                };
            }
            () = &mut soft, if !soft_fired => {
                soft_fired = true;
                signal.cancel();
            }
            () = &mut hard => {
                return Err(TaskError::timeout(format!(
                    "hard time limit ({}s) exceeded",
                    options.time_limit.unwrap_or_default()
                )));
            }
            () = &mut revoked => {
                return Err(TaskError::fatal(
                    "TaskRevokedError",
                    anyhow::anyhow!("aborted: did not stop within {cancel_grace:?} of its cancellation"),
                ));
            }
        }
    }
}

async fn sleep_secs(secs: Option<f64>) {
    match secs.filter(|s| s.is_finite() && *s > 0.0) {
        Some(s) => tokio::time::sleep(Duration::try_from_secs_f64(s).unwrap_or(Duration::MAX)).await,
        None => std::future::pending().await,
    }
}

/// Records the outcome, retrying while Redis is unreachable (up to a lease).
/// Successes go through the worker's group commit, which hands the task's slot
/// to the next task it claims; failures go one by one (rare), and free the slot
/// when they are recorded.
async fn record(
    queue: &Queue,
    recorder: &Recorder,
    task: &ClaimedTask,
    result: TaskResult,
    slot: OwnedSemaphorePermit,
) -> Outcome {
    let mut slot = Some(slot);
    let deadline = tokio::time::Instant::now() + queue.config().lease;
    let mut delay = Duration::from_millis(50);
    loop {
        let recorded = match &result {
            Ok(value) => recorder
                .complete(task.id.to_string(), task.token.clone(), value.to_string(), slot.take())
                .await
                .map(|()| Outcome::Succeeded),
            Err(error) => {
                let retry_at = retry_at_ms(task, error);
                let failure = Failure {
                    exc_type: error.exc_type().to_owned(),
                    message: error.message(),
                    traceback: error.traceback(),
                };
                queue
                    .fail(task, &failure, retry_at)
                    .await
                    .map(|retrying| if retrying { Outcome::Retrying } else { Outcome::Failed })
            }
        };
        match recorded {
            Ok(outcome) => {
                tracing::debug!(?outcome, "task finished");
                return outcome;
            }
            Err(QueueError::LeaseLost | QueueError::NotRunning | QueueError::NotFound) => {
                tracing::warn!("lease lost before the outcome was recorded; result dropped");
                return Outcome::LeaseLost;
            }
            Err(e) if e.is_unavailable() && tokio::time::Instant::now() + delay < deadline => {
                tracing::warn!(error.message = %e, "cannot record outcome yet, retrying");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(e) => {
                tracing::error!(error.cause_chain = ?e, error.message = %e, "cannot record outcome");
                return Outcome::Unrecorded;
            }
        }
    }
}

/// When to retry a failed attempt, or `None` for a final failure.
///
/// Retried while the budget lasts: errors whose kind is in `retry_on` when it is
/// given, otherwise every retryable error (not fatal ones, not time limits).
/// The delay is the one the error asked for, else `retry_backoff · 2^retries`
/// capped at `retry_backoff_max`, with equal jitter (half fixed, half random).
fn retry_at_ms(task: &ClaimedTask, error: &TaskError) -> Option<i64> {
    let o = &task.options;
    let retryable = match &o.retry_on {
        Some(kinds) => kinds.iter().any(|k| k == error.exc_type()),
        None => error.kind() == TaskErrorKind::Retryable,
    };
    if !retryable || error.kind() == TaskErrorKind::Fatal || task.retries >= task.max_retries {
        return None;
    }
    let delay = error.requested_delay().unwrap_or_else(|| {
        let base = o.retry_backoff.unwrap_or(RETRY_BACKOFF).max(0.0);
        let cap = o.retry_backoff_max.unwrap_or(RETRY_BACKOFF_MAX).max(0.0);
        let full = (base * 2f64.powi(task.retries.min(30) as i32)).min(cap);
        let secs = if o.retry_jitter.unwrap_or(true) {
            full / 2.0 + full / 2.0 * rand::rng().random::<f64>()
        } else {
            full
        };
        Duration::try_from_secs_f64(secs).unwrap_or(MAX_RETRY_DELAY)
    });
    let delay = delay.min(MAX_RETRY_DELAY);
    Some(now_ms() + delay.as_millis() as i64)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "task panicked".to_owned())
}
