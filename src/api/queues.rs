//! `GET /queues` and `GET /queues/{name}`: queue lengths (for dashboards and autoscalers).

use poem_openapi::{OpenApi, param::Path, payload::Json};

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    models::{MAX_QUEUE_NAME, QueueView, is_safe_name},
};

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
}
