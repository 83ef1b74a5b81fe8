//! The task model (no I/O): statuses, options, what is enqueued, what a worker
//! claims, and the record read back.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

/// The queue used when none is given.
pub const DEFAULT_QUEUE: &str = "default";

/// Lifecycle of a task; the names are Celery's so that existing clients keep working.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskStatus {
    /// Waiting in its queue (or for its ETA).
    Pending,
    /// Claimed by a worker, running under a lease.
    Started,
    /// Failed and waiting for its next attempt.
    Retry,
    /// Finished with a result.
    Success,
    /// Finished with an error (retries exhausted, or not retryable).
    Failure,
    /// Cancelled or expired before finishing.
    Revoked,
    /// Taken out of its queue by an operator until it is resumed.
    Paused,
}

impl TaskStatus {
    /// The name stored in Redis and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "PENDING",
            Self::Started => "STARTED",
            Self::Retry => "RETRY",
            Self::Success => "SUCCESS",
            Self::Failure => "FAILURE",
            Self::Revoked => "REVOKED",
            Self::Paused => "PAUSED",
        }
    }

    /// Parses a stored status name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "PENDING" => Self::Pending,
            "STARTED" => Self::Started,
            "RETRY" => Self::Retry,
            "SUCCESS" => Self::Success,
            "FAILURE" => Self::Failure,
            "REVOKED" => Self::Revoked,
            "PAUSED" => Self::Paused,
            _ => return None,
        })
    }

    /// True for the states a task never leaves.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Revoked)
    }
}

/// Per-task execution options. Unset options fall back to the defaults the
/// task's registration published (Celery's task decorator options), then to
/// the built-in defaults noted on each field. Stored with the task as JSON.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskOptions {
    /// Retries after a failed attempt (default 0).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// 0 (default) to 9; higher runs first, FIFO within a priority.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub priority: Option<u8>,
    /// Base of the exponential retry delay in seconds: base, 2·base, 4·base, … (default 1).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<f64>,
    /// Cap of the retry delay in seconds (default 600).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_backoff_max: Option<f64>,
    /// Randomize each delay between half and all of it (default true).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_jitter: Option<bool>,
    /// Error kinds (`exc_type`s) that are retried; default: every retryable error.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "list_or_empty_object"
    )]
    pub retry_on: Option<Vec<String>>,
    /// Seconds after which the running task is aborted and fails with `TimeLimitExceeded`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub time_limit: Option<f64>,
    /// Seconds after which the running task's cancellation signal fires.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub soft_time_limit: Option<f64>,
    /// Seconds after enqueueing after which a task that has not started is revoked
    /// (only as a registration default; requests give an absolute `expires_at`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<f64>,
}

/// Reads a list that Lua's cjson may have re-encoded as `{}` when it was empty.
fn list_or_empty_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<String>>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum ListOrMap {
        List(Vec<String>),
        Map(serde_json::Map<String, Value>),
    }
    match Option::<ListOrMap>::deserialize(d)? {
        None => Ok(None),
        Some(ListOrMap::List(list)) => Ok(Some(list)),
        Some(ListOrMap::Map(map)) if map.is_empty() => Ok(Some(Vec::new())),
        Some(ListOrMap::Map(_)) => Err(serde::de::Error::custom("expected a list of error kinds")),
    }
}

impl TaskOptions {
    /// Reads stored options; unreadable options are logged, not silently dropped.
    pub fn from_stored(json: &str) -> Self {
        serde_json::from_str(json).unwrap_or_else(|e| {
            tracing::error!(options = json, error.message = %e, "unreadable task options; using defaults");
            Self::default()
        })
    }

    /// True when no option is set.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// A task to enqueue.
#[derive(Clone, Debug)]
pub struct NewTask {
    /// Registered task name.
    pub name: String,
    /// Arguments handed to the task (any JSON).
    pub args: Value,
    /// Queue to put it on.
    pub queue: String,
    /// Execution options given with this task (registration defaults fill the rest).
    pub options: TaskOptions,
    /// Not before this time (countdown / ETA); `None` = now.
    pub eta: Option<DateTime<Utc>>,
    /// Revoked if not started by then.
    pub expires_at: Option<DateTime<Utc>>,
    /// A second enqueue with the same key (while the first task's record lives)
    /// returns the first task's id instead of enqueueing again.
    pub idempotency_key: Option<String>,
    /// The task that enqueued this one, if any.
    pub parent_id: Option<Uuid>,
    /// Where its record is POSTed when it reaches a final state (see [`super::callback`]).
    pub callback_url: Option<String>,
}

impl NewTask {
    /// A task with defaults for everything but its name and arguments.
    pub fn new(name: impl Into<String>, args: Value) -> Self {
        Self {
            name: name.into(),
            args,
            queue: DEFAULT_QUEUE.to_owned(),
            options: TaskOptions::default(),
            eta: None,
            expires_at: None,
            idempotency_key: None,
            parent_id: None,
            callback_url: None,
        }
    }
}

/// A task handed to a worker by a claim, with the lease token that proves ownership.
#[derive(Clone, Debug)]
pub struct ClaimedTask {
    /// Task id.
    pub id: Uuid,
    /// Lease token; completions must present it.
    pub token: String,
    /// Task name.
    pub name: String,
    /// Arguments.
    pub args: Value,
    /// Queue it came from.
    pub queue: String,
    /// Starts so far, this one included.
    pub attempts: u32,
    /// Retries already scheduled for it.
    pub retries: u32,
    /// Retry budget.
    pub max_retries: u32,
    /// Execution options (request and registration defaults merged).
    pub options: TaskOptions,
}

/// A task record as read back from Redis.
#[derive(Clone, Debug, PartialEq)]
pub struct TaskRecord {
    /// Task id.
    pub id: Uuid,
    /// Task name.
    pub name: String,
    /// Queue.
    pub queue: String,
    /// Arguments.
    pub args: Value,
    /// Current status.
    pub status: TaskStatus,
    /// Result on SUCCESS; the error (`{"exc_type", "exc_message"}`) on FAILURE.
    pub result: Option<Value>,
    /// Error chain of the last failure.
    pub traceback: Option<String>,
    /// Tasks this one enqueued.
    pub children: Vec<Uuid>,
    /// The task that enqueued this one.
    pub parent_id: Option<Uuid>,
    /// Starts so far.
    pub attempts: u32,
    /// Retries scheduled so far.
    pub retries: u32,
    /// Retry budget.
    pub max_retries: u32,
    /// Priority 0–9.
    pub priority: u8,
    /// Every failed attempt's error, oldest first.
    pub errors: Vec<Value>,
    /// Progress reported by the running task.
    pub progress: Option<Value>,
    /// When it was enqueued.
    pub created_at: DateTime<Utc>,
    /// Not before this time.
    pub eta: Option<DateTime<Utc>>,
    /// When its latest attempt started.
    pub started_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// The worker of the latest attempt.
    pub worker: Option<String>,
    /// Revoked if not started by then.
    pub expires_at: Option<DateTime<Utc>>,
    /// Execution options (request and registration defaults merged).
    pub options: TaskOptions,
    /// A cancellation was requested while the task ran.
    pub cancel_requested: bool,
    /// The workflow this task belongs to.
    pub workflow_id: Option<Uuid>,
    /// The schedule that fired this task: `{"name", "due_at"}`.
    pub schedule: Option<Value>,
    /// Its completion callback and how far the delivery got.
    pub callback: Option<super::CallbackState>,
}

/// Milliseconds since the Unix epoch, the clock every script receives (`now_ms`).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

#[cfg(test)]
mod tests {
    #[test]
    fn options_survive_an_empty_list_reencoded_by_lua() {
        let o = super::TaskOptions::from_stored(r#"{"retry_on":{},"time_limit":5}"#);
        assert_eq!(o.retry_on, Some(vec![]));
        assert_eq!(o.time_limit, Some(5.0));
        let o = super::TaskOptions::from_stored(r#"{"retry_on":["A"],"future_option":1}"#);
        assert_eq!(o.retry_on, Some(vec!["A".to_owned()]));
    }
}
