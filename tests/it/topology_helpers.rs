//! Redis deployments for `redis_topologies.rs`: TLS servers with a CA made in
//! the test, a primary + replica + three sentinels, a three-primary cluster.
//! Every process is killed and every directory removed on drop.

use std::{
    collections::HashMap,
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use crate::helpers::free_port;

/// A scratch directory, removed on drop.
pub struct Scratch(pub PathBuf);

impl Scratch {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("celeriac-topo-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` process (data node or sentinel); SIGKILLed on drop.
pub struct Server {
    pub port: u16,
    child: Option<Child>,
    /// Set for TLS-only servers: what `conn()` presents.
    tls: Option<redis::TlsCertificates>,
}

impl Server {
    /// Starts `redis-server <args>` and waits until `port` accepts connections.
    pub fn spawn(port: u16, args: &[String]) -> Self {
        let child = Command::new("redis-server")
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (see README)");
        let s = Self {
            port,
            child: Some(child),
            tls: None,
        };
        wait_until(Duration::from_secs(10), &format!("port {port} listening"), || {
            TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        s
    }

    /// A plain data node on a free port with extra arguments, in `dir`.
    pub fn data_node(dir: &Path, extra: &[&str]) -> Self {
        let port = free_port();
        let mut args = base_args(dir, port);
        args.extend(extra.iter().map(|a| a.to_string()));
        Self::spawn(port, &args)
    }

    /// `kill -9`.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// A synchronous connection (plain TCP).
    pub fn conn(&self) -> redis::Connection {
        match &self.tls {
            Some(certs) => redis::Client::build_with_tls(format!("rediss://127.0.0.1:{}", self.port), certs.clone()),
            None => redis::Client::open(format!("redis://127.0.0.1:{}", self.port)),
        }
        .unwrap()
        .get_connection_with_timeout(Duration::from_secs(2))
        .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

fn base_args(dir: &Path, port: u16) -> Vec<String> {
    [
        "--bind",
        "127.0.0.1",
        "--port",
        &port.to_string(),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        dir.to_str().unwrap(),
    ]
    .iter()
    .map(|a| a.to_string())
    .collect()
}

/// Owned arguments as the `&[&str]` the process helpers take.
pub fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Polls `cond` every 50 ms; panics after `limit`.
pub fn wait_until(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "not reached within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// PEM files of a test CA, a server certificate for 127.0.0.1 and a client
/// certificate, all made in the test (no network, no openssl).
pub struct Pki {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// A CA that signed nothing here.
    pub other_ca: PathBuf,
}

impl Pki {
    pub fn generate(dir: &Path) -> Self {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
        let ca_params = |name: &str| {
            let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            p.distinguished_name.push(DnType::CommonName, name);
            p
        };
        let ca = CertifiedIssuer::self_signed(ca_params("celeriac test CA"), KeyPair::generate().unwrap()).unwrap();
        let other = CertifiedIssuer::self_signed(ca_params("someone else"), KeyPair::generate().unwrap()).unwrap();
        let leaf = |sans: Vec<String>, name: &str| {
            let key = KeyPair::generate().unwrap();
            let mut p = CertificateParams::new(sans).unwrap();
            p.distinguished_name.push(DnType::CommonName, name);
            (p.signed_by(&key, &ca).unwrap().pem(), key.serialize_pem())
        };
        let (server_cert, server_key) = leaf(vec!["127.0.0.1".into(), "localhost".into()], "redis");
        let (client_cert, client_key) = leaf(Vec::new(), "celeriac");
        let write = |name: &str, pem: &str| {
            let path = dir.join(name);
            std::fs::write(&path, pem).unwrap();
            path
        };
        Self {
            ca: write("ca.pem", &ca.pem()),
            server_cert: write("server.pem", &server_cert),
            server_key: write("server.key", &server_key),
            client_cert: write("client.pem", &client_cert),
            client_key: write("client.key", &client_key),
            other_ca: write("other-ca.pem", &other.pem()),
        }
    }

    /// A redis-server that speaks TLS only; with `require_client_cert` it
    /// refuses clients without a certificate signed by the CA.
    pub fn server(&self, dir: &Path, require_client_cert: bool) -> Server {
        self.server_with(dir, require_client_cert, &[])
    }

    fn server_with(&self, dir: &Path, require_client_cert: bool, extra: &[&str]) -> Server {
        let port = free_port();
        let mut args = base_args(dir, 0);
        args.extend(extra.iter().map(|a| a.to_string()));
        let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
        args.extend([
            "--tls-port".to_owned(),
            port.to_string(),
            "--tls-cert-file".to_owned(),
            p(&self.server_cert),
            "--tls-key-file".to_owned(),
            p(&self.server_key),
            "--tls-ca-cert-file".to_owned(),
            p(&self.ca),
            "--tls-auth-clients".to_owned(),
            if require_client_cert { "yes" } else { "no" }.to_owned(),
        ]);
        let mut server = Server::spawn(port, &args);
        server.tls = Some(self.certificates());
        server
    }

    /// The CA and the client certificate, as a client presents them.
    pub fn certificates(&self) -> redis::TlsCertificates {
        let read = |p: &PathBuf| std::fs::read(p).unwrap();
        redis::TlsCertificates {
            client_tls: Some(redis::ClientTlsConfig {
                client_cert: read(&self.client_cert),
                client_key: read(&self.client_key),
            }),
            root_cert: Some(read(&self.ca)),
        }
    }

    /// The API's and the worker's TLS flags: trust `ca`, and with `client_cert`
    /// present this PKI's client certificate and key.
    pub fn flags(&self, ca: &Path, client_cert: bool) -> Vec<String> {
        let p = |p: &Path| p.to_str().unwrap().to_owned();
        let mut flags = vec!["--redis-ca-file".to_owned(), p(ca)];
        if client_cert {
            flags.extend([
                "--redis-client-cert".to_owned(),
                p(&self.client_cert),
                "--redis-client-key".to_owned(),
                p(&self.client_key),
            ]);
        }
        flags
    }

    /// `redis-cli` arguments for this PKI.
    fn cli_args(&self) -> Vec<String> {
        let p = |p: &PathBuf| p.to_str().unwrap().to_owned();
        vec![
            "--tls".to_owned(),
            "--cacert".to_owned(),
            p(&self.ca),
            "--cert".to_owned(),
            p(&self.client_cert),
            "--key".to_owned(),
            p(&self.client_key),
        ]
    }
}

/// A primary, one replica and three sentinels monitoring them as `mymaster`.
pub struct SentinelSetup {
    pub primary: Server,
    pub replica: Server,
    pub sentinels: Vec<Server>,
    _dir: Scratch,
}

impl SentinelSetup {
    pub const MASTER: &'static str = "mymaster";

    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// With a PKI, every node and sentinel speaks TLS only, with mutual TLS
    /// (replication and the sentinels' own links included).
    pub fn start_with(pki: Option<&Pki>) -> Self {
        let dir = Scratch::new();
        let node = |dir: &Path, extra: &[&str]| match pki {
            Some(pki) => pki.server_with(dir, true, &[extra, &["--tls-replication", "yes"]].concat()),
            None => Server::data_node(dir, extra),
        };
        let primary = node(&dir.0, &[]);
        let primary_port = primary.port.to_string();
        let replica_dir = dir.path("replica");
        std::fs::create_dir_all(&replica_dir).unwrap();
        let replica = node(&replica_dir, &["--replicaof", "127.0.0.1", &primary_port]);
        let sentinels: Vec<Server> = (0..3)
            .map(|i| {
                let port = free_port();
                let conf = dir.path(&format!("sentinel-{i}.conf"));
                let listen = match pki {
                    Some(pki) => format!(
                        "port 0\ntls-port {port}\ntls-replication yes\ntls-auth-clients yes\n\
                         tls-cert-file {}\ntls-key-file {}\ntls-ca-cert-file {}\n",
                        pki.server_cert.display(),
                        pki.server_key.display(),
                        pki.ca.display(),
                    ),
                    None => format!("port {port}\n"),
                };
                std::fs::write(
                    &conf,
                    format!(
                        "bind 127.0.0.1\n{listen}dir {}\n\
                         sentinel monitor {m} 127.0.0.1 {primary_port} 2\n\
                         sentinel down-after-milliseconds {m} 1000\n\
                         sentinel failover-timeout {m} 3000\n",
                        dir.0.display(),
                        m = Self::MASTER,
                    ),
                )
                .unwrap();
                let mut sentinel = Server::spawn(port, &[conf.to_str().unwrap().to_owned(), "--sentinel".to_owned()]);
                sentinel.tls = pki.map(Pki::certificates);
                sentinel
            })
            .collect();
        let s = Self {
            primary,
            replica,
            sentinels,
            _dir: dir,
        };
        // A failover needs the replica in sync and every sentinel knowing the
        // replica and the two other sentinels (hello messages every 2 s).
        wait_until(
            Duration::from_secs(20),
            "replica in sync, sentinels know each other",
            || {
                let info: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut s.replica.conn())
                    .unwrap_or_default();
                info.contains("master_link_status:up")
                    && s.sentinels.iter().all(|sentinel| {
                        let master: HashMap<String, String> = redis::cmd("SENTINEL")
                            .arg("MASTER")
                            .arg(Self::MASTER)
                            .query(&mut sentinel.conn())
                            .unwrap_or_default();
                        master.get("num-other-sentinels").map(String::as_str) == Some("2")
                            && master.get("num-slaves").map(String::as_str) == Some("1")
                    })
            },
        );
        s
    }

    /// `redis+sentinel://s1,s2,s3/mymaster` (`rediss+sentinel://` over TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.sentinels.iter().map(|s| format!("127.0.0.1:{}", s.port)).collect();
        let tls = if self.primary.tls.is_some() { "s" } else { "" };
        format!("redis{tls}+sentinel://{}/{}", hosts.join(","), Self::MASTER)
    }

    /// The port of the primary the sentinels name now.
    pub fn current_primary_port(&self) -> Option<u16> {
        let addr: Vec<String> = redis::cmd("SENTINEL")
            .arg("GET-MASTER-ADDR-BY-NAME")
            .arg(Self::MASTER)
            .query(&mut self.sentinels[0].conn())
            .ok()?;
        addr.get(1)?.parse().ok()
    }
}

/// Three cluster-enabled primaries holding all 16384 slots.
pub struct Cluster {
    pub nodes: Vec<Server>,
    _dir: Scratch,
}

impl Cluster {
    pub fn start() -> Self {
        Self::start_with(None)
    }

    /// With a PKI, the nodes speak TLS only (clients and cluster bus, mutual TLS).
    pub fn start_with(pki: Option<&Pki>) -> Self {
        let dir = Scratch::new();
        let nodes: Vec<Server> = (0..3)
            .map(|i| {
                let conf = format!("nodes-{i}.conf");
                let mut args = vec![
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "2000",
                ];
                match pki {
                    Some(pki) => {
                        args.extend(["--tls-cluster", "yes"]);
                        pki.server_with(&dir.0, true, &args)
                    }
                    None => Server::data_node(&dir.0, &args),
                }
            })
            .collect();
        let status = Command::new("redis-cli")
            .args(pki.map(Pki::cli_args).unwrap_or_default())
            .arg("--cluster")
            .arg("create")
            .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)))
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("redis-cli must be installed");
        assert!(status.success(), "redis-cli --cluster create failed");
        let c = Self { nodes, _dir: dir };
        wait_until(Duration::from_secs(20), "cluster_state:ok on every node", || {
            c.nodes.iter().all(|n| {
                let info: String = redis::cmd("CLUSTER")
                    .arg("INFO")
                    .query(&mut n.conn())
                    .unwrap_or_default();
                info.contains("cluster_state:ok")
            })
        });
        c
    }

    /// `redis-cluster://n1,n2,n3` (`rediss-cluster://` over TLS).
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port)).collect();
        let tls = if self.nodes[0].tls.is_some() { "s" } else { "" };
        format!("redis{tls}-cluster://{}", hosts.join(","))
    }

    /// The port of the primary that owns `key`'s slot.
    pub fn owner(&self, key: &str) -> u16 {
        let mut conn = self.nodes[0].conn();
        let slot: i64 = redis::cmd("CLUSTER").arg("KEYSLOT").arg(key).query(&mut conn).unwrap();
        // CLUSTER SLOTS: [[start, end, [host, port, id], …], …]
        let ranges: Vec<(i64, i64, (String, i64))> = redis::cmd("CLUSTER")
            .arg("SLOTS")
            .query::<Vec<redis::Value>>(&mut conn)
            .unwrap()
            .into_iter()
            .map(|range| {
                let redis::Value::Array(items) = range else {
                    panic!("CLUSTER SLOTS: {range:?}")
                };
                let start: i64 = redis::FromRedisValue::from_redis_value(items[0].clone()).unwrap();
                let end: i64 = redis::FromRedisValue::from_redis_value(items[1].clone()).unwrap();
                let redis::Value::Array(node) = &items[2] else {
                    panic!("CLUSTER SLOTS node")
                };
                let host: String = redis::FromRedisValue::from_redis_value(node[0].clone()).unwrap();
                let port: i64 = redis::FromRedisValue::from_redis_value(node[1].clone()).unwrap();
                (start, end, (host, port))
            })
            .collect();
        let (_, _, (_, port)) = ranges
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .expect("every slot is assigned");
        port as u16
    }

    pub fn node(&self, port: u16) -> &Server {
        self.nodes.iter().find(|n| n.port == port).unwrap()
    }
}
