//! Tasks as a collection: enqueue (one or a batch), list, read one (with a long
//! poll) and forget one. Steering one task is `task_control.rs`.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, OpenApi, param::Path, param::Query, payload::Json};
use rand::Rng;
use serde_json::{Value, json};
use uuid::Uuid;

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    long_poll::wait_final,
    models::{BatchCreated, BatchRequest, JsonBody, NewTaskRequest, TaskCreated, TaskList, TaskView},
    new_task::{Placement, new_task},
};
use crate::{
    error::QueueError,
    model::{NewTask, TaskStatus},
    queue::{Cursor, TaskFilter},
};

/// Default and largest page of `GET /tasks`.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 500;

/// `POST /tasks/batch` answers.
#[derive(ApiResponse)]
pub enum BatchResponse {
    /// Accepted: every task is queued (or delayed until its ETA).
    #[oai(status = 202)]
    Accepted(Json<BatchCreated>),
    /// A batch with this `idempotency_key` was accepted before: its ids, nothing enqueued.
    #[oai(status = 200)]
    Existing(Json<BatchCreated>),
}

/// `GET /tasks` answers.
#[derive(ApiResponse)]
pub enum ListResponse {
    /// One page.
    #[oai(status = 200)]
    Ok(Json<TaskList>),
}

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
            Err(e) => Err(enqueue_error(e, "task")),
        }
    }

    /// Enqueue many tasks at once, all or nothing.
    ///
    /// Body `{"tasks": [<POST /tasks body>, ...]}` (at most `CELERIAC_BATCH_MAX`,
    /// default 1000). An invalid member answers 422 naming its index, and nothing
    /// is enqueued. One script call per request. With the batch's own
    /// `idempotency_key`, a retried request enqueues nothing twice: it answers
    /// 200 with the first batch's ids.
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
        let BatchRequest {
            tasks: members,
            idempotency_key: key,
        } = body.0;
        let mut tasks = Vec::with_capacity(members.len());
        for (i, req) in members.into_iter().enumerate() {
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
        let accepted = match state
            .queue
            .enqueue_batch(&tasks, key.as_ref().map(|k| k.0.as_str()), |n| {
                state.require_registered(n)
            })
            .await
        {
            Ok(Ok(accepted)) => accepted,
            Ok(Err(refused)) => return Err(at_index(state.unknown_task(&refused.name).await, refused.index)),
            Err(e) => return Err(enqueue_error(e, "batch")),
        };
        let body = Json(BatchCreated {
            task_ids: accepted.ids.iter().map(ToString::to_string).collect(),
        });
        Ok(if accepted.created {
            BatchResponse::Accepted(body)
        } else {
            BatchResponse::Existing(body)
        })
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

/// The answer to a refused operation on one task.
pub(super) fn control_error(e: QueueError, raw: &str) -> ApiError {
    match e {
        QueueError::NotFound => ApiError::task_not_found(raw),
        QueueError::Conflict => ApiError::conflict("the task's status does not allow this"),
        e => e.into(),
    }
}

/// A task id as the path gives it; one that is not a UUID is a task not found.
pub(super) fn parse_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::task_not_found(raw))
}

/// The answer to an enqueue (of a `task` or a `batch`) that failed in Redis. A
/// stall can cut the answer off after the script ran: the client cannot tell, so
/// a 503 tells it how to retry without a duplicate.
fn enqueue_error(e: QueueError, what: &str) -> ApiError {
    if !e.is_unavailable() {
        return e.into();
    }
    tracing::warn!(error.cause_chain = ?e, "redis unavailable during a {what} enqueue");
    ApiError::unavailable(format!(
        "redis is unreachable, retry later; the {what} may have been enqueued anyway: \
         retry with the same idempotency_key to enqueue it at most once"
    ))
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
