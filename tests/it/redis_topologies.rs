//! The API and the worker over Redis deployments other than one plain server:
//! TLS with a private CA (and mutual TLS), a Sentinel failover under load, and a
//! three-primary Cluster with namespaces on different primaries.

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use serde_json::{Value, json};

use crate::{
    helpers::{Api, Worker, unique_ns},
    topology_helpers::{Cluster, Pki, Scratch, SentinelSetup, strs, wait_until},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_private_ca_and_mutual_tls() {
    let dir = Scratch::new();
    let pki = Pki::generate(&dir.0);
    let redis = pki.server(&dir.0, true);
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let mutual = pki.flags(&pki.ca, true);
    let mutual = strs(&mutual);
    let ns = unique_ns();

    let api = Api::start(&url, &ns, &mutual).await;
    let _worker = Worker::start(&url, &ns, &mutual).await;
    let id = api.enqueue(json!({"name": "add", "args": [2, 3]})).await;
    let task = api.wait_task(&id, 20).await;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert_eq!(task["result"], 5);

    // The server requires a client certificate: without one, a 503 (not a 500, not a hang).
    let no_cert = Api::start(&url, &ns, &strs(&pki.flags(&pki.ca, false))).await;
    let t = Instant::now();
    let (status, body) = no_cert.post_task(json!({"name": "add", "args": [1, 1]})).await;
    assert_eq!(status, 503, "{body}");
    // A refused handshake is retried within the connect budget (2 s), then answered;
    // the slack is for loaded CI machines.
    assert!(t.elapsed() < Duration::from_secs(6), "took {:?}", t.elapsed());

    // A server certificate from a CA we do not trust is refused the same way.
    let wrong_ca = Api::start(&url, &ns, &strs(&pki.flags(&pki.other_ca, true))).await;
    let (status, body) = wrong_ca.post_task(json!({"name": "add", "args": [1, 1]})).await;
    assert_eq!(status, 503, "{body}");

    // TLS settings with a plain URL are a mistake, refused at startup.
    let plain = format!("redis://127.0.0.1:{}", redis.port);
    let mut api = std::process::Command::new(env!("CARGO_BIN_EXE_celeriac-api"))
        .args(["--host", "127.0.0.1", "--port", "0", "--broker-url", &plain])
        .args(pki.flags(&pki.ca, false))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t = Instant::now();
    while api.try_wait().unwrap().is_none() && t.elapsed() < Duration::from_secs(10) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = api.kill();
    let out = api.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("TLS"), "{stderr}");
}

/// One `POST /tasks` of the load loop.
struct Sent {
    n: i64,
    acked_at: Instant,
    took: Duration,
    status: u16,
    id: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_failover_keeps_acknowledged_tasks() {
    let began = Instant::now();
    let mut setup = SentinelSetup::start();
    let url = setup.url();
    let ns = unique_ns();
    let api = Api::start(&url, &ns, &[]).await;
    let _worker = Worker::start(&url, &ns, &["--lease-secs", "3"]).await;
    let (old_primary, replica) = (setup.primary.port, setup.replica.port);
    assert_eq!(setup.current_primary_port(), Some(old_primary));

    // Load: an `add` task every 20 ms, each request timed.
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (stop, endpoint) = (stop.clone(), api.url("/tasks"));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .unwrap();
        tokio::spawn(async move {
            let mut sent = Vec::new();
            for n in 0.. {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                let t = Instant::now();
                let reply = http
                    .post(&endpoint)
                    .json(&json!({"name": "add", "args": [n, 1000]}))
                    .send()
                    .await;
                let (status, id) = match reply {
                    Ok(r) => {
                        let status = r.status().as_u16();
                        let body: Value = r.json().await.unwrap_or_default();
                        (status, body["task_id"].as_str().map(str::to_owned))
                    }
                    Err(_) => (0, None),
                };
                sent.push(Sent {
                    n,
                    acked_at: Instant::now(),
                    took: t.elapsed(),
                    status,
                    id,
                });
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            sent
        })
    };

    tokio::time::sleep(Duration::from_secs(3)).await;
    let killed_at = Instant::now();
    setup.primary.kill();
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(20), "the sentinels promote the replica", || {
            setup.current_primary_port() == Some(replica)
        })
    });
    let switched_after = killed_at.elapsed();
    // Carry on until the API has taken 20 tasks in a row on the new primary.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        tokio::time::sleep(Duration::from_millis(200)).await;
        let (status, _) = api.post_task(json!({"name": "noop"})).await;
        if status == 202 {
            break;
        }
        assert!(Instant::now() < deadline, "the API did not recover after the failover");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    let sent = load.await.unwrap();

    // The API answered every request, quickly, with 202 or 503.
    let slowest = sent.iter().map(|s| s.took).max().unwrap();
    assert!(
        slowest < Duration::from_millis(3500),
        "slowest request took {slowest:?}"
    );
    for s in &sent {
        assert!(matches!(s.status, 202 | 503), "request {} answered {}", s.n, s.status);
    }
    let refused = sent.iter().filter(|s| s.status == 503).count();
    assert!(refused > 0, "the failover went unnoticed: the test proves nothing");

    // Every task acknowledged more than 1 s before the kill, and every one after
    // the switch, ends SUCCESS with its result; the rest are counted.
    // First every acknowledged task final (or gone), then the events are read.
    for s in sent.iter().filter(|s| s.status == 202) {
        let wait = api.url(&format!("/tasks/{}?wait=20", s.id.as_deref().unwrap()));
        api.http.get(wait).send().await.unwrap();
    }
    let mut new_primary = setup.replica.conn();
    let events_key = celeriac::redis::keys::Keys::new(&ns).events();
    let events: redis::streams::StreamRangeReply = redis::Commands::xrange_all(&mut new_primary, &events_key).unwrap();
    let (mut must, mut at_risk_done, mut at_risk_lost, mut redelivered) = (0, 0, 0, 0);
    for s in sent.iter().filter(|s| s.status == 202) {
        let id = s.id.as_deref().unwrap();
        let required = s.acked_at + Duration::from_secs(1) < killed_at || s.acked_at > killed_at + switched_after;
        let (status, task) = {
            let resp = api.http.get(api.url(&format!("/tasks/{id}"))).send().await.unwrap();
            (resp.status().as_u16(), resp.json::<Value>().await.unwrap_or_default())
        };
        if required {
            must += 1;
            assert_eq!(status, 200, "task {} ({id}) acknowledged before the kill is gone", s.n);
            assert_eq!(task["status"], "SUCCESS", "{task}");
            assert_eq!(task["result"], s.n + 1000, "{task}");
        } else if task["status"] == "SUCCESS" {
            at_risk_done += 1;
        } else {
            at_risk_lost += 1;
        }
        if status == 200 {
            let of_task = || {
                events
                    .ids
                    .iter()
                    .filter(move |e| e.get::<String>("task_id").as_deref() == Some(id))
            };
            let finals = of_task()
                .filter(|e| {
                    matches!(
                        e.get::<String>("status").as_deref(),
                        Some("SUCCESS" | "FAILURE" | "REVOKED")
                    )
                })
                .count();
            let starts = of_task()
                .filter(|e| e.get::<String>("event").as_deref() == Some("started"))
                .count();
            // Events written on the old primary after its last replication are
            // lost with it, so a final record has its final event here exactly once.
            let is_final = matches!(task["status"].as_str(), Some("SUCCESS" | "FAILURE" | "REVOKED"));
            assert_eq!(
                finals,
                usize::from(is_final),
                "task {id} ({task}) has {finals} final events"
            );
            redelivered += usize::from(starts > 1);
        }
    }
    eprintln!(
        "sentinel failover: {} requests, {} acknowledged, {refused} answered 503, slowest {slowest:?}; \
         switch after {switched_after:?}; {must} required tasks all SUCCESS; within 1 s of the kill: \
         {at_risk_done} done, {at_risk_lost} lost; {redelivered} run more than once; {:?} in all",
        sent.len(),
        sent.iter().filter(|s| s.status == 202).count(),
        began.elapsed()
    );
    // On a loaded machine fewer requests get through before the kill; a dozen still tells.
    assert!(must > 10, "too few tasks to say anything: {must}");
    assert!(began.elapsed() < Duration::from_secs(60), "took {:?}", began.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_runs_namespaces_on_different_primaries() {
    let cluster = Cluster::start();
    let url = cluster.url();
    let owner = |ns: &str| cluster.owner(&format!("{{{ns}}}"));
    let first = unique_ns();
    let second = std::iter::repeat_with(unique_ns)
        .find(|ns| owner(ns) != owner(&first))
        .unwrap();

    for (n, ns) in [first, second].iter().enumerate() {
        let api = Api::start(&url, ns, &[]).await;
        let id = api.enqueue(json!({"name": "add", "args": [n, 40]})).await;
        // The record lives on the primary that owns the namespace's hash slot.
        let key = celeriac::redis::keys::Keys::new(ns).task(&id);
        let exists: bool = redis::cmd("EXISTS")
            .arg(&key)
            .query(&mut cluster.node(owner(ns)).conn())
            .unwrap();
        assert!(exists, "{key} is not on node {}", owner(ns));

        // A long poll opened before any worker runs is woken by the completion.
        let poll = {
            let (http, endpoint) = (api.http.clone(), api.url(&format!("/tasks/{id}?wait=30")));
            tokio::spawn(async move {
                let resp = http.get(endpoint).send().await.unwrap();
                (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
            })
        };
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(!poll.is_finished(), "the poll answered before the task ran");
        let started = Instant::now();
        let _worker = Worker::start(&url, ns, &[]).await;
        let (status, task) = poll.await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(task["status"], "SUCCESS", "{task}");
        assert_eq!(task["result"], n as i64 + 40);
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "the long poll was not woken: {:?}",
            started.elapsed()
        );

        // A running task's cancellation reaches the worker through pub/sub (the
        // heartbeat would catch it only after 10 s).
        let sleeper = api.enqueue(json!({"name": "sleep", "args": {"seconds": 20}})).await;
        api.wait_until(&sleeper, Duration::from_secs(10), |t| t["status"] == "STARTED")
            .await;
        let cancelled = Instant::now();
        let resp = api
            .http
            .post(api.url(&format!("/tasks/{sleeper}/cancel")))
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        let task = api.wait_task(&sleeper, 20).await;
        assert_eq!(task["status"], "REVOKED", "{task}");
        assert!(
            cancelled.elapsed() < Duration::from_secs(5),
            "{:?}",
            cancelled.elapsed()
        );

        // The keyless and pipelined reads work over the cluster connection too.
        for path in ["/readyz", "/queues", "/queues/default"] {
            let resp = api.http.get(api.url(path)).send().await.unwrap();
            assert_eq!(resp.status(), 200, "{path}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_switchover_follows_the_demoted_primary_readonly() {
    let setup = SentinelSetup::start();
    let url = setup.url();
    let ns = unique_ns();
    let api = Api::start(&url, &ns, &[]).await;
    let _worker = Worker::start(&url, &ns, &[]).await;
    let id = api.enqueue(json!({"name": "add", "args": [1, 1]})).await;
    assert_eq!(api.wait_task(&id, 20).await["status"], "SUCCESS");

    // A graceful switch: the old primary stays up as a replica, so connections
    // re-made to its address meet `READONLY` and must go to the sentinels again.
    let _: () = redis::cmd("SENTINEL")
        .arg("FAILOVER")
        .arg(SentinelSetup::MASTER)
        .query(&mut setup.sentinels[0].conn())
        .unwrap();
    let replica = setup.replica.port;
    tokio::task::block_in_place(|| {
        wait_until(Duration::from_secs(20), "the switch", || {
            setup.current_primary_port() == Some(replica)
        });
        wait_until(Duration::from_secs(20), "the old primary turns replica", || {
            let role: Vec<redis::Value> = redis::cmd("ROLE").query(&mut setup.primary.conn()).unwrap_or_default();
            role.first() == Some(&redis::Value::BulkString(b"slave".to_vec()))
        })
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        let (status, body) = api.post_task(json!({"name": "add", "args": [2, 2]})).await;
        match status {
            202 => break body["task_id"].as_str().unwrap().to_owned(),
            503 => assert!(Instant::now() < deadline, "still refused: {body}"),
            _ => panic!("{status} {body}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let task = api.wait_task(&id, 20).await;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert_eq!(task["result"], 4);
    let key = celeriac::redis::keys::Keys::new(&ns).task(&id);
    let on_new: bool = redis::cmd("EXISTS").arg(&key).query(&mut setup.replica.conn()).unwrap();
    assert!(on_new, "the task was written to the new primary");
}

#[tokio::test]
async fn too_few_replicas_is_a_503() {
    // `min-replicas-to-write`, the documented way to bound what a failover loses,
    // refuses writes while no replica keeps up: a retryable 503, not a 500.
    let dir = Scratch::new();
    let redis = crate::topology_helpers::Server::data_node(&dir.0, &["--min-replicas-to-write", "1"]);
    let api = Api::start(&format!("redis://127.0.0.1:{}", redis.port), &unique_ns(), &[]).await;
    let (status, body) = api.post_task(json!({"name": "add", "args": [1, 2]})).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "redis_unavailable");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_over_mutual_tls() {
    let dir = Scratch::new();
    let pki = Pki::generate(&dir.0);
    let cluster = tokio::task::block_in_place(|| Cluster::start_with(Some(&pki)));
    let url = cluster.url();
    assert!(url.starts_with("rediss-cluster://"), "{url}");
    let mutual = pki.flags(&pki.ca, true);
    let mutual = strs(&mutual);
    let ns = unique_ns();
    let api = Api::start(&url, &ns, &mutual).await;
    let id = api.enqueue(json!({"name": "add", "args": [20, 22]})).await;
    let poll = {
        let (http, endpoint) = (api.http.clone(), api.url(&format!("/tasks/{id}?wait=30")));
        tokio::spawn(async move { http.get(endpoint).send().await.unwrap().json::<Value>().await.unwrap() })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let _worker = Worker::start(&url, &ns, &mutual).await;
    let task = poll.await.unwrap();
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert_eq!(task["result"], 42);
    assert!(started.elapsed() < Duration::from_secs(10), "{:?}", started.elapsed());
}

/// `rediss+sentinel://`: the sentinels, the primary and the replica speak TLS
/// only and ask for client certificates. The API and the worker find the
/// primary through the sentinels over TLS and run a task; without the client
/// certificate the sentinels refuse them, and the answer is a 503.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentinel_over_mutual_tls() {
    let dir = Scratch::new();
    let pki = Pki::generate(&dir.0);
    let setup = tokio::task::block_in_place(|| SentinelSetup::start_with(Some(&pki)));
    let url = setup.url();
    assert!(url.starts_with("rediss+sentinel://"), "{url}");
    let mutual = pki.flags(&pki.ca, true);
    let mutual = strs(&mutual);
    let ns = unique_ns();
    let api = Api::start(&url, &ns, &mutual).await;
    let _worker = Worker::start(&url, &ns, &mutual).await;
    let id = api.enqueue(json!({"name": "add", "args": [20, 22]})).await;
    let task = api.wait_task(&id, 20).await;
    assert_eq!(task["status"], "SUCCESS", "{task}");
    assert_eq!(task["result"], 42);
    // The record is on the primary the sentinels name, reached over TLS.
    let key = format!("{{{ns}}}:task:{id}");
    let on_primary: bool = redis::cmd("EXISTS").arg(&key).query(&mut setup.primary.conn()).unwrap();
    assert!(on_primary, "{key} not on the primary");

    let no_cert = Api::start(&url, &ns, &strs(&pki.flags(&pki.ca, false))).await;
    let (status, body) = no_cert.post_task(json!({"name": "add", "args": [1, 1]})).await;
    assert_eq!(status, 503, "{body}");
}
