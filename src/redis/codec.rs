//! Hash fields ↔ records: how task and workflow records are read back.
//! Times are ms since the epoch, JSON fields are text; a missing or empty
//! field reads as absent, so records written by older versions still load.

use std::collections::HashMap;

use chrono::DateTime;
use serde_json::Value;
use uuid::Uuid;

use crate::{
    error::{QueueError, Result},
    model::{CallbackState, TaskOptions, TaskRecord, TaskStatus, WorkflowKind, WorkflowRecord},
};

/// Reads the record of task `id` from the fields of its hash (the table in
/// `keys.rs`). The id is the key's: records of older versions also kept it in an
/// `id` field, which is ignored; `attempts`, `retries` and `max_retries` may be absent (read as 0).
pub fn task_from_hash(id: Uuid, mut h: HashMap<String, String>) -> Result<TaskRecord> {
    let corrupt = |what: &str| QueueError::Corrupt(format!("task field {what}"));
    let mut take = |k: &str| h.remove(k).filter(|v| !v.is_empty());
    let json = |v: Option<String>| v.and_then(|s| serde_json::from_str::<Value>(&s).ok());
    let time = |v: Option<String>| {
        v.and_then(|s| s.parse::<i64>().ok())
            .and_then(DateTime::from_timestamp_millis)
    };
    let num = |v: Option<String>| v.and_then(|s| s.parse::<u32>().ok()).unwrap_or(0);
    let status = take("status")
        .as_deref()
        .and_then(TaskStatus::parse)
        .ok_or_else(|| corrupt("status"))?;
    let list = |v: Option<Value>| match v {
        Some(Value::Array(items)) => items,
        _ => Vec::new(),
    };
    Ok(TaskRecord {
        id,
        status,
        name: take("name").unwrap_or_default(),
        queue: take("queue").unwrap_or_default(),
        args: json(take("args")).unwrap_or(Value::Null),
        result: json(take("result")),
        traceback: take("traceback"),
        children: list(json(take("children")))
            .into_iter()
            .filter_map(|v| v.as_str().and_then(|s| s.parse().ok()))
            .collect(),
        parent_id: take("parent_id").and_then(|s| s.parse().ok()),
        attempts: num(take("attempts")),
        retries: num(take("retries")),
        max_retries: num(take("max_retries")),
        priority: num(take("priority")).min(9) as u8,
        errors: list(json(take("errors")))
            .into_iter()
            .map(error_times_as_rfc3339)
            .collect(),
        progress: json(take("progress")),
        created_at: time(take("created_at")).ok_or_else(|| corrupt("created_at"))?,
        eta: time(take("eta")),
        started_at: time(take("started_at")),
        finished_at: time(take("finished_at")),
        worker: take("worker"),
        expires_at: time(take("expires_at")),
        options: take("options")
            .map(|s| TaskOptions::from_stored(&s))
            .unwrap_or_default(),
        cancel_requested: take("cancel_requested").is_some(),
        workflow_id: take("workflow").and_then(|s| s.parse().ok()),
        schedule: json(take("schedule")),
        callback: CallbackState::from_fields(take("callback").as_deref(), take("callback_url")),
    })
}

/// Reads a workflow record from the fields of its hash.
pub fn workflow_from_hash(id: Uuid, mut h: HashMap<String, String>) -> Result<WorkflowRecord> {
    let corrupt = |what: &str| QueueError::Corrupt(format!("workflow field {what}"));
    let kind = h
        .get("kind")
        .and_then(|k| WorkflowKind::parse(k))
        .ok_or_else(|| corrupt("kind"))?;
    let status = h
        .get("status")
        .and_then(|s| TaskStatus::parse(s))
        .ok_or_else(|| corrupt("status"))?;
    let num = |h: &HashMap<String, String>, k: &str| h.get(k).and_then(|v| v.parse().ok()).unwrap_or(0u32);
    let (total, done, failed) = (num(&h, "total"), num(&h, "done"), num(&h, "failed"));
    let task_ids: Vec<Uuid> = h
        .get("tasks")
        .and_then(|t| serde_json::from_str::<Vec<String>>(t).ok())
        .unwrap_or_default()
        .iter()
        .filter_map(|t| t.parse().ok())
        .collect();
    let json = |v: Option<String>| {
        v.and_then(|s| serde_json::from_str::<Value>(&s).ok())
            .unwrap_or(Value::Null)
    };
    let result = match kind {
        WorkflowKind::Group if status != TaskStatus::Started => {
            Value::Array((0..total).map(|i| json(h.remove(&format!("r:{i}")))).collect())
        }
        _ => json(h.remove("result")),
    };
    let time = |v: Option<&String>| {
        v.and_then(|s| s.parse::<i64>().ok())
            .and_then(chrono::DateTime::from_timestamp_millis)
    };
    Ok(WorkflowRecord {
        id,
        kind,
        status,
        callback_id: h.get("callback").and_then(|c| c.parse().ok()),
        failed_task: h.get("failed_task").and_then(|c| c.parse().ok()),
        task_ids,
        done,
        total,
        failed,
        result,
        created_at: time(h.get("created_at")),
        finished_at: time(h.get("finished_at")),
    })
}

/// Each failed attempt's `at` is stored as epoch ms (Lua has no date formatting);
/// shown as RFC 3339 like every other time.
fn error_times_as_rfc3339(mut entry: Value) -> Value {
    let at = entry
        .get("at")
        .and_then(Value::as_i64)
        .and_then(DateTime::from_timestamp_millis);
    if let Some(at) = at {
        entry["at"] = Value::String(at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    }
    entry
}
