//! The worker's side of a task's life: claim under a lease, heartbeat, then
//! complete, fail (retry) or release; the reaper returns expired leases.

use std::time::Duration;

use serde_json::Value;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{Queue, parse_id};
pub use crate::redis::scripts::{COMPLETE_BATCH_MAX, Completion};
use crate::{
    error::{QueueError, Result},
    model::{ClaimedTask, TaskOptions, now_ms},
    redis::scripts::{self, ClaimArgs, Ctx, FailArgs},
};

/// How long a worker asks for a lost claim's receipt while Redis does not answer:
/// under the consume loop's liveness limit (30 s), which waits meanwhile.
const RECEIPT_PATIENCE: Duration = Duration::from_secs(20);

/// The outcome of a claim.
#[derive(Debug, Default)]
pub struct Claim {
    /// Tasks now leased to the caller.
    pub tasks: Vec<ClaimedTask>,
    /// When the earliest delayed task of these queues is due (ms), if any.
    pub next_due_ms: Option<i64>,
}

/// A task's failure as stored: `result` gets `{"exc_type", "exc_message"}`.
#[derive(Clone, Debug)]
pub struct Failure {
    /// Kind of error, like an exception class name (`TaskError`, `TimeLimitExceeded`, …).
    pub exc_type: String,
    /// Its message.
    pub message: String,
    /// The error chain, outermost first.
    pub traceback: String,
}

impl Queue {
    /// Claims up to `max` ready tasks of `queues` (in order of preference) for `worker`,
    /// promoting due delayed tasks first.
    pub async fn claim(&self, queues: &[String], max: usize, worker: &str) -> Result<Claim> {
        Ok(self.complete_and_claim(&[], queues, max, worker, None).await?.1)
    }

    /// Records the successes `done` (at most [`COMPLETE_BATCH_MAX`]; each answer,
    /// in order, is what [`Queue::complete`] says for that task), then claims up
    /// to `max` tasks as [`Queue::claim`] does: one script call, so a busy worker's
    /// finished tasks and the next ones for their slots share one round trip.
    /// When the call's answer is lost, its receipt is asked for until `stop` (if
    /// any) is cancelled: a worker shutting down during an outage does not wait it out.
    pub async fn complete_and_claim(
        &self,
        done: &[Completion<'_>],
        queues: &[String],
        max: usize,
        worker: &str,
        stop: Option<&CancellationToken>,
    ) -> Result<(Vec<Result<()>>, Claim)> {
        let token_base = Uuid::new_v4().simple().to_string();
        // Nothing to claim: no queue is read (and no other worker woken).
        let queues = if max == 0 { &[] } else { queues };
        let args = ClaimArgs {
            queues,
            max,
            lease_ms: self.lease_ms(),
            worker,
            token_base: &token_base,
        };
        let ctx = self.ctx();
        let claimed = match scripts::claim(&mut self.conn().await?, &ctx, done, &args).await {
            Ok(claimed) => claimed,
            // The call may have run with its answer lost: ask Redis what it did.
            Err(e) if e.answer_lost() => {
                let receipt = self.claim_receipt(&ctx, done, &args, e.clone());
                match stop {
                    // Given up, the call's tasks wait out their lease (the reaper returns them).
                    Some(stop) => stop.run_until_cancelled(receipt).await.unwrap_or(Err(e))?,
                    None => receipt.await?,
                }
            }
            Err(e) => return Err(e),
        };
        let tasks = claimed
            .rows
            .into_iter()
            .map(
                |(id, token, name, args, queue, attempts, retries, max_retries, options)| {
                    Ok(ClaimedTask {
                        id: parse_id(&id)?,
                        token,
                        name,
                        args: serde_json::from_str(&args).unwrap_or(Value::Null),
                        queue,
                        attempts,
                        retries,
                        max_retries,
                        options: TaskOptions::from_stored(&options),
                    })
                },
            )
            .collect::<Result<_>>()?;
        let next_due = claimed.next_due_ms;
        let claim = Claim {
            tasks,
            next_due_ms: (next_due >= 0).then_some(next_due),
        };
        Ok((claimed.completed, claim))
    }

    /// What a claim call whose answer was lost (`error`) did, as its answer: the
    /// tasks it leased, and `Ok` for each success it recorded (`error` for the
    /// others, which the executors record again). Asked until Redis answers, for
    /// at most [`RECEIPT_PATIENCE`] (and the leases' duration: the reaper returns
    /// them after that); when the call did nothing, `error` is the answer. Without
    /// this, the tasks a lost answer leased would wait out their lease.
    async fn claim_receipt(
        &self,
        ctx: &Ctx<'_>,
        done: &[Completion<'_>],
        args: &ClaimArgs<'_>,
        error: QueueError,
    ) -> Result<scripts::Claimed> {
        let give_up = tokio::time::Instant::now() + self.config().lease.min(RECEIPT_PATIENCE);
        let mut pause = Duration::from_millis(50);
        let receipt = loop {
            match scripts::claim_receipt(&mut self.conn().await?, ctx, done, args, self.lease_ms()).await {
                Ok(receipt) => break receipt,
                Err(e) if e.is_unavailable() && tokio::time::Instant::now() + pause < give_up => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(1));
                }
                Err(_) => return Err(error),
            }
        };
        if receipt.rows.is_empty() && !receipt.recorded.contains(&true) {
            return Err(error);
        }
        tracing::info!(
            tasks = receipt.rows.len(),
            "a claim's answer was lost; its receipt says what it claimed"
        );
        Ok(scripts::Claimed {
            next_due_ms: -1,
            rows: receipt.rows,
            completed: receipt
                .recorded
                .into_iter()
                .map(|ok| if ok { Ok(()) } else { Err(error.clone()) })
                .collect(),
        })
    }

    /// Extends the leases of held tasks; returns the ids whose lease was lost and
    /// the ids whose cancellation was requested.
    pub async fn heartbeat(&self, held: &[(Uuid, String)]) -> Result<(Vec<Uuid>, Vec<Uuid>)> {
        if held.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let pairs: Vec<(String, String)> = held.iter().map(|(id, t)| (id.to_string(), t.clone())).collect();
        let (lost, cancelled) =
            scripts::heartbeat(&mut self.conn().await?, &self.ctx(), self.lease_ms(), &pairs).await?;
        let ids = |v: Vec<String>| v.iter().filter_map(|id| id.parse().ok()).collect();
        Ok((ids(lost), ids(cancelled)))
    }

    /// Records a task's success. `Err(LeaseLost)` when another worker owns it now.
    pub async fn complete(&self, task: &ClaimedTask, result: &Value) -> Result<()> {
        let (id, result) = (task.id.to_string(), result.to_string());
        let done = Completion {
            id: &id,
            token: &task.token,
            result_json: &result,
        };
        self.complete_many(&[done])
            .await?
            .pop()
            .expect("one answer per completion")
    }

    /// Records many successes, one script call per [`COMPLETE_BATCH_MAX`]; each
    /// answer, in order, is what [`Queue::complete`] says for that task.
    pub async fn complete_many(&self, batch: &[Completion<'_>]) -> Result<Vec<Result<()>>> {
        let mut answers = Vec::with_capacity(batch.len());
        for chunk in batch.chunks(COMPLETE_BATCH_MAX) {
            answers.extend(scripts::complete(&mut self.conn().await?, &self.ctx(), chunk).await?);
        }
        Ok(answers)
    }

    /// Records a failed attempt: a retry at `retry_at_ms`, or a final failure when `None`.
    /// Returns true when a retry was scheduled.
    pub async fn fail(&self, task: &ClaimedTask, failure: &Failure, retry_at_ms: Option<i64>) -> Result<bool> {
        let error = serde_json::json!({"exc_type": failure.exc_type, "exc_message": failure.message});
        let args = FailArgs {
            id: &task.id.to_string(),
            token: &task.token,
            queue: &task.queue,
            error_json: &error.to_string(),
            traceback: &failure.traceback,
            retry_at_ms,
        };
        scripts::fail(&mut self.conn().await?, &self.ctx(), &args).await
    }

    /// Hands a claimed task back to the front of its queue (graceful shutdown).
    pub async fn release(&self, task: &ClaimedTask) -> Result<()> {
        self.release_after(task, std::time::Duration::ZERO).await
    }

    /// Hands a claimed task back, to be claimed again after `delay` (by any worker).
    pub async fn release_after(&self, task: &ClaimedTask, delay: std::time::Duration) -> Result<()> {
        let id = task.id.to_string();
        let ctx = self.ctx();
        let due = if delay.is_zero() {
            0
        } else {
            ctx.now_ms + delay.as_millis() as i64
        };
        scripts::release(&mut self.conn().await?, &ctx, &id, &task.token, due).await
    }

    /// Returns tasks with expired leases to their queues; returns (requeued, dead-lettered).
    pub async fn reap(&self) -> Result<(u64, u64)> {
        self.reap_at(now_ms()).await
    }

    /// [`Queue::reap`] as if the time were `now_ms` (tests move time forward this way).
    pub async fn reap_at(&self, now_ms: i64) -> Result<(u64, u64)> {
        scripts::reap(
            &mut self.conn().await?,
            &self.ctx_at(now_ms),
            1000,
            self.cfg.max_lost_deliveries,
        )
        .await
    }
}
