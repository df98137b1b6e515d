//! The process's live feed of events: one tail over every category stream of the bus
//! (so it sees every process's events), fanned out to WebSocket clients through a
//! broadcast channel. A client that falls behind is told so and dropped; nobody waits
//! for a slow client.

use std::sync::Arc;
use std::time::Duration;

use sothebais_shared::events::{Category, Envelope};
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::bus::EventBus;

/// Events a client may fall behind before it is dropped.
pub const CLIENT_BACKLOG: usize = 1024;

/// The fan-out of live events.
#[derive(Debug, Clone)]
pub struct EventFeed {
    sender: broadcast::Sender<Arc<Envelope>>,
}

impl Default for EventFeed {
    fn default() -> Self {
        EventFeed { sender: broadcast::channel(CLIENT_BACKLOG).0 }
    }
}

impl EventFeed {
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.sender.subscribe()
    }

    /// Follows every category stream until `shutdown`, following again after errors.
    pub async fn run(self, bus: Arc<dyn EventBus>, shutdown: CancellationToken) {
        let streams: Vec<String> = Category::ALL.iter().map(|category| category.stream_name()).collect();
        loop {
            let mut tail = match bus.tail(streams.clone()).await {
                Ok(tail) => tail,
                Err(error) => {
                    tracing::warn!(%error, "event feed cannot follow the bus; retrying");
                    tokio::select! {
                        () = shutdown.cancelled() => return,
                        () = tokio::time::sleep(Duration::from_secs(1)) => continue,
                    }
                }
            };
            loop {
                let batch = tokio::select! {
                    () = shutdown.cancelled() => return,
                    batch = tail.next(256, Duration::from_secs(1)) => batch,
                };
                match batch {
                    // Nobody is watching: skip the parsing.
                    Ok(_) if self.sender.receiver_count() == 0 => {}
                    Ok(deliveries) => {
                        for delivery in deliveries {
                            if let Ok(event) = delivery.envelope() {
                                let _ = self.sender.send(Arc::new(event));
                            }
                        }
                    }
                    Err(error) => {
                        tracing::warn!(%error, "event feed lost the bus; following again");
                        break;
                    }
                }
            }
        }
    }
}
