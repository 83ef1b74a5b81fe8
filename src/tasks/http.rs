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
//! Destinations are limited by `CELERIAC_HTTP_ALLOWED_HOSTS` (`allowed_hosts.rs`:
//! nothing is allowed until an operator says so). Redirects are followed only to
//! allowed hosts.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use reqwest::{Method, Url, header::HeaderMap, redirect};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Registry, TaskContext, TaskError,
    allowed_hosts::{AllowedHosts, HostNotAllowed},
};

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
        let allowed = AllowedHosts::parse(&cfg.allowed_hosts, ALLOWED_HOSTS_SETTING)
            .map_err(|e| HttpConfigError::InvalidHost(e.0))?;
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
