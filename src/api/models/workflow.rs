//! A workflow: `POST /workflows`' body and a workflow as the API shows it.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde_json::Value;

use super::{NewTaskRequest, Status};
use crate::model::{WorkflowKind, WorkflowRecord};

/// Kind of a workflow.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "lowercase")]
pub enum WorkflowType {
    /// Tasks one after the other, each fed the previous result.
    Chain,
    /// Tasks in parallel; the result lists every result in order.
    Group,
    /// A group, then `callback` fed the list of results.
    Chord,
}

/// `POST /workflows` body.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct WorkflowRequest {
    /// `chain`, `group` or `chord`.
    #[oai(rename = "type")]
    pub kind: WorkflowType,
    /// The tasks (for a chord: its header), in order; `countdown`, `eta`,
    /// `expires` and `idempotency_key` do not apply to them.
    #[oai(validator(min_items = 1, max_items = 1000))]
    pub tasks: Vec<NewTaskRequest>,
    /// A chord's callback, fed the list of the header's results.
    pub callback: Option<NewTaskRequest>,
}

/// `202` body of `POST /workflows`.
#[derive(Debug, Object)]
pub struct WorkflowCreatedView {
    /// Id to read the workflow at `GET /workflows/{workflow_id}`.
    pub workflow_id: String,
    /// Ids of its tasks, in order (each an ordinary task at `GET /tasks/{id}`).
    pub task_ids: Vec<String>,
    /// Id of a chord's callback task.
    #[oai(nullable)]
    pub callback_id: Option<String>,
}

/// A workflow as `GET /workflows/{workflow_id}` shows it.
#[derive(Debug, Object)]
pub struct WorkflowView {
    /// Workflow id.
    pub workflow_id: String,
    /// `chain`, `group` or `chord`.
    #[oai(rename = "type")]
    pub kind: WorkflowType,
    /// STARTED until it ends SUCCESS, FAILURE or REVOKED.
    pub status: Status,
    /// Tasks finished (a chord's callback not counted).
    pub done: u32,
    /// Tasks in all (a chord's callback not counted).
    pub total: u32,
    /// Tasks that did not succeed.
    pub failed: u32,
    /// The chain's task that stopped it.
    #[oai(nullable)]
    pub failed_task_id: Option<String>,
    /// Task ids, in order.
    pub task_ids: Vec<String>,
    /// A chord's callback task id.
    #[oai(nullable)]
    pub callback_id: Option<String>,
    /// Chain: the last task's result; group: every result in order; chord: the callback's result.
    pub result: Value,
    /// Creation time.
    #[oai(nullable)]
    pub created_at: Option<DateTime<Utc>>,
    /// When it ended.
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<WorkflowRecord> for WorkflowView {
    fn from(w: WorkflowRecord) -> Self {
        Self {
            workflow_id: w.id.to_string(),
            kind: match w.kind {
                WorkflowKind::Chain => WorkflowType::Chain,
                WorkflowKind::Group => WorkflowType::Group,
                WorkflowKind::Chord => WorkflowType::Chord,
            },
            status: w.status.into(),
            done: w.done,
            total: w.total,
            failed: w.failed,
            failed_task_id: w.failed_task.map(|t| t.to_string()),
            task_ids: w.task_ids.iter().map(ToString::to_string).collect(),
            callback_id: w.callback_id.map(|c| c.to_string()),
            result: w.result,
            created_at: w.created_at,
            finished_at: w.finished_at,
        }
    }
}
