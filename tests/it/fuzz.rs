//! Property tests of hand-written parsers reached from outside: request bodies of
//! random shapes against the whole HTTP app (in process, over a real Redis), the
//! Redis URL redaction, and the names that become parts of Redis keys.

use poem::{Endpoint, Request, http::Method};
use proptest::{
    collection::{btree_map, vec},
    prelude::*,
    test_runner::{Config, TestRunner},
};
use serde_json::{Map, Value, json};

use crate::helpers::{TestRedis, unique_ns};

// ---------------------------------------------------------------- JSON of any shape

/// Any JSON value, nested a few levels.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>().prop_filter_map("finite", |f| serde_json::Number::from_f64(f).map(Value::Number)),
        prop::sample::select(vec![-1.0, 0.0, 0.0005, 1e-9, 31_536_000.5, 1e300, -1e300]).prop_map(Value::from),
        "\\PC{0,12}".prop_map(Value::from),
        time_text().prop_map(Value::from),
    ];
    leaf.prop_recursive(3, 32, 6, |inner| {
        prop_oneof![
            vec(inner.clone(), 0..6).prop_map(Value::Array),
            btree_map("\\PC{0,8}", inner, 0..6).prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// RFC 3339-looking text, valid or not (years 0000–9999, any offset).
fn time_text() -> impl Strategy<Value = String> {
    "[0-9]{4}-[0-1][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-6][0-9](\\.[0-9]{1,9})?(Z|[+-][0-2][0-9]:[0-5][0-9])"
}

/// A value for `field`: usually of the right type (so the request gets deep), else anything.
fn field_value(field: &'static str) -> BoxedStrategy<Value> {
    let typed: BoxedStrategy<Value> = match field {
        "name" => prop::sample::select(vec!["add", "noop", "sleep", "echo", "fail", "no-such-task", ""])
            .prop_map(Value::from)
            .boxed(),
        "queue" => prop_oneof![
            Just(json!("default")),
            "[a-z]{1,8}".prop_map(Value::from),
            "\\PC{0,140}".prop_map(Value::from)
        ]
        .boxed(),
        "args" => prop_oneof![
            (any::<i64>(), any::<i64>()).prop_map(|(x, y)| json!([x, y])),
            (-1e6f64..1e6).prop_map(|s| json!({"seconds": s})),
            "\\PC{0,12}".prop_map(|m| json!({"message": m})),
        ]
        .boxed(),
        "eta" | "expires" => {
            prop_oneof![time_text().prop_map(Value::from), (-10.0f64..4e7).prop_map(Value::from)].boxed()
        }
        "retry_jitter" => any::<bool>().prop_map(Value::from).boxed(),
        "retry_on" => vec("[A-Za-z]{0,12}", 0..3).prop_map(|v| json!(v)).boxed(),
        "idempotency_key" => "\\PC{0,300}".prop_map(Value::from).boxed(),
        "priority" | "max_retries" => (-2i64..2000).prop_map(Value::from).boxed(),
        _ => (-10.0f64..1e6).prop_map(Value::from).boxed(),
    };
    prop_oneof![4 => typed, 1 => any_json()].boxed()
}

const TASK_FIELDS: &[&str] = &[
    "name",
    "args",
    "queue",
    "countdown",
    "eta",
    "expires",
    "max_retries",
    "retry_backoff",
    "retry_backoff_max",
    "retry_jitter",
    "retry_on",
    "priority",
    "time_limit",
    "soft_time_limit",
    "idempotency_key",
];

/// A `POST /tasks` body: a random subset of the real fields, sometimes a stray one.
fn task_body() -> BoxedStrategy<Value> {
    let fields: Vec<BoxedStrategy<Option<(String, Value)>>> = TASK_FIELDS
        .iter()
        .map(|f| {
            let weight_present = if *f == "name" { 9 } else { 3 };
            prop_oneof![
                10 - weight_present => Just(None),
                weight_present => field_value(f).prop_map(move |v| Some(((*f).to_owned(), v))),
            ]
            .boxed()
        })
        .collect();
    let stray = prop::option::weighted(0.1, ("[a-z_]{1,10}", any_json()));
    (fields, stray)
        .prop_map(|(fields, stray)| {
            let mut m: Map<String, Value> = fields.into_iter().flatten().collect();
            if let Some((k, v)) = stray {
                m.insert(k, v);
            }
            Value::Object(m)
        })
        .boxed()
}

/// A task that should be accepted, with some valid options (so the deep paths run too).
fn valid_task() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            (any::<i32>(), any::<i32>()).prop_map(|(x, y)| json!({"name": "add", "args": [x, y]})),
            Just(json!({"name": "noop"})),
            any_json().prop_map(|a| json!({"name": "echo", "args": a})),
        ],
        prop::option::of(0u8..=9),
        prop::option::of(0u32..=20),
        prop::option::of("[a-z]{1,8}"),
    )
        .prop_map(|(mut t, priority, retries, queue)| {
            let m = t.as_object_mut().unwrap();
            if let Some(p) = priority {
                m.insert("priority".into(), p.into());
            }
            if let Some(r) = retries {
                m.insert("max_retries".into(), r.into());
            }
            if let Some(q) = queue {
                m.insert("queue".into(), q.into());
            }
            t
        })
}

/// A `POST /workflows` body.
fn workflow_body() -> impl Strategy<Value = Value> {
    (
        prop_oneof![
            4 => prop::sample::select(vec!["chain", "group", "chord"]).prop_map(Value::from),
            1 => any_json()
        ],
        vec(prop_oneof![3 => valid_task().boxed(), 1 => task_body()], 0..4),
        prop::option::of(prop_oneof![3 => valid_task().boxed(), 1 => task_body()]),
    )
        .prop_map(|(kind, tasks, callback)| {
            let mut m = Map::new();
            m.insert("type".into(), kind);
            m.insert("tasks".into(), Value::Array(tasks));
            if let Some(c) = callback {
                m.insert("callback".into(), c);
            }
            Value::Object(m)
        })
}

/// The app in process, over a real Redis; one runtime for every case.
struct App {
    _redis: TestRedis,
    rt: tokio::runtime::Runtime,
    app: Box<dyn Fn(Request) -> futures_util::future::BoxFuture<'static, poem::Response>>,
}

impl App {
    fn start() -> Self {
        let redis = TestRedis::start();
        let mut cfg = celeriac::config::RedisConfig::new(redis.url());
        cfg.namespace = unique_ns();
        let mut api = celeriac::config::ApiConfig::new(cfg);
        api.max_body_bytes = 64 * 1024;
        // Bodies are the subject here; authentication has its own tests.
        api.auth.enabled = false;
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let app = rt.block_on(async { std::sync::Arc::new(celeriac::api::build_app(&api).unwrap()) });
        let app = Box::new(move |req: Request| {
            let app = app.clone();
            Box::pin(async move { app.get_response(req).await }) as futures_util::future::BoxFuture<'static, _>
        });
        Self { _redis: redis, rt, app }
    }

    /// POSTs `body` to `path`; returns the status and the JSON answer.
    fn post(&self, path: &str, body: Vec<u8>) -> (u16, Value) {
        let req = Request::builder()
            .method(Method::POST)
            .uri(path.parse().unwrap())
            .content_type("application/json")
            .body(body);
        self.rt.block_on(async {
            let resp = (self.app)(req).await;
            let status = resp.status().as_u16();
            let bytes = resp.into_body().into_bytes().await.unwrap();
            (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
        })
    }
}

/// The answer is one the API promises for a request body: accepted, or a 4xx with the JSON error.
fn check_answer(what: &str, body: &[u8], status: u16, answer: &Value) -> Result<(), TestCaseError> {
    let shown = String::from_utf8_lossy(&body[..body.len().min(400)]).into_owned();
    match status {
        200 | 202 => prop_assert!(
            answer["task_id"].is_string() || answer["workflow_id"].is_string(),
            "{what}: {status} without an id: {answer} for {shown}"
        ),
        400 | 413 | 422 => prop_assert!(
            answer["error"]["code"].is_string() && answer["error"]["message"].is_string(),
            "{what}: {status} without the JSON error: {answer} for {shown}"
        ),
        _ => prop_assert!(false, "{what}: {status} {answer} for {shown}"),
    }
    Ok(())
}

fn run(cases: u32, strategy: impl Strategy<Value = Vec<u8>>, test: impl Fn(Vec<u8>) -> Result<(), TestCaseError>) {
    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    if let Err(e) = runner.run(&strategy, test) {
        panic!("{e}");
    }
}

#[test]
fn task_bodies_of_any_shape_get_a_202_or_a_json_4xx() {
    let app = App::start();
    let counts = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let bodies = prop_oneof![
        6 => task_body().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => valid_task().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        2 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => vec(any::<u8>(), 0..64),
        1 => "\\PC{0,40}".prop_map(String::into_bytes),
    ];
    run(1500, bodies, |body| {
        let (status, answer) = app.post("/tasks", body.clone());
        *counts.borrow_mut().entry(status).or_default() += 1;
        check_answer("POST /tasks", &body, status, &answer)?;
        // JSON that is neither an object nor null can never be a task.
        if let Ok(v) = serde_json::from_slice::<Value>(&body)
            && !v.is_object()
            && !v.is_null()
        {
            prop_assert!(status == 400 || status == 422, "{status} for {v}");
        }
        Ok(())
    });
    println!("fuzz/POST /tasks: cases=1500 statuses={:?}", counts.borrow());
}

#[test]
fn workflow_bodies_of_any_shape_get_a_202_or_a_json_4xx() {
    let app = App::start();
    let counts = std::cell::RefCell::new(std::collections::BTreeMap::<u16, u32>::new());
    let bodies = prop_oneof![
        4 => workflow_body().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        1 => any_json().prop_map(|v| serde_json::to_vec(&v).unwrap()),
    ];
    run(500, bodies, |body| {
        let (status, answer) = app.post("/workflows", body.clone());
        *counts.borrow_mut().entry(status).or_default() += 1;
        check_answer("POST /workflows", &body, status, &answer)
    });
    println!("fuzz/POST /workflows: cases=500 statuses={:?}", counts.borrow());
}

#[test]
fn oversized_bodies_get_413() {
    let app = App::start();
    let big = format!("{{\"name\": \"echo\", \"args\": \"{}\"}}", "x".repeat(70 * 1024));
    let (status, answer) = app.post("/tasks", big.into_bytes());
    assert_eq!(status, 413, "{answer}");
}

// ---------------------------------------------------------------- Redis URL redaction

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The password of a `redis://` URL never survives redaction; the rest does.
    #[test]
    fn redacted_urls_never_show_the_password(
        scheme in prop::sample::select(vec!["redis", "rediss", "redis+sentinel", "valkey"]),
        user in "[a-zA-Z0-9_.-]{0,8}",
        password in "[!-~]{6,24}",
        host in prop::sample::select(vec!["127.0.0.1", "redis", "[::1]", "h1:26379,h2:26379"]),
        port in prop::option::of(1u16..),
        path in prop::sample::select(vec!["", "/", "/0", "/15", "/mymaster/1"]),
    ) {
        let port = port.map(|p| format!(":{p}")).unwrap_or_default();
        let url = format!("{scheme}://{user}:{password}@{host}{port}{path}");
        let redacted = celeriac::config::redact_url(&url);
        let expected = format!("{scheme}://{user}:***@{host}{port}{path}");
        prop_assume!(!expected.contains(&password));
        prop_assert!(!redacted.contains(&password), "{url} -> {redacted}");
        // A password holding `@` is hidden whole; otherwise the URL keeps its shape.
        if !password.contains('@') {
            prop_assert_eq!(redacted, expected);
        }
    }

    /// Without user info a URL is left as it is; any text at all never panics.
    #[test]
    fn urls_without_a_password_are_unchanged(s in "\\PC{0,60}") {
        let redacted = celeriac::config::redact_url(&s);
        if !s.contains('@') {
            prop_assert_eq!(redacted, s);
        }
    }
}

/// Unix-socket URLs carry the password in the query (`?pass=`); redis-rs reads it there.
#[test]
fn unix_socket_urls_hide_their_password() {
    for url in [
        "unix:///run/redis.sock?pass=s3cret-pw",
        "redis+unix:///run/redis.sock?db=1&pass=s3cret-pw",
    ] {
        let redacted = celeriac::config::redact_url(url);
        assert!(!redacted.contains("s3cret-pw"), "{url} -> {redacted}");
    }
}

// ---------------------------------------------------------------- names in Redis keys

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Whatever the exact charset, an accepted name is short and cannot break a key
    /// (the `{ns}` hash tag) or a log line; any text at all never panics.
    #[test]
    fn accepted_names_are_safe_inside_redis_keys(name in "\\PC{0,140}|[\\s\\S]{0,8}") {
        if celeriac::config::validate_name("queue", &name).is_ok() {
            prop_assert!(!name.is_empty() && name.len() <= 128, "{name:?}");
            prop_assert!(!name.contains(['{', '}']), "{name:?}");
            prop_assert!(!name.chars().any(|c| c.is_whitespace() || c.is_control()), "{name:?}");
            let key = celeriac::redis::keys::Keys::new(&name).events();
            prop_assert_eq!(key.matches('{').count(), 1);
            let tag = format!("{{{name}}}:");
            prop_assert!(key.starts_with(&tag), "{key}");
        }
    }

    /// The plain names every deployment uses stay accepted.
    #[test]
    fn plain_names_are_accepted(name in "[A-Za-z0-9][A-Za-z0-9._-]{0,127}") {
        prop_assert!(celeriac::config::validate_name("queue", &name).is_ok(), "{name:?}");
    }
}

// ---------------------------------------------------------------- routes, cron, token files

/// A glob matcher written the obvious (exponential, but tiny inputs) way, as an oracle.
fn glob_oracle(p: &[char], n: &[char]) -> bool {
    match (p.first(), n.first()) {
        (None, None) => true,
        (Some('*'), _) => glob_oracle(&p[1..], n) || (!n.is_empty() && glob_oracle(p, &n[1..])),
        (Some('?'), Some(_)) => glob_oracle(&p[1..], &n[1..]),
        (Some(a), Some(b)) if a == b => glob_oracle(&p[1..], &n[1..]),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3000))]

    /// Route globs agree with the obvious matcher.
    #[test]
    fn route_globs_match_like_the_obvious_matcher(pattern in "[ab.*?]{0,8}", name in "[ab.]{0,8}") {
        let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
        prop_assert_eq!(celeriac::model::route::glob_match(&pattern, &name), glob_oracle(&p, &n));
    }

    /// Any routes setting parses or is refused, never panics; what parses prints back the same.
    #[test]
    fn any_routes_text_parses_or_is_refused(s in "\\PC{0,40}|[a-z*?=, .{}]{0,40}") {
        if let Ok(routes) = s.parse::<celeriac::model::Routes>() {
            let again: celeriac::model::Routes = routes.to_string().parse().unwrap();
            prop_assert_eq!(again, routes);
        }
    }

    /// Written routes read back, and the first matching glob decides the queue.
    #[test]
    fn the_first_matching_route_wins(
        entries in vec(("[a-c*?.]{1,6}", "[a-z][a-z0-9._-]{0,10}"), 0..5),
        name in "[a-c.]{0,8}",
    ) {
        let text = entries.iter().map(|(g, q)| format!(" {g} = {q} ")).collect::<Vec<_>>().join(",");
        let routes: celeriac::model::Routes = text.parse().unwrap();
        let expected = entries
            .iter()
            .find(|(g, _)| glob_oracle(&g.chars().collect::<Vec<_>>(), &name.chars().collect::<Vec<_>>()))
            .map_or("default", |(_, q)| q.as_str());
        prop_assert_eq!(routes.queue_for(&name), expected);
    }
}

#[test]
fn a_glob_with_many_stars_stays_linear() {
    let pattern = format!("{}b", "*a".repeat(40));
    let name = "a".repeat(20_000);
    let started = std::time::Instant::now();
    assert!(!celeriac::model::route::glob_match(&pattern, &name));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

/// One cron field: `*`, a value, a range, a step or a list, in and out of range.
fn cron_field(max: u32) -> impl Strategy<Value = String> {
    prop_oneof![
        Just("*".to_owned()),
        (0..=max + 2).prop_map(|v| v.to_string()),
        (0..=max, 0..=max).prop_map(|(a, b)| format!("{a}-{b}")),
        (1..=max + 1).prop_map(|s| format!("*/{s}")),
        vec(0..=max, 1..4).prop_map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>().join(",")),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Any cron text is parsed or refused with a reason; never a panic.
    #[test]
    fn any_cron_text_parses_or_is_refused(s in "\\PC{0,30}|[0-9*/,LW#? -]{0,30}") {
        let _ = celeriac::model::schedule::parse_cron(&s);
    }

    /// Cron patterns built field by field (impossible dates like Feb 31 included):
    /// the next due time is found at once, strictly later, or there is none.
    #[test]
    fn the_next_due_time_of_any_cron_comes_at_once(
        fields in (cron_field(59), cron_field(23), cron_field(31), cron_field(12), cron_field(7)),
        seconds in prop::option::of(cron_field(59)),
        tz in prop::sample::select(vec!["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]),
        at in 0i64..4_102_444_800_000,
    ) {
        let (mi, h, d, mo, wd) = fields;
        let pattern = match seconds {
            Some(s) => format!("{s} {mi} {h} {d} {mo} {wd}"),
            None => format!("{mi} {h} {d} {mo} {wd}"),
        };
        let schedule: celeriac::model::Schedule =
            serde_json::from_value(json!({"name": "p", "task": "noop", "cron": pattern, "timezone": tz})).unwrap();
        let t = chrono::DateTime::from_timestamp_millis(at).unwrap();
        let started = std::time::Instant::now();
        let next = schedule.next_after(t);
        prop_assert!(started.elapsed() < std::time::Duration::from_secs(2), "{pattern}: {:?}", started.elapsed());
        if let Some(next) = next {
            prop_assert!(next > t, "{pattern}: {next} after {t}");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// Any token setting loads or is refused, never panics, and a refusal never quotes a token.
    #[test]
    fn any_token_text_loads_or_is_refused(s in "\\PC{0,80}|[a-z:, #\\n]{0,60}") {
        let cfg = celeriac::api::auth::AuthConfig { tokens: Some(s.clone()), ..Default::default() };
        if let Err(e) = celeriac::api::auth::TokenTable::load(&cfg) {
            for part in s.split([',', ':']).map(str::trim).filter(|p| p.len() >= 16) {
                prop_assert!(!e.to_string().contains(part), "{e}");
            }
        }
    }

    /// Written tokens (colons allowed inside) load from the setting and from a file
    /// with comments and blank lines, each with its scope; others are unknown.
    #[test]
    fn written_tokens_load_with_their_scopes(
        // A file line starting with `#` is a comment, so no token starts with one here.
        tokens in prop::collection::hash_set("[!\"$-+\\--~][!-+\\--~]{15,39}", 1..5),
        scopes in vec(prop::sample::select(vec!["read", "write", "admin"]), 5),
        stranger in "[!-+\\--~]{16,40}",
    ) {
        use celeriac::api::auth::{AuthConfig, TokenTable};
        let tokens: Vec<String> = tokens.into_iter().collect();
        let entries: Vec<String> = tokens.iter().zip(&scopes).map(|(t, s)| format!("{t}:{s}")).collect();
        let inline = TokenTable::load(&AuthConfig { tokens: Some(entries.join(" , ")), ..Default::default() }).unwrap();
        let file = std::env::temp_dir().join(format!("celeriac-tokens-{}", uuid::Uuid::new_v4().simple()));
        std::fs::write(&file, format!("# tokens\n\n{}\n   \n", entries.join("\n  "))).unwrap();
        let from_file = TokenTable::load(&AuthConfig { tokens_file: Some(file.clone()), ..Default::default() });
        let _ = std::fs::remove_file(&file);
        let from_file = from_file.unwrap();
        for table in [&inline, &from_file] {
            prop_assert_eq!(table.len(), tokens.len());
            for (t, s) in tokens.iter().zip(&scopes) {
                prop_assert_eq!(table.lookup(t).map(|s| s.as_str()), Some(*s));
            }
            if !tokens.contains(&stranger) {
                prop_assert_eq!(table.lookup(&stranger), None);
            }
        }
    }
}
