//! The only place that builds Redis clients and connections, and so the only
//! one that knows about TLS, Sentinel and Cluster (the URL forms are read by
//! [`Topology`](crate::config::Topology)).
//!
//! - [`Connection`]: one multiplexed connection per process for every ordinary
//!   command and script. Not a pool: deadpool-redis PINGs each connection it hands
//!   out, which doubled the round trips of a request (measured: 4.8k → 8.7k
//!   enqueues/s without it), while one multiplexed connection pipelines every
//!   concurrent request. Over a Cluster it is redis-rs' cluster connection, which
//!   routes each script by its first key (every key of a namespace carries the
//!   `{ns}` hash tag, so one namespace lives on one primary).
//!   A second one ([`Connection::bulk`], connected on first use) carries only
//!   bulk calls (`POST /tasks/batch`): their answers may take up to 2 s instead
//!   of 500 ms, and they do not hold up the ordinary commands pipelined behind them.
//! - [`BlockingConnection`]: a dedicated connection for blocking commands
//!   (BZPOPMIN), whose response timeout is longer than the block time. A worker
//!   needs exactly one; should a process ever need several, they are to be pooled
//!   with deadpool-redis, not by hand.
//! - [`client`]: for pub/sub readers (`notify.rs`, the worker's cancel listener).
//!
//! # Finding the server
//! - `redis://`, `rediss://`: one server; `rediss` verifies the server against
//!   `ca_file` (else the system's roots) and presents `client_cert` if given.
//! - `redis+sentinel://`: the sentinels are asked for the primary whenever a
//!   connection is made. The shared connection is dropped (and the primary asked
//!   for again) after a few connection failures in a row or at once on `READONLY`
//!   (the old primary came back as a replica); blocking and pub/sub connections
//!   ask again each time they reconnect. `rediss+sentinel://` speaks TLS to the
//!   sentinels and to the primary, with the CA and client certificate of `rediss`.
//! - `redis-cluster://`: the seed nodes; redis-rs follows the slot map. Pub/sub
//!   readers subscribe on the first reachable seed node: a PUBLISH (also inside
//!   a script) reaches every node of a cluster.
//!
//! | file | what |
//! | --- | --- |
//! | `target.rs` | where the servers are (URL topology, Sentinel lookups, TLS material) |
//! | `shared.rs` | the shared multiplexed connection and its failure tracking |
//! | `dedicated.rs` | blocking, pub/sub and other dedicated connections |

mod dedicated;
mod shared;
mod target;

use std::time::Duration;

pub use dedicated::{BlockingConnection, Dedicated, PubSubClient};
pub use shared::{Connection, TrackedConnection};
use target::Target;

use crate::{config::RedisConfig, error::Result};

/// A client for pub/sub readers (RESP2 connections of their own): the
/// configured server, the primary the sentinels name at each connect, or the
/// first reachable seed node of a cluster.
pub fn client(cfg: &RedisConfig) -> Result<PubSubClient> {
    Ok(PubSubClient {
        target: Target::new(cfg)?,
    })
}

/// A dedicated connection (not the shared one) for a long-lived reader such as
/// the events stream's XREAD BLOCK: to the server, the current primary, or
/// routed by key on a cluster, with `response_timeout` (longer than any block).
pub async fn dedicated(cfg: &RedisConfig, response_timeout: Duration) -> Result<Dedicated> {
    Ok(Dedicated(Target::new(cfg)?.dedicated(response_timeout).await?))
}
