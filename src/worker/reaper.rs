//! The reaper: any worker returns tasks whose lease expired (their worker died
//! or hung) to their queues, or dead-letters them after too many lost deliveries.

use std::time::Duration;

use rand::Rng;
use tokio_util::sync::CancellationToken;

use crate::queue::Queue;

/// Returns tasks whose lease expired to their queues, every `every` (with jitter
/// so that many workers do not reap in lockstep).
pub(super) async fn run(queue: Queue, every: Duration, stop: CancellationToken) {
    // Listing indexes are trimmed every TRIM_EVERY rounds: an idle system stays idle.
    const TRIM_EVERY: u32 = 10;
    let mut round = rand::rng().random_range(0..TRIM_EVERY);
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
        round += 1;
        if round % TRIM_EVERY == 0
            && let Err(e) = queue.trim_indexes(500).await
        {
            tracing::debug!(error.message = %e, "trimming the listing indexes failed");
        }
    }
}
