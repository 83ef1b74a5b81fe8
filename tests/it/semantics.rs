//! Task semantics: retries, expiry, time limits, cancel, resubmit, forget,
//! idempotency, rate limits, registration defaults, progress and children.

use std::time::{Duration, Instant};

use celeriac::{
    model::{NewTask, RateLimit, TaskOptions},
    tasks::{Registry, TaskContext, TaskError},
};
use serde_json::{Value, json};

use crate::helpers::{Api, InProcessWorker, TestRedis, Worker, task_events, unique_ns};

fn millis(t: &Value, field: &str) -> i64 {
    chrono::DateTime::parse_from_rfc3339(t[field].as_str().unwrap())
        .unwrap()
        .timestamp_millis()
}

/// Fails until its third attempt.
fn flaky_registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register("flaky", |ctx: TaskContext, _: Value| async move {
        if ctx.attempt < 3 {
            return Err(TaskError::new(
                "FlakyError",
                anyhow::anyhow!("attempt {} failed", ctx.attempt),
            ));
        }
        Ok(json!({"succeeded_on": ctx.attempt}))
    });
    r
}

#[tokio::test]
async fn retry_with_backoff_reaches_success_on_the_third_attempt() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let _worker = InProcessWorker::start(&redis.url(), &ns, flaky_registry(), |_| {});
    let api = Api::start(&redis.url(), &ns, &[]).await;

    let id = api
        .enqueue(json!({"name": "flaky", "max_retries": 5, "retry_backoff": 0.3, "retry_jitter": false}))
        .await;
    let retrying = api
        .wait_until(&id, Duration::from_secs(10), |t| t["status"] == "RETRY")
        .await;
    assert!(
        retrying["eta"].is_string(),
        "a retrying task shows when it runs next: {retrying}"
    );
    let t = api.wait_task(&id, 20).await;
    assert_eq!(t["status"], "SUCCESS", "{t}");
    assert_eq!(t["result"], json!({"succeeded_on": 3}));
    assert!(t["eta"].is_null(), "a final task keeps no stale eta: {t}");
    assert_eq!((t["attempts"].as_u64(), t["retries"].as_u64()), (Some(3), Some(2)));
    let errors = t["errors"].as_array().unwrap();
    assert_eq!(errors.len(), 2);
    assert_eq!(
        errors[0]["error"],
        json!({"exc_type": "FlakyError", "exc_message": "attempt 1 failed"})
    );
    // Exponential backoff without jitter: 0.3 s, then 0.6 s.
    // Every time is RFC 3339, the errors' too.
    let gap1 = millis(&errors[1], "at") - millis(&errors[0], "at");
    let gap2 = millis(&t, "finished_at") - millis(&errors[1], "at");
    assert!(gap1 >= 300, "first retry after {gap1} ms");
    assert!(gap2 >= 600, "second retry after {gap2} ms");
    assert_eq!(
        task_events(&redis, &ns, &id),
        [
            "enqueued",
            "started",
            "retry",
            "started",
            "retry",
            "started",
            "succeeded"
        ]
    );
}

#[tokio::test]
async fn retry_on_limits_which_errors_are_retried_and_registration_defaults_apply() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let mut registry = flaky_registry();
    registry.set_options(
        "flaky",
        TaskOptions {
            max_retries: Some(4),
            retry_backoff: Some(0.05),
            ..TaskOptions::default()
        },
    );
    let _worker = InProcessWorker::start(&redis.url(), &ns, registry, |_| {});
    let api = Api::start(&redis.url(), &ns, &[]).await;

    // No max_retries given: the registration's default (4) applies.
    let id = api.enqueue(json!({"name": "flaky"})).await;
    let t = api.wait_task(&id, 20).await;
    assert_eq!(t["status"], "SUCCESS", "{t}");
    assert_eq!(t["max_retries"], 4);
    assert_eq!(t["options"]["retry_backoff"], 0.05);

    // retry_on names the kinds that retry: FlakyError is not one of them.
    let id = api
        .enqueue(json!({"name": "flaky", "retry_on": ["TimeoutError"]}))
        .await;
    let t = api.wait_task(&id, 20).await;
    assert_eq!(
        (t["status"].as_str(), t["attempts"].as_u64()),
        (Some("FAILURE"), Some(1)),
        "{t}"
    );
}

#[tokio::test]
async fn an_expired_task_is_revoked_and_never_runs() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let expiring = api.enqueue(json!({"name": "noop", "expires": 0.3})).await;
    let at = (chrono::Utc::now() + chrono::Duration::milliseconds(300)).to_rfc3339();
    let expiring_at = api.enqueue(json!({"name": "noop", "expires": at})).await;
    let fresh = api.enqueue(json!({"name": "noop", "expires": 60})).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    let _worker = Worker::start(&redis.url(), &ns, &[]).await;
    for id in [&expiring, &expiring_at] {
        let t = api.wait_task(id, 10).await;
        assert_eq!(t["status"], "REVOKED", "{t}");
        assert_eq!(t["result"]["reason"], "expired");
        assert_eq!(t["attempts"], 0, "an expired task never runs");
        assert!(t["expires_at"].is_string());
    }
    assert_eq!(api.wait_task(&fresh, 10).await["status"], "SUCCESS");
    let (status, body) = api.post_task(json!({"name": "noop", "expires": "soon"})).await;
    assert_eq!((status, body["error"]["code"].as_str()), (422, Some("invalid_expires")));
}

#[tokio::test]
async fn a_soft_time_limit_lets_the_task_clean_up() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let mut registry = Registry::with_builtins();
    registry.register("careful", |ctx: TaskContext, _: Value| async move {
        let started = Instant::now();
        ctx.cancellation().cancelled().await;
        Ok::<_, TaskError>(json!({"cleaned_up_after_ms": started.elapsed().as_millis() as u64}))
    });
    let _worker = InProcessWorker::start(&redis.url(), &ns, registry, |_| {});
    let api = Api::start(&redis.url(), &ns, &[]).await;

    let id = api
        .enqueue(json!({"name": "careful", "soft_time_limit": 0.4, "time_limit": 5}))
        .await;
    let t = api.wait_task(&id, 10).await;
    assert_eq!(t["status"], "SUCCESS", "{t}");
    let after = t["result"]["cleaned_up_after_ms"].as_u64().unwrap();
    assert!((350..2000).contains(&after), "signal after {after} ms");

    // A task that gives up when the soft limit fires fails as SoftTimeLimitExceeded.
    let id = api
        .enqueue(json!({"name": "sleep", "args": {"seconds": 30}, "soft_time_limit": 0.3}))
        .await;
    let t = api.wait_task(&id, 10).await;
    assert_eq!(t["status"], "FAILURE", "{t}");
    assert_eq!(t["result"]["exc_type"], "SoftTimeLimitExceeded");
}

#[tokio::test]
async fn a_hard_time_limit_aborts_the_task_and_frees_its_slot() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let mut registry = Registry::with_builtins();
    // Ignores every signal: only an abort stops it.
    registry.register("stubborn", |_: TaskContext, _: Value| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, TaskError>(Value::Null)
    });
    let worker = InProcessWorker::start(&redis.url(), &ns, registry, |c| c.concurrency = 1);
    let api = Api::start(&redis.url(), &ns, &[]).await;

    let stuck = api
        .enqueue(json!({"name": "stubborn", "time_limit": 0.5, "soft_time_limit": 0.2}))
        .await;
    let next = api.enqueue(json!({"name": "noop"})).await;
    let t = api.wait_task(&stuck, 10).await;
    assert_eq!(t["status"], "FAILURE", "{t}");
    assert_eq!(t["result"]["exc_type"], "TimeLimitExceeded");
    assert!(t["traceback"].as_str().unwrap().contains("hard time limit"));
    let elapsed = millis(&t, "finished_at") - millis(&t, "started_at");
    assert!((450..3000).contains(&elapsed), "aborted after {elapsed} ms");
    // The only slot is free again: the next task runs.
    assert_eq!(api.wait_task(&next, 10).await["status"], "SUCCESS");
    let details = worker.stop().await;
    assert_eq!(details.released, 0, "nothing left running");
}

#[tokio::test]
async fn cancelling_pending_delayed_and_finished_tasks() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let cancel = |id: &str| api.http.post(api.url(&format!("/tasks/{id}/cancel"))).send();

    let queued = api.enqueue(json!({"name": "add", "args": [1, 1]})).await;
    let delayed = api
        .enqueue(json!({"name": "add", "args": [2, 2], "countdown": 0.5}))
        .await;
    for id in [&queued, &delayed] {
        let resp = cancel(id).await.unwrap();
        assert_eq!(resp.status(), 200);
        let t: Value = resp.json().await.unwrap();
        assert_eq!(t["status"], "REVOKED");
        assert_eq!(t["result"]["reason"], "cancelled");
    }
    let queue: Value = api
        .http
        .get(api.url("/queues/default"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!((queue["ready"].as_u64(), queue["delayed"].as_u64()), (Some(0), Some(0)));

    let _worker = Worker::start(&redis.url(), &ns, &[]).await;
    let done = api.enqueue(json!({"name": "noop"})).await;
    assert_eq!(api.wait_task(&done, 10).await["status"], "SUCCESS");
    tokio::time::sleep(Duration::from_millis(700)).await;
    for id in [&queued, &delayed] {
        let t = api.get_task(id).await.1;
        assert_eq!(
            (t["status"].as_str(), t["attempts"].as_u64()),
            (Some("REVOKED"), Some(0)),
            "never ran: {t}"
        );
    }

    // Final tasks cannot be cancelled; unknown ones are 404.
    let resp = cancel(&done).await.unwrap();
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], "conflict");
    assert_eq!(cancel(&uuid::Uuid::new_v4().to_string()).await.unwrap().status(), 404);
}

#[tokio::test]
async fn cancelling_a_running_task_signals_it_and_aborts_it_if_it_ignores_the_signal() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let mut registry = Registry::with_builtins();
    registry.register("stubborn", |_: TaskContext, _: Value| async move {
        tokio::time::sleep(Duration::from_secs(3600)).await;
        Ok::<_, TaskError>(Value::Null)
    });
    let _worker = InProcessWorker::start(&redis.url(), &ns, registry, |c| {
        c.cancel_grace = Duration::from_millis(500);
    });
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let cancel = |id: &str| api.http.post(api.url(&format!("/tasks/{id}/cancel"))).send();

    // The built-in sleep stops on its signal.
    let polite = api.enqueue(json!({"name": "sleep", "args": {"seconds": 30}})).await;
    api.wait_until(&polite, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    let resp = cancel(&polite).await.unwrap();
    assert_eq!(resp.status(), 202);
    assert_eq!(resp.json::<Value>().await.unwrap()["cancel_requested"], true);
    let t = api.wait_task(&polite, 10).await;
    assert_eq!(
        (t["status"].as_str(), t["result"]["reason"].as_str()),
        (Some("REVOKED"), Some("cancelled"))
    );
    assert!(millis(&t, "finished_at") - millis(&t, "started_at") < 3000);

    // A task that ignores it is aborted after the worker's cancel grace.
    let stubborn = api.enqueue(json!({"name": "stubborn"})).await;
    api.wait_until(&stubborn, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    let cancelled_at = Instant::now();
    assert_eq!(cancel(&stubborn).await.unwrap().status(), 202);
    let t = api.wait_task(&stubborn, 10).await;
    assert_eq!(t["status"], "REVOKED", "{t}");
    let took = cancelled_at.elapsed();
    assert!(
        took >= Duration::from_millis(450) && took < Duration::from_secs(4),
        "{took:?}"
    );
}

#[tokio::test]
async fn failed_tasks_can_be_retried_and_final_tasks_forgotten() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &[]).await;
    let retry = |id: &str| api.http.post(api.url(&format!("/tasks/{id}/retry"))).send();
    let delete = |id: &str| api.http.delete(api.url(&format!("/tasks/{id}"))).send();

    let failed = api.enqueue(json!({"name": "fail", "args": {"message": "once"}})).await;
    assert_eq!(api.wait_task(&failed, 10).await["status"], "FAILURE");
    let resp = retry(&failed).await.unwrap();
    assert_eq!(resp.status(), 202);
    let t = api.wait_task(&failed, 10).await;
    assert_eq!(
        (t["status"].as_str(), t["attempts"].as_u64()),
        (Some("FAILURE"), Some(2)),
        "{t}"
    );
    assert_eq!(t["errors"].as_array().unwrap().len(), 2);

    let ok = api.enqueue(json!({"name": "noop"})).await;
    assert_eq!(api.wait_task(&ok, 10).await["status"], "SUCCESS");
    assert_eq!(retry(&ok).await.unwrap().status(), 409, "a success is not retried");

    let running = api.enqueue(json!({"name": "sleep", "args": {"seconds": 2}})).await;
    api.wait_until(&running, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    assert_eq!(
        delete(&running).await.unwrap().status(),
        409,
        "only final tasks are forgotten"
    );
    assert_eq!(delete(&ok).await.unwrap().status(), 204);
    assert_eq!(api.get_task(&ok).await.0, 404);
    assert_eq!(delete(&ok).await.unwrap().status(), 404);
}

#[tokio::test]
async fn an_idempotency_key_returns_the_first_task() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let body = json!({"name": "noop", "idempotency_key": "order-42"});
    let (first_status, first) = api.post_task(body.clone()).await;
    let (second_status, second) = api.post_task(body).await;
    assert_eq!((first_status, second_status), (202, 200));
    assert_eq!(first["task_id"], second["task_id"]);
    let other = api
        .enqueue(json!({"name": "noop", "idempotency_key": "order-43"}))
        .await;
    assert_ne!(first["task_id"].as_str().unwrap(), other);
    let queue: Value = api
        .http
        .get(api.url("/queues/default"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(queue["ready"], 2, "the repeated request enqueued nothing");
}

#[tokio::test]
async fn a_rate_limit_holds_across_two_worker_processes() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let limit = ["--rate-limits", "noop=5/s", "--concurrency", "4"];
    let _a = Worker::start(&redis.url(), &ns, &limit).await;
    let _b = Worker::start(&redis.url(), &ns, &limit).await;

    let started = Instant::now();
    let mut ids = Vec::new();
    for _ in 0..16 {
        ids.push(api.enqueue(json!({"name": "noop"})).await);
    }
    let mut starts = Vec::new();
    let mut workers = std::collections::HashSet::new();
    for id in &ids {
        let t = api.wait_task(id, 30).await;
        assert_eq!(t["status"], "SUCCESS");
        starts.push(millis(&t, "started_at"));
        workers.insert(t["worker"].as_str().unwrap().to_owned());
    }
    starts.sort();
    for (i, &t0) in starts.iter().enumerate() {
        let in_window = starts[i..].iter().take_while(|&&t| t < t0 + 1000).count();
        assert!(in_window <= 5, "{in_window} starts within 1 s from {t0}: {starts:?}");
    }
    assert!(
        started.elapsed() >= Duration::from_millis(2900),
        "16 tasks at 5/s took {:?}",
        started.elapsed()
    );
    assert_eq!(workers.len(), 2, "both workers took part");
    let parsed: RateLimit = "5/s".parse().unwrap();
    assert_eq!(parsed.count, 5);
}

#[tokio::test]
async fn a_task_reports_progress_and_enqueues_children() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let mut registry = Registry::with_builtins();
    registry.register("fan_out", |ctx: TaskContext, n: u64| async move {
        let mut children = Vec::new();
        for i in 0..n {
            children.push(ctx.enqueue(NewTask::new("add", json!([i, i]))).await?);
            ctx.progress(i + 1, n, format!("enqueued {}", i + 1)).await?;
        }
        Ok::<_, TaskError>(json!(children.len()))
    });
    let _worker = InProcessWorker::start(&redis.url(), &ns, registry, |_| {});
    let api = Api::start(&redis.url(), &ns, &[]).await;

    let id = api.enqueue(json!({"name": "fan_out", "args": 3})).await;
    let t = api.wait_task(&id, 10).await;
    assert_eq!(t["status"], "SUCCESS", "{t}");
    assert_eq!(
        t["progress"],
        json!({"current": 3, "total": 3, "message": "enqueued 3"})
    );
    let children = t["children"].as_array().unwrap();
    assert_eq!(children.len(), 3);
    for (i, child) in children.iter().enumerate() {
        let c = api.wait_task(child.as_str().unwrap(), 10).await;
        assert_eq!(c["parent_id"].as_str(), Some(id.as_str()));
        assert_eq!(c["result"], 2 * i);
    }
    let events = task_events(&redis, &ns, &id);
    assert_eq!(events.iter().filter(|e| *e == "progress").count(), 3, "{events:?}");
}

#[tokio::test]
async fn a_worker_without_the_task_hands_it_back_to_one_that_has_it() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &["--allow-unknown-tasks"]).await;
    let plain = InProcessWorker::start(&redis.url(), &ns, Registry::with_builtins(), |_| {});

    let id = api.enqueue(json!({"name": "custom"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let t = api.get_task(&id).await.1;
    assert_eq!(t["status"], "PENDING", "not failed by a worker that lacks it: {t}");
    assert_eq!(t["attempts"], 0);

    let mut registry = Registry::with_builtins();
    registry.register("custom", |_: TaskContext, _: Value| async {
        Ok::<_, TaskError>(json!("done"))
    });
    let _custom = InProcessWorker::start(&redis.url(), &ns, registry, |_| {});
    let t = api.wait_task(&id, 10).await;
    assert_eq!(
        (t["status"].as_str(), &t["result"]),
        (Some("SUCCESS"), &json!("done")),
        "{t}"
    );
    plain.stop().await;
}
