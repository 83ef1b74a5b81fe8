//! Dedicated connections: the worker's blocking connection, long-lived readers
//! (the events stream) and pub/sub clients.

use std::time::Duration;

use redis::{RedisResult, aio::ConnectionLike};

use super::target::{Conn, Kind, Target};
use crate::{config::RedisConfig, error::Result};

/// A connection made by [`dedicated`].
pub struct Dedicated(pub(super) Conn);

impl ConnectionLike for Dedicated {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        self.0.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        self.0.req_packed_commands(cmd, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.0.get_db()
    }
}

/// Makes pub/sub connections wherever the deployment wants them (see [`client`]).
#[derive(Clone)]
pub struct PubSubClient {
    pub(super) target: Target,
}

impl PubSubClient {
    /// A new pub/sub connection.
    pub async fn get_async_pubsub(&self) -> RedisResult<redis::aio::PubSub> {
        match &self.target.kind {
            Kind::Cluster { clients, .. } => {
                let mut failure = None;
                for client in clients {
                    match client.get_async_pubsub().await {
                        Ok(pubsub) => return Ok(pubsub),
                        Err(e) => failure = Some(e),
                    }
                }
                Err(failure.expect("a cluster URL names at least one node"))
            }
            _ => {
                redis::Client::open(self.target.primary().await?)?
                    .get_async_pubsub()
                    .await
            }
        }
    }
}

/// A connection of its own for blocking commands (BZPOPMIN), whose response
/// timeout is longer than the block time (habit 7 of the house style).
pub struct BlockingConnection {
    target: Target,
    max_block: Duration,
    conn: Option<Conn>,
}

impl BlockingConnection {
    /// A lazily connected blocking connection for waits of at most `max_block`.
    pub fn new(cfg: &RedisConfig, max_block: Duration) -> Result<Self> {
        Ok(Self {
            target: Target::new(cfg)?,
            max_block,
            conn: None,
        })
    }

    async fn connect(&self) -> RedisResult<Conn> {
        self.target.dedicated(self.max_block + Duration::from_secs(3)).await
    }

    /// Waits until one of the wake markers is set or `timeout` (at most `max_block`) passes.
    /// Returns true when woken by a marker. On error the connection is dropped
    /// and made again on the next call (with Sentinel: to the primary named then).
    pub async fn wait_for_wake(&mut self, wake_keys: &[String], timeout: Duration) -> Result<bool> {
        let conn = match &mut self.conn {
            Some(conn) => conn,
            None => {
                let conn = self.connect().await?;
                self.conn.insert(conn)
            }
        };
        let reply: RedisResult<Option<(String, String, f64)>> = redis::cmd("BZPOPMIN")
            .arg(wake_keys)
            .arg(timeout.min(self.max_block).as_secs_f64().max(0.01))
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
