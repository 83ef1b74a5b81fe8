//! The queue engine: the only door through which the API, the worker and the
//! scheduler reach Redis. [`Queue::connect`] builds it; each file below adds one
//! concern's methods, and each method is one round trip (a Lua script for every
//! transition, a plain read otherwise).
//!
//! | file | concern |
//! | --- | --- |
//! | `tasks.rs` | enqueue, read, cancel, resubmit, forget, progress |
//! | `lease.rs` | claim, heartbeat, complete, fail, release, reap: the worker's side |
//! | `workflows.rs` | chains, groups, chords |
//! | `workers.rs` | worker registrations, registered task names |
//! | `task_types.rs` | task names known from live registrations, their schemas; forgetting them |
//! | `stats.rs` | queue counts |
//! | `control.rs` | queue pause, resume and purge; the dead letter |
//! | `listing.rs` | listing tasks from the indexes, task pause/resume |
//! | `batch.rs` | many tasks in one call, all or nothing |
//! | `overview.rs` | workers, running tasks and queue counts for operators |

mod batch;
mod callbacks;
mod control;
mod lease;
mod listing;
mod overview;
mod stats;
mod task_types;
mod tasks;
mod workers;
mod workflows;

use uuid::Uuid;

pub use batch::{BatchAccepted, BatchRefused};
pub use lease::{COMPLETE_BATCH_MAX, Claim, Completion, Failure};
pub use listing::{ALL_STATUSES, Cursor, TaskFilter, TaskPage};
pub use overview::Overview;
pub use tasks::{Cancel, Enqueue};

use crate::{
    config::{EngineConfig, RedisConfig},
    error::{QueueError, Result},
    model::now_ms,
    redis::{
        connect::{Connection, TrackedConnection},
        keys::Keys,
        scripts::Ctx,
    },
};

/// Handle to one namespace of the queue. Cheap to clone.
#[derive(Clone)]
pub struct Queue {
    conn: Connection,
    /// For bulk calls only (see [`Connection::bulk`]); connected on first use.
    bulk: Connection,
    keys: Keys,
    cfg: EngineConfig,
}

impl Queue {
    /// The only door to the engine: a queue in `redis.namespace`, over the
    /// process's shared connection (built lazily: nothing is sent yet).
    pub fn connect(redis: &RedisConfig, engine: EngineConfig) -> Result<Self> {
        let conn = Connection::new(redis)?;
        Ok(Self {
            bulk: conn.bulk(),
            conn,
            keys: Keys::new(&redis.namespace),
            cfg: engine,
        })
    }

    /// The key builder of this namespace.
    pub fn keys(&self) -> &Keys {
        &self.keys
    }

    /// The engine settings.
    pub fn config(&self) -> &EngineConfig {
        &self.cfg
    }

    /// A handle on the shared connection, for engine parts with scripts of their own (the scheduler).
    pub fn connection(&self) -> TrackedConnection {
        self.conn.handle()
    }

    /// The process's shared connection (for readers outside the engine, like the events hub).
    pub fn shared_connection(&self) -> Connection {
        self.conn.clone()
    }

    pub(crate) async fn conn(&self) -> Result<TrackedConnection> {
        Ok(self.conn.handle())
    }

    /// The connection of bulk calls, whose answers may take up to 2 s.
    pub(crate) fn bulk_conn(&self) -> TrackedConnection {
        self.bulk.handle()
    }

    pub(crate) fn ctx_at(&self, now_ms: i64) -> Ctx<'_> {
        Ctx {
            keys: &self.keys,
            now_ms,
            result_ttl_ms: self.cfg.result_ttl.as_millis() as u64,
            events_maxlen: self.cfg.events_maxlen,
        }
    }

    pub(crate) fn ctx(&self) -> Ctx<'_> {
        self.ctx_at(now_ms())
    }

    pub(crate) fn lease_ms(&self) -> u64 {
        self.cfg.lease.as_millis() as u64
    }

    /// Checks that Redis answers.
    pub async fn ping(&self) -> Result<()> {
        let mut conn = self.conn().await?;
        let _: String = redis::cmd("PING").query_async(&mut conn).await?;
        Ok(())
    }
}

fn parse_id(id: &str) -> Result<Uuid> {
    id.parse().map_err(|_| QueueError::Corrupt(format!("task id {id:?}")))
}
