//! A task name as the cluster knows it (what `celery inspect registered` answers).

use serde_json::Value;

/// A task some live worker registered: its published argument schema and
/// defaults, and who runs it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TaskType {
    /// Task name.
    pub name: String,
    /// JSON Schema of its arguments, when its worker published one.
    pub args_schema: Option<Value>,
    /// Default options published at registration (a JSON object, `{}` when none).
    pub defaults: Value,
    /// Queues of the workers that run it, sorted.
    pub queues: Vec<String>,
    /// Names of the workers that registered it (still listed), sorted.
    pub workers: Vec<String>,
}
