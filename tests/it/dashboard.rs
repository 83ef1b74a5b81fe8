//! The dashboard in a real browser: headless Chromium driven over WebDriver
//! (chromedriver), against the real API and worker binaries and a private Redis.
//!
//! Without chromedriver the tests print a loud skip, unless `CI` is set: then
//! they fail, so CI can never pass without having run them.

use std::{
    future::Future,
    panic::AssertUnwindSafe,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::{FutureExt, StreamExt, stream};
use serde_json::{Value, json};

use crate::helpers::{Api, TestRedis, Worker, free_port, unique_ns};

/// Flags for a quiet, reproducible headless Chromium in a container.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1280,800",
];

/// Whole-test bound: a hung browser must fail the test, not stall CI.
const TEST_BOUND: Duration = Duration::from_secs(60);

fn on_path(bin: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(bin))
        .find(|p| p.is_file())
}

/// A chromedriver process and one browser session on it.
struct Browser {
    client: Option<Client>,
    driver: Child,
    profile: PathBuf,
}

impl Browser {
    /// Starts chromedriver and a session; `None` (after a loud message) when
    /// chromedriver is not installed and `CI` is unset.
    async fn start() -> Option<Self> {
        let Some(driver_bin) = on_path("chromedriver") else {
            assert!(
                std::env::var_os("CI").is_none(),
                "chromedriver is not installed, and CI is set: install Debian's chromium and chromium-driver"
            );
            eprintln!(
                "\n*****************************************************************\n\
                 ***  SKIPPED: dashboard browser test (no chromedriver on PATH)  ***\n\
                 ***  apt-get install -y chromium chromium-driver to run it       ***\n\
                 *****************************************************************\n"
            );
            return None;
        };
        let port = free_port();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!("celeriac-chromium-{}", uuid::Uuid::new_v4().simple()));
        let mut browser = Self {
            client: None,
            driver,
            profile,
        };
        let mut args: Vec<String> = CHROMIUM_FLAGS.iter().map(|s| (*s).to_owned()).collect();
        args.push(format!("--user-data-dir={}", browser.profile.display()));
        let mut chrome = json!({ "args": args });
        if let Some(bin) = on_path("chromium") {
            chrome["binary"] = json!(bin);
        }
        let mut caps = serde_json::Map::new();
        caps.insert("goog:chromeOptions".into(), chrome);
        let connector = hyper_util::client::legacy::connect::HttpConnector::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            match ClientBuilder::new(connector.clone())
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => {
                    browser.client = Some(c);
                    return Some(browser);
                }
                Err(e) if Instant::now() > deadline => panic!("no WebDriver session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }

    /// Runs `body` within [`TEST_BOUND`], then always ends the browser session
    /// (after a panic too), so no Chromium outlives the test.
    async fn run<F, Fut>(mut self, body: F)
    where
        F: FnOnce(Client) -> Fut,
        Fut: Future<Output = Result<()>>,
    {
        let client = self.client.clone().expect("session");
        let outcome = AssertUnwindSafe(tokio::time::timeout(TEST_BOUND, body(client)))
            .catch_unwind()
            .await;
        if let Some(c) = self.client.take() {
            let _ = c.close().await;
        }
        match outcome {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(e))) => panic!("{e:#}"),
            Ok(Err(_)) => panic!("the browser test took longer than {TEST_BOUND:?}"),
            Err(panic) => std::panic::resume_unwind(panic),
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.driver.kill();
        let _ = self.driver.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// Evaluates `script` (a function body; `arguments[i]` are `args`) in the page.
async fn js(c: &Client, script: &str, args: Vec<Value>) -> Result<Value> {
    Ok(c.execute(script, args).await?)
}

/// The text of the first element matching `css`, or `None`.
async fn text_of(c: &Client, css: &str) -> Result<Option<String>> {
    let v = js(
        c,
        "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
        vec![json!(css)],
    )
    .await?;
    Ok(v.as_str().map(str::to_owned))
}

/// Waits until the text of `css` satisfies `pred`; returns it.
async fn wait_text(c: &Client, css: &str, timeout: Duration, pred: impl Fn(&str) -> bool) -> Result<String> {
    let deadline = Instant::now() + timeout;
    let mut last = None;
    loop {
        let t = text_of(c, css).await?;
        if let Some(t) = &t
            && pred(t)
        {
            return Ok(t.clone());
        }
        last = t.or(last);
        if Instant::now() > deadline {
            bail!("{css}: condition not met within {timeout:?}; last text {last:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn click(c: &Client, css: &str) -> Result<()> {
    c.wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css(css))
        .await
        .with_context(|| format!("no {css}"))?
        .click()
        .await
        .with_context(|| format!("click {css}"))?;
    Ok(())
}

/// Types an id into the header's jump box and submits it (a hash change, no reload).
async fn jump_to_task(c: &Client, id: &str) -> Result<()> {
    let input = c.find(Locator::Css("#jump-id")).await?;
    input.clear().await?;
    input.send_keys(&format!("{id}\n")).await?;
    Ok(())
}

async fn errors_logged(c: &Client) -> Result<Vec<Value>> {
    let v = js(
        c,
        "return window.__celeriacErrors || ['error collector missing'];",
        vec![],
    )
    .await?;
    Ok(v.as_array().cloned().unwrap_or_default())
}

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

async fn save_screenshot(c: &Client, name: &str) -> Result<PathBuf> {
    let png = c.screenshot().await?;
    let path = screenshot_dir().join(name);
    std::fs::write(&path, png)?;
    eprintln!("screenshot: {}", path.display());
    Ok(path)
}

async fn status_of(api: &Api, path: &str) -> u16 {
    api.http.get(api.url(path)).send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn the_dashboard_follows_and_steers_tasks_live_in_a_browser() {
    let Some(browser) = Browser::start().await else { return };
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    let _worker = Worker::start(&redis.url(), &ns, &["--concurrency", "2"]).await;
    // A first task, so the `default` queue exists before the page loads.
    let first = api.enqueue(json!({"name": "add", "args": {"x": 1, "y": 1}})).await;
    api.wait_task(&first, 10).await;

    browser
        .run(|c| async move {
            let c = &c;
            // Arrange: the bare /ui answers a relative redirect to /ui/.
            c.goto(&api.url("/ui")).await?;
            let url = c.current_url().await?;
            assert!(url.path().ends_with("/ui/"), "redirected to {url}");
            wait_text(c, "tr[data-queue='default'] th", Duration::from_secs(10), |t| {
                t == "default"
            })
            .await?;
            js(c, "window.__sameDocument = 42; return null;", vec![]).await?;
            // The page follows the event stream (SSE): its indicator says "live".
            assert_eq!(status_of(&api, "/events").await, 200);
            wait_text(c, "#live-text", Duration::from_secs(10), |t| t.starts_with("live")).await?;
            tokio::time::sleep(Duration::from_millis(1200)).await; // one chart frame
            save_screenshot(c, "dashboard-overview.png").await?;

            // Act + Assert 1: a task submitted through the API appears and turns SUCCESS without a reload.
            assert_eq!(status_of(&api, "/tasks?limit=1").await, 200);
            let statuses = {
                click(c, "a[data-nav='tasks']").await?;
                wait_text(c, "table caption", Duration::from_secs(10), |t| !t.is_empty()).await?;
                let id = api
                    .enqueue(json!({"name": "add", "args": {"x": 2, "y": 3}, "countdown": 3}))
                    .await;
                let cell = format!("tr[data-id='{id}'] td.status");
                let seen = wait_text(c, &cell, Duration::from_secs(10), |_| true).await?;
                let done = wait_text(c, &cell, Duration::from_secs(20), |t| t == "SUCCESS").await?;
                (seen, done)
            };
            assert_eq!(statuses.0, "PENDING", "the page showed the task before it ran");
            assert_eq!(statuses.1, "SUCCESS");
            assert_eq!(
                js(c, "return window.__sameDocument;", vec![]).await?,
                json!(42),
                "the page reloaded"
            );

            // Act + Assert 2: cancel a running `sleep` task from its detail page.
            let sleeper = api.enqueue(json!({"name": "sleep", "args": {"seconds": 30}})).await;
            api.wait_until(&sleeper, Duration::from_secs(10), |t| t["status"] == "STARTED")
                .await;
            jump_to_task(c, &sleeper).await?;
            wait_text(c, "#task-status", Duration::from_secs(10), |t| t == "STARTED").await?;
            click(c, "button[data-action='cancel']:not([disabled])").await?;
            let answer = wait_text(c, "#answer", Duration::from_secs(10), |t| t.contains('→')).await?;
            assert!(answer.contains("202"), "cancel answer: {answer}");
            wait_text(c, "#task-status", Duration::from_secs(20), |t| t == "REVOKED").await?;
            let (_, record) = api.get_task(&sleeper).await;
            assert_eq!(record["status"], "REVOKED");
            save_screenshot(c, "dashboard-task-detail.png").await?;

            // Act + Assert 3: pause and resume the queue from the Queues page.
            click(c, "a[data-nav='queues']").await?;
            click(c, "tr[data-queue='default'] button[data-action='pause']").await?;
            let answer = wait_text(c, "#queue-answer", Duration::from_secs(10), |t| t.contains('→')).await?;
            {
                assert!(answer.contains("→ 200"), "pause answer: {answer}");
                wait_text(c, "tr[data-queue='default'] .qstate", Duration::from_secs(10), |t| {
                    t == "paused"
                })
                .await?;
                let q: Value = api.http.get(api.url("/queues/default")).send().await?.json().await?;
                assert_eq!(q["is_paused"], true, "{q}");
                click(c, "tr[data-queue='default'] button[data-action='resume']").await?;
                wait_text(c, "tr[data-queue='default'] .qstate", Duration::from_secs(10), |t| {
                    t == "active"
                })
                .await?;
                let q: Value = api.http.get(api.url("/queues/default")).send().await?.json().await?;
                assert_eq!(q["is_paused"], false, "{q}");
            }

            // A narrow screen (a phone held upright) still shows the queue table and the navigation.
            c.set_window_size(420, 900).await?;
            js(c, "location.hash = '#/queues'; return null;", vec![]).await?;
            wait_text(c, "tr[data-queue='default'] th", Duration::from_secs(5), |t| {
                t == "default"
            })
            .await?;
            save_screenshot(c, "dashboard-queues-narrow.png").await?;
            c.set_window_size(1280, 800).await?;

            // The token field keeps the token for this tab only (sessionStorage); requests go on.
            let token = c.find(Locator::Css("#token")).await?;
            token.send_keys("s3cret\n").await?;
            let stored = js(c, "return sessionStorage.getItem('celeriac.token');", vec![]).await?;
            assert_eq!(stored, json!("s3cret"));
            wait_text(c, "#toast", Duration::from_secs(5), |t| t.contains("Token saved")).await?;
            token.clear().await?;
            token.send_keys("\n").await?;
            assert_eq!(
                js(c, "return sessionStorage.getItem('celeriac.token');", vec![]).await?,
                Value::Null
            );

            // Keyboard: "/" focuses the jump box from anywhere on the page.
            js(c, "document.activeElement.blur(); return null;", vec![]).await?;
            c.find(Locator::Css("body")).await?.send_keys("/").await?;
            let focused = js(c, "return document.activeElement.id;", vec![]).await?;
            assert_eq!(focused, json!("jump-id"));

            // Every page visited, no JavaScript error (404 panels included).
            for page in ["#/workers", "#/schedules", "#/tasks", "#/"] {
                js(c, "location.hash = arguments[0]; return null;", vec![json!(page)]).await?;
                wait_text(c, "#page-title", Duration::from_secs(5), |t| !t.is_empty()).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
            }
            let errors = errors_logged(c).await?;
            assert!(errors.is_empty(), "JavaScript errors: {errors:?}");
            Ok(())
        })
        .await;
}

/// Sends 100 synthetic task events per second for 3 s (sent, started, succeeded,
/// failed over a rolling set of ids) and records the gaps between animation frames.
const FLOOD: &str = r#"
const r = { sent: 0, gaps: [] };
window.__flood = r;
let last = performance.now(), done = false;
const frame = (t) => { r.gaps.push(t - last); last = t; if (!done) requestAnimationFrame(frame); };
requestAnimationFrame(frame);
const kinds = ['task-sent', 'task-started', 'task-succeeded', 'task-failed'];
const timer = setInterval(() => {
  for (let k = 0; k < 10; k++) {
    const i = r.sent++, type = kinds[i % 4], id = 'flood-' + Math.floor(i / 4);
    window.__celeriac.inject(type, { task_id: id, name: 'add', queue: 'default', status: null, timestamp: new Date().toISOString() });
  }
  if (r.sent >= 300) {
    clearInterval(timer);
    setTimeout(() => {
      done = true;
      const g = r.gaps.slice(1).sort((a, b) => a - b);
      r.max = g[g.length - 1]; r.p95 = g[Math.floor(g.length * 0.95)];
    }, 200);
  }
}, 100);
return null;
"#;

#[tokio::test]
async fn the_dashboard_loads_well_under_a_second_with_ten_thousand_tasks() {
    let Some(browser) = Browser::start().await else { return };
    let redis = TestRedis::start();
    let ns = unique_ns();
    let api = Api::start(&redis.url(), &ns, &[]).await;
    // 10,000 tasks waiting (no worker), written through the engine for speed.
    let mut cfg = celeriac::config::RedisConfig::new(redis.url());
    cfg.namespace = ns.clone();
    let queue = celeriac::Queue::connect(&cfg, celeriac::config::EngineConfig::default()).unwrap();
    // Each with an idempotency key, so a retry after a timed-out answer (a loaded
    // machine) never enqueues twice.
    let enqueue = |i: usize| {
        let queue = queue.clone();
        async move {
            let mut task = celeriac::model::NewTask::new("add", json!({"x": 1, "y": 2}));
            task.idempotency_key = Some(format!("load-{i}"));
            for _ in 0..5 {
                if queue.enqueue(&task, false).await.is_ok() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            false
        }
    };
    let created = stream::iter(0..10_000)
        .map(enqueue)
        .buffer_unordered(32)
        .filter(|ok| std::future::ready(*ok))
        .count()
        .await;
    assert_eq!(created, 10_000);

    browser
        .run(|c| async move {
            let c = &c;
            let mut figures = Vec::new();
            for (page, ready) in [("/ui/", "[data-rendered='overview']"), ("/ui/#/tasks", "[data-rendered='tasks']")] {
                c.goto("about:blank").await?;
                c.goto(&api.url(page)).await?;
                c.wait()
                    .at_most(Duration::from_secs(10))
                    .for_element(Locator::Css(&format!("html{ready}")))
                    .await?;
                let ms = js(c, "return window.__celeriacFirstRender;", vec![]).await?;
                let ms = ms.as_f64().context("no first-render mark")?;
                let timing = js(
                    c,
                    "const n = performance.getEntriesByType('navigation')[0]; \
                     const r = performance.getEntriesByType('resource').map(e => e.name.split('/').pop() + ' ' + Math.round(e.startTime) + '+' + Math.round(e.duration)); \
                     return 'response ' + Math.round(n.responseEnd) + ', DOMContentLoaded ' + Math.round(n.domContentLoadedEventEnd) + '; ' + r.join(', ');",
                    vec![],
                )
                .await?;
                eprintln!("  timings (ms): {timing}");
                eprintln!("dashboard {page}: first data render {ms:.0} ms after navigation start (10,000 tasks)");
                figures.push((page, ms));
            }
            // The overview counts the 10,000 waiting tasks.
            c.goto(&api.url("/ui/")).await?;
            wait_text(c, "tr[data-queue='default'] td", Duration::from_secs(10), |t| {
                t.chars().filter(char::is_ascii_digit).collect::<String>() == "10000"
            })
            .await?;
            // 100 events per second for 3 s through the page's event path, on the task list
            // (rows appear and change) and on the overview (chart): frames must keep coming.
            for page in ["#/tasks", "#/"] {
                js(c, "location.hash = arguments[0]; return null;", vec![json!(page)]).await?;
                tokio::time::sleep(Duration::from_millis(300)).await;
                js(c, FLOOD, vec![]).await?;
                tokio::time::sleep(Duration::from_millis(3500)).await;
                let r = js(c, "return window.__flood;", vec![]).await?;
                let (max, p95, sent) = (r["max"].as_f64().unwrap_or(f64::MAX), r["p95"].as_f64().unwrap_or(f64::MAX), r["sent"].as_u64().unwrap_or(0));
                eprintln!("dashboard {page}: {sent} events in 3 s, frame gap p95 {p95:.0} ms, max {max:.0} ms");
                assert_eq!(sent, 300);
                assert!(max < 250.0, "{page}: a frame took {max:.0} ms under 100 events/s");
                if page == "#/tasks" {
                    let shown = js(c, "return document.querySelectorAll('tr[data-id^=\"flood-\"]').length;", vec![]).await?;
                    assert!(shown.as_u64().unwrap_or(0) > 0, "no event row shown");
                }
            }
            for (page, ms) in figures {
                assert!(ms < 1000.0, "{page} took {ms:.0} ms to show its data");
            }
            let errors = errors_logged(c).await?;
            assert!(errors.is_empty(), "JavaScript errors: {errors:?}");
            Ok(())
        })
        .await;
}
