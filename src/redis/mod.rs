//! Redis: the broker and the result backend.
//!
//! # Data structures
//! Every key is built by [`keys::Keys`] under the hash tag `{ns}`:
//!
//! | key | type | what |
//! | --- | --- | --- |
//! | `{ns}:task:<id>` | HASH | the task record: `id name queue args status priority max_retries retries attempts lost_deliveries created_at eta started_at finished_at worker lease result traceback errors children parent_id progress`; times are ms since the epoch, `args`/`result`/`errors`/`children`/`progress` JSON. Expires `result_ttl` after a final state. |
//! | `{ns}:queue:<q>` | ZSET | ready task ids; score `(9 - priority) * 2^44 + seq`, so ZPOPMIN gives priority, then FIFO |
//! | `{ns}:delayed:<q>` | ZSET | task ids waiting for their time (countdown, ETA, retry backoff); score = due ms |
//! | `{ns}:wake:<q>` | ZSET | one member `w`: set whenever work may be waiting; idle workers block on it with BZPOPMIN |
//! | `{ns}:leases` | ZSET | claimed task id → lease deadline ms; the reaper returns expired ones to their queue |
//! | `{ns}:seq` | STRING | FIFO counter |
//! | `{ns}:events` | STREAM | every transition (`event task_id queue status ts`), capped with MAXLEN ~ |
//! | `{ns}:dead` | LIST | tasks given up after too many lost deliveries |
//! | `{ns}:queues` | SET | queue names ever used |
//! | `{ns}:task_names` | SET | task names registered by workers |
//! | `{ns}:workers` | ZSET | worker name → last heartbeat ms |
//! | `{ns}:worker:<name>` | HASH | worker registration (hostname, pid, queues, concurrency, started_at), expires without heartbeats |
//! | `{ns}:done:<id>` | channel | PUBLISHed when a task reaches a final state (long-polling clients) |
//!
//! # Lifecycle
//! `enqueue` → queue (or delayed) → `claim` (lease + token) → `heartbeat`* →
//! `complete` | `fail` (→ delayed for a retry, or FAILURE) | `release` (shutdown) |
//! `reap` (lease expired: back to the queue, or FAILURE + dead letter). Each arrow
//! is one Lua script in `lua/`; Rust never reads, modifies and writes a record.

pub mod keys;
pub mod notify;
pub mod scripts;

use std::time::Duration;

use deadpool_redis::{Pool, Runtime};
use redis::{AsyncConnectionConfig, aio::MultiplexedConnection};

use crate::{config::RedisConfig, error::Result};

/// Builds the pool of multiplexed connections used for ordinary commands.
///
/// Connections keep redis-rs' 500 ms response timeout: every command here is
/// short, and a dead server must turn into an error fast (the API answers 503
/// within about two seconds instead of hanging).
pub fn build_pool(cfg: &RedisConfig) -> std::result::Result<Pool, deadpool_redis::CreatePoolError> {
    let timeout = Some(cfg.connect_timeout);
    let mut pool_cfg = deadpool_redis::Config::from_url(cfg.url.clone());
    pool_cfg.pool = Some(deadpool_redis::PoolConfig {
        max_size: cfg.pool_size,
        timeouts: deadpool_redis::Timeouts {
            wait: timeout,
            create: timeout,
            recycle: timeout,
        },
        ..Default::default()
    });
    pool_cfg.create_pool(Some(Runtime::Tokio1))
}

/// A connection of its own for blocking commands (BZPOPMIN), whose response
/// timeout is longer than the block time (habit 7 of the house style).
pub struct BlockingConnection {
    client: redis::Client,
    connect_timeout: Duration,
    conn: Option<MultiplexedConnection>,
}

impl BlockingConnection {
    /// A lazily connected blocking connection.
    pub fn new(cfg: &RedisConfig) -> Result<Self> {
        Ok(Self {
            client: redis::Client::open(cfg.url.as_str())?,
            connect_timeout: cfg.connect_timeout,
            conn: None,
        })
    }

    /// Waits until one of the wake markers is set or `timeout` passes.
    /// Returns true when woken by a marker. On error the connection is dropped
    /// and made again on the next call.
    pub async fn wait_for_wake(&mut self, wake_keys: &[String], timeout: Duration) -> Result<bool> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let config = AsyncConnectionConfig::new()
                    .set_connection_timeout(Some(self.connect_timeout))
                    .set_response_timeout(Some(timeout + Duration::from_secs(3)));
                let conn = self
                    .client
                    .get_multiplexed_async_connection_with_config(&config)
                    .await?;
                self.conn.insert(conn)
            }
        };
        let reply: redis::RedisResult<Option<(String, String, f64)>> = redis::cmd("BZPOPMIN")
            .arg(wake_keys)
            .arg(timeout.as_secs_f64().max(0.01))
            .query_async(conn)
            .await;
        match reply {
            Ok(woken) => Ok(woken.is_some()),
            Err(e) => {
                self.conn = None;
                Err(e.into())
            }
        }
    }
}
