//! The library's batch enqueue, timed: `Queue::enqueue_batch` straight into Redis
//! (no HTTP hop), as `bench/engine.py`'s `batch` phase runs it.
//!
//! ```sh
//! cargo run --release --example batch_enqueue -- [TOTAL] [PER_CALL] [CALLERS]
//! ```
//! Enqueues TOTAL (100,000) `noop` tasks, PER_CALL (1,000) per call, from CALLERS (1)
//! concurrent callers sharing one client, and prints one JSON line:
//! `{"tasks": N, "per_call": N, "callers": N, "secs": S, "rate": R}`.
//! Settings: `CELERIAC_BROKER_URL` (default `redis://127.0.0.1:6379`), `CELERIAC_NAMESPACE`.

use std::time::Instant;

use celeriac::{config::RedisConfig, model::NewTask, queue::Queue};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<usize>());
    let total = args.next().transpose()?.unwrap_or(100_000);
    let per_call = args.next().transpose()?.unwrap_or(1_000).max(1);
    let callers = args.next().transpose()?.unwrap_or(1).max(1);
    let mut redis =
        RedisConfig::new(std::env::var("CELERIAC_BROKER_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()));
    if let Ok(ns) = std::env::var("CELERIAC_NAMESPACE") {
        redis.namespace = ns;
    }
    let queue = Queue::connect(&redis, Default::default())?;
    let calls = total.div_ceil(per_call);
    let began = Instant::now();
    let mut running = tokio::task::JoinSet::new();
    for caller in 0..callers {
        let queue = queue.clone();
        running.spawn(async move {
            let batch: Vec<NewTask> = (0..per_call)
                .map(|_| NewTask::new("noop", serde_json::Value::Null))
                .collect();
            // Caller c makes calls c, c + callers, c + 2·callers, …
            for _ in (caller..calls).step_by(callers) {
                // `noop` is built in: no worker needs to have registered it.
                queue.enqueue_batch(&batch, None, |_| false).await??;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = running.join_next().await {
        done??;
    }
    let secs = began.elapsed().as_secs_f64();
    let tasks = calls * per_call;
    println!(
        r#"{{"tasks": {tasks}, "per_call": {per_call}, "callers": {callers}, "secs": {secs:.3}, "rate": {:.0}}}"#,
        tasks as f64 / secs
    );
    Ok(())
}
