//! The shared connection: one multiplexed connection per process for every
//! ordinary command and script, replaced when it keeps failing.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{RedisError, RedisResult, aio::ConnectionLike};

use super::target::{BULK_RESPONSE_TIMEOUT, Conn, RESPONSE_TIMEOUT, Target, bounded};
use crate::{config::RedisConfig, error::Result};

/// Connection failures in a row after which the shared connection is replaced.
const REPLACE_AFTER_FAILURES: u32 = 3;

/// After a failed attempt to (re)connect, callers fail at once for this long
/// instead of queueing up behind new attempts (each would cost a request its 503 budget).
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// The shared connection used for ordinary commands: one multiplexed
/// connection per process that pipelines every concurrent request.
///
/// Why not a pool: deadpool-redis PINGs every connection it hands out, which
/// doubled the round trips of each request (measured: 4.8k → 8.7k enqueues/s
/// without it). The connection speaks RESP3 so that a dropped connection is
/// reported at once and re-made in the background (a restarted Redis is used
/// again without a failed request). Commands keep redis-rs' 500 ms response
/// timeout and reconnects are bounded, so an unreachable Redis turns into an
/// error (a 503) within about two seconds instead of a hang. What redis-rs does
/// not re-make by itself (a half-open socket that only times out, a handshake
/// refused with "max clients", a primary that failed over) is replaced after a
/// few failures in a row, or at once when a write meets a replica (`READONLY`).
#[derive(Clone)]
pub struct Connection {
    shared: Arc<Shared>,
}

struct Shared {
    target: Target,
    /// How long a command's answer may take.
    response_timeout: Duration,
    /// The connection and its generation (a failure seen on an older one must not drop a newer one).
    current: RwLock<Option<(u64, Conn)>>,
    generations: AtomicU64,
    failures: AtomicU32,
    /// Held while connecting; remembers the last failed attempt.
    connecting: tokio::sync::Mutex<Option<(Instant, String)>>,
}

impl Connection {
    /// A lazily connected shared connection.
    pub fn new(cfg: &RedisConfig) -> Result<Self> {
        Ok(Self::with_response_timeout(Target::new(cfg)?, RESPONSE_TIMEOUT))
    }

    /// A second lazily connected shared connection to the same servers, for bulk
    /// calls (a batch enqueue) whose answers may take longer than an ordinary
    /// command's: used alone, so that a long call neither times out nor delays the
    /// ordinary ones behind it. It shares this one's target (TLS files read once,
    /// one Sentinel client).
    pub fn bulk(&self) -> Self {
        Self::with_response_timeout(self.shared.target.clone(), BULK_RESPONSE_TIMEOUT)
    }

    fn with_response_timeout(target: Target, response_timeout: Duration) -> Self {
        Self {
            shared: Arc::new(Shared {
                target,
                response_timeout,
                current: RwLock::new(None),
                generations: AtomicU64::new(0),
                failures: AtomicU32::new(0),
                connecting: tokio::sync::Mutex::new(None),
            }),
        }
    }

    /// A handle for one operation (cheap: the connection is shared).
    pub fn handle(&self) -> TrackedConnection {
        TrackedConnection {
            inner: self.shared.current.read().expect("connection lock").clone(),
            shared: self.shared.clone(),
        }
    }
}

impl Shared {
    /// The current connection, made first if there is none. Bounded by the
    /// connect timeout, and failing at once shortly after a failed attempt.
    async fn connect(&self) -> RedisResult<(u64, Conn)> {
        if let Some(current) = self.current.read().expect("connection lock").clone() {
            return Ok(current);
        }
        bounded(self.target.connect_timeout, async {
            let mut last_failure = self.connecting.lock().await;
            if let Some(current) = self.current.read().expect("connection lock").clone() {
                return Ok(current);
            }
            if let Some((at, reason)) = last_failure.as_ref()
                && at.elapsed() < RETRY_PAUSE
            {
                // A refusal: nothing was sent (`QueueError::answer_lost`).
                let e = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, reason.clone());
                return Err(e.into());
            }
            match self.target.shared(self.response_timeout).await {
                Ok(conn) => {
                    *last_failure = None;
                    let generation = self.generations.fetch_add(1, Ordering::Relaxed) + 1;
                    let made = (generation, conn);
                    *self.current.write().expect("connection lock") = Some(made.clone());
                    Ok(made)
                }
                Err(e) => {
                    tracing::warn!(error.message = %e, "cannot reach redis");
                    *last_failure = Some((Instant::now(), format!("redis not reachable: {e}")));
                    Err(e)
                }
            }
        })
        .await
    }

    /// Counts the failures of one command (or pipeline, whose replies are `values`).
    /// Server errors arrive as values: redis-rs turns them into errors later.
    fn observe(&self, generation: u64, result: Result<&[redis::Value], &RedisError>) {
        match result {
            Ok(values) if values.iter().any(is_replica_reply) => {
                let e = RedisError::from((redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly), "READONLY"));
                self.drop_connection(generation, &e);
            }
            Ok(_) => self.failures.store(0, Ordering::Relaxed),
            Err(e) if is_replica_answer(e) => self.drop_connection(generation, e),
            Err(e) if is_connection_trouble(e) => {
                if self.failures.fetch_add(1, Ordering::Relaxed) + 1 >= REPLACE_AFTER_FAILURES {
                    self.failures.store(0, Ordering::Relaxed);
                    self.drop_connection(generation, e);
                }
            }
            Err(_) => {}
        }
    }

    /// Forgets connection `generation`; the next operation makes a new one
    /// (with Sentinel: to the primary the sentinels name then).
    fn drop_connection(&self, generation: u64, e: &RedisError) {
        let mut current = self.current.write().expect("connection lock");
        if current.as_ref().is_some_and(|(g, _)| *g == generation) {
            tracing::warn!(error.message = %e, "replacing the redis connection");
            *current = None;
        }
    }
}

/// Errors that say the connection, not the command, is at fault.
fn is_connection_trouble(e: &RedisError) -> bool {
    e.is_io_error()
        || e.is_timeout()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.kind() == redis::ErrorKind::AuthenticationFailed
        || e.to_string().contains("max number of clients")
}

/// A write answered by a replica: the server we hold is no longer the primary.
fn is_replica_answer(e: &RedisError) -> bool {
    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::ReadOnly) || e.to_string().contains("READONLY")
}

/// A reply from a replica to a write (a script's write included).
fn is_replica_reply(value: &redis::Value) -> bool {
    matches!(value, redis::Value::ServerError(e)
        if e.kind() == Some(redis::ServerErrorKind::ReadOnly) || e.code() == "READONLY")
}

/// One operation's view of the shared connection; reports failures so that a
/// connection that keeps failing is replaced.
pub struct TrackedConnection {
    inner: Option<(u64, Conn)>,
    shared: Arc<Shared>,
}

impl TrackedConnection {
    async fn conn(&mut self) -> RedisResult<&mut (u64, Conn)> {
        if self.inner.is_none() {
            self.inner = Some(self.shared.connect().await?);
        }
        Ok(self.inner.as_mut().expect("connected above"))
    }
}

impl ConnectionLike for TrackedConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        Box::pin(async move {
            let (generation, conn) = self.conn().await?;
            let result = conn.req_packed_command(cmd).await;
            let generation = *generation;
            self.shared
                .observe(generation, result.as_ref().map(std::slice::from_ref));
            result
        })
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        Box::pin(async move {
            let (generation, conn) = self.conn().await?;
            let result = conn.req_packed_commands(cmd, offset, count).await;
            let generation = *generation;
            self.shared.observe(generation, result.as_ref().map(Vec::as_slice));
            result
        })
    }

    fn get_db(&self) -> i64 {
        self.inner.as_ref().map_or(0, |(_, c)| c.get_db())
    }
}
