//! Schedules (periodic tasks) and the scheduler leadership. Every change is one
//! script that also wakes the scheduler leader, so it takes effect without a restart.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, OpenApi, param::Path, payload::Json};
use serde_json::Value;

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    models::{
        JsonBody, MissedPolicy, ScheduleList, ScheduleRequest, ScheduleView, SchedulerReplica, SchedulerView,
        TaskCreated, Text,
    },
};
use crate::{
    model::schedule::{Missed, Schedule, validate_schedule_name},
    model::{DEFAULT_QUEUE, TaskOptions, now_ms},
    scheduler::{
        leader,
        store::{self, Fire, FireMode, Fired, Saved, ScheduleRecord},
    },
};

/// Schedule operations.
pub struct SchedulesApi {
    pub(crate) state: AppState,
}

/// `GET /schedules` answers.
#[derive(ApiResponse)]
pub enum ListSchedulesResponse {
    /// Every schedule.
    #[oai(status = 200)]
    Ok(Json<ScheduleList>),
}

/// Answers that carry one schedule.
#[derive(ApiResponse)]
pub enum ScheduleResponse {
    /// The schedule.
    #[oai(status = 200)]
    Ok(Json<ScheduleView>),
    /// Created.
    #[oai(status = 201)]
    Created(Json<ScheduleView>, #[oai(header = "Location")] String),
}

/// `DELETE /schedules/{name}` answers.
#[derive(ApiResponse)]
pub enum DeleteScheduleResponse {
    /// Deleted; tasks it fired keep their records.
    #[oai(status = 204)]
    Deleted,
}

/// `POST /schedules/{name}/run` answers.
#[derive(ApiResponse)]
pub enum RunScheduleResponse {
    /// One run was enqueued now, outside the schedule.
    #[oai(status = 202)]
    Accepted(Json<TaskCreated>, #[oai(header = "Location")] String),
}

/// `GET /scheduler` answers.
#[derive(ApiResponse)]
pub enum SchedulerResponse {
    /// The leadership.
    #[oai(status = 200)]
    Ok(Json<SchedulerView>),
}

#[OpenApi(tag = "Tag::Schedules")]
impl SchedulesApi {
    /// List the schedules.
    ///
    /// Scope: `read`.
    #[oai(path = "/schedules", method = "get")]
    async fn list(&self, _auth: BearerAuth) -> Result<ListSchedulesResponse, ApiError> {
        let q = &self.state.queue;
        let records = store::list(&mut q.connection(), q.keys()).await?;
        let last: Vec<_> = records.iter().filter_map(|r| r.last_task_id).collect();
        let mut statuses = store::task_statuses(&mut q.connection(), q.keys(), &last)
            .await?
            .into_iter();
        let schedules = records
            .into_iter()
            .map(|r| {
                let status = r.last_task_id.and_then(|_| statuses.next().flatten());
                ScheduleView::new(r, status)
            })
            .collect();
        Ok(ListSchedulesResponse::Ok(Json(ScheduleList { schedules })))
    }

    /// Create a schedule (409 if the name exists).
    ///
    /// Scope: `admin`.
    #[oai(path = "/schedules", method = "post")]
    async fn create(&self, _auth: BearerAuth, body: JsonBody<ScheduleRequest>) -> Result<ScheduleResponse, ApiError> {
        let body = required(body)?;
        let Some(Text(name)) = body.name.clone() else {
            return Err(ApiError::unprocessable("invalid_schedule", "name is required"));
        };
        let s = self.checked(name, body).await?;
        match self.save(&s, true).await? {
            Saved::Exists => Err(ApiError::conflict(format!("a schedule named {:?} exists", s.name))),
            _ => self.created(&s.name).await,
        }
    }

    /// Read a schedule.
    ///
    /// Scope: `read`.
    #[oai(path = "/schedules/:name", method = "get")]
    async fn get(
        &self,
        _auth: BearerAuth,
        /// Schedule name.
        name: Path<String>,
    ) -> Result<ScheduleResponse, ApiError> {
        Ok(ScheduleResponse::Ok(Json(
            self.view(self.record(&name.0).await?).await?,
        )))
    }

    /// Create or replace a schedule; its run history is kept.
    ///
    /// Scope: `admin`.
    #[oai(path = "/schedules/:name", method = "put")]
    async fn put(
        &self,
        _auth: BearerAuth,
        /// Schedule name.
        name: Path<String>,
        body: JsonBody<ScheduleRequest>,
    ) -> Result<ScheduleResponse, ApiError> {
        let body = required(body)?;
        if body.name.as_ref().is_some_and(|n| n.0 != name.0) {
            return Err(ApiError::unprocessable(
                "invalid_schedule",
                "the body's name differs from the path's",
            ));
        }
        let s = self.checked(name.0, body).await?;
        match self.save(&s, false).await? {
            Saved::Created => self.created(&s.name).await,
            _ => self.get(BearerAuth, Path(s.name)).await,
        }
    }

    /// Delete a schedule.
    ///
    /// Scope: `admin`.
    #[oai(path = "/schedules/:name", method = "delete")]
    async fn delete(
        &self,
        _auth: BearerAuth,
        /// Schedule name.
        name: Path<String>,
    ) -> Result<DeleteScheduleResponse, ApiError> {
        let q = &self.state.queue;
        if store::delete(&mut q.connection(), q.keys(), &name.0).await? {
            Ok(DeleteScheduleResponse::Deleted)
        } else {
            Err(not_found(&name.0))
        }
    }

    /// Pause a schedule: nothing fires until it is resumed.
    ///
    /// Scope: `admin`.
    #[oai(path = "/schedules/:name/pause", method = "post")]
    async fn pause(
        &self,
        _auth: BearerAuth,
        /// Schedule name.
        name: Path<String>,
    ) -> Result<ScheduleResponse, ApiError> {
        self.set_paused(name.0, true).await
    }

    /// Resume a paused schedule from its next due time after now.
    ///
    /// Scope: `admin`.
    #[oai(path = "/schedules/:name/resume", method = "post")]
    async fn resume(
        &self,
        _auth: BearerAuth,
        /// Schedule name.
        name: Path<String>,
    ) -> Result<ScheduleResponse, ApiError> {
        self.set_paused(name.0, false).await
    }

    /// Fire one run now, outside the schedule (also while paused).
    ///
    /// Scope: `admin`.
    #[oai(path = "/schedules/:name/run", method = "post")]
    async fn run(
        &self,
        _auth: BearerAuth,
        /// Schedule name.
        name: Path<String>,
    ) -> Result<RunScheduleResponse, ApiError> {
        let rec = self.record(&name.0).await?;
        let q = &self.state.queue;
        let now = now_ms();
        let fire = Fire {
            schedule: &rec.schedule,
            mode: FireMode::Manual,
            token: 0,
            version: rec.version,
            due: DateTime::from_timestamp_millis(now).unwrap_or_else(Utc::now),
            next: None,
            now_ms: now,
        };
        match store::fire(&mut q.connection(), q.keys(), q.config().events_maxlen, &fire).await? {
            Fired::Fired { task_id, .. } => Ok(RunScheduleResponse::Accepted(
                Json(TaskCreated {
                    task_id: task_id.to_string(),
                }),
                format!("/tasks/{task_id}"),
            )),
            _ => Err(not_found(&name.0)),
        }
    }

    /// Who leads the scheduler processes, and which ones run.
    ///
    /// Scope: `read`.
    #[oai(path = "/scheduler", method = "get")]
    async fn scheduler(&self, _auth: BearerAuth) -> Result<SchedulerResponse, ApiError> {
        let q = &self.state.queue;
        let l = leader::leadership(&mut q.connection(), q.keys()).await?;
        Ok(SchedulerResponse::Ok(Json(SchedulerView {
            leader: l.leader,
            since: l.since,
            fencing_token: l.fencing_token,
            replicas: l
                .replicas
                .into_iter()
                .map(|(name, last_seen_at)| SchedulerReplica { name, last_seen_at })
                .collect(),
        })))
    }
}

impl SchedulesApi {
    async fn record(&self, name: &str) -> Result<ScheduleRecord, ApiError> {
        let q = &self.state.queue;
        store::get(&mut q.connection(), q.keys(), name)
            .await?
            .ok_or_else(|| not_found(name))
    }

    async fn save(&self, s: &Schedule, create_only: bool) -> Result<Saved, ApiError> {
        let q = &self.state.queue;
        let next = store::initial_next_run(s, Utc::now());
        Ok(store::save(&mut q.connection(), q.keys(), s, next, now_ms(), create_only).await?)
    }

    async fn created(&self, name: &str) -> Result<ScheduleResponse, ApiError> {
        let view = self.view(self.record(name).await?).await?;
        Ok(ScheduleResponse::Created(Json(view), format!("/schedules/{name}")))
    }

    async fn set_paused(&self, name: String, paused: bool) -> Result<ScheduleResponse, ApiError> {
        let mut s = self.record(&name).await?.schedule;
        if s.paused != paused {
            s.paused = paused;
            self.save(&s, false).await?;
        }
        self.get(BearerAuth, Path(name)).await
    }

    /// Builds and validates a schedule: 422 for a bad definition or an unknown task.
    async fn checked(&self, name: String, req: ScheduleRequest) -> Result<Schedule, ApiError> {
        let invalid = |msg: String| ApiError::unprocessable("invalid_schedule", msg);
        validate_schedule_name(&name).map_err(|e| invalid(e.to_string()))?;
        let options: TaskOptions = match req.options {
            None | Some(Value::Null) => TaskOptions::default(),
            Some(v) => serde_json::from_value(v).map_err(|e| invalid(format!("invalid options: {e}")))?,
        };
        if options.priority.is_some_and(|p| p > 9) {
            return Err(invalid("options.priority must be 0 to 9".into()));
        }
        let s = Schedule {
            name,
            task: req.task.0,
            args: req.args.unwrap_or_else(|| Value::Object(Default::default())),
            queue: req.queue.map_or_else(|| DEFAULT_QUEUE.to_owned(), |q| q.0),
            options,
            cron: req.cron.map(|c| c.0),
            timezone: req.timezone.map_or_else(|| "UTC".to_owned(), |z| z.0),
            every: req.every,
            missed: match req.missed {
                Some(MissedPolicy::CatchUp) => Missed::CatchUp,
                _ => Missed::Skip,
            },
            start_at: req.start_at,
            end_at: req.end_at,
            paused: req.paused.unwrap_or(false),
        };
        s.validate().map_err(|e| invalid(e.to_string()))?;
        if let Some(Err(e)) = self.state.builtins.validate(&s.task, &s.args) {
            return Err(ApiError::unprocessable(
                "invalid_args",
                format!("bad args for {:?}: {e}", s.task),
            ));
        }
        if self.state.require_registered(&s.task) {
            let registered = self.state.queue.registered_task_names().await?;
            if !registered.contains(&s.task) {
                return Err(self.state.unknown_task(&s.task).await);
            }
        }
        Ok(s)
    }

    async fn view(&self, r: ScheduleRecord) -> Result<ScheduleView, ApiError> {
        let q = &self.state.queue;
        let ids: Vec<_> = r.last_task_id.into_iter().collect();
        let status = store::task_statuses(&mut q.connection(), q.keys(), &ids).await?;
        Ok(ScheduleView::new(r, status.into_iter().next().flatten()))
    }
}

fn not_found(name: &str) -> ApiError {
    ApiError::not_found(format!("no schedule named {name:?}"))
}

/// A schedule's body is required (the lenient reader accepts any content type
/// and an empty body, as `POST /tasks` does).
fn required(body: JsonBody<ScheduleRequest>) -> Result<ScheduleRequest, ApiError> {
    body.0
        .ok_or_else(|| ApiError::unprocessable("invalid_schedule", "a schedule needs a JSON body"))
}
