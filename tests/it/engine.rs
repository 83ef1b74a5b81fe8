//! The Lua transitions through the library's `Queue`, against a real Redis.

use std::time::{Duration, Instant};

use celeriac::{
    QueueError,
    config::EngineConfig,
    model::{NewTask, TaskStatus, now_ms},
    queue::{Completion, Failure},
};
use redis::Commands;
use serde_json::json;

use crate::helpers::{TestRedis, queue};

fn queues() -> Vec<String> {
    vec!["default".to_owned()]
}

/// A worker's group commit: one call records several successes, and each
/// member gets its own answer (a stale or unknown one spoils nothing else).
#[tokio::test]
async fn a_batch_of_completions_answers_each_member_in_order() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    for i in 0..3 {
        q.enqueue(&NewTask::new("echo", json!(i)), false).await.unwrap();
    }
    let cancelled = q.enqueue(&NewTask::new("echo", json!(3)), false).await.unwrap().id;
    let tasks = q.claim(&queues(), 10, "worker-a").await.unwrap().tasks;
    assert_eq!(tasks.len(), 4);
    q.cancel(&cancelled).await.unwrap();
    let (ids, results): (Vec<String>, Vec<String>) = tasks
        .iter()
        .map(|t| (t.id.to_string(), format!("\"done {}\"", t.args)))
        .unzip();
    let unknown = uuid::Uuid::new_v4().to_string();
    let mut batch: Vec<Completion<'_>> = tasks
        .iter()
        .zip(ids.iter().zip(&results))
        .map(|(t, (id, result))| Completion {
            id,
            token: &t.token,
            result_json: result,
        })
        .collect();
    batch[1].token = "not-the-lease";
    batch.push(Completion {
        id: &unknown,
        token: "x",
        result_json: "null",
    });
    let answers = q.complete_many(&batch).await.unwrap();
    assert_eq!(answers.len(), 5);
    assert!(answers[0].is_ok() && answers[2].is_ok() && answers[3].is_ok());
    assert!(matches!(answers[1], Err(QueueError::LeaseLost)));
    assert!(matches!(answers[4], Err(QueueError::NotFound)));

    let status = |i: usize| {
        let q = q.clone();
        let id = tasks[i].id;
        async move { q.get(&id).await.unwrap().unwrap() }
    };
    assert_eq!(status(0).await.status, TaskStatus::Success);
    assert_eq!(status(0).await.result, Some(json!(format!("done {}", tasks[0].args))));
    assert_eq!(
        status(1).await.status,
        TaskStatus::Started,
        "a refused member stays as it was"
    );
    assert_eq!(status(2).await.status, TaskStatus::Success);
    // A member whose cancellation was requested while it ran ends REVOKED.
    assert_eq!(status(3).await.status, TaskStatus::Revoked);
    // Only the recorded members left the leases.
    let mut conn = redis.conn();
    let leased: Vec<String> = conn.zrange(q.keys().leases(), 0, -1).unwrap();
    assert_eq!(leased, vec![ids[1].clone()]);
}

#[tokio::test]
async fn a_stale_completion_is_rejected_after_the_lease_was_taken_away() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let id = q.enqueue(&NewTask::new("echo", json!(1)), false).await.unwrap().id;

    let first = q.claim(&queues(), 10, "worker-a").await.unwrap().tasks.remove(0);
    assert_eq!(first.id, id);
    // Worker A goes silent; past its lease deadline the reaper hands the task back.
    let lease = q.config().lease.as_millis() as i64;
    assert_eq!(q.reap_at(now_ms() + lease + 1).await.unwrap(), (1, 0));
    assert_eq!(q.get(&id).await.unwrap().unwrap().status, TaskStatus::Pending);

    let second = q.claim(&queues(), 10, "worker-b").await.unwrap().tasks.remove(0);
    assert_ne!(first.token, second.token);
    assert_eq!(second.attempts, 2);

    // A's late heartbeat and completion are refused; B's completion counts.
    assert_eq!(
        q.heartbeat(&[(id, first.token.clone())]).await.unwrap(),
        (vec![id], vec![])
    );
    assert!(matches!(
        q.complete(&first, &json!("from a")).await,
        Err(QueueError::LeaseLost)
    ));
    assert!(matches!(
        q.fail(&first, &failure(), None).await,
        Err(QueueError::LeaseLost)
    ));
    q.complete(&second, &json!("from b")).await.unwrap();
    let record = q.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Success);
    assert_eq!(record.result, Some(json!("from b")));
    assert_eq!(record.worker.as_deref(), Some("worker-b"));
    // A second completion of a final task is refused too.
    assert!(matches!(
        q.complete(&second, &json!("again")).await,
        Err(QueueError::NotRunning)
    ));
}

fn failure() -> Failure {
    Failure {
        exc_type: "TaskError".into(),
        message: "late".into(),
        traceback: "TaskError: late".into(),
    }
}

#[tokio::test]
async fn results_expire_after_the_result_ttl() {
    let redis = TestRedis::start();
    let q = queue(
        &redis,
        EngineConfig {
            result_ttl: Duration::from_secs(1),
            ..EngineConfig::default()
        },
    );
    let id = q.enqueue(&NewTask::new("noop", json!({})), false).await.unwrap().id;
    let task = q.claim(&queues(), 1, "w").await.unwrap().tasks.remove(0);
    // Running tasks never expire.
    let key = q.keys().task(&id.to_string());
    assert_eq!(redis.conn().pttl::<_, i64>(&key).unwrap(), -1);
    q.complete(&task, &json!(null)).await.unwrap();
    let ttl: i64 = redis.conn().pttl(&key).unwrap();
    assert!(ttl > 0 && ttl <= 1000, "ttl {ttl}");
    tokio::time::sleep(Duration::from_millis(1300)).await;
    assert_eq!(q.get(&id).await.unwrap(), None);
}

#[tokio::test]
async fn a_task_lost_too_often_is_failed_and_dead_lettered() {
    let redis = TestRedis::start();
    let q = queue(
        &redis,
        EngineConfig {
            max_lost_deliveries: 2,
            ..EngineConfig::default()
        },
    );
    let id = q.enqueue(&NewTask::new("noop", json!({})), false).await.unwrap().id;
    let far = q.config().lease.as_millis() as i64 + 1;
    for round in 1..=3 {
        let claimed = q.claim(&queues(), 1, "w").await.unwrap().tasks;
        assert_eq!(claimed.len(), 1, "round {round}");
        let reaped = q.reap_at(now_ms() + far).await.unwrap();
        assert_eq!(reaped, if round < 3 { (1, 0) } else { (0, 1) }, "round {round}");
    }
    let record = q.get(&id).await.unwrap().unwrap();
    assert_eq!(record.status, TaskStatus::Failure);
    assert_eq!(record.result.unwrap()["exc_type"], "WorkerLostError");
    let dead: Vec<String> = redis.conn().zrange(q.keys().dead_letter(), 0, -1).unwrap();
    assert_eq!(dead, vec![id.to_string()]);
    assert!(q.claim(&queues(), 1, "w").await.unwrap().tasks.is_empty());
}

#[tokio::test]
async fn heartbeats_keep_a_lease_alive() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let id = q.enqueue(&NewTask::new("noop", json!({})), false).await.unwrap().id;
    let task = q.claim(&queues(), 1, "w").await.unwrap().tasks.remove(0);
    let before: f64 = redis.conn().zscore(q.keys().leases(), id.to_string()).unwrap();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        q.heartbeat(&[(id, task.token.clone())]).await.unwrap(),
        (vec![], vec![])
    );
    let after: f64 = redis.conn().zscore(q.keys().leases(), id.to_string()).unwrap();
    assert!(after > before);
    // Not yet expired: the reaper leaves it alone.
    assert_eq!(q.reap().await.unwrap(), (0, 0));
}

#[tokio::test]
async fn released_tasks_go_back_to_the_front_of_their_queue() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let first = q.enqueue(&NewTask::new("noop", json!({})), false).await.unwrap().id;
    let second = q.enqueue(&NewTask::new("noop", json!({})), false).await.unwrap().id;
    let claimed = q.claim(&queues(), 1, "w").await.unwrap().tasks.remove(0);
    assert_eq!(claimed.id, first);
    q.release(&claimed).await.unwrap();
    let record = q.get(&first).await.unwrap().unwrap();
    assert_eq!((record.status, record.attempts), (TaskStatus::Pending, 0));
    let again: Vec<_> = q
        .claim(&queues(), 2, "w")
        .await
        .unwrap()
        .tasks
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(again, vec![first, second]);
}

#[tokio::test]
async fn every_transition_is_appended_to_the_events_stream() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let id = q.enqueue(&NewTask::new("noop", json!({})), false).await.unwrap().id;
    let task = q.claim(&queues(), 1, "w").await.unwrap().tasks.remove(0);
    q.fail(&task, &failure(), Some(now_ms())).await.unwrap();
    let task = q.claim(&queues(), 1, "w").await.unwrap().tasks.remove(0);
    q.complete(&task, &json!(1)).await.unwrap();

    let entries: redis::streams::StreamRangeReply = redis.conn().xrange_all(q.keys().events()).unwrap();
    let events: Vec<(String, String)> = entries
        .ids
        .iter()
        .map(|e| (e.get::<String>("event").unwrap(), e.get::<String>("task_id").unwrap()))
        .collect();
    let id = id.to_string();
    let expected = ["enqueued", "started", "retry", "started", "succeeded"].map(|e| (e.to_owned(), id.clone()));
    assert_eq!(events, expected);
}

#[tokio::test]
async fn a_delayed_task_is_promoted_only_when_due() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let mut task = NewTask::new("noop", json!({}));
    task.eta = Some(chrono::Utc::now() + Duration::from_millis(400));
    let id = q.enqueue(&task, false).await.unwrap().id;
    let claim = q.claim(&queues(), 1, "w").await.unwrap();
    assert!(claim.tasks.is_empty());
    let due = claim.next_due_ms.expect("the claim reports when the next task is due");
    assert!(due > now_ms() && due <= now_ms() + 400);
    tokio::time::sleep(Duration::from_millis(450)).await;
    assert_eq!(q.claim(&queues(), 1, "w").await.unwrap().tasks[0].id, id);
}

#[tokio::test]
async fn unknown_task_names_are_refused_unless_registered() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let task = NewTask::new("transcode", json!({}));
    assert!(matches!(q.enqueue(&task, true).await, Err(QueueError::UnknownTaskName(n)) if n == "transcode"));
    let info = celeriac::model::WorkerInfo {
        name: "custom-1".into(),
        hostname: "h".into(),
        pid: 1,
        queues: queues(),
        concurrency: 1,
        started_at: now_ms(),
        task_names: vec!["transcode".into()],
        task_defaults: vec![],
        rate_limits: vec![],
        task_schemas: vec![],
        commands: None,
    };
    q.register_worker(&info, Duration::from_secs(5), true).await.unwrap();
    q.enqueue(&task, true).await.unwrap();
    assert_eq!(q.registered_task_names().await.unwrap(), vec!["transcode".to_owned()]);
    let ttl: i64 = redis.conn().pttl(q.keys().worker("custom-1")).unwrap();
    assert!(ttl > 0 && ttl <= 5000);
}

#[tokio::test]
async fn due_delayed_tasks_count_as_ready_for_autoscalers() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let mut soon = NewTask::new("noop", json!({}));
    soon.eta = Some(chrono::Utc::now() + Duration::from_millis(200));
    let mut later = NewTask::new("noop", json!({}));
    later.eta = Some(chrono::Utc::now() + Duration::from_secs(60));
    q.enqueue(&soon, false).await.unwrap();
    q.enqueue(&later, false).await.unwrap();
    let stats = q.queue_stats("default").await.unwrap();
    assert_eq!((stats.ready, stats.delayed), (0, 2));
    tokio::time::sleep(Duration::from_millis(300)).await;
    let stats = q.queue_stats("default").await.unwrap();
    assert_eq!((stats.ready, stats.delayed), (1, 1), "due but not yet promoted");
}

#[tokio::test]
async fn a_worker_registration_drops_limits_and_defaults_it_no_longer_sets() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let mut info = celeriac::model::WorkerInfo {
        name: "w1".into(),
        hostname: "h".into(),
        pid: 1,
        queues: queues(),
        concurrency: 1,
        started_at: now_ms(),
        task_names: vec!["report".into()],
        task_defaults: vec![("report".into(), r#"{"max_retries":2}"#.into())],
        rate_limits: vec![("report".into(), 5, 1000)],
        task_schemas: vec![],
        commands: None,
    };
    q.register_worker(&info, Duration::from_secs(5), true).await.unwrap();
    let limit: Option<String> = redis.conn().hget(q.keys().rate_limits(), "report").unwrap();
    assert_eq!(limit.as_deref(), Some("5 1000"));
    info.task_defaults.clear();
    info.rate_limits.clear();
    q.register_worker(&info, Duration::from_secs(5), true).await.unwrap();
    let limit: Option<String> = redis.conn().hget(q.keys().rate_limits(), "report").unwrap();
    let defaults: Option<String> = redis.conn().hget(q.keys().task_defaults(), "report").unwrap();
    assert_eq!((limit, defaults), (None, None));
}

#[tokio::test]
async fn an_idempotency_key_lives_as_long_as_its_task() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let mut task = NewTask::new("noop", json!({}));
    task.idempotency_key = Some("invoice-7".into());
    let first = q.enqueue(&task, false).await.unwrap();
    assert!(first.created);
    let key = q.keys().idempotency("invoice-7");
    assert_eq!(
        redis.conn().pttl::<_, i64>(&key).unwrap(),
        -1,
        "no expiry while the task lives"
    );

    let claimed = q.claim(&queues(), 1, "w").await.unwrap().tasks.remove(0);
    q.fail(&claimed, &failure(), None).await.unwrap();
    assert!(
        redis.conn().pttl::<_, i64>(&key).unwrap() > 0,
        "expires with the final record"
    );
    q.resubmit(&first.id).await.unwrap();
    assert_eq!(
        redis.conn().pttl::<_, i64>(&key).unwrap(),
        -1,
        "a resubmitted task keeps its key"
    );
    let again = q.enqueue(&task, false).await.unwrap();
    assert_eq!((again.id, again.created), (first.id, false));
}

#[tokio::test]
async fn a_task_no_worker_has_fails_after_too_many_hand_backs_and_frees_its_rate_slot() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    redis::cmd("HSET")
        .arg(q.keys().rate_limits())
        .arg("orphan")
        .arg("1 60000")
        .query::<()>(&mut redis.conn())
        .unwrap();
    let id = q.enqueue(&NewTask::new("orphan", json!({})), false).await.unwrap().id;
    let mut handbacks = 0;
    loop {
        let claim = q.claim(&queues(), 1, "w").await.unwrap();
        let Some(task) = claim.tasks.into_iter().next() else {
            panic!("the hand-back must free the rate-limit slot (after {handbacks} hand-backs)");
        };
        q.release_after(&task, Duration::from_millis(1)).await.unwrap();
        let record = q.get(&id).await.unwrap().unwrap();
        if record.status == TaskStatus::Failure {
            assert_eq!(record.result.unwrap()["exc_type"], "NotRegistered");
            assert_eq!(record.attempts, 0, "hand-backs are not attempts");
            break;
        }
        handbacks += 1;
        assert!(handbacks <= 300, "never gave up");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    assert_eq!(handbacks, 300);
}

/// Scripts are sent by hash: after Redis forgot them (a restart, SCRIPT FLUSH)
/// each call loads its script again and succeeds, its arguments intact.
#[tokio::test]
async fn transitions_survive_a_script_flush() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let first = q
        .enqueue(&NewTask::new("echo", json!({"n": 1})), false)
        .await
        .unwrap()
        .id;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut redis.conn()).unwrap();
    let second = q
        .enqueue(&NewTask::new("echo", json!({"n": 2})), false)
        .await
        .unwrap()
        .id;
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut redis.conn()).unwrap();
    let tasks = q.claim(&queues(), 10, "worker-a").await.unwrap().tasks;
    let claimed: Vec<_> = tasks.iter().map(|t| (t.id, t.args.clone())).collect();
    assert_eq!(claimed, vec![(first, json!({"n": 1})), (second, json!({"n": 2}))]);
    let _: () = redis::cmd("SCRIPT").arg("FLUSH").query(&mut redis.conn()).unwrap();
    q.complete(&tasks[0], &json!("ok")).await.unwrap();
    assert_eq!(q.get(&first).await.unwrap().unwrap().status, TaskStatus::Success);
}

/// A worker's successes and its next claim in one call (claim.lua): the
/// completions are answered each on its own, then tasks are leased for the slots.
#[tokio::test]
async fn completions_and_the_next_claim_share_one_call() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(q.enqueue(&NewTask::new("echo", json!(i)), false).await.unwrap().id);
    }
    let first = q.claim(&queues(), 2, "worker-a").await.unwrap().tasks;
    assert_eq!(first.iter().map(|t| t.id).collect::<Vec<_>>(), ids[..2]);
    let (a, b) = (first[0].id.to_string(), first[1].id.to_string());
    let done = [
        Completion {
            id: &a,
            token: &first[0].token,
            result_json: "\"a\"",
        },
        // A stale token: refused, and it spoils nothing else.
        Completion {
            id: &b,
            token: "not-the-lease",
            result_json: "\"b\"",
        },
    ];
    let (answers, claim) = q
        .complete_and_claim(&done, &queues(), 2, "worker-a", None)
        .await
        .unwrap();
    assert!(answers[0].is_ok());
    assert!(matches!(answers[1], Err(QueueError::LeaseLost)));
    assert_eq!(claim.tasks.iter().map(|t| t.id).collect::<Vec<_>>(), ids[2..4]);
    let status = |i: usize| {
        let q = q.clone();
        let id = ids[i];
        async move { q.get(&id).await.unwrap().unwrap() }
    };
    let a_record = status(0).await;
    assert_eq!(
        (a_record.status, a_record.result),
        (TaskStatus::Success, Some(json!("a")))
    );
    for i in 1..4 {
        let r = status(i).await;
        assert_eq!(
            (r.status, r.worker.as_deref()),
            (TaskStatus::Started, Some("worker-a")),
            "task {i}"
        );
    }

    // Claiming nothing: the completion is recorded, the queue is not touched.
    let c = &claim.tasks[0];
    let c_id = c.id.to_string();
    let only = [Completion {
        id: &c_id,
        token: &c.token,
        result_json: "null",
    }];
    let (answers, none) = q
        .complete_and_claim(&only, &queues(), 0, "worker-a", None)
        .await
        .unwrap();
    assert!(answers[0].is_ok() && none.tasks.is_empty());
    assert_eq!(status(2).await.status, TaskStatus::Success);
    assert_eq!(status(4).await.status, TaskStatus::Pending);
}

/// A claim whose answer is lost in a stall (Redis frozen while the call is out,
/// well past the 500 ms response timeout) leaves no task leased to nobody: the
/// worker asks for the call's receipt once Redis answers. Whichever came first in
/// Redis, the call or its receipt's fence (the shared connection may have been
/// replaced meanwhile), every task is held by the caller or claimable at once,
/// instead of waiting out its lease.
#[tokio::test]
async fn a_claim_whose_answer_is_lost_in_a_stall_hands_over_what_it_leased() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    // Loads the script, as a running worker has (a call meeting NOSCRIPT does nothing).
    assert!(q.claim(&queues(), 10, "worker-a").await.unwrap().tasks.is_empty());
    let mut ids = Vec::new();
    for i in 0..3 {
        ids.push(q.enqueue(&NewTask::new("echo", json!(i)), false).await.unwrap().id);
    }
    redis.signal("STOP");
    let claim = tokio::spawn({
        let q = q.clone();
        async move { q.claim(&queues(), 10, "worker-a").await }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.signal("CONT");
    let claimed = claim.await.unwrap();
    let held: Vec<uuid::Uuid> = claimed
        .as_ref()
        .map(|c| c.tasks.iter().map(|t| t.id).collect())
        .unwrap_or_default();
    for id in &ids {
        let status = q.get(id).await.unwrap().unwrap().status;
        let expected = if held.contains(id) {
            TaskStatus::Started
        } else {
            TaskStatus::Pending
        };
        assert_eq!(status, expected, "{id}: held by the caller: {}", held.contains(id));
    }
    // Either Redis ran the call before its receipt (the receipt handed its tasks
    // over) or the receipt's fence came first (the tasks stayed queued): either
    // way, the next claim takes what the caller does not hold, at once.
    println!("lost claim: the receipt handed over {} of 3 tasks", held.len());
    let mut tasks = claimed.map(|c| c.tasks).unwrap_or_default();
    tasks.extend(q.claim(&queues(), 10, "worker-a").await.unwrap().tasks);
    let mut all: Vec<uuid::Uuid> = tasks.iter().map(|t| t.id).collect();
    all.sort();
    ids.sort();
    assert_eq!(all, ids);
    for task in tasks {
        q.complete(&task, &json!("done")).await.unwrap();
    }
    let leased: Vec<String> = redis.conn().zrange(q.keys().leases(), 0, -1).unwrap();
    assert!(leased.is_empty(), "{leased:?}");
}

/// A claim call that reaches Redis after its receipt was asked for (it was held
/// back on another connection) claims nothing and records nothing: the receipt's
/// answer stays true.
#[tokio::test]
async fn a_claim_fenced_by_its_receipt_does_nothing() {
    use celeriac::redis::scripts::{self, ClaimArgs};
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    let id = q.enqueue(&NewTask::new("echo", json!(1)), false).await.unwrap().id;
    let running = q.enqueue(&NewTask::new("echo", json!(2)), false).await.unwrap().id;
    let first = q.claim(&queues(), 2, "worker-a").await.unwrap().tasks;
    let holding = first.iter().find(|t| t.id == running).unwrap();
    let other = first.iter().find(|t| t.id == id).unwrap();
    // Hand `id` back so that the fenced call would find it ready.
    q.release(other).await.unwrap();
    let (running_id, result) = (running.to_string(), "\"late\"".to_owned());
    let done = [celeriac::queue::Completion {
        id: &running_id,
        token: &holding.token,
        result_json: &result,
    }];
    let keys = q.keys().clone();
    let ctx = scripts::Ctx {
        keys: &keys,
        now_ms: now_ms(),
        result_ttl_ms: 60_000,
        events_maxlen: 1000,
    };
    let queue_names = queues();
    let args = ClaimArgs {
        queues: &queue_names,
        max: 5,
        lease_ms: 30_000,
        worker: "worker-b",
        token_base: "fenced-call",
    };
    let mut conn = q.connection();
    let receipt = scripts::claim_receipt(&mut conn, &ctx, &done, &args, 30_000)
        .await
        .unwrap();
    assert!(receipt.rows.is_empty());
    assert_eq!(receipt.recorded, vec![false]);
    // The held-back call arrives: fenced, it neither records the success nor claims.
    let late = scripts::claim(&mut conn, &ctx, &done, &args).await;
    assert!(
        matches!(late, Err(QueueError::UnexpectedReply(0))),
        "{:?}",
        late.map(|c| c.rows)
    );
    assert_eq!(q.get(&id).await.unwrap().unwrap().status, TaskStatus::Pending);
    assert_eq!(q.get(&running).await.unwrap().unwrap().status, TaskStatus::Started);
    // A call not fenced claims `id` as usual, and its receipt then finds it.
    let args = ClaimArgs {
        token_base: "unfenced-call",
        ..args
    };
    let claimed = scripts::claim(&mut conn, &ctx, &[], &args).await.unwrap();
    assert_eq!(claimed.rows.len(), 1);
    let receipt = scripts::claim_receipt(&mut conn, &ctx, &[], &args, 30_000)
        .await
        .unwrap();
    assert_eq!(receipt.rows, claimed.rows);
}

/// The same with successes on board (a worker's fused complete-and-claim call):
/// the receipt says which successes the lost call recorded (they answer `Ok`,
/// and are not recorded twice) and hands over the task it claimed for their slot.
#[tokio::test]
async fn a_lost_complete_and_claim_answers_its_successes_from_the_receipt() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    for i in 0..3 {
        q.enqueue(&NewTask::new("echo", json!(i)), false).await.unwrap();
    }
    let running = q.claim(&queues(), 1, "worker-a").await.unwrap().tasks;
    let (id, result) = (running[0].id.to_string(), "\"done\"".to_owned());
    redis.signal("STOP");
    let call = tokio::spawn({
        let (q, token) = (q.clone(), running[0].token.clone());
        async move {
            let done = [Completion {
                id: &id,
                token: &token,
                result_json: &result,
            }];
            q.complete_and_claim(&done, &queues(), 1, "worker-a", None).await
        }
    });
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.signal("CONT");
    let (answers, claim) = call.await.unwrap().expect("the receipt answers for the lost call");
    assert!(matches!(answers.as_slice(), [Ok(())]), "{answers:?}");
    assert_eq!(claim.tasks.len(), 1);
    let done = q.get(&running[0].id).await.unwrap().unwrap();
    assert_eq!(done.status, TaskStatus::Success);
    assert_eq!(done.result, Some(json!("done")));
    // The handed-over task runs under its lease: its success is accepted.
    q.complete(&claim.tasks[0], &json!("next")).await.unwrap();
    let leased: Vec<String> = redis.conn().zrange(q.keys().leases(), 0, -1).unwrap();
    assert!(leased.is_empty(), "{leased:?}");
}

/// A worker that stops during an outage does not wait out the receipt of a lost
/// call (up to 20 s): cancelling `stop` (the worker's "claiming" token, which its
/// drain cancels) ends the wait with the call's error; the call's tasks then wait
/// out their lease as before receipts.
#[tokio::test]
async fn a_lost_complete_and_claim_stops_asking_for_its_receipt_when_told_to_stop() {
    let redis = TestRedis::start();
    let q = queue(&redis, EngineConfig::default());
    q.enqueue(&NewTask::new("echo", json!(1)), false).await.unwrap();
    let running = q.claim(&queues(), 1, "worker-a").await.unwrap().tasks;
    let (id, result) = (running[0].id.to_string(), "\"done\"".to_owned());
    let stop = tokio_util::sync::CancellationToken::new();
    redis.signal("STOP");
    let call = tokio::spawn({
        let (q, token, stop) = (q.clone(), running[0].token.clone(), stop.clone());
        async move {
            let done = [Completion {
                id: &id,
                token: &token,
                result_json: &result,
            }];
            q.complete_and_claim(&done, &queues(), 1, "worker-a", Some(&stop)).await
        }
    });
    // The call's answer is lost after 500 ms; the receipt is being asked for.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(!call.is_finished(), "the receipt is awaited while Redis is frozen");
    let stopping = Instant::now();
    stop.cancel();
    let outcome = tokio::time::timeout(Duration::from_secs(3), call)
        .await
        .expect("the wait ends when told to stop")
        .unwrap();
    redis.signal("CONT");
    assert!(stopping.elapsed() < Duration::from_secs(1), "{:?}", stopping.elapsed());
    let error = outcome.expect_err("no receipt: the call's own error");
    assert!(error.answer_lost(), "{error:?}");
}
