//! Group commit of successes: the tasks that finish while a completion call is in
//! flight are recorded together by the next call. A busy worker pays the script's
//! fixed cost (dispatch, setup, the round trip) once per batch instead of once per
//! task; an idle one sends each completion at once and waits for nobody.

use tokio::sync::{mpsc, oneshot};

use crate::{
    error::{QueueError, Result},
    queue::{COMPLETE_BATCH_MAX, Completion, Queue},
};

/// One success waiting to be recorded, and who waits for the answer.
struct Pending {
    id: String,
    token: String,
    result_json: String,
    answer: oneshot::Sender<Result<()>>,
}

/// The executors' side: hands a success to the recorder and waits for its answer.
#[derive(Clone)]
pub struct Recorder {
    tx: mpsc::UnboundedSender<Pending>,
}

impl Recorder {
    /// Starts the recording loop on `queue`; it ends when the last `Recorder` is dropped.
    pub fn start(queue: Queue) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(record_loop(queue, rx));
        Self { tx }
    }

    /// Records a success: the answer [`Queue::complete`] would give, from a batch call.
    pub async fn complete(&self, id: String, token: String, result_json: String) -> Result<()> {
        let (answer, wait) = oneshot::channel();
        let pending = Pending {
            id,
            token,
            result_json,
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

async fn record_loop(queue: Queue, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut batch = Vec::with_capacity(COMPLETE_BATCH_MAX);
    while rx.recv_many(&mut batch, COMPLETE_BATCH_MAX).await > 0 {
        let calls: Vec<Completion<'_>> = batch
            .iter()
            .map(|p| Completion {
                id: &p.id,
                token: &p.token,
                result_json: &p.result_json,
            })
            .collect();
        let answers = queue.complete_many(&calls).await;
        drop(calls);
        match answers {
            Ok(answers) => {
                for (p, answer) in batch.drain(..).zip(answers) {
                    let _ = p.answer.send(answer);
                }
            }
            Err(e) => {
                for p in batch.drain(..) {
                    let _ = p.answer.send(Err(e.clone()));
                }
            }
        }
    }
}
