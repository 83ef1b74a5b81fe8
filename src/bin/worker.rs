//! `celeriac-worker`: runs tasks from the named queues.

use std::{net::SocketAddr, time::Duration};

use celeriac::{
    cli::CommonArgs,
    config::{SchedulerConfig, WorkerConfig},
    model::RateLimit,
    scheduler, shutdown,
    tasks::{
        Registry,
        callback::{self, CallbackTaskConfig},
        command,
        http::{self, HttpTaskConfig},
    },
    telemetry, worker,
};
use clap::Parser;

#[derive(Parser)]
#[command(name = "celeriac-worker", version, about = "celeriac worker")]
struct Args {
    /// Queues to consume, comma-separated, in order of preference.
    #[arg(
        short = 'Q',
        long,
        env = "CELERIAC_QUEUES",
        value_delimiter = ',',
        default_value = "default"
    )]
    queues: Vec<String>,
    /// Tasks run at once (default: number of CPUs).
    #[arg(short = 'c', long, env = "CELERIAC_CONCURRENCY")]
    concurrency: Option<usize>,
    /// Threads running tasks (default: number of CPUs, for CPU-bound tasks). When
    /// tasks only wait (`http`, `command`), one saves the hand-offs between threads.
    #[arg(long, env = "CELERIAC_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: Option<u16>,
    /// Worker name (default: <hostname>-<pid>).
    #[arg(short = 'n', long, env = "CELERIAC_WORKER_NAME")]
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
    /// Also run the scheduler (periodic tasks) in this process, alongside consuming.
    #[arg(long, env = "CELERIAC_BEAT")]
    beat: bool,
    /// Run only the scheduler: no consuming (what `entrypoint.sh beat` runs).
    #[arg(long, env = "CELERIAC_BEAT_ONLY", conflicts_with = "beat")]
    beat_only: bool,
    /// Milliseconds of the scheduler leader's lease (a standby takes over within about 4/3 of it).
    #[arg(long, env = "CELERIAC_BEAT_LEASE_MS", default_value_t = 3000)]
    beat_lease_ms: u64,
    /// TOML schedule file, loaded at start and on SIGHUP by scheduler processes.
    #[arg(long, env = "CELERIAC_SCHEDULE_FILE")]
    schedule_file: Option<std::path::PathBuf>,
    /// Log level when RUST_LOG is unset (Celery's names work too: warning, critical).
    #[arg(short = 'l', long, env = "CELERIAC_LOG_LEVEL", default_value = "info", value_parser = parse_log_level)]
    loglevel: String,
    /// Hosts the `http` task may call: names or host:port, `*` for any (default: none).
    #[arg(long, env = "CELERIAC_HTTP_ALLOWED_HOSTS", value_delimiter = ',')]
    http_allowed_hosts: Vec<String>,
    /// Longest response body the `http` task keeps in its result.
    #[arg(long, env = "CELERIAC_HTTP_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    http_max_body_bytes: usize,
    /// TOML file defining the `command` task's commands (task not offered without it).
    #[arg(long, env = "CELERIAC_COMMANDS_FILE")]
    commands_file: Option<std::path::PathBuf>,
    /// Hosts completion callbacks may be POSTed to: names or host:port, `*` for any
    /// (default: none). Deliveries run on the `callbacks` queue: consume it (`-Q default,callbacks`).
    #[arg(long, env = "CELERIAC_CALLBACK_ALLOWED_HOSTS", value_delimiter = ',')]
    callback_allowed_hosts: Vec<String>,
    /// Bearer token sent with every completion callback.
    #[arg(long, env = "CELERIAC_CALLBACK_TOKEN", hide_env_values = true)]
    callback_token: Option<String>,
    /// Secret signing every completion callback (`X-Celeriac-Signature: sha256=<HMAC>`).
    #[arg(long, env = "CELERIAC_CALLBACK_SECRET", hide_env_values = true)]
    callback_secret: Option<String>,
    /// Attempts per completion callback before it is given up.
    #[arg(long, env = "CELERIAC_CALLBACK_MAX_ATTEMPTS", default_value_t = callback::DEFAULT_MAX_ATTEMPTS)]
    callback_max_attempts: u32,
    /// Port for GET /healthz, /readyz and /metrics (none by default).
    #[arg(long, env = "CELERIAC_HEALTH_PORT")]
    health_port: Option<u16>,
    /// Address the health port listens on.
    #[arg(long, env = "CELERIAC_HEALTH_HOST", default_value = "0.0.0.0")]
    health_host: std::net::IpAddr,
    /// Seconds between heartbeats (lease extension, registration refresh);
    /// default: a third of the lease.
    #[arg(long, env = "CELERIAC_HEARTBEAT_SECS")]
    heartbeat_secs: Option<f64>,
    #[command(flatten)]
    common: CommonArgs,
}

fn parse_log_level(s: &str) -> Result<String, String> {
    match s.to_ascii_lowercase().as_str() {
        l @ ("trace" | "debug" | "info" | "warn" | "error") => Ok(l.to_owned()),
        "warning" => Ok("warn".to_owned()),
        "critical" | "fatal" => Ok("error".to_owned()),
        _ => Err(format!("unknown log level {s:?} (trace, debug, info, warning, error)")),
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    celeriac::cli::runtime(args.threads.map(usize::from))?.block_on(run(args))
}

async fn run(args: Args) -> anyhow::Result<()> {
    telemetry::init(args.common.log_format, &args.loglevel);
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
    cfg.health_addr = args.health_port.map(|p| SocketAddr::new(args.health_host, p));
    cfg.heartbeat = args
        .heartbeat_secs
        .map(Duration::try_from_secs_f64)
        .transpose()
        .map_err(|_| anyhow::anyhow!("CELERIAC_HEARTBEAT_SECS must be a positive number of seconds"))?;
    let shutdown = shutdown::token_on_signal();
    let mut beat = SchedulerConfig::new(cfg.redis.clone(), cfg.name.clone());
    beat.lease = Duration::from_millis(args.beat_lease_ms);
    beat.file = args.schedule_file;
    if args.beat_only {
        if let Some(addr) = cfg.health_addr {
            let queue = celeriac::Queue::connect(&cfg.redis, cfg.engine.clone())?;
            let health = worker::health::serve_for_scheduler(addr, queue, shutdown.clone());
            tokio::spawn(async move {
                if let Err(e) = health.await {
                    tracing::error!(error.message = %e, "health port failed");
                }
            });
        }
        scheduler::run_standalone(beat, cfg.engine, shutdown).await?;
        tracing::info!("celeriac-worker (scheduler only) stopped");
        return Ok(());
    }
    let beat = args
        .beat
        .then(|| tokio::spawn(scheduler::run_standalone(beat, cfg.engine.clone(), shutdown.clone())));
    cfg.http = HttpTaskConfig {
        allowed_hosts: args.http_allowed_hosts,
        max_body_bytes: args.http_max_body_bytes,
    };
    cfg.commands_file = args.commands_file;
    cfg.callback = CallbackTaskConfig {
        allowed_hosts: args.callback_allowed_hosts,
        token: args.callback_token,
        secret: args.callback_secret,
        max_attempts: args.callback_max_attempts,
    };
    let mut registry = Registry::with_builtins();
    http::register(&mut registry, cfg.http.clone())?;
    command::register_from_file(&mut registry, cfg.commands_file.as_deref())?;
    callback::register(&mut registry, cfg.callback.clone())?;
    let details = worker::run(cfg, registry, shutdown.clone()).await?;
    tracing::info!(?details, "celeriac-worker stopped");
    if let Some(beat) = beat {
        shutdown.cancel();
        beat.await??;
    }
    Ok(())
}
