//! Typed configuration of the engine, the API and the worker. The binaries fill
//! these from environment variables and flags (clap); nothing here reads the
//! environment, so tests build configs directly.

use std::{fmt, net::SocketAddr, path::PathBuf, time::Duration};

/// Why a configuration was refused at startup.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A setting has a value that cannot work.
    #[error("invalid {setting}: {reason}")]
    Invalid {
        /// The setting's name.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
}

/// The error with its causes (a Redis URL error's text is in its source).
fn error_text(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

fn invalid(setting: &'static str, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        setting,
        reason: reason.into(),
    }
}

/// Where Redis is and how to talk to it.
#[derive(Clone)]
pub struct RedisConfig {
    /// One of the forms of [`Topology::parse`]; may carry a secret, so `Debug` redacts it.
    pub url: String,
    /// Prefix of every key (wrapped in a Cluster hash tag).
    pub namespace: String,
    /// Budget for (re)connecting; an unreachable Redis is reported within about this long.
    pub connect_timeout: Duration,
    /// PEM file of the CA(s) that signed the servers' certificates (`rediss` URLs);
    /// without it the system's roots are trusted.
    pub ca_file: Option<PathBuf>,
    /// PEM client certificate (chain) for mutual TLS; needs `client_key`.
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
}

/// The Redis deployment a broker URL names.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Topology {
    /// One server: `redis://` or `rediss://` (TLS), as redis-rs parses them.
    Standalone(String),
    /// A primary found through Sentinel.
    Sentinel(SentinelSpec),
    /// A Redis Cluster: one `redis://` (or `rediss://`) URL per seed node, each
    /// carrying the URL's credentials.
    Cluster(Vec<String>),
}

/// `redis+sentinel://[user:pass@]host1:26379,host2:26379/<master-name>[/db]`
/// (`rediss+sentinel://` for TLS to the sentinels and to the primary alike).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SentinelSpec {
    /// One `redis://host:port` (`rediss://` for TLS) URL per sentinel (no
    /// credentials: they are the primary's).
    pub sentinels: Vec<String>,
    /// The name the sentinels monitor the primary under.
    pub master: String,
    /// `redis://[user:pass@]sentinel-resolved/<db>` (`rediss://` for TLS):
    /// credentials and database of the primary, in a URL whose host is a placeholder.
    pub primary: String,
}

impl Topology {
    /// Reads a broker URL: `redis://`/`rediss://` (one server),
    /// `redis+sentinel://[user:pass@]h1:26379,h2:26379/<master>[/db]`
    /// (`rediss+sentinel://` for TLS), or
    /// `redis-cluster://[user:pass@]h1:port,h2:port` (`rediss-cluster://` for TLS).
    pub fn parse(url: &str) -> Result<Self, ConfigError> {
        let fail = |reason: &str| invalid("broker URL", reason.to_owned());
        let (scheme, rest) = url.split_once("://").ok_or_else(|| fail("expected <scheme>://…"))?;
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((u, r)) => (format!("{u}@"), r),
            None => (String::new(), rest),
        };
        let (hosts, path) = rest.split_once('/').unwrap_or((rest, ""));
        let hosts = |default_port: Option<u16>| -> Result<Vec<String>, ConfigError> {
            let list: Vec<String> = hosts
                .split(',')
                .map(|h| match (h.rsplit_once(':'), default_port) {
                    (None, Some(port)) if !h.is_empty() => Ok(format!("{h}:{port}")),
                    (Some((host, port)), _) if !host.is_empty() && port.parse::<u16>().is_ok() => Ok(h.to_owned()),
                    _ => Err(fail(&format!("{h:?} is not host:port"))),
                })
                .collect::<Result<_, _>>()?;
            Ok(list)
        };
        let check = |u: &str| {
            redis::IntoConnectionInfo::into_connection_info(u)
                .map(drop)
                .map_err(|e| invalid("broker URL", error_text(&e)))
        };
        match scheme {
            "redis+sentinel" | "rediss+sentinel" => {
                let node_scheme = scheme.trim_end_matches("+sentinel");
                let mut parts = path.trim_end_matches('/').splitn(2, '/');
                let master = parts.next().filter(|m| !m.is_empty());
                let master =
                    master.ok_or_else(|| fail("name the primary: redis+sentinel://host:26379/<master-name>"))?;
                let db = parts.next().unwrap_or("0");
                db.parse::<u16>()
                    .map_err(|_| fail("the database after the master name must be a number"))?;
                let primary = format!("{node_scheme}://{userinfo}sentinel-resolved/{db}");
                check(&primary)?;
                let sentinels: Vec<String> = hosts(Some(26379))?
                    .iter()
                    .map(|h| format!("{node_scheme}://{h}"))
                    .collect();
                sentinels.iter().try_for_each(|s| check(s))?;
                Ok(Self::Sentinel(SentinelSpec {
                    sentinels,
                    master: master.to_owned(),
                    primary,
                }))
            }
            "redis-cluster" | "rediss-cluster" => {
                if !path.trim_matches('/').is_empty() {
                    return Err(fail("a cluster has no databases: nothing may follow the hosts"));
                }
                let node_scheme = scheme.trim_end_matches("-cluster");
                let nodes: Vec<String> = hosts(None)?
                    .iter()
                    .map(|h| format!("{node_scheme}://{userinfo}{h}"))
                    .collect();
                nodes.iter().try_for_each(|n| check(n))?;
                Ok(Self::Cluster(nodes))
            }
            _ => {
                check(url)?;
                Ok(Self::Standalone(url.to_owned()))
            }
        }
    }

    /// True when the data servers are reached over TLS.
    pub fn uses_tls(&self) -> bool {
        match self {
            Self::Standalone(url) => url.starts_with("rediss:") || url.starts_with("valkeys:"),
            Self::Sentinel(spec) => spec.primary.starts_with("rediss:"),
            Self::Cluster(nodes) => nodes.iter().any(|n| n.starts_with("rediss:")),
        }
    }
}

impl RedisConfig {
    /// Defaults for `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            namespace: "celeriac".to_owned(),
            connect_timeout: Duration::from_secs(2),
            ca_file: None,
            client_cert: None,
            client_key: None,
        }
    }

    /// The deployment the URL names.
    pub fn topology(&self) -> Result<Topology, ConfigError> {
        Topology::parse(&self.url)
    }

    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let topology = self.topology()?;
        validate_name("namespace", &self.namespace)?;
        if self.client_cert.is_some() != self.client_key.is_some() {
            return Err(invalid(
                "client certificate",
                "give both the certificate and its key, or neither",
            ));
        }
        let files = [&self.ca_file, &self.client_cert, &self.client_key];
        if files.iter().any(|f| f.is_some()) && !topology.uses_tls() {
            return Err(invalid(
                "broker URL",
                "TLS files are set but the URL does not use TLS (rediss://, rediss+sentinel:// or rediss-cluster://)",
            ));
        }
        for file in files.into_iter().flatten() {
            std::fs::metadata(file).map_err(|e| invalid("TLS file", format!("{}: {e}", file.display())))?;
        }
        Ok(())
    }

    /// Resolves the result backend setting against the broker URL.
    ///
    /// Every transition is one Lua script, so queue and records must live on one
    /// server: a backend on another server is refused, a different database
    /// number on the same server (the classic `…/0` + `…/1` setup) is tolerated
    /// and the broker's database is used. Returns a warning to log, if any.
    pub fn check_result_backend(&self, backend: Option<&str>) -> Result<Option<String>, ConfigError> {
        let Some(backend) = backend.filter(|b| !b.is_empty() && *b != self.url) else {
            return Ok(None);
        };
        if !matches!(self.topology()?, Topology::Standalone(_)) {
            return Err(invalid(
                "result backend URL",
                "must equal the broker URL with Sentinel or Cluster: task state changes are atomic scripts on one server",
            ));
        }
        let parse = |url: &str| {
            redis::IntoConnectionInfo::into_connection_info(url)
                .map_err(|e| invalid("result backend URL", error_text(&e)))
        };
        let (broker, result) = (parse(&self.url)?, parse(backend)?);
        if broker.addr() != result.addr() {
            return Err(invalid(
                "result backend URL",
                "must point at the broker's Redis server: task state changes are atomic scripts on one server",
            ));
        }
        Ok(Some(format!(
            "result backend {} differs from the broker only by database; results are kept with the broker",
            redact_url(backend)
        )))
    }
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisConfig")
            .field("url", &redact_url(&self.url))
            .field("namespace", &self.namespace)
            .field("connect_timeout", &self.connect_timeout)
            .field("ca_file", &self.ca_file)
            .field("client_cert", &self.client_cert)
            .field("client_key", &self.client_key)
            .finish()
    }
}

/// Hides the password of a Redis URL (`redis://user:secret@host` → `redis://user:***@host`).
pub fn redact_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let rest = match rest.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or("", |(u, _)| u);
            format!("{user}:***@{host}")
        }
        None => rest.to_owned(),
    };
    // Unix-socket URLs carry the password in the query (`?pass=`), where redis-rs reads it.
    let rest = match rest.split_once('?') {
        Some((path, query)) => {
            let params: Vec<String> = query
                .split('&')
                .map(|p| match p.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("pass") || k.eq_ignore_ascii_case("password") => {
                        format!("{k}=***")
                    }
                    _ => p.to_owned(),
                })
                .collect();
            format!("{path}?{}", params.join("&"))
        }
        None => rest,
    };
    format!("{scheme}://{rest}")
}

/// Behaviour of the queue engine shared by API and workers.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// How long records of finished tasks are kept.
    pub result_ttl: Duration,
    /// How long a claim stays valid without a heartbeat.
    pub lease: Duration,
    /// Approximate cap of the events stream.
    pub events_maxlen: u64,
    /// Lost deliveries (expired leases) after which a task is failed and dead-lettered.
    pub max_lost_deliveries: u32,
    /// A worker silent for longer than this is shown STOPPED (readers: API, CLI).
    pub worker_stopped_after: Duration,
    /// How long a STOPPED (or vanished) worker stays listed before it is pruned.
    pub worker_retention: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        Self {
            result_ttl: Duration::from_secs(24 * 3600),
            lease: Duration::from_secs(30),
            events_maxlen: 10_000,
            max_lost_deliveries: 5,
            worker_stopped_after: Duration::from_secs(60),
            worker_retention: Duration::from_secs(24 * 3600),
        }
    }
}

impl EngineConfig {
    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.result_ttl < Duration::from_secs(1) {
            return Err(invalid("result TTL", "must be at least 1 second"));
        }
        if self.lease < Duration::from_secs(1) {
            return Err(invalid("lease", "must be at least 1 second"));
        }
        Ok(())
    }
}

/// Settings of `celeriac-api`.
#[derive(Clone, Debug)]
pub struct ApiConfig {
    /// Redis connection.
    pub redis: RedisConfig,
    /// Engine behaviour.
    pub engine: EngineConfig,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Accept task names no worker has registered (for clusters where the API starts first).
    pub allow_unknown_tasks: bool,
    /// How long in-flight requests may finish after SIGTERM.
    pub shutdown_grace: Duration,
    /// Bearer tokens and scopes (on by default: no token, no start).
    pub auth: AuthConfig,
    /// Callback URLs by queue (`CELERIAC_QUEUE_CALLBACKS`) for tasks that name none.
    pub queue_callbacks: crate::model::QueueCallbacks,
    /// Queues of tasks enqueued without one, by task-name glob (`CELERIAC_ROUTES`).
    pub routes: crate::model::Routes,
    /// Most tasks in one `POST /tasks/batch` (`CELERIAC_BATCH_MAX`).
    pub batch_max: usize,
}

impl ApiConfig {
    /// Defaults around a Redis config.
    pub fn new(redis: RedisConfig) -> Self {
        Self {
            redis,
            engine: EngineConfig::default(),
            max_body_bytes: 1024 * 1024,
            allow_unknown_tasks: false,
            shutdown_grace: Duration::from_secs(10),
            auth: Default::default(),
            queue_callbacks: Default::default(),
            routes: Default::default(),
            batch_max: 1000,
        }
    }

    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.validate()?;
        self.engine.validate()?;
        if self.max_body_bytes == 0 {
            return Err(invalid("max body size", "must be at least 1 byte"));
        }
        Ok(())
    }
}

/// Settings of `celeriac-worker`.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Redis connection.
    pub redis: RedisConfig,
    /// Engine behaviour.
    pub engine: EngineConfig,
    /// Queues to consume, in order of preference.
    pub queues: Vec<String>,
    /// Tasks run at once.
    pub concurrency: usize,
    /// Name shown in task records and the worker registry.
    pub name: String,
    /// How long in-flight tasks may finish after SIGTERM before they are handed back.
    pub grace: Duration,
    /// Where to serve `/healthz` and `/readyz`, if anywhere.
    pub health_addr: Option<SocketAddr>,
    /// Longest single blocking wait for work (the consume loop turns at least this often).
    pub block_max: Duration,
    /// How long a cancelled task may take to stop after its cancellation signal
    /// before it is aborted.
    pub cancel_grace: Duration,
    /// Rate limits by task name; they override the limits set at registration.
    pub rate_limits: Vec<(String, crate::model::RateLimit)>,
    /// Settings of the built-in `http` task (allowed hosts, body cap).
    pub http: HttpTaskConfig,
    /// TOML file of the `command` task's commands; without one the task is not offered.
    pub commands_file: Option<std::path::PathBuf>,
    /// Settings of the built-in `callback` task (allowed hosts, token, secret, attempts).
    pub callback: CallbackTaskConfig,
    /// Heartbeat interval (lease extension and registration refresh); `None`: a third of the lease.
    pub heartbeat: Option<Duration>,
}

impl WorkerConfig {
    /// Defaults around a Redis config.
    pub fn new(redis: RedisConfig, name: impl Into<String>) -> Self {
        Self {
            redis,
            engine: EngineConfig::default(),
            queues: vec![crate::model::DEFAULT_QUEUE.to_owned()],
            concurrency: std::thread::available_parallelism().map_or(2, |n| n.get()),
            name: name.into(),
            grace: Duration::from_secs(30),
            health_addr: None,
            block_max: Duration::from_secs(5),
            cancel_grace: Duration::from_secs(10),
            rate_limits: Vec::new(),
            http: HttpTaskConfig::default(),
            commands_file: None,
            callback: Default::default(),
            heartbeat: None,
        }
    }

    /// How often leases are extended and the registration refreshed: the
    /// configured interval, else a third of the lease, so two heartbeats may fail.
    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat.unwrap_or(self.engine.lease / 3)
    }

    /// How often this worker runs the reaper: a sixth of the lease, between 0.5 s
    /// and 5 s, so a dead worker's task is back in its queue soon after its lease ends.
    pub fn reap_interval(&self) -> Duration {
        (self.engine.lease / 6).clamp(Duration::from_millis(500), Duration::from_secs(5))
    }

    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.validate()?;
        self.engine.validate()?;
        if self.queues.is_empty() {
            return Err(invalid("queues", "name at least one queue"));
        }
        for q in &self.queues {
            validate_name("queue name", q)?;
        }
        if self.concurrency == 0 {
            return Err(invalid("concurrency", "must be at least 1"));
        }
        validate_name("worker name", &self.name)?;
        let beat = self.heartbeat_interval();
        if beat < Duration::from_millis(100) || beat >= self.engine.lease {
            return Err(invalid(
                "heartbeat",
                "must be at least 100 ms and shorter than the lease",
            ));
        }
        if self.block_max < Duration::from_millis(100) {
            return Err(invalid("block time", "must be at least 100 ms"));
        }
        Ok(())
    }
}

/// Settings of a scheduler process (`celeriac-worker --beat` or `--beat-only`).
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// Redis connection (the scheduler keeps a pub/sub connection of its own).
    pub redis: RedisConfig,
    /// Process name shown by `GET /scheduler`; unique per process.
    pub name: String,
    /// Leader lease: a standby takes over at most this long (plus a renewal
    /// period, a third of it) after the leader died.
    pub lease: Duration,
    /// A due time found later than this is missed: `skip` drops it, `catch_up` fires one run for it.
    pub misfire_grace: Duration,
    /// TOML schedule file loaded at start and on SIGHUP (`CELERIAC_SCHEDULE_FILE`).
    pub file: Option<std::path::PathBuf>,
}

impl SchedulerConfig {
    /// Defaults around a Redis config.
    pub fn new(redis: RedisConfig, name: impl Into<String>) -> Self {
        Self {
            redis,
            name: name.into(),
            lease: Duration::from_secs(3),
            misfire_grace: Duration::from_secs(2),
            file: None,
        }
    }

    /// Checks the settings; call at startup.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.redis.validate()?;
        validate_name("scheduler name", &self.name)?;
        if self.lease < Duration::from_millis(300) {
            return Err(invalid("scheduler lease", "must be at least 300 ms"));
        }
        Ok(())
    }
}

/// Names that become part of Redis keys: 1–128 printable characters without
/// braces (which would break the Cluster hash tag) or whitespace.
pub fn validate_name(setting: &'static str, name: &str) -> Result<(), ConfigError> {
    if name.is_empty() || name.len() > 128 {
        return Err(invalid(setting, "must be 1 to 128 characters"));
    }
    if name
        .chars()
        .any(|c| c == '{' || c == '}' || c.is_whitespace() || c.is_control())
    {
        return Err(invalid(
            setting,
            format!("{name:?} may not contain braces or whitespace"),
        ));
    }
    Ok(())
}

/// Default cap of a response body the `http` task keeps in its result (1 MiB).
pub const DEFAULT_HTTP_MAX_BODY_BYTES: usize = 1024 * 1024;
/// Default attempts per completion-callback delivery.
pub const DEFAULT_CALLBACK_MAX_ATTEMPTS: u32 = 10;

/// Authentication settings of the API.
#[derive(Clone)]
pub struct AuthConfig {
    /// `false` only when the operator set `CELERIAC_AUTH=off`: every route is
    /// open, and a warning is logged at startup.
    pub enabled: bool,
    /// Inline `<token>:<scope>` entries, comma-separated (secret: `Debug` redacts).
    pub tokens: Option<String>,
    /// A file of entries, one per line, `#` comments; re-read on SIGHUP.
    pub tokens_file: Option<PathBuf>,
    /// `/metrics` needs the `read` scope (it is open by default, for scrapers).
    pub metrics_require_auth: bool,
}

impl Default for AuthConfig {
    /// Secure by default: authentication on, no token yet (so the API refuses to start).
    fn default() -> Self {
        Self {
            enabled: true,
            tokens: None,
            tokens_file: None,
            metrics_require_auth: false,
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("enabled", &self.enabled)
            .field("tokens", &self.tokens.as_ref().map(|_| "***"))
            .field("tokens_file", &self.tokens_file)
            .field("metrics_require_auth", &self.metrics_require_auth)
            .finish()
    }
}

/// Settings of the `http` task.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpTaskConfig {
    /// Allowed destinations: host names or `host:port` (`[v6]:port` for IPv6),
    /// or `*` for any. Empty (the default) allows none.
    pub allowed_hosts: Vec<String>,
    /// Longest response body kept in a result; longer ones are cut and flagged `truncated`.
    pub max_body_bytes: usize,
}

impl Default for HttpTaskConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            max_body_bytes: DEFAULT_HTTP_MAX_BODY_BYTES,
        }
    }
}

/// Settings of the `callback` task.
#[derive(Clone, PartialEq, Eq)]
pub struct CallbackTaskConfig {
    /// Allowed destinations: host names or `host:port`, or `*` for any. Empty
    /// (the default) allows none.
    pub allowed_hosts: Vec<String>,
    /// Sent as `Authorization: Bearer <token>`.
    pub token: Option<String>,
    /// Signs each body (`X-Celeriac-Signature`).
    pub secret: Option<String>,
    /// Attempts per delivery (1 to `tasks::callback::MAX_ATTEMPTS_CEILING`).
    pub max_attempts: u32,
}

impl Default for CallbackTaskConfig {
    fn default() -> Self {
        Self {
            allowed_hosts: Vec::new(),
            token: None,
            secret: None,
            max_attempts: DEFAULT_CALLBACK_MAX_ATTEMPTS,
        }
    }
}

/// The token and secret are redacted.
impl fmt::Debug for CallbackTaskConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |s: &Option<String>| s.as_ref().map(|_| "***");
        f.debug_struct("CallbackTaskConfig")
            .field("allowed_hosts", &self.allowed_hosts)
            .field("token", &redacted(&self.token))
            .field("secret", &redacted(&self.secret))
            .field("max_attempts", &self.max_attempts)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_redacted() {
        assert_eq!(redact_url("redis://:s3cret@redis:6379/0"), "redis://:***@redis:6379/0");
        assert_eq!(redact_url("redis://u:p@h"), "redis://u:***@h");
        assert_eq!(redact_url("redis://h:1"), "redis://h:1");
        let dbg = format!("{:?}", RedisConfig::new("redis://:s3cret@h:1"));
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }

    #[test]
    fn result_backend_must_share_the_broker_server() {
        let cfg = RedisConfig::new("redis://127.0.0.1:6379/0");
        assert!(cfg.check_result_backend(None).unwrap().is_none());
        assert!(
            cfg.check_result_backend(Some("redis://127.0.0.1:6379/0"))
                .unwrap()
                .is_none()
        );
        assert!(
            cfg.check_result_backend(Some("redis://127.0.0.1:6379/1"))
                .unwrap()
                .is_some()
        );
        assert!(cfg.check_result_backend(Some("redis://10.0.0.9:6379/0")).is_err());
    }

    #[test]
    fn sentinel_and_cluster_urls_are_read() {
        let t = Topology::parse("redis+sentinel://:pw@10.0.0.1:26379,s2/mymaster/3").unwrap();
        assert_eq!(
            t,
            Topology::Sentinel(SentinelSpec {
                sentinels: vec!["redis://10.0.0.1:26379".into(), "redis://s2:26379".into()],
                master: "mymaster".into(),
                primary: "redis://:pw@sentinel-resolved/3".into(),
            })
        );
        assert!(!t.uses_tls());
        let t = Topology::parse("rediss+sentinel://u:pw@s1:26380/mymaster").unwrap();
        assert_eq!(
            t,
            Topology::Sentinel(SentinelSpec {
                sentinels: vec!["rediss://s1:26380".into()],
                master: "mymaster".into(),
                primary: "rediss://u:pw@sentinel-resolved/0".into(),
            })
        );
        assert!(t.uses_tls());
        assert!(Topology::parse("redis+sentinel://h1:26379/").is_err());
        assert!(Topology::parse("redis+sentinel://h1:26379/m/x").is_err());
        assert_eq!(
            Topology::parse("rediss-cluster://u:p@a:7000,b:7001").unwrap(),
            Topology::Cluster(vec!["rediss://u:p@a:7000".into(), "rediss://u:p@b:7001".into()])
        );
        assert!(Topology::parse("redis-cluster://a:7000/1").is_err());
        assert!(Topology::parse("redis-cluster://a").is_err());
        assert!(Topology::parse("rediss://h:6380").unwrap().uses_tls());
        assert!(Topology::parse("http://h").is_err());
        let mut cfg = RedisConfig::new("redis://h:1");
        cfg.ca_file = Some("/dev/null".into());
        assert!(cfg.validate().is_err(), "TLS files with a plain URL");
        cfg.url = "rediss://h:1".into();
        cfg.validate().unwrap();
        cfg.client_cert = Some("/dev/null".into());
        assert!(cfg.validate().is_err(), "a certificate without its key");
    }

    #[test]
    fn names_with_braces_or_spaces_are_refused() {
        assert!(validate_name("queue", "media.encode-1").is_ok());
        assert!(validate_name("queue", "a{b}").is_err());
        assert!(validate_name("queue", "a b").is_err());
        assert!(validate_name("queue", "").is_err());
    }
}
