//! Real work: the built-in `http` task against a local server, the `command`
//! task with coreutils programs (validation, progress, cancel, time limits,
//! no process left behind), and the worker binary's flags for both.

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use celeriac::{
    Queue,
    config::{EngineConfig, RedisConfig},
    model::{NewTask, TaskOptions, TaskRecord},
    tasks::{
        Registry,
        command::{self, CommandCatalog},
        http::{self, HttpTaskConfig},
    },
};
use poem::{
    EndpointExt, IntoResponse, Response, Route, Server, get, handler,
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::{Data, Json},
};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::helpers::{InProcessWorker, TestRedis, Worker, unique_ns};

// ---------------------------------------------------------------- harness

fn queue_in(redis: &TestRedis, ns: &str) -> Queue {
    let mut cfg = RedisConfig::new(redis.url());
    cfg.namespace = ns.to_owned();
    Queue::connect(&cfg, EngineConfig::default()).unwrap()
}

async fn enqueue(q: &Queue, name: &str, args: Value, options: TaskOptions) -> Uuid {
    let mut task = NewTask::new(name, args);
    task.options = options;
    q.enqueue(&task, false).await.unwrap().id
}

/// Polls the record until `pred` holds.
async fn wait_for(q: &Queue, id: &Uuid, timeout: Duration, pred: impl Fn(&TaskRecord) -> bool) -> TaskRecord {
    let deadline = Instant::now() + timeout;
    loop {
        let rec = q.get(id).await.unwrap().expect("task exists");
        if pred(&rec) {
            return rec;
        }
        assert!(Instant::now() < deadline, "not reached in {timeout:?}: {rec:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn wait_final(q: &Queue, id: &Uuid) -> TaskRecord {
    wait_for(q, id, Duration::from_secs(10), |r| r.status.is_final()).await
}

fn exc_type(rec: &TaskRecord) -> &str {
    rec.result.as_ref().and_then(|r| r["exc_type"].as_str()).unwrap_or("")
}

fn exc_message(rec: &TaskRecord) -> String {
    rec.result
        .as_ref()
        .and_then(|r| r["exc_message"].as_str())
        .unwrap_or("")
        .to_owned()
}

fn retries(n: u32) -> TaskOptions {
    TaskOptions {
        max_retries: Some(n),
        retry_backoff: Some(0.05),
        retry_jitter: Some(false),
        ..TaskOptions::default()
    }
}

// ---------------------------------------------------------------- http

#[derive(Clone, Default)]
struct Hits {
    boom: Arc<AtomicUsize>,
    missing: Arc<AtomicUsize>,
    busy: Arc<AtomicUsize>,
}

#[handler]
fn ok_page() -> Response {
    Json(json!({"hello": "world"}))
        .with_header("x-test", "1")
        .into_response()
}

#[handler]
fn big_page() -> String {
    "x".repeat(2000)
}

#[handler]
fn boom_page(Data(hits): Data<&Hits>) -> Response {
    hits.boom.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .status(StatusCode::INTERNAL_SERVER_ERROR)
        .body("boom")
}

#[handler]
fn missing_page(Data(hits): Data<&Hits>) -> Response {
    hits.missing.fetch_add(1, Ordering::SeqCst);
    Response::builder().status(StatusCode::NOT_FOUND).body("no such thing")
}

#[handler]
fn busy_page(Data(hits): Data<&Hits>) -> Response {
    hits.busy.fetch_add(1, Ordering::SeqCst);
    Response::builder()
        .status(StatusCode::TOO_MANY_REQUESTS)
        .header("retry-after", "0")
        .body("slow down")
}

#[handler]
async fn slow_page() -> &'static str {
    tokio::time::sleep(Duration::from_secs(5)).await;
    "late"
}

#[handler]
fn echo_page(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({"got": body}))
}

/// A local HTTP server on a free port; `redirect_away` points at `localhost`,
/// which the tests never allow (only `127.0.0.1:<port>` is).
async fn test_server() -> (u16, Hits) {
    let hits = Hits::default();
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let away = format!("http://localhost:{port}/ok");
    let app = Route::new()
        .at("/ok", get(ok_page))
        .at("/big", get(big_page))
        .at("/boom", get(boom_page))
        .at("/missing", get(missing_page))
        .at("/slow", get(slow_page))
        .at("/busy", get(busy_page))
        .at("/echo", post(echo_page))
        .at(
            "/redirect-ok",
            get(poem::endpoint::make_sync(|_| poem::web::Redirect::see_other("/ok"))),
        )
        .at(
            "/redirect-away",
            get(poem::endpoint::make_sync(move |_| {
                poem::web::Redirect::temporary(away.clone())
            })),
        )
        .data(hits.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (port, hits)
}

struct HttpSetup {
    _redis: TestRedis,
    _worker: InProcessWorker,
    q: Queue,
    base: String,
    hits: Hits,
}

async fn http_setup(max_body_bytes: usize) -> HttpSetup {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let (port, hits) = test_server().await;
    let mut registry = Registry::with_builtins();
    http::register(
        &mut registry,
        HttpTaskConfig {
            allowed_hosts: vec![format!("127.0.0.1:{port}")],
            max_body_bytes,
        },
    )
    .unwrap();
    let worker = InProcessWorker::start(&redis.url(), &ns, registry, |_| {});
    HttpSetup {
        q: queue_in(&redis, &ns),
        _redis: redis,
        _worker: worker,
        base: format!("http://127.0.0.1:{port}"),
        hits,
    }
}

#[tokio::test]
async fn http_returns_status_headers_and_json_or_text_body_capped_with_a_flag() {
    let s = http_setup(1000).await;
    let get_ok = enqueue(
        &s.q,
        "http",
        json!({"url": format!("{}/ok", s.base)}),
        TaskOptions::default(),
    )
    .await;
    let posted = enqueue(
        &s.q,
        "http",
        json!({"method": "POST", "url": format!("{}/echo", s.base), "json": {"a": 1}, "headers": {"x-id": "7"}}),
        TaskOptions::default(),
    )
    .await;
    let big = enqueue(
        &s.q,
        "http",
        json!({"url": format!("{}/big", s.base)}),
        TaskOptions::default(),
    )
    .await;
    let followed = enqueue(
        &s.q,
        "http",
        json!({"url": format!("{}/redirect-ok", s.base)}),
        TaskOptions::default(),
    )
    .await;

    let rec = wait_final(&s.q, &get_ok).await;
    assert_eq!(rec.status.as_str(), "SUCCESS", "{rec:?}");
    let result = rec.result.unwrap();
    assert_eq!(result["status"], 200);
    assert_eq!(result["body"], json!({"hello": "world"}));
    assert_eq!(result["headers"]["x-test"], "1");
    assert_eq!(result["truncated"], false);

    let result = wait_final(&s.q, &posted).await.result.unwrap();
    assert_eq!(result["body"], json!({"got": {"a": 1}}));

    let result = wait_final(&s.q, &big).await.result.unwrap();
    assert_eq!(result["truncated"], true, "{result}");
    assert_eq!(result["body"].as_str().unwrap().len(), 1000);

    let result = wait_final(&s.q, &followed).await.result.unwrap();
    assert_eq!(
        result["body"],
        json!({"hello": "world"}),
        "a redirect to an allowed host is followed"
    );
}

#[tokio::test]
async fn http_500_is_retried_then_fails_with_http_status() {
    let s = http_setup(1024).await;
    let id = enqueue(&s.q, "http", json!({"url": format!("{}/boom", s.base)}), retries(2)).await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(rec.status.as_str(), "FAILURE");
    assert_eq!(exc_type(&rec), "HttpStatus");
    assert!(
        exc_message(&rec).contains("500") && exc_message(&rec).contains("boom"),
        "{rec:?}"
    );
    assert_eq!(rec.attempts, 3);
    assert_eq!(s.hits.boom.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn http_429_is_retried_after_the_delay_the_server_asks_for() {
    let s = http_setup(1024).await;
    // A backoff of a minute: only Retry-After (0 s) lets the retry come at once.
    let options = TaskOptions {
        retry_backoff: Some(60.0),
        ..retries(1)
    };
    let id = enqueue(&s.q, "http", json!({"url": format!("{}/busy", s.base)}), options).await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec), rec.attempts),
        ("FAILURE", "HttpStatus", 2),
        "{rec:?}"
    );
    assert_eq!(s.hits.busy.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn http_404_fails_at_once_without_retry() {
    let s = http_setup(1024).await;
    let id = enqueue(&s.q, "http", json!({"url": format!("{}/missing", s.base)}), retries(3)).await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec), rec.attempts),
        ("FAILURE", "HttpStatus", 1)
    );
    assert!(exc_message(&rec).contains("404") && exc_message(&rec).contains("no such thing"));
    assert_eq!(s.hits.missing.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn http_timeout_fails_the_attempt_as_retryable() {
    let s = http_setup(1024).await;
    let started = Instant::now();
    let id = enqueue(
        &s.q,
        "http",
        json!({"url": format!("{}/slow", s.base), "timeout_s": 0.3}),
        retries(1),
    )
    .await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec)),
        ("FAILURE", "HttpTimeout"),
        "{rec:?}"
    );
    assert_eq!(rec.attempts, 2, "a timeout is retried");
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
}

#[tokio::test]
async fn http_refuses_hosts_not_allowed_and_redirects_to_them() {
    let s = http_setup(1024).await;
    let port = s.base.rsplit(':').next().unwrap();
    let direct = enqueue(
        &s.q,
        "http",
        json!({"url": format!("http://localhost:{port}/ok")}),
        retries(3),
    )
    .await;
    let redirected = enqueue(
        &s.q,
        "http",
        json!({"url": format!("{}/redirect-away", s.base)}),
        retries(3),
    )
    .await;

    let rec = wait_final(&s.q, &direct).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec), rec.attempts),
        ("FAILURE", "HostNotAllowed", 1)
    );
    assert!(exc_message(&rec).contains("CELERIAC_HTTP_ALLOWED_HOSTS"), "{rec:?}");
    let rec = wait_final(&s.q, &redirected).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec), rec.attempts),
        ("FAILURE", "HostNotAllowed", 1)
    );
    assert!(exc_message(&rec).contains("redirect"), "{rec:?}");
}

// ---------------------------------------------------------------- command

/// A private tree: `media/` (the root) with a file, `outside/`, and a symlink
/// from inside the root to outside it. Removed on drop.
struct Tree(PathBuf);

impl Tree {
    fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("celeriac-it-{}", Uuid::new_v4().simple()));
        std::fs::create_dir_all(dir.join("media")).unwrap();
        std::fs::create_dir_all(dir.join("outside")).unwrap();
        std::fs::write(dir.join("media/abc.txt"), "abc").unwrap();
        std::fs::write(dir.join("outside/secret.txt"), "secret").unwrap();
        std::os::unix::fs::symlink(dir.join("outside"), dir.join("media/escape")).unwrap();
        Self(std::fs::canonicalize(dir).unwrap())
    }

    fn media(&self) -> String {
        self.0.join("media").display().to_string()
    }

    /// The commands file used by these tests.
    fn commands_toml(&self) -> String {
        format!(
            r#"
            [commands.checksum]
            program = "sha256sum"
            args = ["{{input}}"]
            timeout = 10
            [commands.checksum.params.input]
            kind = "path"
            roots = ["{media}"]

            [commands.count]
            program = "seq"
            args = ["-f", "%g/{{total}}", "1", "{{total}}"]
            progress = '^(?P<current>\d+)/(?P<total>\d+)$'
            [commands.count.params.total]
            kind = "int"

            [commands.nap]
            program = "sleep"
            args = ["{{seconds}}"]
            timeout = 0.5
            [commands.nap.params.seconds]
            kind = "string"

            [commands.long_nap]
            program = "sleep"
            args = ["{{seconds}}"]
            [commands.long_nap.params.seconds]
            kind = "string"

            # find forks `sleep` and waits: killing only find would orphan the sleep.
            [commands.spawner]
            program = "find"
            args = ["{{dir}}", "-maxdepth", "0", "-exec", "sleep", "{{seconds}}", ";"]
            [commands.spawner.params.dir]
            kind = "path"
            roots = ["{media}"]
            [commands.spawner.params.seconds]
            kind = "string"

            [commands.environment]
            program = "printenv"
            env = {{ GREETING = "hello" }}

            [commands.echo]
            program = "printf"
            args = ["%s|", "{{word}}"]
            [commands.echo.params.word]
            kind = "string"
            "#,
            media = self.media()
        )
    }

    fn catalog(&self) -> CommandCatalog {
        CommandCatalog::parse(&self.commands_toml(), Path::new("test.toml")).unwrap()
    }
}

impl Drop for Tree {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

struct CmdSetup {
    _redis: TestRedis,
    _worker: InProcessWorker,
    q: Queue,
    tree: Tree,
}

fn cmd_setup() -> CmdSetup {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let tree = Tree::new();
    let mut registry = Registry::with_builtins();
    command::register(&mut registry, tree.catalog());
    let worker = InProcessWorker::start(&redis.url(), &ns, registry, |_| {});
    CmdSetup {
        q: queue_in(&redis, &ns),
        _redis: redis,
        _worker: worker,
        tree,
    }
}

async fn run_command(s: &CmdSetup, command: &str, params: Value, options: TaskOptions) -> Uuid {
    enqueue(&s.q, "command", json!({"command": command, "params": params}), options).await
}

/// Pids whose command line (NUL-joined) contains `marker`.
fn pids_with_cmdline(marker: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).replace('\0', " ").contains(marker))
                .unwrap_or(false)
        })
        .collect()
}

/// (state, process group) from /proc/<pid>/stat, or None once it is gone.
fn stat(pid: i32) -> Option<(char, i32)> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let mut f = rest.split_whitespace();
    let state = f.next()?.chars().next()?;
    let _ppid = f.next()?;
    Some((state, f.next()?.parse().ok()?))
}

fn alive(pid: i32) -> bool {
    stat(pid).is_some_and(|(state, _)| state != 'Z' && state != 'X')
}

fn group_members(pgid: i32) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(_, g)| g == pgid) && alive(*pid))
        .collect()
}

async fn wait_gone(pids: &[i32], timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            Instant::now() < deadline,
            "processes {pids:?} still alive after {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn command_runs_sha256sum_and_returns_exit_code_and_output() {
    let s = cmd_setup();
    let id = run_command(
        &s,
        "checksum",
        json!({"input": format!("{}/abc.txt", s.tree.media())}),
        TaskOptions::default(),
    )
    .await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(rec.status.as_str(), "SUCCESS", "{rec:?}");
    let result = rec.result.unwrap();
    assert_eq!(result["exit_code"], 0);
    assert!(
        result["stdout"]
            .as_str()
            .unwrap()
            .starts_with("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
        "{result}"
    );
    assert_eq!(result["stderr"], "");

    // The worker's environment stays with the worker; the command's own is added.
    let id = run_command(&s, "environment", json!({}), TaskOptions::default()).await;
    let env = wait_final(&s.q, &id).await.result.unwrap()["stdout"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(env.contains("GREETING=hello\n") && env.contains("PATH="), "{env}");
    assert!(!env.contains("CARGO_"), "the test's CARGO_* variables leaked: {env}");

    // Arguments are passed as they are, no shell in between.
    let id = run_command(&s, "echo", json!({"word": "$(id); `id` *"}), TaskOptions::default()).await;
    assert_eq!(wait_final(&s.q, &id).await.result.unwrap()["stdout"], "$(id); `id` *|");
}

#[tokio::test]
async fn command_non_zero_exit_fails_with_command_failed_and_the_stderr_tail() {
    let s = cmd_setup();
    let id = run_command(
        &s,
        "checksum",
        json!({"input": format!("{}/nope.txt", s.tree.media())}),
        TaskOptions::default(),
    )
    .await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec)),
        ("FAILURE", "CommandFailed"),
        "{rec:?}"
    );
    let msg = exc_message(&rec);
    assert!(
        msg.contains("exited with code 1") && msg.contains("No such file"),
        "{msg}"
    );
}

#[tokio::test]
async fn command_stdout_lines_matching_the_progress_regex_update_progress() {
    let s = cmd_setup();
    let id = run_command(&s, "count", json!({"total": 5}), TaskOptions::default()).await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(rec.status.as_str(), "SUCCESS", "{rec:?}");
    assert_eq!(rec.result.unwrap()["stdout"], "1/5\n2/5\n3/5\n4/5\n5/5\n");
    assert_eq!(rec.progress, Some(json!({"current": 5, "total": 5, "message": "5/5"})));
}

#[tokio::test]
async fn command_refuses_every_invalid_request_before_running_and_never_retries() {
    let s = cmd_setup();
    let m = s.tree.media();
    let cases = [
        ("nosuch", json!({}), "unknown command"),
        ("checksum", json!({}), "missing parameter"),
        (
            "checksum",
            json!({"input": format!("{m}/abc.txt"), "extra": 1}),
            "unknown parameter",
        ),
        ("checksum", json!({"input": 42}), "must be a path string"),
        ("count", json!({"total": "5"}), "must be an integer"),
        ("count", json!({"total": -5}), "may not be negative"),
        ("echo", json!({"word": "--help"}), "may not start with '-'"),
        ("checksum", json!({"input": "/etc/passwd"}), "outside the allowed roots"),
        ("checksum", json!({"input": "abc.txt"}), "must be absolute"),
        (
            "checksum",
            json!({"input": format!("{m}/../outside/secret.txt")}),
            "escapes its roots through '..'",
        ),
        (
            "checksum",
            json!({"input": format!("{m}/escape/secret.txt")}),
            "resolves to",
        ),
    ];
    let mut ids = Vec::new();
    for (cmd, params, _) in &cases {
        ids.push(run_command(&s, cmd, params.clone(), retries(3)).await);
    }
    for ((cmd, params, expected), id) in cases.iter().zip(&ids) {
        let rec = wait_final(&s.q, id).await;
        assert_eq!(
            (rec.status.as_str(), exc_type(&rec), rec.attempts),
            ("FAILURE", "InvalidArguments", 1),
            "{cmd} {params}: {rec:?}"
        );
        assert!(
            exc_message(&rec).contains(expected),
            "{cmd} {params}: {}",
            exc_message(&rec)
        );
    }
    // Unknown top-level fields fail the arguments' deserialization, fatally too.
    let id = enqueue(&s.q, "command", json!({"command": "echo", "program": "rm"}), retries(3)).await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!((exc_type(&rec), rec.attempts), ("InvalidArguments", 1));
}

#[tokio::test]
async fn cancelling_a_command_kills_its_whole_process_group() {
    let s = cmd_setup();
    let started = Instant::now();
    let id = run_command(
        &s,
        "spawner",
        json!({"dir": s.tree.media(), "seconds": "30"}),
        TaskOptions::default(),
    )
    .await;
    // find (the group leader) and the sleep it forked.
    let marker = s.tree.0.display().to_string();
    let (leader, members) = loop {
        if let Some(&leader) = pids_with_cmdline(&marker).first() {
            let members = group_members(leader);
            if members.len() >= 2 {
                break (leader, members);
            }
        }
        assert!(started.elapsed() < Duration::from_secs(5), "the command did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(
        stat(leader).unwrap().1,
        leader,
        "the command leads its own process group"
    );
    assert_ne!(leader as u32, std::process::id());

    s.q.cancel(&id).await.unwrap();
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(rec.status.as_str(), "REVOKED", "{rec:?}");
    wait_gone(&members, Duration::from_secs(2)).await;
    assert!(group_members(leader).is_empty());
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
}

#[tokio::test]
async fn the_command_timeout_kills_it_and_fails_with_time_limit_exceeded() {
    let s = cmd_setup();
    let started = Instant::now();
    let id = run_command(&s, "nap", json!({"seconds": "31.4159"}), retries(2)).await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec)),
        ("FAILURE", "TimeLimitExceeded"),
        "{rec:?}"
    );
    assert_eq!(rec.attempts, 1, "a timeout is not retried");
    assert!(exc_message(&rec).contains("timeout of 0.5s"), "{}", exc_message(&rec));
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    wait_gone(&pids_with_cmdline("sleep 31.4159"), Duration::from_secs(2)).await;
}

#[tokio::test]
async fn the_task_hard_time_limit_drops_the_command_and_still_kills_its_group() {
    let s = cmd_setup();
    let options = TaskOptions {
        time_limit: Some(0.5),
        ..TaskOptions::default()
    };
    let id = run_command(&s, "long_nap", json!({"seconds": "32.7182"}), options).await;
    let rec = wait_final(&s.q, &id).await;
    assert_eq!(
        (rec.status.as_str(), exc_type(&rec)),
        ("FAILURE", "TimeLimitExceeded"),
        "{rec:?}"
    );
    // Dropped by the executor: SIGTERM at once (SIGKILL would follow after the grace).
    wait_gone(&pids_with_cmdline("sleep 32.7182"), Duration::from_secs(2)).await;
}

// ---------------------------------------------------------------- the binary

/// A child process killed on drop.
struct ChildGuard(std::process::Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test]
async fn the_worker_binary_takes_celery_short_flags_and_offers_both_tasks() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let tree = Tree::new();
    let file = tree.0.join("commands.toml");
    std::fs::write(&file, tree.commands_toml()).unwrap();
    let (port, _) = test_server().await;
    let allowed = format!("127.0.0.1:{port}");
    let name = format!("encode-{}", &Uuid::new_v4().simple().to_string()[..6]);
    let file_arg = file.display().to_string();
    // Started by hand: the harness's Worker passes --name, and -n must be the only one.
    let health_port = crate::helpers::free_port().to_string();
    let _worker = ChildGuard(
        std::process::Command::new(env!("CARGO_BIN_EXE_celeriac-worker"))
            .args(["-Q", "encoding", "-c", "1", "-n", &name, "-l", "WARNING"])
            .args(["--commands-file", &file_arg, "--http-allowed-hosts", &allowed])
            .args(["--health-port", &health_port])
            .env("CELERIAC_BROKER_URL", redis.url())
            .env("CELERIAC_NAMESPACE", &ns)
            .env_remove("RUST_LOG")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let health = format!("http://127.0.0.1:{health_port}/healthz");
    let deadline = Instant::now() + Duration::from_secs(10);
    while reqwest::get(&health).await.map(|r| r.status() != 200).unwrap_or(true) {
        assert!(Instant::now() < deadline, "the worker did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let q = queue_in(&redis, &ns);

    let mut task = NewTask::new(
        "command",
        json!({"command": "checksum", "params": {"input": format!("{}/abc.txt", tree.media())}}),
    );
    task.queue = "encoding".to_owned();
    let checksum = q.enqueue(&task, false).await.unwrap().id;
    let mut task = NewTask::new("http", json!({"url": format!("http://{allowed}/ok")}));
    task.queue = "encoding".to_owned();
    let fetched = q.enqueue(&task, false).await.unwrap().id;

    let rec = wait_final(&q, &checksum).await;
    assert_eq!(rec.status.as_str(), "SUCCESS", "{rec:?}");
    assert_eq!(rec.worker.as_deref(), Some(name.as_str()), "-n names the worker");
    let rec = wait_final(&q, &fetched).await;
    assert_eq!(rec.result.unwrap()["body"], json!({"hello": "world"}));
    let names = q.registered_task_names().await.unwrap();
    assert!(
        names.contains(&"command".to_owned()) && names.contains(&"http".to_owned()),
        "{names:?}"
    );
}

#[tokio::test]
async fn the_worker_binary_refuses_a_bad_commands_file_and_skips_a_missing_one() {
    let redis = TestRedis::start();
    let tree = Tree::new();
    let bad = tree.0.join("bad.toml");
    std::fs::write(&bad, "[commands.x]\nprogram = 'no-such-program-celeriac'\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_celeriac-worker"))
        .arg("--commands-file")
        .arg(&bad)
        .env("CELERIAC_BROKER_URL", redis.url())
        .env("CELERIAC_NAMESPACE", unique_ns())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("invalid command \"x\"") && stderr.contains("not found on PATH"),
        "{stderr}"
    );

    let ns = unique_ns();
    let missing = tree.0.join("missing.toml").display().to_string();
    let _worker = Worker::start(&redis.url(), &ns, &["--commands-file", &missing]).await;
    // Health answers before the registration lands: wait for it.
    let q = queue_in(&redis, &ns);
    let deadline = Instant::now() + Duration::from_secs(5);
    let names = loop {
        let names = q.registered_task_names().await.unwrap();
        if !names.is_empty() || Instant::now() > deadline {
            break names;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        names.contains(&"http".to_owned()) && !names.contains(&"command".to_owned()),
        "{names:?}"
    );
}
