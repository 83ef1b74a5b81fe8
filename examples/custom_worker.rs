//! A worker binary of your own: the built-in tasks plus a task of yours.
//!
//! ```sh
//! cargo run --example custom_worker            # consumes the "media" queue
//! curl -X POST localhost:8000/tasks -d '{"name": "transcode", "queue": "media", "args": {"file": "a.mov", "format": "mp4"}}'
//! ```
//! The worker registers `transcode` in Redis with the JSON Schema of its
//! arguments, so the API accepts the name and answers 422 for wrong arguments
//! (`GET /task-types` shows it). `examples/producer.rs` enqueues it without the API.
//!
//! Settings: `CELERIAC_BROKER_URL` (default `redis://127.0.0.1:6379`).

use std::time::Duration;

use celeriac::{
    config::{RedisConfig, WorkerConfig},
    model::TaskOptions,
    shutdown,
    tasks::{Registry, TaskContext, TaskError},
    telemetry, worker,
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The arguments: their JSON Schema is published at registration.
#[derive(Deserialize, JsonSchema)]
struct Transcode {
    /// The file to transcode.
    file: String,
    /// Target container, e.g. `mp4`.
    format: String,
}

#[derive(Serialize)]
struct Transcoded {
    output: String,
}

async fn transcode(ctx: TaskContext, args: Transcode) -> Result<Transcoded, TaskError> {
    if args.format.is_empty() {
        return Err(TaskError::fatal("ValueError", anyhow::anyhow!("format is empty")));
    }
    ctx.progress(1, 2, "probing").await?;
    // Real work goes here; long work watches the cancellation signal.
    tokio::select! {
        () = tokio::time::sleep(Duration::from_millis(200)) => {}
        () = ctx.cancellation().cancelled() => return Err(TaskError::fatal("Cancelled", anyhow::anyhow!("stopped"))),
    }
    let stem = args.file.rsplit_once('.').map_or(args.file.as_str(), |(stem, _)| stem);
    Ok(Transcoded {
        output: format!("{stem}.{}", args.format),
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init(telemetry::LogFormat::Pretty, "info");
    let url = std::env::var("CELERIAC_BROKER_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let mut cfg = WorkerConfig::new(RedisConfig::new(url), worker::default_worker_name());
    cfg.queues = vec!["media".into(), "default".into()];
    let mut registry = Registry::with_builtins();
    registry.register_typed("transcode", transcode);
    // Defaults for tasks enqueued without these options, and a cluster-wide rate limit.
    registry.set_options(
        "transcode",
        TaskOptions {
            max_retries: Some(3),
            time_limit: Some(600.0),
            ..TaskOptions::default()
        },
    );
    registry.set_rate_limit("transcode", "10/m".parse()?);
    worker::run(cfg, registry, shutdown::token_on_signal()).await?;
    Ok(())
}
