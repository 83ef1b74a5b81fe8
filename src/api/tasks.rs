//! Task operations: enqueue (one or a batch), list, read (with long-poll),
//! cancel, pause, resume, retry, forget.

use std::{future::Future, time::Duration};

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, param::Query, payload::Json};
use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    models::{JsonBody, MAX_QUEUE_NAME, MAX_TASK_NAME, NewTaskRequest, TaskCreated, TaskView, is_safe_name},
};
use crate::{
    error::QueueError,
    model::{NewTask, TaskOptions, TaskStatus},
    queue::{Cancel, Cursor, TaskFilter},
};

/// Default and largest page of `GET /tasks`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;

/// `POST /tasks/batch` body.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BatchRequest {
    /// The tasks, each a `POST /tasks` body (without `idempotency_key`).
    pub tasks: Vec<NewTaskRequest>,
}

/// `POST /tasks/batch` answer.
#[derive(Debug, Object)]
pub struct BatchCreated {
    /// The tasks' ids, in the order given.
    pub task_ids: Vec<String>,
}

/// `GET /tasks` answer.
#[derive(Debug, Object)]
pub struct TaskList {
    /// Tasks, newest first.
    /// (Ids as strings, or with `expand` objects as `GET /tasks/{task_id}` shows them:
    /// typed as any JSON, because an OpenAPI union of a string and an object does not
    /// validate as either.)
    pub tasks: Vec<Value>,
    /// Give it as `cursor` for the next page; null when there is nothing more.
    #[oai(nullable)]
    pub next_cursor: Option<String>,
}

/// `POST /tasks/batch` answers.
#[derive(ApiResponse)]
pub enum BatchResponse {
    /// Accepted: every task is queued (or delayed until its ETA).
    #[oai(status = 202)]
    Accepted(Json<BatchCreated>),
}

/// `GET /tasks` answers.
#[derive(ApiResponse)]
pub enum ListResponse {
    /// One page.
    #[oai(status = 200)]
    Ok(Json<TaskList>),
}

/// `POST /tasks/{task_id}/pause` and `/resume` answers.
#[derive(ApiResponse)]
pub enum PauseResponse {
    /// The task after the change.
    #[oai(status = 200)]
    Ok(TaskView),
}

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
    /// A task with this `idempotency_key` exists already: its id, nothing enqueued.
    #[oai(status = 200)]
    Existing(Json<TaskCreated>, #[oai(header = "Location")] String),
}

/// `GET /tasks/{task_id}` answers.
#[derive(ApiResponse)]
pub enum GetTaskResponse {
    /// The task's current record.
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

/// `DELETE /tasks/{task_id}` answers.
#[derive(ApiResponse)]
pub enum DeleteResponse {
    /// The record is gone.
    #[oai(status = 204)]
    Deleted,
}

#[OpenApi(tag = "Tag::Tasks")]
impl TasksApi {
    /// Enqueue a task.
    ///
    /// An empty body enqueues the classic demo task: `add` of two random
    /// integers between 0 and 100.
    ///
    /// Scope: `write`.
    #[oai(path = "/tasks", method = "post")]
    async fn create(&self, _auth: BearerAuth, body: JsonBody<NewTaskRequest>) -> Result<CreateTaskResponse, ApiError> {
        let task = match body.0 {
            Some(req) => {
                let task = new_task(&self.state, req, Placement::Alone)?;
                super::task_types::check_args(&self.state, &task, false).await?;
                task
            }
            None => {
                let mut rng = rand::rng();
                NewTask::new(
                    "add",
                    json!({"x": rng.random_range(0..=100), "y": rng.random_range(0..=100)}),
                )
            }
        };
        match self
            .state
            .queue
            .enqueue(&task, self.state.require_registered(&task.name))
            .await
        {
            Ok(e) => {
                let body = Json(TaskCreated {
                    task_id: e.id.to_string(),
                });
                let location = format!("/tasks/{}", e.id);
                Ok(if e.created {
                    CreateTaskResponse::Accepted(body, location)
                } else {
                    CreateTaskResponse::Existing(body, location)
                })
            }
            Err(QueueError::UnknownTaskName(name)) => Err(self.state.unknown_task(&name).await),
            // A stall can cut the answer off after the script ran: the client
            // cannot tell, so it is told how to retry without a duplicate.
            Err(e) if e.is_unavailable() => {
                tracing::warn!(error.cause_chain = ?e, "redis unavailable during enqueue");
                Err(ApiError::unavailable(
                    "redis is unreachable, retry later; the task may have been enqueued anyway: \
                     retry with the same idempotency_key to enqueue it at most once",
                ))
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Enqueue many tasks at once, all or nothing.
    ///
    /// Body `{"tasks": [<POST /tasks body>, ...]}` (at most `CELERIAC_BATCH_MAX`,
    /// default 1000). An invalid member answers 422 naming its index, and nothing
    /// is enqueued. One script call per request.
    ///
    /// Scope: `write`.
    #[oai(path = "/tasks/batch", method = "post")]
    async fn create_batch(&self, _auth: BearerAuth, body: JsonBody<BatchRequest>) -> Result<BatchResponse, ApiError> {
        // Any content type, like `POST /tasks`; a batch needs a body.
        let body = Json(body.0.ok_or_else(|| {
            ApiError::unprocessable("invalid_batch", "a batch needs a JSON body: {\"tasks\": [...]}")
        })?);
        let max = self.state.batch_max;
        if body.0.tasks.len() > max {
            return Err(ApiError::unprocessable(
                "batch_too_large",
                format!("a batch holds at most {max} tasks, got {}", body.0.tasks.len()),
            ));
        }
        let mut tasks = Vec::with_capacity(body.0.tasks.len());
        for (i, req) in body.0.tasks.into_iter().enumerate() {
            if req.idempotency_key.is_some() {
                return Err(ApiError::unprocessable(
                    "invalid_batch",
                    format!("tasks[{i}]: idempotency_key is not taken in a batch"),
                ));
            }
            let task = new_task(&self.state, req, Placement::Alone).map_err(|e| at_index(e, i))?;
            tasks.push(task);
        }
        let state = &self.state;
        // As POST /tasks does (`check_args`); built-ins were checked by `new_task`.
        let published: Vec<(usize, &str, &Value)> = tasks
            .iter()
            .enumerate()
            .filter(|(_, t)| !state.builtins.contains(&t.name))
            .map(|(i, t)| (i, t.name.as_str(), &t.args))
            .collect();
        if let Err((i, e)) = state
            .args_check
            .check_batch(&state.queue, &state.builtins, published)
            .await?
        {
            return Err(at_index(super::task_types::invalid_args(&tasks[i].name, &e), i));
        }
        match state
            .queue
            .enqueue_batch(&tasks, |n| state.require_registered(n))
            .await?
        {
            Ok(ids) => Ok(BatchResponse::Accepted(Json(BatchCreated {
                task_ids: ids.iter().map(ToString::to_string).collect(),
            }))),
            Err(refused) => Err(at_index(state.unknown_task(&refused.name).await, refused.index)),
        }
    }

    /// List tasks, newest first, filtered and paged.
    ///
    /// Filters combine: `status` (one or a comma-separated list, any case),
    /// `queue`, `name`, `worker` (of the latest attempt), `schedule` (that fired
    /// the task), `created_after` / `created_before` (RFC 3339). Pages hold at
    /// most `limit` tasks (default 100, at most 500); give `next_cursor` back as
    /// `cursor` for the next one. Walking the pages returns every matching task
    /// once, even while new tasks arrive. A page may hold fewer than `limit`
    /// tasks with a `next_cursor` when the filter is sparse: keep going until it
    /// is null. With `expand` (also a bare `?expand`) each item is the task as
    /// `GET /tasks/{task_id}` shows it, else its id.
    ///
    /// Scope: `read`.
    #[oai(path = "/tasks", method = "get")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        _auth: BearerAuth,
        /// Statuses, comma-separated (PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED, PAUSED).
        status: Query<Option<String>>,
        /// Queue name.
        queue: Query<Option<String>>,
        /// Task name.
        name: Query<Option<String>>,
        /// Worker name (of the task's latest attempt).
        worker: Query<Option<String>>,
        /// Schedule name.
        schedule: Query<Option<String>>,
        /// Created strictly after (RFC 3339).
        created_after: Query<Option<DateTime<Utc>>>,
        /// Created strictly before (RFC 3339).
        created_before: Query<Option<DateTime<Utc>>>,
        /// Page size (default 100, at most 500).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Give whole tasks instead of ids (`?expand`, `?expand=true`).
        expand: Query<Option<String>>,
    ) -> Result<ListResponse, ApiError> {
        let mut statuses = Vec::new();
        for s in status
            .0
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match TaskStatus::parse(&s.to_ascii_uppercase()) {
                Some(st) if !statuses.contains(&st) => statuses.push(st),
                Some(_) => {}
                None => return Err(ApiError::bad_request("invalid_status", format!("unknown status {s:?}"))),
            }
        }
        let cursor = match cursor.0.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                Cursor::decode(c)
                    .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not one this API gave"))?,
            ),
        };
        let expand = expand.0.is_some_and(|v| !matches!(v.as_str(), "false" | "0"));
        let filter = TaskFilter {
            statuses,
            queue: queue.0,
            name: name.0,
            worker: worker.0,
            schedule: schedule.0,
            created_after_ms: created_after.0.map(|t| t.timestamp_millis()),
            created_before_ms: created_before.0.map(|t| t.timestamp_millis()),
        };
        let limit = limit.0.map_or(DEFAULT_LIMIT, |l| l as usize).min(MAX_LIMIT);
        let page = self.state.queue.list_tasks(&filter, limit, cursor).await?;
        let tasks = if expand {
            // A record may expire between the listing and this read: it is left out.
            self.state
                .queue
                .get_many(&page.ids)
                .await?
                .into_iter()
                .flatten()
                .map(|r| r.to_json())
                .collect()
        } else {
            page.ids.into_iter().map(Value::String).collect()
        };
        Ok(ListResponse::Ok(Json(TaskList {
            tasks,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        })))
    }

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

    /// Read a task: status, result, traceback, children, progress and timings.
    ///
    /// With `wait`, the request is held until the task reaches a final state
    /// (SUCCESS, FAILURE, REVOKED) or `wait` seconds pass, whichever comes first.
    ///
    /// Scope: `read`.
    #[oai(path = "/tasks/:task_id", method = "get")]
    async fn get(
        &self,
        _auth: BearerAuth,
        /// Task id.
        task_id: Path<String>,
        /// Seconds (at most 60) to wait for a final state.
        #[oai(validator(minimum(value = "0"), maximum(value = "60")))]
        wait: Query<Option<f64>>,
    ) -> Result<GetTaskResponse, ApiError> {
        let id = parse_id(&task_id.0)?;
        let queue = &self.state.queue;
        // The channel of the canonical id: the id may be written another way
        // (uppercase, simple, `urn:uuid:`, braced), completions publish this one.
        let channel = queue.keys().done_channel(&id.to_string());
        let record = wait_final(&self.state, channel, wait.0, || queue.get(&id), |r| r.status.is_final()).await?;
        match record {
            Some(r) => Ok(GetTaskResponse::Ok(r.into())),
            None => Err(ApiError::task_not_found(&task_id.0)),
        }
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

    /// Forget a finished task's record.
    ///
    /// Scope: `admin`.
    #[oai(path = "/tasks/:task_id", method = "delete")]
    async fn delete(
        &self,
        _auth: BearerAuth,
        /// Task id.
        task_id: Path<String>,
    ) -> Result<DeleteResponse, ApiError> {
        let id = parse_id(&task_id.0)?;
        self.state
            .queue
            .forget(&id)
            .await
            .map_err(|e| control_error(e, &task_id.0))?;
        Ok(DeleteResponse::Deleted)
    }
}

impl TasksApi {
    async fn view(&self, id: &Uuid, raw: &str) -> Result<TaskView, ApiError> {
        match self.state.queue.get(id).await? {
            Some(r) => Ok(r.into()),
            None => Err(ApiError::task_not_found(raw)),
        }
    }
}

fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::task_not_found(raw))
}

/// Prefixes a batch member's error message with its index.
fn at_index(e: ApiError, i: usize) -> ApiError {
    match e {
        ApiError::Unprocessable(mut b) => {
            b.0.error.message = format!("tasks[{i}]: {}", b.0.error.message);
            ApiError::Unprocessable(b)
        }
        e => e,
    }
}

fn control_error(e: QueueError, raw: &str) -> ApiError {
    match e {
        QueueError::NotFound => ApiError::task_not_found(raw),
        QueueError::Conflict => ApiError::conflict("the task's status does not allow this"),
        e => e.into(),
    }
}

/// Where a task stands, which decides what can be checked up front.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// An ordinary task.
    Alone,
    /// A workflow task started with its own arguments (scheduling options do not apply).
    Workflow,
    /// A workflow task fed the previous step's result: its arguments are only
    /// complete at run time, and absent arguments become that result.
    WorkflowFed,
}

/// Turns a request into a task, checking everything that can be checked
/// without Redis.
pub(crate) fn new_task(state: &AppState, req: NewTaskRequest, placement: Placement) -> Result<NewTask, ApiError> {
    let in_workflow = placement != Placement::Alone;
    let invalid = |code: &str, msg: String| ApiError::unprocessable(code, msg);
    // An explicit queue wins over the routes (which default to `default`).
    let queue = req
        .queue
        .map_or_else(|| state.routes.queue_for(&req.name.0).to_owned(), |q| q.0);
    if !is_safe_name(&queue, MAX_QUEUE_NAME) {
        return Err(invalid(
            "invalid_queue",
            format!(
                "queue must be 1 to {MAX_QUEUE_NAME} characters from A-Z a-z 0-9 _ . : - starting with a letter or digit"
            ),
        ));
    }
    let name = req.name.0;
    if !is_safe_name(&name, MAX_TASK_NAME) {
        return Err(invalid(
            "invalid_name",
            format!(
                "name must be 1 to {MAX_TASK_NAME} characters from A-Z a-z 0-9 _ . : - starting with a letter or digit"
            ),
        ));
    }
    let args = match req.args {
        Some(args) => args,
        None if placement == Placement::WorkflowFed => Value::Null,
        None => json!({}),
    };
    if placement != Placement::WorkflowFed
        && let Some(Err(e)) = state.builtins.validate(&name, &args)
    {
        return Err(invalid("invalid_args", format!("bad args for {name:?}: {e}")));
    }
    if in_workflow
        && (req.countdown.is_some() || req.eta.is_some() || req.expires.is_some() || req.idempotency_key.is_some())
    {
        return Err(invalid(
            "invalid_workflow",
            "countdown, eta, expires and idempotency_key do not apply to workflow tasks".into(),
        ));
    }
    let eta = match (req.countdown, req.eta) {
        (Some(_), Some(_)) => {
            return Err(invalid("invalid_eta", "give countdown or eta, not both".into()));
        }
        (Some(secs), None) => Some(Utc::now() + Duration::from_secs_f64(secs)),
        (None, Some(eta)) if eta.timestamp_millis() < 0 => {
            return Err(invalid("invalid_eta", "eta must not be before 1970".into()));
        }
        (None, eta) => eta,
    };
    let expires_at = match req.expires {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64().filter(|s| s.is_finite() && *s >= 0.0 && *s <= 31_536_000.0) {
            Some(secs) => Some(Utc::now() + Duration::from_secs_f64(secs)),
            None => {
                return Err(invalid(
                    "invalid_expires",
                    "expires must be 0 to 31536000 seconds".into(),
                ));
            }
        },
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            // Times are stored as epoch milliseconds; one before 1970 would be
            // read as "no expiry" downstream, so it is refused at the door.
            Ok(t) if t.timestamp_millis() < 0 => {
                return Err(invalid("invalid_expires", "expires must not be before 1970".into()));
            }
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                return Err(invalid(
                    "invalid_expires",
                    format!("expires is not an RFC 3339 time: {e}"),
                ));
            }
        },
        Some(_) => {
            return Err(invalid(
                "invalid_expires",
                "expires is seconds or an RFC 3339 time".into(),
            ));
        }
    };
    let callback_url = match req.callback_url {
        Some(url) => {
            crate::model::callback::check_callback_url(&url).map_err(|m| invalid("invalid_callback_url", m))?;
            Some(url)
        }
        None => state.queue_callbacks.url_for(&queue).map(str::to_owned),
    };
    if let (Some(soft), Some(hard)) = (req.soft_time_limit, req.time_limit)
        && soft >= hard
    {
        return Err(invalid(
            "invalid_time_limit",
            "soft_time_limit must be below time_limit".into(),
        ));
    }
    Ok(NewTask {
        name,
        args,
        queue,
        options: TaskOptions {
            max_retries: req.max_retries,
            priority: req.priority,
            retry_backoff: req.retry_backoff,
            retry_backoff_max: req.retry_backoff_max,
            retry_jitter: req.retry_jitter,
            retry_on: req.retry_on,
            time_limit: req.time_limit,
            soft_time_limit: req.soft_time_limit,
            expires: None,
        },
        eta,
        expires_at,
        idempotency_key: req.idempotency_key,
        parent_id: None,
        callback_url,
    })
}

/// Reads a record, holding the request until it is final or `wait` seconds pass.
/// Subscribes to the record's completion channel before the first read, so no
/// completion is missed and nothing polls.
pub(crate) async fn wait_final<T, F, Fut>(
    state: &AppState,
    channel: String,
    wait: Option<f64>,
    read: F,
    is_final: impl Fn(&T) -> bool,
) -> Result<Option<T>, ApiError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<T>, QueueError>>,
{
    let wait = Duration::from_secs_f64(wait.unwrap_or(0.0).clamp(0.0, MAX_WAIT_SECS));
    if wait.is_zero() {
        return Ok(read().await?);
    }
    let deadline = tokio::time::Instant::now() + wait;
    // Subscribed (and confirmed) before the first read, and kept: a wake-up is
    // followed by a read only, not by another SUBSCRIBE round trip.
    let mut subscription = state.notifier.subscribe(channel).await.map_err(ApiError::from)?;
    loop {
        let record = read().await?;
        match &record {
            Some(r) if !is_final(r) && tokio::time::Instant::now() < deadline => {}
            _ => return Ok(record),
        }
        tokio::select! {
            () = subscription.notified() => {}
            () = tokio::time::sleep_until(deadline) => return Ok(read().await?),
        }
    }
}
