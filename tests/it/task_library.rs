//! The task library end to end: typed tasks registered with their JSON Schema,
//! the typed client, argument checks at `POST /tasks`, `GET /task-types`,
//! forgetting names of pruned workers, and routes.

use std::{path::Path, time::Duration};

use celeriac::{
    Client,
    client::{BatchTask, ClientError, EnqueueOptions},
    config::RedisConfig,
    model::{Routes, TaskOptions, TaskStatus},
    queue::Cancel,
    tasks::{
        Registry, TaskContext, TaskError,
        command::{self, CommandCatalog},
    },
};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::helpers::{Api, InProcessWorker, TestRedis, unique_ns};

#[derive(Deserialize, JsonSchema)]
struct Resize {
    width: u32,
    height: u32,
}

#[derive(Serialize, Deserialize, Debug, PartialEq)]
struct Area {
    pixels: u64,
}

async fn resize(_ctx: TaskContext, a: Resize) -> Result<Area, TaskError> {
    Ok(Area {
        pixels: u64::from(a.width) * u64::from(a.height),
    })
}

/// Built-ins plus the typed `resize`, with defaults.
fn registry() -> Registry {
    let mut r = Registry::with_builtins();
    r.register_typed("resize", resize).set_options(
        "resize",
        TaskOptions {
            max_retries: Some(3),
            ..TaskOptions::default()
        },
    );
    r
}

fn client(redis: &TestRedis, ns: &str) -> Client {
    let mut cfg = RedisConfig::new(redis.url());
    cfg.namespace = ns.to_owned();
    Client::connect(&cfg).unwrap()
}

fn start_worker(redis: &TestRedis, ns: &str, name: &str, registry: Registry) -> InProcessWorker {
    let name = name.to_owned();
    InProcessWorker::start(&redis.url(), ns, registry, move |cfg| {
        cfg.name = name;
        cfg.queues = vec!["media".into(), "default".into()];
        cfg.heartbeat = Some(Duration::from_millis(200));
        cfg.engine.worker_retention = Duration::from_secs(2);
    })
}

async fn task_types(api: &Api) -> Vec<Value> {
    let resp = api.http.get(api.url("/task-types")).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    body["task_types"].as_array().unwrap().clone()
}

fn find<'a>(types: &'a [Value], name: &str) -> Option<&'a Value> {
    types.iter().find(|t| t["name"] == name)
}

/// Waits (bounded) until `GET /task-types` lists `name`; the worker registers
/// itself in the background as it starts.
async fn until_listed(api: &Api, name: &str) -> Value {
    for _ in 0..200 {
        if let Some(t) = find(&task_types(api).await, name) {
            return t.clone();
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("{name} never listed in GET /task-types");
}

#[tokio::test]
async fn a_typed_task_runs_through_the_library_and_the_client() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let _worker = start_worker(&redis, &ns, "lib-1", registry());
    let client = client(&redis, &ns);

    // The worker registers `resize` as it starts; until then the name is unknown.
    let mut id = None;
    for _ in 0..200 {
        match client
            .enqueue(
                "resize",
                json!({"width": 640, "height": 480}),
                EnqueueOptions::default(),
            )
            .await
        {
            Ok(i) => {
                id = Some(i);
                break;
            }
            Err(ClientError::Queue(celeriac::QueueError::UnknownTaskName(_))) => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => panic!("enqueue failed: {e}"),
        }
    }
    let id = id.expect("resize never registered");
    let area: Area = client.wait_for(id, Duration::from_secs(10)).await.unwrap();
    assert_eq!(area, Area { pixels: 307_200 });
    let record = client.get(id).await.unwrap().unwrap();
    assert_eq!((record.status, record.queue.as_str()), (TaskStatus::Success, "default"));

    // Wrong arguments are refused before anything is enqueued, as at POST /tasks.
    match client
        .enqueue("resize", json!({"width": "wide"}), EnqueueOptions::default())
        .await
    {
        Err(ClientError::InvalidArgs { name, message }) => {
            assert_eq!(name, "resize");
            assert!(message.contains("height") && message.contains("/width"), "{message}");
        }
        other => panic!("expected InvalidArgs, got {other:?}"),
    }
    assert!(matches!(
        client
            .enqueue("add", json!({"x": "one"}), EnqueueOptions::default())
            .await,
        Err(ClientError::InvalidArgs { .. })
    ));

    // Cancel: a delayed task is revoked at once, and a wait reports it.
    let later = client
        .enqueue(
            "sleep",
            json!({"seconds": 0}),
            EnqueueOptions {
                eta: Some(chrono::Utc::now() + Duration::from_secs(60)),
                ..EnqueueOptions::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(client.cancel(later).await.unwrap(), Cancel::Revoked);
    assert!(matches!(
        client.wait_for::<Value>(later, Duration::from_secs(5)).await,
        Err(ClientError::Revoked(i)) if i == later
    ));

    // A wait that times out says how far the task got.
    let pending = client
        .enqueue(
            "add",
            json!({"x": 1, "y": 2}),
            EnqueueOptions::on_queue("nobody-consumes"),
        )
        .await
        .unwrap();
    let t0 = std::time::Instant::now();
    match client.wait(pending, Duration::from_millis(300)).await {
        Err(ClientError::Timeout { status, .. }) => assert_eq!(status, TaskStatus::Pending),
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn the_client_wakes_on_completion_without_polling() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let client = client(&redis, &ns);
    // Enqueued before any worker runs: the wait starts while it is pending.
    let id = client
        .enqueue("add", json!({"x": 20, "y": 22}), EnqueueOptions::default())
        .await
        .unwrap();
    let waiter = {
        let client = client.clone();
        tokio::spawn(async move { client.wait_for::<i64>(id, Duration::from_secs(20)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _worker = start_worker(&redis, &ns, "late-1", registry());
    assert_eq!(waiter.await.unwrap().unwrap(), 42);
}

#[tokio::test]
async fn wrong_typed_args_are_refused_at_the_door_naming_the_problem() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let _worker = start_worker(&redis, &ns, "door-1", registry());
    let api = Api::start(&redis.url(), &ns, &[]).await;
    until_listed(&api, "resize").await;

    let (status, body) = api
        .post_task(json!({"name": "resize", "args": {"width": "wide"}}))
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_args");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(message.contains("height"), "names the missing property: {message}");
    assert!(message.contains("/width"), "names the mistyped property: {message}");

    // A workflow member is checked the same way.
    let resp = api
        .http
        .post(api.url("/workflows"))
        .json(&json!({"type": "group", "tasks": [
            {"name": "resize", "args": {"width": 1, "height": 2}},
            {"name": "resize", "args": {"width": -1, "height": 2}},
        ]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 422);
    let body: Value = resp.json().await.unwrap();
    assert!(body["error"]["message"].as_str().unwrap().contains("/width"), "{body}");

    // So is a batch member, by its index, and nothing of the batch is enqueued.
    let (status, body) = api
        .post_json(
            "/tasks/batch",
            json!({"tasks": [
                {"name": "resize", "args": {"width": 1, "height": 2}},
                {"name": "noop"},
                {"name": "resize", "args": {"width": 3}},
            ]}),
        )
        .await;
    assert_eq!(status, 422);
    assert_eq!(body["error"]["code"], "invalid_args", "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.starts_with("tasks[2]: ") && message.contains("height"),
        "{message}"
    );
    let listed = api.get_json("/tasks").await;
    assert_eq!(listed["tasks"], json!([]), "a refused batch enqueues nothing");

    // Good arguments pass and run.
    let id = api
        .enqueue(json!({"name": "resize", "args": {"width": 2, "height": 3}}))
        .await;
    let record = api.wait_task(&id, 10).await;
    assert_eq!(record["result"], json!({"pixels": 6}));
}

#[tokio::test]
async fn unknown_commands_and_bad_command_parameters_are_refused_at_the_door() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let root = std::env::temp_dir().join(format!("celeriac-door-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&root).unwrap();
    std::fs::write(root.join("a.txt"), "hello").unwrap();
    let toml = format!(
        r#"
        [commands.checksum]
        program = "sha256sum"
        args = ["{{input}}"]
        [commands.checksum.params.input]
        kind = "path"
        roots = ["{root}"]
        "#,
        root = root.display()
    );
    let mut r = registry();
    command::register(&mut r, CommandCatalog::parse(&toml, Path::new("test.toml")).unwrap());
    let _worker = start_worker(&redis, &ns, "cmd-1", r);
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let listed = until_listed(&api, "command").await;
    assert!(listed["args_schema"]["oneOf"].is_array(), "{listed}");

    let refused = |args: Value| {
        let api = &api;
        async move {
            let (status, body) = api.post_task(json!({"name": "command", "args": args})).await;
            assert_eq!(status, 422, "{body}");
            body["error"]["message"].as_str().unwrap().to_owned()
        }
    };
    let m = refused(json!({"command": "rm", "params": {}})).await;
    assert!(m.contains("unknown command \"rm\""), "{m}");
    let m = refused(json!({"command": "checksum", "params": {"input": "a.txt", "extra": "x"}})).await;
    assert!(m.contains("extra"), "{m}");
    let m = refused(json!({"command": "checksum", "params": {}})).await;
    assert!(m.contains("input"), "{m}");
    let escape = format!("{}/../etc/passwd", root.display());
    let m = refused(json!({"command": "checksum", "params": {"input": escape}})).await;
    assert!(m.contains("input"), "{m}");

    let ok = format!("{}/a.txt", root.display());
    let id = api
        .enqueue(json!({"name": "command", "args": {"command": "checksum", "params": {"input": ok}}}))
        .await;
    let record = api.wait_task(&id, 10).await;
    assert_eq!(record["status"], "SUCCESS", "{record}");
    std::fs::remove_dir_all(&root).unwrap();
}

#[tokio::test]
async fn task_types_lists_builtins_and_custom_tasks_with_schema_defaults_queues_and_workers() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let _worker = start_worker(&redis, &ns, "types-1", registry());
    let api = Api::start(&redis.url(), &ns, &[]).await;

    let resize = until_listed(&api, "resize").await;
    assert_eq!(resize["args_schema"]["required"], json!(["width", "height"]));
    assert_eq!(resize["args_schema"]["properties"]["width"]["type"], "integer");
    assert_eq!(resize["defaults"], json!({"max_retries": 3}));
    assert_eq!(resize["queues"], json!(["default", "media"]));
    assert_eq!(resize["workers"], json!(["types-1"]));

    let types = task_types(&api).await;
    for name in ["add", "noop", "echo", "sleep", "fail"] {
        assert!(find(&types, name).is_some(), "built-in {name} listed");
    }
    let add = find(&types, "add").unwrap();
    assert!(add["args_schema"].is_object(), "{add}");
    assert_eq!(add["workers"], json!(["types-1"]));
    let names: Vec<&str> = types.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn a_task_name_is_forgotten_after_its_workers_are_pruned() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let worker = start_worker(&redis, &ns, "gone-1", registry());
    let api = Api::start_with_env(
        &redis.url(),
        &ns,
        &[],
        &[
            ("CELERIAC_AUTH", "off".to_owned()),
            ("CELERIAC_WORKER_RETENTION_SECS", "2".to_owned()),
        ],
    )
    .await;
    until_listed(&api, "resize").await;
    worker.stop().await;

    // Still listed (STOPPED) during the retention time…
    assert!(find(&task_types(&api).await, "resize").is_some());
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // …then forgotten: not listed, and refused at the door.
    let types = task_types(&api).await;
    assert!(find(&types, "resize").is_none(), "{types:?}");
    assert_eq!(find(&types, "add").unwrap()["workers"], json!([]));
    let (status, body) = api
        .post_task(json!({"name": "resize", "args": {"width": 1, "height": 1}}))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("unknown_task")),
        "{body}"
    );
}

#[tokio::test]
async fn routes_place_tasks_by_name_and_an_explicit_queue_wins() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(
        &redis.url(),
        &ns,
        &[
            "--allow-unknown-tasks",
            "--routes",
            "transcode*=encoding,xapi.*=xapi,report=reports",
        ],
    )
    .await;
    let queue_of = |body: Value| {
        let api = &api;
        async move {
            let id = api.enqueue(body).await;
            api.get_task(&id).await.1["queue"].as_str().unwrap().to_owned()
        }
    };
    assert_eq!(queue_of(json!({"name": "transcode.video"})).await, "encoding");
    assert_eq!(queue_of(json!({"name": "xapi.send"})).await, "xapi");
    assert_eq!(queue_of(json!({"name": "report"})).await, "reports");
    assert_eq!(queue_of(json!({"name": "reports"})).await, "default");
    assert_eq!(queue_of(json!({"name": "add", "args": [1, 2]})).await, "default");
    assert_eq!(
        queue_of(json!({"name": "transcode", "queue": "urgent"})).await,
        "urgent",
        "an explicit queue wins"
    );

    // The client applies the same routes.
    let client = client(&redis, &ns).with_routes(Routes::parse("ad?=maths").unwrap());
    let id = client
        .enqueue("add", json!([1, 2]), EnqueueOptions::default())
        .await
        .unwrap();
    assert_eq!(client.get(id).await.unwrap().unwrap().queue, "maths");
    let id = client
        .enqueue("add", json!([1, 2]), EnqueueOptions::on_queue("other"))
        .await
        .unwrap();
    assert_eq!(client.get(id).await.unwrap().unwrap().queue, "other");
}

#[tokio::test]
async fn the_client_enqueues_a_batch_all_or_nothing() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let _worker = start_worker(&redis, &ns, "batch-1", registry());
    let client = client(&redis, &ns);
    let resize = |w: u32, h: u32| BatchTask::new("resize", json!({"width": w, "height": h})).unwrap();
    let queued = |client: &Client| {
        let queue = client.queue().clone();
        async move {
            queue
                .list_tasks(&celeriac::queue::TaskFilter::default(), 100, None)
                .await
                .unwrap()
                .ids
                .len()
        }
    };

    // Until the worker has published `resize`, its name is unknown: the whole
    // batch is refused, naming the first member with it.
    let mut ids = None;
    for _ in 0..200 {
        match client
            .enqueue_batch(vec![
                BatchTask::new("add", json!({"x": 1, "y": 2})).unwrap(),
                resize(2, 3),
            ])
            .await
        {
            Ok(got) => {
                ids = Some(got);
                break;
            }
            Err(ClientError::BatchMember { index: 1, source }) => {
                assert!(
                    matches!(*source, ClientError::Queue(celeriac::QueueError::UnknownTaskName(ref n)) if n == "resize"),
                    "{source:?}"
                );
                assert_eq!(queued(&client).await, 0, "nothing of a refused batch is enqueued");
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => panic!("batch failed: {e}"),
        }
    }
    let ids = ids.expect("resize never registered");
    assert_eq!(ids.len(), 2);
    assert_eq!(
        client.wait_for::<f64>(ids[0], Duration::from_secs(10)).await.unwrap(),
        3.0
    );
    let area: Area = client.wait_for(ids[1], Duration::from_secs(10)).await.unwrap();
    assert_eq!(area, Area { pixels: 6 });

    // A member with bad arguments (checked against the published schema), or
    // with an idempotency key, refuses the batch by its index.
    let before = queued(&client).await;
    match client
        .enqueue_batch(vec![
            resize(1, 1),
            BatchTask::new("resize", json!({"width": "wide"})).unwrap(),
        ])
        .await
    {
        Err(ClientError::BatchMember { index: 1, source }) => {
            assert!(
                matches!(*source, ClientError::InvalidArgs { ref name, .. } if name == "resize"),
                "{source:?}"
            )
        }
        other => panic!("expected a refused member, got {other:?}"),
    }
    let mut keyed = resize(1, 1);
    keyed.options.idempotency_key = Some("k".into());
    assert!(matches!(
        client.enqueue_batch(vec![resize(1, 1), resize(1, 1), keyed]).await,
        Err(ClientError::BatchMember { index: 2, .. })
    ));
    assert_eq!(queued(&client).await, before, "nothing of a refused batch is enqueued");

    // Routes and explicit queues apply per member, in order.
    let mut elsewhere = BatchTask::new("add", json!({"x": 0, "y": 0})).unwrap();
    elsewhere.options = EnqueueOptions::on_queue("nobody-consumes");
    let ids = client.enqueue_batch(vec![resize(1, 2), elsewhere]).await.unwrap();
    let record = client.get(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (record.queue.as_str(), record.status),
        ("nobody-consumes", TaskStatus::Pending)
    );
    assert!(client.enqueue_batch(Vec::new()).await.unwrap().is_empty());

    // A batch retried under its idempotency key is enqueued once: the retry
    // returns the first call's ids.
    let before = queued(&client).await;
    let once = client
        .enqueue_batch_idempotent("report-42", vec![resize(3, 3), resize(4, 4)])
        .await
        .unwrap();
    let retried = client
        .enqueue_batch_idempotent("report-42", vec![resize(3, 3), resize(4, 4)])
        .await
        .unwrap();
    assert_eq!((retried, queued(&client).await), (once, before + 2));
}
