//! A task record as JSON: the one shape `GET /tasks/{id}` answers with (the
//! API's `TaskView` writes it under `TaskSchema`, its typed schema) and a completion
//! callback POSTs. Times are RFC 3339 as poem-openapi writes them, so both
//! carry the same text.
//!
//! The shape is a borrowed struct whose fields are in alphabetical order, the
//! order of a `serde_json::Value` object (a `BTreeMap`): the text written in one
//! pass ([`TaskRecord::to_json_vec`], no `Value` built: a hot path, every poll of
//! a task) and the `Value` ([`TaskRecord::to_json`]) are the same JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;

use super::TaskRecord;

/// Field order matters (see the module's comment). Nested structs (`options`,
/// `callback`) go through `Value` so that their keys are sorted too.
#[derive(Serialize)]
struct TaskJson<'a> {
    args: &'a Value,
    attempts: u32,
    callback: Value,
    cancel_requested: bool,
    children: Vec<String>,
    created_at: String,
    errors: &'a [Value],
    eta: Option<String>,
    expires_at: Option<String>,
    finished_at: Option<String>,
    max_retries: u32,
    name: &'a str,
    options: Value,
    parent_id: Option<String>,
    priority: u8,
    progress: &'a Option<Value>,
    queue: &'a str,
    result: &'a Value,
    retries: u32,
    schedule: &'a Option<Value>,
    started_at: Option<String>,
    status: &'static str,
    task_id: String,
    traceback: &'a Option<String>,
    worker: &'a Option<String>,
    workflow_id: Option<String>,
}

impl TaskRecord {
    fn json_shape(&self) -> TaskJson<'_> {
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
        let to_value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
        TaskJson {
            args: &self.args,
            attempts: self.attempts,
            callback: to_value(serde_json::to_value(&self.callback)),
            cancel_requested: self.cancel_requested,
            children: self.children.iter().map(ToString::to_string).collect(),
            created_at: self.created_at.to_rfc3339(),
            errors: &self.errors,
            eta: time(self.eta),
            expires_at: time(self.expires_at),
            finished_at: time(self.finished_at),
            max_retries: self.max_retries,
            name: &self.name,
            options: to_value(serde_json::to_value(&self.options)),
            parent_id: self.parent_id.map(|p| p.to_string()),
            priority: self.priority,
            progress: &self.progress,
            queue: &self.queue,
            result: self.result.as_ref().unwrap_or(&Value::Null),
            retries: self.retries,
            schedule: &self.schedule,
            started_at: time(self.started_at),
            status: self.status.as_str(),
            task_id: self.id.to_string(),
            traceback: &self.traceback,
            worker: &self.worker,
            workflow_id: self.workflow_id.map(|w| w.to_string()),
        }
    }

    /// The record as `GET /tasks/{id}` shows it.
    pub fn to_json(&self) -> Value {
        serde_json::to_value(self.json_shape()).unwrap_or(Value::Null)
    }

    /// The same JSON as text (what [`TaskRecord::to_json`] would serialize to).
    pub fn to_json_vec(&self) -> Vec<u8> {
        serde_json::to_vec(&self.json_shape()).unwrap_or_default()
    }
}
