//! Request and response bodies of the HTTP API (separate from the domain types).

use chrono::{DateTime, Utc};
use poem::{Request, RequestBody, error::ReadBodyError};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, Enum, ExtractParamOptions, Object,
    registry::{MetaMediaType, MetaRequest, Registry},
    types::{ParseFromJSON, Type},
};
use serde_json::Value;

use super::error::ApiError;
use crate::{
    queue::QueueStats,
    task::{TaskRecord, TaskStatus},
};

/// `POST /tasks` body. Every field but `name` is optional.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewTaskRequest {
    /// Task name: built in (`add`, `noop`, `sleep`, `echo`, `fail`) or registered by a worker.
    pub name: String,
    /// Arguments, any JSON (an object for the built-in tasks); default `{}`.
    pub args: Option<Value>,
    /// Queue to put the task on; default `default`.
    pub queue: Option<String>,
    /// Seconds to wait before the task may start.
    #[oai(validator(minimum(value = "0"), maximum(value = "31536000")))]
    pub countdown: Option<f64>,
    /// Earliest start time (RFC 3339); exclusive with `countdown`.
    pub eta: Option<DateTime<Utc>>,
    /// Retries after a failed attempt (default 0).
    #[oai(validator(maximum(value = "1000")))]
    pub max_retries: Option<u32>,
    /// 0 (default) to 9; higher runs first, FIFO within a priority.
    #[oai(validator(maximum(value = "9")))]
    pub priority: Option<u8>,
}

/// `202` body of `POST /tasks`.
#[derive(Debug, Object)]
pub struct TaskCreated {
    /// Id to read the task at `GET /tasks/{task_id}`.
    pub task_id: String,
}

/// Task status (Celery's names).
#[derive(Debug, Enum)]
#[oai(rename_all = "UPPERCASE")]
pub enum Status {
    /// Waiting in its queue or for its ETA.
    Pending,
    /// Running on a worker.
    Started,
    /// Failed, waiting for its next attempt.
    Retry,
    /// Finished with a result.
    Success,
    /// Finished with an error.
    Failure,
    /// Cancelled or expired.
    Revoked,
}

impl From<TaskStatus> for Status {
    fn from(s: TaskStatus) -> Self {
        match s {
            TaskStatus::Pending => Self::Pending,
            TaskStatus::Started => Self::Started,
            TaskStatus::Retry => Self::Retry,
            TaskStatus::Success => Self::Success,
            TaskStatus::Failure => Self::Failure,
            TaskStatus::Revoked => Self::Revoked,
        }
    }
}

/// A task as `GET /tasks/{task_id}` shows it.
#[derive(Debug, Object)]
pub struct TaskView {
    /// Task id.
    pub task_id: String,
    /// Current status.
    pub status: Status,
    /// The return value on SUCCESS; `{"exc_type", "exc_message"}` on FAILURE; else null.
    pub result: Value,
    /// Error chain of the last failure.
    pub traceback: Option<String>,
    /// Ids of tasks this task enqueued.
    pub children: Vec<String>,
    /// The task that enqueued this one.
    pub parent_id: Option<String>,
    /// Task name.
    pub name: String,
    /// Queue.
    pub queue: String,
    /// Arguments.
    pub args: Value,
    /// Starts so far (a task re-run after its worker died counts again).
    pub attempts: u32,
    /// Retries scheduled so far.
    pub retries: u32,
    /// Retry budget.
    pub max_retries: u32,
    /// Priority 0–9.
    pub priority: u8,
    /// Errors of the failed attempts, oldest first.
    pub errors: Vec<Value>,
    /// Progress reported by the running task.
    pub progress: Option<Value>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Earliest start (countdown, ETA, next retry).
    pub eta: Option<DateTime<Utc>>,
    /// When the latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker of the latest attempt.
    pub worker: Option<String>,
}

impl From<TaskRecord> for TaskView {
    fn from(r: TaskRecord) -> Self {
        Self {
            task_id: r.id.to_string(),
            status: r.status.into(),
            result: r.result.unwrap_or(Value::Null),
            traceback: r.traceback,
            children: r.children.iter().map(ToString::to_string).collect(),
            parent_id: r.parent_id.map(|p| p.to_string()),
            name: r.name,
            queue: r.queue,
            args: r.args,
            attempts: r.attempts,
            retries: r.retries,
            max_retries: r.max_retries,
            priority: r.priority,
            errors: r.errors,
            progress: r.progress,
            created_at: r.created_at,
            eta: r.eta,
            started_at: r.started_at,
            finished_at: r.finished_at,
            worker: r.worker,
        }
    }
}

/// Counts of one queue.
#[derive(Debug, Object)]
pub struct QueueView {
    /// Queue name.
    pub queue: String,
    /// Tasks ready to be claimed (the figure to autoscale workers on).
    pub ready: u64,
    /// Tasks waiting for their time (countdown, ETA, retry backoff).
    pub delayed: u64,
}

impl From<QueueStats> for QueueView {
    fn from(s: QueueStats) -> Self {
        Self {
            queue: s.queue,
            ready: s.ready,
            delayed: s.delayed,
        }
    }
}

/// `/healthz` and `/readyz` body.
#[derive(Debug, Object)]
pub struct HealthView {
    /// `ok` or `ready`.
    pub status: String,
}

/// The largest request body accepted, attached to the app as request data.
#[derive(Clone, Copy, Debug)]
pub struct BodyLimit(pub usize);

/// An optional JSON body, read leniently: any content type (curl's default
/// form type included) and an empty body (the classic `curl -X POST /tasks`)
/// are accepted. Invalid JSON is a 400, JSON that does not fit `T` a 422, a
/// body over [`BodyLimit`] a 413.
#[derive(Debug)]
pub struct JsonBody<T>(pub Option<T>);

impl<'a, T: ParseFromJSON + Type> ApiExtractor<'a> for JsonBody<T> {
    const TYPES: &'static [ApiExtractorType] = &[ApiExtractorType::RequestObject];
    type ParamType = ();
    type ParamRawType = ();

    fn register(registry: &mut Registry) {
        T::register(registry);
    }

    fn request_meta() -> Option<MetaRequest> {
        Some(MetaRequest {
            description: None,
            content: vec![MetaMediaType {
                content_type: "application/json",
                schema: T::schema_ref(),
            }],
            required: false,
        })
    }

    async fn from_request(
        request: &'a Request,
        body: &mut RequestBody,
        _param_opts: ExtractParamOptions<Self::ParamType>,
    ) -> poem::Result<Self> {
        let limit = request.data::<BodyLimit>().map_or(1024 * 1024, |l| l.0);
        let bytes = body
            .take()?
            .into_bytes_limit(limit)
            .await
            .map_err(|e| match e {
                ReadBodyError::PayloadTooLarge => ApiError::too_large(limit).into_poem(),
                e => ApiError::bad_request("bad_body", e.to_string()).into_poem(),
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let value: Value = serde_json::from_slice(&bytes).map_err(|e| {
            ApiError::bad_request("bad_json", format!("body is not valid JSON: {e}")).into_poem()
        })?;
        if value.is_null() {
            return Ok(Self(None));
        }
        T::parse_from_json(Some(value))
            .map(|t| Self(Some(t)))
            .map_err(|e| ApiError::unprocessable("invalid_task", e.into_message()).into_poem())
    }
}
