//! Fault-injection tools for the chaos tests: a Redis whose append-only file is
//! fsynced every second (the setting production uses), a TCP proxy that cuts one
//! process off from Redis, workers whose logs are kept, and every task's events
//! read in one pass.

use std::{
    collections::HashMap,
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use tokio::{
    net::{TcpListener, TcpStream},
    task::AbortHandle,
};

use crate::helpers::free_port;

/// Events that end a task; a task must record exactly one.
pub const FINAL_EVENTS: &[&str] = &["succeeded", "failed", "dead", "revoked", "expired"];

/// A redis-server with `--appendonly yes --appendfsync everysec`; kill -9 and
/// restart keep whatever reached the append-only file. Killed on drop.
pub struct AofRedis {
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl AofRedis {
    pub fn start() -> Self {
        let dir = std::env::temp_dir().join(format!("celeriac-chaos-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            port: free_port(),
            dir,
            child: None,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", ""])
            .args(["--appendonly", "yes", "--appendfsync", "everysec"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server must be installed (see README)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// True when the server answers PING (a restarted server loading its file answers LOADING).
    pub fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    /// kill -9: no shutdown, no final fsync.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts again on the same port and data directory (replaying the append-only file).
    pub fn restart(&mut self) {
        self.kill9();
        self.run();
    }
}

impl Drop for AofRedis {
    fn drop(&mut self) {
        self.kill9();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Every task's events (`enqueued`, `started`, `succeeded`, …) in order, from one
/// read of the namespace's stream.
pub fn events_by_task(conn: &mut redis::Connection, ns: &str) -> HashMap<String, Vec<String>> {
    use redis::Commands;
    let entries: redis::streams::StreamRangeReply =
        conn.xrange_all(celeriac::redis::keys::Keys::new(ns).events()).unwrap();
    let mut by_task: HashMap<String, Vec<String>> = HashMap::new();
    for e in &entries.ids {
        if let (Some(id), Some(event)) = (e.get::<String>("task_id"), e.get::<String>("event")) {
            by_task.entry(id).or_default().push(event);
        }
    }
    by_task
}

/// How many of `events` end a task.
pub fn finals(events: &[String]) -> usize {
    events.iter().filter(|e| FINAL_EVENTS.contains(&e.as_str())).count()
}

/// A TCP proxy on loopback in front of Redis that the test can cut: `cut` drops
/// every open connection and closes new ones at once, `restore` lets them
/// through again. Stands in for a network partition between one process and Redis.
pub struct CutProxy {
    pub port: u16,
    cut: Arc<AtomicBool>,
    pumps: Arc<Mutex<Vec<AbortHandle>>>,
    accept: AbortHandle,
}

impl CutProxy {
    /// Listens on a free port and forwards to `127.0.0.1:<upstream>`.
    pub async fn start(upstream: u16) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(AtomicBool::new(false));
        let pumps = Arc::new(Mutex::new(Vec::<AbortHandle>::new()));
        let (c, p) = (cut.clone(), pumps.clone());
        let accept = tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    continue;
                };
                if c.load(Ordering::SeqCst) {
                    drop(inbound); // refused: the client sees its connection closed
                    continue;
                }
                let pump = tokio::spawn(async move {
                    if let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", upstream)).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
                let mut pumps = p.lock().unwrap();
                pumps.retain(|h| !h.is_finished());
                pumps.push(pump.abort_handle());
            }
        })
        .abort_handle();
        Self {
            port,
            cut,
            pumps,
            accept,
        }
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Drops every connection through the proxy and refuses new ones.
    pub fn cut(&self) {
        self.cut.store(true, Ordering::SeqCst);
        for pump in self.pumps.lock().unwrap().drain(..) {
            pump.abort(); // drops both sockets
        }
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.cut.store(false, Ordering::SeqCst);
    }
}

impl Drop for CutProxy {
    fn drop(&mut self) {
        self.cut();
        self.accept.abort();
    }
}

/// A `celeriac-worker` whose stderr goes to a file the test reads. Killed on drop.
pub struct LoggedWorker {
    child: Child,
    pub name: String,
    log: PathBuf,
}

impl LoggedWorker {
    pub async fn start(redis_url: &str, ns: &str, extra: &[&str]) -> Self {
        let health_port = free_port();
        let name = format!("lw-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let log = std::env::temp_dir().join(format!("celeriac-{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_celeriac-worker"))
            .args(["--health-port", &health_port.to_string(), "--name", &name])
            .args(extra)
            .env_remove("CELERIAC_BROKER_URL")
            .env_remove("REDIS_URL")
            .env("CELERIAC_BROKER_URL", redis_url)
            .env("CELERIAC_NAMESPACE", ns)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("cannot start celeriac-worker");
        let w = Self { child, name, log };
        let url = format!("http://127.0.0.1:{health_port}/healthz");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(&url).await
                && r.status() == 200
            {
                return w;
            }
            assert!(Instant::now() < deadline, "{url} did not answer 200 within 20 s");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Everything the worker logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for LoggedWorker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}
