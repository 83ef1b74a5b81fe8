//! A task: `POST /tasks`' body, and a task as the API shows it.

use chrono::{DateTime, Utc};
use poem::IntoResponse;
use poem_openapi::{
    Enum, Object,
    payload::Payload,
    registry::{MetaSchemaRef, Registry},
    types::{ToJSON, Type},
};
use serde_json::Value;

use super::{QueueName, TaskName, Text};
use crate::model::{TaskRecord, TaskStatus};

/// `POST /tasks` body (also a task of `POST /workflows`). Every field but `name` is optional.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct NewTaskRequest {
    /// Task name: built in (`add`, `noop`, `sleep`, `echo`, `fail`) or registered by a worker.
    /// 1–256 characters from `A-Z a-z 0-9 _ . : -`, starting with a letter or digit.
    pub name: TaskName,
    /// Arguments, any JSON (an object for the built-in tasks); default `{}`.
    pub args: Option<Value>,
    /// Queue to put the task on; default `default`. 1–128 characters from
    /// `A-Z a-z 0-9 _ . : -`, starting with a letter or digit.
    pub queue: Option<QueueName>,
    /// Seconds to wait before the task may start.
    #[oai(validator(minimum(value = "0"), maximum(value = "31536000")))]
    pub countdown: Option<f64>,
    /// Earliest start time (RFC 3339); exclusive with `countdown`.
    pub eta: Option<DateTime<Utc>>,
    /// Revoke the task if it has not started by then: seconds from now (number)
    /// or a time (RFC 3339 string).
    pub expires: Option<Value>,
    /// Retries after a failed attempt (default 0, or the task's registered default).
    #[oai(validator(maximum(value = "1000")))]
    pub max_retries: Option<u32>,
    /// Base of the exponential retry delay in seconds (default 1): base, 2·base, 4·base, …
    #[oai(validator(minimum(value = "0"), maximum(value = "86400")))]
    pub retry_backoff: Option<f64>,
    /// Cap of the retry delay in seconds (default 600).
    #[oai(validator(minimum(value = "0"), maximum(value = "604800")))]
    pub retry_backoff_max: Option<f64>,
    /// Randomize each retry delay between half and all of it (default true).
    pub retry_jitter: Option<bool>,
    /// Error kinds (`exc_type`s, like `TaskFailed` or `TimeLimitExceeded`) that
    /// are retried; default: every retryable error.
    pub retry_on: Option<Vec<Text>>,
    /// 0 (default) to 9; higher runs first, FIFO within a priority.
    #[oai(validator(maximum(value = "9")))]
    pub priority: Option<u8>,
    /// Hard time limit in seconds: the task is aborted and fails with `TimeLimitExceeded`.
    #[oai(validator(minimum(value = "0.001"), maximum(value = "604800")))]
    pub time_limit: Option<f64>,
    /// Soft time limit in seconds: the task's cancellation signal fires so it can clean up.
    #[oai(validator(minimum(value = "0.001"), maximum(value = "604800")))]
    pub soft_time_limit: Option<f64>,
    /// A second request with the same key, while the first task's record lives,
    /// returns the first task's id (200) instead of enqueueing again.
    #[oai(validator(min_length = 1, max_length = 256))]
    pub idempotency_key: Option<Text>,
    /// When the task reaches a final state, its record (this API's `GET /tasks/{task_id}`
    /// body) is POSTed here (`http` or `https`); default: its queue's callback, if the
    /// API has one (`CELERIAC_QUEUE_CALLBACKS`).
    #[oai(validator(max_length = 2048))]
    pub callback_url: Option<Text>,
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
    /// Taken out of its queue until resumed.
    Paused,
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
            TaskStatus::Paused => Self::Paused,
        }
    }
}

/// The schema of a task as `GET /tasks/{task_id}` shows it; the answer itself is
/// [`TaskView`], written straight from the record (a test reads every field of
/// it back through this struct).
#[derive(Debug, Object)]
#[oai(rename = "TaskView")]
pub struct TaskSchema {
    /// Task id.
    pub task_id: String,
    /// Current status.
    pub status: Status,
    /// The return value on SUCCESS; `{"exc_type", "exc_message"}` on FAILURE; else null.
    pub result: Value,
    /// Error chain of the last failure.
    #[oai(nullable)]
    pub traceback: Option<String>,
    /// Ids of tasks this task enqueued.
    pub children: Vec<String>,
    /// The task that enqueued this one.
    #[oai(nullable)]
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
    #[oai(nullable)]
    pub progress: Option<Value>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Earliest start (countdown, ETA, next retry).
    #[oai(nullable)]
    pub eta: Option<DateTime<Utc>>,
    /// When the latest attempt started.
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker of the latest attempt.
    #[oai(nullable)]
    pub worker: Option<String>,
    /// Revoked if not started by then.
    #[oai(nullable)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Execution options (given with the task, then the task's registered defaults).
    pub options: Value,
    /// A cancellation was requested while the task ran; it ends REVOKED when it stops.
    pub cancel_requested: bool,
    /// The workflow this task belongs to.
    #[oai(nullable)]
    pub workflow_id: Option<String>,
    /// The schedule that fired this task: `{"name", "due_at"}`.
    #[oai(nullable)]
    pub schedule: Option<Value>,
    /// Its completion callback, if it has one, and how far the delivery got.
    #[oai(nullable)]
    pub callback: Option<CallbackView>,
}

/// A task's completion callback.
#[derive(Debug, Object)]
pub struct CallbackView {
    /// Where the record is POSTed.
    pub url: String,
    /// How far the delivery got.
    pub status: CallbackDelivery,
    /// Delivery attempts made so far.
    pub attempts: u32,
    /// Why the latest attempt failed.
    #[oai(nullable)]
    pub last_error: Option<String>,
}

/// How far a callback's delivery got.
#[derive(Debug, Enum)]
#[oai(rename_all = "lowercase")]
pub enum CallbackDelivery {
    /// Not delivered yet: the task is not final, or a delivery runs or waits for a retry.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a 4xx answer, a destination not allowed, or every attempt failed.
    Failed,
}

/// A task as `GET /tasks/{task_id}` shows it: the record's JSON
/// (`TaskRecord::to_json`, shared with completion callbacks) under
/// [`TaskSchema`]'s schema. Parsing that JSON into the typed struct and writing
/// it again cost about a tenth of the API's CPU under load.
#[derive(Debug)]
pub struct TaskView(TaskRecord);

impl From<TaskRecord> for TaskView {
    fn from(r: TaskRecord) -> Self {
        Self(r)
    }
}

impl Type for TaskView {
    const IS_REQUIRED: bool = true;
    type RawValueType = Self;
    type RawElementValueType = Self;

    fn name() -> std::borrow::Cow<'static, str> {
        TaskSchema::name()
    }

    fn schema_ref() -> MetaSchemaRef {
        TaskSchema::schema_ref()
    }

    fn register(registry: &mut Registry) {
        TaskSchema::register(registry);
    }

    fn as_raw_value(&self) -> Option<&Self> {
        Some(self)
    }

    fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a Self> + 'a> {
        Box::new(std::iter::once(self))
    }
}

impl ToJSON for TaskView {
    fn to_json(&self) -> Option<Value> {
        Some(self.0.to_json())
    }
}

/// A single task's answer is a `TaskView` itself, not `Json<TaskView>`: its text
/// is written in one pass (`TaskRecord::to_json_vec`), with no `Value` built and
/// serialized again (every poll of a task comes here).
impl Payload for TaskView {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        TaskSchema::schema_ref()
    }

    fn register(registry: &mut Registry) {
        TaskSchema::register(registry);
    }
}

impl IntoResponse for TaskView {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type(<Self as Payload>::CONTENT_TYPE)
            .body(self.0.to_json_vec())
    }
}

#[cfg(test)]
mod tests {
    use poem_openapi::types::ParseFromJSON;

    use super::*;

    #[test]
    fn the_view_writes_back_exactly_the_records_json() {
        use crate::model::{CallbackState, CallbackStatus, TaskOptions};
        let at = |ms| chrono::DateTime::from_timestamp_millis(ms).unwrap();
        let full = TaskRecord {
            id: uuid::Uuid::new_v4(),
            name: "n".into(),
            queue: "q".into(),
            args: serde_json::json!({"a": [1, 2]}),
            status: TaskStatus::Failure,
            result: Some(serde_json::json!({"exc_type": "E"})),
            traceback: Some("E: x".into()),
            children: vec![uuid::Uuid::new_v4()],
            parent_id: Some(uuid::Uuid::new_v4()),
            attempts: 3,
            retries: 2,
            max_retries: 5,
            priority: 9,
            errors: vec![serde_json::json!({"attempt": 1})],
            progress: Some(serde_json::json!({"current": 1})),
            created_at: at(1_700_000_000_123),
            eta: Some(at(1_700_000_001_000)),
            started_at: Some(at(1_700_000_002_000)),
            finished_at: Some(at(1_700_000_003_000)),
            worker: Some("w".into()),
            expires_at: Some(at(1_700_000_004_000)),
            options: TaskOptions {
                max_retries: Some(5),
                retry_on: Some(vec!["E".into()]),
                ..TaskOptions::default()
            },
            cancel_requested: true,
            workflow_id: Some(uuid::Uuid::new_v4()),
            schedule: Some(serde_json::json!({"name": "s"})),
            callback: Some(CallbackState {
                url: "http://x/y".into(),
                status: CallbackStatus::Failed,
                attempts: 2,
                last_error: Some("HTTP 404".into()),
            }),
        };
        let bare = TaskRecord {
            status: TaskStatus::Pending,
            result: None,
            traceback: None,
            children: vec![],
            parent_id: None,
            errors: vec![],
            progress: None,
            eta: None,
            started_at: None,
            finished_at: None,
            worker: None,
            expires_at: None,
            options: TaskOptions::default(),
            cancel_requested: false,
            workflow_id: None,
            schedule: None,
            callback: None,
            ..full.clone()
        };
        for r in [full, bare] {
            let json = r.to_json();
            let typed = TaskSchema::parse_from_json(Some(json.clone())).expect("the record's JSON fits the schema");
            assert_eq!(typed.to_json(), Some(json.clone()));
            assert_eq!(
                r.to_json_vec(),
                serde_json::to_vec(&json).unwrap(),
                "the text and the Value agree"
            );
            assert_eq!(TaskView::from(r).to_json(), Some(json));
        }
    }
}

/// `POST /tasks/batch` body.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct BatchRequest {
    /// The tasks, each a `POST /tasks` body (without `idempotency_key`).
    pub tasks: Vec<NewTaskRequest>,
    /// The batch's own key: a second request with the same key, within the result
    /// TTL and while the first batch's first task's record lives, returns the
    /// first batch's ids (200) instead of enqueueing again.
    #[oai(validator(min_length = 1, max_length = 256))]
    pub idempotency_key: Option<Text>,
}

/// `POST /tasks/batch` answer.
#[derive(Debug, Object)]
pub struct BatchCreated {
    /// The tasks' ids, in the order given (200: the earlier batch's).
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
