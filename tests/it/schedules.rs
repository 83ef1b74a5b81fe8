//! Periodic tasks: several scheduler processes (`celeriac-worker --beat-only`) on
//! one Redis, kill -9 and SIGSTOP of the leader, the schedules API and the file.

use std::{
    collections::BTreeSet,
    path::Path,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use celeriac::{
    config::{EngineConfig, RedisConfig, SchedulerConfig},
    model::now_ms,
    model::schedule::Schedule,
    scheduler::{
        leader::{self, Lease},
        store::{self, Fire, FireMode, Fired},
    },
};
use chrono::{DateTime, Utc};
use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, unique_ns};

/// A `celeriac-worker --beat-only` process; killed on drop.
struct Beat {
    child: Child,
    name: String,
}

impl Beat {
    fn start(redis: &TestRedis, ns: &str, file: Option<&Path>) -> Self {
        let name = format!("beat-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_celeriac-worker"));
        cmd.args(["--beat-only", "--name", &name])
            .env_remove("CELERIAC_SCHEDULE_FILE")
            .env("CELERIAC_BROKER_URL", redis.url())
            .env("CELERIAC_NAMESPACE", ns)
            .env("CELERIAC_BEAT_LEASE_MS", "3000")
            .env("RUST_LOG", std::env::var("TEST_LOG").unwrap_or_else(|_| "warn".into()))
            .stdout(Stdio::null());
        if std::env::var("TEST_LOG").is_err() {
            cmd.stderr(Stdio::null());
        }
        if let Some(f) = file {
            cmd.env("CELERIAC_SCHEDULE_FILE", f);
        }
        Self {
            child: cmd.spawn().expect("worker binary"),
            name,
        }
    }

    fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap()
            .success();
        assert!(ok, "kill -{sig}");
    }

    fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }
}

impl Drop for Beat {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn queue(redis: &TestRedis, ns: &str) -> celeriac::Queue {
    let mut cfg = RedisConfig::new(redis.url());
    cfg.namespace = ns.to_owned();
    celeriac::Queue::connect(&cfg, EngineConfig::default()).unwrap()
}

fn schedule(v: Value) -> Schedule {
    serde_json::from_value(v).unwrap()
}

async fn save(q: &celeriac::Queue, s: &Schedule) {
    let next = store::initial_next_run(s, Utc::now());
    store::save(&mut q.connection(), q.keys(), s, next, now_ms(), false)
        .await
        .unwrap();
}

fn leader(redis: &TestRedis, ns: &str) -> Option<String> {
    redis.conn().hget(format!("{{{ns}}}:scheduler:leader"), "name").unwrap()
}

/// Waits until a leader other than `not` leads; returns it and when it was seen.
async fn wait_leader(redis: &TestRedis, ns: &str, not: Option<&str>, within: Duration) -> (String, Instant) {
    let deadline = Instant::now() + within;
    loop {
        if let Some(l) = leader(redis, ns).filter(|l| Some(l.as_str()) != not) {
            return (l, Instant::now());
        }
        assert!(Instant::now() < deadline, "no new leader within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A fired task: its schedule's name, due time and creation time (ms).
#[derive(Debug)]
struct Run {
    schedule: String,
    due_ms: i64,
    created_ms: i64,
}

/// Every task record of the namespace that a schedule fired.
fn fired(redis: &TestRedis, ns: &str) -> Vec<Run> {
    let mut conn = redis.conn();
    let keys: Vec<String> = conn.keys(format!("{{{ns}}}:task:*")).unwrap();
    keys.iter()
        .filter_map(|k| {
            let (schedule, created): (Option<String>, Option<i64>) = redis::cmd("HMGET")
                .arg(k)
                .arg("schedule")
                .arg("created_at")
                .query(&mut conn)
                .unwrap();
            let s: Value = serde_json::from_str(&schedule?).unwrap();
            let due = DateTime::parse_from_rfc3339(s["due_at"].as_str().unwrap()).unwrap();
            Some(Run {
                schedule: s["name"].as_str().unwrap().to_owned(),
                due_ms: due.timestamp_millis(),
                created_ms: created.unwrap(),
            })
        })
        .collect()
}

fn runs_counter(redis: &TestRedis, ns: &str, name: &str) -> u64 {
    redis
        .conn()
        .hget::<_, _, Option<u64>>(format!("{{{ns}}}:schedule:{name}"), "runs")
        .unwrap()
        .unwrap_or(0)
}

fn epoch_ms(at: Instant) -> i64 {
    now_ms() - Instant::now().duration_since(at).as_millis() as i64
}

#[tokio::test]
async fn three_schedulers_fire_each_due_time_once_through_a_kill_and_a_stop_of_the_leader() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let q = queue(&redis, &ns);
    save(&q, &schedule(json!({"name": "tick", "task": "noop", "every": 1}))).await;
    save(
        &q,
        &schedule(json!({"name": "cron2", "task": "noop", "cron": "*/2 * * * * *"})),
    )
    .await;
    let mut beats: Vec<Beat> = (0..3).map(|_| Beat::start(&redis, &ns, None)).collect();
    let (first, _) = wait_leader(&redis, &ns, None, Duration::from_secs(10)).await;
    let started = now_ms();
    tokio::time::sleep(Duration::from_secs(4)).await;

    // kill -9 the leader: a standby takes over within 5 s.
    let victim = beats.iter().position(|b| b.name == first).unwrap();
    let killed_at = Instant::now();
    beats[victim].signal("KILL");
    let (second, took_over) = wait_leader(&redis, &ns, Some(&first), Duration::from_secs(6)).await;
    let takeover = took_over - killed_at;
    assert!(takeover <= Duration::from_secs(5), "takeover took {takeover:?}");
    let kill_window = (epoch_ms(killed_at), epoch_ms(took_over));
    tokio::time::sleep(Duration::from_secs(2)).await;

    // SIGSTOP the new leader past its lease, then let it run again.
    let stopped = beats.iter().position(|b| b.name == second).unwrap();
    let stopped_at = Instant::now();
    beats[stopped].signal("STOP");
    let (third, third_at) = wait_leader(&redis, &ns, Some(&second), Duration::from_secs(6)).await;
    assert_ne!(third, first);
    tokio::time::sleep(Duration::from_millis(4500).saturating_sub(stopped_at.elapsed())).await;
    beats[stopped].signal("CONT");
    let stop_window = (epoch_ms(stopped_at), epoch_ms(third_at));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        leader(&redis, &ns).as_deref(),
        Some(third.as_str()),
        "the thawed leader took over again"
    );
    assert!(beats[stopped].is_running());
    let ended = now_ms();
    drop(beats);

    let runs = fired(&redis, &ns);
    for (name, period) in [("tick", 1000), ("cron2", 2000)] {
        let dues: Vec<i64> = runs.iter().filter(|r| r.schedule == name).map(|r| r.due_ms).collect();
        let unique: BTreeSet<i64> = dues.iter().copied().collect();
        assert_eq!(unique.len(), dues.len(), "{name}: a due time fired twice: {dues:?}");
        assert_eq!(
            runs_counter(&redis, &ns, name),
            dues.len() as u64,
            "{name}: runs counter"
        );
        assert!(unique.iter().all(|d| d % period == 0), "{name}: off-grid due time");
        // Every due time between start and end fired, except around the two takeovers.
        let in_fault = |d: i64| {
            [kill_window, stop_window]
                .iter()
                .any(|(from, to)| d >= from - 1000 && d <= to + 1000)
        };
        let first_due = (started / period + 1) * period;
        let missing: Vec<i64> = (0..)
            .map(|k| first_due + k * period)
            .take_while(|d| *d < ended - 1000)
            .filter(|d| !unique.contains(d) && !in_fault(*d))
            .collect();
        assert!(missing.is_empty(), "{name}: due times never fired: {missing:?}");
        // Outside the takeovers, each run fires within 1 s of its due time.
        for r in runs.iter().filter(|r| r.schedule == name && !in_fault(r.due_ms)) {
            let late = r.created_ms - r.due_ms;
            assert!((0..=1000).contains(&late), "{name}: fired {late} ms after its due time");
        }
    }
    assert!(runs.iter().filter(|r| r.schedule == "tick").count() >= 8);
}

#[tokio::test]
async fn a_stale_fencing_token_or_a_due_time_already_fired_fires_nothing() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let q = queue(&redis, &ns);
    let k = q.keys();
    let s = schedule(json!({"name": "s", "task": "noop", "every": 60}));
    save(&q, &s).await;
    let rec = store::get(&mut q.connection(), k, "s").await.unwrap().unwrap();
    let due = rec.next_run_at.unwrap();
    let lease = |name: &'static str, held: u64| {
        let q = q.clone();
        async move {
            leader::acquire(&mut q.connection(), q.keys(), name, held, 3000, now_ms())
                .await
                .unwrap()
        }
    };
    let Lease::Leader {
        token: old,
        fresh: true,
    } = lease("a", 0).await
    else {
        panic!("a leads")
    };
    assert!(
        matches!(lease("b", 0).await, Lease::Standby { .. }),
        "one leader at a time"
    );
    let fire = |token: u64, version: i64| Fire {
        schedule: &s,
        mode: FireMode::Due,
        token,
        version,
        due,
        next: s.next_after(due),
        now_ms: now_ms(),
    };
    // The leader's lease lapses and b takes over with a higher token.
    let _: () = redis.conn().del(k.scheduler_leader()).unwrap();
    let Lease::Leader {
        token: new,
        fresh: true,
    } = lease("b", 0).await
    else {
        panic!("b leads")
    };
    assert!(new > old);
    let mut conn = q.connection();
    assert_eq!(
        store::fire(&mut conn, k, 100, &fire(old, rec.version)).await.unwrap(),
        Fired::Stale
    );
    assert!(
        matches!(lease("a", old).await, Lease::Standby { .. }),
        "a learns it lost"
    );
    assert_eq!(
        store::fire(&mut conn, k, 100, &fire(new, rec.version - 1))
            .await
            .unwrap(),
        Fired::Changed
    );
    assert!(matches!(
        store::fire(&mut conn, k, 100, &fire(new, rec.version)).await.unwrap(),
        Fired::Fired { runs: 1, .. }
    ));
    assert_eq!(
        store::fire(&mut conn, k, 100, &fire(new, rec.version)).await.unwrap(),
        Fired::NotPending
    );
    let runs = fired(&redis, &ns);
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].due_ms, due.timestamp_millis());
    let after = store::get(&mut conn, k, "s").await.unwrap().unwrap();
    assert_eq!(after.next_run_at, s.next_after(due));
    assert_eq!(after.runs, 1);
}

#[tokio::test]
async fn missed_due_times_are_skipped_or_caught_up_once() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let q = queue(&redis, &ns);
    let long_ago = Utc::now() - chrono::TimeDelta::seconds(30);
    for (name, missed) in [("skipper", "skip"), ("catcher", "catch_up")] {
        let s = schedule(json!({"name": name, "task": "noop", "every": 1, "missed": missed}));
        // As if every scheduler had been down for 30 s.
        store::save(
            &mut q.connection(),
            q.keys(),
            &s,
            s.next_after(long_ago),
            now_ms(),
            false,
        )
        .await
        .unwrap();
    }
    let mut cfg = RedisConfig::new(redis.url());
    cfg.namespace = ns.clone();
    let stop = tokio_util::sync::CancellationToken::new();
    let started = now_ms();
    let beat = tokio::spawn(celeriac::scheduler::run(
        q.clone(),
        SchedulerConfig::new(cfg, "inproc-beat"),
        stop.clone(),
    ));
    tokio::time::sleep(Duration::from_millis(2500)).await;
    stop.cancel();
    beat.await.unwrap().unwrap();

    let runs = fired(&redis, &ns);
    let dues = |name: &str| -> Vec<i64> {
        let mut d: Vec<i64> = runs.iter().filter(|r| r.schedule == name).map(|r| r.due_ms).collect();
        d.sort();
        d
    };
    let skipped = dues("skipper");
    assert!(
        !skipped.is_empty() && skipped.iter().all(|d| *d > started - 1000),
        "{skipped:?}"
    );
    let caught = dues("catcher");
    assert_eq!(
        caught[0],
        (long_ago.timestamp_millis() / 1000 + 1) * 1000,
        "one run for the missed period"
    );
    assert!(
        caught[1..].iter().all(|d| *d > started - 1000),
        "then it continues from now: {caught:?}"
    );
    assert!(caught.len() >= 2);
    // A graceful stop hands the leadership back at once.
    assert_eq!(leader(&redis, &ns), None);
}

async fn get_json(api: &Api, path: &str) -> (u16, Value) {
    let r = api.http.get(api.url(path)).send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn send(api: &Api, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
    let mut req = api.http.request(method, api.url(path));
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// Polls GET /schedules/{name} until `pred` holds.
async fn wait_schedule(api: &Api, name: &str, within: Duration, pred: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + within;
    loop {
        let (_, s) = get_json(api, &format!("/schedules/{name}")).await;
        if pred(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "schedule condition not reached; last: {s}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn schedules_created_paused_changed_and_deleted_through_the_api_take_effect_without_restart() {
    use reqwest::Method;
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let beat = Beat::start(&redis, &ns, None);

    let body = json!({"name": "api", "task": "echo", "args": {"v": 1}, "every": 1});
    let (status, created) = send(&api, Method::POST, "/schedules", Some(body.clone())).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["runs"], 0);
    assert!(created["next_run_at"].is_string());
    assert_eq!(send(&api, Method::POST, "/schedules", Some(body)).await.0, 409);
    for (bad, code) in [
        (
            json!({"name": "b", "task": "echo", "cron": "61 * * * *"}),
            "invalid_schedule",
        ),
        (
            json!({"name": "b", "task": "echo", "cron": "* * * * *", "timezone": "Mars/Base"}),
            "invalid_schedule",
        ),
        (json!({"name": "b", "task": "echo", "every": 0.5}), "invalid_schedule"),
        (json!({"name": "b c", "task": "echo", "every": 1}), "invalid_schedule"),
        (json!({"name": "b", "task": "nope", "every": 1}), "unknown_task"),
    ] {
        let (status, err) = send(&api, Method::POST, "/schedules", Some(bad.clone())).await;
        assert_eq!(status, 422, "{bad} → {err}");
        assert_eq!(err["error"]["code"], code, "{err}");
    }

    // It fires, and each task carries its schedule.
    let s = wait_schedule(&api, "api", Duration::from_secs(5), |s| s["runs"].as_u64() >= Some(2)).await;
    let (_, task) = get_json(&api, &format!("/tasks/{}", s["last_task_id"].as_str().unwrap())).await;
    assert_eq!(task["schedule"]["name"], "api", "{task}");
    assert!(task["schedule"]["due_at"].is_string());
    assert_eq!(s["last_status"], "PENDING", "no worker consumes here");
    let (_, leadership) = get_json(&api, "/scheduler").await;
    assert_eq!(leadership["leader"], beat.name.as_str(), "{leadership}");
    assert!(leadership["fencing_token"].as_u64() >= Some(1));
    assert!(
        leadership["replicas"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == beat.name.as_str())
    );

    // Paused: nothing fires.
    let (status, paused) = send(&api, Method::POST, "/schedules/api/pause", None).await;
    assert_eq!(status, 200);
    assert_eq!(paused["paused"], true);
    assert!(paused["next_run_at"].is_null());
    let runs = paused["runs"].as_u64().unwrap();
    tokio::time::sleep(Duration::from_millis(2200)).await;
    assert_eq!(runs_counter(&redis, &ns, "api"), runs);

    // Resumed and changed: the new arguments are used from the next run.
    assert_eq!(send(&api, Method::POST, "/schedules/api/resume", None).await.0, 200);
    let (status, changed) = send(
        &api,
        Method::PUT,
        "/schedules/api",
        Some(json!({"task": "echo", "args": {"v": 2}, "every": 1})),
    )
    .await;
    assert_eq!(status, 200, "{changed}");
    assert_eq!(changed["runs"].as_u64(), Some(runs), "history kept");
    let s = wait_schedule(&api, "api", Duration::from_secs(5), |s| s["runs"].as_u64() > Some(runs)).await;
    let (_, task) = get_json(&api, &format!("/tasks/{}", s["last_task_id"].as_str().unwrap())).await;
    assert_eq!(task["args"], json!({"v": 2}));

    // A manual run, then deletion: nothing fires any more.
    let (status, run) = send(&api, Method::POST, "/schedules/api/run", None).await;
    assert_eq!(status, 202);
    let (_, task) = get_json(&api, &format!("/tasks/{}", run["task_id"].as_str().unwrap())).await;
    assert_eq!(task["schedule"]["name"], "api");
    let (_, list) = get_json(&api, "/schedules").await;
    assert_eq!(list["schedules"].as_array().unwrap().len(), 1);
    assert_eq!(send(&api, Method::DELETE, "/schedules/api", None).await.0, 204);
    assert_eq!(get_json(&api, "/schedules/api").await.0, 404);
    assert_eq!(send(&api, Method::DELETE, "/schedules/api", None).await.0, 404);
    let count = || fired(&redis, &ns).len();
    let before = count();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(count(), before, "a deleted schedule fired");

    // PUT creates.
    let (status, _) = send(
        &api,
        Method::PUT,
        "/schedules/put-made",
        Some(json!({"task": "noop", "cron": "0 3 * * *",
        "timezone": "Europe/Berlin"})),
    )
    .await;
    assert_eq!(status, 201);
}

#[tokio::test]
async fn the_schedule_file_is_loaded_at_start_and_on_sighup() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let q = queue(&redis, &ns);
    save(
        &q,
        &schedule(json!({"name": "api-made", "task": "noop", "every": 3600})),
    )
    .await;
    let dir = std::env::temp_dir().join(format!("celeriac-sched-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("schedules.toml");
    std::fs::write(
        &path,
        r#"
[[schedule]]
name = "from-file"
task = "noop"
every = 3600

[[schedule]]
name = "bad"
task = "noop"
cron = "not a cron"

[[schedule]]
name = "unknown-task"
task = "no-such-task"
every = 5
"#,
    )
    .unwrap();
    let mut beat = Beat::start(&redis, &ns, Some(&path));
    let get = |name: &'static str| {
        let q = q.clone();
        async move { store::get(&mut q.connection(), q.keys(), name).await.unwrap() }
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("from-file").await.is_none() {
        assert!(Instant::now() < deadline, "the file was not loaded at start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(get("from-file").await.unwrap().schedule.every, Some(3600.0));
    assert!(get("bad").await.is_none());
    assert!(get("unknown-task").await.is_none());

    std::fs::write(
        &path,
        r#"
[[schedule]]
name = "from-file"
task = "noop"
cron = "0 3 * * *"
timezone = "Europe/Berlin"

[[schedule]]
name = "added"
task = "noop"
every = 60
"#,
    )
    .unwrap();
    beat.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while get("added").await.is_none() {
        assert!(Instant::now() < deadline, "the file was not reloaded on SIGHUP");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reloaded = get("from-file").await.unwrap();
    assert_eq!(reloaded.schedule.cron.as_deref(), Some("0 3 * * *"));
    assert_eq!(reloaded.schedule.timezone, "Europe/Berlin");
    assert!(
        get("api-made").await.is_some(),
        "schedules made through the API are left alone"
    );
    assert!(beat.is_running(), "SIGHUP must not stop the process");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_worker_started_with_beat_fires_its_schedules_and_runs_them() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let q = queue(&redis, &ns);
    save(
        &q,
        &schedule(json!({"name": "echoes", "task": "echo", "args": {"hello": "beat"}, "every": 1})),
    )
    .await;
    let _worker = crate::helpers::Worker::start(&redis.url(), &ns, &["--beat"]).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let rec = store::get(&mut q.connection(), q.keys(), "echoes")
            .await
            .unwrap()
            .unwrap();
        if let Some(id) = rec.last_task_id
            && let Some(task) = q.get(&id).await.unwrap()
            && task.status == celeriac::model::TaskStatus::Success
        {
            assert_eq!(task.result, Some(json!({"hello": "beat"})));
            assert_eq!(task.schedule.unwrap()["name"], "echoes");
            break;
        }
        assert!(Instant::now() < deadline, "no scheduled run succeeded");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
