//! `GET /queues` and `GET /queues/{name}`: queue lengths (for dashboards and
//! autoscalers); pause, resume and purge a queue; the dead letter.

use poem_openapi::{ApiResponse, Object, OpenApi, param::Path, param::Query, payload::Json};
use serde_json::Value;
use uuid::Uuid;

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    models::TaskList,
    models::{MAX_QUEUE_NAME, QueueView, TaskView, is_safe_name},
};
use crate::{error::QueueError, queue::Cursor};

/// `DELETE /queues/{name}/tasks` answer.
#[derive(Debug, Object)]
pub struct Purged {
    /// Tasks revoked (result reason "purged").
    pub purged: u64,
}

/// `POST /dead-letter/{task_id}/requeue` answers.
#[derive(ApiResponse)]
pub enum RequeueResponse {
    /// Queued again as a new attempt.
    #[oai(status = 202)]
    Queued(TaskView),
}

/// A 400 unless `name` is a queue name (also for `GET /events?queue=`).
pub(super) fn check_name(name: &str) -> Result<(), ApiError> {
    if is_safe_name(name, MAX_QUEUE_NAME) {
        return Ok(());
    }
    Err(ApiError::bad_request(
        "invalid_queue",
        format!(
            "queue must be 1 to {MAX_QUEUE_NAME} characters from A-Z a-z 0-9 _ . : - starting with a letter or digit"
        ),
    ))
}

/// Queue operations.
pub struct QueuesApi {
    pub(crate) state: AppState,
}

#[OpenApi(tag = "Tag::Queues")]
impl QueuesApi {
    /// Every queue that ever received a task, with its counts.
    ///
    /// Scope: `read`.
    #[oai(path = "/queues", method = "get")]
    async fn list(&self, _auth: BearerAuth) -> Result<Json<Vec<QueueView>>, ApiError> {
        let queues = self.state.queue.list_queues().await?;
        Ok(Json(queues.into_iter().map(Into::into).collect()))
    }

    /// One queue's counts (zero for a queue that never received a task).
    ///
    /// Scope: `read`.
    #[oai(path = "/queues/:name", method = "get")]
    async fn get(
        &self,
        _auth: BearerAuth,
        /// Queue name.
        name: Path<String>,
    ) -> Result<Json<QueueView>, ApiError> {
        if !is_safe_name(&name.0, MAX_QUEUE_NAME) {
            return Err(ApiError::bad_request(
                "invalid_queue",
                format!(
                    "queue must be 1 to {MAX_QUEUE_NAME} characters from A-Z a-z 0-9 _ . : - starting with a letter or digit"
                ),
            ));
        }
        Ok(Json(self.state.queue.queue_stats(&name.0).await?.into()))
    }

    /// Pause a queue: no worker claims from it (within a second); running
    /// tasks finish; new tasks are accepted and wait. Idempotent.
    ///
    /// Scope: `admin`.
    #[oai(path = "/queues/:name/pause", method = "post")]
    async fn pause(
        &self,
        _auth: BearerAuth,
        /// Queue name.
        name: Path<String>,
    ) -> Result<Json<QueueView>, ApiError> {
        check_name(&name.0)?;
        Ok(Json(self.state.queue.pause_queue(&name.0).await?.into()))
    }

    /// Resume a paused queue: workers claim from it again. Idempotent.
    ///
    /// Scope: `admin`.
    #[oai(path = "/queues/:name/resume", method = "post")]
    async fn resume(
        &self,
        _auth: BearerAuth,
        /// Queue name.
        name: Path<String>,
    ) -> Result<Json<QueueView>, ApiError> {
        check_name(&name.0)?;
        Ok(Json(self.state.queue.resume_queue(&name.0).await?.into()))
    }

    /// Purge a queue: every ready and delayed task ends REVOKED with
    /// `result.reason = "purged"`. Running tasks are untouched.
    ///
    /// Scope: `admin`.
    #[oai(path = "/queues/:name/tasks", method = "delete")]
    async fn purge(
        &self,
        _auth: BearerAuth,
        /// Queue name.
        name: Path<String>,
    ) -> Result<Json<Purged>, ApiError> {
        check_name(&name.0)?;
        Ok(Json(Purged {
            purged: self.state.queue.purge_queue(&name.0).await?,
        }))
    }

    /// Tasks given up after too many lost deliveries, the latest first, paged as
    /// `GET /tasks` is (`limit`, `cursor`, `expand`).
    ///
    /// Scope: `read`.
    #[oai(path = "/dead-letter", method = "get")]
    async fn dead_letter(
        &self,
        _auth: BearerAuth,
        /// Page size (default 100, at most 500).
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// Give whole tasks instead of ids (`?expand`, `?expand=true`).
        expand: Query<Option<String>>,
    ) -> Result<Json<TaskList>, ApiError> {
        let cursor = match cursor.0.as_deref() {
            None | Some("") => None,
            Some(c) => Some(
                Cursor::decode(c)
                    .ok_or_else(|| ApiError::bad_request("invalid_cursor", "cursor is not one this API gave"))?,
            ),
        };
        let limit = limit.0.map_or(100, |l| l as usize);
        let page = self.state.queue.list_dead_letter(limit, cursor).await?;
        let tasks = if expand.0.is_some_and(|v| !matches!(v.as_str(), "false" | "0")) {
            let records = self.state.queue.get_many(&page.ids).await?;
            records.into_iter().flatten().map(|r| r.to_json()).collect()
        } else {
            page.ids.into_iter().map(Value::String).collect()
        };
        Ok(Json(TaskList {
            tasks,
            next_cursor: page.next_cursor.map(|c| c.encode()),
        }))
    }

    /// Requeue a dead-lettered task as a new attempt (as `POST /tasks/{id}/retry` does).
    ///
    /// Scope: `admin`.
    #[oai(path = "/dead-letter/:task_id/requeue", method = "post")]
    async fn requeue(
        &self,
        _auth: BearerAuth,
        /// Task id.
        task_id: Path<String>,
    ) -> Result<RequeueResponse, ApiError> {
        let not_found = || ApiError::not_found(format!("no dead-lettered task with id {:?}", task_id.0));
        let id = Uuid::parse_str(&task_id.0).map_err(|_| not_found())?;
        match self.state.queue.requeue_dead(&id).await {
            Ok(()) => {}
            Err(QueueError::NotFound) => return Err(not_found()),
            Err(QueueError::Conflict) => return Err(ApiError::conflict("the task's status does not allow this")),
            Err(e) => return Err(e.into()),
        }
        match self.state.queue.get(&id).await? {
            Some(r) => Ok(RequeueResponse::Queued(r.into())),
            None => Err(not_found()),
        }
    }
}
