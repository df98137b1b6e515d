//! The process's live feed of events: one tail over every category stream of the bus
//! (so it sees every process's events), fanned out to WebSocket clients through a
//! broadcast channel. A client that falls behind is told so and dropped; nobody waits
//! for a slow client.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
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

/// Sends one message to a WebSocket client; false when the client is gone or too slow.
pub async fn send_in_time(socket: &mut WebSocket, message: Message) -> bool {
    matches!(
        tokio::time::timeout(sothebais_kit::http::WS_SEND_TIMEOUT, socket.send(message)).await,
        Ok(Ok(()))
    )
}

/// The next live event for a WebSocket client. `None` ends the connection: the server
/// is stopping (1001), the client left, or it fell more than [`CLIENT_BACKLOG`] events
/// behind (1008, so it reconnects and resyncs); each case is closed properly here.
pub async fn next_event(
    socket: &mut WebSocket,
    live: &mut broadcast::Receiver<Arc<Envelope>>,
    shutdown: &CancellationToken,
    role: &'static str,
) -> Option<Arc<Envelope>> {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => {
                let _ = socket.send(Message::Close(Some(CloseFrame { code: 1001, reason: "server stopping".into() }))).await;
                return None;
            }
            incoming = socket.recv() => match incoming {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return None,
                Some(Ok(_)) => {}
            },
            event = live.recv() => match event {
                Ok(event) => return Some(event),
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    tracing::info!(missed, role, "dropping a WebSocket client that fell behind");
                    metrics::counter!("ws_clients_dropped_total", "role" => role).increment(1);
                    let frame = CloseFrame { code: 1008, reason: "too slow: reconnect and resync".into() };
                    let _ = socket.send(Message::Close(Some(frame))).await;
                    return None;
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            },
        }
    }
}
