//! Where Redis is (one server, Sentinel or Cluster) and how to reach it, with
//! the secrets in its URLs redacted wherever they are shown.

use std::{fmt, path::PathBuf, time::Duration};

use super::{ConfigError, error_text, invalid, validate_name};

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
}
