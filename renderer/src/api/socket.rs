//! The stream manager's WebSocket (`STREAM_MANAGER_WS_PORT`): the status, quality
//! and layers every second or on change, and JPEG previews from the frame cache, to
//! at most [`MAX_SOCKETS`] clients at once.

use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine as _;
use serde::Deserialize;
use sothebais_shared::api::codes;

use super::{AppState, View, fail, view};
use crate::frame_cache::FrameFormat;

#[derive(Debug, Deserialize)]
pub struct WsQuery {
    /// Preview frames per second (0 for none, at most 5).
    preview_fps: Option<u32>,
}

pub async fn websocket(
    State(shared): State<AppState>,
    Query(query): Query<WsQuery>,
    upgrade: WebSocketUpgrade,
) -> Response {
    let fps = query.preview_fps.unwrap_or(2).min(5);
    let connected = shared.sockets.fetch_add(1, Ordering::Relaxed);
    if connected >= MAX_SOCKETS {
        shared.sockets.fetch_sub(1, Ordering::Relaxed);
        return fail(
            StatusCode::SERVICE_UNAVAILABLE,
            codes::UNAVAILABLE,
            format!(
                "{MAX_SOCKETS} WebSocket clients are connected already (the console relays one to every dashboard)"
            ),
        );
    }
    // Given back when the socket ends, or when the upgrade never happens.
    let slot = SocketSlot(shared.clone());
    upgrade.on_upgrade(move |socket| async move {
        feed_socket(socket, shared, fps).await;
        drop(slot);
    })
}

/// One of the [`MAX_SOCKETS`] WebSocket places, taken until dropped.
struct SocketSlot(AppState);

impl Drop for SocketSlot {
    fn drop(&mut self) {
        self.0.sockets.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The most WebSocket clients at once: each gets previews encoded on the render box.
pub const MAX_SOCKETS: usize = 32;

/// `stream:state` and `stream:quality` every second, `stream:layer` when the layers
/// changed, and `stream:frame` JPEG previews; a client that cannot keep up is dropped
/// (each send has a deadline).
async fn feed_socket(mut socket: WebSocket, shared: AppState, preview_fps: u32) {
    let tick_ms = if preview_fps == 0 { 1000 } else { 1000 / u64::from(preview_fps) };
    let mut ticker = tokio::time::interval(Duration::from_millis(tick_ms));
    let mut ticks = 0u64;
    let mut last_frame = u64::MAX;
    let mut last_layers: Option<serde_json::Value> = None;
    loop {
        ticker.tick().await;
        let mut messages = Vec::new();
        if ticks.is_multiple_of((1000 / tick_ms).max(1)) {
            let View { status, layers, .. } = view(&shared);
            let quality = serde_json::json!({
                "fps": status.fps,
                "frame_time_ms_p50": status.frame_time_ms.p50,
                "frame_time_ms_p99": status.frame_time_ms.p99,
                "frames_dropped": status.frames_dropped,
                "bitrate_kbps": status.outputs.iter().map(|output| f64::from(output.bitrate_kbps)).sum::<f64>(),
            });
            messages.push(serde_json::json!({ "type": "stream:state", "data": status }));
            messages.push(serde_json::json!({ "type": "stream:quality", "data": quality }));
            // The layers, whenever a text, visibility or position changed.
            let layers = serde_json::json!({ "layers": layers });
            if last_layers.as_ref() != Some(&layers) {
                messages.push(serde_json::json!({ "type": "stream:layer", "data": layers }));
                last_layers = Some(layers);
            }
        }
        ticks += 1;
        if preview_fps > 0 {
            let latest = shared.frame.lock().ok().and_then(|frame| frame.clone());
            if let Some(latest) = latest.filter(|frame| frame.number != last_frame) {
                last_frame = latest.number;
                let width = latest.width.min(480);
                let height =
                    (u64::from(latest.height) * u64::from(width) / u64::from(latest.width.max(1))) as u32;
                if let Some(jpeg) =
                    shared.frames.get(latest, FrameFormat { jpeg: true, width: Some(width) }).await
                {
                    messages.push(serde_json::json!({
                        "type": "stream:frame",
                        "data": {
                            "format": "jpeg",
                            "width": width,
                            "height": height,
                            "frame": last_frame,
                            "image": base64::engine::general_purpose::STANDARD.encode(jpeg.as_slice()),
                        }
                    }));
                }
            }
        }
        for message in messages {
            let send = socket.send(Message::Text(message.to_string().into()));
            match tokio::time::timeout(sothebais_kit::http::WS_SEND_TIMEOUT, send).await {
                Ok(Ok(())) => {}
                _ => return,
            }
        }
        if shared.stats.finished.load(Ordering::Relaxed) {
            return;
        }
    }
}
