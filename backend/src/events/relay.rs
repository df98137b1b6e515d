//! The outbox relay: publishes stored events on the bus, oldest first, and marks them
//! published. Events written with a decision are published from here, so a crash
//! between commit and publish loses nothing: the next relay publishes them (a crash
//! after publishing but before marking publishes again; consumers are idempotent).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;
use crate::storage::Storage;

/// Events claimed per round.
const BATCH: u32 = 500;

/// Runs until `shutdown`, woken by `wake` after commits and every second regardless.
pub async fn run(
    storage: Arc<dyn Storage>,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pause = match storage.relay_outbox(BATCH, bus.as_ref()).await {
            Ok(Ok(published)) if published.is_empty() => None,
            Ok(Ok(published)) => {
                let now = chrono::Utc::now().timestamp_millis();
                for event in &published {
                    metrics::counter!("events_published_total", "type" => event.event_type.as_str())
                        .increment(1);
                    metrics::histogram!("events_outbox_lag_seconds")
                        .record((now - event.timestamp).max(0) as f64 / 1000.0);
                }
                backoff = Duration::from_millis(100);
                // More may be waiting: go again at once.
                continue;
            }
            Ok(Err(error)) => {
                tracing::warn!(%error, "cannot publish; the events stay in the outbox");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                Some(backoff)
            }
            Err(error) => {
                tracing::warn!(%error, "cannot read the outbox");
                backoff = (backoff * 2).min(Duration::from_secs(5));
                Some(backoff)
            }
        };
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = wake.notified(), if pause.is_none() => {}
            () = tokio::time::sleep(pause.unwrap_or(Duration::from_secs(1))) => {}
        }
    }
}
