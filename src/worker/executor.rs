//! Runs one claimed task and records its outcome.

use std::{panic::AssertUnwindSafe, time::Duration};

use futures_util::FutureExt;
use rand::Rng;
use tokio_util::sync::CancellationToken;

use super::registry::{Registry, TaskContext, TaskError, TaskErrorKind};
use crate::{
    error::QueueError,
    queue::{Failure, Queue},
    task::{ClaimedTask, now_ms},
};

/// Longest wait between two retries (Celery's `retry_backoff_max` default).
const RETRY_BACKOFF_MAX: Duration = Duration::from_secs(600);

/// What became of a task.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Recorded SUCCESS.
    Succeeded,
    /// Recorded a failed attempt with a retry scheduled.
    Retrying,
    /// Recorded FAILURE.
    Failed,
    /// The lease was taken away: another worker owns the task, this result was dropped.
    LeaseLost,
    /// Redis could not be reached in time to record the outcome; the lease will
    /// expire and the task run again.
    Unrecorded,
}

/// Runs `task` and records the outcome under its lease.
#[tracing::instrument(skip_all, fields(task_id = %task.id, name = %task.name, attempt = task.attempts))]
pub async fn execute(
    queue: &Queue,
    registry: &Registry,
    task: &ClaimedTask,
    cancel: CancellationToken,
) -> Outcome {
    let ctx = TaskContext::new(task.id, task.name.clone(), task.attempts, cancel);
    let result = match registry.call(&task.name, ctx, task.args.clone()) {
        Some(fut) => AssertUnwindSafe(fut)
            .catch_unwind()
            .await
            .unwrap_or_else(|panic| {
                Err(TaskError::new(
                    "Panic",
                    anyhow::anyhow!("{}", panic_message(&panic)),
                ))
            }),
        None => Err(TaskError::fatal(
            "NotRegistered",
            anyhow::anyhow!("task {:?} is not registered in this worker", task.name),
        )),
    };
    let deadline = tokio::time::Instant::now() + queue.config().lease;
    let mut delay = Duration::from_millis(50);
    loop {
        let recorded = match &result {
            Ok(value) => queue
                .complete(task, value)
                .await
                .map(|()| Outcome::Succeeded),
            Err(error) => {
                let retry_at = retry_at_ms(task, error);
                let failure = Failure {
                    exc_type: error.exc_type().to_owned(),
                    message: error.message(),
                    traceback: error.traceback(),
                };
                queue.fail(task, &failure, retry_at).await.map(|retrying| {
                    if retrying {
                        Outcome::Retrying
                    } else {
                        Outcome::Failed
                    }
                })
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

/// When to retry a failed attempt, or `None` for a final failure: retryable
/// errors retry while the budget lasts, after the requested delay or an
/// exponential backoff (1 s, 2 s, 4 s, … capped) with jitter.
fn retry_at_ms(task: &ClaimedTask, error: &TaskError) -> Option<i64> {
    if error.kind() != TaskErrorKind::Retryable || task.retries >= task.max_retries {
        return None;
    }
    let delay = error.requested_delay().unwrap_or_else(|| {
        let full = Duration::from_secs(1u64 << task.retries.min(20)).min(RETRY_BACKOFF_MAX);
        // Equal jitter: half fixed, half random, so retries of a burst spread out.
        full / 2 + full.mul_f64(rand::rng().random::<f64>() / 2.0)
    });
    Some(now_ms() + delay.as_millis() as i64)
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "task panicked".to_owned())
}
