//! Fault tests: kill -9 workers, stop and restart Redis.

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, Worker, unique_ns};

#[tokio::test]
async fn a_task_whose_worker_is_killed_is_completed_by_another_worker() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let lease = ["--lease-secs", "2"];
    let victim = Worker::start(&redis.url(), &ns, &lease).await;

    let id = api.enqueue(json!({"name": "sleep", "args": {"seconds": 1.5}})).await;
    let running = api
        .wait_until(&id, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    assert_eq!(running["worker"], victim.name);
    victim.proc.signal("KILL");

    let rescuer = Worker::start(&redis.url(), &ns, &lease).await;
    let task = api.wait_task(&id, 30).await;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert_eq!(task["worker"], rescuer.name);
    assert_eq!(task["attempts"], 2);

    // Exactly one final state was ever recorded for it.
    let entries: redis::streams::StreamRangeReply = redis
        .conn()
        .xrange_all(celeriac::redis::keys::Keys::new(&ns).events())
        .unwrap();
    let finals = entries
        .ids
        .iter()
        .filter(|e| e.get::<String>("task_id").as_deref() == Some(id.as_str()))
        .filter(|e| {
            matches!(
                e.get::<String>("event").as_deref(),
                Some("succeeded" | "failed" | "dead")
            )
        })
        .count();
    assert_eq!(finals, 1);
}

#[tokio::test]
async fn the_api_answers_503_while_redis_is_down_and_recovers_without_restart() {
    let mut redis = TestRedis::start_persistent();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let worker = Worker::start(&redis.url(), &ns, &[]).await;
    let before = api.enqueue(json!({"name": "noop"})).await;
    assert_eq!(api.wait_task(&before, 10).await["status"], "SUCCESS");

    redis.stop();
    for (method, path, body) in [
        ("POST", "/tasks", json!({"name": "noop"})),
        ("GET", &*format!("/tasks/{before}"), Value::Null),
        ("GET", &*format!("/tasks/{before}?wait=5"), Value::Null),
        ("GET", "/queues", Value::Null),
        ("GET", "/readyz", Value::Null),
    ] {
        let started = Instant::now();
        let mut req = api.http.request(method.parse().unwrap(), api.url(path));
        if !body.is_null() {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let took = started.elapsed();
        assert_eq!(resp.status(), 503, "{method} {path}");
        assert!(took < Duration::from_millis(2500), "{method} {path} took {took:?}");
        let json: Value = resp.json().await.unwrap();
        assert_eq!(json["error"]["code"], "redis_unavailable", "{method} {path}");
    }
    assert_eq!(api.http.get(api.url("/healthz")).send().await.unwrap().status(), 200);
    // The worker stays alive (an outage must not get every worker restarted) but not ready.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(reqwest::get(worker.health_url("/healthz")).await.unwrap().status(), 200);
    assert_eq!(reqwest::get(worker.health_url("/readyz")).await.unwrap().status(), 503);

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let (status, body) = api.post_task(json!({"name": "add", "args": [1, 2]})).await;
        if status == 202 {
            break body["task_id"].as_str().unwrap().to_owned();
        }
        assert!(Instant::now() < deadline, "API did not recover: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The worker resumed consuming (the classic stack's worker silently stops here).
    assert_eq!(api.wait_task(&after, 20).await["result"], 3);
    assert_eq!(
        api.get_task(&before).await.1["status"],
        "SUCCESS",
        "accepted work survived"
    );
    assert_eq!(reqwest::get(worker.health_url("/readyz")).await.unwrap().status(), 200);
}

#[tokio::test]
async fn tasks_accepted_before_a_redis_restart_are_not_lost() {
    let mut redis = TestRedis::start_persistent();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;

    // Queued while no worker runs, and one running across the restart.
    let queued: Vec<String> =
        futures_util::future::join_all((0..20).map(|i| api.enqueue(json!({"name": "add", "args": [i, i]})))).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "1"]).await;
    let running = api
        .enqueue(json!({"name": "sleep", "args": {"seconds": 1}, "priority": 9}))
        .await;
    api.wait_until(&running, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;

    redis.restart();

    assert_eq!(api.wait_task(&running, 30).await["status"], "SUCCESS");
    for (i, id) in queued.iter().enumerate() {
        let task = api.wait_task(id, 30).await;
        assert_eq!(task["result"], 2 * i, "{task}");
    }
}

#[tokio::test]
async fn a_hung_redis_gives_503_within_two_seconds_not_a_hang() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let id = api.enqueue(json!({"name": "noop"})).await;

    redis.signal("STOP");
    for attempt in 0..3 {
        let started = Instant::now();
        let (status, body) = api.post_task(json!({"name": "noop"})).await;
        let took = started.elapsed();
        assert_eq!(status, 503, "attempt {attempt}: {body}");
        assert!(took < Duration::from_millis(2500), "attempt {attempt} took {took:?}");
        let started = Instant::now();
        assert_eq!(api.get_task(&id).await.0, 503);
        assert!(started.elapsed() < Duration::from_millis(2500));
    }
    // A long-poll does not hang on a hung Redis either.
    let started = Instant::now();
    let resp = api
        .http
        .get(api.url(&format!("/tasks/{id}?wait=10")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 503);
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
    redis.signal("CONT");

    let deadline = Instant::now() + Duration::from_secs(10);
    while api.post_task(json!({"name": "noop"})).await.0 != 202 {
        assert!(Instant::now() < deadline, "API did not recover after Redis thawed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(api.get_task(&id).await.1["status"], "PENDING");
}

#[test]
fn a_worker_whose_log_pipe_broke_still_stops_on_sigterm() {
    use std::process::{Command, Stdio};
    let redis = TestRedis::start();
    let mut child = Command::new(env!("CARGO_BIN_EXE_celeriac-worker"))
        .env("CELERIAC_BROKER_URL", redis.url())
        .env("CELERIAC_NAMESPACE", unique_ns())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The log reader goes away: every later log write fails with EPIPE.
    drop(child.stderr.take());
    std::thread::sleep(Duration::from_millis(500));

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let exited = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let status = exited.expect("the worker ignored SIGTERM once its stderr was gone");
    assert!(status.success(), "{status:?}");
}

#[tokio::test]
async fn a_wrong_redis_password_is_reported_as_such_and_acl_users_work() {
    let redis = TestRedis::start_with_password("right-password-123");
    let ns = unique_ns();
    let wrong = format!("redis://:wrong-password@127.0.0.1:{}", redis.port);
    for url in [wrong, redis.url_without_password()] {
        let api = Api::start(&url, &ns, &[]).await;
        let worker = Worker::start(&url, &ns, &[]).await;

        let (status, body) = api.post_task(json!({"name": "noop"})).await;
        assert_eq!(status, 503, "{body}");
        assert_eq!(body["error"]["code"], "redis_auth_failed", "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("authentication failed"),
            "{body}"
        );
        let resp = reqwest::get(worker.health_url("/readyz")).await.unwrap();
        assert_eq!(resp.status(), 503);
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "redis_auth_failed", "{body}");
    }

    // An ACL user with its own password is a user name in the URL.
    let _: () = redis::cmd("ACL")
        .arg(&["SETUSER", "app", "on", ">app-password-456", "~*", "&*", "+@all"])
        .query(&mut redis.conn())
        .unwrap();
    let acl = format!("redis://app:app-password-456@127.0.0.1:{}", redis.port);
    let api = Api::start(&acl, &ns, &[]).await;
    let _worker = Worker::start(&acl, &ns, &[]).await;
    let id = api.enqueue(json!({"name": "add", "args": [2, 3]})).await;
    assert_eq!(api.wait_task(&id, 10).await["result"], 5);
}
