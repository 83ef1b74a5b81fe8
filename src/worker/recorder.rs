//! Group commit of successes: the tasks that finish while a completion call is in
//! flight are recorded together by the next call. A busy worker pays the script's
//! fixed cost (dispatch, setup, the round trip) once per batch instead of once per
//! task; an idle one sends each completion at once and waits for nobody.
//!
//! The same call claims the next tasks for the slots the batch frees (`claim.lua`
//! records the successes, then claims): each success brings its slot along, and
//! the tasks claimed for those slots are handed to the consumer with them
//! ([`NextClaim`]). A busy worker so makes one call per batch instead of two.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::{
    error::{QueueError, Result},
    model::ClaimedTask,
    queue::{COMPLETE_BATCH_MAX, Claim, Completion, Queue},
};

/// A claimed task and the slot it runs in.
pub(super) type Handoff = (ClaimedTask, OwnedSemaphorePermit);

/// What the recorder needs to claim tasks for the slots its successes free.
pub(super) struct NextClaim {
    /// The worker's queues, in order of preference.
    pub queues: Vec<String>,
    /// The worker's name (its leases and listing index).
    pub worker: String,
    /// Cancelled when the worker stops claiming: successes then claim nothing.
    pub claiming: CancellationToken,
    /// Where the claimed tasks go, each with its slot.
    pub handoff: mpsc::UnboundedSender<Handoff>,
}

/// One success waiting to be recorded, the slot it frees, and who waits for the answer.
struct Pending {
    id: String,
    token: String,
    result_json: String,
    slot: Option<OwnedSemaphorePermit>,
    answer: oneshot::Sender<Result<()>>,
}

/// The executors' side: hands a success to the recorder and waits for its answer.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Recorder {
    /// Starts the recording loop on `queue`, claiming for freed slots when
    /// `next` says how; it ends when the last `Recorder` is dropped.
    pub(super) fn start(queue: Queue, next: Option<NextClaim>) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(record_loop(queue, next, rx));
        Self { tx }
    }

    /// Records a success: the answer [`Queue::complete`] would give, from a batch
    /// call. `slot`, the task's slot, goes to the task claimed for it, if any;
    /// otherwise it is freed once the call is answered.
    pub async fn complete(
        &self,
        id: String,
        token: String,
        result_json: String,
        slot: Option<OwnedSemaphorePermit>,
    ) -> Result<()> {
        let (answer, wait) = oneshot::channel();
        let pending = Pending {
            id,
            token,
            result_json,
            slot,
            answer,
        };
        if self.tx.send(pending).is_err() {
            return Err(stopped());
        }
        wait.await.unwrap_or_else(|_| Err(stopped()))
    }
}

/// The loop stopped (the runtime is shutting down): the caller's lease will expire.
fn stopped() -> QueueError {
    QueueError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "the completion recorder stopped",
    )))
}

/// Calls in flight at once: while Redis runs one batch, the next gathers and is
/// sent, so Redis is not left idle while the worker starts the tasks a call
/// claimed and they finish.
const CALLS_IN_FLIGHT: usize = 2;

async fn record_loop(queue: Queue, next: Option<NextClaim>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let next = next.map(Arc::new);
    let in_flight = Arc::new(Semaphore::new(CALLS_IN_FLIGHT));
    loop {
        let Ok(turn) = in_flight.clone().acquire_owned().await else {
            return;
        };
        let mut batch = Vec::with_capacity(COMPLETE_BATCH_MAX);
        if rx.recv_many(&mut batch, COMPLETE_BATCH_MAX).await == 0 {
            return;
        }
        let (queue, next) = (queue.clone(), next.clone());
        tokio::spawn(async move {
            record_batch(&queue, next.as_deref(), batch).await;
            drop(turn);
        });
    }
}

/// One call: records `batch`, claims for the slots it frees, answers each member.
async fn record_batch(queue: &Queue, next: Option<&NextClaim>, mut batch: Vec<Pending>) {
    let mut slots: Vec<OwnedSemaphorePermit> = batch.iter_mut().filter_map(|p| p.slot.take()).collect();
    let calls: Vec<Completion<'_>> = batch
        .iter()
        .map(|p| Completion {
            id: &p.id,
            token: &p.token,
            result_json: &p.result_json,
        })
        .collect();
    let claimer = next.filter(|n| !n.claiming.is_cancelled() && !slots.is_empty());
    let answers = match claimer {
        Some(n) => {
            queue
                .complete_and_claim(&calls, &n.queues, slots.len(), &n.worker, Some(&n.claiming))
                .await
        }
        None => queue.complete_many(&calls).await.map(|a| (a, Claim::default())),
    };
    drop(calls);
    match answers {
        Ok((answers, claim)) => {
            // Handed over before the executors are answered: once they have all
            // ended, every task claimed for their slots is with the consumer.
            // Tasks are only claimed when `claimer` is `Some`.
            if let Some(n) = claimer {
                for task in claim.tasks {
                    let slot = slots.pop().expect("at most one task is claimed per freed slot");
                    hand_over(queue, n, task, slot).await;
                }
            }
            drop(slots);
            for (p, answer) in batch.into_iter().zip(answers) {
                let _ = p.answer.send(answer);
            }
        }
        Err(e) => {
            drop(slots);
            for p in batch {
                let _ = p.answer.send(Err(e.clone()));
            }
        }
    }
}

/// Gives a claimed task to the consumer; when it stopped taking them, the task
/// goes back to its queue.
async fn hand_over(queue: &Queue, next: &NextClaim, task: ClaimedTask, slot: OwnedSemaphorePermit) {
    if let Err(refused) = next.handoff.send((task, slot)) {
        let task = refused.0.0;
        if let Err(e) = queue.release(&task).await {
            tracing::warn!(task_id = %task.id, error.message = %e, "cannot hand a claimed task back; its lease will expire");
        }
    }
}
