//! `GET /task-types` (every task name the cluster knows, with its argument
//! schema, defaults, queues and workers) and the argument checks at the door:
//! `POST /tasks` and workflow members are checked against the JSON Schema a
//! worker published for the task, and `command` requests against the commands
//! the workers published.

use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use poem_openapi::{Object, OpenApi, payload::Json};
use serde_json::Value;

use super::{AppState, Tag, auth::BearerAuth, error::ApiError};
use crate::{
    model::{NewTask, TaskType},
    tasks::command::{self, CommandInfo},
};

/// Task-type operations.
pub struct TaskTypesApi {
    pub(crate) state: AppState,
}

/// Every known task.
#[derive(Object)]
pub struct TaskTypeList {
    /// Sorted by name.
    pub task_types: Vec<TaskTypeView>,
}

/// A task name that can be enqueued.
#[derive(Object)]
pub struct TaskTypeView {
    /// Task name.
    pub name: String,
    /// JSON Schema of its arguments (`null` when the task publishes none).
    pub args_schema: Option<Value>,
    /// Default options published at registration (`{}` when none).
    pub defaults: Value,
    /// Queues of the workers that run it.
    pub queues: Vec<String>,
    /// Workers that registered it and are still listed.
    pub workers: Vec<String>,
}

impl From<TaskType> for TaskTypeView {
    fn from(t: TaskType) -> Self {
        Self {
            name: t.name,
            args_schema: t.args_schema,
            defaults: t.defaults,
            queues: t.queues,
            workers: t.workers,
        }
    }
}

#[OpenApi(tag = "Tag::Tasks")]
impl TaskTypesApi {
    /// Every task that can be enqueued: the built-in ones, and every name a
    /// listed worker registered (a name is forgotten once the last worker that
    /// registered it is pruned, after the workers' retention time), with the
    /// JSON Schema of its arguments, its default options, queues and workers.
    ///
    /// Scope: `read`.
    #[oai(path = "/task-types", method = "get")]
    async fn list(&self, _auth: BearerAuth) -> Result<Json<TaskTypeList>, ApiError> {
        let mut types: BTreeMap<String, TaskType> = self
            .state
            .queue
            .task_types()
            .await?
            .into_iter()
            .map(|t| (t.name.clone(), t))
            .collect();
        for name in self.state.builtins.names() {
            let t = types.entry(name.clone()).or_insert_with(|| TaskType {
                name: name.clone(),
                defaults: Value::Object(Default::default()),
                ..TaskType::default()
            });
            if t.args_schema.is_none() {
                t.args_schema = self.state.builtins.args_schema(&name).cloned();
            }
        }
        Ok(Json(TaskTypeList {
            task_types: types.into_values().map(Into::into).collect(),
        }))
    }
}

/// A published schema's text and its compiled validator.
type Compiled = (String, Arc<jsonschema::Validator>);

/// Compiled argument schemas by task name, recompiled when the published text changes.
#[derive(Clone, Default)]
pub(crate) struct SchemaCache {
    compiled: Arc<Mutex<HashMap<String, Compiled>>>,
}

impl SchemaCache {
    /// The validator of `schema` (the text published for `name`); `None` when it does not compile.
    fn validator(&self, name: &str, schema: &str) -> Option<Arc<jsonschema::Validator>> {
        let mut compiled = self.compiled.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((text, v)) = compiled.get(name)
            && text == schema
        {
            return Some(v.clone());
        }
        let value: Value = serde_json::from_str(schema).ok()?;
        match jsonschema::validator_for(&value) {
            Ok(v) => {
                let v = Arc::new(v);
                compiled.insert(name.to_owned(), (schema.to_owned(), v.clone()));
                Some(v)
            }
            Err(e) => {
                // A worker's schema the validator cannot read is not the client's fault.
                tracing::warn!(task = %name, error.message = %e, "ignoring a published argument schema that does not compile");
                None
            }
        }
    }
}

/// Checks a task's arguments against what its workers published: the
/// `command` task against the commands, other tasks against their JSON Schema.
/// Built-in tasks are checked by `new_task` with the API's own registry, and
/// tasks fed a previous result (`fed`) are complete only at run time.
pub(crate) async fn check_args(state: &AppState, task: &NewTask, fed: bool) -> Result<(), ApiError> {
    if fed || state.builtins.contains(&task.name) {
        return Ok(());
    }
    let refuse = |e: String| ApiError::unprocessable("invalid_args", format!("bad args for {:?}: {e}", task.name));
    if task.name == "command" {
        let mut commands: Vec<CommandInfo> = Vec::new();
        for published in state.queue.published_commands().await? {
            match serde_json::from_str::<Vec<CommandInfo>>(&published) {
                Ok(list) => {
                    for c in list {
                        if !commands.iter().any(|k| k.name == c.name) {
                            commands.push(c);
                        }
                    }
                }
                Err(e) => tracing::warn!(error.message = %e, "ignoring unreadable published commands"),
            }
        }
        // No worker said what it offers (an older worker): the worker checks.
        if commands.is_empty() {
            return Ok(());
        }
        return command::check_request(&commands, &task.args).map_err(refuse);
    }
    let Some(schema) = state.queue.task_schema(&task.name).await? else {
        return Ok(());
    };
    let Some(validator) = state.schemas.validator(&task.name, &schema) else {
        return Ok(());
    };
    let complaints: Vec<String> = validator
        .iter_errors(&task.args)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("at {at}: {e}")
            }
        })
        .collect();
    if complaints.is_empty() {
        Ok(())
    } else {
        Err(refuse(complaints.join("; ")))
    }
}
