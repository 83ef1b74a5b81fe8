//! The schedule file (`CELERIAC_SCHEDULE_FILE`): TOML with one `[[schedule]]`
//! table per schedule, in the shape of [`Schedule`]:
//!
//! ```toml
//! [[schedule]]
//! name = "nightly-report"
//! task = "report"
//! args = { kind = "daily" }
//! cron = "0 3 * * *"
//! timezone = "Europe/Berlin"
//! options = { priority = 5, max_retries = 2 }
//! ```
//!
//! Loaded by every scheduler process at start and on SIGHUP. The file is the
//! source of truth for the names it contains (each is created or replaced;
//! saving an unchanged definition is a no-op, so replicas loading the same file
//! never move a pending due time); schedules created through the API are left
//! alone. A bad entry is logged and skipped; the others are loaded.

use std::path::{Path, PathBuf};

use chrono::Utc;
use tokio_util::sync::CancellationToken;

use super::store::{self, Saved};
use crate::{
    model::{now_ms, schedule::Schedule},
    queue::Queue,
    tasks::Registry,
};

/// How a load went.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Entries stored (created, replaced or unchanged).
    pub ok: usize,
    /// Entries logged and skipped.
    pub bad: usize,
}

/// Loads the file once at start, then again on every SIGHUP until `shutdown`.
pub async fn watch(queue: Queue, path: PathBuf, shutdown: CancellationToken) {
    // Installed before the first load, so a SIGHUP right after start is never fatal.
    #[cfg(unix)]
    let hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup());
    load(&queue, &path).await;
    #[cfg(unix)]
    match hangup {
        Ok(mut hangup) => {
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        got = hangup.recv() => if got.is_none() { return },
                    }
                    tracing::info!(file = %path.display(), "SIGHUP: reloading the schedule file");
                    load(&queue, &path).await;
                }
            });
        }
        Err(e) => tracing::warn!(error.message = %e, "cannot watch SIGHUP; the schedule file loads at start only"),
    }
    #[cfg(not(unix))]
    let _ = shutdown;
}

/// Reads and stores the file's schedules; logs each bad entry.
pub async fn load(queue: &Queue, path: &Path) -> Loaded {
    let text = match tokio::fs::read_to_string(path).await {
        Ok(text) => text,
        Err(e) => {
            tracing::error!(file = %path.display(), error.message = %e, "cannot read the schedule file");
            return Loaded::default();
        }
    };
    let (entries, mut loaded) = parse(&text, path);
    let mut known = Registry::with_builtins().names();
    match queue.registered_task_names().await {
        Ok(names) => known.extend(names),
        Err(e) => tracing::warn!(error.message = %e, "cannot read registered task names"),
    }
    for s in entries {
        if !known.contains(&s.task) {
            tracing::error!(file = %path.display(), schedule = %s.name, task = %s.task,
                "skipping a schedule: its task is neither built in nor registered by a worker");
            loaded.bad += 1;
            continue;
        }
        let next = store::initial_next_run(&s, Utc::now());
        match store::save(&mut queue.connection(), queue.keys(), &s, next, now_ms(), false).await {
            Ok(saved) => {
                if saved != Saved::Unchanged {
                    tracing::info!(schedule = %s.name, ?saved, "schedule loaded from the file");
                }
                loaded.ok += 1;
            }
            Err(e) => {
                tracing::error!(schedule = %s.name, error.message = %e, "cannot store a schedule from the file");
                loaded.bad += 1;
            }
        }
    }
    loaded
}

/// Parses the file's entries; the valid ones are returned, the bad ones logged and counted.
pub fn parse(text: &str, path: &Path) -> (Vec<Schedule>, Loaded) {
    #[derive(serde::Deserialize)]
    struct File {
        #[serde(default)]
        schedule: Vec<toml::Value>,
    }
    let mut loaded = Loaded::default();
    let file: File = match toml::from_str(text) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(file = %path.display(), error.message = %e, "the schedule file is not valid TOML");
            loaded.bad += 1;
            return (Vec::new(), loaded);
        }
    };
    let mut good = Vec::new();
    for (i, entry) in file.schedule.into_iter().enumerate() {
        let parsed = entry
            .try_into::<Schedule>()
            .map_err(|e| e.to_string())
            .and_then(|s| s.validate().map(|_| s).map_err(|e| e.to_string()));
        match parsed {
            Ok(s) => good.push(s),
            Err(why) => {
                tracing::error!(file = %path.display(), entry = i + 1, why, "skipping a bad schedule entry");
                loaded.bad += 1;
            }
        }
    }
    (good, loaded)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn bad_entries_are_skipped_and_good_ones_kept() {
        let text = r#"
[[schedule]]
name = "good"
task = "noop"
every = 5

[[schedule]]
name = "bad-cron"
task = "noop"
cron = "99 * * * *"

[[schedule]]
name = "bad-zone"
task = "noop"
cron = "* * * * *"
timezone = "Nowhere/Atlantis"

[[schedule]]
name = "unknown-field"
task = "noop"
every = 5
colour = "red"

[[schedule]]
name = "cron-berlin"
task = "add"
args = { x = 1, y = 2 }
cron = "*/2 * * * * *"
timezone = "Europe/Berlin"
missed = "catch_up"
"#;
        let (good, loaded) = super::parse(text, Path::new("t.toml"));
        let names: Vec<_> = good.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["good", "cron-berlin"]);
        assert_eq!(loaded.bad, 3);
        let (good, loaded) = super::parse("not [ toml", Path::new("t.toml"));
        assert!(good.is_empty());
        assert_eq!(loaded.bad, 1);
    }
}
