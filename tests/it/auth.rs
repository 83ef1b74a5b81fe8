//! API authentication: bearer tokens with scopes, open routes, SIGHUP reload,
//! secure-by-default startup, and tokens kept out of the logs.

use std::{
    path::PathBuf,
    process::Stdio,
    time::{Duration, Instant},
};

use celeriac::api::auth::{Scope, required_scope};
use poem::http::Method;
use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, free_port, unique_ns};

const READ: &str = "read-token-0123456789";
const WRITE: &str = "write-token-0123456789";
const ADMIN: &str = "admin-token-0123456789";

fn all_tokens() -> String {
    format!("{READ}:read,{WRITE}:write, {ADMIN}:admin")
}

/// Sends `method path` with an optional bearer token; returns (status, WWW-Authenticate, body).
async fn call(api: &Api, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> (u16, String, Value) {
    let mut req = api.http.request(method.parse().unwrap(), api.url(path));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .map(|v| v.to_str().unwrap().to_owned())
        .unwrap_or_default();
    (status, challenge, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn each_scope_opens_exactly_its_operations() {
    let redis = TestRedis::start();
    let api = Api::start_with_tokens(&redis.url(), &unique_ns(), &all_tokens(), &[]).await;

    // No token, or an unknown one: 401 with the challenge and the JSON error body.
    for (token, error) in [(None, None), (Some("nope-nope-nope-nope"), Some("invalid_token"))] {
        for (method, path) in [("GET", "/queues"), ("POST", "/tasks"), ("GET", "/no/such/route")] {
            let (status, challenge, body) = call(&api, method, path, token, None).await;
            assert_eq!(status, 401, "{method} {path} with {token:?}");
            assert!(challenge.starts_with("Bearer"), "{challenge}");
            if let Some(e) = error {
                assert!(challenge.contains(e), "{challenge}");
            }
            assert_eq!(body["error"]["code"], "unauthorized", "{body}");
            assert!(body["error"]["message"].is_string());
        }
    }
    // A lowercase scheme name is a bearer token all the same (RFC 7235).
    let resp = api
        .http
        .get(api.url("/queues"))
        .header("authorization", format!("bearer {READ}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // read: every GET, nothing else.
    assert_eq!(call(&api, "GET", "/queues", Some(READ), None).await.0, 200);
    let (status, challenge, body) = call(&api, "POST", "/tasks", Some(READ), Some(json!({"name": "noop"}))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    assert!(
        challenge.contains("insufficient_scope") && challenge.contains("write"),
        "{challenge}"
    );

    // write: enqueue, workflows, cancel; not delete.
    let (status, _, body) = call(&api, "POST", "/tasks", Some(WRITE), Some(json!({"name": "noop"}))).await;
    assert_eq!(status, 202, "{body}");
    let id = body["task_id"].as_str().unwrap().to_owned();
    assert_eq!(
        call(&api, "GET", &format!("/tasks/{id}"), Some(READ), None).await.0,
        200
    );
    let wf = json!({"type": "group", "tasks": [{"name": "noop"}]});
    assert_eq!(
        call(&api, "POST", "/workflows", Some(WRITE), Some(wf.clone())).await.0,
        202
    );
    assert_eq!(call(&api, "POST", "/workflows", Some(READ), Some(wf)).await.0, 403);
    assert_eq!(
        call(&api, "POST", &format!("/tasks/{id}/cancel"), Some(READ), None)
            .await
            .0,
        403
    );
    assert_eq!(
        call(&api, "POST", &format!("/tasks/{id}/cancel"), Some(WRITE), None)
            .await
            .0,
        200
    );
    let (status, _, body) = call(&api, "DELETE", &format!("/tasks/{id}"), Some(WRITE), None).await;
    assert_eq!((status, body["error"]["code"].as_str()), (403, Some("forbidden")));

    // admin: everything.
    assert_eq!(
        call(&api, "DELETE", &format!("/tasks/{id}"), Some(ADMIN), None).await.0,
        204
    );
    assert_eq!(
        call(&api, "POST", "/tasks", Some(ADMIN), Some(json!({"name": "noop"})))
            .await
            .0,
        202
    );
    assert_eq!(call(&api, "GET", "/queues/default", Some(ADMIN), None).await.0, 200);
}

#[tokio::test]
async fn probes_docs_and_metrics_stay_open() {
    let redis = TestRedis::start();
    let api = Api::start_with_tokens(&redis.url(), &unique_ns(), &all_tokens(), &[]).await;
    for path in ["/healthz", "/readyz", "/docs", "/openapi.json"] {
        assert_eq!(call(&api, "GET", path, None, None).await.0, 200, "{path}");
    }
    // /metrics is open by default (whatever serves it), behind `read` on request.
    assert_ne!(call(&api, "GET", "/metrics", None, None).await.0, 401);
    let guarded = Api::start_with_env(
        &redis.url(),
        &unique_ns(),
        &[],
        &[
            ("CELERIAC_API_TOKENS", all_tokens()),
            ("CELERIAC_METRICS_REQUIRE_AUTH", "true".to_owned()),
        ],
    )
    .await;
    assert_eq!(call(&guarded, "GET", "/metrics", None, None).await.0, 401);
    assert_ne!(call(&guarded, "GET", "/metrics", Some(READ), None).await.0, 401);
}

#[tokio::test]
async fn access_token_in_the_query_is_accepted_only_on_the_event_stream() {
    let redis = TestRedis::start();
    let api = Api::start_with_tokens(&redis.url(), &unique_ns(), &all_tokens(), &[]).await;
    // Elsewhere a token in a URL would end up in access logs: refused.
    assert_eq!(
        call(&api, "GET", &format!("/queues?access_token={READ}"), None, None)
            .await
            .0,
        401
    );
    // /events (SSE: EventSource cannot set headers) takes it.
    assert_eq!(call(&api, "GET", "/events", None, None).await.0, 401);
    assert_eq!(
        call(&api, "GET", "/events?access_token=nope-nope-nope-nope", None, None)
            .await
            .0,
        401
    );
    let status = call(&api, "GET", &format!("/events?x=1&access_token={READ}"), None, None)
        .await
        .0;
    assert!(status != 401 && status != 403, "{status}");
}

#[tokio::test]
async fn the_spec_declares_the_bearer_scheme_and_each_operations_scope() {
    let redis = TestRedis::start();
    let api = Api::start_with_tokens(&redis.url(), &unique_ns(), &all_tokens(), &[]).await;
    let (_, _, spec) = call(&api, "GET", "/openapi.json", None, None).await;
    let scheme = &spec["components"]["securitySchemes"]["bearer"];
    assert_eq!(
        (scheme["type"].as_str(), scheme["scheme"].as_str()),
        (Some("http"), Some("bearer"))
    );
    let mut checked = 0;
    for (path, ops) in spec["paths"].as_object().unwrap() {
        for (method, op) in ops.as_object().unwrap() {
            let concrete = path
                .replace("{task_id}", "x")
                .replace("{workflow_id}", "x")
                .replace("{name}", "x");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let description = op["description"].as_str().unwrap_or_default();
            match required_scope(&m, &concrete, false) {
                None => assert!(op["security"].is_null(), "{method} {path} is open"),
                Some(scope) => {
                    assert_eq!(op["security"], json!([{"bearer": []}]), "{method} {path}");
                    assert!(
                        description.contains(&format!("Scope: `{scope}`")),
                        "{method} {path} must document the {scope} scope: {description:?}"
                    );
                    assert!(op["responses"]["401"].is_object() && op["responses"]["403"].is_object());
                    checked += 1;
                }
            }
        }
    }
    assert!(checked >= 9, "{checked} operations checked");
    assert_eq!(required_scope(&Method::DELETE, "/tasks/x", false), Some(Scope::Admin));
}

fn tokens_file(contents: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("celeriac-tokens-{}", uuid::Uuid::new_v4().simple()));
    std::fs::write(&path, contents).unwrap();
    path
}

#[tokio::test]
async fn the_tokens_file_is_reloaded_on_sighup_and_a_bad_file_keeps_the_old_tokens() {
    let redis = TestRedis::start();
    let first = "first-token-0123456789";
    let second = "second-token-0123456789";
    let file = tokens_file(&format!("# operators\n{first}:read\n\n"));
    let mut api = Api::start_with_env(
        &redis.url(),
        &unique_ns(),
        &[],
        &[("CELERIAC_API_TOKENS_FILE", file.display().to_string())],
    )
    .await;
    assert_eq!(call(&api, "GET", "/queues", Some(first), None).await.0, 200);
    assert_eq!(call(&api, "GET", "/queues", Some(second), None).await.0, 401);

    std::fs::write(&file, format!("# rotated\n{second}:admin\n")).unwrap();
    api.proc.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(5);
    while call(&api, "GET", "/queues", Some(second), None).await.0 != 200 {
        assert!(Instant::now() < deadline, "the new token was not loaded");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(call(&api, "GET", "/queues", Some(first), None).await.0, 401);

    // A broken file (a short token) is refused; the tokens in force stay.
    std::fs::write(&file, "short:admin\n").unwrap();
    api.proc.signal("HUP");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(call(&api, "GET", "/queues", Some(second), None).await.0, 200);
    assert!(
        api.proc.child.try_wait().unwrap().is_none(),
        "SIGHUP must not stop the API"
    );
    let _ = std::fs::remove_file(&file);
}

/// Runs the API binary with `env` and a log file for its stderr; returns the
/// child, its base URL and the log path.
fn spawn_logged(redis_url: &str, env: &[(&str, &str)]) -> (tokio::process::Child, String, PathBuf) {
    let port = free_port();
    let log = std::env::temp_dir().join(format!("celeriac-api-log-{}", uuid::Uuid::new_v4().simple()));
    let mut cmd = tokio::process::Command::new(env!("CARGO_BIN_EXE_celeriac-api"));
    cmd.args(["--host", "127.0.0.1", "--port", &port.to_string()])
        .env_remove("CELERIAC_AUTH")
        .env_remove("CELERIAC_API_TOKENS")
        .env_remove("CELERIAC_API_TOKENS_FILE")
        .env("CELERIAC_BROKER_URL", redis_url)
        .env("CELERIAC_NAMESPACE", unique_ns())
        .env("RUST_LOG", "debug")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd.spawn().unwrap(), format!("http://127.0.0.1:{port}"), log)
}

async fn exit_code(child: &mut tokio::process::Child) -> Option<i32> {
    tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("the API should have exited")
        .unwrap()
        .code()
}

#[tokio::test]
async fn the_api_refuses_to_start_without_a_token_and_says_what_to_set() {
    let redis = TestRedis::start();
    let (mut child, _, log) = spawn_logged(&redis.url(), &[]);
    assert_ne!(exit_code(&mut child).await, Some(0));
    let out = std::fs::read_to_string(&log).unwrap();
    for hint in ["CELERIAC_API_TOKENS", "CELERIAC_API_TOKENS_FILE", "CELERIAC_AUTH=off"] {
        assert!(out.contains(hint), "{hint} missing from: {out}");
    }

    // A token shorter than 16 characters is refused, without being echoed.
    let (mut child, _, log) = spawn_logged(&redis.url(), &[("CELERIAC_API_TOKENS", "tiny-t0ken:admin")]);
    assert_ne!(exit_code(&mut child).await, Some(0));
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(out.contains("shorter than 16"), "{out}");
    assert!(!out.contains("tiny-t0ken"), "{out}");

    // CELERIAC_AUTH=off starts, with a warning.
    let (child, base, log) = spawn_logged(&redis.url(), &[("CELERIAC_AUTH", "off")]);
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(r) = http.get(format!("{base}/queues")).send().await {
            assert_eq!(r.status(), 200);
            break;
        }
        assert!(Instant::now() < deadline, "the API did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    drop(child);
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(out.contains("WARN") && out.contains("CELERIAC_AUTH=off"), "{out}");
}

#[tokio::test]
async fn tokens_never_appear_in_the_log() {
    let redis = TestRedis::start();
    let file = tokens_file(&format!("{ADMIN}:admin\n"));
    let file_env = file.display().to_string();
    let (mut child, base, log) = spawn_logged(
        &redis.url(),
        &[
            ("CELERIAC_API_TOKENS", &format!("{READ}:read,{WRITE}:write")),
            ("CELERIAC_API_TOKENS_FILE", &file_env),
        ],
    );
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while http.get(format!("{base}/healthz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "the API did not start");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let wrong = "wrong-token-0123456789";
    for token in [READ, WRITE, ADMIN, wrong] {
        let r = http
            .post(format!("{base}/tasks"))
            .bearer_auth(token)
            .json(&json!({"name": "noop"}))
            .send()
            .await
            .unwrap();
        assert!(r.status().as_u16() < 500);
        let _ = http
            .get(format!("{base}/events?access_token={token}"))
            .send()
            .await
            .unwrap();
    }
    // A reload that fails on a (short, bad) token says why without the token.
    std::fs::write(&file, format!("{ADMIN}:admin\n{wrong}:superuser\n")).unwrap();
    let pid = child.id().unwrap().to_string();
    assert!(
        std::process::Command::new("kill")
            .args(["-HUP", &pid])
            .status()
            .unwrap()
            .success()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(child.try_wait().unwrap().is_none(), "SIGHUP must not stop the API");
    child.kill().await.unwrap();
    let out = std::fs::read_to_string(&log).unwrap();
    assert!(out.contains("not reloaded") && out.contains("line 2"), "{out}");
    for token in [READ, WRITE, ADMIN, wrong] {
        assert!(!out.contains(token), "{token} leaked into the log");
    }
    let _ = std::fs::remove_file(&file);
}
