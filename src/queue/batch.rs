//! Many tasks in one script call (`enqueue_batch.lua`): all or nothing
//! (`POST /tasks/batch`, [`Queue::enqueue_batch`]), or each on its own, which
//! the [`Enqueuer`] uses to group the single enqueues that arrive together.
//!
//! Group commit: a script call has a fixed cost in Redis (dispatch, the Lua
//! call, its arguments) of about half a single enqueue's time. The API's
//! `POST /tasks` requests that arrive while an enqueue call is in flight go
//! together in the next call, so a busy API pays that cost once per group; an
//! idle one sends each task at once and waits for nobody. The worker's
//! completions do the same (worker/recorder.rs).

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use super::{Enqueue, Queue, tasks::task_spec};
use crate::{
    error::{QueueError, Result},
    model::NewTask,
    redis::scripts::{self, BatchEnqueued, BatchMode},
};

/// Most single enqueues one group commit writes.
const GROUP_MAX: usize = 256;

/// A batch member the engine refused: nothing of the batch was enqueued.
#[derive(Debug, thiserror::Error)]
#[error("task {index}: unknown task name {name:?}")]
pub struct BatchRefused {
    /// The member's index in the batch (from 0).
    pub index: usize,
    /// Its unknown name.
    pub name: String,
}

impl Queue {
    /// Enqueues `tasks` in one script call, all or nothing; returns their ids in
    /// order. `require_registered` says, per name, whether it must be registered.
    /// Idempotency keys and parents are not taken in a batch (refused with `Corrupt`).
    pub async fn enqueue_batch(
        &self,
        tasks: &[NewTask],
        require_registered: impl Fn(&str) -> bool,
    ) -> Result<std::result::Result<Vec<Uuid>, BatchRefused>> {
        let members: Vec<(&NewTask, bool)> = tasks.iter().map(|t| (t, require_registered(&t.name))).collect();
        let (ids, outcome) = self.write_batch(&members, BatchMode::AllOrNothing).await?;
        Ok(match outcome {
            BatchEnqueued::Created { .. } => Ok(ids),
            BatchEnqueued::Refused { name, index } => Err(BatchRefused { index, name }),
        })
    }

    /// Enqueues `tasks` (each with whether its name must be registered) in one
    /// script call, each on its own: a task with an unknown name is refused
    /// (`UnknownTaskName`), the others are enqueued. Answers in order.
    pub async fn enqueue_each(&self, tasks: &[(&NewTask, bool)]) -> Result<Vec<Result<Uuid>>> {
        let (ids, outcome) = self.write_batch(tasks, BatchMode::EachAlone).await?;
        let BatchEnqueued::Created { left_out } = outcome else {
            return Err(QueueError::Corrupt("a group commit was refused whole".into()));
        };
        let mut answers: Vec<Result<Uuid>> = ids.into_iter().map(Ok).collect();
        for i in left_out {
            let name = tasks.get(i).map(|(t, _)| t.name.clone()).unwrap_or_default();
            if let Some(answer) = answers.get_mut(i) {
                *answer = Err(QueueError::UnknownTaskName(name));
            }
        }
        Ok(answers)
    }

    /// One `enqueue_batch.lua` call for `tasks`, with fresh ids in order.
    async fn write_batch(&self, tasks: &[(&NewTask, bool)], mode: BatchMode) -> Result<(Vec<Uuid>, BatchEnqueued)> {
        if tasks
            .iter()
            .any(|(t, _)| t.idempotency_key.is_some() || t.parent_id.is_some())
        {
            return Err(QueueError::Corrupt(
                "a batch task carries an idempotency key or a parent".into(),
            ));
        }
        let ids: Vec<Uuid> = tasks.iter().map(|_| Uuid::new_v4()).collect();
        if tasks.is_empty() {
            return Ok((ids, BatchEnqueued::Created { left_out: Vec::new() }));
        }
        let ctx = self.ctx();
        let id_strs: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let specs: Vec<_> = tasks
            .iter()
            .zip(&id_strs)
            .map(|((t, registered), id)| {
                let spec = task_spec(id, t, ctx.now_ms, *registered, true);
                (spec, t.eta.map_or(0, |eta| eta.timestamp_millis()))
            })
            .collect();
        let outcome = scripts::enqueue_batch(&mut self.conn().await?, &ctx, &specs, mode).await?;
        Ok((ids, outcome))
    }
}

/// One enqueue waiting for the next group commit, and who waits for the answer.
struct Pending {
    task: NewTask,
    require_registered: bool,
    answer: oneshot::Sender<Result<Uuid>>,
}

/// Group commit of single enqueues (see the module's notes). Cheap to clone;
/// its loop starts with the first enqueue (on the runtime that makes it) and
/// ends when the last clone is dropped.
#[derive(Clone)]
pub struct Enqueuer {
    queue: Queue,
    tx: Arc<OnceLock<mpsc::UnboundedSender<Pending>>>,
}

impl Enqueuer {
    /// An enqueuer on `queue` (nothing runs until the first enqueue).
    pub fn new(queue: Queue) -> Self {
        Self {
            queue,
            tx: Arc::default(),
        }
    }

    /// Enqueues `task`: what [`Queue::enqueue`] does, in a group with the
    /// enqueues that arrive at the same time. A task with an idempotency key or
    /// a parent goes alone (the group script takes neither).
    pub async fn enqueue(&self, task: NewTask, require_registered: bool) -> Result<Enqueue> {
        if task.idempotency_key.is_some() || task.parent_id.is_some() {
            return self.queue.enqueue(&task, require_registered).await;
        }
        let tx = self.tx.get_or_init(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(commit_loop(self.queue.clone(), rx));
            tx
        });
        let (answer, wait) = oneshot::channel();
        let pending = Pending {
            task,
            require_registered,
            answer,
        };
        // The loop is gone only with the runtime that started it: go alone.
        if let Err(mpsc::error::SendError(p)) = tx.send(pending) {
            return self.queue.enqueue(&p.task, p.require_registered).await;
        }
        let id = wait.await.unwrap_or_else(|_| Err(stopped()))?;
        Ok(Enqueue { id, created: true })
    }
}

/// The loop stopped (the runtime is shutting down): nothing was enqueued.
fn stopped() -> QueueError {
    QueueError::Redis(redis::RedisError::from((
        redis::ErrorKind::Io,
        "the enqueue group commit stopped",
    )))
}

async fn commit_loop(queue: Queue, mut rx: mpsc::UnboundedReceiver<Pending>) {
    let mut group = Vec::with_capacity(GROUP_MAX);
    while rx.recv_many(&mut group, GROUP_MAX).await > 0 {
        let members: Vec<(&NewTask, bool)> = group.iter().map(|p| (&p.task, p.require_registered)).collect();
        let answers = queue.enqueue_each(&members).await;
        drop(members);
        match answers {
            Ok(answers) => {
                for (p, answer) in group.drain(..).zip(answers) {
                    let _ = p.answer.send(answer);
                }
            }
            Err(e) => {
                for p in group.drain(..) {
                    let _ = p.answer.send(Err(e.clone()));
                }
            }
        }
    }
}
