//! Task name → handler. Handlers are async functions with serde-typed
//! arguments and results; the registry wraps them so the executor deals in JSON.
//!
//! Two ways in: [`Registry::register`] takes any `A: DeserializeOwned`, and
//! [`Registry::register_typed`] also asks `A: JsonSchema` and publishes the
//! JSON Schema of `A` at the worker's registration, so the API refuses wrong
//! arguments at the door (422) instead of failing the task later. Rust has no
//! way to pick between the two from one bound, hence two methods.

use std::{collections::BTreeMap, fmt, future::Future, pin::Pin, sync::Arc};

use schemars::JsonSchema;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

use super::{TaskContext, TaskError, TaskResult, command::CommandInfo};
use crate::model::{RateLimit, TaskOptions};

type BoxFuture = Pin<Box<dyn Future<Output = TaskResult> + Send>>;
type Handler = Arc<dyn Fn(TaskContext, Value) -> BoxFuture + Send + Sync>;
type Validator = Arc<dyn Fn(&Value) -> Result<(), String> + Send + Sync>;

#[derive(Clone)]
struct Entry {
    handler: Handler,
    validate: Validator,
    options: TaskOptions,
    rate_limit: Option<RateLimit>,
    /// JSON Schema of the arguments, published at registration.
    args_schema: Option<Value>,
}

/// The tasks a worker can run.
#[derive(Clone, Default)]
pub struct Registry {
    tasks: BTreeMap<String, Entry>,
    /// The `command` task's commands, published at registration.
    commands: Vec<CommandInfo>,
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
                args_schema: None,
            },
        );
        self
    }

    /// Like [`register`](Self::register), and publishes the JSON Schema of `A`
    /// (derived with `#[derive(schemars::JsonSchema)]`) with the worker's
    /// registration: `POST /tasks` then answers 422 with the schema's complaint
    /// for arguments that do not match, and `GET /task-types` shows it.
    ///
    /// ```
    /// use celeriac::tasks::{Registry, TaskContext, TaskError};
    /// use serde::Deserialize;
    ///
    /// #[derive(Deserialize, schemars::JsonSchema)]
    /// struct Resize { width: u32, height: u32 }
    ///
    /// async fn resize(_ctx: TaskContext, a: Resize) -> Result<u64, TaskError> {
    ///     Ok(u64::from(a.width) * u64::from(a.height))
    /// }
    ///
    /// let mut registry = Registry::with_builtins();
    /// registry.register_typed("resize", resize);
    /// let schema = registry.args_schema("resize").unwrap();
    /// assert_eq!(schema["required"], serde_json::json!(["width", "height"]));
    /// ```
    pub fn register_typed<A, R, F, Fut>(&mut self, name: impl Into<String>, handler: F) -> &mut Self
    where
        A: DeserializeOwned + JsonSchema + Send + 'static,
        R: Serialize + 'static,
        F: Fn(TaskContext, A) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<R, TaskError>> + Send + 'static,
    {
        let name = name.into();
        let schema = schemars::schema_for!(A).to_value();
        self.register(name.clone(), handler);
        self.set_args_schema(&name, schema)
    }

    /// Publishes `schema` (JSON Schema) as the arguments of a registered task,
    /// for tasks whose arguments are described by hand.
    pub fn set_args_schema(&mut self, name: &str, schema: Value) -> &mut Self {
        if let Some(e) = self.tasks.get_mut(name) {
            e.args_schema = Some(schema);
        }
        self
    }

    /// The published JSON Schema of a task's arguments, if it has one.
    pub fn args_schema(&self, name: &str) -> Option<&Value> {
        self.tasks.get(name)?.args_schema.as_ref()
    }

    /// The tasks with a published argument schema: (name, schema).
    pub fn args_schemas(&self) -> Vec<(String, Value)> {
        self.tasks
            .iter()
            .filter_map(|(n, e)| Some((n.clone(), e.args_schema.clone()?)))
            .collect()
    }

    /// Publishes the `command` task's commands (what the API checks requests against).
    pub(crate) fn set_commands(&mut self, commands: Vec<CommandInfo>) -> &mut Self {
        self.commands = commands;
        self
    }

    /// The `command` task's commands, empty when it is not registered.
    pub fn commands(&self) -> &[CommandInfo] {
        &self.commands
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
