//! Command-line and environment settings shared by the binaries (clap with
//! `env`, so `--help` lists every variable). Environment first, flags override.
//! The classic names (`CELERY_BROKER_URI`, `REDIS_URL`, `CELERY_RESULT_BACKEND`,
//! `PORT0`, `PORT`) are read as fallbacks, so the classic app definitions work.

use std::time::Duration;

use clap::Args;

use crate::{
    config::{EngineConfig, RedisConfig},
    telemetry::LogFormat,
};

/// Redis and engine settings.
#[derive(Args, Debug)]
pub struct CommonArgs {
    /// Redis URL of the broker (`redis://[:password@]host:port[/db]`).
    /// Fallbacks: CELERY_BROKER_URI, REDIS_URL; default redis://127.0.0.1:6379.
    #[arg(long, env = "CELERIAC_BROKER_URL", hide_env_values = true)]
    pub broker_url: Option<String>,
    /// Result backend URL (fallback: CELERY_RESULT_BACKEND). Must be the broker's server.
    #[arg(long, env = "CELERIAC_RESULT_BACKEND", hide_env_values = true)]
    pub result_backend: Option<String>,
    /// Prefix of every Redis key.
    #[arg(long, env = "CELERIAC_NAMESPACE", default_value = "celeriac")]
    pub namespace: String,
    /// Seconds a finished task's record is kept.
    #[arg(long, env = "CELERIAC_RESULT_TTL_SECS", default_value_t = 86_400)]
    pub result_ttl_secs: u64,
    /// Seconds a claimed task stays leased without a heartbeat.
    #[arg(long, env = "CELERIAC_LEASE_SECS", default_value_t = 30)]
    pub lease_secs: u64,
    /// Seconds without a heartbeat after which a worker is shown STOPPED.
    #[arg(long, env = "CELERIAC_WORKER_STOPPED_SECS", default_value_t = 60)]
    pub worker_stopped_secs: u64,
    /// Seconds a STOPPED worker stays listed before it is pruned.
    #[arg(long, env = "CELERIAC_WORKER_RETENTION_SECS", default_value_t = 86_400)]
    pub worker_retention_secs: u64,
    /// Log format.
    #[arg(long, env = "CELERIAC_LOG_FORMAT", value_enum, default_value = "pretty")]
    pub log_format: LogFormat,
}

impl CommonArgs {
    /// The Redis config (broker URL with its fallbacks); returns a warning to log, if any.
    pub fn redis(&self) -> Result<(RedisConfig, Option<String>), crate::config::ConfigError> {
        let url = self
            .broker_url
            .clone()
            .or_else(|| first_env(&["CELERY_BROKER_URI", "CELERY_BROKER_URL", "REDIS_URL"]))
            .unwrap_or_else(|| "redis://127.0.0.1:6379".to_owned());
        let mut cfg = RedisConfig::new(url);
        cfg.namespace = self.namespace.clone();
        let backend = self
            .result_backend
            .clone()
            .or_else(|| first_env(&["CELERY_RESULT_BACKEND"]));
        let warning = cfg.check_result_backend(backend.as_deref())?;
        Ok((cfg, warning))
    }

    /// The engine config.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            result_ttl: Duration::from_secs(self.result_ttl_secs),
            lease: Duration::from_secs(self.lease_secs),
            worker_stopped_after: Duration::from_secs(self.worker_stopped_secs),
            worker_retention: Duration::from_secs(self.worker_retention_secs),
            ..EngineConfig::default()
        }
    }
}

/// The first of `names` that is set to a non-empty value.
pub fn first_env(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}
