//! The built-in `callback` task: delivers a final task's record to its callback URL.
//!
//! The script that ends a task with a `callback_url` queues this task (args
//! `{"task_id", "url"}`) on the `callbacks` queue, so a completion is never
//! recorded without its delivery, and a worker dying mid-delivery loses nothing
//! (the lease expires and another worker delivers again: at least once).
//!
//! Each attempt POSTs the record (the JSON of `GET /tasks/{id}`) with
//! `Content-Type: application/json`, `Authorization: Bearer <token>` when a token
//! is set, and `X-Celeriac-Signature: sha256=<hex HMAC-SHA256 of the raw body>`
//! plus `X-Celeriac-Timestamp` (Unix seconds) when a secret is set. A 2xx answer
//! delivers it; network errors, 5xx and 429 are retried with backoff (honouring
//! `Retry-After` in seconds) until `max_attempts`; any other answer, or a
//! destination outside `CELERIAC_CALLBACK_ALLOWED_HOSTS`, fails it at once.
//! Redirects are not followed (a POST would turn into a GET). Every attempt
//! records its outcome in the original record's `callback` field.

use std::{sync::Arc, time::Duration};

use hmac::{Hmac, Mac};
use reqwest::{StatusCode, Url, header, redirect};
use serde::Deserialize;
use serde_json::{Value, json};
use sha2::Sha256;
use uuid::Uuid;

use super::{Registry, TaskContext, TaskError, allowed_hosts::AllowedHosts};
use crate::{
    error::QueueError,
    model::{
        CallbackState, CallbackStatus,
        callback::{CALLBACK_TASK, check_callback_url},
    },
};

/// The setting operators change to allow destinations (named in errors).
pub const ALLOWED_HOSTS_SETTING: &str = "CELERIAC_CALLBACK_ALLOWED_HOSTS";
pub use crate::config::{CallbackTaskConfig, DEFAULT_CALLBACK_MAX_ATTEMPTS as DEFAULT_MAX_ATTEMPTS};
/// Most attempts a delivery can be given: its record allows 1000 retries
/// (`includes/callback.lua`).
pub const MAX_ATTEMPTS_CEILING: u32 = 1001;
/// How long one attempt may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest excerpt of a refusing answer kept in `last_error`.
const ERROR_EXCERPT_BYTES: usize = 512;

/// Why the `callback` task could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum CallbackConfigError {
    /// An allowed-hosts entry cannot be read.
    #[error("invalid {ALLOWED_HOSTS_SETTING} entry {0:?}: expected host, host:port or *")]
    InvalidHost(String),
    /// The attempts setting is out of range.
    #[error("CELERIAC_CALLBACK_MAX_ATTEMPTS must be 1 to {MAX_ATTEMPTS_CEILING}")]
    MaxAttempts,
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client")]
    Client(#[source] reqwest::Error),
}

/// Registers the `callback` task.
pub fn register(registry: &mut Registry, cfg: CallbackTaskConfig) -> Result<(), CallbackConfigError> {
    let task = Arc::new(CallbackTask::new(cfg)?);
    registry.register(CALLBACK_TASK, move |ctx: TaskContext, args: CallbackArgs| {
        let task = task.clone();
        async move { task.run(ctx, args).await }
    });
    Ok(())
}

/// The task's arguments, as `includes/callback.lua` writes them.
#[derive(Debug, Deserialize)]
struct CallbackArgs {
    task_id: Uuid,
    url: String,
}

struct CallbackTask {
    client: reqwest::Client,
    allowed: AllowedHosts,
    token: Option<String>,
    secret: Option<String>,
    max_attempts: u32,
}

/// Why one attempt failed; `last` ends the delivery whatever the attempts left.
struct Failure {
    exc_type: &'static str,
    message: String,
    last: bool,
    retry_after: Option<Duration>,
}

impl Failure {
    fn last(exc_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            exc_type,
            message: message.into(),
            last: true,
            retry_after: None,
        }
    }

    fn retryable(exc_type: &'static str, message: impl Into<String>) -> Self {
        Self {
            last: false,
            ..Self::last(exc_type, message)
        }
    }
}

impl CallbackTask {
    fn new(cfg: CallbackTaskConfig) -> Result<Self, CallbackConfigError> {
        if !(1..=MAX_ATTEMPTS_CEILING).contains(&cfg.max_attempts) {
            return Err(CallbackConfigError::MaxAttempts);
        }
        let allowed = AllowedHosts::parse(&cfg.allowed_hosts, ALLOWED_HOSTS_SETTING)
            .map_err(|e| CallbackConfigError::InvalidHost(e.0))?;
        let client = reqwest::Client::builder()
            .redirect(redirect::Policy::none())
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("celeriac/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(CallbackConfigError::Client)?;
        Ok(Self {
            client,
            allowed,
            token: cfg.token.filter(|t| !t.is_empty()),
            secret: cfg.secret.filter(|s| !s.is_empty()),
            max_attempts: cfg.max_attempts,
        })
    }

    async fn run(&self, ctx: TaskContext, args: CallbackArgs) -> Result<Value, TaskError> {
        let outcome = tokio::select! {
            r = self.deliver(&ctx, &args) => r,
            () = ctx.cancellation().cancelled() => {
                return Err(TaskError::new("Cancelled", anyhow::anyhow!("callback delivery interrupted")));
            }
        };
        let attempts = ctx.attempt;
        let (state, result) = match outcome {
            Ok(status) => (
                CallbackState {
                    url: args.url.clone(),
                    status: CallbackStatus::Delivered,
                    attempts,
                    last_error: None,
                },
                Ok(json!({"task_id": args.task_id, "url": args.url, "status": status.as_u16(), "attempts": attempts})),
            ),
            Err(f) => {
                let last = f.last || attempts >= self.max_attempts;
                let state = CallbackState {
                    url: args.url.clone(),
                    status: if last {
                        CallbackStatus::Failed
                    } else {
                        CallbackStatus::Pending
                    },
                    attempts,
                    last_error: Some(f.message.clone()),
                };
                let error = anyhow::anyhow!(f.message);
                let error = match (last, f.retry_after) {
                    (true, _) => TaskError::fatal(f.exc_type, error),
                    (false, Some(after)) => TaskError::new(f.exc_type, error).retry_after(after),
                    (false, None) => TaskError::new(f.exc_type, error),
                };
                (state, Err(error))
            }
        };
        match ctx.queue().set_callback_state(&args.task_id, &state).await {
            // The record expired or was forgotten meanwhile: nothing left to show it on.
            Ok(()) | Err(QueueError::NotFound) => {}
            Err(e) => {
                tracing::warn!(task_id = %args.task_id, error.cause_chain = ?e, error.message = %e,
                    "cannot record the callback's state");
            }
        }
        result
    }

    /// One attempt: the record, read now, POSTed to the URL.
    async fn deliver(&self, ctx: &TaskContext, args: &CallbackArgs) -> Result<StatusCode, Failure> {
        check_callback_url(&args.url).map_err(|m| Failure::last("InvalidArguments", m))?;
        let url = Url::parse(&args.url).map_err(|e| Failure::last("InvalidArguments", e.to_string()))?;
        if !self.allowed.allows(&url) {
            return Err(Failure::last("HostNotAllowed", self.allowed.refusal(&url).to_string()));
        }
        let record = match ctx.queue().get(&args.task_id).await {
            Ok(Some(r)) => r,
            Ok(None) => {
                return Err(Failure::last(
                    "TaskNotFound",
                    format!("task {} is gone (expired or forgotten)", args.task_id),
                ));
            }
            Err(e) => return Err(Failure::retryable("QueueError", e.to_string())),
        };
        let body = record.to_json_vec();
        let mut request = self.client.post(url).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = &self.token {
            request = request.bearer_auth(token);
        }
        if let Some(secret) = &self.secret {
            request = request
                .header("X-Celeriac-Signature", signature(secret, &body))
                .header("X-Celeriac-Timestamp", chrono::Utc::now().timestamp().to_string());
        }
        let response = request.body(body).send().await.map_err(|e| {
            let kind = if e.is_timeout() { "HttpTimeout" } else { "HttpError" };
            Failure::retryable(kind, error_text(&e))
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(status);
        }
        let retry_after = response
            .headers()
            .get(header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let excerpt: String = text.chars().take(ERROR_EXCERPT_BYTES).collect();
        let message = format!("HTTP {status}: {excerpt}");
        Err(if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            Failure {
                retry_after,
                ..Failure::retryable("HttpStatus", message)
            }
        } else {
            Failure::last("HttpStatus", message)
        })
    }
}

/// `sha256=<hex HMAC-SHA256 of body with secret>`, the `X-Celeriac-Signature` value.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + digest.len() * 2);
    out.push_str("sha256=");
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// A transport error with its causes (reqwest's own text is terse).
fn error_text(e: &reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_the_hex_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn secrets_are_redacted_and_settings_checked() {
        let cfg = CallbackTaskConfig {
            token: Some("tok-123".into()),
            secret: Some("sec-456".into()),
            ..CallbackTaskConfig::default()
        };
        let dbg = format!("{cfg:?}");
        assert!(!dbg.contains("tok-123") && !dbg.contains("sec-456"), "{dbg}");
        assert!(matches!(
            CallbackTask::new(CallbackTaskConfig {
                max_attempts: 0,
                ..CallbackTaskConfig::default()
            }),
            Err(CallbackConfigError::MaxAttempts)
        ));
        let bad = CallbackTask::new(CallbackTaskConfig {
            allowed_hosts: vec!["http://x".into()],
            ..CallbackTaskConfig::default()
        });
        match bad {
            Err(e) => assert!(e.to_string().contains(ALLOWED_HOSTS_SETTING), "{e}"),
            Ok(_) => panic!("a URL is not a host"),
        }
    }

    #[test]
    fn refusals_name_the_callback_setting() {
        let task = CallbackTask::new(CallbackTaskConfig::default()).unwrap();
        let url = Url::parse("http://127.0.0.1:9/x").unwrap();
        assert!(!task.allowed.allows(&url));
        let msg = task.allowed.refusal(&url).to_string();
        assert!(
            msg.contains(ALLOWED_HOSTS_SETTING) && msg.contains("127.0.0.1:9"),
            "{msg}"
        );
    }
}
