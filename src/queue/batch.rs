//! Many tasks in one script call (`enqueue_batch.lua`), all or nothing:
//! `POST /tasks/batch` and [`Queue::enqueue_batch`].

use uuid::Uuid;

use super::{Queue, parse_id, tasks::task_spec};
use crate::{
    error::{QueueError, Result},
    model::NewTask,
    redis::scripts::{self, BatchEnqueued},
};

/// A batch member the engine refused: nothing of the batch was enqueued.
#[derive(Debug, thiserror::Error)]
#[error("task {index}: unknown task name {name:?}")]
pub struct BatchRefused {
    /// The member's index in the batch (from 0).
    pub index: usize,
    /// Its unknown name.
    pub name: String,
}

/// An accepted batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchAccepted {
    /// The tasks' ids, in the order given (or of the earlier batch, see `created`).
    pub ids: Vec<Uuid>,
    /// `false` when a batch with the same idempotency key was accepted before:
    /// `ids` are its tasks', and nothing was enqueued now.
    pub created: bool,
}

impl Queue {
    /// Enqueues `tasks` in one script call, all or nothing; returns their ids in
    /// order. `require_registered` says, per name, whether it must be registered.
    /// With `idempotency_key`, a batch accepted before under the same key (kept
    /// for the result TTL, while its first task's record lives) is answered
    /// instead, and nothing is enqueued. Members take no idempotency key of their
    /// own and no parent (refused with `Corrupt`).
    pub async fn enqueue_batch(
        &self,
        tasks: &[NewTask],
        idempotency_key: Option<&str>,
        require_registered: impl Fn(&str) -> bool,
    ) -> Result<std::result::Result<BatchAccepted, BatchRefused>> {
        if tasks
            .iter()
            .any(|t| t.idempotency_key.is_some() || t.parent_id.is_some())
        {
            return Err(QueueError::Corrupt(
                "a batch task carries an idempotency key or a parent".into(),
            ));
        }
        let ctx = self.ctx();
        let ids: Vec<Uuid> = tasks.iter().map(|_| Uuid::new_v4()).collect();
        let id_strs: Vec<String> = ids.iter().map(Uuid::to_string).collect();
        let specs: Vec<_> = tasks
            .iter()
            .zip(&id_strs)
            .map(|(t, id)| {
                let spec = task_spec(id, t, ctx.now_ms, require_registered(&t.name), true);
                (spec, t.eta.map_or(0, |eta| eta.timestamp_millis()))
            })
            .collect();
        if specs.is_empty() {
            return Ok(Ok(BatchAccepted { ids, created: true }));
        }
        Ok(
            match scripts::enqueue_batch(&mut self.bulk_conn(), &ctx, &specs, idempotency_key).await? {
                BatchEnqueued::Created => Ok(BatchAccepted { ids, created: true }),
                BatchEnqueued::Existing(earlier) => Ok(BatchAccepted {
                    ids: earlier.iter().map(|id| parse_id(id)).collect::<Result<_>>()?,
                    created: false,
                }),
                BatchEnqueued::UnknownName(name, index) => Err(BatchRefused { index, name }),
            },
        )
    }
}
