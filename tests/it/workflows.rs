//! Chains, groups and chords over HTTP, advanced by the workers' completion scripts.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, Worker, task_events, unique_ns};

async fn submit(api: &Api, body: Value) -> Value {
    let resp = api.http.post(api.url("/workflows")).json(&body).send().await.unwrap();
    assert_eq!(resp.status(), 202, "{body}");
    resp.json().await.unwrap()
}

async fn wait_workflow(api: &Api, id: &str) -> Value {
    let resp = api
        .http
        .get(api.url(&format!("/workflows/{id}?wait=30")))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    resp.json().await.unwrap()
}

fn ids(created: &Value) -> Vec<String> {
    created["task_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_chain_feeds_each_result_to_the_next_task() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &[]).await;

    let created = submit(
        &api,
        json!({"type": "chain", "tasks": [
            {"name": "add", "args": [2, 2]},
            {"name": "add", "args": [4]},
            {"name": "echo", "args": {"label": "total"}},
        ]}),
    )
    .await;
    let w = wait_workflow(&api, created["workflow_id"].as_str().unwrap()).await;
    assert_eq!(w["status"], "SUCCESS", "{w}");
    assert_eq!(w["result"], json!({"input": 8, "label": "total"}));
    assert_eq!((w["done"].as_u64(), w["total"].as_u64()), (Some(3), Some(3)));
    let tasks = ids(&created);
    let second = api.get_task(&tasks[1]).await.1;
    assert_eq!(second["args"], json!([4, 4]));
    assert_eq!(second["result"], 8);
    assert_eq!(second["workflow_id"], created["workflow_id"]);
}

#[tokio::test]
async fn a_failing_task_stops_the_chain_and_shows_on_it() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &[]).await;

    let created = submit(
        &api,
        json!({"type": "chain", "tasks": [
            {"name": "add", "args": [1, 1]},
            {"name": "fail", "args": {"message": "broken link"}},
            {"name": "add", "args": [1]},
        ]}),
    )
    .await;
    let w = wait_workflow(&api, created["workflow_id"].as_str().unwrap()).await;
    let tasks = ids(&created);
    assert_eq!(w["status"], "FAILURE", "{w}");
    assert_eq!(w["failed_task_id"].as_str(), Some(tasks[1].as_str()));
    // `failed` counts the same way for chains as for groups and chords.
    assert_eq!(w["failed"], 1, "{w}");
    assert_eq!(w["result"]["exc_type"], "TaskFailed");
    let last = api.get_task(&tasks[2]).await.1;
    assert_eq!(
        (last["status"].as_str(), last["attempts"].as_u64()),
        (Some("REVOKED"), Some(0)),
        "{last}"
    );
}

#[tokio::test]
async fn a_group_reports_all_results_in_order() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "4"]).await;

    let created = submit(
        &api,
        json!({"type": "group", "tasks": [
            {"name": "sleep", "args": {"seconds": 0.3}},
            {"name": "add", "args": [2, 2]},
            {"name": "echo", "args": "x"},
        ]}),
    )
    .await;
    let id = created["workflow_id"].as_str().unwrap();
    let early: Value = api
        .http
        .get(api.url(&format!("/workflows/{id}")))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(early["total"], 3);
    let w = wait_workflow(&api, id).await;
    assert_eq!(w["status"], "SUCCESS", "{w}");
    assert_eq!(w["result"], json!([null, 4, "x"]));
    assert_eq!(w["done"], 3);

    // One failing member: the group fails once all have finished, with every result.
    let created = submit(
        &api,
        json!({"type": "group", "tasks": [{"name": "add", "args": [1, 2]}, {"name": "fail"}]}),
    )
    .await;
    let w = wait_workflow(&api, created["workflow_id"].as_str().unwrap()).await;
    assert_eq!(
        (w["status"].as_str(), w["failed"].as_u64()),
        (Some("FAILURE"), Some(1)),
        "{w}"
    );
    assert_eq!(w["result"][0], 3);
    assert_eq!(w["result"][1]["exc_type"], "TaskFailed");
    // And names its failed member, as a chain does.
    assert_eq!(w["failed_task_id"].as_str(), Some(ids(&created)[1].as_str()), "{w}");
}

#[tokio::test]
async fn a_chord_calls_back_with_the_list_of_results() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "4"]).await;

    let created = submit(
        &api,
        json!({"type": "chord",
               "tasks": [{"name": "add", "args": [1, 1]}, {"name": "add", "args": [2, 2]}],
               "callback": {"name": "echo"}}),
    )
    .await;
    let w = wait_workflow(&api, created["workflow_id"].as_str().unwrap()).await;
    assert_eq!(w["status"], "SUCCESS", "{w}");
    assert_eq!(w["result"], json!([2, 4]));
    let callback = api.get_task(created["callback_id"].as_str().unwrap()).await.1;
    assert_eq!(callback["args"], json!([2, 4]));

    // A failing header member: the callback never runs.
    let created = submit(
        &api,
        json!({"type": "chord", "tasks": [{"name": "fail"}, {"name": "noop"}], "callback": {"name": "echo"}}),
    )
    .await;
    let w = wait_workflow(&api, created["workflow_id"].as_str().unwrap()).await;
    assert_eq!(w["status"], "FAILURE", "{w}");
    let callback = api.get_task(created["callback_id"].as_str().unwrap()).await.1;
    assert_eq!(
        (callback["status"].as_str(), callback["attempts"].as_u64()),
        (Some("REVOKED"), Some(0))
    );
}

#[tokio::test]
async fn invalid_workflows_are_refused() {
    let redis = TestRedis::start();
    let api = Api::start(&redis.url(), &unique_ns(), &[]).await;
    for (body, code) in [
        (json!({"type": "chain", "tasks": []}), "invalid_task"),
        (
            json!({"type": "chord", "tasks": [{"name": "noop"}]}),
            "invalid_workflow",
        ),
        (
            json!({"type": "group", "tasks": [{"name": "noop"}], "callback": {"name": "noop"}}),
            "invalid_workflow",
        ),
        (json!({"type": "loop", "tasks": [{"name": "noop"}]}), "invalid_task"),
        (
            json!({"type": "chain", "tasks": [{"name": "noop", "countdown": 5}]}),
            "invalid_workflow",
        ),
        (
            json!({"type": "chain", "tasks": [{"name": "transcode"}]}),
            "unknown_task",
        ),
    ] {
        let resp = api.http.post(api.url("/workflows")).json(&body).send().await.unwrap();
        assert_eq!(resp.status(), 422, "{body}");
        assert_eq!(resp.json::<Value>().await.unwrap()["error"]["code"], code, "{body}");
    }
    let resp = api
        .http
        .get(api.url(&format!("/workflows/{}", uuid::Uuid::new_v4())))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

#[tokio::test]
async fn a_worker_killed_mid_chain_neither_loses_nor_duplicates_the_next_step() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let lease = ["--lease-secs", "2"];
    let victim = Worker::start(&redis.url(), &ns, &lease).await;

    let created = submit(
        &api,
        json!({"type": "chain", "tasks": [
            {"name": "sleep", "args": {"seconds": 1.5}},
            {"name": "echo", "args": {"step": 2}},
            {"name": "echo"},
        ]}),
    )
    .await;
    let tasks = ids(&created);
    api.wait_until(&tasks[0], Duration::from_secs(10), |t| t["status"] == "STARTED")
        .await;
    victim.proc.signal("KILL");
    let _rescuer = Worker::start(&redis.url(), &ns, &lease).await;

    let w = wait_workflow(&api, created["workflow_id"].as_str().unwrap()).await;
    assert_eq!(w["status"], "SUCCESS", "{w}");
    assert_eq!(w["result"], json!({"input": null, "step": 2}));
    assert_eq!(
        task_events(&redis, &ns, &tasks[0])
            .iter()
            .filter(|e| *e == "succeeded")
            .count(),
        1
    );
    for next in &tasks[1..] {
        let events = task_events(&redis, &ns, next);
        assert_eq!(events, ["waiting", "enqueued", "started", "succeeded"], "{next}");
    }
}

#[tokio::test]
async fn a_task_of_a_running_workflow_cannot_be_resubmitted() {
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "2"]).await;

    let created = submit(
        &api,
        json!({"type": "group", "tasks": [{"name": "fail"}, {"name": "sleep", "args": {"seconds": 1.5}}]}),
    )
    .await;
    let tasks = ids(&created);
    assert_eq!(api.wait_task(&tasks[0], 10).await["status"], "FAILURE");
    let retry = |id: &str| api.http.post(api.url(&format!("/tasks/{id}/retry"))).send();
    assert_eq!(
        retry(&tasks[0]).await.unwrap().status(),
        409,
        "its group still counts it as failed"
    );
    let w = wait_workflow(&api, created["workflow_id"].as_str().unwrap()).await;
    assert_eq!(
        (w["status"].as_str(), w["done"].as_u64()),
        (Some("FAILURE"), Some(2)),
        "{w}"
    );
    assert_eq!(
        retry(&tasks[0]).await.unwrap().status(),
        202,
        "once the group ended it can run again"
    );
}
