//! Completion callbacks through the real binaries: a task with a callback URL
//! (its own, or its queue's) ends, the completion script queues the delivery,
//! and a worker consuming `callbacks` POSTs the record to a local receiver —
//! signed, with the token, retried on 5xx, refused on 4xx and for hosts not
//! allowed, and delivered again after its worker is killed mid-request.

use std::{
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use hmac::{Hmac, Mac};
use poem::{
    EndpointExt, Request, Response, Route, Server, handler,
    http::{HeaderMap, StatusCode},
    listener::{Acceptor, Listener, TcpListener},
    post,
    web::Data,
};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::{Api, TestRedis, Worker, unique_ns};

const TOKEN: &str = "cb-token-1";
const SECRET: &str = "cb-secret-1";

// ---------------------------------------------------------------- receiver

/// One request the receiver got.
#[derive(Clone, Debug)]
struct Got {
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Got>>>,
}

impl Receiver {
    fn hits(&self, path: &str) -> Vec<Got> {
        self.got
            .lock()
            .unwrap()
            .iter()
            .filter(|g| g.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` got `n` requests.
    async fn wait_hits(&self, path: &str, n: usize) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let hits = self.hits(path);
            if hits.len() >= n {
                return hits;
            }
            assert!(Instant::now() < deadline, "{path} got {} of {n} requests", hits.len());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// `/ok` answers 200; `/flaky` 500 the first time; `/gone` always 404; `/block`
/// hangs the first time (its worker is killed meanwhile), then answers 200.
#[handler]
async fn receive(req: &Request, body: Vec<u8>, Data(r): Data<&Receiver>) -> Response {
    let path = req.uri().path().to_owned();
    let n = {
        let mut got = r.got.lock().unwrap();
        got.push(Got {
            path: path.clone(),
            headers: req.headers().clone(),
            body,
        });
        got.iter().filter(|g| g.path == path).count()
    };
    let status = match (path.as_str(), n) {
        ("/flaky", 1) => StatusCode::INTERNAL_SERVER_ERROR,
        ("/gone", _) => StatusCode::NOT_FOUND,
        ("/block", 1) => {
            tokio::time::sleep(Duration::from_secs(60)).await;
            StatusCode::OK
        }
        _ => StatusCode::OK,
    };
    Response::builder().status(status).body("thanks")
}

/// A receiver on a free port; returns its port.
async fn receiver() -> (u16, Receiver) {
    let r = Receiver::default();
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await.unwrap();
    let port = acceptor.local_addr()[0].as_socket_addr().unwrap().port();
    let app = Route::new().at("/*path", post(receive)).data(r.clone());
    tokio::spawn(Server::new_with_acceptor(acceptor).run(app));
    (port, r)
}

// ---------------------------------------------------------------- harness

struct Setup {
    redis: TestRedis,
    ns: String,
    api: Api,
    port: u16,
    receiver: Receiver,
}

impl Setup {
    async fn start(api_env: &[(&str, String)]) -> Self {
        let redis = TestRedis::start();
        let ns = unique_ns();
        let (port, receiver) = receiver().await;
        let mut env = vec![("CELERIAC_AUTH", "off".to_owned())];
        env.extend(
            api_env
                .iter()
                .map(|(k, v)| (*k, v.replace("{port}", &port.to_string()))),
        );
        let api = Api::start_with_env(&redis.url(), &ns, &[], &env).await;
        Self {
            redis,
            ns,
            api,
            port,
            receiver,
        }
    }

    /// A worker of `queues` that may call the receiver (unless `allowed` says otherwise).
    async fn worker(&self, queues: &str, allowed: Option<&str>, extra: &[&str]) -> Worker {
        let allowed = allowed.map_or_else(|| format!("127.0.0.1:{}", self.port), str::to_owned);
        let mut args = vec![
            "-Q",
            queues,
            "--callback-allowed-hosts",
            &allowed,
            "--callback-token",
            TOKEN,
            "--callback-secret",
            SECRET,
        ];
        args.extend_from_slice(extra);
        Worker::start(&self.redis.url(), &self.ns, &args).await
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Waits until the task's callback has `status`; returns the record.
    async fn wait_callback(&self, id: &str, status: &str) -> Value {
        self.api
            .wait_until(id, Duration::from_secs(20), |r| r["callback"]["status"] == status)
            .await
    }
}

fn header<'a>(g: &'a Got, name: &str) -> &'a str {
    g.headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

// ---------------------------------------------------------------- tests

#[tokio::test]
async fn a_callback_posts_the_records_json_signed_and_with_the_token() {
    let s = Setup::start(&[]).await;
    let _worker = s.worker("default,callbacks", None, &[]).await;

    let id = s
        .api
        .enqueue(json!({"name": "add", "args": {"x": 1, "y": 2}, "callback_url": s.url("/ok")}))
        .await;

    let got = s.receiver.wait_hits("/ok", 1).await.remove(0);
    assert_eq!(header(&got, "content-type"), "application/json");
    assert_eq!(header(&got, "authorization"), format!("Bearer {TOKEN}"));
    let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(&got.body);
    let expected = format!("sha256={}", hex(&mac.finalize().into_bytes()));
    assert_eq!(
        header(&got, "x-celeriac-signature"),
        expected,
        "the signature is the body's HMAC"
    );
    let ts: i64 = header(&got, "x-celeriac-timestamp").parse().expect("a Unix time");
    assert!((chrono::Utc::now().timestamp() - ts).abs() < 60, "{ts}");

    let mut body: Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(body["task_id"], id.as_str());
    assert_eq!(body["status"], "SUCCESS");
    assert_eq!(body["result"], 3);
    assert_eq!(body["callback"]["status"], "pending", "{body}");

    let mut record = s.wait_callback(&id, "delivered").await;
    assert_eq!(
        record["callback"],
        json!({"url": s.url("/ok"), "status": "delivered", "attempts": 1, "last_error": null})
    );
    // The body is the record as GET /tasks/{id} shows it; only the callback moved on.
    body.as_object_mut().unwrap().remove("callback");
    record.as_object_mut().unwrap().remove("callback");
    assert_eq!(body, record);
    assert_eq!(s.receiver.hits("/ok").len(), 1);
}

#[tokio::test]
async fn a_callback_answered_500_is_retried_then_delivered() {
    let s = Setup::start(&[]).await;
    let _worker = s.worker("default,callbacks", None, &[]).await;

    let id = s
        .api
        .enqueue(json!({"name": "noop", "callback_url": s.url("/flaky")}))
        .await;

    let record = s.wait_callback(&id, "delivered").await;
    assert_eq!(record["callback"]["attempts"], 2, "{record}");
    assert_eq!(record["callback"]["last_error"], Value::Null);
    assert_eq!(s.receiver.hits("/flaky").len(), 2);
}

#[tokio::test]
async fn a_callback_answered_4xx_fails_at_once() {
    let s = Setup::start(&[]).await;
    let _worker = s.worker("default,callbacks", None, &[]).await;

    let id = s
        .api
        .enqueue(json!({"name": "fail", "callback_url": s.url("/gone")}))
        .await;

    let record = s.wait_callback(&id, "failed").await;
    assert_eq!(record["status"], "FAILURE", "the task's own end is delivered too");
    let callback = &record["callback"];
    assert_eq!(callback["attempts"], 1, "{callback}");
    assert!(callback["last_error"].as_str().unwrap().contains("404"), "{callback}");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(s.receiver.hits("/gone").len(), 1, "a 4xx is not retried");
}

#[tokio::test]
async fn a_callback_to_a_host_not_allowed_fails_naming_the_setting() {
    let s = Setup::start(&[]).await;
    let _worker = s.worker("default,callbacks", Some("app.example"), &[]).await;

    let id = s
        .api
        .enqueue(json!({"name": "noop", "callback_url": s.url("/ok")}))
        .await;

    let record = s.wait_callback(&id, "failed").await;
    let error = record["callback"]["last_error"].as_str().unwrap().to_owned();
    assert!(
        error.contains("CELERIAC_CALLBACK_ALLOWED_HOSTS") && error.contains(&format!("127.0.0.1:{}", s.port)),
        "{error}"
    );
    assert!(s.receiver.hits("/ok").is_empty(), "nothing was sent");
}

#[tokio::test]
async fn queue_callbacks_cover_every_task_of_their_queue() {
    let s = Setup::start(&[(
        "CELERIAC_QUEUE_CALLBACKS",
        "encoding=http://127.0.0.1:{port}/ok".to_owned(),
    )])
    .await;
    let _worker = s.worker("default,encoding,callbacks", None, &[]).await;

    let encoded = s.api.enqueue(json!({"name": "noop", "queue": "encoding"})).await;
    let own = s
        .api
        .enqueue(json!({"name": "noop", "queue": "encoding", "callback_url": s.url("/flaky")}))
        .await;
    let plain = s.api.enqueue(json!({"name": "noop"})).await;

    let record = s.wait_callback(&encoded, "delivered").await;
    assert_eq!(record["callback"]["url"], s.url("/ok"));
    let record = s.wait_callback(&own, "delivered").await;
    assert_eq!(record["callback"]["url"], s.url("/flaky"), "a task's own URL wins");
    let record = s.api.wait_task(&plain, 10).await;
    assert_eq!(record["status"], "SUCCESS");
    assert_eq!(record["callback"], Value::Null, "other queues have no callback");
    let bodies: Vec<Value> = s
        .receiver
        .hits("/ok")
        .iter()
        .map(|g| serde_json::from_slice(&g.body).unwrap())
        .collect();
    assert_eq!(bodies.len(), 1, "{bodies:?}");
    assert_eq!(bodies[0]["task_id"], encoded.as_str());

    let (status, body) = s
        .api
        .post_task(json!({"name": "noop", "callback_url": "ftp://x/y"}))
        .await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test]
async fn a_delivery_survives_its_worker_killed_mid_request() {
    let s = Setup::start(&[]).await;
    let worker = s.worker("default,callbacks", None, &["--lease-secs", "1"]).await;

    let id = s
        .api
        .enqueue(json!({"name": "noop", "callback_url": s.url("/block")}))
        .await;
    s.receiver.wait_hits("/block", 1).await;
    worker.proc.signal("KILL");
    drop(worker);

    let _second = s.worker("default,callbacks", None, &["--lease-secs", "1"]).await;
    let record = s.wait_callback(&id, "delivered").await;
    assert_eq!(record["callback"]["attempts"], 2, "{record}");
    let hits = s.receiver.hits("/block");
    assert_eq!(hits.len(), 2);
    assert_eq!(hits[0].body, hits[1].body, "the same record both times");
}
