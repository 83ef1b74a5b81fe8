//! What a running task gets besides its arguments: its identity, a
//! cancellation signal, progress reporting and child enqueueing.

use std::fmt;

use serde_json::json;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    error::QueueError,
    model::{ClaimedTask, NewTask},
    queue::Queue,
};

/// What a task gets besides its arguments.
#[derive(Clone)]
pub struct TaskContext {
    /// This task's id.
    pub task_id: Uuid,
    /// Its name.
    pub name: String,
    /// Which start this is (1 on the first attempt).
    pub attempt: u32,
    cancel: CancellationToken,
    queue: Queue,
    token: String,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("task_id", &self.task_id)
            .field("name", &self.name)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl TaskContext {
    pub(crate) fn new(task: &ClaimedTask, cancel: CancellationToken, queue: Queue) -> Self {
        Self {
            task_id: task.id,
            name: task.name.clone(),
            attempt: task.attempts,
            cancel,
            queue,
            token: task.token.clone(),
        }
    }

    /// The engine, for built-in tasks that act on other records (`callback`).
    pub(crate) fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Fires when the task should stop: it was cancelled, its soft time limit
    /// passed, or its lease was lost. Long tasks select on it to clean up and return.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// True once the cancellation signal fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports progress; `GET /tasks/{id}` shows it and the events stream carries it.
    pub async fn progress(&self, current: u64, total: u64, message: impl Into<String>) -> Result<(), QueueError> {
        let progress = json!({"current": current, "total": total, "message": message.into()});
        self.queue.progress(&self.task_id, &self.token, &progress).await
    }

    /// Enqueues a child task: it gets this task as `parent_id`, and this task's
    /// `children` lists it.
    pub async fn enqueue(&self, mut task: NewTask) -> Result<Uuid, QueueError> {
        task.parent_id = Some(self.task_id);
        Ok(self.queue.enqueue(&task, false).await?.id)
    }
}
