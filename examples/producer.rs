//! A Rust producer: enqueues `transcode` straight into Redis with the typed
//! client (no HTTP hop), waits for its result and prints it.
//!
//! ```sh
//! cargo run --example custom_worker &     # runs `transcode` on the "media" queue
//! cargo run --example producer            # prints: transcoded a.mov -> a.mp4
//! ```
//! Settings: `CELERIAC_BROKER_URL` (default `redis://127.0.0.1:6379`).

use std::time::Duration;

use celeriac::{Client, client::EnqueueOptions, config::RedisConfig, model::Routes};
use serde::{Deserialize, Serialize};

/// The task's arguments, as the worker declares them.
#[derive(Serialize)]
struct Transcode<'a> {
    file: &'a str,
    format: &'a str,
}

/// The task's result.
#[derive(Deserialize)]
struct Transcoded {
    output: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("CELERIAC_BROKER_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    // Routes as on the API: `transcode*` tasks go to the "media" queue.
    let client = Client::connect(&RedisConfig::new(url))?.with_routes(Routes::parse("transcode*=media")?);
    let args = Transcode {
        file: "a.mov",
        format: "mp4",
    };
    let id = client.enqueue("transcode", &args, EnqueueOptions::default()).await?;
    println!("enqueued {id} on {}", client.queue_for("transcode"));
    let done: Transcoded = client.wait_for(id, Duration::from_secs(30)).await?;
    println!("transcoded {} -> {}", args.file, done.output);
    Ok(())
}
