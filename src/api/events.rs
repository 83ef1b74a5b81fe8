//! `GET /events`: Server-Sent Events of every task transition and worker
//! change, read from the events stream by the process's one reader
//! (`redis/events.rs`) and fanned out to every client.
//!
//! `id:` is the stream entry id, `event:` Celery's event name, `data:` JSON
//! ([`EventView`]). A client reconnecting with `Last-Event-ID` first receives
//! the entries after that id still in the (capped) stream, then live ones, in
//! order and without duplicates. A comment line every 15 s keeps idle
//! connections open. A client that falls [`CAPACITY`](crate::redis::events::CAPACITY)
//! events behind is disconnected (it reconnects with `Last-Event-ID`).
//!
//! Event names: `enqueued`, `delayed`, `resubmitted`, `requeued` (lease expired)
//! and `released` (worker shutdown) → `task-sent`; `started` → `task-started`;
//! `succeeded` → `task-succeeded`; `failed` → `task-failed`; `retry` →
//! `task-retried`; `revoked`, `expired` → `task-revoked`; `progress` →
//! `task-progress`; `paused`/`resumed` → `task-paused`/`task-resumed`;
//! `worker-online`/`worker-offline` as they are. Others keep their name with
//! dashes: `task-cancel-requested`, `task-forgotten`, `task-waiting` (held by a
//! workflow), `workflow-success`, `workflow-failure`, `workflow-revoked`.

use std::{sync::Arc, time::Duration};

use futures_util::{StreamExt, stream::BoxStream};
use poem::web::sse::Event;
use poem_openapi::{
    Object, OpenApi,
    param::{Header, Query},
    payload::EventStream,
    types::ToJSON,
};
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use uuid::Uuid;

use super::{
    AppState, Tag, auth::BearerAuth, error::ApiError, models::ms_to_time, queues::check_name as check_queue_name,
};
use crate::redis::events::{StreamEvent, parse_id};

/// Keepalive comment interval.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// `data:` of one event.
#[derive(Debug, Default, Object)]
pub struct EventView {
    /// `id:` of the SSE event (not in `data`).
    #[oai(skip)]
    pub sse_id: String,
    /// `event:` of the SSE event (not in `data`).
    #[oai(skip)]
    pub sse_event: String,
    /// Task (or workflow) id; absent on worker events.
    pub task_id: Option<String>,
    /// Task name (absent when its record is gone), or the worker's name on worker events.
    pub name: Option<String>,
    /// The task's queue ("" for workflows and workers).
    pub queue: String,
    /// Status after the transition (`PENDING`, `STARTED`, …; `ONLINE`/`STOPPED` for workers).
    pub status: String,
    /// When it happened.
    pub timestamp: chrono::DateTime<chrono::Utc>,
    /// The engine's own name of the transition (`enqueued`, `requeued`, …).
    pub transition: String,
    /// Progress reported by the task (`task-progress`).
    pub progress: Option<Value>,
    /// The worker (worker events).
    pub worker: Option<String>,
    /// The worker's host (worker events).
    pub hostname: Option<String>,
}

/// Celery's name of an internal event name.
pub fn celery_name(event: &str) -> String {
    match event {
        "enqueued" | "delayed" | "resubmitted" | "requeued" | "released" => "task-sent".to_owned(),
        "started" => "task-started".to_owned(),
        "succeeded" => "task-succeeded".to_owned(),
        "failed" => "task-failed".to_owned(),
        "retry" => "task-retried".to_owned(),
        "revoked" | "expired" => "task-revoked".to_owned(),
        "progress" => "task-progress".to_owned(),
        "paused" => "task-paused".to_owned(),
        "resumed" => "task-resumed".to_owned(),
        e if e.starts_with("worker-") => e.to_owned(),
        e if e.starts_with("workflow_") => e.replace('_', "-"),
        e => format!("task-{}", e.replace('_', "-")),
    }
}

/// The shape of every name [`celery_name`] gives: `task-`, `worker-` or
/// `workflow-`, then lowercase words joined by dashes.
fn is_event_name(name: &str) -> bool {
    let rest = ["task-", "worker-", "workflow-"]
        .iter()
        .find_map(|p| name.strip_prefix(p));
    rest.is_some_and(|r| {
        !r.is_empty()
            && !r.starts_with('-')
            && !r.ends_with('-')
            && !r.contains("--")
            && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
    })
}

fn view(e: &StreamEvent, kind: String) -> EventView {
    let opt = |f: &str| e.fields.get(f).filter(|v| !v.is_empty()).cloned();
    let worker = opt("worker");
    EventView {
        sse_id: e.id.clone(),
        sse_event: kind,
        task_id: opt("task_id"),
        name: e.name.clone().or_else(|| worker.clone()),
        queue: e.field("queue").to_owned(),
        status: e.field("status").to_owned(),
        timestamp: ms_to_time(e.field("ts").parse().unwrap_or_default()),
        transition: e.field("event").to_owned(),
        progress: opt("progress").map(|p| serde_json::from_str(&p).unwrap_or(Value::String(p))),
        worker,
        hostname: opt("hostname"),
    }
}

/// Which events a client asked for.
struct Filter {
    queue: Option<String>,
    task_id: Option<String>,
    types: Option<Vec<String>>,
}

impl Filter {
    /// The filters of a request, or a 400 for one that could never match (an
    /// unsafe queue name, a task id that is not a UUID, a type that is not an
    /// event name): a typo would otherwise be a stream that stays silent.
    fn checked(queue: Option<String>, task_id: Option<String>, types: Option<String>) -> Result<Self, ApiError> {
        let queue = queue.filter(|q| !q.is_empty());
        if let Some(q) = &queue {
            check_queue_name(q)?;
        }
        let task_id = match task_id.filter(|t| !t.is_empty()) {
            Some(t) => Some(
                Uuid::parse_str(&t)
                    .map_err(|_| {
                        ApiError::bad_request("invalid_task_id", format!("task_id {t:?} is not a task or workflow id"))
                    })?
                    .to_string(),
            ),
            None => None,
        };
        let types = match types {
            Some(list) => {
                let names: Vec<String> = list
                    .split(',')
                    .map(|s| s.trim().to_owned())
                    .filter(|s| !s.is_empty())
                    .collect();
                if let Some(bad) = names.iter().find(|n| !is_event_name(n)) {
                    return Err(ApiError::bad_request(
                        "invalid_type",
                        format!(
                            "type {bad:?} is not an event name: use Celery's, like task-succeeded, task-failed or worker-online"
                        ),
                    ));
                }
                Some(names)
            }
            None => None,
        };
        Ok(Self { queue, task_id, types })
    }

    fn admits(&self, e: &StreamEvent, kind: &str) -> bool {
        self.queue.as_ref().is_none_or(|q| e.field("queue") == q)
            && self.task_id.as_ref().is_none_or(|t| e.field("task_id") == t)
            && self.types.as_ref().is_none_or(|ts| ts.iter().any(|t| t == kind))
    }
}

/// Live events.
pub struct EventsApi {
    pub(crate) state: AppState,
}

#[OpenApi(tag = "Tag::Events")]
impl EventsApi {
    /// Server-Sent Events of task transitions and worker changes (Celery's
    /// event names). Resume with the `Last-Event-ID` header.
    ///
    /// Scope: `read`.
    #[oai(path = "/events", method = "get")]
    async fn events(
        &self,
        _auth: BearerAuth,
        /// Only events of this queue.
        queue: Query<Option<String>>,
        /// Only events of this task.
        task_id: Query<Option<String>>,
        /// Only these event names, comma-separated (`task-succeeded,task-failed`).
        #[oai(name = "type")]
        kind: Query<Option<String>>,
        /// The id of the last event received: the stream resumes after it.
        #[oai(name = "Last-Event-ID")]
        last_event_id: Header<Option<String>>,
    ) -> Result<EventStream<BoxStream<'static, EventView>>, ApiError> {
        let last = last_event_id.0.filter(|id| !id.trim().is_empty());
        let mut seen =
            match &last {
                Some(id) => Some(parse_id(id.trim()).ok_or_else(|| {
                    ApiError::bad_request("invalid_last_event_id", "Last-Event-ID is not a stream id")
                })?),
                None => None,
            };
        let filter = Arc::new(Filter::checked(queue.0, task_id.0, kind.0)?);
        let hub = self.state.events.clone();
        // Subscribed before reading the backlog: nothing falls between the two,
        // and what is in both is skipped by id.
        let rx = hub.subscribe().await?;
        let backlog = match &last {
            Some(id) => {
                let (ms, seq) = seen.expect("parsed above");
                let max = (self.state.queue.config().events_maxlen as usize)
                    .saturating_mul(2)
                    .max(1000);
                let _ = id;
                hub.after(&format!("{ms}-{seq}"), max).await?
            }
            None => Vec::new(),
        };
        if let Some(e) = backlog.last() {
            seen = parse_id(&e.id);
        }
        let backlog = futures_util::stream::iter(backlog.into_iter().map(Arc::new));
        let live = futures_util::stream::unfold((rx, seen), |(mut rx, seen)| async move {
            loop {
                match rx.recv().await {
                    Ok(e) => {
                        if seen.is_some_and(|s| parse_id(&e.id).is_none_or(|id| id <= s)) {
                            continue;
                        }
                        return Some((e, (rx, seen)));
                    }
                    // Lagged: drop the client (it resumes with Last-Event-ID); never stall the reader.
                    Err(RecvError::Lagged(_) | RecvError::Closed) => return None,
                }
            }
        });
        let stream = backlog.chain(live).filter_map(move |e| {
            let kind = celery_name(e.field("event"));
            let view = filter.admits(&e, &kind).then(|| view(&e, kind));
            async move { view }
        });
        Ok(EventStream::new(stream.boxed()).keep_alive(KEEPALIVE).to_event(|v| {
            let (id, kind) = (v.sse_id.clone(), v.sse_event.clone());
            Event::message(v.to_json_string()).id(id).event_type(kind)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::{celery_name, is_event_name};

    #[test]
    fn event_names_have_one_shape() {
        for ok in [
            "task-sent",
            "task-succeeded",
            "task-cancel-requested",
            "worker-online",
            "workflow-success",
        ] {
            assert!(is_event_name(ok), "{ok}");
        }
        for bad in [
            "succeeded",
            "task_succeeded",
            "task-",
            "Task-sent",
            "task--x",
            "worker-",
            "jobs-x",
            "",
        ] {
            assert!(!is_event_name(bad), "{bad}");
        }
    }

    #[test]
    fn internal_event_names_map_to_celerys() {
        for (internal, celery) in [
            ("enqueued", "task-sent"),
            ("delayed", "task-sent"),
            ("requeued", "task-sent"),
            ("started", "task-started"),
            ("succeeded", "task-succeeded"),
            ("failed", "task-failed"),
            ("retry", "task-retried"),
            ("revoked", "task-revoked"),
            ("expired", "task-revoked"),
            ("progress", "task-progress"),
            ("worker-online", "worker-online"),
            ("cancel_requested", "task-cancel-requested"),
            ("workflow_success", "workflow-success"),
        ] {
            assert_eq!(celery_name(internal), celery, "{internal}");
            assert!(is_event_name(celery), "{celery}");
        }
    }
}
