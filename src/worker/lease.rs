//! Keeping leases: while tasks run, the lease keeper extends their leases (and
//! refreshes the worker's registration) every heartbeat interval; a task whose
//! lease was lost, or whose cancellation was requested, gets its revoke signal.
//! The cancel listener delivers cancellations at once through pub/sub; the next
//! heartbeat catches any message missed while disconnected.

use std::time::Duration;

use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    consume::{Backoff, InFlightMap},
    metrics::WorkerMetrics,
};
use crate::{
    model::{WorkerBeat, WorkerInfo},
    queue::Queue,
};

/// Extends the leases of running tasks and refreshes the worker registration;
/// tasks whose lease was lost or whose cancellation was requested are revoked.
pub(super) async fn keep_leases(
    queue: Queue,
    info: WorkerInfo,
    in_flight: InFlightMap,
    metrics: WorkerMetrics,
    every: Duration,
    stop: CancellationToken,
) {
    let mut ticker = tokio::time::interval(every);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! { _ = ticker.tick() => {}, () = stop.cancelled() => return }
        let held: Vec<(Uuid, String)> = in_flight
            .lock()
            .expect("in-flight lock")
            .values()
            .map(|f| (f.task.id, f.task.token.clone()))
            .collect();
        match queue.heartbeat(&held).await {
            Ok((lost, cancelled)) => {
                let map = in_flight.lock().expect("in-flight lock");
                for id in lost {
                    if let Some(f) = map.get(&id) {
                        tracing::warn!(task_id = %id, name = %f.task.name, "lease lost; cancelling the task");
                        f.revoke.cancel();
                    }
                }
                for id in cancelled {
                    if let Some(f) = map.get(&id) {
                        f.revoke.cancel();
                    }
                }
            }
            Err(e) => tracing::warn!(error.message = %e, "heartbeat failed"),
        }
        let beat = WorkerBeat {
            heartbeat: every,
            processed: metrics.processed(),
        };
        if let Err(e) = queue.worker_heartbeat(&info, &beat).await {
            tracing::warn!(error.message = %e, "worker registration failed");
        }
    }
}

/// Revokes running tasks as soon as they are cancelled through the API
/// (the heartbeat catches any message missed while disconnected).
pub(super) async fn listen_for_cancels(
    client: redis::Client,
    channel: String,
    in_flight: InFlightMap,
    stop: CancellationToken,
) {
    use futures_util::StreamExt;
    let mut backoff = Backoff::default();
    while !stop.is_cancelled() {
        let subscribed = async {
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let mut pubsub = match tokio::time::timeout(Duration::from_secs(5), subscribed).await {
            Ok(Ok(pubsub)) => pubsub,
            _ => {
                tokio::select! { () = tokio::time::sleep(backoff.next()) => continue, () = stop.cancelled() => return }
            }
        };
        backoff.reset();
        let mut messages = pubsub.on_message();
        loop {
            tokio::select! {
                msg = messages.next() => match msg {
                    Some(msg) => {
                        let Ok(id) = msg.get_payload::<String>().map(|p| p.parse::<Uuid>()) else { continue };
                        let Ok(id) = id else { continue };
                        if let Some(f) = in_flight.lock().expect("in-flight lock").get(&id) {
                            tracing::info!(task_id = %id, name = %f.task.name, "cancellation requested");
                            f.revoke.cancel();
                        }
                    }
                    None => break,
                },
                () = stop.cancelled() => return,
            }
        }
    }
}
