//! Timers that open and close auctions on time, and survive restarts: deadlines live
//! in the database (`next_deadline_ms`), so an auction whose end passed while no
//! process was running is closed, from its stored state, as soon as one starts.
//! Time comes from the engine's clock, so a test that moves its clock forward wakes
//! the scheduler at once.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use sothebais_kit::clock::SharedClock;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::engine::{DeadlineUpdate, Engine};

/// How often deadlines set by other processes are read from the database.
const REFRESH: Duration = Duration::from_secs(1);
/// How far ahead a refresh looks.
const HORIZON: Duration = Duration::from_secs(3);

/// Runs until `shutdown`: wakes at each known deadline and lets the auction's writer
/// act. This process's writers report new deadlines at once; others' are read every
/// second.
pub async fn run(
    engine: Engine,
    mut updates: mpsc::UnboundedReceiver<DeadlineUpdate>,
    clock: SharedClock,
    shutdown: CancellationToken,
) {
    let mut deadlines: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    let mut next_refresh = tokio::time::Instant::now();
    loop {
        if tokio::time::Instant::now() >= next_refresh {
            let horizon = clock.now() + chrono::Duration::from_std(HORIZON).unwrap_or_default();
            match engine.storage().due_auctions(horizon).await {
                Ok(due) => deadlines.extend(due),
                Err(error) => tracing::warn!(%error, "cannot read auction deadlines; retrying"),
            }
            next_refresh = tokio::time::Instant::now() + REFRESH;
        }
        let now = clock.now();
        let due: Vec<Uuid> = deadlines.iter().filter(|(_, at)| **at <= now).map(|(id, _)| *id).collect();
        for id in due {
            deadlines.remove(&id);
            engine.tick(id).await;
        }
        let refresh_in = next_refresh.saturating_duration_since(tokio::time::Instant::now());
        let wake_at = deadlines
            .values()
            .min()
            .copied()
            .into_iter()
            .chain(chrono::Duration::from_std(refresh_in).ok().map(|refresh| clock.now() + refresh))
            .min()
            .unwrap_or_else(|| clock.now());
        tokio::select! {
            () = shutdown.cancelled() => return,
            update = updates.recv() => match update {
                Some((id, Some(at))) => { deadlines.insert(id, at); }
                Some((id, None)) => { deadlines.remove(&id); }
                None => return,
            },
            () = clock.sleep_until(wake_at) => {}
            // Other processes' deadlines are read on the real second, whatever the clock.
            () = tokio::time::sleep(refresh_in) => {}
        }
    }
}
