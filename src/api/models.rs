//! Request and response bodies of the HTTP API (separate from the domain types).

use chrono::{DateTime, Utc};
use poem::{IntoResponse, Request, RequestBody, error::ReadBodyError};
use poem_openapi::{
    ApiExtractor, ApiExtractorType, Enum, ExtractParamOptions, Object,
    payload::Payload,
    registry::{MetaMediaType, MetaRequest, MetaSchema, MetaSchemaRef, Registry},
    types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type},
};
use serde_json::Value;

use super::error::ApiError;
use crate::{
    model::{QueueStats, WorkflowKind, WorkflowRecord},
    model::{TaskRecord, TaskStatus},
};

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
    pub retry_on: Option<Vec<String>>,
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
    pub idempotency_key: Option<String>,
    /// When the task reaches a final state, its record (this API's `GET /tasks/{task_id}`
    /// body) is POSTed here (`http` or `https`); default: its queue's callback, if the
    /// API has one (`CELERIAC_QUEUE_CALLBACKS`).
    #[oai(validator(max_length = 2048))]
    pub callback_url: Option<String>,
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

/// Kind of a workflow.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum WorkflowType {
    /// Tasks one after the other, each fed the previous result.
    Chain,
    /// Tasks in parallel; the result lists every result in order.
    Group,
    /// A group, then `callback` fed the list of results.
    Chord,
}

/// `POST /workflows` body.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// `chain`, `group` or `chord`.
    #[oai(rename = "type")]
    pub kind: WorkflowType,
    /// The tasks (for a chord: its header), in order; `countdown`, `eta`,
    /// `expires` and `idempotency_key` do not apply to them.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub tasks: Vec<NewTaskRequest>,
    /// A chord's callback, fed the list of the header's results.
    pub callback: Option<NewTaskRequest>,
}

/// `202` body of `POST /workflows`.
#[derive(Debug, Object)]
pub struct WorkflowCreatedView {
    /// Id to read the workflow at `GET /workflows/{workflow_id}`.
    pub workflow_id: String,
    /// Ids of its tasks, in order (each an ordinary task at `GET /tasks/{id}`).
    pub task_ids: Vec<String>,
    /// Id of a chord's callback task.
    #[oai(nullable)]
    pub callback_id: Option<String>,
}

/// A workflow as `GET /workflows/{workflow_id}` shows it.
#[derive(Debug, Object)]
pub struct WorkflowView {
    /// Workflow id.
    pub workflow_id: String,
    /// `chain`, `group` or `chord`.
    #[oai(rename = "type")]
    pub kind: WorkflowType,
    /// STARTED until it ends SUCCESS, FAILURE or REVOKED.
    pub status: Status,
    /// Tasks finished (a chord's callback not counted).
    pub done: u32,
    /// Tasks in all (a chord's callback not counted).
    pub total: u32,
    /// Tasks that did not succeed.
    pub failed: u32,
    /// The chain's task that stopped it.
    #[oai(nullable)]
    pub failed_task_id: Option<String>,
    /// Task ids, in order.
    pub task_ids: Vec<String>,
    /// A chord's callback task id.
    #[oai(nullable)]
    pub callback_id: Option<String>,
    /// Chain: the last task's result; group: every result in order; chord: the callback's result.
    pub result: Value,
    /// Creation time.
    #[oai(nullable)]
    pub created_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<WorkflowRecord> for WorkflowView {
    fn from(w: WorkflowRecord) -> Self {
        Self {
            workflow_id: w.id.to_string(),
            kind: match w.kind {
                WorkflowKind::Chain => WorkflowType::Chain,
                WorkflowKind::Group => WorkflowType::Group,
                WorkflowKind::Chord => WorkflowType::Chord,
            },
            status: w.status.into(),
            done: w.done,
            total: w.total,
            failed: w.failed,
            failed_task_id: w.failed_task.map(|t| t.to_string()),
            task_ids: w.task_ids.iter().map(ToString::to_string).collect(),
            callback_id: w.callback_id.map(|c| c.to_string()),
            result: w.result,
            created_at: w.created_at,
            finished_at: w.finished_at,
        }
    }
}

/// Counts of one queue.
#[derive(Debug, Object)]
pub struct QueueView {
    /// Queue name.
    pub name: String,
    /// Queue name (the first field of this object; kept for existing clients).
    pub queue: String,
    /// Tasks ready to be claimed, due delayed tasks included (the figure to autoscale workers on).
    pub ready: u64,
    /// Tasks waiting for their time (countdown, ETA, retry backoff).
    pub delayed: u64,
    /// Tasks running under a lease.
    pub running: u64,
    /// Tasks held PAUSED.
    pub paused: u64,
    /// Tasks of this queue given up after too many lost deliveries.
    pub dead: u64,
    /// Whether workers are told not to claim from this queue.
    pub is_paused: bool,
    /// Seconds the task at the head of the queue (the next to run) has been ready; 0 when empty.
    pub oldest_ready_age_s: f64,
    /// ONLINE workers consuming this queue.
    pub workers: u64,
    /// Tasks enqueued during the last minute.
    pub enqueued_last_min: u64,
    /// Tasks finished during the last minute.
    pub completed_last_min: u64,
}

impl From<QueueStats> for QueueView {
    fn from(s: QueueStats) -> Self {
        Self {
            name: s.queue.clone(),
            queue: s.queue,
            ready: s.ready,
            delayed: s.delayed,
            running: s.running,
            paused: s.paused,
            dead: s.dead,
            is_paused: s.is_paused,
            oldest_ready_age_s: s.oldest_ready_age_s,
            workers: s.workers,
            enqueued_last_min: s.enqueued_last_min,
            completed_last_min: s.completed_last_min,
        }
    }
}

/// A task running on a worker.
#[derive(Debug, Object)]
pub struct ActiveTaskView {
    /// Task id.
    pub task_id: String,
    /// Task name.
    pub name: String,
    /// Its queue.
    pub queue: String,
    /// The worker running it.
    pub worker: String,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Seconds it has been running.
    pub runtime_s: f64,
}

impl From<&crate::model::ActiveTask> for ActiveTaskView {
    fn from(a: &crate::model::ActiveTask) -> Self {
        Self {
            task_id: a.task_id.clone(),
            name: a.name.clone(),
            queue: a.queue.clone(),
            worker: a.worker.clone(),
            started_at: ms_to_time(a.started_at_ms),
            runtime_s: (crate::model::now_ms() - a.started_at_ms).max(0) as f64 / 1000.0,
        }
    }
}

/// A worker, as its registration and heartbeats show it.
#[derive(Debug, Object)]
pub struct WorkerView {
    /// Worker name (unique).
    pub name: String,
    /// Host it runs on.
    pub hostname: String,
    /// Process id.
    pub pid: u32,
    /// celeriac version.
    pub version: String,
    /// Queues it consumes, in order of preference.
    pub queues: Vec<String>,
    /// Tasks it runs at once.
    pub concurrency: u64,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// Its last heartbeat (or its clean stop).
    pub last_heartbeat: DateTime<Utc>,
    /// Its heartbeat interval, seconds.
    pub heartbeat_s: f64,
    /// `ONLINE`, `NOT_RESPONDING` (no heartbeat for more than 3 intervals) or
    /// `STOPPED` (shut down cleanly, or silent longer than the stopped threshold).
    pub status: String,
    /// Tasks it runs now.
    pub active: Vec<ActiveTaskView>,
    /// Tasks claimed but not started yet: always empty, since a worker starts
    /// every task it claims (it claims only for free slots).
    pub reserved: Vec<ActiveTaskView>,
    /// Tasks it finished since it started (as of its last heartbeat).
    pub processed: u64,
}

impl From<crate::model::WorkerState> for WorkerView {
    fn from(w: crate::model::WorkerState) -> Self {
        Self {
            active: w.active.iter().map(Into::into).collect(),
            reserved: Vec::new(),
            hostname: w.hostname,
            pid: w.pid,
            version: w.version,
            queues: w.queues,
            concurrency: w.concurrency as u64,
            started_at: ms_to_time(w.started_at_ms),
            last_heartbeat: ms_to_time(w.last_heartbeat_ms),
            heartbeat_s: w.heartbeat.as_secs_f64(),
            status: w.status.as_str().to_owned(),
            processed: w.processed,
            name: w.name,
        }
    }
}

/// `GET /workers` body.
#[derive(Debug, Object)]
pub struct WorkerList {
    /// Registered workers (STOPPED ones until their retention ends), by name.
    pub workers: Vec<WorkerView>,
}

/// Milliseconds since the epoch as a time (the epoch for nonsense).
pub fn ms_to_time(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
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
        let bytes = body.take()?.into_bytes_limit(limit).await.map_err(|e| match e {
            ReadBodyError::PayloadTooLarge => ApiError::too_large(limit).into_poem(),
            e => ApiError::bad_request("bad_body", e.to_string()).into_poem(),
        })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self(None));
        }
        let value: Value = serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad_request("bad_json", format!("body is not valid JSON: {e}")).into_poem())?;
        if value.is_null() {
            return Ok(Self(None));
        }
        T::parse_from_json(Some(value))
            .map(|t| Self(Some(t)))
            .map_err(|e| ApiError::unprocessable("invalid_task", e.into_message()).into_poem())
    }
}

pub use crate::model::name::{MAX_QUEUE_NAME, MAX_TASK_NAME, is_safe_name};

/// A JSON string field read strictly: poem-openapi's `String` also takes
/// numbers and booleans (`{"name": 5}` would become `"5"`); these do not.
/// The charset is checked by the handler, so its error names the field.
macro_rules! strict_name {
    ($(#[$doc:meta])* $ty:ident, $max:expr, $pattern:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub struct $ty(pub String);

        impl Type for $ty {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> std::borrow::Cow<'static, str> {
                "string".into()
            }

            fn schema_ref() -> MetaSchemaRef {
                let mut schema = MetaSchema::new("string");
                schema.min_length = Some(1);
                schema.max_length = Some($max);
                schema.pattern = Some($pattern.to_owned());
                MetaSchemaRef::Inline(Box::new(schema))
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(std::iter::once(&self.0))
            }
        }

        impl ToJSON for $ty {
            fn to_json(&self) -> Option<Value> {
                Some(Value::String(self.0.clone()))
            }
        }

        impl ParseFromJSON for $ty {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                match value {
                    Some(Value::String(s)) => Ok(Self(s)),
                    Some(other) => Err(ParseError::custom(format!(
                        "expected a string, found {}",
                        match other {
                            Value::Null => "null",
                            Value::Bool(_) => "a boolean",
                            Value::Number(_) => "a number",
                            Value::Array(_) => "an array",
                            _ => "an object",
                        }
                    ))),
                    None => Err(ParseError::expected_input()),
                }
            }
        }
    };
}

strict_name!(
    /// A queue name (`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$`).
    QueueName,
    MAX_QUEUE_NAME,
    "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
);
strict_name!(
    /// A task name (`^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$`).
    TaskName,
    MAX_TASK_NAME,
    "^[A-Za-z0-9][A-Za-z0-9_.:-]{0,255}$"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn safe_names_are_a_short_ascii_charset() {
        for ok in ["default", "media.encode-1", "a:b_c", "9", &"q".repeat(128)] {
            assert!(is_safe_name(ok, MAX_QUEUE_NAME), "{ok}");
        }
        for bad in [
            "",
            "a/b",
            "../../x",
            "-a",
            ".a",
            "a b",
            "a{b}",
            "é",
            "a\u{7f}",
            &"q".repeat(129),
        ] {
            assert!(!is_safe_name(bad, MAX_QUEUE_NAME), "{bad:?}");
        }
    }

    #[test]
    fn names_must_be_json_strings() {
        assert_eq!(
            QueueName::parse_from_json(Some(Value::from("q"))).ok(),
            Some(QueueName("q".into()))
        );
        assert!(QueueName::parse_from_json(Some(Value::from(5))).is_err());
        assert!(TaskName::parse_from_json(Some(Value::from(true))).is_err());
        assert!(TaskName::parse_from_json(Some(Value::Null)).is_err());
    }

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
