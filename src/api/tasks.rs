//! `POST /tasks` and `GET /tasks/{task_id}`.

use std::time::Duration;

use chrono::Utc;
use poem_openapi::{ApiResponse, OpenApi, param::Path, param::Query, payload::Json};
use rand::Rng;
use serde_json::json;
use uuid::Uuid;

use super::{
    AppState, Tag,
    error::ApiError,
    models::{JsonBody, NewTaskRequest, TaskCreated, TaskView},
};
use crate::{
    config::validate_name,
    error::QueueError,
    task::{DEFAULT_QUEUE, NewTask, TaskRecord},
};

/// Longest `?wait=` accepted, in seconds.
const MAX_WAIT_SECS: f64 = 60.0;

/// Task operations.
pub struct TasksApi {
    pub(crate) state: AppState,
}

/// `POST /tasks` answers.
#[derive(ApiResponse)]
pub enum CreateTaskResponse {
    /// Accepted: the task is queued (or delayed until its ETA).
    #[oai(status = 202)]
    Accepted(Json<TaskCreated>, #[oai(header = "Location")] String),
}

/// `GET /tasks/{task_id}` answers.
#[derive(ApiResponse)]
pub enum GetTaskResponse {
    /// The task's current record.
    #[oai(status = 200)]
    Ok(Json<TaskView>),
}

#[OpenApi(tag = "Tag::Tasks")]
impl TasksApi {
    /// Enqueue a task.
    ///
    /// An empty body enqueues the classic demo task: `add` of two random
    /// integers between 0 and 100.
    #[oai(path = "/tasks", method = "post")]
    async fn create(&self, body: JsonBody<NewTaskRequest>) -> Result<CreateTaskResponse, ApiError> {
        let task = match body.0 {
            Some(req) => self.validate(req)?,
            None => {
                let mut rng = rand::rng();
                NewTask::new(
                    "add",
                    json!({"x": rng.random_range(0..=100), "y": rng.random_range(0..=100)}),
                )
            }
        };
        // Names the API knows are checked here; others must be registered by a worker
        // (checked inside the enqueue script), unless the operator allows any name.
        let require_registered =
            !self.state.builtins.contains(&task.name) && !self.state.allow_unknown_tasks;
        match self.state.queue.enqueue(&task, require_registered).await {
            Ok(id) => Ok(CreateTaskResponse::Accepted(
                Json(TaskCreated {
                    task_id: id.to_string(),
                }),
                format!("/tasks/{id}"),
            )),
            Err(QueueError::UnknownTaskName(name)) => {
                let mut known = self.state.builtins.names();
                known.extend(self.state.queue.registered_task_names().await?);
                known.sort();
                known.dedup();
                Err(ApiError::unknown_task(&name, known))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Read a task: status, result, traceback, children and timings.
    ///
    /// With `wait`, the request is held until the task reaches a final state
    /// (SUCCESS, FAILURE, REVOKED) or `wait` seconds pass, whichever comes first.
    #[oai(path = "/tasks/:task_id", method = "get")]
    async fn get(
        &self,
        /// Task id.
        task_id: Path<String>,
        /// Seconds (at most 60) to wait for a final state.
        #[oai(validator(minimum(value = "0"), maximum(value = "60")))]
        wait: Query<Option<f64>>,
    ) -> Result<GetTaskResponse, ApiError> {
        let Ok(id) = Uuid::parse_str(&task_id.0) else {
            return Err(ApiError::task_not_found(&task_id.0));
        };
        let wait = Duration::from_secs_f64(wait.0.unwrap_or(0.0).clamp(0.0, MAX_WAIT_SECS));
        let record = if wait.is_zero() {
            self.state.queue.get(&id).await?
        } else {
            self.wait_final(&id, wait).await?
        };
        match record {
            Some(r) => Ok(GetTaskResponse::Ok(Json(r.into()))),
            None => Err(ApiError::task_not_found(&task_id.0)),
        }
    }
}

impl TasksApi {
    fn validate(&self, req: NewTaskRequest) -> Result<NewTask, ApiError> {
        let queue = req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
        validate_name("queue", &queue)
            .map_err(|e| ApiError::unprocessable("invalid_queue", e.to_string()))?;
        if req.name.is_empty() || req.name.len() > 256 {
            return Err(ApiError::unprocessable(
                "invalid_name",
                "name must be 1 to 256 characters",
            ));
        }
        let args = req.args.unwrap_or_else(|| json!({}));
        if let Some(Err(e)) = self.state.builtins.validate(&req.name, &args) {
            return Err(ApiError::unprocessable(
                "invalid_args",
                format!("bad args for {:?}: {e}", req.name),
            ));
        }
        let eta = match (req.countdown, req.eta) {
            (Some(_), Some(_)) => {
                return Err(ApiError::unprocessable(
                    "invalid_eta",
                    "give countdown or eta, not both",
                ));
            }
            (Some(secs), None) => Some(Utc::now() + Duration::from_secs_f64(secs)),
            (None, eta) => eta,
        };
        Ok(NewTask {
            name: req.name,
            args,
            queue,
            priority: req.priority.unwrap_or(0),
            max_retries: req.max_retries.unwrap_or(0),
            eta,
            parent_id: None,
        })
    }

    /// Holds until the task is final or `wait` passes. Subscribes to the task's
    /// completion channel before each read, so no completion is missed and no
    /// polling happens.
    async fn wait_final(&self, id: &Uuid, wait: Duration) -> Result<Option<TaskRecord>, ApiError> {
        let deadline = tokio::time::Instant::now() + wait;
        let channel = self.state.queue.keys().done_channel(&id.to_string());
        loop {
            let mut subscription = self
                .state
                .notifier
                .subscribe(channel.clone())
                .await
                .map_err(ApiError::from)?;
            let record = self.state.queue.get(id).await?;
            match &record {
                Some(r) if !r.status.is_final() && tokio::time::Instant::now() < deadline => {}
                _ => return Ok(record),
            }
            tokio::select! {
                () = subscription.notified() => {}
                () = tokio::time::sleep_until(deadline) => return Ok(self.state.queue.get(id).await?),
            }
        }
    }
}
