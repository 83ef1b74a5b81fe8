//! Test harness: private redis-server processes, the real binaries, an HTTP client.

use std::{
    net::TcpListener,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Result, bail};
use serde_json::Value;

/// A free TCP port on 127.0.0.1 (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A unique namespace, so tests sharing nothing still never collide.
pub fn unique_ns() -> String {
    format!("t{}", uuid::Uuid::new_v4().simple())
}

/// A redis-server of the test's own on a free port; killed on drop.
pub struct TestRedis {
    pub port: u16,
    dir: PathBuf,
    persistent: bool,
    password: Option<String>,
    child: Option<Child>,
}

impl TestRedis {
    /// An in-memory server.
    pub fn start() -> Self {
        Self::spawn(false, None)
    }

    /// An in-memory server that requires `password` (`url()` carries it).
    pub fn start_with_password(password: &str) -> Self {
        Self::spawn(false, Some(password.to_owned()))
    }

    /// A server with an append-only file (fsync always), so a restart keeps every write.
    pub fn start_persistent() -> Self {
        Self::spawn(true, None)
    }

    fn spawn(persistent: bool, password: Option<String>) -> Self {
        let dir = std::env::temp_dir().join(format!("celeriac-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut r = Self {
            port: free_port(),
            dir,
            persistent,
            password,
            child: None,
        };
        r.run();
        r
    }

    fn run(&mut self) {
        let mut cmd = Command::new("redis-server");
        cmd.args(["--bind", "127.0.0.1", "--port", &self.port.to_string(), "--save", ""])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        if self.persistent {
            cmd.args(["--appendonly", "yes", "--appendfsync", "always"]);
        } else {
            cmd.args(["--appendonly", "no"]);
        }
        if let Some(password) = &self.password {
            cmd.args(["--requirepass", password]);
        }
        self.child = Some(cmd.spawn().expect("redis-server must be installed (see README)"));
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if self.ping() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("redis-server did not start on port {}", self.port);
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        match &self.password {
            Some(password) => format!("redis://:{password}@127.0.0.1:{}", self.port),
            None => format!("redis://127.0.0.1:{}", self.port),
        }
    }

    /// `redis://127.0.0.1:<port>` without any password.
    pub fn url_without_password(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// True when the server answers PING.
    pub fn ping(&self) -> bool {
        redis::Client::open(self.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_ok()
    }

    /// A blocking connection for assertions.
    pub fn conn(&self) -> redis::Connection {
        redis::Client::open(self.url()).unwrap().get_connection().unwrap()
    }

    /// Kills the server (SIGKILL) and waits for it to be gone.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Freezes (`STOP`) or thaws (`CONT`) the server: a hung Redis, not a refused one.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.as_ref().expect("running").id().to_string();
        assert!(
            Command::new("kill")
                .arg(format!("-{sig}"))
                .arg(pid)
                .status()
                .unwrap()
                .success()
        );
    }

    /// Starts the server again on the same port (and data directory).
    pub fn restart(&mut self) {
        self.stop();
        self.run();
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A running binary; killed on drop.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    fn spawn(name: &'static str, bin: &str, args: &[&str], env: &[(&str, String)]) -> Self {
        let mut cmd = Command::new(bin);
        cmd.args(args)
            .env_remove("CELERIAC_BROKER_URL")
            .env_remove("CELERY_BROKER_URI")
            .env_remove("REDIS_URL")
            .env_remove("PORT0")
            .env_remove("PORT")
            .env_remove("CELERIAC_AUTH")
            .env_remove("CELERIAC_API_TOKENS")
            .env_remove("CELERIAC_API_TOKENS_FILE")
            .env_remove("CELERIAC_METRICS_REQUIRE_AUTH")
            .env(
                "RUST_LOG",
                std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".to_owned()),
            )
            .stdout(Stdio::null());
        if std::env::var("TEST_LOG").is_err() {
            cmd.stderr(Stdio::null());
        }
        for (k, v) in env {
            cmd.env(k, v);
        }
        Self {
            child: cmd.spawn().unwrap_or_else(|e| panic!("cannot start {bin}: {e}")),
            name,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a signal by name (`TERM`, `KILL`, `INT`).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .unwrap();
        assert!(status.success(), "kill -{sig} failed");
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, timeout: Duration) -> Result<Option<i32>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status.code());
            }
            if Instant::now() > deadline {
                bail!("{} did not exit within {timeout:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `celeriac-api` process on a free port.
pub struct Api {
    /// Kept to kill the process on drop.
    pub proc: Proc,
    pub base: String,
    pub http: reqwest::Client,
}

impl Api {
    /// An API without authentication (`CELERIAC_AUTH=off`), as most tests want.
    pub async fn start(redis_url: &str, ns: &str, extra: &[&str]) -> Self {
        Self::start_with_env(redis_url, ns, extra, &[("CELERIAC_AUTH", "off".to_owned())]).await
    }

    /// An API with authentication on and these `<token>:<scope>` entries.
    pub async fn start_with_tokens(redis_url: &str, ns: &str, tokens: &str, extra: &[&str]) -> Self {
        Self::start_with_env(redis_url, ns, extra, &[("CELERIAC_API_TOKENS", tokens.to_owned())]).await
    }

    /// An API with extra environment (authentication settings included).
    pub async fn start_with_env(redis_url: &str, ns: &str, extra: &[&str], env: &[(&str, String)]) -> Self {
        let port = free_port();
        let mut args = vec!["--host", "127.0.0.1"];
        args.extend_from_slice(extra);
        let mut vars = vec![
            ("CELERIAC_BROKER_URL", redis_url.to_owned()),
            ("CELERIAC_NAMESPACE", ns.to_owned()),
            ("PORT", port.to_string()),
        ];
        vars.extend(env.iter().cloned());
        let proc = Proc::spawn("celeriac-api", env!("CARGO_BIN_EXE_celeriac-api"), &args, &vars);
        let api = Self {
            proc,
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(90))
                .build()
                .unwrap(),
        };
        wait_http_ok(&api.http, &format!("{}/healthz", api.base)).await;
        api
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// `method path` with no body.
    pub async fn send(&self, method: &str, path: &str) -> reqwest::Response {
        self.http
            .request(method.parse().unwrap(), self.url(path))
            .send()
            .await
            .unwrap()
    }

    /// GET `path`; returns its JSON body.
    pub async fn get_json(&self, path: &str) -> Value {
        self.send("GET", path).await.json().await.unwrap()
    }

    /// POST `path` with a JSON body; returns (status, body).
    pub async fn post_json(&self, path: &str, body: Value) -> (u16, Value) {
        let resp = self.http.post(self.url(path)).json(&body).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// POST /tasks with a JSON body; returns (status, body).
    pub async fn post_task(&self, body: Value) -> (u16, Value) {
        let resp = self.http.post(self.url("/tasks")).json(&body).send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// POST /tasks, expecting 202; returns the task id.
    pub async fn enqueue(&self, body: Value) -> String {
        let (status, body) = self.post_task(body).await;
        assert_eq!(status, 202, "enqueue failed: {body}");
        body["task_id"].as_str().unwrap().to_owned()
    }

    /// GET /tasks/{id}; returns (status, body).
    pub async fn get_task(&self, id: &str) -> (u16, Value) {
        let resp = self.http.get(self.url(&format!("/tasks/{id}"))).send().await.unwrap();
        (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
    }

    /// Long-polls until the task is final (or `secs` pass); returns the record.
    pub async fn wait_task(&self, id: &str, secs: u64) -> Value {
        let resp = self
            .http
            .get(self.url(&format!("/tasks/{id}?wait={secs}")))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }

    /// Polls until `pred` holds for the task record (for non-final states).
    pub async fn wait_until(&self, id: &str, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let (_, body) = self.get_task(id).await;
            if pred(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "condition not reached in {timeout:?}; last: {body}"
            );
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }
}

/// A `celeriac-worker` process with a health port.
pub struct Worker {
    pub proc: Proc,
    pub health_port: u16,
    pub name: String,
}

impl Worker {
    pub async fn start(redis_url: &str, ns: &str, extra: &[&str]) -> Self {
        let health_port = free_port();
        let name = format!("w-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let hp = health_port.to_string();
        let mut args = vec!["--health-port", hp.as_str(), "--name", name.as_str()];
        args.extend_from_slice(extra);
        let proc = Proc::spawn(
            "celeriac-worker",
            env!("CARGO_BIN_EXE_celeriac-worker"),
            &args,
            &[
                ("CELERIAC_BROKER_URL", redis_url.to_owned()),
                ("CELERIAC_NAMESPACE", ns.to_owned()),
            ],
        );
        let w = Self {
            proc,
            health_port,
            name,
        };
        wait_http_ok(&reqwest::Client::new(), &w.health_url("/healthz")).await;
        w
    }

    pub fn health_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.health_port)
    }
}

async fn wait_http_ok(http: &reqwest::Client, url: &str) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(url).timeout(Duration::from_secs(1)).send().await
            && r.status() == 200
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{url} did not answer 200 within 20 s");
}

/// Engine-level access: a `Queue` over a test Redis in a fresh namespace.
pub fn queue(redis: &TestRedis, engine: celeriac::config::EngineConfig) -> celeriac::Queue {
    let mut cfg = celeriac::config::RedisConfig::new(redis.url());
    cfg.namespace = unique_ns();
    celeriac::Queue::connect(&cfg, engine).unwrap()
}

/// A worker running in the test process (for tasks the worker binary does not ship).
pub struct InProcessWorker {
    stop: tokio_util::sync::CancellationToken,
    handle: Option<tokio::task::JoinHandle<celeriac::worker::StopDetails>>,
}

impl InProcessWorker {
    pub fn start(
        redis_url: &str,
        ns: &str,
        registry: celeriac::tasks::Registry,
        configure: impl FnOnce(&mut celeriac::config::WorkerConfig),
    ) -> Self {
        let mut redis = celeriac::config::RedisConfig::new(redis_url);
        redis.namespace = ns.to_owned();
        let name = format!("inproc-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut cfg = celeriac::config::WorkerConfig::new(redis, name.clone());
        cfg.concurrency = 4;
        configure(&mut cfg);
        let stop = tokio_util::sync::CancellationToken::new();
        let token = stop.clone();
        let handle = tokio::spawn(async move { celeriac::worker::run(cfg, registry, token).await.unwrap() });
        Self {
            stop,
            handle: Some(handle),
        }
    }

    /// Stops the worker gracefully and returns how it stopped.
    pub async fn stop(mut self) -> celeriac::worker::StopDetails {
        self.stop.cancel();
        self.handle.take().unwrap().await.unwrap()
    }
}

impl Drop for InProcessWorker {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// The events of one task in the namespace's stream, in order.
pub fn task_events(redis: &TestRedis, ns: &str, id: &str) -> Vec<String> {
    use redis::Commands;
    let entries: redis::streams::StreamRangeReply = redis
        .conn()
        .xrange_all(celeriac::redis::keys::Keys::new(ns).events())
        .unwrap();
    entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("task_id").as_deref() == Some(id))
        .filter_map(|e| e.get::<String>("event"))
        .collect()
}

/// Ids of the tasks of a namespace in the order they started (from the events stream).
pub fn started_ids(redis: &TestRedis, ns: &str) -> Vec<String> {
    use redis::Commands;
    let entries: redis::streams::StreamRangeReply = redis
        .conn()
        .xrange_all(celeriac::redis::keys::Keys::new(ns).events())
        .unwrap();
    entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("event").as_deref() == Some("started"))
        .filter_map(|e| e.get::<String>("task_id"))
        .collect()
}

/// Runs `celeriac-api <subcommand> <args>` (`inspect`, `tasks`) against a namespace;
/// returns (exit code, stdout, stderr).
pub fn api_cli(subcommand: &str, redis_url: &str, ns: &str, args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_celeriac-api"))
        .arg(subcommand)
        .args(args)
        .env_remove("CELERY_BROKER_URI")
        .env_remove("REDIS_URL")
        .env("CELERIAC_BROKER_URL", redis_url)
        .env("CELERIAC_NAMESPACE", ns)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
