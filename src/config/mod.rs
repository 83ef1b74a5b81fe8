//! Typed configuration of the engine, the API and the worker. The binaries fill
//! these from environment variables and flags (clap); nothing here reads the
//! environment, so tests build configs directly.

use std::{net::SocketAddr, time::Duration};

mod broker;
mod tasks;

pub use broker::{RedisConfig, SentinelSpec, Topology, redact_url};
pub use tasks::{
    AuthConfig, CallbackTaskConfig, DEFAULT_CALLBACK_MAX_ATTEMPTS, DEFAULT_HTTP_MAX_BODY_BYTES, HttpTaskConfig,
};

/// Why a configuration was refused at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that cannot work.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The error with its causes (a Redis URL error's text is in its source).
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// Behaviour of the queue engine shared by API and workers.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long records of finished tasks are kept.
    pub result_ttl: Duration,
    /// How long a claim stays valid without a heartbeat.
    pub lease: Duration,
    /// Approximate cap of the events stream.
    pub events_maxlen: u64,
    /// Lost deliveries (expired leases) after which a task is failed and dead-lettered.
    pub max_lost_deliveries: u32,
    /// A worker silent for longer than this is shown STOPPED (readers: API, CLI).
    pub worker_stopped_after: Duration,
    /// How long a STOPPED (or vanished) worker stays listed before it is pruned.
    pub worker_retention: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            events_maxlen: 10_000,
            max_lost_deliveries: 5,
            worker_stopped_after: Duration::from_secs(60),
            worker_retention: Duration::from_secs(24 * 3600),
        }
    }
}

impl EngineConfig {
    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.result_ttl < Duration::from_secs(1) {
            return Err(invalid("result TTL", "must be at least 1 second"));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(invalid("lease", "must be at least 1 second"));
        }
        Ok(())
    }
}

/// Settings of `celeriac-api`.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Redis connection.
    pub redis: RedisConfig,
    /// Engine behaviour.
    pub engine: EngineConfig,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Accept task names no worker has registered (for clusters where the API starts first).
    pub allow_unknown_tasks: bool,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Bearer tokens and scopes (on by default: no token, no start).
    pub auth: AuthConfig,
    /// Callback URLs by queue (`CELERIAC_QUEUE_CALLBACKS`) for tasks that name none.
    pub queue_callbacks: crate::model::QueueCallbacks,
    /// Queues of tasks enqueued without one, by task-name glob (`CELERIAC_ROUTES`).
    pub routes: crate::model::Routes,
    /// Most tasks in one `POST /tasks/batch` (`CELERIAC_BATCH_MAX`).
    pub batch_max: usize,
}

impl ApiConfig {
    /// Defaults around a Redis config.
    pub fn new(redis: RedisConfig) -> Self {
        Self {
            redis,
            engine: EngineConfig::default(),
            max_body_bytes: 1024 * 1024,
            allow_unknown_tasks: false,
            shutdown_grace: Duration::from_secs(10),
            auth: Default::default(),
            queue_callbacks: Default::default(),
            routes: Default::default(),
            batch_max: 1000,
        }
    }

    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.validate()?;
        self.engine.validate()?;
        if self.max_body_bytes == 0 {
            return Err(invalid("max body size", "must be at least 1 byte"));
        }
        Ok(())
    }
}

/// Settings of `celeriac-worker`.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Redis connection.
    pub redis: RedisConfig,
    /// Engine behaviour.
    pub engine: EngineConfig,
    /// Queues to consume, in order of preference.
    pub queues: Vec<String>,
    /// Tasks run at once.
    pub concurrency: usize,
    /// Name shown in task records and the worker registry.
    pub name: String,
    /// How long in-flight tasks may finish after SIGTERM before they are handed back.
    pub grace: Duration,
    /// Where to serve `/healthz` and `/readyz`, if anywhere.
    pub health_addr: Option<SocketAddr>,
    /// Longest single blocking wait for work (the consume loop turns at least this often).
    pub block_max: Duration,
    /// How long a cancelled task may take to stop after its cancellation signal
    /// before it is aborted.
    pub cancel_grace: Duration,
    /// Rate limits by task name; they override the limits set at registration.
    pub rate_limits: Vec<(String, crate::model::RateLimit)>,
    /// Settings of the built-in `http` task (allowed hosts, body cap).
    pub http: HttpTaskConfig,
    /// TOML file of the `command` task's commands; without one the task is not offered.
    pub commands_file: Option<std::path::PathBuf>,
    /// Settings of the built-in `callback` task (allowed hosts, token, secret, attempts).
    pub callback: CallbackTaskConfig,
    /// Heartbeat interval (lease extension and registration refresh); `None`: a third of the lease.
    pub heartbeat: Option<Duration>,
}

impl WorkerConfig {
    /// Defaults around a Redis config.
    pub fn new(redis: RedisConfig, name: impl Into<String>) -> Self {
        Self {
            redis,
            engine: EngineConfig::default(),
            queues: vec![crate::model::DEFAULT_QUEUE.to_owned()],
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            name: name.into(),
            grace: Duration::from_secs(30),
            health_addr: None,
            block_max: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(10),
            rate_limits: Vec::new(),
            http: HttpTaskConfig::default(),
            commands_file: None,
            callback: Default::default(),
            heartbeat: None,
        }
    }

    /// How often leases are extended and the registration refreshed: the
    /// configured interval, else a third of the lease, so two heartbeats may fail.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat.unwrap_or(self.engine.lease / 3)
    }

    /// How often this worker runs the reaper: a sixth of the lease, between 0.5 s
    /// and 5 s, so a dead worker's task is back in its queue soon after its lease ends.
    pub fn reap_interval(&self) -> Duration {
        (self.engine.lease / 6).clamp(Duration::from_millis(500), Duration::from_secs(5))
    }

    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.validate()?;
        self.engine.validate()?;
        if self.queues.is_empty() {
            return Err(invalid("queues", "name at least one queue"));
        }
        for q in &self.queues {
            validate_name("queue name", q)?;
        }
        if self.concurrency == 0 {
            return Err(invalid("concurrency", "must be at least 1"));
        }
        validate_name("worker name", &self.name)?;
        let beat = self.heartbeat_interval();
        if beat < Duration::from_millis(100) || beat >= self.engine.lease {
            return Err(invalid(
                "heartbeat",
                "must be at least 100 ms and shorter than the lease",
            ));
        }
        if self.block_max < Duration::from_millis(100) {
            return Err(invalid("block time", "must be at least 100 ms"));
        }
        Ok(())
    }
}

/// Settings of a scheduler process (`celeriac-worker --beat` or `--beat-only`).
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Redis connection (the scheduler keeps a pub/sub connection of its own).
    pub redis: RedisConfig,
    /// Process name shown by `GET /scheduler`; unique per process.
    pub name: String,
    /// Leader lease: a standby takes over at most this long (plus a renewal
    /// period, a third of it) after the leader died.
    pub lease: Duration,
    /// A due time found later than this is missed: `skip` drops it, `catch_up` fires one run for it.
    pub misfire_grace: Duration,
    /// TOML schedule file loaded at start and on SIGHUP (`CELERIAC_SCHEDULE_FILE`).
    pub file: Option<std::path::PathBuf>,
}

impl SchedulerConfig {
    /// Defaults around a Redis config.
    pub fn new(redis: RedisConfig, name: impl Into<String>) -> Self {
        Self {
            redis,
            name: name.into(),
            lease: Duration::from_secs(3),
            misfire_grace: Duration::from_secs(2),
            file: None,
        }
    }

    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.validate()?;
        validate_name("scheduler name", &self.name)?;
        if self.lease < Duration::from_millis(300) {
            return Err(invalid("scheduler lease", "must be at least 300 ms"));
        }
        Ok(())
    }
}

/// Names that become part of Redis keys: 1–128 printable characters without
/// braces (which would break the Cluster hash tag) or whitespace.
pub fn validate_name(setting: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 128 {
        return Err(invalid(setting, "must be 1 to 128 characters"));
    }
    if name
        .chars()
        .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            setting,
            format!("{name:?} may not contain braces or whitespace"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_with_braces_or_spaces_are_refused() {
        assert!(validate_name("queue", "media.encode-1").is_ok());
        assert!(validate_name("queue", "a{b}").is_err());
        assert!(validate_name("queue", "a b").is_err());
        assert!(validate_name("queue", "").is_err());
    }
}
