//! Completion callbacks: where a task's record is POSTed when it reaches a final
//! state, and how far that delivery got.
//!
//! A task carries its callback URL in its record (`callback_url`); the script
//! that ends the task queues the delivery (a `callback` task on the
//! [`CALLBACK_QUEUE`]) and sets the record's `callback` field to `pending`; each
//! delivery attempt then records its outcome there.

use std::{collections::BTreeMap, fmt};

use reqwest::Url;
use serde::{Deserialize, Serialize};

/// The queue deliveries go to (a worker must consume it: `-Q default,callbacks`).
pub const CALLBACK_QUEUE: &str = "callbacks";
/// The built-in task that delivers a callback.
pub const CALLBACK_TASK: &str = "callback";
/// Longest callback URL accepted.
pub const MAX_CALLBACK_URL: usize = 2048;

/// How far a task's callback delivery got.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CallbackStatus {
    /// Not delivered yet (the task is not final, or a delivery is under way or waits for a retry).
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up: a 4xx answer, a destination not allowed, or every attempt failed.
    Failed,
}

impl CallbackStatus {
    /// The name stored and shown (`pending`, `delivered`, `failed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }
}

/// A task's callback as its record shows it (the record's `callback` field, JSON).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallbackState {
    /// Where the record is POSTed.
    pub url: String,
    /// How far the delivery got.
    pub status: CallbackStatus,
    /// Delivery attempts made so far.
    #[serde(default)]
    pub attempts: u32,
    /// Why the latest attempt failed.
    #[serde(default)]
    pub last_error: Option<String>,
}

impl CallbackState {
    /// Reads the record's `callback` field (JSON), else, for a task that is not
    /// final yet, its `callback_url` as a pending callback.
    pub fn from_fields(state: Option<&str>, url: Option<String>) -> Option<Self> {
        if let Some(state) = state {
            match serde_json::from_str::<Self>(state) {
                Ok(s) => return Some(s),
                Err(e) => tracing::error!(callback = state, error.message = %e, "unreadable callback state"),
            }
        }
        url.map(|url| Self {
            url,
            status: CallbackStatus::Pending,
            attempts: 0,
            last_error: None,
        })
    }
}

/// Checks a callback URL: absolute `http` or `https` with a host, at most
/// [`MAX_CALLBACK_URL`] long. Whether its host may be called is the delivering
/// worker's decision (`CELERIAC_CALLBACK_ALLOWED_HOSTS`).
pub fn check_callback_url(url: &str) -> Result<(), String> {
    if url.len() > MAX_CALLBACK_URL {
        return Err(format!("callback_url is longer than {MAX_CALLBACK_URL} characters"));
    }
    let parsed = Url::parse(url).map_err(|e| format!("callback_url {url:?} is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(format!("callback_url must be http or https, not {:?}", parsed.scheme()));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("callback_url {url:?} has no host"));
    }
    Ok(())
}

/// Why a queue callbacks setting was refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum QueueCallbacksError {
    /// An entry is not `queue=url`.
    #[error("queue callback {entry:?} is not <queue>=<url>")]
    Malformed {
        /// The offending entry.
        entry: String,
    },
    /// The queue name or the URL is refused.
    #[error("queue callback {entry:?}: {reason}")]
    Invalid {
        /// The offending entry.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Callback URLs by queue (`CELERIAC_QUEUE_CALLBACKS`): every task of the queue
/// that names no `callback_url` of its own gets its queue's.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct QueueCallbacks {
    by_queue: BTreeMap<String, String>,
}

impl QueueCallbacks {
    /// Parses `queue=url,queue=url,…` (e.g. `encoding=https://app/rest/done`);
    /// blank entries are skipped. A URL holding a comma cannot be given here.
    pub fn parse(s: &str) -> Result<Self, QueueCallbacksError> {
        let mut by_queue = BTreeMap::new();
        for entry in s.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            let invalid = |reason: String| QueueCallbacksError::Invalid {
                entry: entry.to_owned(),
                reason,
            };
            let (queue, url) = entry.split_once('=').ok_or_else(|| QueueCallbacksError::Malformed {
                entry: entry.to_owned(),
            })?;
            let (queue, url) = (queue.trim(), url.trim());
            if !super::name::is_safe_name(queue, super::name::MAX_QUEUE_NAME) {
                return Err(invalid(format!("{queue:?} is not a valid queue name")));
            }
            if queue == CALLBACK_QUEUE {
                return Err(invalid(format!(
                    "the {CALLBACK_QUEUE} queue's deliveries get no callback"
                )));
            }
            check_callback_url(url).map_err(invalid)?;
            by_queue.insert(queue.to_owned(), url.to_owned());
        }
        Ok(Self { by_queue })
    }

    /// The callback URL of `queue`'s tasks, if any.
    pub fn url_for(&self, queue: &str) -> Option<&str> {
        self.by_queue.get(queue).map(String::as_str)
    }

    /// True when no queue has a callback.
    pub fn is_empty(&self) -> bool {
        self.by_queue.is_empty()
    }
}

/// Shows the queues only: a URL may carry a credential in its query.
impl fmt::Debug for QueueCallbacks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_queue.keys()).finish()
    }
}

impl std::str::FromStr for QueueCallbacks {
    type Err = QueueCallbacksError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queue_callbacks_map_queues_to_urls() {
        let c = QueueCallbacks::parse(" encoding=https://app/rest/done?a=b , reports=http://x/y,").unwrap();
        assert_eq!(c.url_for("encoding"), Some("https://app/rest/done?a=b"));
        assert_eq!(c.url_for("reports"), Some("http://x/y"));
        assert_eq!(c.url_for("default"), None);
        assert!(QueueCallbacks::parse("").unwrap().is_empty());
        assert!(!format!("{c:?}").contains("app/rest"), "{c:?}");
    }

    #[test]
    fn bad_queue_callbacks_are_refused() {
        for bad in [
            "encoding",
            "encoding=ftp://x/y",
            "encoding=not a url",
            "=http://x/",
            "q{x}=http://x/",
            "callbacks=http://x/",
        ] {
            assert!(QueueCallbacks::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn callback_urls_must_be_http_with_a_host() {
        assert!(check_callback_url("https://app.example/done").is_ok());
        assert!(check_callback_url("http://127.0.0.1:9/x").is_ok());
        assert!(check_callback_url("mailto:a@b").is_err());
        assert!(check_callback_url("/relative").is_err());
        assert!(check_callback_url(&format!("http://x/{}", "a".repeat(MAX_CALLBACK_URL))).is_err());
    }

    #[test]
    fn a_state_reads_from_lua_json_or_falls_back_to_the_url() {
        let s = CallbackState::from_fields(Some(r#"{"url":"http:\/\/x\/y","status":"pending","attempts":0}"#), None)
            .unwrap();
        assert_eq!(
            (s.url.as_str(), s.status, s.attempts),
            ("http://x/y", CallbackStatus::Pending, 0)
        );
        let s = CallbackState::from_fields(None, Some("http://a/".into())).unwrap();
        assert_eq!(s.status, CallbackStatus::Pending);
        assert!(CallbackState::from_fields(None, None).is_none());
    }
}
