//! Domain types of the task model (no I/O): what is enqueued, what a worker
//! claims, and the record read back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde_json::Value;
use uuid::Uuid;

use crate::error::QueueError;

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
            _ => return None,
        })
    }

    /// True for the states a task never leaves.
    pub fn is_final(self) -> bool {
        matches!(self, Self::Success | Self::Failure | Self::Revoked)
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
    /// 0 (lowest, default) to 9 (highest); FIFO inside a priority.
    pub priority: u8,
    /// How many times a failing task is retried.
    pub max_retries: u32,
    /// Not before this time (countdown / ETA); `None` = now.
    pub eta: Option<DateTime<Utc>>,
    /// The task that enqueued this one, if any.
    pub parent_id: Option<Uuid>,
}

impl NewTask {
    /// A task with defaults for everything but its name and arguments.
    pub fn new(name: impl Into<String>, args: Value) -> Self {
        Self {
            name: name.into(),
            args,
            queue: DEFAULT_QUEUE.to_owned(),
            priority: 0,
            max_retries: 0,
            eta: None,
            parent_id: None,
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
}

impl TaskRecord {
    /// Reads a record from the fields of its Redis hash (see `redis/mod.rs`).
    pub fn from_hash(mut h: HashMap<String, String>) -> Result<Self, QueueError> {
        let corrupt = |what: &str| QueueError::Corrupt(format!("task field {what}"));
        let mut take = |k: &str| h.remove(k).filter(|v| !v.is_empty());
        let json = |v: Option<String>| v.and_then(|s| serde_json::from_str::<Value>(&s).ok());
        let time = |v: Option<String>| {
            v.and_then(|s| s.parse::<i64>().ok())
                .and_then(DateTime::from_timestamp_millis)
        };
        let num = |v: Option<String>| v.and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
        let id = take("id")
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| corrupt("id"))?;
        let status = take("status")
            .as_deref()
            .and_then(TaskStatus::parse)
            .ok_or_else(|| corrupt("status"))?;
        let list = |v: Option<Value>| match v {
            Some(Value::Array(items)) => items,
            _ => Vec::new(),
        };
        Ok(Self {
            id,
            status,
            name: take("name").unwrap_or_default(),
            queue: take("queue").unwrap_or_default(),
            args: json(take("args")).unwrap_or(Value::Null),
            result: json(take("result")),
            traceback: take("traceback"),
            children: list(json(take("children")))
                .into_iter()
                .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
                .collect(),
            parent_id: take("parent_id").and_then(|s| s.parse().ok()),
            attempts: num(take("attempts")),
            retries: num(take("retries")),
            max_retries: num(take("max_retries")),
            priority: num(take("priority")).min(9) as u8,
            errors: list(json(take("errors"))),
            progress: json(take("progress")),
            created_at: time(take("created_at")).ok_or_else(|| corrupt("created_at"))?,
            eta: time(take("eta")),
            started_at: time(take("started_at")),
            finished_at: time(take("finished_at")),
            worker: take("worker"),
        })
    }
}

/// Milliseconds since the Unix epoch, the clock every script receives (`now_ms`).
pub fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}
