//! The HTTP contract, against the real binaries.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, Worker, started_ids, unique_ns};

#[tokio::test]
async fn the_classic_curl_flow_adds_two_random_numbers() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "2"]).await;

    // curl -X POST /tasks (no body, no content type)
    let resp = api.http.post(api.url("/tasks")).send().await.unwrap();
    assert_eq!(resp.status(), 202);
    let location = resp.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = resp.json().await.unwrap();
    let id = body["task_id"].as_str().unwrap();
    assert_eq!(location, format!("/tasks/{id}"));

    let task = api.wait_task(id, 10).await;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    let (x, y) = (task["args"]["x"].as_i64().unwrap(), task["args"]["y"].as_i64().unwrap());
    assert!((0..=100).contains(&x) && (0..=100).contains(&y));
    assert_eq!(task["result"], x + y);
    assert_eq!(task["traceback"], Value::Null);
    assert_eq!(task["children"], json!([]));
    assert_eq!(task["name"], "add");
    assert_eq!(task["queue"], "default");
    assert_eq!(task["attempts"], 1);
    assert_eq!(task["worker"], _worker.name);
    for field in ["created_at", "started_at", "finished_at"] {
        assert!(task[field].is_string(), "{field} missing: {task}");
    }
}

#[tokio::test]
async fn named_tasks_run_with_their_arguments() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &[]).await;

    let add = api.enqueue(json!({"name": "add", "args": [2, 40]})).await;
    let echo = api
        .enqueue(json!({"name": "echo", "args": {"hello": ["world", 1]}}))
        .await;
    let noop = api.enqueue(json!({"name": "noop"})).await;
    let fail = api.enqueue(json!({"name": "fail", "args": {"message": "boom"}})).await;

    assert_eq!(api.wait_task(&add, 10).await["result"], 42);
    assert_eq!(api.wait_task(&echo, 10).await["result"], json!({"hello": ["world", 1]}));
    let noop = api.wait_task(&noop, 10).await;
    assert_eq!(
        (noop["status"].as_str(), &noop["result"]),
        (Some("SUCCESS"), &Value::Null)
    );
    let fail = api.wait_task(&fail, 10).await;
    assert_eq!(fail["status"], "FAILURE");
    assert_eq!(fail["result"], json!({"exc_type": "TaskFailed", "exc_message": "boom"}));
    let traceback = fail["traceback"].as_str().unwrap();
    assert!(traceback.starts_with("TaskFailed: boom"), "{traceback}");
}

/// `POST /tasks` requests that arrive together each get their own answer (one
/// multiplexed Redis connection carries them all): an unknown name only its own
/// 422, and each task runs with its own arguments.
#[tokio::test]
async fn concurrent_posts_each_get_their_own_task() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let unknown = |i: usize| i % 10 == 3;
    let posts = (0..60).map(|i| {
        let body = if unknown(i) {
            json!({"name": "transcode"})
        } else {
            json!({"name": "echo", "args": {"i": i}})
        };
        api.post_json("/tasks", body)
    });
    let answers = futures_util::future::join_all(posts).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "8"]).await;
    let mut ids = std::collections::HashSet::new();
    for (i, (status, body)) in answers.iter().enumerate() {
        if unknown(i) {
            assert_eq!(
                (*status, &body["error"]["code"]),
                (422, &json!("unknown_task")),
                "{body}"
            );
            continue;
        }
        assert_eq!(*status, 202, "{body}");
        let id = body["task_id"].as_str().unwrap();
        assert!(ids.insert(id.to_owned()), "task id {id} given twice");
        let task = api.wait_task(id, 20).await;
        assert_eq!(task["status"], "SUCCESS", "{task}");
        assert_eq!(task["result"], json!({"i": i}));
    }
    assert_eq!(ids.len(), 54);
}

#[tokio::test]
async fn unknown_ids_are_404_not_pending() {
    let redis = TestRedis::start();
    let api = Api::start(&redis.url(), &unique_ns(), &[]).await;
    for id in [uuid::Uuid::new_v4().to_string(), "not-a-uuid".to_owned()] {
        let (status, body) = api.get_task(&id).await;
        assert_eq!(status, 404);
        assert_eq!(body["error"]["code"], "not_found");
    }
}

#[tokio::test]
async fn invalid_requests_get_json_errors_with_the_right_status() {
    let redis = TestRedis::start();
    let api = Api::start(&redis.url(), &unique_ns(), &["--max-body-bytes", "1024"]).await;
    let post = |body: &'static [u8]| api.http.post(api.url("/tasks")).body(body).send();

    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"{\"name\": ", 400, "bad_json"),
        (b"\xff\xfe garbage", 400, "bad_json"),
        (b"[1, 2", 400, "bad_json"),
        (b"42", 422, "invalid_task"),
        (b"{}", 422, "invalid_task"),
        (b"{\"name\": [\"noop\"]}", 422, "invalid_task"),
        (b"{\"name\": \"noop\", \"priority\": 12}", 422, "invalid_task"),
        (b"{\"name\": \"noop\", \"countdown\": -1}", 422, "invalid_task"),
        (b"{\"name\": \"noop\", \"eta\": \"tomorrow\"}", 422, "invalid_task"),
        (b"{\"name\": \"noop\", \"colour\": \"red\"}", 422, "invalid_task"),
        (b"{\"name\": \"noop\", \"queue\": \"a{b}\"}", 422, "invalid_queue"),
        (b"{\"name\": \"add\", \"args\": {\"x\": \"one\"}}", 422, "invalid_args"),
        (b"{\"name\": \"sleep\", \"args\": \"long\"}", 422, "invalid_args"),
        (b"{\"name\": \"transcode\"}", 422, "unknown_task"),
    ];
    for (body, status, code) in cases {
        let resp = post(body).await.unwrap();
        assert_eq!(
            resp.status().as_u16(),
            status,
            "body {:?}",
            String::from_utf8_lossy(body)
        );
        let json: Value = resp.json().await.unwrap();
        assert_eq!(
            json["error"]["code"],
            code,
            "body {:?}: {json}",
            String::from_utf8_lossy(body)
        );
        assert!(json["error"]["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    // Unknown names list what can be enqueued.
    let (_, body) = api.post_task(json!({"name": "transcode"})).await;
    let known: Vec<&str> = body["error"]["known_tasks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(known, ["add", "echo", "fail", "noop", "sleep"]);

    // Over the body limit: 413, whether the length is announced or streamed.
    let big = format!("{{\"name\": \"echo\", \"args\": \"{}\"}}", "x".repeat(2000));
    let resp = api.http.post(api.url("/tasks")).body(big.clone()).send().await.unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "payload_too_large"
    );
    let stream = futures_util::stream::iter(vec![Ok::<_, std::io::Error>(big.into_bytes())]);
    let resp = api
        .http
        .post(api.url("/tasks"))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);

    // Other routes and methods answer JSON errors too.
    for (method, path, status) in [
        ("GET", "/nope", 404),
        ("DELETE", "/healthz", 405),
        ("GET", "/tasks/x?wait=600", 400),
        ("GET", "/tasks/x?wait=soon", 400),
        ("GET", "/queues/a%7Bb", 400),
    ] {
        let resp = api.send(method, path).await;
        assert_eq!(resp.status().as_u16(), status, "{method} {path}");
        let json: Value = resp.json().await.unwrap();
        assert!(json["error"]["code"].is_string(), "{method} {path}: {json}");
    }

    // A 405 says which methods the resource has (RFC 9110).
    let task = format!("/tasks/{}", uuid::Uuid::new_v4());
    for (method, path, allowed) in [
        ("DELETE", "/healthz", vec!["GET"]),
        ("PUT", task.as_str(), vec!["DELETE", "GET"]),
        ("GET", "/tasks/batch", vec!["POST"]),
    ] {
        let resp = api.send(method, path).await;
        assert_eq!(resp.status(), 405, "{method} {path}");
        let allow = resp.headers().get("allow").map(|v| v.to_str().unwrap().to_owned());
        let mut got: Vec<String> = allow
            .unwrap_or_else(|| panic!("{method} {path}: no Allow header"))
            .split(", ")
            .map(str::to_owned)
            .collect();
        got.sort();
        assert_eq!(got, allowed, "{method} {path}");
    }
}

#[tokio::test]
async fn names_registered_by_a_worker_or_allowed_by_the_operator_are_accepted() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let strict = Api::start(&redis.url(), &ns, &[]).await;
    let lenient = Api::start(&redis.url(), &ns, &["--allow-unknown-tasks"]).await;

    assert_eq!(strict.post_task(json!({"name": "transcode"})).await.0, 422);
    let id = lenient.enqueue(json!({"name": "transcode", "queue": "media"})).await;
    assert_eq!(strict.get_task(&id).await.1["status"], "PENDING");

    // A custom worker registers its names in Redis; the strict API then accepts them.
    redis::cmd("SADD")
        .arg(celeriac::redis::keys::Keys::new(&ns).task_names())
        .arg("transcode")
        .query::<()>(&mut redis.conn())
        .unwrap();
    assert_eq!(strict.post_task(json!({"name": "transcode"})).await.0, 202);
}

#[tokio::test]
async fn wait_returns_as_soon_as_the_task_finishes() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &[]).await;

    let id = api.enqueue(json!({"name": "sleep", "args": {"seconds": 0.5}})).await;
    let started = Instant::now();
    let task = api.wait_task(&id, 30).await;
    let took = started.elapsed();
    assert_eq!(task["status"], "SUCCESS");
    assert!(
        took >= Duration::from_millis(300),
        "returned before the task could finish: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "held too long after the task finished: {took:?}"
    );

    // A wait on a task that is final already is answered by one read: no SUBSCRIBE.
    let subscribes = |redis: &TestRedis| -> u64 {
        let stats: String = redis::cmd("INFO").arg("commandstats").query(&mut redis.conn()).unwrap();
        stats
            .lines()
            .find_map(|l| l.strip_prefix("cmdstat_subscribe:calls="))
            .map_or(0, |rest| rest.split(',').next().unwrap().parse().unwrap())
    };
    let before = subscribes(&redis);
    let started = Instant::now();
    assert_eq!(api.wait_task(&id, 30).await["status"], "SUCCESS");
    assert!(started.elapsed() < Duration::from_secs(1), "{:?}", started.elapsed());
    assert_eq!(subscribes(&redis), before);

    // A task that does not finish in time: the wait ends at its limit with the current state.
    let id = api.enqueue(json!({"name": "sleep", "args": {"seconds": 20}})).await;
    let started = Instant::now();
    let task = api.wait_task(&id, 1).await;
    let took = started.elapsed();
    assert!(
        ["PENDING", "STARTED"].contains(&task["status"].as_str().unwrap()),
        "{task}"
    );
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(3),
        "{took:?}"
    );
}

#[tokio::test]
async fn countdown_delays_the_start_and_priority_orders_the_queue() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;

    // Queue first, then start one single-slot worker: order is by priority, then FIFO.
    let low = api.enqueue(json!({"name": "noop", "priority": 1})).await;
    let high = api.enqueue(json!({"name": "noop", "priority": 9})).await;
    let low2 = api.enqueue(json!({"name": "noop", "priority": 1})).await;
    let delayed = api
        .enqueue(json!({"name": "noop", "countdown": 1.5, "priority": 9}))
        .await;
    let enqueued_at = Instant::now();
    let queue: Value = api
        .http
        .get(api.url("/queues/default"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        [&queue["queue"], &queue["ready"], &queue["delayed"]],
        [&json!("default"), &json!(3), &json!(1)],
        "{queue}"
    );

    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "1"]).await;
    for id in [&low, &high, &low2] {
        assert_eq!(api.wait_task(id, 10).await["status"], "SUCCESS");
    }
    // The events stream records the starts in order (timestamps can tie within a ms).
    let order: Vec<String> = started_ids(&redis, &ns)
        .into_iter()
        .filter(|id| [&low, &high, &low2].contains(&id))
        .collect();
    assert_eq!(order, [high.clone(), low.clone(), low2.clone()]);

    let (_, before) = api.get_task(&delayed).await;
    if enqueued_at.elapsed() < Duration::from_millis(1300) {
        assert_eq!(before["status"], "PENDING", "delayed task started early");
    }
    assert!(before["eta"].is_string());
    let t = api.wait_task(&delayed, 10).await;
    assert_eq!(t["status"], "SUCCESS");
    // A final task keeps no eta (it waits for nothing): the one it had while waiting.
    assert!(t["eta"].is_null(), "{t}");
    let eta = chrono::DateTime::parse_from_rfc3339(before["eta"].as_str().unwrap()).unwrap();
    let started = chrono::DateTime::parse_from_rfc3339(t["started_at"].as_str().unwrap()).unwrap();
    let late = started - eta;
    assert!(late >= chrono::Duration::zero(), "started {late} before its eta");
    assert!(
        late < chrono::Duration::milliseconds(1000),
        "started {late} after its eta"
    );
}

#[tokio::test]
async fn failing_tasks_retry_then_fail_keeping_every_error() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &[]).await;

    let id = api
        .enqueue(json!({"name": "fail", "args": {"message": "flaky"}, "max_retries": 1}))
        .await;
    let retry = api
        .wait_until(&id, Duration::from_secs(10), |t| t["status"] == "RETRY")
        .await;
    assert_eq!(retry["errors"].as_array().unwrap().len(), 1, "{retry}");
    let t = api.wait_task(&id, 20).await;
    assert_eq!(t["status"], "FAILURE", "{t}");
    assert_eq!(t["attempts"], 2);
    assert_eq!(t["retries"], 1);
    let errors = t["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(errors[0]["attempt"], 1);
    assert_eq!(errors[1]["attempt"], 2);
    assert_eq!(errors[1]["error"]["exc_type"], "TaskFailed");
}

#[tokio::test]
async fn docs_and_openapi_spec_are_served() {
    let redis = TestRedis::start();
    let api = Api::start(&redis.url(), &unique_ns(), &[]).await;
    let spec: Value = api
        .http
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/tasks",
        "/tasks/{task_id}",
        "/queues",
        "/queues/{name}",
        "/healthz",
        "/readyz",
    ] {
        assert!(spec["paths"][path].is_object(), "{path} missing from the spec");
    }
    let docs = api.http.get(api.url("/docs")).send().await.unwrap();
    assert_eq!(docs.status(), 200);
    assert!(docs.text().await.unwrap().contains("swagger"));
}

/// Threads of a process whose name says they are tokio's runtime workers.
fn runtime_threads(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.starts_with("tokio-rt-worker"))
        .count()
}

#[tokio::test]
async fn the_worker_runs_on_as_many_threads_as_it_is_told() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let one = Worker::start(&redis.url(), &ns, &["--threads", "1"]).await;
    let id = api.enqueue(json!({"name": "add", "args": {"x": 1, "y": 2}})).await;
    assert_eq!(api.wait_task(&id, 10).await["result"], 3);
    let three = Worker::start(&redis.url(), &ns, &["--threads", "3"]).await;
    // Blocking-pool threads share the name and come and go: compare, do not count exactly.
    let (t1, t3) = (runtime_threads(one.proc.pid()), runtime_threads(three.proc.pid()));
    assert!(
        t1 >= 1 && t3 >= t1 + 2,
        "threads: {t1} with --threads 1, {t3} with --threads 3"
    );

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_celeriac-worker"))
        .env("CELERIAC_WORKER_THREADS", "0")
        .env("CELERIAC_BROKER_URL", redis.url())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--threads"));
}
