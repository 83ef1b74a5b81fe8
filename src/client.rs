//! A typed client for Rust producers: enqueue, read, wait for and cancel tasks
//! by talking to Redis directly (through [`Queue`]), so a Rust application
//! needs no HTTP hop to the API.
//!
//! Waiting uses the same pub/sub wake-ups as `GET /tasks/{id}?wait=` (one
//! [`Notifier`] per client): subscribe to the task's done channel, read, and
//! sleep until a completion is published or the timeout passes. Nothing polls.
//!
//! ```no_run
//! use std::time::Duration;
//! use celeriac::{Client, client::EnqueueOptions, config::RedisConfig};
//!
//! # async fn demo() -> Result<(), celeriac::client::ClientError> {
//! let client = Client::connect(&RedisConfig::new("redis://127.0.0.1:6379"))?;
//! let id = client.enqueue("add", serde_json::json!({"x": 2, "y": 3}), EnqueueOptions::default()).await?;
//! let sum: i64 = client.wait_for(id, Duration::from_secs(10)).await?;
//! assert_eq!(sum, 5);
//! # Ok(()) }
//! ```

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use serde::{Serialize, de::DeserializeOwned};
use uuid::Uuid;

use crate::{
    config::{EngineConfig, RedisConfig},
    error::QueueError,
    model::{NewTask, Routes, TaskOptions, TaskRecord, TaskStatus},
    queue::{Cancel, Queue},
    redis::{connect, notify::Notifier},
    tasks::{ArgsCheck, Registry},
};

/// Why a client call failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Redis refused or failed (an unknown task name included:
    /// [`QueueError::UnknownTaskName`]).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// The arguments do not match what the task's workers published (its JSON
    /// Schema, or the `command` task's commands): what `POST /tasks` answers 422 for.
    #[error("bad args for {name:?}: {message}")]
    InvalidArgs {
        /// The task name.
        name: String,
        /// What is wrong, as the schema says.
        message: String,
    },
    /// The arguments did not serialize to JSON.
    #[error("arguments do not serialize")]
    Args(#[source] serde_json::Error),
    /// A member of [`Client::enqueue_batch`] was refused; nothing was enqueued.
    #[error("tasks[{index}]: {source}")]
    BatchMember {
        /// The member's index in the batch (from 0).
        index: usize,
        /// Why it was refused.
        #[source]
        source: Box<ClientError>,
    },
    /// No such task (never created, or its record expired).
    #[error("no task {0}")]
    NotFound(Uuid),
    /// The task was not final when the wait ended.
    #[error("task {id} still {status:?} after {waited:?}")]
    Timeout {
        /// The task.
        id: Uuid,
        /// Its status when the wait ended.
        status: TaskStatus,
        /// How long the call waited.
        waited: Duration,
    },
    /// The task ended in FAILURE.
    #[error("task {id} failed: {exc_type}: {message}")]
    Failed {
        /// The task.
        id: Uuid,
        /// The error kind (`exc_type`).
        exc_type: String,
        /// The error message (`exc_message`).
        message: String,
    },
    /// The task was cancelled.
    #[error("task {0} was revoked")]
    Revoked(Uuid),
    /// The result did not deserialize into the type asked for.
    #[error("task {id}'s result does not deserialize")]
    Result {
        /// The task.
        id: Uuid,
        /// What serde said.
        #[source]
        source: serde_json::Error,
    },
}

/// Options of one enqueue; [`Default`] is "route by name, run now, registration defaults".
#[derive(Clone, Debug, Default)]
pub struct EnqueueOptions {
    /// Queue to put the task on; `None`: the client's routes decide (else `default`).
    pub queue: Option<String>,
    /// Execution options (unset ones fall back to the registration's defaults).
    pub options: TaskOptions,
    /// Not before this time.
    pub eta: Option<DateTime<Utc>>,
    /// Revoked if not started by then.
    pub expires_at: Option<DateTime<Utc>>,
    /// Enqueue at most once per key (while the first task's record lives).
    pub idempotency_key: Option<String>,
}

/// One member of [`Client::enqueue_batch`].
#[derive(Clone, Debug)]
pub struct BatchTask {
    /// Task name.
    pub name: String,
    /// Arguments (JSON).
    pub args: serde_json::Value,
    /// As for [`Client::enqueue`], without `idempotency_key` (refused in a batch:
    /// see [`Client::enqueue_batch_idempotent`]).
    pub options: EnqueueOptions,
}

impl BatchTask {
    /// `name` with `args` (any `Serialize`) and the default options.
    pub fn new(name: impl Into<String>, args: impl Serialize) -> Result<Self, ClientError> {
        Ok(Self {
            name: name.into(),
            args: serde_json::to_value(args).map_err(ClientError::Args)?,
            options: EnqueueOptions::default(),
        })
    }
}

impl EnqueueOptions {
    /// Options with an explicit queue (which wins over the routes).
    pub fn on_queue(queue: impl Into<String>) -> Self {
        Self {
            queue: Some(queue.into()),
            ..Self::default()
        }
    }
}

/// A producer's handle on one namespace. Cheap to clone; share one per process
/// (it holds one shared connection and one pub/sub connection for waits).
#[derive(Clone)]
pub struct Client {
    queue: Queue,
    notifier: Notifier,
    routes: Arc<Routes>,
    builtins: Arc<Registry>,
    args_check: ArgsCheck,
}

impl Client {
    /// A client of `redis.namespace` with the default engine settings and no
    /// routes. Nothing is sent until the first call.
    pub fn connect(redis: &RedisConfig) -> Result<Self, ClientError> {
        Self::connect_with(redis, EngineConfig::default())
    }

    /// A client with explicit engine settings (result expiry, events cap), as
    /// the API and workers of the cluster use them.
    pub fn connect_with(redis: &RedisConfig, engine: EngineConfig) -> Result<Self, ClientError> {
        Ok(Self {
            queue: Queue::connect(redis, engine)?,
            notifier: Notifier::new(connect::client(redis)?, redis.connect_timeout * 3 / 4),
            routes: Arc::new(Routes::default()),
            builtins: Arc::new(Registry::with_builtins()),
            args_check: ArgsCheck::default(),
        })
    }

    /// Routes tasks enqueued without a queue, as `CELERIAC_ROUTES` does on the API.
    ///
    /// ```
    /// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
    /// use celeriac::{Client, config::RedisConfig, model::Routes};
    /// let client = Client::connect(&RedisConfig::new("redis://127.0.0.1:6379"))?
    ///     .with_routes(Routes::parse("transcode*=encoding,report=reports")?);
    /// assert_eq!(client.queue_for("transcode.video"), "encoding");
    /// assert_eq!(client.queue_for("add"), "default");
    /// # Ok(()) }
    /// # demo().unwrap();
    /// ```
    pub fn with_routes(mut self, routes: Routes) -> Self {
        self.routes = Arc::new(routes);
        self
    }

    /// The queue a task named `name` goes to when enqueued without one.
    pub fn queue_for(&self, name: &str) -> &str {
        self.routes.queue_for(name)
    }

    /// The engine handle underneath, for what the client does not wrap.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Enqueues `name` with `args` (any `Serialize`). Names that are neither
    /// built in nor registered by a worker are refused
    /// ([`QueueError::UnknownTaskName`]), and arguments are checked as
    /// `POST /tasks` checks them ([`ClientError::InvalidArgs`]). Returns the
    /// task's id (an earlier task's id when its idempotency key was used already).
    pub async fn enqueue(
        &self,
        name: &str,
        args: impl Serialize,
        options: EnqueueOptions,
    ) -> Result<Uuid, ClientError> {
        let args = serde_json::to_value(args).map_err(ClientError::Args)?;
        self.args_check
            .check(&self.queue, &self.builtins, name, &args)
            .await?
            .map_err(|message| ClientError::InvalidArgs {
                name: name.to_owned(),
                message,
            })?;
        let task = self.new_task(name, args, options);
        let require_registered = !self.builtins.contains(name);
        Ok(self.queue.enqueue(&task, require_registered).await?.id)
    }

    /// Enqueues `tasks` in one Redis call, all or nothing (as `POST /tasks/batch`):
    /// a refused member ([`ClientError::BatchMember`], naming its index) means
    /// nothing was enqueued. Returns the ids in order. One call holds the whole
    /// batch, so keep batches to about a thousand tasks.
    pub async fn enqueue_batch(&self, tasks: Vec<BatchTask>) -> Result<Vec<Uuid>, ClientError> {
        self.enqueue_batch_keyed(tasks, None).await
    }

    /// [`Client::enqueue_batch`] at most once per `idempotency_key`: a batch
    /// accepted before under the key (within the result TTL, while its first
    /// task's record lives) enqueues nothing, and its ids are returned. Use it to
    /// retry a batch whose answer was lost.
    pub async fn enqueue_batch_idempotent(
        &self,
        idempotency_key: &str,
        tasks: Vec<BatchTask>,
    ) -> Result<Vec<Uuid>, ClientError> {
        self.enqueue_batch_keyed(tasks, Some(idempotency_key)).await
    }

    async fn enqueue_batch_keyed(&self, tasks: Vec<BatchTask>, key: Option<&str>) -> Result<Vec<Uuid>, ClientError> {
        let member = |index, e: ClientError| ClientError::BatchMember {
            index,
            source: Box::new(e),
        };
        let mut new_tasks = Vec::with_capacity(tasks.len());
        for (i, t) in tasks.into_iter().enumerate() {
            if t.options.idempotency_key.is_some() {
                return Err(member(
                    i,
                    ClientError::InvalidArgs {
                        name: t.name,
                        message: "idempotency_key is not taken in a batch".into(),
                    },
                ));
            }
            new_tasks.push(self.new_task(&t.name, t.args, t.options));
        }
        let members = new_tasks.iter().enumerate().map(|(i, t)| (i, t.name.as_str(), &t.args));
        if let Err((i, message)) = self
            .args_check
            .check_batch(&self.queue, &self.builtins, members)
            .await?
        {
            let name = new_tasks[i].name.clone();
            return Err(member(i, ClientError::InvalidArgs { name, message }));
        }
        match self
            .queue
            .enqueue_batch(&new_tasks, key, |name| !self.builtins.contains(name))
            .await?
        {
            Ok(accepted) => Ok(accepted.ids),
            Err(refused) => Err(member(
                refused.index,
                ClientError::Queue(QueueError::UnknownTaskName(refused.name)),
            )),
        }
    }

    /// The task these make, routed to its queue (its arguments not checked yet).
    fn new_task(&self, name: &str, args: serde_json::Value, options: EnqueueOptions) -> NewTask {
        NewTask {
            queue: options.queue.unwrap_or_else(|| self.routes.queue_for(name).to_owned()),
            options: options.options,
            eta: options.eta,
            expires_at: options.expires_at,
            idempotency_key: options.idempotency_key,
            ..NewTask::new(name, args)
        }
    }

    /// The task's current record; `None` when unknown or expired.
    pub async fn get(&self, id: Uuid) -> Result<Option<TaskRecord>, ClientError> {
        Ok(self.queue.get(&id).await?)
    }

    /// Waits until the task is final (SUCCESS, FAILURE or REVOKED) and returns
    /// its record, or [`ClientError::Timeout`] after `timeout`.
    pub async fn wait(&self, id: Uuid, timeout: Duration) -> Result<TaskRecord, ClientError> {
        let deadline = tokio::time::Instant::now() + timeout;
        let channel = self.queue.keys().done_channel(&id.to_string());
        // Subscribed (and confirmed) before the first read, so a completion in
        // between still wakes us; kept, so a wake-up costs one read.
        let mut subscription = self.notifier.subscribe(channel).await?;
        loop {
            let record = self.get(id).await?.ok_or(ClientError::NotFound(id))?;
            if record.status.is_final() {
                return Ok(record);
            }
            tokio::select! {
                () = subscription.notified() => {}
                () = tokio::time::sleep_until(deadline) => {
                    let record = self.get(id).await?.ok_or(ClientError::NotFound(id))?;
                    if record.status.is_final() {
                        return Ok(record);
                    }
                    return Err(ClientError::Timeout { id, status: record.status, waited: timeout });
                }
            }
        }
    }

    /// Waits like [`wait`](Self::wait) and returns the task's result as `R`;
    /// a FAILURE is [`ClientError::Failed`], a cancel [`ClientError::Revoked`].
    ///
    /// ```no_run
    /// # async fn demo(client: celeriac::Client, id: uuid::Uuid) -> Result<(), celeriac::client::ClientError> {
    /// #[derive(serde::Deserialize)]
    /// struct Transcoded { output: String }
    /// let done: Transcoded = client.wait_for(id, std::time::Duration::from_secs(60)).await?;
    /// println!("{}", done.output);
    /// # Ok(()) }
    /// ```
    pub async fn wait_for<R: DeserializeOwned>(&self, id: Uuid, timeout: Duration) -> Result<R, ClientError> {
        let record = self.wait(id, timeout).await?;
        match record.status {
            TaskStatus::Success => {
                let value = record.result.unwrap_or(serde_json::Value::Null);
                serde_json::from_value(value).map_err(|source| ClientError::Result { id, source })
            }
            TaskStatus::Revoked => Err(ClientError::Revoked(id)),
            _ => {
                let error = record.result.unwrap_or_default();
                let field = |f: &str| error.get(f).and_then(|v| v.as_str()).unwrap_or_default().to_owned();
                Err(ClientError::Failed {
                    id,
                    exc_type: field("exc_type"),
                    message: field("exc_message"),
                })
            }
        }
    }

    /// Cancels a task: a waiting one is REVOKED at once, a running one gets its
    /// cancellation signal. A final task gives `Err(Queue(Conflict))`, an unknown
    /// one `Err(Queue(NotFound))`.
    pub async fn cancel(&self, id: Uuid) -> Result<Cancel, ClientError> {
        Ok(self.queue.cancel(&id).await?)
    }
}
