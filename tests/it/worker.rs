//! Worker behaviour: queues, registration, health, graceful shutdown.

use std::time::{Duration, Instant};

use redis::Commands;
use serde_json::json;

use crate::helpers::{Api, TestRedis, Worker, unique_ns};

#[tokio::test]
async fn sigterm_mid_task_lets_it_finish_and_exits_zero() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let mut worker = Worker::start(&redis.url(), &ns, &["--grace", "10"]).await;

    let id = api.enqueue(json!({"name": "sleep", "args": {"seconds": 1}})).await;
    api.wait_until(&id, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    worker.proc.signal("TERM");
    assert_eq!(worker.proc.wait_exit(Duration::from_secs(15)).unwrap(), Some(0));
    let task = api.get_task(&id).await.1;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    // A clean stop marks the worker's registration STOPPED at once (kept for the retention time).
    let status: String = redis
        .conn()
        .hget(celeriac::redis::keys::Keys::new(&ns).worker(&worker.name), "status")
        .unwrap();
    assert_eq!(status, "stopped");
}

#[tokio::test]
async fn sigterm_hands_back_what_cannot_finish_within_the_grace_time() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let mut worker = Worker::start(&redis.url(), &ns, &["--grace", "1"]).await;

    let id = api.enqueue(json!({"name": "sleep", "args": {"seconds": 3}})).await;
    api.wait_until(&id, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    worker.proc.signal("TERM");
    assert_eq!(worker.proc.wait_exit(Duration::from_secs(5)).unwrap(), Some(0));
    let task = api.get_task(&id).await.1;
    assert_eq!(task["status"], "PENDING", "released back to its queue: {task}");

    // Another worker picks it up right away (no lease to wait for).
    let second = Worker::start(&redis.url(), &ns, &[]).await;
    let task = api.wait_task(&id, 15).await;
    assert_eq!(task["status"], "SUCCESS");
    assert_eq!(task["worker"], second.name);
    assert_eq!(task["attempts"], 1, "an interrupted attempt is not counted: {task}");
}

#[tokio::test]
async fn a_worker_consumes_only_its_queues_and_registers_itself() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let worker = Worker::start(&redis.url(), &ns, &["--queues", "media,reports", "--concurrency", "3"]).await;

    let media = api.enqueue(json!({"name": "noop", "queue": "media"})).await;
    let reports = api.enqueue(json!({"name": "noop", "queue": "reports"})).await;
    let default = api.enqueue(json!({"name": "noop"})).await;
    assert_eq!(api.wait_task(&media, 10).await["status"], "SUCCESS");
    assert_eq!(api.wait_task(&reports, 10).await["status"], "SUCCESS");
    assert_eq!(api.wait_task(&default, 1).await["status"], "PENDING");

    let info: std::collections::HashMap<String, String> = redis
        .conn()
        .hgetall(celeriac::redis::keys::Keys::new(&ns).worker(&worker.name))
        .unwrap();
    assert_eq!(info["queues"], "media,reports");
    assert_eq!(info["concurrency"], "3");
    assert_eq!(info["pid"], worker.proc.pid().to_string());
    assert!(!info["hostname"].is_empty() && info["started_at"].parse::<i64>().is_ok());
    let names: Vec<String> = redis
        .conn()
        .smembers(celeriac::redis::keys::Keys::new(&ns).task_names())
        .unwrap();
    for builtin in ["add", "echo", "fail", "noop", "sleep"] {
        assert!(names.contains(&builtin.to_owned()), "{names:?}");
    }

    let health = reqwest::get(worker.health_url("/healthz")).await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = reqwest::get(worker.health_url("/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
}

#[tokio::test]
async fn concurrency_runs_that_many_tasks_at_once() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "4"]).await;

    let started = std::time::Instant::now();
    let mut ids = Vec::new();
    for _ in 0..4 {
        ids.push(api.enqueue(json!({"name": "sleep", "args": {"seconds": 1}})).await);
    }
    for id in &ids {
        assert_eq!(api.wait_task(id, 10).await["status"], "SUCCESS");
    }
    let took = started.elapsed();
    assert!(
        took < Duration::from_millis(1900),
        "4 one-second tasks on 4 slots took {took:?}"
    );
}

/// A worker configuration named `name` with `concurrency` slots, in a fresh
/// namespace of `redis`, and the queue it consumes (for tests that drive a `Consumer`).
fn consumer_setup(
    redis: &TestRedis,
    name: &str,
    concurrency: usize,
) -> (celeriac::config::WorkerConfig, celeriac::Queue) {
    let mut redis_cfg = celeriac::config::RedisConfig::new(redis.url());
    redis_cfg.namespace = unique_ns();
    let mut cfg = celeriac::config::WorkerConfig::new(redis_cfg, name);
    cfg.concurrency = concurrency;
    let queue = celeriac::Queue::connect(&cfg.redis, cfg.engine.clone()).unwrap();
    (cfg, queue)
}

/// A success brings its slot's next task along (claim.lua records and claims in
/// one call): after one consume step, the worker's successes alone run the rest
/// of the queue, one slot at a time.
#[tokio::test]
async fn successes_claim_the_next_tasks_for_their_slots() {
    use celeriac::{
        model::{NewTask, TaskStatus},
        tasks::Registry,
        worker::{Batch, Consumer},
    };
    let redis = TestRedis::start();
    let (cfg, queue) = consumer_setup(&redis, "chain-worker", 1);
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(queue.enqueue(&NewTask::new("echo", json!(i)), false).await.unwrap().id);
    }
    let consumer = Consumer::new(&cfg, queue.clone(), Registry::with_builtins()).unwrap();
    assert_eq!(consumer.process_batch().await.unwrap(), Batch::Started(1));

    let deadline = Instant::now() + Duration::from_secs(10);
    for (i, id) in ids.iter().enumerate() {
        loop {
            let record = queue.get(id).await.unwrap().unwrap();
            if record.status == TaskStatus::Success {
                assert_eq!(record.result, Some(json!(i)));
                assert_eq!(record.worker.as_deref(), Some("chain-worker"));
                break;
            }
            assert!(Instant::now() < deadline, "task {i} is {:?}", record.status);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    // Its one slot is free again (once the last answer is in): the chain ended with the queue.
    let step = loop {
        match consumer.process_batch().await.unwrap() {
            Batch::Full if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(10)).await,
            step => break step,
        }
    };
    assert_eq!(step, Batch::Idle { next_due_ms: None });
    let details = consumer.drain(Duration::from_secs(5)).await;
    assert_eq!((details.finished_in_grace, details.released), (0, 0));
}

#[tokio::test]
async fn one_consume_step_claims_only_for_free_slots_and_drains() {
    use celeriac::{
        model::{NewTask, TaskStatus},
        tasks::Registry,
        worker::{Batch, Consumer},
    };
    let redis = TestRedis::start();
    let (cfg, queue) = consumer_setup(&redis, "step-worker", 2);
    let mut ids = Vec::new();
    for _ in 0..3 {
        let task = NewTask::new("sleep", json!({"seconds": 0.3}));
        ids.push(queue.enqueue(&task, false).await.unwrap().id);
    }
    let consumer = Consumer::new(&cfg, queue.clone(), Registry::with_builtins()).unwrap();

    assert_eq!(consumer.process_batch().await.unwrap(), Batch::Started(2));
    assert_eq!(consumer.process_batch().await.unwrap(), Batch::Full);
    let details = consumer.drain(Duration::from_secs(5)).await;

    assert_eq!(details.finished_in_grace, 2);
    assert_eq!(details.released, 0);
    let mut statuses = Vec::new();
    for id in &ids {
        statuses.push(queue.get(id).await.unwrap().unwrap().status);
    }
    assert_eq!(
        statuses,
        [TaskStatus::Success, TaskStatus::Success, TaskStatus::Pending]
    );
}
