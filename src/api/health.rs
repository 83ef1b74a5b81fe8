//! Liveness (`/healthz`: the process serves) and readiness (`/readyz`: Redis answers).

use std::time::Duration;

use poem_openapi::{ApiResponse, OpenApi, payload::Json};

use super::{AppState, Tag, error::ErrorBody, models::HealthView};

/// Health endpoints for load balancers and orchestrators.
pub struct HealthApi {
    pub(crate) state: AppState,
}

/// `GET /readyz` answers.
#[derive(ApiResponse)]
pub enum ReadyResponse {
    /// Redis answers: send traffic here.
    #[oai(status = 200)]
    Ready(Json<HealthView>),
    /// Redis does not answer within 2 s: take this instance out of rotation (do not restart it).
    #[oai(status = 503)]
    NotReady(Json<ErrorBody>),
}

#[OpenApi(tag = "Tag::Health")]
impl HealthApi {
    /// The process is alive.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> Json<HealthView> {
        Json(HealthView {
            status: "ok".to_owned(),
        })
    }

    /// Redis is reachable.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self) -> ReadyResponse {
        match tokio::time::timeout(Duration::from_secs(2), self.state.queue.ping()).await {
            Ok(Ok(())) => ReadyResponse::Ready(Json(HealthView {
                status: "ready".to_owned(),
            })),
            _ => ReadyResponse::NotReady(Json(ErrorBody::new("redis_unavailable", "redis is unreachable"))),
        }
    }
}

/// GETs `url` and reports whether it answered 200 within `timeout`
/// (the `healthcheck` subcommand: containers need no curl).
pub async fn probe(url: &str, timeout: Duration) -> bool {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (authority, path) = rest
        .split_once('/')
        .map_or((rest, "/".to_owned()), |(a, p)| (a, format!("/{p}")));
    let check = async {
        let mut stream = tokio::net::TcpStream::connect(authority).await.ok()?;
        let request = format!("GET {path} HTTP/1.0\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut head = vec![0; 32];
        let n = stream.read(&mut head).await.ok()?;
        let line = String::from_utf8_lossy(&head[..n]).into_owned();
        Some(line.split_whitespace().nth(1) == Some("200"))
    };
    matches!(tokio::time::timeout(timeout, check).await, Ok(Some(true)))
}
