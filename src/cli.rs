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
    /// Redis URL of the broker: `redis://[:password@]host:port[/db]`, `rediss://…` (TLS),
    /// `redis+sentinel://[:password@]host1:26379,host2:26379/<master-name>[/db]`, or
    /// `redis-cluster://host1:port,host2:port` (`rediss-cluster://` for TLS).
    /// Fallbacks: CELERY_BROKER_URI, REDIS_URL; default redis://127.0.0.1:6379.
    #[arg(long, env = "CELERIAC_BROKER_URL", hide_env_values = true)]
    pub broker_url: Option<String>,
    /// Result backend URL (fallback: CELERY_RESULT_BACKEND). Must be the broker's server.
    #[arg(long, env = "CELERIAC_RESULT_BACKEND", hide_env_values = true)]
    pub result_backend: Option<String>,
    /// PEM file of the CA that signed the Redis servers' certificates (rediss URLs).
    #[arg(long, env = "CELERIAC_REDIS_CA_FILE")]
    pub redis_ca_file: Option<std::path::PathBuf>,
    /// PEM client certificate for mutual TLS with Redis (with --redis-client-key).
    #[arg(long, env = "CELERIAC_REDIS_CLIENT_CERT")]
    pub redis_client_cert: Option<std::path::PathBuf>,
    /// PEM private key of the client certificate.
    #[arg(long, env = "CELERIAC_REDIS_CLIENT_KEY")]
    pub redis_client_key: Option<std::path::PathBuf>,
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
        cfg.ca_file = self.redis_ca_file.clone();
        cfg.client_cert = self.redis_client_cert.clone();
        cfg.client_key = self.redis_client_key.clone();
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

/// The binaries' tokio runtime (`threads` workers, default one per core), after
/// capping glibc's malloc at one arena: glibc gives each thread that meets a
/// locked arena its own (up to 8 per core), each keeping freed memory around.
/// One arena kept the API's RSS under e2e load 2–3 MiB lower with no measurable
/// loss of throughput (`bench/`); `MALLOC_ARENA_MAX` in the environment still wins.
#[allow(unsafe_code)]
pub fn runtime(threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        unsafe extern "C" {
            fn mallopt(param: std::ffi::c_int, value: std::ffi::c_int) -> std::ffi::c_int;
        }
        /// glibc's `M_ARENA_MAX` (malloc.h).
        const M_ARENA_MAX: std::ffi::c_int = -8;
        // SAFETY: mallopt only sets a malloc tunable; it is called before the
        // runtime starts any thread.
        unsafe {
            mallopt(M_ARENA_MAX, 1);
        }
    }
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        builder.worker_threads(n.max(1));
    }
    builder.enable_all().build()
}
