//! Schedules (periodic tasks) and the scheduler leadership. Every change is one
//! script that also wakes the scheduler leader, so it takes effect without a restart.

use chrono::{DateTime, Utc};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi, param::Path, payload::Json};
use serde_json::Value;

use super::{
    AppState, Tag,
    auth::BearerAuth,
    error::ApiError,
    models::{JsonBody, TaskCreated},
};
use crate::{
    model::schedule::{Missed, Schedule, validate_schedule_name},
    model::{DEFAULT_QUEUE, TaskOptions, now_ms},
    scheduler::store::{self, Fire, FireMode, Fired, Saved, ScheduleRecord},
};

/// Schedule operations.
pub struct SchedulesApi {
    pub(crate) state: AppState,
}

/// What to do with due times missed while no scheduler ran.
#[derive(Debug, Enum, Clone, Copy, PartialEq, Eq)]
#[oai(rename_all = "snake_case")]
pub enum MissedPolicy {
    /// Fire at the next due time only (default).
    Skip,
    /// Fire one run for the missed period, then continue.
    CatchUp,
}

/// `POST /schedules` and `PUT /schedules/{name}` body.
#[derive(Debug, Object)]
#[oai(deny_unknown_fields)]
pub struct ScheduleRequest {
    /// Unique name, 1–128 of `A-Z a-z 0-9 . _ : -` (optional on PUT, where the path names it).
    pub name: Option<String>,
    /// Task name: built in or registered by a worker.
    pub task: String,
    /// Arguments of every run; default `{}`.
    pub args: Option<Value>,
    /// Queue of every run; default `default`.
    pub queue: Option<String>,
    /// Task options of every run (`priority`, `max_retries`, `expires` in seconds, `time_limit`, …).
    pub options: Option<Value>,
    /// Cron pattern: 5 fields, or 6 with seconds first. Exclusive with `every`.
    pub cron: Option<String>,
    /// IANA time zone of `cron`; default `UTC`.
    pub timezone: Option<String>,
    /// Period in seconds, at least 1. Exclusive with `cron`.
    pub every: Option<f64>,
    /// Missed due times after downtime: `skip` (default) or `catch_up`.
    pub missed: Option<MissedPolicy>,
    /// No run before this time.
    pub start_at: Option<DateTime<Utc>>,
    /// No run after this time.
    pub end_at: Option<DateTime<Utc>>,
    /// Create the schedule paused.
    pub paused: Option<bool>,
}

/// A schedule with its run history.
#[derive(Debug, Object)]
pub struct ScheduleView {
    /// Unique name.
    pub name: String,
    /// Task name.
    pub task: String,
    /// Arguments of every run.
    pub args: Value,
    /// Queue of every run.
    pub queue: String,
    /// Task options of every run.
    pub options: Value,
    /// Cron pattern.
    #[oai(nullable)]
    pub cron: Option<String>,
    /// Time zone of `cron`.
    pub timezone: String,
    /// Period in seconds.
    #[oai(nullable)]
    pub every: Option<f64>,
    /// Missed due times policy.
    pub missed: MissedPolicy,
    /// No run before this time.
    #[oai(nullable)]
    pub start_at: Option<DateTime<Utc>>,
    /// No run after this time.
    #[oai(nullable)]
    pub end_at: Option<DateTime<Utc>>,
    /// Held: nothing fires until resumed.
    pub paused: bool,
    /// The pending due time (none while paused or after `end_at`).
    #[oai(nullable)]
    pub next_run_at: Option<DateTime<Utc>>,
    /// When the latest run was enqueued.
    #[oai(nullable)]
    pub last_run_at: Option<DateTime<Utc>>,
    /// The task of the latest run.
    #[oai(nullable)]
    pub last_task_id: Option<String>,
    /// Status of the latest run's task (none once its record expired).
    #[oai(nullable)]
    pub last_status: Option<String>,
    /// Runs fired so far (manual runs included).
    pub runs: u64,
    /// Creation time.
    #[oai(nullable)]
    pub created_at: Option<DateTime<Utc>>,
}

/// `GET /schedules` body.
#[derive(Debug, Object)]
pub struct ScheduleList {
    /// Every schedule, by next run (paused and ended ones last).
    pub schedules: Vec<ScheduleView>,
}

/// A scheduler process seen recently.
#[derive(Debug, Object)]
pub struct SchedulerReplica {
    /// Process name.
    pub name: String,
    /// When it last took part in the election.
    pub last_seen_at: DateTime<Utc>,
}

/// `GET /scheduler` body.
#[derive(Debug, Object)]
pub struct SchedulerView {
    /// The leading scheduler process, if any.
    #[oai(nullable)]
    pub leader: Option<String>,
    /// Since when it leads.
    #[oai(nullable)]
    pub since: Option<DateTime<Utc>>,
    /// Its fencing token (INCRed on each new leadership).
    #[oai(nullable)]
    pub fencing_token: Option<u64>,
    /// Scheduler processes seen recently.
    pub replicas: Vec<SchedulerReplica>,
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
                view(r, status)
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
        let Some(name) = body.name.clone() else {
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
        if body.name.as_ref().is_some_and(|n| *n != name.0) {
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
        let l = store::leadership(&mut q.connection(), q.keys()).await?;
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
            task: req.task,
            args: req.args.unwrap_or_else(|| Value::Object(Default::default())),
            queue: req.queue.unwrap_or_else(|| DEFAULT_QUEUE.to_owned()),
            options,
            cron: req.cron,
            timezone: req.timezone.unwrap_or_else(|| "UTC".to_owned()),
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
        Ok(view(r, status.into_iter().next().flatten()))
    }
}

fn view(r: ScheduleRecord, last_status: Option<String>) -> ScheduleView {
    let s = r.schedule;
    ScheduleView {
        name: s.name,
        task: s.task,
        args: s.args,
        queue: s.queue,
        options: serde_json::to_value(&s.options).unwrap_or(Value::Null),
        cron: s.cron,
        timezone: s.timezone,
        every: s.every,
        missed: match s.missed {
            Missed::Skip => MissedPolicy::Skip,
            Missed::CatchUp => MissedPolicy::CatchUp,
        },
        start_at: s.start_at,
        end_at: s.end_at,
        paused: s.paused,
        next_run_at: r.next_run_at,
        last_run_at: r.last_run_at,
        last_task_id: r.last_task_id.map(|id| id.to_string()),
        last_status,
        runs: r.runs,
        created_at: r.created_at,
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
