//! `celeriac-worker`: runs tasks from the named queues.

use std::{net::SocketAddr, time::Duration};

use celeriac::{
    cli::CommonArgs,
    config::WorkerConfig,
    shutdown, telemetry,
    worker::{self, Registry},
};
use clap::Parser;

#[derive(Parser)]
#[command(name = "celeriac-worker", version, about = "celeriac worker")]
struct Args {
    /// Queues to consume, comma-separated, in order of preference.
    #[arg(
        long,
        env = "CELERIAC_QUEUES",
        value_delimiter = ',',
        default_value = "default"
    )]
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
    cfg.health_addr = args
        .health_port
        .map(|p| SocketAddr::from(([0, 0, 0, 0], p)));
    let details = worker::run(cfg, Registry::with_builtins(), shutdown::token_on_signal()).await?;
    tracing::info!(?details, "celeriac-worker stopped");
    Ok(())
}
