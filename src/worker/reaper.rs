//! The reaper: any worker returns tasks whose lease expired (their worker died
//! or hung) to their queues, or dead-letters them after too many lost deliveries.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::queue::Queue;

/// Returns tasks whose lease expired to their queues, every `every` (with jitter
/// so that many workers do not reap in lockstep).
pub(super) async fn run(queue: Queue, every: Duration, stop: CancellationToken) {
    loop {
        let jitter = every.mul_f64(rand::rng().random_range(0.75..1.25));
        tokio::select! { () = tokio::time::sleep(jitter) => {}, () = stop.cancelled() => return }
        match queue.reap().await {
            Ok((0, 0)) => {}
            Ok((requeued, dead)) => {
                tracing::warn!(requeued, dead, "reaped tasks with expired leases")
            }
            Err(e) => tracing::debug!(error.message = %e, "reap failed"),
        }
    }
}
