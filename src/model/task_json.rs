//! A task record as JSON: the one shape `GET /tasks/{id}` answers with (the
//! API's `TaskView` serves it under `TaskSchema`, its typed schema) and a completion
//! callback POSTs. Times are RFC 3339 as poem-openapi writes them, so both
//! carry the same text.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::TaskRecord;

impl TaskRecord {
    /// The record as `GET /tasks/{id}` shows it.
    pub fn to_json(&self) -> Value {
        let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339());
        json!({
            "task_id": self.id.to_string(),
            "status": self.status.as_str(),
            "result": self.result.clone().unwrap_or(Value::Null),
            "traceback": self.traceback,
            "children": self.children.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "parent_id": self.parent_id.map(|p| p.to_string()),
            "name": self.name,
            "queue": self.queue,
            "args": self.args,
            "attempts": self.attempts,
            "retries": self.retries,
            "max_retries": self.max_retries,
            "priority": self.priority,
            "errors": self.errors,
            "progress": self.progress,
            "created_at": self.created_at.to_rfc3339(),
            "eta": time(self.eta),
            "started_at": time(self.started_at),
            "finished_at": time(self.finished_at),
            "worker": self.worker,
            "expires_at": time(self.expires_at),
            "options": serde_json::to_value(&self.options).unwrap_or(Value::Null),
            "cancel_requested": self.cancel_requested,
            "workflow_id": self.workflow_id.map(|w| w.to_string()),
            "schedule": self.schedule,
            "callback": self.callback,
        })
    }
}
