//! Timing and stats: each frame's time, the renderer's view of itself for the API
//! (status, layers, scenes) four times a second, `stream:quality` every ten seconds,
//! and the end of the app when the output is done or a signal came.

use std::collections::VecDeque;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use bevy::prelude::*;
use sothebais_shared::events::{EventType, StreamQuality};

use crate::api;
use crate::bridge::{Inbox, send_event};
use crate::capture::FrameSink;
use crate::output::Encoding;
use crate::output_pipeline;
use crate::output_pipeline::OutputState;
use crate::scene::assets::AssetFiles;
use crate::scene::draw::{self as draw, OnAir, Overrides};
use crate::scene::format::{LayerKind, Position};
use crate::scene::library::Library;
use crate::show::Show;
use crate::stage::Stage;

/// How often the renderer publishes `stream:quality`.
pub const QUALITY_EVERY: Duration = Duration::from_secs(10);

/// Figures the status and metrics report.
#[derive(Resource)]
pub struct Timing {
    pub started: Instant,
    pub last: Option<Instant>,
    pub frame_times: VecDeque<f64>,
    pub frame_ends: VecDeque<Instant>,
    pub following: bool,
    /// Events applied and not yet seen in a read-back frame: (arrival, frame applied).
    pub unseen: Vec<(Instant, u32)>,
    pub readbacks: u64,
    pub encoder: String,
    pub encoding: Encoding,
    pub failed_reported: bool,
    /// Bytes each output had taken at `bytes_at`, for its bitrate.
    pub bytes: Vec<u64>,
    pub bytes_at: Option<Instant>,
}

impl Timing {
    pub fn new(encoder: &str, encoding: Encoding) -> Timing {
        Timing {
            started: Instant::now(),
            last: None,
            frame_times: VecDeque::new(),
            frame_ends: VecDeque::new(),
            following: false,
            unseen: Vec::new(),
            readbacks: 0,
            encoder: encoder.to_owned(),
            encoding,
            failed_reported: false,
            bytes: Vec::new(),
            bytes_at: None,
        }
    }
}

/// Publishes the view and stops the app, last each frame.
#[derive(Debug)]
pub struct ReportPlugin;

impl Plugin for ReportPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, (publish_view, stop_when_finished).chain().in_set(Stage::Report));
    }
}

/// Measures the frame and, four times a second, publishes the renderer's view of
/// itself for the API.
#[allow(clippy::too_many_arguments, reason = "a Bevy system takes what it touches")]
pub fn publish_view(
    mut timing: ResMut<Timing>,
    sink: Res<FrameSink>,
    library: Res<Library>,
    on_air: Res<OnAir>,
    overrides: Res<Overrides>,
    nodes: Query<(&draw::Node, &Visibility, Option<&Text2d>)>,
    inbox: Res<Inbox>,
    show: Res<Show>,
    files: Res<AssetFiles>,
    mut since: Local<Option<Instant>>,
    mut quality_at: Local<Option<Instant>>,
) {
    let now = Instant::now();
    if let Some(last) = timing.last {
        let secs = now.duration_since(last).as_secs_f64();
        metrics::histogram!("stream_frame_time_seconds").record(secs);
        timing.frame_times.push_back(secs * 1000.0);
        if timing.frame_times.len() > 300 {
            timing.frame_times.pop_front();
        }
    }
    timing.last = Some(now);
    timing.frame_ends.push_back(now);
    while timing.frame_ends.front().is_some_and(|end| now.duration_since(*end) > Duration::from_secs(1)) {
        timing.frame_ends.pop_front();
    }
    if since.is_some_and(|since| now.duration_since(since) < Duration::from_millis(250)) {
        return;
    }
    *since = Some(now);
    let mut sorted: Vec<f64> = timing.frame_times.iter().copied().collect();
    sorted.sort_by(f64::total_cmp);
    let stats = &sink.stats;
    let pushed = stats.frames_pushed.load(Ordering::Relaxed);
    let dropped = stats.frames_dropped.load(Ordering::Relaxed);
    let failed = stats.failed.lock().ok().and_then(|failed| failed.clone());
    let reports: Vec<output_pipeline::Report> = sink
        .shared
        .outputs
        .get()
        .and_then(|outputs| {
            outputs.lock().ok().map(|branches| branches.iter().map(|b| b.report().clone()).collect())
        })
        .unwrap_or_default();
    // Bitrate of each output over the last quarter second or more.
    let elapsed = timing.bytes_at.map_or(0.0, |at| now.duration_since(at).as_secs_f64());
    let outputs: Vec<api::OutputStatus> = reports
        .iter()
        .enumerate()
        .map(|(index, report)| {
            let before = timing.bytes.get(index).copied().unwrap_or(report.bytes);
            let kbps = if elapsed > 0.0 {
                report.bytes.saturating_sub(before) as f64 * 8.0 / 1000.0 / elapsed
            } else {
                0.0
            };
            api::OutputStatus {
                url: report.url.clone(),
                state: report.state,
                bitrate_kbps: kbps.round() as u32,
                reconnects: report.reconnects,
            }
        })
        .collect();
    timing.bytes = reports.iter().map(|report| report.bytes).collect();
    timing.bytes_at = Some(now);
    let state = if failed.is_some() {
        "error"
    } else if pushed == 0 {
        "idle"
    } else if outputs.iter().any(|output| output.state == OutputState::Live) {
        "live"
    } else if outputs.iter().any(|output| output.state == OutputState::Reconnecting) {
        "reconnecting"
    } else if outputs.iter().all(|output| output.state == OutputState::Stopped) {
        "idle"
    } else {
        "error"
    };
    let fps = timing.frame_ends.len() as f64;
    metrics::gauge!("stream_fps").set(fps);
    metrics::gauge!("stream_frames_rendered").set(pushed as f64);
    metrics::gauge!("stream_encoder_queue").set(stats.queued.load(Ordering::Relaxed) as f64);
    let encoding = timing.encoding;
    let mut delays: Vec<f64> =
        stats.speech_delays_ms.lock().map(|delays| delays.iter().copied().collect()).unwrap_or_default();
    delays.sort_by(f64::total_cmp);
    let status = api::Status {
        state,
        fps,
        frame_time_ms: api::Percentiles {
            p50: sothebais_kit::stats::percentile(&sorted, 0.5).unwrap_or(0.0),
            p99: sothebais_kit::stats::percentile(&sorted, 0.99).unwrap_or(0.0),
        },
        frames_rendered: pushed,
        frames_dropped: dropped,
        outputs,
        encoder: timing.encoder.clone(),
        resolution: format!("{}x{}", encoding.width, encoding.height),
        scene: on_air.scene.as_ref().map(|scene| scene.name.clone()).unwrap_or_default(),
        uptime_secs: timing.started.elapsed().as_secs(),
        following: timing.following,
        speech_delay_ms: (!delays.is_empty()).then(|| api::Percentiles {
            p50: sothebais_kit::stats::percentile(&delays, 0.5).unwrap_or(0.0),
            p99: sothebais_kit::stats::percentile(&delays, 0.99).unwrap_or(0.0),
        }),
        speech_lines: delays.len(),
    };
    let scenes = api::Scenes {
        active: status.scene.clone(),
        pinned: library.pinned().map(str::to_owned),
        scenes: library
            .list()
            .into_iter()
            .map(|(name, states, error)| api::SceneInfo {
                name,
                states,
                error: error.map(|error| error.to_string()),
            })
            .collect(),
    };
    let layers = layer_infos(&on_air, &overrides, &show, &files, &nodes);
    if let Some(why) = &failed
        && !timing.failed_reported
    {
        timing.failed_reported = true;
        error!("output failed: {why}");
    }
    // Every ten seconds, the figures as a `stream:quality` event.
    if let Some(outbox) = &inbox.outbox
        && quality_at.is_none_or(|at| now.duration_since(at) >= QUALITY_EVERY)
    {
        *quality_at = Some(now);
        let quality = StreamQuality {
            fps: status.fps,
            frame_time_ms_p50: status.frame_time_ms.p50,
            frame_time_ms_p99: status.frame_time_ms.p99,
            frames_dropped: status.frames_dropped,
            bitrate_kbps: status.outputs.iter().map(|output| f64::from(output.bitrate_kbps)).sum(),
        };
        send_event(outbox, EventType::StreamQuality, &quality);
    }
    if let Ok(mut view) = sink.shared.view.lock() {
        *view = api::View { status, layers, scenes };
    }
}

/// Ends the app once the output thread has finished (frame limit reached or failed)
/// or a signal asked to stop.
pub fn stop_when_finished(sink: Res<FrameSink>, inbox: Res<Inbox>, mut exit: MessageWriter<AppExit>) {
    if sink.stats.finished.load(Ordering::Relaxed) || inbox.stop.load(Ordering::Relaxed) {
        exit.write(AppExit::Success);
    }
}

/// A layer as the API lists it.
#[derive(Debug, Clone, serde::Serialize, schemars::JsonSchema)]
pub struct LayerInfo {
    pub id: String,
    pub kind: &'static str,
    pub visible: bool,
    pub z: f32,
    /// `[x, y, width, height]` in the scene's canvas units.
    pub rect: [f32; 4],
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    /// The picture an image layer shows (a path under the assets folder).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
}

/// The layers of the scene on air, as drawn now.
pub fn layer_infos(
    on_air: &OnAir,
    overrides: &Overrides,
    show: &Show,
    files: &AssetFiles,
    nodes: &Query<(&draw::Node, &Visibility, Option<&Text2d>)>,
) -> Vec<LayerInfo> {
    let Some(scene) = on_air.scene.as_ref() else { return Vec::new() };
    let mut infos: Vec<LayerInfo> = scene
        .layers
        .iter()
        .map(|layer| {
            let (x, y) = match layer.at {
                Position::Point(x, y) => (x, y),
                Position::Named(anchor) => {
                    let (fx, fy) = anchor.fraction();
                    (fx * scene.canvas[0], fy * scene.canvas[1])
                }
            };
            let [w, h] = layer.size.unwrap_or([0.0, 0.0]);
            let (fx, fy) = layer.anchor.fraction();
            let patch = overrides.0.get(&layer.id);
            let (x, y) = patch.and_then(|patch| patch.position).map_or((x, y), |[x, y]| (x, y));
            let image = (layer.kind == LayerKind::Image)
                .then(|| {
                    let now = chrono::Utc::now();
                    let (first, fallback) = draw::image_sources(layer, |name| show.field(name, now));
                    first.filter(|path| files.has_image(path)).or(fallback)
                })
                .flatten();
            LayerInfo {
                id: layer.id.clone(),
                kind: layer.kind.as_str(),
                visible: false,
                z: patch.and_then(|patch| patch.z).unwrap_or(layer.z),
                rect: [x + layer.offset[0] - fx * w, y + layer.offset[1] - fy * h, w, h],
                text: None,
                image,
            }
        })
        .collect();
    for (node, visibility, text) in nodes.iter() {
        let Some(info) = infos.get_mut(node.layer) else { continue };
        info.visible |= *visibility != Visibility::Hidden;
        if let Some(text) = text.filter(|text| !text.0.is_empty()) {
            match &mut info.text {
                Some(joined) => {
                    joined.push('\n');
                    joined.push_str(&text.0);
                }
                None => info.text = Some(text.0.clone()),
            }
        }
    }
    infos
}
