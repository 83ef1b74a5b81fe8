//! The one JSON error shape of the API: `{"error": {"code", "message"}}`.

use poem::{IntoResponse, Response, http::StatusCode};
use poem_openapi::{ApiResponse, payload::Json};

use crate::error::QueueError;
pub use crate::error::{ErrorBody, ErrorDetail};

/// Error responses shared by every operation.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed (invalid JSON, bad parameter).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No bearer token, or an unknown one (see the `bearer` security scheme).
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The token lacks the operation's scope.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such task (never existed, or its record expired).
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The request conflicts with the task's state.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The body is larger than the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The task is invalid: unknown name, bad arguments or options.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Unexpected server error (the cause is logged).
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// Redis is unreachable; retry later.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody::new(code, message))
}

impl ApiError {
    /// 400 with `code`.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message))
    }

    /// 404 for a task id.
    pub fn task_not_found(id: &str) -> Self {
        Self::NotFound(body("not_found", format!("no task with id {id:?}")))
    }

    /// 404 with a message.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::NotFound(body("not_found", message))
    }

    /// 409 with a message.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::Conflict(body("conflict", message))
    }

    /// 422 with `code`.
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable(body(code, message))
    }

    /// 422 for a task name nobody can run, listing the names that can.
    pub fn unknown_task(name: &str, known: Vec<String>) -> Self {
        let mut b = body(
            "unknown_task",
            format!("no task named {name:?} is built in or registered by a worker"),
        );
        b.0.error.known_tasks = Some(known);
        Self::Unprocessable(b)
    }

    /// 503 with a message (Redis unreachable).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::Unavailable(body("redis_unavailable", message))
    }

    /// 401 (no or unknown bearer token); the caller adds `WWW-Authenticate`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(body("unauthorized", message))
    }

    /// 403 (the token lacks the scope).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message))
    }

    /// 413.
    pub fn too_large(limit: usize) -> Self {
        Self::PayloadTooLarge(body("payload_too_large", format!("request body exceeds {limit} bytes")))
    }

    /// Turns this error into a `poem::Error` (for extractors), keeping the JSON body.
    pub fn into_poem(self) -> poem::Error {
        poem::Error::from_response(self.into_response())
    }
}

impl From<QueueError> for ApiError {
    fn from(e: QueueError) -> Self {
        match e {
            QueueError::RedisAuth(_) => {
                tracing::error!(error.message = %e, "redis refused our credentials");
                Self::Unavailable(body("redis_auth_failed", e.to_string()))
            }
            e if e.is_unavailable() => {
                tracing::warn!(error.cause_chain = ?e, "redis unavailable");
                Self::Unavailable(body("redis_unavailable", "redis is unreachable, retry later"))
            }
            QueueError::NotFound => Self::NotFound(body("not_found", "no such task")),
            QueueError::Conflict | QueueError::NotRunning | QueueError::LeaseLost => {
                Self::conflict("the task's status does not allow this")
            }
            QueueError::UnknownTaskName(name) => Self::unknown_task(&name, Vec::new()),
            e => {
                tracing::error!(error.cause_chain = ?e, error.message = %e, "request failed");
                Self::Internal(body("internal", "internal server error"))
            }
        }
    }
}

/// Renders any error poem or poem-openapi raised (unknown route, bad parameter,
/// wrong method) in the API's JSON shape; errors that already carry a response
/// (ours) pass through unchanged.
pub async fn render(err: poem::Error) -> Response {
    // The matched route stays on the answer: the metrics label it by route,
    // and a 405 lists the route's methods (`metrics::Observe`).
    let pattern = err.data::<poem::PathPattern>().cloned();
    let mut resp = render_body(err);
    if let Some(p) = pattern {
        resp.set_data(p);
    }
    resp
}

fn render_body(err: poem::Error) -> Response {
    if err.is_from_response() {
        return err.into_response();
    }
    let status = err.status();
    let code = match status {
        StatusCode::BAD_REQUEST => "bad_request",
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
        StatusCode::URI_TOO_LONG => "uri_too_long",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        s if s.is_server_error() => "internal",
        _ => "error",
    };
    let message = if status.is_server_error() {
        tracing::error!(error.message = %err, "request failed");
        "internal server error".to_owned()
    } else {
        err.to_string()
    };
    (status, poem::web::Json(ErrorBody::new(code, message))).into_response()
}
