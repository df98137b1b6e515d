//! Capture: the camera that draws each frame into an image, the conversion pass
//! (`convert.rs`) that turns it into I420 planes on the GPU, and the read-back that
//! hands every frame to the output thread and the API.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::SyncSender;
use std::time::Instant;

use bevy::asset::RenderAssetUsages;
use bevy::camera::{CameraMainTextureUsages, CameraOutputMode, CompositingSpace, RenderTarget};
use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::storage::ShaderBuffer;

use crate::api::{Frame, Shared};
use crate::convert;
use crate::output::OutputStats;
use crate::report::Timing;
use crate::scene::draw::Canvas;

/// Where rendered frames go: to the output thread, dropped when it falls behind.
#[derive(Resource)]
pub struct FrameSink {
    pub sender: SyncSender<Arc<Vec<u8>>>,
    pub stats: Arc<OutputStats>,
    pub shared: Arc<Shared>,
    pub width: u32,
    pub height: u32,
}

/// The frame camera and its read-back, on top of the conversion pass.
#[derive(Debug)]
pub struct CapturePlugin;

impl Plugin for CapturePlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins(convert::ConvertPlugin).add_systems(Startup, setup_target);
    }
}

/// The camera draws the frame; the conversion pass (`convert.rs`) turns it into I420
/// planes in a storage buffer, and that buffer is read back every frame.
pub fn setup_target(
    mut commands: Commands,
    mut images: ResMut<Assets<Image>>,
    mut buffers: ResMut<Assets<ShaderBuffer>>,
    canvas: Res<Canvas>,
) {
    // The camera's own target only sizes the view: its output is never written.
    let image = Image::new_target_texture(canvas.width, canvas.height, TextureFormat::Rgba8UnormSrgb, None);
    let handle = images.add(image);
    let planes = buffers.add(ShaderBuffer::with_size(
        convert::i420_len(canvas.width, canvas.height),
        RenderAssetUsages::RENDER_WORLD,
    ));
    commands.insert_resource(convert::Planes(planes.clone()));
    commands.spawn((
        Camera2d,
        // The conversion pass clears the frame (see convert.rs) and reads it.
        Camera { output_mode: CameraOutputMode::Skip, clear_color: ClearColorConfig::None, ..default() },
        Msaa::Off,
        // Blending in gamma space, as image editors and browsers do: the main texture
        // then holds the encoded colours the conversion pass reads as they are (no
        // sRGB decode and encode per pixel, which a CPU rasterizer pays dearly for).
        CompositingSpace::Srgb,
        // Each frame starts as a copy of the backdrop (scene/backdrop.rs).
        CameraMainTextureUsages::default().with(TextureUsages::COPY_DST),
        RenderTarget::Image(handle.into()),
        IsDefaultUiCamera,
        convert::FrameCamera,
    ));
    commands.spawn(Readback::buffer(planes)).observe(
        |mut frame: On<ReadbackComplete>,
         sink: Res<FrameSink>,
         count: Res<FrameCount>,
         mut timing: ResMut<Timing>| {
            // Until the conversion pass has run, the planes hold zeros (converted luma
            // is never below 16): no frame has been drawn yet, so none goes out.
            if frame.data.first().is_none_or(|luma| *luma < 16) {
                return;
            }
            let data = Arc::new(std::mem::take(&mut frame.event_mut().data));
            timing.readbacks += 1;
            if let Ok(mut first) = sink.stats.first_frame.lock()
                && first.is_none()
            {
                *first = Some((Instant::now(), process_cpu_secs()));
            }
            if let Ok(mut latest) = sink.shared.frame.lock() {
                *latest = Some(Frame {
                    data: data.clone(),
                    width: sink.width,
                    height: sink.height,
                    number: timing.readbacks,
                });
            }
            if sink.sender.try_send(data).is_err() {
                sink.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                metrics::counter!("stream_frames_dropped_total").increment(1);
            }
            // An event applied in update N is drawn by the render of N (one frame
            // later with pipelined rendering) and read back after that.
            let now = Instant::now();
            timing.unseen.retain(|(arrival, applied)| {
                if count.0 >= applied.saturating_add(2) {
                    metrics::histogram!("stream_event_to_pixel_seconds").record(now.duration_since(*arrival));
                    false
                } else {
                    true
                }
            });
        },
    );
}

/// CPU seconds (user + system) this process has used, from `/proc` (0 elsewhere).
pub fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, in clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}
