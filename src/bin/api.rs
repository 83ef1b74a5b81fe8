//! `celeriac-api`: the stateless HTTP API.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use celeriac::{
    api,
    cli::{CommonArgs, first_env},
    config::ApiConfig,
    shutdown, telemetry,
};
use clap::{Parser, Subcommand};
use poem::listener::{Listener, TcpListener};

#[derive(Parser)]
#[command(
    name = "celeriac-api",
    version,
    about = "celeriac HTTP API",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// GET a health URL and exit 0 on HTTP 200 (a container HEALTHCHECK without curl).
    Healthcheck {
        /// Default: http://127.0.0.1:$PORT0|$PORT|8000/healthz.
        #[arg(long)]
        url: Option<String>,
    },
    /// Show workers, running tasks, queues or registered task names (read from Redis).
    Inspect {
        /// What to show.
        #[arg(value_enum)]
        what: celeriac::inspect::Inspect,
        /// Print JSON (the API's shapes) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
    /// List tasks, newest first (read from Redis, as `GET /tasks?expand`).
    Tasks {
        /// Statuses, comma-separated (PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED, PAUSED).
        #[arg(long)]
        status: Option<String>,
        /// Queue name.
        #[arg(long)]
        queue: Option<String>,
        /// Task name.
        #[arg(long)]
        name: Option<String>,
        /// Most tasks shown (at most 500).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Print JSON (the API's task objects) instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        common: CommonArgs,
    },
}

#[derive(clap::Args)]
struct ServeArgs {
    /// Listen port; fallbacks: PORT0, then PORT, then 8000.
    #[arg(long)]
    port: Option<u16>,
    /// Listen address.
    #[arg(long, env = "CELERIAC_HOST", default_value = "0.0.0.0")]
    host: String,
    /// Threads serving requests. One serves about 20,000 requests/s and spends
    /// no CPU handing work between threads; scale out with replicas, or raise it.
    #[arg(long, env = "CELERIAC_API_THREADS", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    threads: u16,
    /// Largest request body in bytes.
    #[arg(long, env = "CELERIAC_MAX_BODY_BYTES", default_value_t = 1024 * 1024)]
    max_body_bytes: usize,
    /// Accept task names that no worker registered yet.
    #[arg(long, env = "CELERIAC_ALLOW_UNKNOWN_TASKS")]
    allow_unknown_tasks: bool,
    /// Queues of tasks enqueued without one: `<task glob>=<queue>,…`, first match
    /// wins, else `default` (e.g. `transcode*=encoding,xapi.*=xapi,report=reports`).
    #[arg(long, env = "CELERIAC_ROUTES", default_value = "", value_parser = celeriac::model::Routes::parse)]
    routes: celeriac::model::Routes,
    /// Most tasks in one `POST /tasks/batch`.
    #[arg(long, env = "CELERIAC_BATCH_MAX", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    batch_max: u64,
    /// Seconds in-flight requests may take to finish after SIGTERM.
    #[arg(long, env = "CELERIAC_SHUTDOWN_GRACE_SECS", default_value_t = 10)]
    shutdown_grace_secs: u64,
    /// `off` runs the API without authentication (a warning is logged); `on` needs tokens.
    #[arg(long, env = "CELERIAC_AUTH", default_value = "on", value_parser = ["on", "off"], ignore_case = true)]
    auth: String,
    /// API tokens: `<token>:<scope>` entries (scope read, write or admin), comma-separated.
    #[arg(long, env = "CELERIAC_API_TOKENS", hide_env_values = true)]
    api_tokens: Option<String>,
    /// File of API tokens, one `<token>:<scope>` per line, `#` comments; re-read on SIGHUP.
    #[arg(long, env = "CELERIAC_API_TOKENS_FILE")]
    api_tokens_file: Option<std::path::PathBuf>,
    /// `/metrics` requires a token with the read scope.
    #[arg(long, env = "CELERIAC_METRICS_REQUIRE_AUTH")]
    metrics_require_auth: bool,
    /// Completion callbacks for every task of a queue that names no `callback_url`:
    /// `<queue>=<url>,…` (e.g. `encoding=https://app/rest/done`).
    #[arg(long, env = "CELERIAC_QUEUE_CALLBACKS", default_value = "", hide_env_values = true,
        value_parser = celeriac::model::QueueCallbacks::parse)]
    queue_callbacks: celeriac::model::QueueCallbacks,
    #[command(flatten)]
    common: CommonArgs,
}

fn port(flag: Option<u16>) -> anyhow::Result<u16> {
    match flag {
        Some(p) => Ok(p),
        None => {
            first_env(&["PORT0", "PORT"]).map_or(Ok(8000), |p| p.parse().context("PORT0/PORT is not a port number"))
        }
    }
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    celeriac::cli::runtime(Some(usize::from(cli.serve.threads)))?.block_on(run(cli))
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(Command::Healthcheck { url }) = cli.command {
        let url = url.unwrap_or(format!("http://127.0.0.1:{}/healthz", port(None)?));
        std::process::exit(if celeriac::api::health::probe(&url, Duration::from_secs(3)).await {
            0
        } else {
            1
        });
    }
    if let Some(Command::Inspect { what, json, common }) = cli.command {
        std::process::exit(query(Query::Inspect(what), json, &common).await);
    }
    if let Some(Command::Tasks {
        status,
        queue,
        name,
        limit,
        json,
        common,
    }) = cli.command
    {
        let mut filter = celeriac::queue::TaskFilter {
            queue,
            name,
            ..Default::default()
        };
        for s in status
            .iter()
            .flat_map(|s| s.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match celeriac::model::TaskStatus::parse(&s.to_ascii_uppercase()) {
                Some(st) => filter.statuses.push(st),
                None => {
                    eprintln!("error: unknown status {s:?}");
                    std::process::exit(2);
                }
            }
        }
        std::process::exit(query(Query::Tasks(filter, limit.clamp(1, 500)), json, &common).await);
    }
    let args = cli.serve;
    telemetry::init(args.common.log_format, "info");
    let (redis, warning) = args.common.redis()?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let mut cfg = ApiConfig::new(redis);
    cfg.engine = args.common.engine();
    cfg.queue_callbacks = args.queue_callbacks;
    cfg.max_body_bytes = args.max_body_bytes;
    cfg.allow_unknown_tasks = args.allow_unknown_tasks;
    cfg.routes = args.routes;
    cfg.batch_max = args.batch_max as usize;
    cfg.shutdown_grace = Duration::from_secs(args.shutdown_grace_secs);
    cfg.auth = celeriac::api::auth::AuthConfig {
        enabled: !args.auth.eq_ignore_ascii_case("off"),
        tokens: args.api_tokens.filter(|t| !t.trim().is_empty()),
        tokens_file: args.api_tokens_file,
        metrics_require_auth: args.metrics_require_auth,
    };
    cfg.validate()?;
    if cfg.auth.enabled {
        // Fail before listening, with the setting to set (serve loads the table again).
        celeriac::api::auth::TokenTable::load(&cfg.auth)?;
    }
    let addr: SocketAddr = format!("{}:{}", args.host, port(args.port)?)
        .parse()
        .or_else(|_| format!("[{}]:{}", args.host, port(args.port).unwrap_or(8000)).parse())
        .context("invalid listen address")?;
    let acceptor = TcpListener::bind(addr)
        .into_acceptor()
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    tracing::info!(%addr, redis = ?cfg.redis, "celeriac-api listening");
    api::serve(cfg, acceptor, shutdown::token_on_signal().cancelled_owned()).await?;
    tracing::info!("celeriac-api stopped");
    Ok(())
}

/// A read-only command answered from Redis.
enum Query {
    /// `inspect <what>`.
    Inspect(celeriac::inspect::Inspect),
    /// `tasks`: a filter and the most tasks to list.
    Tasks(celeriac::queue::TaskFilter, usize),
}

/// Runs a read-only command; prints the answer, or a one-line error. Returns the exit code.
async fn query(query: Query, json: bool, common: &CommonArgs) -> i32 {
    let run = async {
        let (redis, _) = common.redis()?;
        redis.validate()?;
        let url = celeriac::config::redact_url(&redis.url);
        let queue = celeriac::Queue::connect(&redis, common.engine())?;
        let timeout = Duration::from_secs(3);
        match &query {
            Query::Inspect(what) => celeriac::inspect::inspect(&queue, *what, json, timeout).await,
            Query::Tasks(filter, limit) => celeriac::inspect::list_tasks(&queue, filter, *limit, json, timeout).await,
        }
        .with_context(|| format!("cannot reach redis at {url}"))
    };
    match run.await {
        Ok(text) => {
            println!("{text}");
            0
        }
        Err(e) => {
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            1
        }
    }
}
