//! `GET /workers` and `GET /workers/{name}`: registered workers, their status
//! and the tasks they run (read from the workers and leases indexes).

use poem_openapi::{OpenApi, param::Path, payload::Json};

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    models::{WorkerList, WorkerView},
};

/// Worker operations.
pub struct WorkersApi {
    pub(crate) state: AppState,
}

#[OpenApi(tag = "Tag::Workers")]
impl WorkersApi {
    /// Every registered worker (STOPPED ones until their retention ends), with its running tasks.
    ///
    /// Scope: `read`.
    #[oai(path = "/workers", method = "get")]
    async fn list(&self, _auth: BearerAuth) -> Result<Json<WorkerList>, ApiError> {
        let workers = self.state.queue.workers().await?;
        Ok(Json(WorkerList {
            workers: workers.into_iter().map(Into::into).collect(),
        }))
    }

    /// One worker.
    ///
    /// Scope: `read`.
    #[oai(path = "/workers/:name", method = "get")]
    async fn get(
        &self,
        _auth: BearerAuth,
        /// Worker name.
        name: Path<String>,
    ) -> Result<Json<WorkerView>, ApiError> {
        match self.state.queue.worker(&name.0).await? {
            Some(w) => Ok(Json(w.into())),
            None => Err(ApiError::not_found(format!("no worker named {:?}", name.0))),
        }
    }
}
