//! Task name → handler. Handlers are async functions with serde-typed
//! arguments and results; the registry wraps them so the executor deals in JSON.

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin, sync::Arc, time::Duration};

use serde::{Serialize, de::DeserializeOwned};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    error::QueueError,
    queue::Queue,
    task::{ClaimedTask, NewTask, RateLimit, TaskOptions},
};

/// What a task gets besides its arguments.
#[derive(Clone)]
pub struct TaskContext {
    /// This task's id.
    pub task_id: Uuid,
    /// Its name.
    pub name: String,
    /// Which start this is (1 on the first attempt).
    pub attempt: u32,
    cancel: CancellationToken,
    queue: Queue,
    token: String,
}

impl fmt::Debug for TaskContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskContext")
            .field("task_id", &self.task_id)
            .field("name", &self.name)
            .field("attempt", &self.attempt)
            .finish_non_exhaustive()
    }
}

impl TaskContext {
    pub(crate) fn new(task: &ClaimedTask, cancel: CancellationToken, queue: Queue) -> Self {
        Self {
            task_id: task.id,
            name: task.name.clone(),
            attempt: task.attempts,
            cancel,
            queue,
            token: task.token.clone(),
        }
    }

    /// Fires when the task should stop: it was cancelled, its soft time limit
    /// passed, or its lease was lost. Long tasks select on it to clean up and return.
    pub fn cancellation(&self) -> &CancellationToken {
        &self.cancel
    }

    /// True once the cancellation signal fired.
    pub fn is_cancelled(&self) -> bool {
        self.cancel.is_cancelled()
    }

    /// Reports progress; `GET /tasks/{id}` shows it and the events stream carries it.
    pub async fn progress(&self, current: u64, total: u64, message: impl Into<String>) -> Result<(), QueueError> {
        let progress = json!({"current": current, "total": total, "message": message.into()});
        self.queue.progress(&self.task_id, &self.token, &progress).await
    }

    /// Enqueues a child task: it gets this task as `parent_id`, and this task's
    /// `children` lists it.
    pub async fn enqueue(&self, mut task: NewTask) -> Result<Uuid, QueueError> {
        task.parent_id = Some(self.task_id);
        Ok(self.queue.enqueue(&task, false).await?.id)
    }
}

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

type BoxFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;
type Handler = Arc<dyn Fn(TaskContext, Value) -> BoxFuture + Send + Sync>;
type Validator = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct Entry {
    handler: Handler,
    validate: Validator,
    options: TaskOptions,
    rate_limit: Option<RateLimit>,
}

/// The tasks a worker can run.
#[derive(Clone, Default)]
pub struct Registry {
    tasks: BTreeMap<String, Entry>,
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.tasks.keys()).finish()
    }
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// A registry holding the built-in tasks (`add`, `noop`, `sleep`, `echo`, `fail`).
    pub fn with_builtins() -> Self {
        let mut r = Self::new();
        super::builtin::register(&mut r);
        r
    }

    /// Registers `handler` under `name`. Arguments that do not deserialize into
    /// `A` fail the task without retry (`InvalidArguments`).
    pub fn register<A, R, F, Fut>(&mut self, name: impl Into<String>, handler: F) -> &mut Self
    where
        A: DeserializeOwned + Send + 'static,
        R: Serialize + 'static,
        F: Fn(TaskContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, TaskError>> + Send + 'static,
    {
        let handler = Arc::new(handler);
        let call: Handler = Arc::new(move |ctx, args| {
            let handler = handler.clone();
            Box::pin(async move {
                let args: A = serde_json::from_value(args).map_err(|e| TaskError::fatal("InvalidArguments", e))?;
                let value = handler(ctx, args).await?;
                serde_json::to_value(value).map_err(|e| TaskError::fatal("UnserializableResult", e))
            })
        });
        let validate: Validator = Arc::new(|args| {
            serde_json::from_value::<A>(args.clone())
                .map(drop)
                .map_err(|e| e.to_string())
        });
        self.tasks.insert(
            name.into(),
            Entry {
                handler: call,
                validate,
                options: TaskOptions::default(),
                rate_limit: None,
            },
        );
        self
    }

    /// Sets the default options of a registered task (like Celery's task
    /// decorator options): tasks enqueued without an option get these.
    pub fn set_options(&mut self, name: &str, options: TaskOptions) -> &mut Self {
        if let Some(e) = self.tasks.get_mut(name) {
            e.options = options;
        }
        self
    }

    /// Limits how often a registered task may start, cluster-wide.
    pub fn set_rate_limit(&mut self, name: &str, limit: RateLimit) -> &mut Self {
        if let Some(e) = self.tasks.get_mut(name) {
            e.rate_limit = Some(limit);
        }
        self
    }

    /// Default options of the registered tasks that have any: (name, options).
    pub fn defaults(&self) -> Vec<(String, TaskOptions)> {
        self.tasks
            .iter()
            .filter(|(_, e)| !e.options.is_empty())
            .map(|(n, e)| (n.clone(), e.options.clone()))
            .collect()
    }

    /// Rate limits set at registration: (name, limit).
    pub fn rate_limits(&self) -> Vec<(String, RateLimit)> {
        self.tasks
            .iter()
            .filter_map(|(n, e)| e.rate_limit.map(|l| (n.clone(), l)))
            .collect()
    }

    /// Registered names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.tasks.keys().cloned().collect()
    }

    /// True when `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.tasks.contains_key(name)
    }

    /// Checks `args` against the task's argument type; `None` for unknown names.
    pub fn validate(&self, name: &str, args: &Value) -> Option<Result<(), String>> {
        self.tasks.get(name).map(|e| (e.validate)(args))
    }

    /// Starts the task `name`; `None` for unknown names.
    pub(crate) fn call(&self, name: &str, ctx: TaskContext, args: Value) -> Option<BoxFuture> {
        self.tasks.get(name).map(|e| (e.handler)(ctx, args))
    }
}
