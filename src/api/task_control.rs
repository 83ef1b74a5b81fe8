//! Steering one task from outside its worker: pause, resume, cancel and retry
//! (queue it again). Each answers the task as it stands afterwards.

use poem_openapi::{ApiResponse, OpenApi, param::Path};
use uuid::Uuid;

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    models::TaskView,
    tasks::{control_error, parse_id},
};
use crate::{error::QueueError, queue::Cancel};

/// `POST /tasks/{task_id}/pause` and `/resume` answers.
#[derive(ApiResponse)]
pub enum PauseResponse {
    /// The task after the change.
    #[oai(status = 200)]
    Ok(TaskView),
}

/// `POST /tasks/{task_id}/cancel` answers.
#[derive(ApiResponse)]
pub enum CancelResponse {
    /// The task had not started: it is REVOKED and will never run.
    #[oai(status = 200)]
    Revoked(TaskView),
    /// The task is running: its cancellation signal fired; it ends REVOKED when
    /// it stops (or is aborted after the worker's cancel grace time).
    #[oai(status = 202)]
    Requested(TaskView),
}

/// `POST /tasks/{task_id}/retry` answers.
#[derive(ApiResponse)]
pub enum RetryResponse {
    /// Queued again as a new attempt.
    #[oai(status = 202)]
    Queued(TaskView),
}

/// Operations that steer one task.
pub struct TaskControlApi {
    pub(crate) state: AppState,
}

#[OpenApi(tag = "Tag::Tasks")]
impl TaskControlApi {
    /// Pause a waiting task: a PENDING (queued or delayed) or RETRY task leaves
    /// its queue and becomes PAUSED; no worker claims it until it is resumed.
    /// A running task answers 409 (cancel it instead).
    ///
    /// Scope: `write`.
    #[oai(path = "/tasks/:task_id/pause", method = "post")]
    async fn pause(
        &self,
        _auth: BearerAuth,
        /// Task id.
        task_id: Path<String>,
    ) -> Result<PauseResponse, ApiError> {
        let id = parse_id(&task_id.0)?;
        let paused = self
            .state
            .queue
            .pause_task(&id)
            .await
            .map_err(|e| control_error(e, &task_id.0))?;
        if !paused {
            return Err(ApiError::conflict(
                "the task is running and cannot be paused: cancel it instead (POST /tasks/{task_id}/cancel)",
            ));
        }
        Ok(PauseResponse::Ok(self.view(&id, &task_id.0).await?))
    }

    /// Resume a PAUSED task: it goes back to its queue (or waits for its ETA)
    /// with its priority and is PENDING again. Any other status answers 409.
    ///
    /// Scope: `write`.
    #[oai(path = "/tasks/:task_id/resume", method = "post")]
    async fn resume(
        &self,
        _auth: BearerAuth,
        /// Task id.
        task_id: Path<String>,
    ) -> Result<PauseResponse, ApiError> {
        let id = parse_id(&task_id.0)?;
        self.state.queue.resume_task(&id).await.map_err(|e| match e {
            QueueError::Conflict => ApiError::conflict("the task is not paused"),
            e => control_error(e, &task_id.0),
        })?;
        Ok(PauseResponse::Ok(self.view(&id, &task_id.0).await?))
    }

    /// Cancel a task.
    ///
    /// A pending, delayed or retrying task ends REVOKED and never runs. A running
    /// task gets its cancellation signal and ends REVOKED once it stops. A task
    /// that already finished cannot be cancelled (409).
    ///
    /// Scope: `write`.
    #[oai(path = "/tasks/:task_id/cancel", method = "post")]
    async fn cancel(
        &self,
        _auth: BearerAuth,
        /// Task id.
        task_id: Path<String>,
    ) -> Result<CancelResponse, ApiError> {
        let id = parse_id(&task_id.0)?;
        let outcome = self
            .state
            .queue
            .cancel(&id)
            .await
            .map_err(|e| control_error(e, &task_id.0))?;
        let view = self.view(&id, &task_id.0).await?;
        Ok(match outcome {
            Cancel::Revoked => CancelResponse::Revoked(view),
            Cancel::Requested => CancelResponse::Requested(view),
        })
    }

    /// Retry a FAILURE or REVOKED task: it is queued again as a new attempt.
    ///
    /// Scope: `write`.
    #[oai(path = "/tasks/:task_id/retry", method = "post")]
    async fn retry(
        &self,
        _auth: BearerAuth,
        /// Task id.
        task_id: Path<String>,
    ) -> Result<RetryResponse, ApiError> {
        let id = parse_id(&task_id.0)?;
        self.state
            .queue
            .resubmit(&id)
            .await
            .map_err(|e| control_error(e, &task_id.0))?;
        Ok(RetryResponse::Queued(self.view(&id, &task_id.0).await?))
    }
}

impl TaskControlApi {
    async fn view(&self, id: &Uuid, raw: &str) -> Result<TaskView, ApiError> {
        match self.state.queue.get(id).await? {
            Some(r) => Ok(r.into()),
            None => Err(ApiError::task_not_found(raw)),
        }
    }
}
