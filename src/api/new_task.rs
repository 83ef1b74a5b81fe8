//! A request becomes a task: everything that can be checked without Redis is
//! checked here (names, queue routes, scheduling options, callback URLs), for
//! `POST /tasks`, its batch and workflows alike.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::{
    AppState,
    error::ApiError,
    models::{MAX_QUEUE_NAME, MAX_TASK_NAME, NewTaskRequest, is_safe_name},
};
use crate::model::{NewTask, TaskOptions};

/// Where a task stands, which decides what can be checked up front.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Placement {
    /// An ordinary task.
    Alone,
    /// A workflow task started with its own arguments (scheduling options do not apply).
    Workflow,
    /// A workflow task fed the previous step's result: its arguments are only
    /// complete at run time, and absent arguments become that result.
    WorkflowFed,
}

/// Turns a request into a task, checking everything that can be checked
/// without Redis.
pub(crate) fn new_task(state: &AppState, req: NewTaskRequest, placement: Placement) -> Result<NewTask, ApiError> {
    let in_workflow = placement != Placement::Alone;
    let invalid = |code: &str, msg: String| ApiError::unprocessable(code, msg);
    // An explicit queue wins over the routes (which default to `default`).
    let queue = req
        .queue
        .map_or_else(|| state.routes.queue_for(&req.name.0).to_owned(), |q| q.0);
    if !is_safe_name(&queue, MAX_QUEUE_NAME) {
        return Err(invalid(
            "invalid_queue",
            format!(
                "queue must be 1 to {MAX_QUEUE_NAME} characters from A-Z a-z 0-9 _ . : - starting with a letter or digit"
            ),
        ));
    }
    let name = req.name.0;
    if !is_safe_name(&name, MAX_TASK_NAME) {
        return Err(invalid(
            "invalid_name",
            format!(
                "name must be 1 to {MAX_TASK_NAME} characters from A-Z a-z 0-9 _ . : - starting with a letter or digit"
            ),
        ));
    }
    let args = match req.args {
        Some(args) => args,
        None if placement == Placement::WorkflowFed => Value::Null,
        None => json!({}),
    };
    if placement != Placement::WorkflowFed
        && let Some(Err(e)) = state.builtins.validate(&name, &args)
    {
        return Err(invalid("invalid_args", format!("bad args for {name:?}: {e}")));
    }
    if in_workflow
        && (req.countdown.is_some() || req.eta.is_some() || req.expires.is_some() || req.idempotency_key.is_some())
    {
        return Err(invalid(
            "invalid_workflow",
            "countdown, eta, expires and idempotency_key do not apply to workflow tasks".into(),
        ));
    }
    let eta = match (req.countdown, req.eta) {
        (Some(_), Some(_)) => {
            return Err(invalid("invalid_eta", "give countdown or eta, not both".into()));
        }
        (Some(secs), None) => Some(Utc::now() + Duration::from_secs_f64(secs)),
        (None, Some(eta)) if eta.timestamp_millis() < 0 => {
            return Err(invalid("invalid_eta", "eta must not be before 1970".into()));
        }
        (None, eta) => eta,
    };
    let expires_at = match req.expires {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_f64().filter(|s| s.is_finite() && *s >= 0.0 && *s <= 31_536_000.0) {
            Some(secs) => Some(Utc::now() + Duration::from_secs_f64(secs)),
            None => {
                return Err(invalid(
                    "invalid_expires",
                    "expires must be 0 to 31536000 seconds".into(),
                ));
            }
        },
        Some(Value::String(s)) => match DateTime::parse_from_rfc3339(&s) {
            // Times are stored as epoch milliseconds; one before 1970 would be
            // read as "no expiry" downstream, so it is refused at the door.
            Ok(t) if t.timestamp_millis() < 0 => {
                return Err(invalid("invalid_expires", "expires must not be before 1970".into()));
            }
            Ok(t) => Some(t.with_timezone(&Utc)),
            Err(e) => {
                return Err(invalid(
                    "invalid_expires",
                    format!("expires is not an RFC 3339 time: {e}"),
                ));
            }
        },
        Some(_) => {
            return Err(invalid(
                "invalid_expires",
                "expires is seconds or an RFC 3339 time".into(),
            ));
        }
    };
    let callback_url = match req.callback_url.map(|t| t.0) {
        Some(url) => {
            crate::model::callback::check_callback_url(&url).map_err(|m| invalid("invalid_callback_url", m))?;
            Some(url)
        }
        None => state.queue_callbacks.url_for(&queue).map(str::to_owned),
    };
    if let (Some(soft), Some(hard)) = (req.soft_time_limit, req.time_limit)
        && soft >= hard
    {
        return Err(invalid(
            "invalid_time_limit",
            "soft_time_limit must be below time_limit".into(),
        ));
    }
    Ok(NewTask {
        name,
        args,
        queue,
        options: TaskOptions {
            max_retries: req.max_retries,
            priority: req.priority,
            retry_backoff: req.retry_backoff,
            retry_backoff_max: req.retry_backoff_max,
            retry_jitter: req.retry_jitter,
            retry_on: req.retry_on.map(|kinds| kinds.into_iter().map(|t| t.0).collect()),
            time_limit: req.time_limit,
            soft_time_limit: req.soft_time_limit,
            expires: None,
        },
        eta,
        expires_at,
        idempotency_key: req.idempotency_key.map(|t| t.0),
        parent_id: None,
        callback_url,
    })
}
