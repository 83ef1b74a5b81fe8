//! Bugs found by trying the API as a new user would: long polls across a Redis
//! stall, ids written another way, pre-1970 times, unsafe names, nullable
//! fields in the spec, over-long URIs, and the 503 of an enqueue during a stall.

use std::time::{Duration, Instant};

use celeriac::tasks::Registry;
use serde_json::{Value, json};

use crate::helpers::{Api, InProcessWorker, TestRedis, unique_ns};

#[tokio::test]
async fn long_polls_open_across_a_redis_stall_all_wake_when_the_task_finishes() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let id = api.enqueue(json!({"name": "noop", "queue": "stalled"})).await;

    // 100 long polls wait on a task nobody consumes yet.
    let polls: Vec<_> = (0..100)
        .map(|_| {
            let (http, url) = (api.http.clone(), api.url(&format!("/tasks/{id}?wait=20")));
            tokio::spawn(async move {
                let resp = http.get(url).send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Redis hangs; a new poll fails its SUBSCRIBE (503), which used to drop the others' subscriptions.
    redis.signal("STOP");
    let other = api
        .http
        .get(api.url(&format!("/tasks/{id}?wait=5")))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), 503);
    tokio::time::sleep(Duration::from_secs(2)).await;
    redis.signal("CONT");

    let thawed = Instant::now();
    let _worker = InProcessWorker::start(&redis.url(), &ns, Registry::with_builtins(), |cfg| {
        cfg.queues = vec!["stalled".to_owned()];
    });
    for poll in polls {
        let (status, body) = poll.await.unwrap();
        assert_eq!((status, body["status"].as_str()), (200, Some("SUCCESS")), "{body}");
    }
    // Woken by the completion, not by their 20 s deadline.
    assert!(thawed.elapsed() < Duration::from_secs(10), "{:?}", thawed.elapsed());
}

#[tokio::test]
async fn long_polls_on_ids_written_another_way_wake_on_completion() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = InProcessWorker::start(&redis.url(), &ns, Registry::with_builtins(), |_| {});

    let id = api.enqueue(json!({"name": "noop", "countdown": 1.5})).await;
    let simple = id.replace('-', "");
    let forms = [
        id.to_uppercase(),
        simple.clone(),
        format!("urn:uuid:{id}"),
        format!("%7B{id}%7D"),
    ];
    let started = Instant::now();
    let polls: Vec<_> = forms
        .iter()
        .map(|form| {
            let (http, url) = (api.http.clone(), api.url(&format!("/tasks/{form}?wait=20")));
            tokio::spawn(async move {
                let resp = http.get(url).send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            })
        })
        .collect();
    for (poll, form) in polls.into_iter().zip(&forms) {
        let (status, body) = poll.await.unwrap();
        assert_eq!(
            (status, body["status"].as_str()),
            (200, Some("SUCCESS")),
            "{form}: {body}"
        );
        assert_eq!(body["task_id"], id.as_str());
    }
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());

    // Workflows share the code.
    let resp = api
        .http
        .post(api.url("/workflows"))
        .json(&json!({"type": "chain", "tasks": [{"name": "sleep", "args": {"seconds": 1}}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let wid = resp.json::<Value>().await.unwrap()["workflow_id"]
        .as_str()
        .unwrap()
        .to_uppercase();
    let started = Instant::now();
    let resp = api
        .http
        .get(api.url(&format!("/workflows/{wid}?wait=20")))
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "SUCCESS", "{body}");
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

#[tokio::test]
async fn times_before_1970_are_refused() {
    let redis = TestRedis::start();
    let api = Api::start(&redis.url(), &unique_ns(), &[]).await;
    for (body, code) in [
        (
            json!({"name": "noop", "expires": "1969-12-31T23:59:59Z"}),
            "invalid_expires",
        ),
        (
            json!({"name": "noop", "expires": "0001-01-01T00:00:00Z"}),
            "invalid_expires",
        ),
        (json!({"name": "noop", "eta": "1969-12-31T23:59:59Z"}), "invalid_eta"),
    ] {
        let (status, resp) = api.post_task(body.clone()).await;
        assert_eq!((status, resp["error"]["code"].as_str()), (422, Some(code)), "{body}");
    }
    assert_eq!(
        api.post_task(json!({"name": "noop", "expires": "1970-01-01T00:00:00Z"}))
            .await
            .0,
        202
    );
}

#[tokio::test]
async fn unsafe_or_non_string_names_are_refused_before_redis() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let long = "q".repeat(129);
    let cases = [
        (json!({"name": "noop", "queue": "a/b"}), "invalid_queue"),
        (json!({"name": "noop", "queue": "../../x"}), "invalid_queue"),
        (json!({"name": "noop", "queue": "caf\u{e9}"}), "invalid_queue"),
        (json!({"name": "noop", "queue": "a\u{1}b"}), "invalid_queue"),
        (json!({"name": "noop", "queue": ".hidden"}), "invalid_queue"),
        (json!({"name": "noop", "queue": long}), "invalid_queue"),
        (json!({"name": "noop", "queue": 5}), "invalid_task"),
        (json!({"name": "noop", "queue": true}), "invalid_task"),
        (json!({"name": 5}), "invalid_task"),
        (json!({"name": "a/b"}), "invalid_name"),
        (json!({"name": "no op"}), "invalid_name"),
    ];
    for (body, code) in cases {
        let (status, resp) = api.post_task(body.clone()).await;
        assert_eq!(
            (status, resp["error"]["code"].as_str()),
            (422, Some(code)),
            "{body}: {resp}"
        );
    }
    // Nothing reached Redis: not one key in the namespace.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{ns}}}*"))
        .query(&mut redis.conn())
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    for path in ["/queues/..%2F..%2Fx", "/queues/caf%C3%A9", "/queues/-x"] {
        let resp = api.http.get(api.url(path)).send().await.unwrap();
        assert_eq!(resp.status(), 400, "{path}");
    }
    // The documented charset is accepted.
    assert_eq!(
        api.post_task(json!({"name": "noop", "queue": "media.encode:hi-prio_1"}))
            .await
            .0,
        202
    );
}

/// poem-openapi reads a JSON number or boolean into a `String` field as its text;
/// every string of a request body is read strictly instead.
#[tokio::test]
async fn numbers_and_booleans_are_refused_where_a_body_takes_a_string() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let schedule = |field: &str, value: Value| {
        let mut body = json!({"name": "s", "task": "noop", "every": 60});
        body[field] = value;
        body
    };
    let cases = [
        ("/tasks", json!({"name": "noop", "idempotency_key": 7})),
        ("/tasks", json!({"name": "noop", "idempotency_key": true})),
        ("/tasks", json!({"name": "noop", "callback_url": 3})),
        ("/tasks", json!({"name": "noop", "retry_on": ["E", 1]})),
        (
            "/tasks/batch",
            json!({"tasks": [{"name": "noop"}], "idempotency_key": 9}),
        ),
        (
            "/workflows",
            json!({"type": "chain", "tasks": [{"name": "noop", "retry_on": [false]}]}),
        ),
        ("/schedules", schedule("name", json!(5))),
        ("/schedules", schedule("task", json!(5))),
        ("/schedules", schedule("queue", json!(5))),
        ("/schedules", schedule("timezone", json!(true))),
        ("/schedules", json!({"name": "s", "task": "noop", "cron": 5})),
    ];
    for (path, body) in cases {
        let (status, resp) = api.post_json(path, body.clone()).await;
        let message = resp["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(status, 422, "{path} {body}: {resp}");
        assert!(message.contains("expected a string, found a"), "{path} {body}: {resp}");
    }
    // Nothing was enqueued or saved.
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{{{ns}}}*"))
        .query(&mut redis.conn())
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
    // The same fields as strings are taken.
    for (path, body) in [
        (
            "/tasks",
            json!({"name": "noop", "idempotency_key": "7", "retry_on": ["E"]}),
        ),
        (
            "/tasks/batch",
            json!({"tasks": [{"name": "noop"}], "idempotency_key": "9"}),
        ),
        ("/schedules", schedule("timezone", json!("Europe/Paris"))),
    ] {
        let (status, resp) = api.post_json(path, body.clone()).await;
        assert!(status == 201 || status == 202, "{path} {body}: {status} {resp}");
    }
}

#[tokio::test]
async fn fields_that_can_be_null_are_nullable_in_the_spec() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let spec: Value = api
        .http
        .get(api.url("/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let schemas = &spec["components"]["schemas"];
    let nullable = |schema: &str, field: &str| schemas[schema]["properties"][field]["nullable"] == true;
    for field in [
        "eta",
        "expires_at",
        "parent_id",
        "traceback",
        "workflow_id",
        "started_at",
        "finished_at",
        "worker",
        "progress",
    ] {
        assert!(nullable("TaskView", field), "TaskView.{field}");
    }
    for field in ["failed_task_id", "callback_id", "created_at", "finished_at"] {
        assert!(nullable("WorkflowView", field), "WorkflowView.{field}");
    }
    assert!(nullable("WorkflowCreatedView", "callback_id"));

    // Every null in a real answer is allowed by the spec (typed fields nullable, or untyped).
    let id = api.enqueue(json!({"name": "noop"})).await;
    let (_, task) = api.get_task(&id).await;
    for (field, value) in task.as_object().unwrap() {
        let prop = &schemas["TaskView"]["properties"][field];
        assert!(prop.is_object(), "{field} not in the spec");
        if value.is_null() {
            assert!(prop["nullable"] == true || prop["type"].is_null(), "{field}: {prop}");
        }
    }
}

#[tokio::test]
async fn an_overlong_uri_gets_the_json_error_body() {
    let redis = TestRedis::start();
    let api = Api::start(&redis.url(), &unique_ns(), &[]).await;
    let resp = api
        .http
        .get(api.url(&format!("/tasks/{}", "x".repeat(20 * 1024))))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 414);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "uri_too_long", "{body}");
    // Past 65,534 bytes hyper answers before the app sees the request: a bare
    // 414 (its limit is not configurable). Sent raw: the client refuses such URIs.
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(api.base.trim_start_matches("http://"))
        .await
        .unwrap();
    let request = format!("GET /tasks/{} HTTP/1.1\r\nHost: x\r\n\r\n", "x".repeat(70 * 1024));
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut head = vec![0; 12];
    stream.read_exact(&mut head).await.unwrap();
    assert_eq!(&head, b"HTTP/1.1 414");
}

#[tokio::test]
async fn an_enqueue_answered_503_during_a_stall_points_to_idempotency_key() {
    let redis = TestRedis::start();
    let api = Api::start(&redis.url(), &unique_ns(), &[]).await;
    assert_eq!(api.post_task(json!({"name": "noop"})).await.0, 202);
    redis.signal("STOP");
    let started = Instant::now();
    let (status, body) = api.post_task(json!({"name": "noop"})).await;
    let took = started.elapsed();
    redis.signal("CONT");
    assert_eq!(status, 503, "{body}");
    assert!(took < Duration::from_millis(2500), "{took:?}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("idempotency_key"), "{message}");
}

/// Holds Redis busy for one second with a script that loops on TIME (as a slow
/// command or a long script of another client would), from a thread of its own.
fn busy_redis_for_a_second(redis: &TestRedis) -> std::thread::JoinHandle<()> {
    const BUSY: &str = "local t = redis.call('TIME') local from = t[1] * 1e6 + t[2]
        repeat t = redis.call('TIME') until t[1] * 1e6 + t[2] - from >= 1000000 return 1";
    let mut conn = redis.conn();
    std::thread::spawn(move || {
        let _: i64 = redis::cmd("EVAL").arg(BUSY).arg(0).query(&mut conn).unwrap();
    })
}

/// A batch is one long script call (about 60 ms for 1,000 tasks), which a busy
/// Redis stretches: batches go over a connection of their own whose answers may
/// take 2 s, so a batch queued behind a one-second stall is enqueued and answered
/// 202, where an ordinary `POST /tasks` behind the same stall gets its 503 after
/// the ordinary 500 ms (and the batch did not sit behind it).
#[tokio::test]
async fn a_batch_waits_out_a_one_second_stall_that_an_ordinary_post_does_not() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    // Both connections made and both scripts loaded first.
    let one = json!({"tasks": [{"name": "noop"}]});
    assert_eq!(api.post_json("/tasks/batch", one).await.0, 202);
    assert_eq!(api.post_task(json!({"name": "noop"})).await.0, 202);

    let stall = busy_redis_for_a_second(&redis);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let tasks: Vec<Value> = (0..1000).map(|i| json!({"name": "noop", "args": [i]})).collect();
    let (status, body) = api.post_json("/tasks/batch", json!({ "tasks": tasks })).await;
    let waited = started.elapsed();
    stall.join().unwrap();
    assert_eq!(status, 202, "{body}");
    assert!(
        waited > Duration::from_millis(600),
        "the batch did not wait for the stall: {waited:?}"
    );
    let ids = body["task_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 1000);
    let last = ids[999].as_str().unwrap();
    assert_eq!(api.get_task(last).await.1["args"], json!([999]));

    let stall = busy_redis_for_a_second(&redis);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let (status, body) = api.post_task(json!({"name": "noop"})).await;
    let waited = started.elapsed();
    stall.join().unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(waited < Duration::from_millis(900), "{waited:?}");
}

/// A batch whose answer is lost in a stall (503 after the bulk connection's 2 s)
/// may have been enqueued anyway: retried with the same idempotency key, it is
/// answered with the ids of the batch that ran, and nothing is enqueued twice.
#[tokio::test]
async fn a_batch_retried_with_its_idempotency_key_after_a_lost_answer_is_enqueued_once() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let one = json!({"tasks": [{"name": "noop"}]});
    assert_eq!(api.post_json("/tasks/batch", one).await.0, 202);

    let tasks: Vec<Value> = (0..50).map(|i| json!({"name": "noop", "args": [i]})).collect();
    let request = json!({"tasks": tasks, "idempotency_key": "nightly-2026-12-01"});
    redis.signal("STOP");
    let (status, body) = api.post_json("/tasks/batch", request.clone()).await;
    redis.signal("CONT");
    assert_eq!(status, 503, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("idempotency_key"),
        "{body}"
    );

    let (status, body) = api.post_json("/tasks/batch", request).await;
    assert_eq!(status, 200, "the retry found the batch that ran: {body}");
    let ids = body["task_ids"].as_array().unwrap();
    assert_eq!(ids.len(), 50);
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(api.get_task(id.as_str().unwrap()).await.1["args"], json!([i]));
    }
    let queued: u64 = redis::cmd("ZCARD")
        .arg(format!("{{{ns}}}:queue:default"))
        .query(&mut redis.conn())
        .unwrap();
    assert_eq!(queued, 51, "1 + 50 tasks, none twice");
}
