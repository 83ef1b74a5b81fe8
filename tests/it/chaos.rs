//! Chaos tests: workers killed in a loop, Redis killed and paused under load, a
//! worker cut off from Redis for longer than its lease. Each is bounded in time,
//! all traffic on loopback; each prints what it measured (`--nocapture`).

use std::{
    collections::HashMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{StreamExt, stream};
use serde_json::{Value, json};

use crate::{
    chaos_helpers::{AofRedis, CutProxy, LoggedWorker, events_by_task, finals},
    helpers::{Api, TestRedis, Worker, unique_ns},
};

/// Polls until every id of `ids` has a final event (or `within` passes); returns
/// the events of each task.
async fn await_finals(
    conn: &mut redis::Connection,
    ns: &str,
    ids: &[String],
    within: Duration,
) -> HashMap<String, Vec<String>> {
    let deadline = Instant::now() + within;
    loop {
        let events = events_by_task(conn, ns);
        let done = ids
            .iter()
            .filter(|id| events.get(*id).is_some_and(|e| finals(e) > 0))
            .count();
        if done == ids.len() || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn workers_killed_in_a_loop_leave_every_task_with_exactly_one_final_state() {
    const TASKS: i64 = 2000;
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let url = redis.url();
    let args: &[&str] = &["--lease-secs", "2", "--concurrency", "8"];
    let mut workers = Vec::new();
    for _ in 0..3 {
        workers.push(Worker::start(&url, &ns, args).await);
    }
    let t0 = Instant::now();

    // The killer: every 400 ms one worker (in turn) gets kill -9 and a fresh one takes its place.
    let stop = Arc::new(AtomicBool::new(false));
    let killer = {
        let (stop, url, ns) = (stop.clone(), url.clone(), ns.clone());
        tokio::spawn(async move {
            let mut kills = 0usize;
            while !stop.load(Ordering::SeqCst) {
                tokio::time::sleep(Duration::from_millis(400)).await;
                let i = kills % workers.len();
                workers[i].proc.signal("KILL");
                workers[i] = Worker::start(&url, &ns, args).await;
                kills += 1;
            }
            kills
        })
    };

    // Bursts (200 tasks every 700 ms), so kills land while tasks run.
    let mut ids: Vec<String> = Vec::new();
    for chunk in (0..TASKS).collect::<Vec<_>>().chunks(200) {
        let batch = futures_util::future::join_all(
            chunk
                .iter()
                .map(|i| api.enqueue(json!({"name": "add", "args": [i, 2 * i]}))),
        );
        ids.extend(batch.await);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    let enqueued_in = t0.elapsed();
    let mut conn = redis.conn();
    let events = await_finals(
        &mut conn,
        &ns,
        &ids,
        Duration::from_secs(40).saturating_sub(t0.elapsed()),
    )
    .await;
    stop.store(true, Ordering::SeqCst);
    let kills = killer.await.unwrap();
    let took = t0.elapsed();

    let mut lost = Vec::new();
    let mut duplicated = Vec::new();
    let mut redelivered = 0;
    for id in &ids {
        let ev = events.get(id).cloned().unwrap_or_default();
        match finals(&ev) {
            0 => lost.push(id.clone()),
            1 => {}
            _ => duplicated.push((id.clone(), ev.clone())),
        }
        if ev.iter().filter(|e| *e == "started").count() > 1 {
            redelivered += 1;
        }
    }
    let records: Vec<(u16, Value)> = stream::iter(&ids)
        .map(|id| api.get_task(id))
        .buffered(32)
        .collect()
        .await;
    let mut wrong = Vec::new();
    let mut attempts_over_one = 0;
    for (i, (status, task)) in records.iter().enumerate() {
        if *status != 200 || task["status"] != "SUCCESS" || task["result"] != json!(3 * i as i64) {
            wrong.push(task.clone());
        }
        if task["attempts"].as_u64().unwrap_or(0) > 1 {
            attempts_over_one += 1;
        }
    }
    println!(
        "chaos/kill-workers: tasks={TASKS} workers_killed={kills} lost={} duplicate_finals={} wrong_results={} \
         redelivered(attempts>1)={attempts_over_one} redelivered(started>1)={redelivered} \
         enqueued_in={enqueued_in:.1?} took={took:.1?}",
        lost.len(),
        duplicated.len(),
        wrong.len()
    );
    assert!(kills >= 5, "the killer ran only {kills} times");
    assert!(
        lost.is_empty(),
        "{} tasks never finished, e.g. {:?}",
        lost.len(),
        &lost[..1]
    );
    assert!(duplicated.is_empty(), "tasks with several final events: {duplicated:?}");
    assert!(wrong.is_empty(), "{} wrong records, e.g. {}", wrong.len(), wrong[0]);
}

/// One request of a load loop: what was sent, what came back, how long it took.
#[derive(Clone, Debug)]
struct Sent {
    i: i64,
    status: u16,
    id: Option<String>,
    at: Instant,
    took: Duration,
}

/// Enqueues `add(i, i)` tasks one after another (with `pause` between them) until
/// `stop`; returns every answer.
fn load(api: Arc<Api>, stop: Arc<AtomicBool>, pause: Duration) -> tokio::task::JoinHandle<Vec<Sent>> {
    tokio::spawn(async move {
        let mut sent = Vec::new();
        let mut i = 0;
        while !stop.load(Ordering::SeqCst) {
            let started = Instant::now();
            let key = format!("load-{i}");
            let (status, body) = api
                .post_task(json!({"name": "add", "args": [i, i], "idempotency_key": key}))
                .await;
            sent.push(Sent {
                i,
                status,
                id: body["task_id"].as_str().map(str::to_owned),
                at: Instant::now(),
                took: started.elapsed(),
            });
            i += 1;
            tokio::time::sleep(pause).await;
        }
        sent
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_killed_under_load_keeps_every_task_acknowledged_a_second_before_the_crash() {
    let mut redis = AofRedis::start();
    let ns = unique_ns();
    let api = Arc::new(Api::start(&redis.url(), &ns, &[]).await);
    let lease: &[&str] = &["--lease-secs", "2"];
    let workers = [
        Worker::start(&redis.url(), &ns, lease).await,
        Worker::start(&redis.url(), &ns, lease).await,
    ];
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(api.clone(), stop.clone(), Duration::from_millis(5));
    tokio::time::sleep(Duration::from_secs(3)).await;

    let crashed_at = Instant::now();
    redis.kill9();
    // Requests that began before the process was reaped may still have been served.
    let dead_at = Instant::now();
    // While Redis is down: every answer comes fast, and it is a 503.
    let mut probes = Vec::new();
    while crashed_at.elapsed() < Duration::from_secs(3) {
        for path in ["/readyz", "/queues", "/tasks/00000000-0000-4000-8000-000000000000"] {
            let started = Instant::now();
            let status = api.http.get(api.url(path)).send().await.unwrap().status().as_u16();
            probes.push((path, status, started.elapsed()));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for w in &workers {
        assert_eq!(reqwest::get(w.health_url("/healthz")).await.unwrap().status(), 200);
        assert_eq!(reqwest::get(w.health_url("/readyz")).await.unwrap().status(), 503);
    }
    // Answers after this may come from the restarted server (it serves before `restart` returns).
    let restart_began = Instant::now();
    redis.restart();
    let restarted_at = Instant::now();
    // The API recovers on its own: the load loop gets a 202 again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = loader.await.unwrap();

    // Requests sent and answered while Redis was down.
    let down = |s: &Sent| s.at - s.took > dead_at && s.at < restart_began;
    let during: Vec<&Sent> = sent.iter().filter(|s| down(s)).collect();
    let slowest_down = during
        .iter()
        .map(|s| s.took)
        .chain(probes.iter().map(|p| p.2))
        .max()
        .unwrap_or_default();
    let acked: Vec<&Sent> = sent.iter().filter(|s| s.status == 202).collect();
    let safe: Vec<&Sent> = acked
        .iter()
        .copied()
        .filter(|s| s.at + Duration::from_secs(1) < crashed_at)
        .collect();
    let window: Vec<&Sent> = acked
        .iter()
        .copied()
        .filter(|s| s.at + Duration::from_secs(1) >= crashed_at && s.at < crashed_at)
        .collect();
    let after: Vec<&Sent> = acked.iter().copied().filter(|s| s.at > restarted_at).collect();
    let recovered_in = after.first().map(|s| s.at - restarted_at);

    let check = |s: &Sent| {
        let api = api.clone();
        let s = s.clone();
        async move {
            let (status, task) = api.get_task(s.id.as_deref().unwrap()).await;
            if status == 404 {
                return Err(format!("task {} is gone", s.i));
            }
            let task = if task["status"] == "SUCCESS" {
                task
            } else {
                api.wait_task(s.id.as_deref().unwrap(), 30).await
            };
            if task["status"] != "SUCCESS" || task["result"] != json!(2 * s.i) {
                return Err(format!("task {}: {task}", s.i));
            }
            Ok(())
        }
    };
    let safe_results: Vec<Result<(), String>> = stream::iter(&safe).map(|s| check(s)).buffered(16).collect().await;
    let after_results: Vec<Result<(), String>> = stream::iter(&after).map(|s| check(s)).buffered(16).collect().await;
    let window_results: Vec<Result<(), String>> = stream::iter(&window).map(|s| check(s)).buffered(16).collect().await;
    let events = events_by_task(&mut redis.conn(), &ns);
    let duplicate_finals = safe
        .iter()
        .filter(|s| events.get(s.id.as_deref().unwrap()).is_some_and(|e| finals(e) > 1))
        .count();
    let lost_safe: Vec<&String> = safe_results.iter().filter_map(|r| r.as_ref().err()).collect();
    let lost_after: Vec<&String> = after_results.iter().filter_map(|r| r.as_ref().err()).collect();
    let lost_window = window_results.iter().filter(|r| r.is_err()).count();
    println!(
        "chaos/redis-kill9-aof-everysec: requests={} acked={} acked_before_crash-1s={} lost_of_those={} \
         acked_in_last_second={} lost_of_those={lost_window} acked_after_restart={} lost_of_those={} \
         duplicate_finals={duplicate_finals} answers_while_down={} slowest_while_down={slowest_down:.2?} \
         slowest_of_all={:.2?} api_recovered_in={recovered_in:.2?}",
        sent.len(),
        acked.len(),
        safe.len(),
        lost_safe.len(),
        window.len(),
        after.len(),
        lost_after.len(),
        during.len() + probes.len(),
        sent.iter().map(|s| s.took).max().unwrap_or_default(),
    );
    assert!(safe.len() > 20, "too little load before the crash: {}", safe.len());
    assert!(lost_safe.is_empty(), "{lost_safe:?}");
    assert!(lost_after.is_empty(), "{lost_after:?}");
    assert_eq!(duplicate_finals, 0);
    for s in &during {
        assert_eq!(s.status, 503, "{s:?}");
    }
    for (path, status, took) in &probes {
        assert!(
            *status == 503 || (*path == "/tasks/00000000-0000-4000-8000-000000000000" && *status == 404),
            "{path}: {status}"
        );
        let _ = took;
    }
    assert!(slowest_down < Duration::from_millis(2500), "{slowest_down:?}");
    assert!(!after.is_empty(), "the API did not recover after Redis restarted");
    for w in &workers {
        assert_eq!(reqwest::get(w.health_url("/readyz")).await.unwrap().status(), 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_redis_paused_for_ten_seconds_answers_fast_then_loses_nothing_and_takes_no_lease() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Arc::new(Api::start(&redis.url(), &ns, &[]).await);
    // A lease far longer than the stall: no lease may expire, so every task starts exactly once.
    let lease: &[&str] = &["--lease-secs", "30", "--concurrency", "4"];
    let _workers = [
        Worker::start(&redis.url(), &ns, lease).await,
        Worker::start(&redis.url(), &ns, lease).await,
    ];
    // Tasks running across the stall.
    let mut sleepers = Vec::new();
    for _ in 0..4 {
        sleepers.push(api.enqueue(json!({"name": "sleep", "args": {"seconds": 3}})).await);
    }
    for id in &sleepers {
        api.wait_until(id, Duration::from_secs(10), |t| t["status"] == "STARTED")
            .await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let loader = load(api.clone(), stop.clone(), Duration::from_millis(200));
    tokio::time::sleep(Duration::from_millis(500)).await;

    redis.signal("STOP");
    let stopped_at = Instant::now();
    let mut reads = Vec::new();
    while stopped_at.elapsed() < Duration::from_secs(10) {
        let started = Instant::now();
        let (status, _) = api.get_task(&sleepers[0]).await;
        reads.push((status, started.elapsed()));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    redis.signal("CONT");
    let thawed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::SeqCst);
    let sent = loader.await.unwrap();

    // Answers during the stall came within 2.5 s.
    let stalled = |at: Instant, took: Duration| at - took > stopped_at && at < thawed_at;
    let during: Vec<&Sent> = sent.iter().filter(|s| stalled(s.at, s.took)).collect();
    let slowest = sent
        .iter()
        .map(|s| s.took)
        .chain(reads.iter().map(|r| r.1))
        .max()
        .unwrap();
    let refused = sent.iter().filter(|s| s.status != 202).count();

    // A POST answered 503 may still have enqueued: the same idempotency key tells.
    let mut enqueued_anyway = 0;
    let mut ids: Vec<(i64, String)> = Vec::new();
    for s in &sent {
        let id = match (&s.id, s.status) {
            (Some(id), 202) => id.clone(),
            _ => {
                let key = format!("load-{}", s.i);
                let (status, body) = api
                    .post_task(json!({"name": "add", "args": [s.i, s.i], "idempotency_key": key}))
                    .await;
                assert!(status == 200 || status == 202, "{status} {body}");
                if status == 200 {
                    enqueued_anyway += 1;
                }
                body["task_id"].as_str().unwrap().to_owned()
            }
        };
        ids.push((s.i, id));
    }
    let mut all: Vec<String> = ids.iter().map(|(_, id)| id.clone()).collect();
    all.extend(sleepers.iter().cloned());
    let events = await_finals(&mut redis.conn(), &ns, &all, Duration::from_secs(30)).await;
    let mut lost = 0;
    let mut starts_not_one = Vec::new();
    for id in &all {
        let ev = events.get(id).cloned().unwrap_or_default();
        if finals(&ev) != 1 {
            lost += 1;
        }
        if ev.iter().filter(|e| *e == "started").count() != 1 {
            starts_not_one.push((id.clone(), ev));
        }
    }
    for (i, id) in &ids {
        let (_, task) = api.get_task(id).await;
        assert_eq!(task["result"], json!(2 * i), "{task}");
    }
    for id in &sleepers {
        assert_eq!(api.get_task(id).await.1["status"], "SUCCESS");
    }
    println!(
        "chaos/redis-stop-10s: requests={} during_stall={} refused_503={refused} enqueued_despite_503={enqueued_anyway} \
         reads_during_stall={} slowest_answer={slowest:.2?} tasks={} lost={lost} started_other_than_once={}",
        sent.len(),
        during.len(),
        reads.len(),
        all.len(),
        starts_not_one.len()
    );
    assert!(slowest < Duration::from_millis(2500), "{slowest:?}");
    assert!(reads.iter().all(|r| r.0 == 503), "{reads:?}");
    assert!(during.iter().all(|s| s.status == 503), "{during:?}");
    assert_eq!(lost, 0);
    // Every task started exactly once: a claim Redis ran after the worker had
    // stopped waiting for its answer (sent during the stall) is read back by its
    // receipt, or fenced by it, so no task waits out its lease to run again.
    assert!(starts_not_one.is_empty(), "started other than once: {starts_not_one:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_cut_off_longer_than_its_lease_loses_its_task_and_its_late_result() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let proxy = CutProxy::start(redis.port).await;
    let lease: &[&str] = &["--lease-secs", "2"];
    let cut_off = LoggedWorker::start(&proxy.url(), &ns, lease).await;

    let id = api.enqueue(json!({"name": "sleep", "args": {"seconds": 3}})).await;
    api.wait_until(&id, Duration::from_secs(10), |t| {
        t["status"] == "STARTED" && t["worker"] == cut_off.name
    })
    .await;
    let t0 = Instant::now();
    proxy.cut();

    // Another worker, connected directly, gets the task once the lease expires.
    let rescuer = LoggedWorker::start(&redis.url(), &ns, lease).await;
    api.wait_until(&id, Duration::from_secs(15), |t| {
        t["status"] == "STARTED" && t["worker"] == rescuer.name
    })
    .await;
    let redelivered_after = t0.elapsed();
    // Cut for longer than the lease (plus a margin); the first worker's sleep has ended meanwhile.
    let cut_for = Duration::from_millis(3500).max(redelivered_after);
    tokio::time::sleep(cut_for.saturating_sub(t0.elapsed())).await;
    proxy.restore();

    let task = api.wait_task(&id, 20).await;
    // Give the first worker's late attempt time to reach Redis and be refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cut_off.log().contains("lease lost") && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let log = cut_off.log();
    let events = events_by_task(&mut redis.conn(), &ns).remove(&id).unwrap_or_default();
    let late_result_refused = log.contains("result dropped");
    println!(
        "chaos/worker-cut-off: lease=2s cut_for={:.1?} redelivered_after={redelivered_after:.1?} events={events:?} \
         late_result_refused={late_result_refused} heartbeat_saw_lease_lost={}",
        cut_for,
        log.contains("lease lost; cancelling")
    );
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert_eq!(task["worker"], rescuer.name, "{task}");
    assert_eq!(task["attempts"], 2, "{task}");
    assert_eq!(finals(&events), 1, "{events:?}");
    assert_eq!(events.iter().filter(|e| *e == "started").count(), 2, "{events:?}");
    assert!(log.contains("lease lost"), "the cut-off worker never noticed: {log}");
    assert!(
        late_result_refused,
        "the cut-off worker's late result was not refused: {log}"
    );
    // Its result stays the rescuer's, whatever the first worker tried.
    assert_eq!(api.get_task(&id).await.1["worker"], rescuer.name);
}
