//! The renderer's live feed for dashboards (`GET /api/admin/live`, a WebSocket):
//! one connection to the renderer's WebSocket (`STREAM_MANAGER_WS_URL`) while at
//! least one dashboard watches, its messages (`stream:state`, `stream:quality`,
//! `stream:layer`, `stream:frame` JPEG previews) fanned out to every dashboard. So
//! the renderer encodes each preview once, however many dashboards are open.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use futures::{SinkExt as _, StreamExt as _};
use tokio::sync::broadcast;

use crate::app::AppState;

/// Preview frames per second asked of the renderer.
const PREVIEW_FPS: u32 = 5;
/// Messages a slow dashboard may fall behind before it skips ahead.
const BACKLOG: usize = 32;

/// The one upstream connection and its subscribers.
#[derive(Clone)]
pub struct PreviewRelay {
    inner: Arc<Inner>,
}

struct Inner {
    url: String,
    sender: broadcast::Sender<Arc<str>>,
    running: AtomicBool,
}

impl std::fmt::Debug for PreviewRelay {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("PreviewRelay")
            .field("url", &self.inner.url)
            .field("watchers", &self.watchers())
            .finish()
    }
}

impl PreviewRelay {
    pub fn new(url: String) -> PreviewRelay {
        let (sender, _) = broadcast::channel(BACKLOG);
        PreviewRelay { inner: Arc::new(Inner { url, sender, running: AtomicBool::new(false) }) }
    }

    /// Dashboards watching now.
    pub fn watchers(&self) -> usize {
        self.inner.sender.receiver_count()
    }

    /// A new watcher; connects to the renderer when it is the first.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<str>> {
        let receiver = self.inner.sender.subscribe();
        if !self.inner.running.swap(true, Ordering::SeqCst) {
            tokio::spawn(self.clone().pump());
        }
        receiver
    }

    /// Reads the renderer's feed while anyone watches, reconnecting every second
    /// when it is down.
    async fn pump(self) {
        let url = format!("{}/?preview_fps={PREVIEW_FPS}", self.inner.url);
        loop {
            self.relay_while_watched(&url).await;
            self.inner.running.store(false, Ordering::SeqCst);
            // Someone may have subscribed between the last check and the store.
            if self.watchers() == 0 || self.inner.running.swap(true, Ordering::SeqCst) {
                return;
            }
        }
    }

    async fn relay_while_watched(&self, url: &str) {
        while self.watchers() > 0 {
            match tokio_tungstenite::connect_async(url).await {
                Ok((mut socket, _)) => {
                    tracing::debug!(%url, "relaying the renderer's feed to dashboards");
                    while let Some(Ok(message)) = socket.next().await {
                        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
                            // No receiver left: stop reading, the renderer's encoding stops.
                            if self.inner.sender.send(Arc::from(text.as_str())).is_err() {
                                break;
                            }
                        }
                    }
                    let _ = socket.close(None).await;
                }
                Err(error) => {
                    tracing::debug!(%url, %error, "renderer feed unreachable");
                    let down = serde_json::json!({ "type": "stream:down", "data": { "reason": "renderer unreachable" } });
                    let _ = self.inner.sender.send(Arc::from(down.to_string().as_str()));
                }
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }
}

pub async fn upgrade(State(state): State<AppState>, upgrade: WebSocketUpgrade) -> Response {
    let receiver = state.preview.subscribe();
    let stop = state.shutdown.clone();
    upgrade.on_upgrade(move |socket| feed(socket, receiver, stop))
}

async fn feed(
    socket: WebSocket,
    mut receiver: broadcast::Receiver<Arc<str>>,
    stop: tokio_util::sync::CancellationToken,
) {
    let (mut sink, mut incoming) = socket.split();
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => break,
            message = receiver.recv() => message,
            // A closed or failed client ends the feed.
            read = incoming.next() => match read {
                Some(Ok(_)) => continue,
                _ => break,
            },
        };
        let text = match message {
            Ok(text) => text,
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => break,
        };
        let send = sink.send(Message::Text(text.as_ref().into()));
        match tokio::time::timeout(sothebais_kit::http::WS_SEND_TIMEOUT, send).await {
            Ok(Ok(())) => {}
            _ => break,
        }
    }
    let _ = sink.close().await;
}
