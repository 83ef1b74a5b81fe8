//! `celeriac-worker`: runs tasks from the named queues.

use std::{net::SocketAddr, time::Duration};

use celeriac::{cli::CommonArgs, config::WorkerConfig, model::RateLimit, shutdown, tasks::Registry, telemetry, worker};
use clap::Parser;

#[derive(Parser)]
#[command(name = "celeriac-worker", version, about = "celeriac worker")]
struct Args {
    /// Queues to consume, comma-separated, in order of preference.
    #[arg(long, env = "CELERIAC_QUEUES", value_delimiter = ',', default_value = "default")]
    queues: Vec<String>,
    /// Tasks run at once (default: number of CPUs).
    #[arg(long, env = "CELERIAC_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Worker name (default: <hostname>-<pid>).
    #[arg(long, env = "CELERIAC_WORKER_NAME")]
    name: Option<String>,
    /// Seconds running tasks may take to finish after SIGTERM before they are handed back.
    #[arg(long, env = "CELERIAC_GRACE_SECS", default_value_t = 30)]
    grace: u64,
    /// Seconds a cancelled task may take to stop after its signal before it is aborted.
    #[arg(long, env = "CELERIAC_CANCEL_GRACE_SECS", default_value_t = 10)]
    cancel_grace: u64,
    /// Cluster-wide rate limits by task name, e.g. `add=10/s,report=100/m`
    /// (override the limits set at registration).
    #[arg(long, env = "CELERIAC_RATE_LIMITS", value_delimiter = ',', value_parser = celeriac::model::rate_limit::parse_rate_limit_entry)]
    rate_limits: Vec<(String, RateLimit)>,
    /// Port for GET /healthz and /readyz (none by default).
    #[arg(long, env = "CELERIAC_HEALTH_PORT")]
    health_port: Option<u16>,
    #[command(flatten)]
    common: CommonArgs,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    telemetry::init(args.common.log_format, "info");
    let (redis, warning) = args.common.redis()?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let mut cfg = WorkerConfig::new(redis, args.name.unwrap_or_else(worker::default_worker_name));
    cfg.engine = args.common.engine();
    cfg.queues = args
        .queues
        .into_iter()
        .map(|q| q.trim().to_owned())
        .filter(|q| !q.is_empty())
        .collect();
    if let Some(n) = args.concurrency {
        cfg.concurrency = n;
    }
    cfg.grace = Duration::from_secs(args.grace);
    cfg.cancel_grace = Duration::from_secs(args.cancel_grace);
    cfg.rate_limits = args.rate_limits;
    cfg.health_addr = args.health_port.map(|p| SocketAddr::from(([0, 0, 0, 0], p)));
    let details = worker::run(cfg, Registry::with_builtins(), shutdown::token_on_signal()).await?;
    tracing::info!(?details, "celeriac-worker stopped");
    Ok(())
}
