//! `POST /workflows` and `GET /workflows/{workflow_id}`: chains, groups and chords.

use poem_openapi::{ApiResponse, OpenApi, param::Path, param::Query, payload::Json};
use uuid::Uuid;

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    long_poll::wait_final,
    models::{JsonBody, WorkflowCreatedView, WorkflowRequest, WorkflowType, WorkflowView},
    new_task::{Placement, new_task},
};
use crate::{error::QueueError, model::WorkflowKind};

/// Workflow operations.
pub struct WorkflowsApi {
    pub(crate) state: AppState,
}

/// `POST /workflows` answers.
#[derive(ApiResponse)]
pub enum CreateWorkflowResponse {
    /// Accepted: its first tasks are queued.
    #[oai(status = 202)]
    Accepted(Json<WorkflowCreatedView>, #[oai(header = "Location")] String),
}

/// `GET /workflows/{workflow_id}` answers.
#[derive(ApiResponse)]
pub enum GetWorkflowResponse {
    /// The workflow's state.
    #[oai(status = 200)]
    Ok(Json<WorkflowView>),
}

#[OpenApi(tag = "Tag::Workflows")]
impl WorkflowsApi {
    /// Submit a workflow.
    ///
    /// `chain`: the tasks run one after the other, each receiving the previous
    /// result (prepended to array `args`, as `input` in object `args`, or as the
    /// `args` when it has none); a failure stops the chain. `group`: the tasks run
    /// in parallel; the result lists every result in order. `chord`: a group, then
    /// `callback` receives the list of results. Every task is an ordinary task
    /// at `GET /tasks/{id}`; finishing tasks advance the workflow inside Redis.
    ///
    /// Scope: `write`.
    #[oai(path = "/workflows", method = "post")]
    async fn create(
        &self,
        _auth: BearerAuth,
        body: JsonBody<WorkflowRequest>,
    ) -> Result<CreateWorkflowResponse, ApiError> {
        let Some(req) = body.0 else {
            return Err(ApiError::unprocessable("invalid_workflow", "a workflow needs a body"));
        };
        let kind = match req.kind {
            WorkflowType::Chain => WorkflowKind::Chain,
            WorkflowType::Group => WorkflowKind::Group,
            WorkflowType::Chord => WorkflowKind::Chord,
        };
        if (kind == WorkflowKind::Chord) != req.callback.is_some() {
            return Err(ApiError::unprocessable(
                "invalid_workflow",
                "a chord needs a callback, and only a chord has one",
            ));
        }
        // In a chain every task but the first is fed the previous result.
        let tasks = req
            .tasks
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let fed = kind == WorkflowKind::Chain && i > 0;
                new_task(
                    &self.state,
                    t,
                    if fed {
                        Placement::WorkflowFed
                    } else {
                        Placement::Workflow
                    },
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        let callback = req
            .callback
            .map(|c| new_task(&self.state, c, Placement::WorkflowFed))
            .transpose()?;
        for (i, t) in tasks.iter().enumerate() {
            let fed = kind == WorkflowKind::Chain && i > 0;
            super::task_types::check_args(&self.state, t, fed).await?;
        }
        if let Some(c) = &callback {
            super::task_types::check_args(&self.state, c, true).await?;
        }
        let created = self
            .state
            .queue
            .create_workflow(kind, &tasks, callback.as_ref(), |name| {
                self.state.require_registered(name)
            })
            .await;
        match created {
            Ok(w) => Ok(CreateWorkflowResponse::Accepted(
                Json(WorkflowCreatedView {
                    workflow_id: w.id.to_string(),
                    task_ids: w.task_ids.iter().map(ToString::to_string).collect(),
                    callback_id: w.callback_id.map(|c| c.to_string()),
                }),
                format!("/workflows/{}", w.id),
            )),
            Err(QueueError::UnknownTaskName(name)) => Err(self.state.unknown_task(&name).await),
            Err(e) => Err(e.into()),
        }
    }

    /// Read a workflow: status, progress (done / total), task ids and result.
    ///
    /// With `wait`, the request is held until the workflow ends or `wait` seconds pass.
    ///
    /// Scope: `read`.
    #[oai(path = "/workflows/:workflow_id", method = "get")]
    async fn get(
        &self,
        _auth: BearerAuth,
        /// Workflow id.
        workflow_id: Path<String>,
        /// Seconds (at most 60) to wait for the workflow to end.
        #[oai(validator(minimum(value = "0"), maximum(value = "60")))]
        wait: Query<Option<f64>>,
    ) -> Result<GetWorkflowResponse, ApiError> {
        let not_found = || ApiError::not_found(format!("no workflow with id {:?}", workflow_id.0));
        let id = Uuid::parse_str(&workflow_id.0).map_err(|_| not_found())?;
        let queue = &self.state.queue;
        // The canonical id's channel, however the id was written (see tasks).
        let channel = queue.keys().done_channel(&id.to_string());
        let record = wait_final(
            &self.state,
            channel,
            wait.0,
            || queue.get_workflow(&id),
            |w| w.status.is_final(),
        )
        .await?;
        record
            .map(|w| GetWorkflowResponse::Ok(Json(w.into())))
            .ok_or_else(not_found)
    }
}
