//! Periodic tasks (no I/O): a schedule's definition, its validation, and when it
//! is next due. Cron patterns (5 fields, or 6 with seconds first) are evaluated
//! by `croner` in the schedule's IANA time zone (`chrono-tz`), so daylight-saving
//! changes follow croner's documented rules: in a spring-forward gap a fixed-time
//! job runs right after the gap and interval jobs skip the missing times; in a
//! fall-back overlap a fixed-time job runs once, interval jobs run in both passes.
//! `every` schedules are aligned to `start_at` (or the Unix epoch), so every
//! replica computes the same due times.

use std::str::FromStr;

use chrono::{DateTime, TimeDelta, Utc};
use chrono_tz::Tz;
use croner::{
    Cron,
    parser::{CronParser, Seconds, Year},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::task::{DEFAULT_QUEUE, TaskOptions};

/// What to do with due times that passed while no scheduler could fire them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Missed {
    /// Fire at the next due time only (the missed ones are dropped).
    #[default]
    Skip,
    /// Fire one run for the whole missed period, then continue.
    CatchUp,
}

/// A periodic task. Stored as JSON (the `def` field of its hash), read from the
/// schedule file (TOML) and built from API requests.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// Unique name: 1–128 of `A-Z a-z 0-9 . _ : -`.
    pub name: String,
    /// Task name (built in or registered by a worker).
    pub task: String,
    /// Arguments of every run (default `{}`).
    #[serde(default = "empty_object")]
    pub args: Value,
    /// Queue of every run.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Execution options of every run.
    #[serde(default, skip_serializing_if = "TaskOptions::is_empty")]
    pub options: TaskOptions,
    /// Cron pattern (5 fields, or 6 with seconds first); exclusive with `every`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron: Option<String>,
    /// IANA time zone of `cron` (default `UTC`).
    #[serde(default = "utc")]
    pub timezone: String,
    /// Period in seconds (1 to 1e10); exclusive with `cron`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub every: Option<f64>,
    /// What to do with due times missed during downtime.
    #[serde(default)]
    pub missed: Missed,
    /// No run before this time (`every` schedules are aligned to it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_at: Option<DateTime<Utc>>,
    /// No run after this time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_at: Option<DateTime<Utc>>,
    /// Held: nothing fires until resumed.
    #[serde(default)]
    pub paused: bool,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

fn default_queue() -> String {
    DEFAULT_QUEUE.to_owned()
}

fn utc() -> String {
    "UTC".to_owned()
}

/// Why a schedule was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The name is empty, too long, or has characters outside `A-Z a-z 0-9 . _ : -`.
    #[error("invalid schedule name {0:?}: use 1 to 128 of A-Z a-z 0-9 . _ : -")]
    InvalidName(String),
    /// The task name is empty or too long.
    #[error("task name must be 1 to 256 characters")]
    InvalidTask,
    /// The queue name cannot be a key.
    #[error("invalid queue: {0}")]
    InvalidQueue(String),
    /// Neither or both of `cron` and `every`.
    #[error("give exactly one of cron and every")]
    NoTiming,
    /// The cron pattern does not parse.
    #[error("invalid cron {pattern:?}: {reason}")]
    InvalidCron {
        /// The pattern.
        pattern: String,
        /// croner's explanation.
        reason: String,
    },
    /// Not an IANA time zone name.
    #[error("unknown time zone {0:?}: use an IANA name like Europe/Berlin")]
    UnknownTimeZone(String),
    /// `every` is below 1 second or above 1e10 seconds (about 317 years).
    #[error("every must be 1 to 10000000000 seconds")]
    InvalidEvery,
    /// `end_at` is not after `start_at`.
    #[error("end_at must be after start_at")]
    InvalidWindow,
}

/// How due times are computed, once validated.
#[derive(Clone, Debug)]
pub enum Timing {
    /// A cron pattern in a time zone.
    Cron(Box<Cron>, Tz),
    /// A fixed period (ms) from an anchor (ms since the epoch).
    Every {
        /// Period, ms.
        period_ms: i64,
        /// First due time of the series, ms.
        anchor_ms: i64,
    },
}

/// Checks a schedule name: 1–128 of `A-Z a-z 0-9 . _ : -` (it becomes part of a key and a URL path).
pub fn validate_schedule_name(name: &str) -> Result<(), ScheduleError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | ':' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ScheduleError::InvalidName(name.to_owned()))
    }
}

/// Parses a cron pattern of 5 fields, or 6 with seconds first.
pub fn parse_cron(pattern: &str) -> Result<Cron, ScheduleError> {
    let invalid = |reason: String| ScheduleError::InvalidCron {
        pattern: pattern.to_owned(),
        reason,
    };
    let fields = pattern.split_whitespace().count();
    if !(5..=6).contains(&fields) {
        return Err(invalid(format!("expected 5 or 6 fields, got {fields}")));
    }
    CronParser::builder()
        .seconds(Seconds::Optional)
        .year(Year::Disallowed)
        .build()
        .parse(pattern)
        .map_err(|e| invalid(e.to_string()))
}

impl Schedule {
    /// Checks everything but the task name (which needs the registry) and
    /// returns how due times are computed.
    pub fn validate(&self) -> Result<Timing, ScheduleError> {
        validate_schedule_name(&self.name)?;
        if self.task.is_empty() || self.task.len() > 256 {
            return Err(ScheduleError::InvalidTask);
        }
        if !super::name::is_safe_name(&self.queue, super::name::MAX_QUEUE_NAME) {
            return Err(ScheduleError::InvalidQueue(format!(
                "{:?} is not a valid queue name",
                self.queue
            )));
        }
        if let (Some(start), Some(end)) = (self.start_at, self.end_at)
            && end <= start
        {
            return Err(ScheduleError::InvalidWindow);
        }
        let tz = Tz::from_str(&self.timezone).map_err(|_| ScheduleError::UnknownTimeZone(self.timezone.clone()))?;
        match (&self.cron, self.every) {
            (Some(pattern), None) => Ok(Timing::Cron(Box::new(parse_cron(pattern)?), tz)),
            (None, Some(every)) => {
                if !(1.0..=1e10).contains(&every) {
                    return Err(ScheduleError::InvalidEvery);
                }
                Ok(Timing::Every {
                    period_ms: (every * 1000.0).round() as i64,
                    anchor_ms: self.start_at.map_or(0, |s| s.timestamp_millis()),
                })
            }
            _ => Err(ScheduleError::NoTiming),
        }
    }

    /// The first due time strictly after `t` (and not before `start_at`), or
    /// `None` when the schedule has ended (past `end_at`) or is invalid.
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let timing = self.validate().ok()?;
        // Due times are whole milliseconds; `start_at` itself may be due.
        let from = match self.start_at {
            Some(start) if start - TimeDelta::milliseconds(1) > t => start - TimeDelta::milliseconds(1),
            _ => t,
        };
        let next = match timing {
            Timing::Cron(cron, tz) => cron
                .find_next_occurrence(&from.with_timezone(&tz), false)
                .ok()?
                .with_timezone(&Utc),
            Timing::Every { period_ms, anchor_ms } => {
                let k = (from.timestamp_millis() - anchor_ms).div_euclid(period_ms) + 1;
                DateTime::from_timestamp_millis(anchor_ms + k * period_ms)?
            }
        };
        match self.end_at {
            Some(end) if next > end => None,
            _ => Some(next),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::{DateTime, Utc};
    use serde_json::json;

    use super::*;

    fn schedule(v: Value) -> Schedule {
        serde_json::from_value(v).unwrap()
    }

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn invalid_schedules_are_refused_with_the_reason() {
        let base = json!({"name": "n", "task": "noop", "every": 5});
        let with = |k: &str, v: Value| {
            let mut s = base.clone();
            s[k] = v;
            schedule(s).validate().unwrap_err()
        };
        assert!(matches!(with("every", json!(0.5)), ScheduleError::InvalidEvery));
        let huge = with("every", json!(1e308));
        assert!(matches!(huge, ScheduleError::InvalidEvery));
        assert!(huge.to_string().contains("1 to 10000000000 seconds"), "{huge}");
        assert!(matches!(with("name", json!("a b")), ScheduleError::InvalidName(_)));
        assert!(matches!(with("name", json!("a{b}")), ScheduleError::InvalidName(_)));
        assert!(matches!(with("name", json!("")), ScheduleError::InvalidName(_)));
        assert!(matches!(with("cron", json!("* * * * *")), ScheduleError::NoTiming));
        let cron =
            |c: &str, tz: &str| schedule(json!({"name": "n", "task": "noop", "cron": c, "timezone": tz})).validate();
        assert!(matches!(
            cron("61 * * * *", "UTC"),
            Err(ScheduleError::InvalidCron { .. })
        ));
        assert!(matches!(cron("* * *", "UTC"), Err(ScheduleError::InvalidCron { .. })));
        assert!(matches!(
            cron("* * * * * * *", "UTC"),
            Err(ScheduleError::InvalidCron { .. })
        ));
        assert!(matches!(
            cron("* * * * *", "Mars/Olympus"),
            Err(ScheduleError::UnknownTimeZone(_))
        ));
        assert!(cron("*/2 * * * * *", "Europe/Berlin").is_ok());
        assert!(cron("0 9 * * MON-FRI", "America/New_York").is_ok());
        assert!(schedule(json!({"name": "x", "task": "noop"})).validate().is_err());
    }

    #[test]
    fn six_field_cron_counts_seconds() {
        let s = schedule(json!({"name": "n", "task": "noop", "cron": "*/2 * * * * *"}));
        assert_eq!(s.next_after(t("2026-01-01T00:00:00Z")), Some(t("2026-01-01T00:00:02Z")));
        assert_eq!(
            s.next_after(t("2026-01-01T00:00:01.500Z")),
            Some(t("2026-01-01T00:00:02Z"))
        );
        let five = schedule(json!({"name": "n", "task": "noop", "cron": "*/15 * * * *"}));
        assert_eq!(
            five.next_after(t("2026-01-01T00:00:00Z")),
            Some(t("2026-01-01T00:15:00Z"))
        );
    }

    #[test]
    fn every_is_aligned_to_start_at_or_the_epoch_and_ends_at_end_at() {
        let s = schedule(json!({"name": "n", "task": "noop", "every": 10}));
        assert_eq!(s.next_after(t("2026-01-01T00:00:03Z")), Some(t("2026-01-01T00:00:10Z")));
        assert_eq!(s.next_after(t("2026-01-01T00:00:10Z")), Some(t("2026-01-01T00:00:20Z")));
        let s = schedule(json!({"name": "n", "task": "noop", "every": 10,
            "start_at": "2026-01-01T00:00:03Z", "end_at": "2026-01-01T00:00:30Z"}));
        assert_eq!(s.next_after(t("2025-01-01T00:00:00Z")), Some(t("2026-01-01T00:00:03Z")));
        assert_eq!(s.next_after(t("2026-01-01T00:00:03Z")), Some(t("2026-01-01T00:00:13Z")));
        assert_eq!(s.next_after(t("2026-01-01T00:00:23Z")), None);
    }

    #[test]
    fn cron_in_berlin_follows_the_spring_forward_change() {
        // 2026-03-29: 02:00 CET jumps to 03:00 CEST (01:00Z).
        let fixed = schedule(json!({"name": "n", "task": "noop", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}));
        // 02:30 does not exist that day: the run comes right after the gap, 03:00 CEST.
        assert_eq!(
            fixed.next_after(t("2026-03-28T12:00:00Z")),
            Some(t("2026-03-29T01:00:00Z"))
        );
        // The day after, 02:30 CEST again (00:30Z).
        assert_eq!(
            fixed.next_after(t("2026-03-29T01:00:00Z")),
            Some(t("2026-03-30T00:30:00Z"))
        );
        // An hourly job loses the missing hour: 01:00 CET (00:00Z), then 03:00 CEST (01:00Z).
        let hourly = schedule(json!({"name": "n", "task": "noop", "cron": "0 * * * *", "timezone": "Europe/Berlin"}));
        assert_eq!(
            hourly.next_after(t("2026-03-28T23:30:00Z")),
            Some(t("2026-03-29T00:00:00Z"))
        );
        assert_eq!(
            hourly.next_after(t("2026-03-29T00:00:00Z")),
            Some(t("2026-03-29T01:00:00Z"))
        );
    }

    #[test]
    fn cron_in_berlin_follows_the_fall_back_change() {
        // 2026-10-25: 03:00 CEST falls back to 02:00 CET (01:00Z); 02:30 happens twice.
        let fixed = schedule(json!({"name": "n", "task": "noop", "cron": "30 2 * * *", "timezone": "Europe/Berlin"}));
        // Runs once, at the first 02:30 (CEST, 00:30Z), then the next day at 02:30 CET (01:30Z).
        assert_eq!(
            fixed.next_after(t("2026-10-24T12:00:00Z")),
            Some(t("2026-10-25T00:30:00Z"))
        );
        assert_eq!(
            fixed.next_after(t("2026-10-25T00:30:00Z")),
            Some(t("2026-10-26T01:30:00Z"))
        );
        // An interval job runs in both passes of the repeated hour.
        let half = schedule(json!({"name": "n", "task": "noop", "cron": "*/30 * * * *", "timezone": "Europe/Berlin"}));
        let mut at = t("2026-10-24T23:45:00Z");
        let mut seen = Vec::new();
        for _ in 0..5 {
            at = half.next_after(at).unwrap();
            seen.push(at);
        }
        let expected: Vec<_> = [
            "2026-10-25T00:00:00Z",
            "2026-10-25T00:30:00Z",
            "2026-10-25T01:00:00Z",
            "2026-10-25T01:30:00Z",
            "2026-10-25T02:00:00Z",
        ]
        .iter()
        .map(|s| t(s))
        .collect();
        assert_eq!(seen, expected);
    }

    #[test]
    fn the_stored_definition_round_trips_and_reads_toml() {
        let s = schedule(
            json!({"name": "n", "task": "add", "args": {"x": 1, "y": 2}, "cron": "0 * * * *",
            "timezone": "Europe/Berlin", "missed": "catch_up", "options": {"priority": 5}}),
        );
        let back: Schedule = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
        assert_eq!(back, s);
        assert_eq!(s.missed, Missed::CatchUp);
        let from_toml: Schedule =
            toml::from_str("name = \"n\"\ntask = \"noop\"\nevery = 2\noptions = { priority = 3 }\n").unwrap();
        assert_eq!(from_toml.every, Some(2.0));
        assert_eq!(from_toml.options.priority, Some(3));
        assert_eq!(from_toml.queue, "default");
    }
}
