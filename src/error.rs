//! The engine's error type, and the one JSON shape every HTTP error takes
//! (`{"error": {"code", "message"}}`), on the API and on the worker's health port.

use poem_openapi::Object;
use serde::Serialize;

/// What can go wrong talking to the queue (`Clone`: one failed batch call is
/// every member's answer).
#[derive(Clone, Debug, thiserror::Error)]
pub enum QueueError {
    /// Redis answered with an error or could not be reached.
    #[error("redis command failed")]
    Redis(#[source] redis::RedisError),
    /// Redis refused our credentials (wrong or missing password, unknown ACL user).
    #[error("redis authentication failed: check the password (and user) in the broker URL")]
    RedisAuth(#[source] redis::RedisError),
    /// The task name is neither built in nor registered by a worker.
    #[error("unknown task name {0:?}")]
    UnknownTaskName(String),
    /// The task record does not exist (never did, or expired).
    #[error("no such task")]
    NotFound,
    /// The transition needs a running task, and this one is not running.
    #[error("task is not running")]
    NotRunning,
    /// The task is in a state that does not allow this operation (cancel a
    /// finished task, retry a running one, forget a pending one).
    #[error("the task's state does not allow this")]
    Conflict,
    /// The caller's lease was taken away (it expired and the task was handed to another worker).
    #[error("lease lost")]
    LeaseLost,
    /// A record in Redis could not be read back.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A script answered with a code this version does not know.
    #[error("unexpected script reply {0}")]
    UnexpectedReply(i64),
}

impl From<redis::RedisError> for QueueError {
    fn from(e: redis::RedisError) -> Self {
        let auth =
            e.kind() == redis::ErrorKind::AuthenticationFailed || matches!(e.code(), Some("NOAUTH" | "WRONGPASS"));
        if auth { Self::RedisAuth(e) } else { Self::Redis(e) }
    }
}

impl QueueError {
    /// Maps a Lua script's reply code, the one table for every script
    /// (`lua/includes/codes.lua`); positive codes are successes and pass through.
    /// `name` is what the script named with the code (the task name for -5).
    ///
    /// | code | meaning |
    /// | --- | --- |
    /// | -1 | no such task ([`QueueError::NotFound`]) |
    /// | -2 | the task is not running ([`QueueError::NotRunning`]) |
    /// | -3 | the caller's lease was lost ([`QueueError::LeaseLost`]) |
    /// | -4 | the task's or its workflow's state does not allow this ([`QueueError::Conflict`]) |
    /// | -5 | unknown task name ([`QueueError::UnknownTaskName`]) |
    pub fn from_script_code(code: i64, name: &str) -> Result<i64, Self> {
        match code {
            c if c > 0 => Ok(c),
            -1 => Err(Self::NotFound),
            -2 => Err(Self::NotRunning),
            -3 => Err(Self::LeaseLost),
            -4 => Err(Self::Conflict),
            -5 => Err(Self::UnknownTaskName(name.to_owned())),
            c => Err(Self::UnexpectedReply(c)),
        }
    }

    /// True when the error means "Redis is unreachable right now" (worth a 503 and a retry).
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Redis(e) => {
                e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                    || e.is_connection_refusal()
                    || e.is_unrecoverable_error()
                    || matches!(
                        e.kind(),
                        redis::ErrorKind::Server(
                            redis::ServerErrorKind::BusyLoading
                                | redis::ServerErrorKind::ReadOnly // a primary failing over
                                | redis::ServerErrorKind::MasterDown
                                | redis::ServerErrorKind::ClusterDown
                                | redis::ServerErrorKind::TryAgain
                        )
                    )
                    || e.code() == Some("NOREPLICAS") // min-replicas-to-write not met
            }
            _ => false,
        }
    }

    /// True when a call may have run although its answer never came: the answer
    /// timed out, or the connection dropped or failed after it was sent.
    pub fn answer_lost(&self) -> bool {
        matches!(self, Self::Redis(e)
            if (e.is_timeout() || e.is_connection_dropped() || e.is_io_error()) && !e.is_connection_refusal())
    }
}

/// Result alias of the engine.
pub type Result<T, E = QueueError> = std::result::Result<T, E>;

/// Body of every HTTP error response.
#[derive(Debug, Object, Serialize)]
pub struct ErrorBody {
    /// What went wrong.
    pub error: ErrorDetail,
}

/// The error itself.
#[derive(Debug, Object, Serialize)]
pub struct ErrorDetail {
    /// Stable machine-readable code (`bad_json`, `invalid_task`, `not_found`, …).
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// For `unknown_task`: the task names that can be enqueued.
    #[oai(skip_serializing_if_is_none)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub known_tasks: Option<Vec<String>>,
}

impl ErrorBody {
    /// An error with `code` and `message`.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        Self {
            error: ErrorDetail {
                code: code.to_owned(),
                message: message.into(),
                known_tasks: None,
            },
        }
    }

    /// The same, as a JSON value (for handlers outside poem-openapi).
    pub fn json(code: &str, message: impl Into<String>) -> serde_json::Value {
        serde_json::to_value(Self::new(code, message)).unwrap_or_default()
    }
}
