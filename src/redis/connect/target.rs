//! Where the servers are: the URL topology, Sentinel lookups, TLS material,
//! and the connection kinds every other file builds on.

use std::{sync::Arc, time::Duration};

use redis::{
    AsyncConnectionConfig, ClientTlsConfig, ConnectionAddr, ConnectionInfo, IntoConnectionInfo, ProtocolVersion,
    RedisError, RedisResult, TlsCertificates, TlsMode,
    aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig, MultiplexedConnection},
    cluster::{ClusterClient, ClusterClientBuilder},
    cluster_async::ClusterConnection,
    sentinel::{SentinelClient, SentinelClientBuilder, SentinelServerType},
};

use crate::{
    config::{RedisConfig, SentinelSpec, Topology},
    error::Result,
};

/// The response timeout of ordinary commands (redis-rs' default): an unreachable
/// Redis becomes a 503 within about two seconds.
pub(super) const RESPONSE_TIMEOUT: Duration = Duration::from_millis(500);

/// The response timeout of bulk calls (a batch of 1,000 tasks is one script call
/// of about 60 ms, which a busy Redis may stretch past 500 ms): still an answer
/// within 2.5 s when Redis stalls.
pub(super) const BULK_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

/// How to reach the data servers; built once per process from the config.
#[derive(Clone)]
pub(super) struct Target {
    pub(super) kind: Kind,
    pub(super) connect_timeout: Duration,
}

#[derive(Clone)]
pub(super) enum Kind {
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
    pub(super) fn new(cfg: &RedisConfig) -> Result<Self> {
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
                Kind::Sentinel(Arc::new(tokio::sync::Mutex::new(sentinel_client(&spec, &certs)?)))
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
    pub(super) async fn primary(&self) -> RedisResult<ConnectionInfo> {
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
                    // A refusal: nothing was sent (`QueueError::answer_lost`).
                    let reason = format!("no primary from the sentinels: {e}");
                    std::io::Error::new(std::io::ErrorKind::ConnectionRefused, reason).into()
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
    pub(super) async fn cluster(&self, response_timeout: Duration) -> RedisResult<ClusterConnection> {
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

    /// A new shared connection (see [`Connection`]) whose commands time out after
    /// `response_timeout`.
    pub(super) async fn shared(&self, response_timeout: Duration) -> RedisResult<Conn> {
        if let Kind::Cluster { .. } = self.kind {
            return Ok(Conn::Cluster(self.cluster(response_timeout).await?));
        }
        let info = self.primary().await?;
        let settings = info.redis_settings().clone().set_protocol(ProtocolVersion::RESP3);
        let client = redis::Client::open(info.set_redis_settings(settings))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(self.connect_timeout / 5))
            .set_number_of_retries(2)
            .set_min_delay(Duration::from_millis(50))
            .set_max_delay(Duration::from_millis(250))
            .set_response_timeout(Some(response_timeout));
        Ok(Conn::Manager(ConnectionManager::new_lazy_with_config(client, config)?))
    }
}

/// The sentinels' client. The primary's credentials and database come from the
/// URL; `rediss+sentinel` speaks TLS to the sentinels and to the primary alike,
/// both checked against the configured CA and shown the client certificate.
fn sentinel_client(spec: &SentinelSpec, certs: &Option<TlsCertificates>) -> RedisResult<SentinelClient> {
    let primary = spec.primary.as_str().into_connection_info()?;
    let sentinels = spec
        .sentinels
        .iter()
        .map(|s| Ok(s.as_str().into_connection_info()?.addr().clone()))
        .collect::<RedisResult<Vec<_>>>()?;
    let settings = primary.redis_settings();
    let mut builder = SentinelClientBuilder::new(sentinels, &spec.master, SentinelServerType::Master)?
        .set_client_to_redis_db(settings.db());
    if let Some(user) = settings.username() {
        builder = builder.set_client_to_redis_username(user);
    }
    if let Some(password) = settings.password() {
        builder = builder.set_client_to_redis_password(password);
    }
    if let ConnectionAddr::TcpTls { .. } = primary.addr() {
        builder = builder
            .set_client_to_sentinel_tls_mode(TlsMode::Secure)
            .set_client_to_redis_tls_mode(TlsMode::Secure);
        if let Some(certs) = certs {
            builder = builder
                .set_client_to_sentinel_certificates(certs.clone())
                .set_client_to_redis_certificates(certs.clone());
        }
    }
    builder.build()
}

/// A client of one node, with the configured certificates for `rediss` URLs.
pub(super) fn node_client(url: &str, certs: &Option<TlsCertificates>) -> RedisResult<redis::Client> {
    match certs {
        Some(certs) if url.starts_with("rediss:") || url.starts_with("valkeys:") => {
            redis::Client::build_with_tls(url, certs.clone())
        }
        _ => redis::Client::open(url),
    }
}

/// The configured CA and client certificate, if any (read once, at startup).
pub(super) fn tls_certificates(cfg: &RedisConfig) -> Result<Option<TlsCertificates>> {
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
pub(super) async fn bounded<T>(limit: Duration, fut: impl Future<Output = RedisResult<T>>) -> RedisResult<T> {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| Err(std::io::Error::from(std::io::ErrorKind::TimedOut).into()))
}

/// A connection to a single server or to a cluster.
#[derive(Clone)]
pub(super) enum Conn {
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

impl Target {
    pub(super) async fn dedicated(&self, response_timeout: Duration) -> RedisResult<Conn> {
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
