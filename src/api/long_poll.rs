//! `?wait=`: a read held until the record is final, woken by its completion
//! channel (one pub/sub reader per process), never by polling.

use std::{future::Future, time::Duration};

use super::{AppState, error::ApiError};
use crate::error::QueueError;

/// Longest `?wait=` accepted, in seconds.
const MAX_WAIT_SECS: f64 = 60.0;

/// Reads a record, holding the request until it is final or `wait` seconds pass.
/// A record not final at the first read is read again once its completion
/// channel is subscribed, so no completion is missed and nothing polls.
pub(crate) async fn wait_final<T, F, Fut>(
    state: &AppState,
    channel: String,
    wait: Option<f64>,
    read: F,
    is_final: impl Fn(&T) -> bool,
) -> Result<Option<T>, ApiError>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Option<T>, QueueError>>,
{
    let wait = Duration::from_secs_f64(wait.unwrap_or(0.0).clamp(0.0, MAX_WAIT_SECS));
    if wait.is_zero() {
        return Ok(read().await?);
    }
    let deadline = tokio::time::Instant::now() + wait;
    // A record that is final already (most short tasks by the time their client
    // asks) is answered without touching the pub/sub connection.
    let first = read().await?;
    match &first {
        Some(r) if !is_final(r) => {}
        _ => return Ok(first),
    }
    // Subscribed (and confirmed) before the next read, so a completion between
    // that read and the wait still wakes it; kept, so a wake-up is followed by a
    // read only, not by another SUBSCRIBE round trip.
    let mut subscription = state.notifier.subscribe(channel).await.map_err(ApiError::from)?;
    loop {
        let record = read().await?;
        match &record {
            Some(r) if !is_final(r) && tokio::time::Instant::now() < deadline => {}
            _ => return Ok(record),
        }
        tokio::select! {
            () = subscription.notified() => {}
            () = tokio::time::sleep_until(deadline) => return Ok(read().await?),
        }
    }
}
