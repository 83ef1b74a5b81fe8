//! Operations (issue 8): worker status, running tasks, live events, metrics,
//! request ids and the inspect CLI, against real binaries and a real Redis.

use std::time::{Duration, Instant};

use futures_util::StreamExt;
use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, Worker, api_cli, unique_ns};

/// Fast heartbeats: NOT_RESPONDING after 1.5 s of silence.
const FAST: [&str; 6] = [
    "--heartbeat-secs",
    "0.5",
    "--lease-secs",
    "3",
    "--health-host",
    "127.0.0.1",
];

async fn get_json(api: &Api, path: &str) -> (u16, Value) {
    let resp = api.http.get(api.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// Polls `GET /workers/{name}` until its status is `want`; returns the view.
async fn wait_status(api: &Api, name: &str, want: &str, within: Duration) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, w) = get_json(api, &format!("/workers/{name}")).await;
        if w["status"] == want {
            return w;
        }
        assert!(Instant::now() < deadline, "{name} not {want} within {within:?}: {w}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_frozen_worker_is_not_responding_and_a_killed_one_becomes_stopped() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &["--worker-stopped-secs", "3"]).await;
    let worker = Worker::start(&redis.url(), &ns, &FAST).await;
    let online = wait_status(&api, &worker.name, "ONLINE", Duration::from_secs(5)).await;
    assert_eq!(online["pid"], worker.proc.pid());
    assert_eq!(online["heartbeat_s"], 0.5);
    assert_eq!(online["queues"], json!(["default"]));
    assert!(
        online["version"].is_string() && online["hostname"].is_string(),
        "{online}"
    );

    worker.proc.signal("STOP");
    let frozen = Instant::now();
    wait_status(&api, &worker.name, "NOT_RESPONDING", Duration::from_secs(5)).await;
    assert!(
        frozen.elapsed() >= Duration::from_millis(1000),
        "judged silent too soon"
    );

    worker.proc.signal("KILL");
    wait_status(&api, &worker.name, "STOPPED", Duration::from_secs(6)).await;
    let (_, all) = get_json(&api, "/workers").await;
    assert_eq!(all["workers"].as_array().unwrap().len(), 1, "{all}");
}

#[tokio::test]
async fn a_terminated_worker_is_stopped_at_once_then_pruned_after_retention() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &["--worker-retention-secs", "2"]).await;
    let mut worker = Worker::start(&redis.url(), &ns, &FAST).await;
    wait_status(&api, &worker.name, "ONLINE", Duration::from_secs(5)).await;

    worker.proc.signal("TERM");
    worker.proc.wait_exit(Duration::from_secs(10)).unwrap();
    let (_, w) = get_json(&api, &format!("/workers/{}", worker.name)).await;
    assert_eq!(w["status"], "STOPPED", "{w}");

    use redis::Commands;
    let entries: redis::streams::StreamRangeReply = redis.conn().xrange_all(format!("{{{ns}}}:events")).unwrap();
    let kinds: Vec<String> = entries.ids.iter().filter_map(|e| e.get("event")).collect();
    assert_eq!(kinds, ["worker-online", "worker-offline"]);

    tokio::time::sleep(Duration::from_millis(2200)).await;
    let (status, _) = get_json(&api, &format!("/workers/{}", worker.name)).await;
    assert_eq!(status, 404);
    let left: Vec<String> = redis.conn().zrange(format!("{{{ns}}}:workers"), 0, -1).unwrap();
    assert!(left.is_empty(), "pruned from the index: {left:?}");
    let exists: bool = redis.conn().exists(format!("{{{ns}}}:worker:{}", worker.name)).unwrap();
    assert!(!exists);
}

#[tokio::test]
async fn running_tasks_are_listed_per_worker_per_queue_and_by_the_cli() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let worker = Worker::start(&redis.url(), &ns, &["--queues", "media", "--concurrency", "2"]).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(
            api.enqueue(json!({"name": "sleep", "args": {"seconds": 3}, "queue": "media"}))
                .await,
        );
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let w = loop {
        let (_, w) = get_json(&api, &format!("/workers/{}", worker.name)).await;
        if w["active"].as_array().is_some_and(|a| a.len() == 2) {
            break w;
        }
        assert!(Instant::now() < deadline, "two tasks not active: {w}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(w["reserved"], json!([]));
    for a in w["active"].as_array().unwrap() {
        assert!(ids.contains(&a["task_id"].as_str().unwrap().to_owned()), "{a}");
        assert_eq!(a["name"], "sleep");
        assert_eq!(a["queue"], "media");
        assert!(
            a["started_at"].is_string() && a["runtime_s"].as_f64().unwrap() >= 0.0,
            "{a}"
        );
    }
    let (_, q) = get_json(&api, "/queues/media").await;
    assert_eq!(
        (q["name"].clone(), q["ready"].clone(), q["running"].clone()),
        (json!("media"), json!(1), json!(2)),
        "{q}"
    );
    assert_eq!(q["workers"], 1, "{q}");
    assert!(q["oldest_ready_age_s"].as_f64().unwrap() > 0.0, "{q}");
    for zero in ["paused", "dead", "completed_last_min"] {
        assert_eq!(q[zero], 0, "{zero}: {q}");
    }
    assert_eq!(q["enqueued_last_min"], 3, "{q}");
    assert_eq!(q["is_paused"], false);

    let (code, table, _) = api_cli("inspect", &redis.url(), &ns, &["active"]);
    assert_eq!(code, 0);
    assert!(table.starts_with("TASK ID"), "{table}");
    assert_eq!(table.lines().count(), 3, "{table}");
    let (code, json_out, _) = api_cli("inspect", &redis.url(), &ns, &["active", "--json"]);
    assert_eq!(code, 0);
    let active: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(active.as_array().unwrap().len(), 2);
    assert_eq!(active[0]["worker"], worker.name.as_str());
    let (_, workers, _) = api_cli("inspect", &redis.url(), &ns, &["workers", "--json"]);
    let workers: Value = serde_json::from_str(&workers).unwrap();
    assert_eq!(workers[0]["status"], "ONLINE");
    let (_, reserved, _) = api_cli("inspect", &redis.url(), &ns, &["reserved", "--json"]);
    assert_eq!(reserved.trim(), "[]");
    let (_, queues, _) = api_cli("inspect", &redis.url(), &ns, &["queues"]);
    assert!(queues.lines().nth(1).unwrap().starts_with("media"), "{queues}");
    let (_, registered, _) = api_cli("inspect", &redis.url(), &ns, &["registered"]);
    assert!(registered.lines().any(|l| l == "sleep"), "{registered}");
}

#[tokio::test]
async fn the_cli_fails_fast_with_one_line_when_redis_is_unreachable() {
    let port = crate::helpers::free_port();
    let began = Instant::now();
    let (code, out, err) = api_cli("inspect", &format!("redis://127.0.0.1:{port}"), "x", &["workers"]);
    assert_ne!(code, 0);
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("cannot reach redis"), "{err}");
    assert!(began.elapsed() < Duration::from_secs(5));
}

/// A minimal SSE reader: (id, event, data) of each event.
struct Sse {
    stream: futures_util::stream::BoxStream<'static, reqwest::Result<Vec<u8>>>,
    buf: String,
}

impl Sse {
    async fn open(api: &Api, query: &str, last_event_id: Option<&str>) -> Self {
        let mut req = api.http.get(api.url(&format!("/events{query}")));
        if let Some(id) = last_event_id {
            req = req.header("Last-Event-ID", id);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), 200);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/event-stream")
        );
        Self {
            stream: resp.bytes_stream().map(|r| r.map(|b| b.to_vec())).boxed(),
            buf: String::new(),
        }
    }

    async fn next(&mut self) -> (String, String, Value) {
        loop {
            if let Some(end) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..end + 2).collect();
                let (mut id, mut event, mut data) = (String::new(), String::new(), Value::Null);
                for line in block.lines() {
                    if let Some(v) = line.strip_prefix("id: ") {
                        id = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("event: ") {
                        event = v.to_owned();
                    } else if let Some(v) = line.strip_prefix("data: ") {
                        data = serde_json::from_str(v).unwrap();
                    }
                }
                if !id.is_empty() {
                    return (id, event, data);
                }
                continue;
            }
            let chunk = tokio::time::timeout(Duration::from_secs(10), self.stream.next())
                .await
                .expect("an event within 10 s")
                .expect("stream open")
                .unwrap();
            self.buf.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}

#[tokio::test]
async fn sse_gives_a_tasks_transitions_in_order_and_resumes_after_last_event_id() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--queues", "q1"]).await;

    let mut sse = Sse::open(&api, "?queue=q1", None).await;
    let first = api
        .enqueue(json!({"name": "add", "args": {"x": 1, "y": 2}, "queue": "q1"}))
        .await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(sse.next().await);
    }
    let kinds: Vec<&str> = seen.iter().map(|(_, e, _)| e.as_str()).collect();
    assert_eq!(kinds, ["task-sent", "task-started", "task-succeeded"]);
    for (_, _, data) in &seen {
        assert_eq!(data["task_id"], first.as_str());
        assert_eq!(data["name"], "add");
        assert_eq!(data["queue"], "q1");
        assert!(chrono::DateTime::parse_from_rfc3339(data["timestamp"].as_str().unwrap()).is_ok());
    }
    assert_eq!(seen[2].2["status"], "SUCCESS");
    drop(sse);

    // Reconnect after the first event: the two missed ones, then live ones, once each.
    let mut resumed = Sse::open(&api, "?queue=q1", Some(&seen[0].0)).await;
    let second = api
        .enqueue(json!({"name": "add", "args": {"x": 2, "y": 2}, "queue": "q1"}))
        .await;
    let mut again = Vec::new();
    for _ in 0..5 {
        again.push(resumed.next().await);
    }
    let ids: Vec<&str> = again.iter().map(|(id, _, _)| id.as_str()).collect();
    assert_eq!(&ids[..2], [seen[1].0.as_str(), seen[2].0.as_str()]);
    let tasks: Vec<&str> = again.iter().map(|(_, _, d)| d["task_id"].as_str().unwrap()).collect();
    assert_eq!(
        tasks,
        [
            first.as_str(),
            first.as_str(),
            second.as_str(),
            second.as_str(),
            second.as_str()
        ]
    );
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len(), 5, "no duplicates: {ids:?}");

    // Filters: only one type.
    let mut only = Sse::open(&api, "?type=task-succeeded", Some(&seen[0].0)).await;
    let (_, kind, data) = only.next().await;
    assert_eq!(
        (kind.as_str(), data["task_id"].as_str().unwrap()),
        ("task-succeeded", first.as_str())
    );
    let (_, kind, data) = only.next().await;
    assert_eq!(
        (kind.as_str(), data["task_id"].as_str().unwrap()),
        ("task-succeeded", second.as_str())
    );

    // Two open streams share one reader; with none left, the reader stops (idle = no traffic).
    // The server learns that a client left when it next writes to it: events make it write.
    assert_eq!(event_readers(&redis), 1);
    drop((resumed, only));
    let deadline = Instant::now() + Duration::from_secs(10);
    while event_readers(&redis) > 0 {
        assert!(
            Instant::now() < deadline,
            "the events reader still runs without listeners"
        );
        api.enqueue(json!({"name": "add", "args": {"x": 0, "y": 0}, "queue": "q1"}))
            .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn sse_filters_that_could_never_match_are_refused() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    for (query, code) in [
        ("?queue=..%2Fx", "invalid_queue"),
        ("?queue=a%20b", "invalid_queue"),
        ("?task_id=nope", "invalid_task_id"),
        ("?type=succeeded", "invalid_type"),
        ("?type=task-succeeded,task_failed", "invalid_type"),
    ] {
        let (status, body) = get_json(&api, &format!("/events{query}")).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some(code)),
            "{query}: {body}"
        );
    }
    // A task id in capitals is the same task.
    let id = api.enqueue(json!({"name": "noop", "queue": "nobody"})).await;
    let mut sse = Sse::open(&api, &format!("?task_id={}", id.to_uppercase()), Some("0-1")).await;
    let (_, kind, data) = sse.next().await;
    assert_eq!(
        (kind.as_str(), data["task_id"].as_str()),
        ("task-sent", Some(id.as_str()))
    );
}

/// Connections of events readers (named by `CLIENT SETNAME`).
fn event_readers(redis: &TestRedis) -> usize {
    let list: String = redis::cmd("CLIENT").arg("LIST").query(&mut redis.conn()).unwrap();
    list.lines().filter(|l| l.contains("name=celeriac-events ")).count()
}

/// The value of the first metric line starting with `prefix`.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn metrics_move_with_the_work_done_and_requests_carry_an_id() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let worker = Worker::start(&redis.url(), &ns, &["--queues", "m"]).await;
    let scrape = |url: String| async move { reqwest::get(url).await.unwrap().text().await.unwrap() };

    let before = scrape(api.url("/metrics")).await;
    let route = r#"celeriac_http_requests_total{method="POST",route="/tasks",status="202"}"#;
    assert_eq!(metric(&before, route), 0.0);
    assert_eq!(metric(&before, r#"celeriac_workers{status="ONLINE"}"#), 1.0, "{before}");

    let ok = api
        .enqueue(json!({"name": "add", "args": {"x": 1, "y": 1}, "queue": "m"}))
        .await;
    let bad = api.enqueue(json!({"name": "fail", "queue": "m"})).await;
    api.wait_task(&ok, 10).await;
    api.wait_task(&bad, 10).await;
    let (status, _) = api.get_task(&ok).await;
    assert_eq!(status, 200);

    let after = scrape(api.url("/metrics")).await;
    assert_eq!(metric(&after, route), 2.0, "{after}");
    let by_template = r#"celeriac_http_requests_total{method="GET",route="/tasks/:task_id",status="200"}"#;
    assert!(metric(&after, by_template) >= 1.0, "{after}");
    assert!(!after.contains(&ok), "raw paths never become labels");
    assert!(after.contains(r#"celeriac_queue_ready{queue="m"} 0"#), "{after}");
    assert!(
        after.contains("celeriac_http_request_duration_seconds_bucket"),
        "{after}"
    );

    let w = scrape(worker.health_url("/metrics")).await;
    let success = r#"celeriac_tasks_total{name="add",queue="m",outcome="success"}"#;
    let failure = r#"celeriac_tasks_total{name="fail",queue="m",outcome="failure"}"#;
    assert_eq!((metric(&w, success), metric(&w, failure)), (1.0, 1.0), "{w}");
    assert_eq!(
        metric(&w, r#"celeriac_task_duration_seconds_count{name="add",queue="m"}"#),
        1.0,
        "{w}"
    );
    assert_eq!(metric(&w, "celeriac_tasks_running"), 0.0, "{w}");

    // Request ids: a sane incoming one is kept, anything else replaced.
    let resp = api
        .http
        .get(api.url("/healthz"))
        .header("x-request-id", "req-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "req-42");
    let resp = api
        .http
        .get(api.url("/healthz"))
        .header("x-request-id", "bad id!")
        .send()
        .await
        .unwrap();
    let id = resp.headers()["x-request-id"].to_str().unwrap();
    assert!(uuid::Uuid::parse_str(id).is_ok(), "{id}");
}
