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
/// How long a claim keeps other relays off the same events.
const LEASE: Duration = Duration::from_secs(30);

/// Runs until `shutdown`, woken by `wake` after commits and every second regardless.
pub async fn run(
    storage: Arc<dyn Storage>,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let pause = match storage.claim_unpublished(BATCH, LEASE).await {
            Ok(events) if events.is_empty() => None,
            Ok(events) => {
                let mut published = Vec::with_capacity(events.len());
                let mut failed = false;
                for stored in &events {
                    match bus.publish(&stored.event).await {
                        Ok(_) => {
                            published.push(stored.seq);
                            let lag = chrono::Utc::now().timestamp_millis() - stored.event.timestamp;
                            metrics::counter!("events_published_total", "type" => stored.event.event_type.as_str()).increment(1);
                            metrics::histogram!("events_outbox_lag_seconds")
                                .record(lag.max(0) as f64 / 1000.0);
                        }
                        Err(error) => {
                            tracing::warn!(%error, "cannot publish; the events stay in the outbox");
                            failed = true;
                            break;
                        }
                    }
                }
                if let Err(error) = storage.mark_published(&published).await {
                    tracing::warn!(%error, "published events not marked; they will be published again");
                }
                if failed {
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    Some(backoff)
                } else {
                    backoff = Duration::from_millis(100);
                    // More may be waiting: go again at once.
                    continue;
                }
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
