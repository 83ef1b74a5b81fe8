//! Workflows (Celery's canvas): chains, groups and chords of tasks.

use serde_json::Value;
use uuid::Uuid;

use super::task::TaskStatus;

/// Kinds of workflows (Celery's canvas primitives).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WorkflowKind {
    /// One task after the other, each fed the previous result.
    Chain,
    /// Tasks in parallel; the result lists every result in order.
    Group,
    /// A group, then a callback fed the list of results.
    Chord,
}

impl WorkflowKind {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chain => "chain",
            Self::Group => "group",
            Self::Chord => "chord",
        }
    }

    /// Parses a stored kind name.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "chain" => Self::Chain,
            "group" => Self::Group,
            "chord" => Self::Chord,
            _ => return None,
        })
    }
}

/// A created workflow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkflowCreated {
    /// Workflow id.
    pub id: Uuid,
    /// Ids of the header tasks, in order.
    pub task_ids: Vec<Uuid>,
    /// Id of the chord's callback.
    pub callback_id: Option<Uuid>,
}

/// A workflow as read back.
#[derive(Clone, Debug, PartialEq)]
pub struct WorkflowRecord {
    /// Workflow id.
    pub id: Uuid,
    /// Kind.
    pub kind: WorkflowKind,
    /// STARTED until it ends SUCCESS, FAILURE or REVOKED.
    pub status: TaskStatus,
    /// Header tasks.
    pub task_ids: Vec<Uuid>,
    /// The chord's callback.
    pub callback_id: Option<Uuid>,
    /// Header tasks finished.
    pub done: u32,
    /// Header tasks in all.
    pub total: u32,
    /// Header tasks that did not succeed.
    pub failed: u32,
    /// The chain task that stopped the chain.
    pub failed_task: Option<Uuid>,
    /// Chain: the last task's result; group: every result in order (null while
    /// running); chord: the callback's result.
    pub result: Value,
    /// Creation time.
    pub created_at: Option<chrono::DateTime<chrono::Utc>>,
    /// When it ended.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}
