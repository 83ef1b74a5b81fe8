//! Chains, groups and chords: created in one script, advanced by the
//! completion scripts of their members.

use std::collections::HashMap;

use redis::AsyncCommands;
use uuid::Uuid;

use super::{Queue, parse_id, tasks::task_spec};
use crate::{
    error::Result,
    model::{NewTask, WorkflowCreated, WorkflowKind, WorkflowRecord},
    redis::{
        codec,
        scripts::{self, TaskSpec},
    },
};

impl Queue {
    /// Creates a workflow and its tasks in one script: a chain or group of
    /// `tasks`, or a chord of `tasks` and `callback`.
    pub async fn create_workflow(
        &self,
        kind: WorkflowKind,
        tasks: &[NewTask],
        callback: Option<&NewTask>,
        require_registered: impl Fn(&str) -> bool,
    ) -> Result<WorkflowCreated> {
        let ctx = self.ctx();
        let id = Uuid::new_v4();
        let all: Vec<(String, &NewTask)> = tasks
            .iter()
            .chain(callback)
            .map(|t| (Uuid::new_v4().to_string(), t))
            .collect();
        let specs: Vec<TaskSpec<'_>> = all
            .iter()
            .map(|(tid, t)| task_spec(tid, t, ctx.now_ms, require_registered(&t.name), false))
            .collect();
        scripts::workflow(
            &mut self.conn().await?,
            &ctx,
            &id.to_string(),
            kind.as_str(),
            &specs,
            callback.is_some(),
        )
        .await?;
        let ids = all.iter().map(|(tid, _)| parse_id(tid)).collect::<Result<Vec<_>>>()?;
        let (task_ids, callback_id) = match callback {
            Some(_) => (ids[..ids.len() - 1].to_vec(), ids.last().copied()),
            None => (ids, None),
        };
        Ok(WorkflowCreated {
            id,
            task_ids,
            callback_id,
        })
    }

    /// Reads a workflow; `None` when unknown or expired.
    pub async fn get_workflow(&self, id: &Uuid) -> Result<Option<WorkflowRecord>> {
        let h: HashMap<String, String> = self.conn().await?.hgetall(self.keys.workflow(&id.to_string())).await?;
        if h.is_empty() {
            return Ok(None);
        }
        codec::workflow_from_hash(*id, h).map(Some)
    }
}
