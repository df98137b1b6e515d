//! The outbox relay: publishes stored events on the bus, oldest first, and marks them
//! published. Events written with a decision are published from here, so a crash
//! between commit and publish loses nothing: the next relay publishes them (a crash
//! after publishing but before marking publishes again; consumers are idempotent).
//!
//! Each round starts after the last event it published, so it never walks over the
//! outbox's taken rows; a sweep from the start every [`SWEEP`] picks up an event
//! that committed after a later one was already published (another transaction
//! that took its sequence number earlier and committed later).

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::bus::{BusError, EventBus};
use crate::storage::{RelayedEvent, Storage, StorageError};

/// Events claimed per round.
const BATCH: u32 = 500;

/// How often, at most, a round starts from the beginning of the outbox: an event
/// that committed out of order waits up to this long under load, up to a second
/// when the relay is idle.
const SWEEP: Duration = Duration::from_millis(250);

/// Publishes the whole outbox now, round after round until it is empty; how many
/// events went out. For tests that settle the events, and for the relay's last pass.
pub async fn publish_pending(storage: &dyn Storage, bus: &dyn EventBus) -> anyhow::Result<usize> {
    let mut published = 0;
    let mut after = 0;
    loop {
        let round = round(storage, bus, after).await??;
        if round.is_empty() {
            return Ok(published);
        }
        published += round.len();
        after = round.iter().map(|stored| stored.seq).max().unwrap_or(after);
    }
}

/// One round: publishes up to [`BATCH`] events after `after` and counts them
/// (`events_published_total`, `events_outbox_lag_seconds`).
async fn round(
    storage: &dyn Storage,
    bus: &dyn EventBus,
    after: i64,
) -> Result<Result<Vec<RelayedEvent>, BusError>, StorageError> {
    let outcome = storage.relay_outbox(after, BATCH, bus).await;
    if let Ok(Ok(published)) = &outcome
        && !published.is_empty()
    {
        let now = chrono::Utc::now().timestamp_millis();
        // Metric handles looked up once per round, not per event.
        let lag = metrics::histogram!("events_outbox_lag_seconds");
        for stored in published {
            lag.record((now - stored.event.timestamp).max(0) as f64 / 1000.0);
        }
        for (kind, count) in super::tally(published.iter().map(|stored| stored.event.event_type)) {
            metrics::counter!("events_published_total", "type" => kind.as_str()).increment(count);
        }
    }
    outcome
}

/// Runs until `shutdown`, woken by `wake` after commits and every second regardless.
/// On `shutdown` it makes a last pass from the start of the outbox, so what the engine
/// committed before it stopped is published before the process exits (what cannot be
/// published stays in the outbox for the next start).
pub async fn run(
    storage: Arc<dyn Storage>,
    bus: Arc<dyn EventBus>,
    wake: Arc<Notify>,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_millis(100);
    let mut after = 0;
    let mut last_sweep = Instant::now();
    loop {
        if last_sweep.elapsed() >= SWEEP {
            after = 0;
            last_sweep = Instant::now();
        }
        let pause = match round(storage.as_ref(), bus.as_ref(), after).await {
            Ok(Ok(published)) if published.is_empty() => None,
            Ok(Ok(published)) => {
                after = published.iter().map(|stored| stored.seq).max().unwrap_or(after);
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
            () = shutdown.cancelled() => {
                match publish_pending(storage.as_ref(), bus.as_ref()).await {
                    Ok(published) => tracing::info!(published, "outbox relay: last pass done"),
                    Err(error) => tracing::warn!(error = %format!("{error:#}"), "outbox relay: the rest stays in the outbox for the next start"),
                }
                return;
            }
            () = wake.notified(), if pause.is_none() => {}
            () = tokio::time::sleep(pause.unwrap_or(Duration::from_secs(1))) => {}
        }
    }
}
