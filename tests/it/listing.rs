//! Listing and filtering tasks from the indexes the scripts keep, task pause and
//! resume, and batch enqueue (issues 8 and 13), over HTTP and through the library.

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use redis::Commands;
use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, Worker, api_cli, queue, task_events, unique_ns};

async fn get_json(api: &Api, path: &str) -> (u16, Value) {
    let resp = api.http.get(api.url(path)).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// POST /tasks/batch, expecting 202; returns the ids.
async fn batch(api: &Api, tasks: Vec<Value>) -> Vec<String> {
    let n = tasks.len();
    let (status, body) = api.post_json("/tasks/batch", json!({ "tasks": tasks })).await;
    assert_eq!(status, 202, "{body}");
    let ids: Vec<String> = body["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), n);
    ids
}

/// Walks every page of `query`; returns the ids in order and the number of pages.
/// `between` runs after each page (to enqueue more while walking).
async fn walk(api: &Api, query: &str, mut between: impl AsyncFnMut()) -> (Vec<String>, usize) {
    let mut ids = Vec::new();
    let mut cursor: Option<String> = None;
    let mut pages = 0;
    loop {
        let sep = if query.contains('?') { '&' } else { '?' };
        let path = match &cursor {
            Some(c) => format!("{query}{sep}cursor={c}"),
            None => query.to_owned(),
        };
        let (status, body) = get_json(api, &path).await;
        assert_eq!(status, 200, "{path}: {body}");
        pages += 1;
        for t in body["tasks"].as_array().unwrap() {
            ids.push(t.as_str().unwrap_or_else(|| t["task_id"].as_str().unwrap()).to_owned());
        }
        match body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => return (ids, pages),
        }
        between().await;
    }
}

fn once_each(ids: &[String]) -> HashSet<String> {
    let set: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(set.len(), ids.len(), "a task was listed twice");
    set
}

#[tokio::test]
async fn ten_thousand_tasks_are_listed_once_each_across_pages_while_new_ones_arrive() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let mut all = Vec::new();
    let mut in_a = HashSet::new();
    let mut added = HashSet::new();
    // Batches of 1,000, the largest: a script call of about 60 ms alone, which a
    // busy test host stretches; batches have their own, longer response timeout.
    for b in 0..10 {
        let tasks: Vec<Value> = (0..1000)
            .map(|i| {
                let name = if i % 4 == 0 { "add" } else { "noop" };
                let queue = if i % 2 == 0 { "a" } else { "b" };
                json!({"name": name, "queue": queue, "args": {"x": b, "y": i}})
            })
            .collect();
        let ids = batch(&api, tasks).await;
        for (i, id) in ids.iter().enumerate() {
            if i % 2 == 0 {
                in_a.insert(id.clone());
            }
            if i % 4 == 0 {
                added.insert(id.clone());
            }
        }
        all.extend(ids);
    }
    let all_set: HashSet<String> = all.iter().cloned().collect();

    // Every page while 20 new tasks arrive after each: each old task exactly once.
    let (ids, pages) = walk(&api, "/tasks?limit=500", async || {
        batch(&api, (0..20).map(|_| json!({"name": "noop", "queue": "a"})).collect()).await;
    })
    .await;
    let listed = once_each(&ids);
    assert!(
        all_set.is_subset(&listed),
        "missing {}",
        all_set.difference(&listed).count()
    );
    assert!(pages >= 20, "{pages} pages");
    // Newest first: the last batch's tasks come before the first batch's.
    let pos = |id: &str| ids.iter().position(|x| x == id).unwrap();
    assert!(pos(&all[9999]) < pos(&all[0]));

    // Filters: each one alone and combined, every page walked.
    let (ids, _) = walk(
        &api,
        "/tasks?status=pending&limit=500&created_before=2100-01-01T00:00:00Z",
        async || {},
    )
    .await;
    assert!(all_set.is_subset(&once_each(&ids)));
    let (ids, _) = walk(&api, "/tasks?name=add&limit=300", async || {}).await;
    assert_eq!(once_each(&ids), added);
    let (ids, _) = walk(&api, "/tasks?queue=b&name=add", async || {}).await;
    assert!(ids.is_empty(), "no add task went to b: {}", ids.len());
    let (ids, _) = walk(&api, "/tasks?queue=a&status=PENDING,SUCCESS", async || {}).await;
    let listed = once_each(&ids);
    assert!(in_a.is_subset(&listed));
    assert!(listed.iter().all(|id| !all_set.contains(id) || in_a.contains(id)));
    let (ids, _) = walk(&api, "/tasks?status=SUCCESS", async || {}).await;
    assert!(ids.is_empty());
    let after = format!("/tasks?created_after={}&limit=500", urlencode(&before.to_rfc3339()));
    let (ids, _) = walk(&api, &after, async || {}).await;
    assert!(all_set.is_subset(&once_each(&ids)));
    let (ids, _) = walk(&api, "/tasks?created_before=2000-01-01T00:00:00Z", async || {}).await;
    assert!(ids.is_empty());

    // Default page, expand (bare and =true): the objects GET /tasks/{id} gives.
    let (_, page) = get_json(&api, "/tasks").await;
    assert_eq!(page["tasks"].as_array().unwrap().len(), 100);
    assert!(page["next_cursor"].is_string());
    let (_, page) = get_json(&api, "/tasks?expand&limit=3&name=add").await;
    let first = &page["tasks"][0];
    let (_, one) = api.get_task(first["task_id"].as_str().unwrap()).await;
    assert_eq!(first, &one);
    assert_eq!(first["status"], "PENDING");
    let (_, page) = get_json(&api, "/tasks?expand=true&limit=2").await;
    assert!(page["tasks"][1]["task_id"].is_string());

    // Bad input.
    assert_eq!(get_json(&api, "/tasks?status=DONE").await.0, 400);
    assert_eq!(get_json(&api, "/tasks?cursor=nope").await.0, 400);
    assert_eq!(get_json(&api, "/tasks?limit=501").await.0, 400);
}

fn urlencode(s: &str) -> String {
    s.replace('+', "%2B").replace(':', "%3A")
}

#[tokio::test]
async fn success_and_worker_filters_follow_the_tasks_through_a_worker() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let worker = Worker::start(&redis.url(), &ns, &[]).await;
    let ids = batch(&api, (0..30).map(|_| json!({"name": "noop"})).collect()).await;
    for id in &ids {
        assert_eq!(api.wait_task(id, 20).await["status"], "SUCCESS");
    }
    let want: HashSet<String> = ids.into_iter().collect();
    let (ok, _) = walk(&api, "/tasks?status=SUCCESS&limit=7", async || {}).await;
    assert_eq!(once_each(&ok), want);
    let path = format!("/tasks?worker={}&status=success", worker.name);
    let (mine, _) = walk(&api, &path, async || {}).await;
    assert_eq!(once_each(&mine), want);
    let (none, _) = walk(&api, "/tasks?worker=nobody", async || {}).await;
    assert!(none.is_empty());
    let (pending, _) = walk(&api, "/tasks?status=PENDING", async || {}).await;
    assert!(pending.is_empty());
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_and_names_the_bad_member() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let bad_name = json!({"tasks": [{"name": "noop"}, {"name": "noop"}, {"name": "no such!"}]});
    let (status, body) = api.post_json("/tasks/batch", bad_name).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("tasks[2]"),
        "{body}"
    );
    let unknown = json!({"tasks": [{"name": "noop"}, {"name": "not_registered"}]});
    let (status, body) = api.post_json("/tasks/batch", unknown).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "unknown_task");
    assert!(
        body["error"]["message"].as_str().unwrap().contains("tasks[1]"),
        "{body}"
    );
    let too_many = json!({"tasks": vec![json!({"name": "noop"}); 1001]});
    assert_eq!(api.post_json("/tasks/batch", too_many).await.0, 422);
    // Nothing of the refused batches exists.
    let (_, page) = get_json(&api, "/tasks").await;
    assert_eq!(page["tasks"], json!([]));
    let ready: u64 = redis.conn().zcard(format!("{{{ns}}}:queue:default")).unwrap();
    assert_eq!(ready, 0);

    // A good batch: ids in order, every task PENDING and queued.
    let ids = batch(
        &api,
        vec![
            json!({"name": "noop"}),
            json!({"name": "add", "args": {"x": 1, "y": 2}, "countdown": 60}),
        ],
    )
    .await;
    assert_eq!(api.get_task(&ids[1]).await.1["status"], "PENDING");
    let ready: u64 = redis.conn().zcard(format!("{{{ns}}}:queue:default")).unwrap();
    let delayed: u64 = redis.conn().zcard(format!("{{{ns}}}:delayed:default")).unwrap();
    assert_eq!((ready, delayed), (1, 1));
}

#[tokio::test]
async fn a_batch_with_an_idempotency_key_is_enqueued_once_while_its_first_task_lives() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let queued = || -> u64 { redis.conn().zcard(format!("{{{ns}}}:queue:default")).unwrap() };
    let three = json!({"tasks": [{"name": "noop"}, {"name": "noop"}, {"name": "noop"}], "idempotency_key": "k1"});
    let (status, first) = api.post_json("/tasks/batch", three.clone()).await;
    assert_eq!(status, 202, "{first}");
    // The same key again, even with another body: the first batch's ids, nothing enqueued.
    let (status, again) = api.post_json("/tasks/batch", three).await;
    assert_eq!((status, &again), (200, &first));
    let other = json!({"tasks": [{"name": "noop"}], "idempotency_key": "k1"});
    assert_eq!(api.post_json("/tasks/batch", other).await, (200, first.clone()));
    assert_eq!(queued(), 3);

    // A refused batch does not take its key; a batch without a key is never deduplicated.
    let bad = json!({"tasks": [{"name": "noop"}, {"name": "not_registered"}], "idempotency_key": "k2"});
    assert_eq!(api.post_json("/tasks/batch", bad).await.0, 422);
    let good = json!({"tasks": [{"name": "noop"}], "idempotency_key": "k2"});
    assert_eq!(api.post_json("/tasks/batch", good.clone()).await.0, 202);
    assert_eq!(api.post_json("/tasks/batch", good).await.0, 200);
    assert_eq!(batch(&api, vec![json!({"name": "noop"})]).await.len(), 1);
    assert_eq!(batch(&api, vec![json!({"name": "noop"})]).await.len(), 1);
    assert_eq!(queued(), 6);

    // Once the first batch's first record is gone (as when it expires), the key enqueues anew.
    let first_id = first["task_ids"][0].as_str().unwrap();
    let removed: u64 = redis.conn().del(format!("{{{ns}}}:task:{first_id}")).unwrap();
    assert_eq!(removed, 1);
    let (status, anew) = api
        .post_json(
            "/tasks/batch",
            json!({"tasks": [{"name": "noop"}], "idempotency_key": "k1"}),
        )
        .await;
    assert_eq!(status, 202, "{anew}");
    assert_ne!(anew["task_ids"][0], first["task_ids"][0]);

    // The key is checked like a task's: 1 to 256 characters.
    for key in [json!(""), json!("x".repeat(257))] {
        let body = json!({"tasks": [{"name": "noop"}], "idempotency_key": key});
        let (status, error) = api.post_json("/tasks/batch", body).await;
        assert_eq!(status, 422, "{key}: {error}");
        assert!(error["error"]["message"].is_string(), "{error}");
    }
}

#[tokio::test]
async fn a_paused_task_is_not_claimed_until_resumed() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let queued = api.enqueue(json!({"name": "noop"})).await;
    let delayed = api.enqueue(json!({"name": "noop", "countdown": 3600})).await;

    let (status, view) = api.post_json(&format!("/tasks/{queued}/pause"), json!({})).await;
    assert_eq!((status, view["status"].as_str()), (200, Some("PAUSED")), "{view}");
    let (status, body) = api.post_json(&format!("/tasks/{queued}/pause"), json!({})).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        api.post_json(&format!("/tasks/{delayed}/pause"), json!({})).await.0,
        200
    );
    let (status, body) = api.post_json(&format!("/tasks/{delayed}/resume"), json!({})).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("PENDING")));
    // Its time has not come: it waits in its delayed set again.
    let due: Option<f64> = redis
        .conn()
        .zscore(format!("{{{ns}}}:delayed:default"), &delayed)
        .unwrap();
    assert!(due.is_some());
    let (status, _) = api.post_json(&format!("/tasks/{delayed}/resume"), json!({})).await;
    assert_eq!(status, 409);
    let (_, paused) = get_json(&api, "/tasks?status=paused").await;
    assert_eq!(paused["tasks"], json!([queued]));

    // A worker does not claim the paused task; resumed, it runs.
    let worker = Worker::start(&redis.url(), &ns, &[]).await;
    let other = api.enqueue(json!({"name": "noop"})).await;
    assert_eq!(api.wait_task(&other, 20).await["status"], "SUCCESS");
    assert_eq!(api.get_task(&queued).await.1["status"], "PAUSED");
    assert_eq!(
        api.post_json(&format!("/tasks/{queued}/resume"), json!({})).await.0,
        200
    );
    assert_eq!(api.wait_task(&queued, 20).await["status"], "SUCCESS");
    let events = task_events(&redis, &ns, &queued);
    assert_eq!(events, ["enqueued", "paused", "resumed", "started", "succeeded"]);

    // A running task: 409 saying to cancel it.
    let running = api.enqueue(json!({"name": "sleep", "args": {"seconds": 30}})).await;
    api.wait_until(&running, Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    let (_, started) = get_json(&api, "/tasks?status=started&expand").await;
    assert_eq!(started["tasks"][0]["task_id"], running.as_str(), "{started}");
    assert_eq!(started["tasks"].as_array().unwrap().len(), 1);
    let (_, mine) = get_json(&api, &format!("/tasks?status=STARTED,SUCCESS&worker={}", worker.name)).await;
    assert_eq!(mine["tasks"].as_array().unwrap().len(), 3, "{mine}");
    let (status, body) = api.post_json(&format!("/tasks/{running}/pause"), json!({})).await;
    assert_eq!(status, 409);
    assert!(body["error"]["message"].as_str().unwrap().contains("cancel"), "{body}");
    // A final task cannot be paused; an unknown one is 404.
    assert_eq!(api.post_json(&format!("/tasks/{other}/pause"), json!({})).await.0, 409);
    let unknown = uuid::Uuid::new_v4();
    assert_eq!(
        api.post_json(&format!("/tasks/{unknown}/pause"), json!({})).await.0,
        404
    );
    drop(worker);
}

#[tokio::test]
async fn the_library_batch_and_listing_drop_entries_of_expired_records() {
    let redis = TestRedis::start();
    let q = queue(&redis, celeriac::config::EngineConfig::default());
    let tasks: Vec<_> = (0..50)
        .map(|i| celeriac::model::NewTask::new("noop", json!({"i": i})))
        .collect();
    let started = Instant::now();
    let ids = q.enqueue_batch(&tasks, None, |_| false).await.unwrap().unwrap().ids;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(ids.len(), 50);
    let refused = q
        .enqueue_batch(&tasks, None, |n| n == "noop")
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(refused.index, 0);

    // Records deleted behind the index's back (as expiry does) vanish from listings.
    let pending = q.keys().status_index("PENDING");
    for id in &ids[..10] {
        let _: () = redis.conn().del(q.keys().task(&id.to_string())).unwrap();
    }
    let filter = celeriac::queue::TaskFilter::default();
    let page = q.list_tasks(&filter, 100, None).await.unwrap();
    assert_eq!(page.ids.len(), 40);
    assert!(page.next_cursor.is_none());
    let left: u64 = redis.conn().zcard(&pending).unwrap();
    assert_eq!(left, 40);

    // Claim and complete: the task moves from PENDING to STARTED to SUCCESS, and
    // its worker's index holds it.
    let claim = q.claim(&["default".to_owned()], 5, "w1").await.unwrap();
    assert_eq!(claim.tasks.len(), 5);
    for t in &claim.tasks {
        q.complete(t, &json!(1)).await.unwrap();
    }
    let success: u64 = redis.conn().zcard(q.keys().status_index("SUCCESS")).unwrap();
    let started: u64 = redis.conn().zcard(q.keys().status_index("STARTED")).unwrap();
    let by_worker: u64 = redis.conn().zcard(q.keys().worker_index("w1")).unwrap();
    assert_eq!((success, started, by_worker), (5, 0, 5));
    let left: u64 = redis.conn().zcard(&pending).unwrap();
    assert_eq!(left, 35);

    // The reaper's trim removes final entries whose record expired.
    let done = claim.tasks[0].id.to_string();
    let _: () = redis.conn().del(q.keys().task(&done)).unwrap();
    let _: () = redis.conn().zadd(q.keys().status_index("SUCCESS"), &done, 1).unwrap();
    assert_eq!(q.trim_indexes(100).await.unwrap(), 1);
    let success: u64 = redis.conn().zcard(q.keys().status_index("SUCCESS")).unwrap();
    assert_eq!(success, 4);
}

#[tokio::test]
async fn a_batch_queues_by_priority_then_in_batch_order_and_lists_every_member() {
    let redis = TestRedis::start();
    let q = queue(&redis, celeriac::config::EngineConfig::default());
    // Two queues, two priorities, a delayed member: (queue, priority, countdown).
    let spec = [
        ("a", 0, false),
        ("a", 5, false),
        ("b", 0, false),
        ("a", 0, false),
        ("a", 5, true),
        ("a", 5, false),
    ];
    let tasks: Vec<_> = spec
        .iter()
        .enumerate()
        .map(|(i, (queue, priority, later))| {
            let mut t = celeriac::model::NewTask::new("noop", json!({"i": i}));
            t.queue = (*queue).to_owned();
            t.options.priority = Some(*priority);
            if *later {
                t.eta = Some(chrono::Utc::now() + chrono::Duration::seconds(60));
            }
            t
        })
        .collect();
    let ids: Vec<String> = q
        .enqueue_batch(&tasks, None, |_| false)
        .await
        .unwrap()
        .unwrap()
        .ids
        .iter()
        .map(|id| id.to_string())
        .collect();
    let k = q.keys();
    let mut conn = redis.conn();
    // Queue a: priority 5 first, each priority in batch order; the delayed one waits.
    let a: Vec<String> = conn.zrange(k.queue("a"), 0, -1).unwrap();
    assert_eq!(a, [ids[1].clone(), ids[5].clone(), ids[0].clone(), ids[3].clone()]);
    let b: Vec<String> = conn.zrange(k.queue("b"), 0, -1).unwrap();
    assert_eq!(b, [ids[2].clone()]);
    let delayed: Vec<String> = conn.zrange(k.delayed("a"), 0, -1).unwrap();
    assert_eq!(delayed, [ids[4].clone()]);
    // Both queues are known and woken; every member is in its listing indexes.
    let mut queues: Vec<String> = conn.smembers(k.queues()).unwrap();
    queues.sort();
    assert_eq!(queues, ["a", "b"]);
    for queue in ["a", "b"] {
        let marker: Option<f64> = conn.zscore(k.wake(queue), "w").unwrap();
        assert!(marker.is_some(), "queue {queue} not woken");
    }
    let pending: u64 = conn.zcard(k.status_index("PENDING")).unwrap();
    let in_a: u64 = conn.zcard(k.queue_index("a")).unwrap();
    let named: u64 = conn.zcard(k.name_index("noop")).unwrap();
    assert_eq!((pending, in_a, named), (6, 5, 6));
    let filter = celeriac::queue::TaskFilter {
        queue: Some("b".into()),
        ..Default::default()
    };
    assert_eq!(q.list_tasks(&filter, 10, None).await.unwrap().ids, [ids[2].clone()]);
    // The next single enqueue goes behind the batch in FIFO order.
    let later = q.enqueue(&tasks[0], false).await.unwrap().id.to_string();
    let a: Vec<String> = conn.zrange(k.queue("a"), 0, -1).unwrap();
    assert_eq!(a.last(), Some(&later));
}

#[tokio::test]
async fn a_paused_queue_is_not_claimed_from_until_resumed() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let worker = Worker::start(&redis.url(), &ns, &[]).await;
    let (status, view) = api.post_json("/queues/default/pause", json!({})).await;
    assert_eq!((status, &view["is_paused"]), (200, &json!(true)), "{view}");
    // Idempotent.
    assert_eq!(
        api.post_json("/queues/default/pause", json!({})).await.1["is_paused"],
        true
    );
    let id = api.enqueue(json!({"name": "noop"})).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(api.get_task(&id).await.1["status"], "PENDING");
    let (_, q) = get_json(&api, "/queues/default").await;
    assert_eq!(
        (q["ready"].as_u64(), q["is_paused"].as_bool()),
        (Some(1), Some(true)),
        "{q}"
    );
    assert_eq!(q["enqueued_last_min"], 1);

    let (status, view) = api.post_json("/queues/default/resume", json!({})).await;
    assert_eq!((status, &view["is_paused"]), (200, &json!(false)));
    assert_eq!(api.wait_task(&id, 10).await["status"], "SUCCESS");
    assert_eq!(api.post_json("/queues/default/resume", json!({})).await.0, 200);
    let (_, q) = get_json(&api, "/queues/default").await;
    assert_eq!(q["completed_last_min"], 1, "{q}");
    drop(worker);
}

#[tokio::test]
async fn purge_revokes_waiting_tasks_only_and_the_dead_letter_lists_and_requeues() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let mut cfg = celeriac::config::RedisConfig::new(redis.url());
    cfg.namespace = ns.clone();
    let engine = celeriac::config::EngineConfig {
        max_lost_deliveries: 0,
        ..celeriac::config::EngineConfig::default()
    };
    let q = celeriac::Queue::connect(&cfg, engine).unwrap();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let p = vec!["p".to_owned()];
    let mut tasks: Vec<_> = (0..4)
        .map(|_| {
            let mut t = celeriac::model::NewTask::new("noop", json!({}));
            t.queue = "p".into();
            t
        })
        .collect();
    tasks[3].eta = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let ids = q.enqueue_batch(&tasks, None, |_| false).await.unwrap().unwrap().ids;
    let running = q.claim(&p, 1, "w").await.unwrap().tasks.remove(0);

    let resp = api.http.delete(api.url("/queues/p/tasks")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap(), json!({"purged": 3}));
    for id in ids.iter().filter(|id| **id != running.id) {
        let t = api.get_task(&id.to_string()).await.1;
        assert_eq!(
            (t["status"].as_str(), t["result"]["reason"].as_str()),
            (Some("REVOKED"), Some("purged"))
        );
    }
    assert_eq!(api.get_task(&running.id.to_string()).await.1["status"], "STARTED");

    // The running task's lease is lost: with no lost delivery allowed it is dead-lettered.
    let far = q.config().lease.as_millis() as i64 + 1;
    assert_eq!(q.reap_at(celeriac::model::now_ms() + far).await.unwrap(), (0, 1));
    let (_, dead) = get_json(&api, "/dead-letter").await;
    assert_eq!(dead, json!({"tasks": [running.id.to_string()], "next_cursor": null}));
    let (_, queues) = get_json(&api, "/queues/p").await;
    assert_eq!(queues["dead"], 1, "{queues}");
    let (_, expanded) = get_json(&api, "/dead-letter?expand").await;
    assert_eq!(expanded["tasks"][0]["status"], "FAILURE");

    let requeue = format!("/dead-letter/{}/requeue", running.id);
    let (status, view) = api.post_json(&requeue, json!({})).await;
    assert_eq!((status, view["status"].as_str()), (202, Some("PENDING")), "{view}");
    assert_eq!(get_json(&api, "/dead-letter").await.1["tasks"], json!([]));
    assert_eq!(get_json(&api, "/queues/p").await.1["dead"], 0);
    assert_eq!(api.post_json(&requeue, json!({})).await.0, 404);
    assert_eq!(q.claim(&p, 1, "w").await.unwrap().tasks[0].id, running.id);
}

#[tokio::test]
async fn the_tasks_cli_lists_and_filters_from_redis() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let ids = batch(
        &api,
        vec![
            json!({"name": "noop", "queue": "a"}),
            json!({"name": "add", "args": [1, 2]}),
        ],
    )
    .await;
    let (code, out, err) = api_cli("tasks", &redis.url(), &ns, &["--queue", "a", "--json"]);
    assert_eq!(code, 0, "{err}");
    let listed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["task_id"], ids[0].as_str());
    let (code, out, _) = api_cli(
        "tasks",
        &redis.url(),
        &ns,
        &["--status", "pending", "--name", "add", "--limit", "5"],
    );
    assert_eq!(code, 0);
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("TASK ID"), "{out}");
    assert_eq!(lines.len(), 2, "{out}");
    assert!(lines[1].contains(&ids[1]) && lines[1].contains("PENDING"), "{out}");
    let (code, out, _) = api_cli("tasks", &redis.url(), &ns, &["--status", "SUCCESS"]);
    assert_eq!((code, out.trim()), (0, "(none)"));
    let (code, _, err) = api_cli("tasks", "redis://127.0.0.1:1", &ns, &[]);
    assert_eq!(code, 1);
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[tokio::test]
async fn tasks_fired_by_a_schedule_are_listed_by_its_name() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let body = json!({"name": "hourly", "task": "noop", "every": 3600});
    assert_eq!(api.post_json("/schedules", body).await.0, 201);
    let (status, run) = api.post_json("/schedules/hourly/run", json!({})).await;
    assert!(status / 100 == 2, "{status} {run}");
    let fired = run["task_id"].as_str().unwrap().to_owned();
    api.enqueue(json!({"name": "noop"})).await;
    let (ids, _) = walk(&api, "/tasks?schedule=hourly", async || {}).await;
    assert_eq!(ids, std::slice::from_ref(&fired));
    let (ids, _) = walk(&api, "/tasks?schedule=hourly&status=PENDING&name=noop", async || {}).await;
    assert_eq!(ids, [fired]);
    let (ids, _) = walk(&api, "/tasks?schedule=other", async || {}).await;
    assert!(ids.is_empty());
}
