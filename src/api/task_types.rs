//! `GET /task-types` (every task name the cluster knows, with its argument
//! schema, defaults, queues and workers) and the argument checks at the door:
//! `POST /tasks` and workflow members are checked against the JSON Schema a
//! worker published for the task, and `command` requests against the commands
//! the workers published ([`crate::tasks::ArgsCheck`]).

use std::collections::BTreeMap;

use poem_openapi::{Object, OpenApi, payload::Json};
use serde_json::Value;

use super::{AppState, Tag, auth::BearerAuth, error::ApiError};
use crate::model::{NewTask, TaskType};

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

/// Checks a task's arguments against what its workers published (422 with
/// the complaint). Tasks fed a previous result (`fed`) are complete only at run
/// time; built-in tasks were checked by `new_task` already.
pub(crate) async fn check_args(state: &AppState, task: &NewTask, fed: bool) -> Result<(), ApiError> {
    if fed || state.builtins.contains(&task.name) {
        return Ok(());
    }
    state
        .args_check
        .check(&state.queue, &state.builtins, &task.name, &task.args)
        .await?
        .map_err(|e| invalid_args(&task.name, &e))
}

/// The 422 for arguments the published schema (or command list) refuses.
pub(crate) fn invalid_args(name: &str, complaint: &str) -> ApiError {
    ApiError::unprocessable("invalid_args", format!("bad args for {name:?}: {complaint}"))
}
