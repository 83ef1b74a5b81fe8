//! A schedule: its request body, its view, the list, and the scheduler's leadership.

use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde_json::Value;

use super::Text;
use crate::{model::schedule::Missed, scheduler::store::ScheduleRecord};

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
    pub name: Option<Text>,
    /// Task name: built in or registered by a worker.
    pub task: Text,
    /// Arguments of every run; default `{}`.
    pub args: Option<Value>,
    /// Queue of every run; default `default`.
    pub queue: Option<Text>,
    /// Task options of every run (`priority`, `max_retries`, `expires` in seconds, `time_limit`, …).
    pub options: Option<Value>,
    /// Cron pattern: 5 fields, or 6 with seconds first. Exclusive with `every`.
    pub cron: Option<Text>,
    /// IANA time zone of `cron`; default `UTC`.
    pub timezone: Option<Text>,
    /// Period in seconds, 1 to 10,000,000,000. Exclusive with `cron`.
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

impl ScheduleView {
    /// A stored schedule as the API shows it, with its last task's status.
    pub(crate) fn new(r: ScheduleRecord, last_status: Option<String>) -> Self {
        let s = r.schedule;
        Self {
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
}
