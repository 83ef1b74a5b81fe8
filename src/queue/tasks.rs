//! Enqueue and read tasks; cancel, resubmit and forget them; record progress.

use std::collections::HashMap;

use redis::AsyncCommands;
use serde_json::Value;
use uuid::Uuid;

use super::{Queue, parse_id};
use crate::{
    error::Result,
    model::{NewTask, TaskRecord},
    redis::{
        codec,
        scripts::{self, EnqueueArgs, Enqueued, TaskSpec},
    },
};

/// The outcome of an enqueue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enqueue {
    /// The task's id.
    pub id: Uuid,
    /// False when an earlier task with the same idempotency key was found (its id is returned).
    pub created: bool,
}

/// What a cancel did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cancel {
    /// The task had not started: it is REVOKED and will never run.
    Revoked,
    /// The task is running: its worker was told to stop; it ends REVOKED when it does.
    Requested,
}

impl Queue {
    /// Enqueues a task; `require_registered` refuses names no worker registered.
    pub async fn enqueue(&self, task: &NewTask, require_registered: bool) -> Result<Enqueue> {
        let id = Uuid::new_v4();
        let ctx = self.ctx();
        let id_str = id.to_string();
        let parent = task.parent_id.map(|p| p.to_string());
        let args = EnqueueArgs {
            task: task_spec(&id_str, task, ctx.now_ms, require_registered, true),
            due_ms: task.eta.map_or(0, |eta| eta.timestamp_millis()),
            parent: parent.as_deref(),
            idempotency_key: task.idempotency_key.as_deref(),
        };
        match scripts::enqueue(&mut self.conn().await?, &ctx, &args).await? {
            Enqueued::Ready | Enqueued::Delayed => Ok(Enqueue { id, created: true }),
            Enqueued::Existing(earlier) => Ok(Enqueue {
                id: parse_id(&earlier)?,
                created: false,
            }),
        }
    }

    /// Reads a task record; `None` when it does not exist (or expired).
    pub async fn get(&self, id: &Uuid) -> Result<Option<TaskRecord>> {
        let hash: HashMap<String, String> = self.conn().await?.hgetall(self.keys.task(&id.to_string())).await?;
        if hash.is_empty() {
            return Ok(None);
        }
        codec::task_from_hash(*id, hash).map(Some)
    }

    /// Cancels a task. `Err(Conflict)` when it is already final, `Err(NotFound)` when unknown.
    pub async fn cancel(&self, id: &Uuid) -> Result<Cancel> {
        let revoked = scripts::cancel(&mut self.conn().await?, &self.ctx(), &id.to_string()).await?;
        Ok(if revoked { Cancel::Revoked } else { Cancel::Requested })
    }

    /// Queues a FAILURE or REVOKED task again. `Err(Conflict)` in any other state.
    pub async fn resubmit(&self, id: &Uuid) -> Result<()> {
        scripts::resubmit(&mut self.conn().await?, &self.ctx(), &id.to_string()).await
    }

    /// Deletes a final task's record. `Err(Conflict)` when it is not final.
    pub async fn forget(&self, id: &Uuid) -> Result<()> {
        scripts::forget(&mut self.conn().await?, &self.ctx(), &id.to_string()).await
    }

    /// Records the progress of a running task (JSON), under its lease.
    pub async fn progress(&self, task_id: &Uuid, token: &str, progress: &Value) -> Result<()> {
        let id = task_id.to_string();
        scripts::progress(&mut self.conn().await?, &self.ctx(), &id, token, &progress.to_string()).await
    }
}

/// A new task's record as field/value pairs, with the options given with it,
/// as the scripts take them (registration defaults are merged in Lua).
/// `standalone` (not a workflow member): the record also carries the task's own
/// ETA, expiry and idempotency key.
pub(super) fn task_spec<'a>(
    id: &'a str,
    task: &'a NewTask,
    now_ms: i64,
    require_registered: bool,
    standalone: bool,
) -> TaskSpec<'a> {
    let o = &task.options;
    let priority = o.priority.unwrap_or(0).min(9);
    let options_json = serde_json::to_string(o).unwrap_or_else(|_| "{}".to_owned());
    // id, name, queue, status, priority, options, counters and created_at are
    // written by the script from its own arguments.
    // A zero max_retries is not written: absent reads as 0, as for the counters.
    let mut fields = vec![("args", task.args.to_string())];
    if let Some(n) = o.max_retries.filter(|&n| n > 0) {
        fields.push(("max_retries", n.to_string()));
    }
    if let Some(parent) = task.parent_id {
        fields.push(("parent_id", parent.to_string()));
    }
    if let Some(url) = &task.callback_url {
        fields.push(("callback_url", url.clone()));
    }
    // An explicit expiry wins over the `expires` option (seconds from now).
    let explicit = if standalone {
        task.expires_at.map_or(0, |t| t.timestamp_millis())
    } else {
        0
    };
    let expires_at_ms = match o.expires {
        _ if explicit > 0 => explicit,
        Some(secs) => now_ms + (secs * 1000.0).floor() as i64,
        None => 0,
    };
    if expires_at_ms > 0 {
        fields.push(("expires_at", expires_at_ms.to_string()));
    }
    if standalone {
        if let Some(eta) = task.eta.map(|eta| eta.timestamp_millis()).filter(|&due| due > now_ms) {
            fields.push(("eta", eta.to_string()));
        }
        if let Some(key) = &task.idempotency_key {
            fields.push(("idempotency_key", key.clone()));
        }
    }
    TaskSpec {
        id,
        name: &task.name,
        queue: &task.queue,
        fields,
        options_json,
        priority,
        expires_at_ms,
        require_registered,
    }
}
