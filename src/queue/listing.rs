//! Listing tasks (newest first, filtered, paged by an opaque cursor) from the
//! indexes the transition scripts keep (`includes/index.lua`); pausing and
//! resuming a task.
//!
//! A listing reads the most selective index of its filter (the smallest ZSET;
//! the status indexes of a status list, or all of them without a status filter,
//! merged k-way), then checks the other filters on the records, read in one
//! pipeline. Entries whose record expired are removed on the way. Each request
//! scans a bounded number of entries and returns a cursor to continue, so a
//! listing costs the same over 1,000 or 1,000,000 records. Cursors are a
//! position (created_at ms, id): walking the pages of a filter returns each
//! matching task once even while new tasks (always newer) arrive.

use std::collections::HashMap;

use uuid::Uuid;

use super::Queue;
use crate::{
    error::{QueueError, Result},
    model::{TaskRecord, TaskStatus},
    redis::{
        codec,
        keys::Keys,
        scripts::{self, Paused},
    },
};

/// Every status, in the order a listing without a status filter merges their indexes.
pub const ALL_STATUSES: [TaskStatus; 7] = [
    TaskStatus::Pending,
    TaskStatus::Started,
    TaskStatus::Retry,
    TaskStatus::Success,
    TaskStatus::Failure,
    TaskStatus::Revoked,
    TaskStatus::Paused,
];

/// Most entries one listing request scans before it answers with a cursor.
const SCAN_BUDGET: usize = 2_000;

/// What to list. Every filter is optional; they combine.
#[derive(Clone, Debug, Default)]
pub struct TaskFilter {
    /// Any of these statuses (empty: any status).
    pub statuses: Vec<TaskStatus>,
    /// Created in this queue.
    pub queue: Option<String>,
    /// With this task name.
    pub name: Option<String>,
    /// Whose latest attempt ran on this worker.
    pub worker: Option<String>,
    /// Fired by this schedule.
    pub schedule: Option<String>,
    /// Created strictly after this time (ms since the epoch).
    pub created_after_ms: Option<i64>,
    /// Created strictly before this time (ms since the epoch).
    pub created_before_ms: Option<i64>,
}

/// A position in a listing: after the task `id` created at `score` ms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Cursor {
    score: i64,
    id: String,
}

impl Cursor {
    /// The opaque text form given to clients.
    pub fn encode(&self) -> String {
        format!("{}.{}", self.score, self.id)
    }

    /// Parses [`Cursor::encode`]'s form; `None` when it is not one.
    pub fn decode(s: &str) -> Option<Self> {
        let (score, id) = s.split_once('.')?;
        let id = Uuid::parse_str(id).ok()?.to_string();
        Some(Self {
            score: score.parse().ok()?,
            id,
        })
    }
}

/// One page of a listing.
#[derive(Clone, Debug, Default)]
pub struct TaskPage {
    /// Task ids, newest first.
    pub ids: Vec<String>,
    /// Where the next page starts; `None` when there is nothing more.
    pub next_cursor: Option<Cursor>,
}

/// Redis score bound "strictly above/below `ms`", or the open end.
fn bound(ms: Option<i64>, open: &str) -> String {
    ms.map_or_else(|| open.to_owned(), |ms| format!("({ms}"))
}

impl Queue {
    /// One page of at most `limit` tasks matching `filter`, newest first, after `cursor`.
    pub async fn list_tasks(&self, filter: &TaskFilter, limit: usize, cursor: Option<Cursor>) -> Result<TaskPage> {
        let k = &self.keys;
        let limit = limit.max(1);
        let mut conn = self.conn().await?;

        // The candidate indexes: the status group, then one per other filter.
        let statuses: &[TaskStatus] = if filter.statuses.is_empty() {
            &ALL_STATUSES
        } else {
            &filter.statuses
        };
        // STARTED has no index: the leases ZSET stands for it (see list_page.lua).
        let status_key = |s: &TaskStatus| match s {
            TaskStatus::Started => k.leases(),
            s => k.status_index(s.as_str()),
        };
        let mut groups: Vec<Vec<String>> = vec![statuses.iter().map(status_key).collect()];
        for (value, index) in [
            (&filter.queue, Keys::queue_index as fn(&Keys, &str) -> String),
            (&filter.name, Keys::name_index),
            (&filter.worker, Keys::worker_index),
            (&filter.schedule, Keys::schedule_index),
        ] {
            if let Some(v) = value {
                groups.push(vec![index(k, v)]);
            }
        }
        let mut pipe = redis::pipe();
        for key in groups.iter().flatten() {
            pipe.zcard(key);
        }
        let mut sizes = pipe.query_async::<Vec<u64>>(&mut conn).await?.into_iter();
        let chosen = groups
            .into_iter()
            .map(|g| {
                let size: u64 = sizes.by_ref().take(g.len()).sum();
                (size, g)
            })
            .min_by_key(|(size, _)| *size)
            .map(|(_, g)| g)
            .unwrap_or_default();

        let high = bound(filter.created_before_ms, "+inf");
        let low = bound(filter.created_after_ms, "-inf");
        let per_index = (limit + 1).min(500);
        let leases = k.leases();
        let mut page = TaskPage::default();
        let mut position = cursor;
        let mut scanned = 0;
        loop {
            let at = position.as_ref().map(|c| (c.score, c.id.as_str()));
            let rows = scripts::list_page(&mut conn, k, &chosen, at, &high, &low, per_index).await?;
            // An index that gave a full batch may hold more: entries after its
            // last one wait for the next round, so the merge stays in order.
            let frontier = rows
                .iter()
                .filter(|r| r.len() >= per_index)
                .filter_map(|r| r.last())
                .map(|(id, score)| (*score as i64, id.clone()))
                .max();
            let exhausted = frontier.is_none();
            let mut merged: Vec<(i64, String, usize)> = rows
                .into_iter()
                .enumerate()
                .flat_map(|(i, r)| r.into_iter().map(move |(id, score)| (score as i64, id, i)))
                .filter(|(score, id, _)| frontier.as_ref().is_none_or(|(fs, fid)| (*score, id) >= (*fs, fid)))
                .filter(|(score, _, _)| filter.created_after_ms.is_none_or(|after| *score > after))
                .collect();
            merged.sort_by(|a, b| (b.0, &b.1).cmp(&(a.0, &a.1)));
            merged.dedup_by(|a, b| a.1 == b.1);
            if merged.is_empty() {
                break;
            }

            // The records' fields the other filters need, in one pipeline.
            let mut pipe = redis::pipe();
            for (_, id, _) in &merged {
                pipe.cmd("HMGET")
                    .arg(k.task(id))
                    .arg(&["status", "queue", "name", "worker", "schedule"]);
            }
            let fields: Vec<Vec<Option<String>>> = pipe.query_async(&mut conn).await?;
            let mut gone = redis::pipe();
            let mut any_gone = false;
            for ((score, id, from), f) in merged.into_iter().zip(fields) {
                scanned += 1;
                if f[0].is_none() && chosen[from] != leases {
                    // The record expired: its index entry goes too (a lease is the reaper's).
                    gone.zrem(&chosen[from], &id).ignore();
                    any_gone = true;
                } else if matches(filter, &f) {
                    page.ids.push(id.clone());
                }
                position = Some(Cursor { score, id });
                if page.ids.len() == limit {
                    break;
                }
            }
            if any_gone {
                gone.query_async::<()>(&mut conn).await?;
            }
            if page.ids.len() == limit || scanned >= SCAN_BUDGET.max(limit * 2) {
                page.next_cursor = position;
                return Ok(page);
            }
            if exhausted {
                break;
            }
        }
        Ok(page)
    }

    /// One page of the ids of one ZSET of task ids, highest score first, after
    /// `cursor`; entries whose record is gone are removed on the way.
    pub(super) async fn page_of_index(&self, index: String, limit: usize, cursor: Option<Cursor>) -> Result<TaskPage> {
        let mut conn = self.conn().await?;
        let limit = limit.max(1);
        let per_index = (limit + 1).min(500);
        let mut page = TaskPage::default();
        let mut position = cursor;
        let mut scanned = 0;
        loop {
            let at = position.as_ref().map(|c| (c.score, c.id.as_str()));
            let rows = scripts::list_page(
                &mut conn,
                &self.keys,
                std::slice::from_ref(&index),
                at,
                "+inf",
                "-inf",
                per_index,
            )
            .await?
            .pop()
            .unwrap_or_default();
            let more = rows.len() >= per_index;
            if rows.is_empty() {
                break;
            }
            let mut pipe = redis::pipe();
            for (id, _) in &rows {
                pipe.exists(k_task(&self.keys, id));
            }
            let exists: Vec<bool> = pipe.query_async(&mut conn).await?;
            let mut gone = Vec::new();
            for ((id, score), exists) in rows.into_iter().zip(exists) {
                scanned += 1;
                if exists {
                    page.ids.push(id.clone());
                } else {
                    gone.push(id.clone());
                }
                position = Some(Cursor {
                    score: score as i64,
                    id,
                });
                if page.ids.len() == limit {
                    break;
                }
            }
            if !gone.is_empty() {
                redis::cmd("ZREM")
                    .arg(&index)
                    .arg(&gone)
                    .query_async::<()>(&mut conn)
                    .await?;
            }
            if page.ids.len() == limit || scanned >= SCAN_BUDGET.max(limit * 2) {
                page.next_cursor = position;
                return Ok(page);
            }
            if !more {
                break;
            }
        }
        Ok(page)
    }

    /// Removes listing index entries whose record expired, at most `batch` per
    /// index (the reaper calls it now and then); returns how many went.
    pub async fn trim_indexes(&self, batch: usize) -> Result<u64> {
        scripts::trim_indexes(&mut self.conn().await?, &self.ctx(), batch).await
    }

    /// Reads several task records in one pipeline, in order (`None`: gone).
    pub async fn get_many(&self, ids: &[String]) -> Result<Vec<Option<TaskRecord>>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut pipe = redis::pipe();
        for id in ids {
            pipe.hgetall(self.keys.task(id));
        }
        let hashes: Vec<HashMap<String, String>> = pipe.query_async(&mut self.conn().await?).await?;
        hashes
            .into_iter()
            .zip(ids)
            .map(|(h, id)| {
                if h.is_empty() {
                    return Ok(None);
                }
                let id = id.parse().map_err(|_| QueueError::Corrupt(format!("task id {id:?}")))?;
                codec::task_from_hash(id, h).map(Some)
            })
            .collect()
    }

    /// Pauses a waiting task (PENDING or RETRY → PAUSED). `Ok(false)` when it is
    /// running (nothing changed: cancel it instead); `Err(Conflict)` in any other
    /// state, `Err(NotFound)` when unknown.
    pub async fn pause_task(&self, id: &Uuid) -> Result<bool> {
        let outcome = scripts::pause(&mut self.conn().await?, &self.ctx(), &id.to_string()).await?;
        Ok(outcome == Paused::Paused)
    }

    /// Resumes a PAUSED task: back to its queue (or delayed set) as PENDING.
    /// `Err(Conflict)` when it is not paused.
    pub async fn resume_task(&self, id: &Uuid) -> Result<()> {
        scripts::resume(&mut self.conn().await?, &self.ctx(), &id.to_string()).await
    }
}

fn k_task(keys: &Keys, id: &str) -> String {
    keys.task(id)
}

/// True when a record's `status queue name worker schedule` fields match every filter.
fn matches(filter: &TaskFilter, f: &[Option<String>]) -> bool {
    let is = |v: &Option<String>, want: &Option<String>| want.as_ref().is_none_or(|w| v.as_deref() == Some(w.as_str()));
    let status_ok = filter.statuses.is_empty()
        || f[0]
            .as_deref()
            .and_then(TaskStatus::parse)
            .is_some_and(|s| filter.statuses.contains(&s));
    let schedule_ok = filter.schedule.as_ref().is_none_or(|want| {
        f[4].as_deref()
            .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
            .is_some_and(|v| v.get("name").and_then(|n| n.as_str()) == Some(want.as_str()))
    });
    status_ok && is(&f[1], &filter.queue) && is(&f[2], &filter.name) && is(&f[3], &filter.worker) && schedule_ok
}

#[cfg(test)]
mod tests {
    use super::{Cursor, TaskFilter, matches};
    use crate::model::TaskStatus;

    #[test]
    fn cursors_round_trip_and_refuse_what_the_api_did_not_give() {
        let c = Cursor {
            score: 1_764_500_000_123,
            id: "0b7c6a8e-4a44-4b7e-9a8f-2f2f2f2f2f2f".into(),
        };
        assert_eq!(Cursor::decode(&c.encode()), Some(c));
        assert_eq!(Cursor::decode("nope"), None);
        assert_eq!(Cursor::decode("12.not-a-uuid"), None);
        assert_eq!(Cursor::decode("x.0b7c6a8e-4a44-4b7e-9a8f-2f2f2f2f2f2f"), None);
    }

    #[test]
    fn records_match_every_filter_given() {
        let rec = |s: &str| {
            vec![
                Some(s.to_owned()),
                Some("q".to_owned()),
                Some("noop".to_owned()),
                Some("w1".to_owned()),
                Some(r#"{"name":"nightly","due_at":"2026-01-01T00:00:00.000Z"}"#.to_owned()),
            ]
        };
        let mut f = TaskFilter {
            statuses: vec![TaskStatus::Success, TaskStatus::Paused],
            queue: Some("q".into()),
            name: Some("noop".into()),
            worker: Some("w1".into()),
            schedule: Some("nightly".into()),
            ..TaskFilter::default()
        };
        assert!(matches(&f, &rec("SUCCESS")));
        assert!(matches(&f, &rec("PAUSED")));
        assert!(!matches(&f, &rec("PENDING")));
        f.schedule = Some("hourly".into());
        assert!(!matches(&f, &rec("SUCCESS")));
        f.schedule = None;
        f.worker = Some("w2".into());
        assert!(!matches(&f, &rec("SUCCESS")));
        assert!(matches(&TaskFilter::default(), &rec("RETRY")));
    }
}
