//! The built-in `http` task: one HTTP request to an allowed host.
//!
//! Args `{"method", "url", "headers", "json" | "body", "timeout_s"}` (method
//! GET, timeout 30 s by default). A 2xx answer succeeds with
//! `{"status", "headers", "body", "truncated"}`: the body is JSON when it parses,
//! else text, and at most `max_body_bytes` long (`truncated` says it was cut).
//! Any other status fails with `exc_type` `HttpStatus`: 5xx and 429 are retried
//! (honouring `Retry-After` in seconds), other statuses are not; network errors
//! and timeouts are retried.
//!
//! Destinations are limited by `CELERIAC_HTTP_ALLOWED_HOSTS`: nothing is allowed
//! until an operator says so, since a task queue that fetches any URL it is
//! handed is an open proxy into the private network. Redirects are followed
//! only to allowed hosts.

use std::{collections::BTreeMap, fmt, sync::Arc, time::Duration};

use reqwest::{Method, Url, header::HeaderMap, redirect};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{Registry, TaskContext, TaskError};

/// The setting operators change to allow destinations (named in errors).
pub const ALLOWED_HOSTS_SETTING: &str = "CELERIAC_HTTP_ALLOWED_HOSTS";
pub use crate::config::{DEFAULT_HTTP_MAX_BODY_BYTES as DEFAULT_MAX_BODY_BYTES, HttpTaskConfig};
/// Longest body excerpt in an `HttpStatus` error message.
const ERROR_EXCERPT_BYTES: usize = 1024;
/// Redirects followed at most (like browsers and reqwest's default).
const MAX_REDIRECTS: usize = 10;
/// Longest request timeout accepted (one day).
const MAX_TIMEOUT_SECS: f64 = 86_400.0;

/// Why the `http` task could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum HttpConfigError {
    /// An allowed-hosts entry cannot be read.
    #[error("invalid {ALLOWED_HOSTS_SETTING} entry {0:?}: expected host, host:port or *")]
    InvalidHost(String),
    /// The body cap is zero.
    #[error("the http task's max body size must be at least 1 byte")]
    ZeroBodyLimit,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Registers the `http` task.
pub fn register(registry: &mut Registry, cfg: HttpTaskConfig) -> Result<(), HttpConfigError> {
    let task = Arc::new(HttpTask::new(cfg)?);
    registry.register_typed("http", move |ctx: TaskContext, args: HttpArgs| {
        let task = task.clone();
        async move { task.run(ctx, args).await }
    });
    Ok(())
}

/// The task's arguments (their JSON Schema is published at registration).
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
struct HttpArgs {
    #[serde(default = "default_method")]
    method: String,
    url: String,
    #[serde(default)]
    headers: BTreeMap<String, String>,
    #[serde(default)]
    json: Option<Value>,
    #[serde(default)]
    body: Option<String>,
    #[serde(default = "default_timeout")]
    timeout_s: f64,
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_timeout() -> f64 {
    30.0
}

/// One allowed destination.
#[derive(Clone, Debug, PartialEq, Eq)]
enum AllowedHost {
    Any,
    Host { host: String, port: Option<u16> },
}

/// Allowed destinations, and the setting that lists them (named in refusals);
/// shared with the `callback` task.
#[derive(Clone, Debug)]
pub(crate) struct AllowedHosts {
    hosts: Vec<AllowedHost>,
    setting: &'static str,
}

impl AllowedHosts {
    fn parse(entries: &[String]) -> Result<Self, HttpConfigError> {
        Self::parse_for(entries, ALLOWED_HOSTS_SETTING)
    }

    /// Reads `host`, `host:port` and `*` entries of `setting`.
    pub(crate) fn parse_for(entries: &[String], setting: &'static str) -> Result<Self, HttpConfigError> {
        let mut hosts = Vec::new();
        for raw in entries.iter().map(|e| e.trim()).filter(|e| !e.is_empty()) {
            let invalid = || HttpConfigError::InvalidHost(raw.to_owned());
            if raw == "*" {
                hosts.push(AllowedHost::Any);
                continue;
            }
            // `host:port` unless the colon belongs to an unbracketed IPv6 address.
            let (host, port) = match raw.rsplit_once(':') {
                Some((h, p)) if !h.contains(':') || h.ends_with(']') => {
                    (h, Some(p.parse::<u16>().map_err(|_| invalid())?))
                }
                _ => (raw, None),
            };
            let host = host.to_ascii_lowercase();
            // Url prints IPv6 hosts in brackets; store them the same way.
            let host = if host.contains(':') && !host.starts_with('[') {
                format!("[{host}]")
            } else {
                host
            };
            if host.is_empty() || host.contains('/') || host.contains('*') {
                return Err(invalid());
            }
            hosts.push(AllowedHost::Host { host, port });
        }
        Ok(Self { hosts, setting })
    }

    /// True when `url`'s host (and port) is allowed.
    pub(crate) fn allows(&self, url: &Url) -> bool {
        let (Some(host), Some(port)) = (url.host_str(), url.port_or_known_default()) else {
            return false;
        };
        self.hosts.iter().any(|a| match a {
            AllowedHost::Any => true,
            AllowedHost::Host { host: h, port: p } => h.eq_ignore_ascii_case(host) && p.is_none_or(|p| p == port),
        })
    }

    /// The error for a `url` that is not allowed.
    pub(crate) fn refusal(&self, url: &Url) -> HostNotAllowed {
        HostNotAllowed {
            host: format!(
                "{}:{}",
                url.host_str().unwrap_or(""),
                url.port_or_known_default().unwrap_or(0)
            ),
            none_allowed: self.hosts.is_empty(),
            setting: self.setting,
        }
    }
}

/// A destination outside the allowed hosts (also raised from the redirect policy).
#[derive(Debug)]
pub(crate) struct HostNotAllowed {
    host: String,
    none_allowed: bool,
    setting: &'static str,
}

impl fmt::Display for HostNotAllowed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.none_allowed {
            write!(
                f,
                "host {} is not allowed: no destination is allowed until {} lists it (host, host:port or *)",
                self.host, self.setting
            )
        } else {
            write!(
                f,
                "host {} is not allowed: add it to {} (host, host:port or *)",
                self.host, self.setting
            )
        }
    }
}

impl std::error::Error for HostNotAllowed {}

struct HttpTask {
    client: reqwest::Client,
    allowed: AllowedHosts,
    max_body_bytes: usize,
}

impl HttpTask {
    fn new(cfg: HttpTaskConfig) -> Result<Self, HttpConfigError> {
        if cfg.max_body_bytes == 0 {
            return Err(HttpConfigError::ZeroBodyLimit);
        }
        let allowed = AllowedHosts::parse(&cfg.allowed_hosts)?;
        let policy_hosts = allowed.clone();
        let policy = redirect::Policy::custom(move |attempt| {
            if !policy_hosts.allows(attempt.url()) {
                let refusal = policy_hosts.refusal(attempt.url());
                attempt.error(refusal)
            } else if attempt.previous().len() >= MAX_REDIRECTS {
                attempt.error(format!("more than {MAX_REDIRECTS} redirects"))
            } else {
                attempt.follow()
            }
        });
        let client = reqwest::Client::builder()
            .redirect(policy)
            .user_agent(concat!("celeriac/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(HttpConfigError::Client)?;
        Ok(Self {
            client,
            allowed,
            max_body_bytes: cfg.max_body_bytes,
        })
    }

    async fn run(&self, ctx: TaskContext, args: HttpArgs) -> Result<Value, TaskError> {
        let request = self.build(args)?;
        tokio::select! {
            r = self.send(request) => r,
            () = ctx.cancellation().cancelled() => {
                Err(TaskError::fatal("Cancelled", anyhow::anyhow!("http request interrupted")))
            }
        }
    }

    /// Checks the arguments and the destination before anything is sent.
    fn build(&self, args: HttpArgs) -> Result<reqwest::Request, TaskError> {
        let invalid = |msg: String| TaskError::fatal("InvalidArguments", anyhow::anyhow!(msg));
        let method = Method::from_bytes(args.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| invalid(format!("invalid HTTP method {:?}", args.method)))?;
        let url = Url::parse(&args.url).map_err(|e| invalid(format!("invalid url {:?}: {e}", args.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid(format!(
                "url scheme must be http or https, not {:?}",
                url.scheme()
            )));
        }
        if !self.allowed.allows(&url) {
            return Err(TaskError::fatal("HostNotAllowed", self.allowed.refusal(&url)));
        }
        if !(args.timeout_s > 0.0 && args.timeout_s <= MAX_TIMEOUT_SECS) {
            return Err(invalid(format!(
                "timeout_s must be above 0 and at most {MAX_TIMEOUT_SECS}"
            )));
        }
        let mut headers = HeaderMap::new();
        for (name, value) in &args.headers {
            let name = reqwest::header::HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| invalid(format!("invalid header name {name:?}")))?;
            let value = reqwest::header::HeaderValue::from_str(value)
                .map_err(|_| invalid(format!("invalid value of header {name}")))?;
            headers.append(name, value);
        }
        let mut builder = self
            .client
            .request(method, url)
            .headers(headers)
            .timeout(Duration::from_secs_f64(args.timeout_s));
        builder = match (args.json, args.body) {
            (Some(_), Some(_)) => return Err(invalid("give either json or body, not both".to_owned())),
            (Some(json), None) => builder.json(&json),
            (None, Some(body)) => builder.body(body),
            (None, None) => builder,
        };
        builder
            .build()
            .map_err(|e| invalid(format!("cannot build the request: {e}")))
    }

    async fn send(&self, request: reqwest::Request) -> Result<Value, TaskError> {
        let mut response = self.client.execute(request).await.map_err(request_error)?;
        let status = response.status();
        let headers = headers_json(response.headers());
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let mut body = Vec::new();
        let mut truncated = false;
        while let Some(chunk) = response.chunk().await.map_err(request_error)? {
            let room = self.max_body_bytes - body.len();
            if chunk.len() > room {
                body.extend_from_slice(&chunk[..room]);
                truncated = true;
                break;
            }
            body.extend_from_slice(&chunk);
        }
        if !status.is_success() {
            let excerpt = String::from_utf8_lossy(&body[..body.len().min(ERROR_EXCERPT_BYTES)]).into_owned();
            let error = anyhow::anyhow!("HTTP {status}: {excerpt}");
            let retryable = status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS;
            return Err(match (retryable, retry_after) {
                (true, Some(after)) => TaskError::new("HttpStatus", error).retry_after(after),
                (true, None) => TaskError::new("HttpStatus", error),
                (false, _) => TaskError::fatal("HttpStatus", error),
            });
        }
        let body = match serde_json::from_slice::<Value>(&body) {
            Ok(v) if !truncated => v,
            _ => Value::String(String::from_utf8_lossy(&body).into_owned()),
        };
        Ok(json!({"status": status.as_u16(), "headers": headers, "body": body, "truncated": truncated}))
    }
}

/// Response headers as a JSON object; repeated headers are joined with `, `.
fn headers_json(headers: &HeaderMap) -> Value {
    let mut out = Map::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        match out.get_mut(name.as_str()) {
            Some(Value::String(prev)) => {
                prev.push_str(", ");
                prev.push_str(&value);
            }
            _ => {
                out.insert(name.as_str().to_owned(), Value::String(value));
            }
        }
    }
    Value::Object(out)
}

/// Maps a transport error: a refused redirect is fatal, the rest is retried.
fn request_error(e: reqwest::Error) -> TaskError {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&e);
    while let Some(s) = source {
        if let Some(refusal) = s.downcast_ref::<HostNotAllowed>() {
            return TaskError::fatal("HostNotAllowed", anyhow::anyhow!("redirect refused: {refusal}"));
        }
        source = s.source();
    }
    if e.is_redirect() {
        return TaskError::fatal("TooManyRedirects", e);
    }
    if e.is_timeout() {
        return TaskError::new("HttpTimeout", e);
    }
    TaskError::new("HttpError", e)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hosts(entries: &[&str]) -> AllowedHosts {
        AllowedHosts::parse(&entries.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    fn url(s: &str) -> Url {
        Url::parse(s).unwrap()
    }

    #[test]
    fn no_host_is_allowed_by_default_and_the_error_names_the_setting() {
        let none = hosts(&[]);
        let u = url("https://example.com/x");
        assert!(!none.allows(&u));
        let msg = none.refusal(&u).to_string();
        assert!(
            msg.contains(ALLOWED_HOSTS_SETTING) && msg.contains("example.com:443"),
            "{msg}"
        );
    }

    #[test]
    fn hosts_match_by_name_and_optionally_port() {
        let h = hosts(&["api.example.com", "127.0.0.1:8080", "[::1]:9000", "::2"]);
        assert!(h.allows(&url("https://API.example.com/x")));
        assert!(h.allows(&url("http://api.example.com:81/x")));
        assert!(h.allows(&url("http://127.0.0.1:8080/")));
        assert!(!h.allows(&url("http://127.0.0.1:8081/")));
        assert!(!h.allows(&url("http://127.0.0.1/")));
        assert!(h.allows(&url("http://[::1]:9000/")));
        assert!(!h.allows(&url("http://[::1]:9001/")));
        assert!(h.allows(&url("http://[::2]:1/")));
        assert!(!h.allows(&url("http://evil.example.com/")));
        assert!(hosts(&["*"]).allows(&url("http://anything:1/")));
    }

    #[test]
    fn bad_allowed_host_entries_are_refused() {
        for bad in ["host:port", "*.example.com", "http://x", "host:99999"] {
            assert!(
                AllowedHosts::parse(&[bad.to_owned()]).is_err(),
                "{bad} should be refused"
            );
        }
    }

    #[test]
    fn arguments_are_checked_before_sending() {
        let task = HttpTask::new(HttpTaskConfig {
            allowed_hosts: vec!["ok.test".to_owned()],
            ..HttpTaskConfig::default()
        })
        .unwrap();
        let args = |v: Value| serde_json::from_value::<HttpArgs>(v).unwrap();
        let exc = |v: Value| task.build(args(v)).unwrap_err().exc_type().to_owned();
        assert_eq!(exc(json!({"url": "http://other.test/"})), "HostNotAllowed");
        assert_eq!(exc(json!({"url": "ftp://ok.test/"})), "InvalidArguments");
        assert_eq!(
            exc(json!({"url": "http://ok.test/", "method": "GE T"})),
            "InvalidArguments"
        );
        assert_eq!(
            exc(json!({"url": "http://ok.test/", "json": {}, "body": "x"})),
            "InvalidArguments"
        );
        assert_eq!(
            exc(json!({"url": "http://ok.test/", "timeout_s": 0})),
            "InvalidArguments"
        );
        assert_eq!(
            exc(json!({"url": "http://ok.test/", "headers": {"bad header": "x"}})),
            "InvalidArguments"
        );
        let req = task
            .build(args(
                json!({"url": "http://ok.test/p", "method": "post", "json": {"a": 1}}),
            ))
            .unwrap();
        assert_eq!(req.method(), Method::POST);
        assert_eq!(req.timeout(), Some(&Duration::from_secs(30)));
        assert!(serde_json::from_value::<HttpArgs>(json!({"url": "x", "extra": 1})).is_err());
    }
}
