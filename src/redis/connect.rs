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
//!   ask again each time they reconnect.
//! - `redis-cluster://`: the seed nodes; redis-rs follows the slot map. Pub/sub
//!   readers subscribe on the first reachable seed node: a PUBLISH (also inside
//!   a script) reaches every node of a cluster.

use std::{
    sync::{
        Arc, RwLock,
        atomic::{AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use redis::{
    AsyncConnectionConfig, ClientTlsConfig, ConnectionInfo, IntoConnectionInfo, ProtocolVersion, RedisError,
    RedisResult, TlsCertificates,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    sentinel::{SentinelClient, SentinelNodeConnectionInfo, SentinelServerType},
};

use crate::{
    config::{RedisConfig, Topology},
    error::Result,
};

/// Connection failures in a row after which the shared connection is replaced.
const REPLACE_AFTER_FAILURES: u32 = 3;

/// After a failed attempt to (re)connect, callers fail at once for this long
/// instead of queueing up behind new attempts (each would cost a request its 503 budget).
const RETRY_PAUSE: Duration = Duration::from_millis(250);

/// Redis-rs' default response timeout of ordinary commands, kept for the cluster.
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// How to reach the data servers; built once per process from the config.
#[derive(Clone)]
struct Target {
    kind: Kind,
    connect_timeout: Duration,
}

#[derive(Clone)]
enum Kind {
    /// One server; the connection info carries its TLS settings.
    Standalone(ConnectionInfo),
    /// The primary the sentinels name (asked again on every new connection).
    Sentinel(Arc<tokio::sync::Mutex<SentinelClient>>),
    /// The seed nodes of a cluster, and a client per seed node for pub/sub.
    Cluster {
        nodes: Vec<String>,
        certs: Option<TlsCertificates>,
        clients: Vec<redis::Client>,
    },
}

impl Target {
    fn new(cfg: &RedisConfig) -> Result<Self> {
        let topology = cfg.topology().map_err(|e| {
            RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "invalid broker URL",
                e.to_string(),
            ))
        })?;
        let certs = tls_certificates(cfg)?;
        let kind = match topology {
            Topology::Standalone(url) => Kind::Standalone(node_client(&url, &certs)?.get_connection_info().clone()),
            Topology::Sentinel(spec) => {
                let primary = spec.primary.as_str().into_connection_info()?;
                let node =
                    SentinelNodeConnectionInfo::default().set_redis_connection_info(primary.redis_settings().clone());
                let client =
                    SentinelClient::build(spec.sentinels, spec.master, Some(node), SentinelServerType::Master)?;
                Kind::Sentinel(Arc::new(tokio::sync::Mutex::new(client)))
            }
            Topology::Cluster(nodes) => Kind::Cluster {
                clients: nodes
                    .iter()
                    .map(|n| node_client(n, &certs))
                    .collect::<RedisResult<_>>()?,
                nodes,
                certs,
            },
        };
        Ok(Self {
            kind,
            connect_timeout: cfg.connect_timeout,
        })
    }

    /// The single server to talk to (for Sentinel: the current primary, asked now).
    async fn primary(&self) -> RedisResult<ConnectionInfo> {
        match &self.kind {
            Kind::Standalone(info) => Ok(info.clone()),
            Kind::Sentinel(sentinel) => {
                let ask = async { sentinel.lock().await.async_get_client().await };
                let client = bounded(self.connect_timeout, ask).await.map_err(|e| {
                    if e.kind() == redis::ErrorKind::AuthenticationFailed {
                        return e;
                    }
                    // Mid-failover the sentinels name no usable primary for a
                    // while: that is Redis being unavailable (a 503), not a bug.
                    let reason = format!("no primary from the sentinels: {e}");
                    std::io::Error::new(std::io::ErrorKind::NotConnected, reason).into()
                })?;
                Ok(client.get_connection_info().clone())
            }
            Kind::Cluster { .. } => Err(RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "a cluster has no single primary",
            ))),
        }
    }

    /// A connection to the cluster whose every response may take `response_timeout`.
    async fn cluster(&self, response_timeout: Duration) -> RedisResult<ClusterConnection> {
        let Kind::Cluster { nodes, certs, .. } = &self.kind else {
            unreachable!("only called for clusters")
        };
        let mut builder = ClusterClientBuilder::new(nodes.iter().map(String::as_str))
            .connection_timeout(self.connect_timeout / 5)
            .response_timeout(response_timeout)
            // Bounded retries: an unreachable node turns into an error (a 503), not a hang.
            .retries(2)
            .min_retry_wait(50)
            .max_retry_wait(250)
            .overall_response_timeout(Some(response_timeout + self.connect_timeout));
        if let Some(certs) = certs {
            builder = builder.certs(certs.clone());
        }
        let client: ClusterClient = builder.build()?;
        bounded(self.connect_timeout, client.get_async_connection()).await
    }

    /// A new shared connection (see [`Connection`]).
    async fn shared(&self) -> RedisResult<Conn> {
        if let Kind::Cluster { .. } = self.kind {
            return Ok(Conn::Cluster(self.cluster(RESPONSE_TIMEOUT).await?));
        }
        let info = self.primary().await?;
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout / 5))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250));
        Ok(Conn::Manager(ConnectionManager::new_lazy_with_config(client, config)?))
    }
}

/// A client of one node, with the configured certificates for `rediss` URLs.
fn node_client(url: &str, certs: &Option<TlsCertificates>) -> RedisResult<redis::Client> {
    match certs {
        Some(certs) if url.starts_with("rediss:") || url.starts_with("valkeys:") => {
            redis::Client::build_with_tls(url, certs.clone())
        }
        _ => redis::Client::open(url),
    }
}

/// The configured CA and client certificate, if any (read once, at startup).
fn tls_certificates(cfg: &RedisConfig) -> Result<Option<TlsCertificates>> {
    let read = |path: &std::path::Path| {
        std::fs::read(path).map_err(|e| {
            RedisError::from((
                redis::ErrorKind::InvalidClientConfig,
                "cannot read a TLS file",
                format!("{}: {e}", path.display()),
            ))
        })
    };
    let client_tls = match (&cfg.client_cert, &cfg.client_key) {
        (Some(cert), Some(key)) => Some(ClientTlsConfig {
            client_cert: read(cert)?,
            client_key: read(key)?,
        }),
        _ => None,
    };
    let root_cert = cfg.ca_file.as_deref().map(read).transpose()?;
    Ok((client_tls.is_some() || root_cert.is_some()).then_some(TlsCertificates { client_tls, root_cert }))
}

/// `fut` within `limit`, a timeout being an I/O error (so a 503).
async fn bounded<T>(limit: Duration, fut: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
}

/// A connection to a single server or to a cluster.
#[derive(Clone)]
enum Conn {
    Manager(ConnectionManager),
    Multiplexed(MultiplexedConnection),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a redis::Cmd) -> redis::RedisFuture<'a, redis::Value> {
        match self {
            Self::Manager(c) => c.req_packed_command(cmd),
            Self::Multiplexed(c) => c.req_packed_command(cmd),
            Self::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a redis::Pipeline,
        offset: usize,
        count: usize,
    ) -> redis::RedisFuture<'a, Vec<redis::Value>> {
        match self {
            Self::Manager(c) => c.req_packed_commands(cmd, offset, count),
            Self::Multiplexed(c) => c.req_packed_commands(cmd, offset, count),
            Self::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Self::Manager(c) => c.get_db(),
            Self::Multiplexed(c) => c.get_db(),
            Self::Cluster(c) => c.get_db(),
        }
    }
}

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
        Ok(Self {
            shared: Arc::new(Shared {
                target: Target::new(cfg)?,
                current: RwLock::new(None),
                generations: AtomicU64::new(0),
                failures: AtomicU32::new(0),
                connecting: tokio::sync::Mutex::new(None),
            }),
        })
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
                let e = std::io::Error::new(std::io::ErrorKind::NotConnected, reason.clone());
                return Err(e.into());
            }
            match self.target.shared().await {
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

/// A connection made by [`dedicated`].
pub struct Dedicated(Conn);

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

impl Target {
    async fn dedicated(&self, response_timeout: Duration) -> RedisResult<Conn> {
        if let Kind::Cluster { .. } = self.kind {
            return Ok(Conn::Cluster(self.cluster(response_timeout).await?));
        }
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.connect_timeout))
            .set_response_timeout(Some(response_timeout));
        let client = redis::Client::open(self.primary().await?)?;
        Ok(Conn::Multiplexed(
            client.get_multiplexed_async_connection_with_config(&config).await?,
        ))
    }
}

/// Makes pub/sub connections wherever the deployment wants them (see [`client`]).
#[derive(Clone)]
pub struct PubSubClient {
    target: Target,
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
