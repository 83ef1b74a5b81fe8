//! `celeriac-api inspect …`: what `celery inspect` gives, read straight from
//! Redis (the same indexes as `GET /workers` and `GET /queues`), printed as a
//! table or as the API's JSON.
//!
//! - `active`: tasks running now, with their worker.
//! - `reserved`: tasks claimed but not started: always none, since a worker
//!   claims only for free slots and starts what it claims.
//! - `workers`, `queues`, `registered` (task names registered by workers).
//! - `celeriac-api tasks`: [`list_tasks`], newest first, filtered as `GET /tasks` is.

use std::time::Duration;

use poem_openapi::types::ToJSON;

use crate::{
    api::models::{ActiveTaskView, QueueView, WorkerView},
    error::QueueError,
    queue::Queue,
};

/// What to show.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Inspect {
    /// Tasks running now.
    Active,
    /// Tasks claimed but not started (always none: workers start what they claim).
    Reserved,
    /// Registered workers.
    Workers,
    /// Queues and their counts.
    Queues,
    /// Task names registered by workers.
    Registered,
}

/// Why an inspection failed.
#[derive(Debug, thiserror::Error)]
pub enum InspectError {
    /// Redis did not answer in time.
    #[error("redis did not answer within {0:?}")]
    TimedOut(Duration),
    /// Redis answered with an error or refused the connection.
    #[error(transparent)]
    Queue(#[from] QueueError),
}

/// Lists at most `limit` tasks matching `filter`, newest first (one page of
/// `GET /tasks?expand`), as a table or as JSON, giving up after `timeout`.
pub async fn list_tasks(
    queue: &Queue,
    filter: &crate::queue::TaskFilter,
    limit: usize,
    json: bool,
    timeout: Duration,
) -> Result<String, InspectError> {
    let read = async {
        let page = queue.list_tasks(filter, limit, None).await?;
        let views: Vec<crate::api::models::TaskView> = queue
            .get_many(&page.ids)
            .await?
            .into_iter()
            .flatten()
            .map(Into::into)
            .collect();
        Ok::<_, QueueError>(views)
    };
    let views = tokio::time::timeout(timeout, read)
        .await
        .map_err(|_| InspectError::TimedOut(timeout))??;
    if json {
        return Ok(views.to_json_string());
    }
    Ok(table(
        &["TASK ID", "NAME", "QUEUE", "STATUS", "WORKER", "CREATED"],
        views
            .iter()
            .map(|t| {
                let v = t.to_json().unwrap_or_default();
                let s = |k: &str| v.get(k).and_then(|x| x.as_str()).unwrap_or("").to_owned();
                vec![
                    s("task_id"),
                    s("name"),
                    s("queue"),
                    s("status"),
                    s("worker"),
                    s("created_at"),
                ]
            })
            .collect(),
    ))
}

/// Reads `what` and renders it (a table, or JSON with `json`), giving up after `timeout`.
pub async fn inspect(queue: &Queue, what: Inspect, json: bool, timeout: Duration) -> Result<String, InspectError> {
    tokio::time::timeout(timeout, render(queue, what, json))
        .await
        .map_err(|_| InspectError::TimedOut(timeout))?
}

async fn render(queue: &Queue, what: Inspect, json: bool) -> Result<String, InspectError> {
    Ok(match what {
        Inspect::Active | Inspect::Reserved => {
            let active: Vec<ActiveTaskView> = if what == Inspect::Active {
                queue.active_tasks().await?.iter().map(Into::into).collect()
            } else {
                queue.ping().await?;
                Vec::new()
            };
            if json {
                active.to_json_string()
            } else {
                table(
                    &["TASK ID", "NAME", "QUEUE", "WORKER", "STARTED", "RUNTIME"],
                    active
                        .iter()
                        .map(|a| {
                            vec![
                                a.task_id.clone(),
                                a.name.clone(),
                                a.queue.clone(),
                                a.worker.clone(),
                                a.started_at.to_rfc3339(),
                                format!("{:.1}s", a.runtime_s),
                            ]
                        })
                        .collect(),
                )
            }
        }
        Inspect::Workers => {
            let workers: Vec<WorkerView> = queue.workers().await?.into_iter().map(Into::into).collect();
            if json {
                workers.to_json_string()
            } else {
                table(
                    &[
                        "NAME",
                        "STATUS",
                        "HOST",
                        "PID",
                        "QUEUES",
                        "CONC",
                        "ACTIVE",
                        "PROCESSED",
                        "LAST HEARTBEAT",
                    ],
                    workers
                        .iter()
                        .map(|w| {
                            vec![
                                w.name.clone(),
                                w.status.clone(),
                                w.hostname.clone(),
                                w.pid.to_string(),
                                w.queues.join(","),
                                w.concurrency.to_string(),
                                w.active.len().to_string(),
                                w.processed.to_string(),
                                w.last_heartbeat.to_rfc3339(),
                            ]
                        })
                        .collect(),
                )
            }
        }
        Inspect::Queues => {
            let queues: Vec<QueueView> = queue.list_queues().await?.into_iter().map(Into::into).collect();
            if json {
                queues.to_json_string()
            } else {
                table(
                    &["QUEUE", "READY", "DELAYED", "RUNNING", "OLDEST READY", "WORKERS"],
                    queues
                        .iter()
                        .map(|q| {
                            vec![
                                q.name.clone(),
                                q.ready.to_string(),
                                q.delayed.to_string(),
                                q.running.to_string(),
                                format!("{:.1}s", q.oldest_ready_age_s),
                                q.workers.to_string(),
                            ]
                        })
                        .collect(),
                )
            }
        }
        Inspect::Registered => {
            let names = queue.registered_task_names().await?;
            if json {
                names.to_json_string()
            } else {
                table(&["TASK NAME"], names.into_iter().map(|n| vec![n]).collect())
            }
        }
    })
}

/// Left-aligned columns, two spaces apart; `(none)` for no rows.
fn table(header: &[&str], rows: Vec<Vec<String>>) -> String {
    if rows.is_empty() {
        return "(none)".to_owned();
    }
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let padded: Vec<String> = cells.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(header.iter().map(|h| (*h).to_owned()).collect())];
    out.extend(rows.into_iter().map(line));
    out.join("\n")
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn tables_align_columns_and_say_none_when_empty() {
        assert_eq!(table(&["A", "B"], vec![]), "(none)");
        let t = table(
            &["NAME", "N"],
            vec![vec!["x".into(), "10".into()], vec!["long".into(), "2".into()]],
        );
        assert_eq!(t, "NAME  N\nx     10\nlong  2");
    }
}
