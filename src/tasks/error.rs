//! The task-failure taxonomy: a handler says how it failed (retryable, fatal,
//! timeout); the executor, not the handler, decides between retry and failure.

use std::time::Duration;

use serde_json::Value;

/// How a task failed; the executor, not the task, decides between retry and failure.
#[derive(Debug)]
pub struct TaskError {
    kind: TaskErrorKind,
    exc_type: String,
    error: anyhow::Error,
    retry_after: Option<Duration>,
}

/// The failure taxonomy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TaskErrorKind {
    /// An ordinary error: retried while the task's retry budget lasts.
    Retryable,
    /// Never retried (bad arguments, a task that cannot succeed).
    Fatal,
    /// The task ran out of time.
    Timeout,
}

impl TaskError {
    /// A retryable error of kind `exc_type` (shown like an exception class name).
    pub fn new(exc_type: impl Into<String>, error: impl Into<anyhow::Error>) -> Self {
        Self {
            kind: TaskErrorKind::Retryable,
            exc_type: exc_type.into(),
            error: error.into(),
            retry_after: None,
        }
    }

    /// An error that is never retried.
    pub fn fatal(exc_type: impl Into<String>, error: impl Into<anyhow::Error>) -> Self {
        Self {
            kind: TaskErrorKind::Fatal,
            ..Self::new(exc_type, error)
        }
    }

    /// A time limit was exceeded.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self {
            kind: TaskErrorKind::Timeout,
            ..Self::new("TimeLimitExceeded", anyhow::anyhow!(message.into()))
        }
    }

    /// The task failed after its soft time limit fired (it gave up on the signal).
    pub(crate) fn timeout_soft(error: TaskError) -> Self {
        Self {
            kind: TaskErrorKind::Timeout,
            exc_type: "SoftTimeLimitExceeded".to_owned(),
            error: error.error.context("soft time limit exceeded"),
            retry_after: None,
        }
    }

    /// Asks for the next attempt after `delay` instead of the computed backoff.
    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// The failure kind.
    pub fn kind(&self) -> TaskErrorKind {
        self.kind
    }

    /// The exception-like type name.
    pub fn exc_type(&self) -> &str {
        &self.exc_type
    }

    /// The requested retry delay, if any.
    pub fn requested_delay(&self) -> Option<Duration> {
        self.retry_after
    }

    /// The outermost message.
    pub fn message(&self) -> String {
        self.error.to_string()
    }

    /// The error chain, Python-traceback style: the type and message, then each cause.
    pub fn traceback(&self) -> String {
        let mut out = format!("{}: {}", self.exc_type, self.error);
        for cause in self.error.chain().skip(1) {
            out.push_str("\n  caused by: ");
            out.push_str(&cause.to_string());
        }
        out
    }
}

impl<E: Into<anyhow::Error>> From<E> for TaskError {
    fn from(error: E) -> Self {
        Self::new("TaskError", error)
    }
}

/// What a handler returns.
pub type TaskResult = Result<Value, TaskError>;
