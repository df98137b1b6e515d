//! `sothebais-renderer`: draws the show offscreen with Bevy (no window, no display
//! server) and pushes every frame through GStreamer to the outputs.
//!
//! This first slice draws the default broadcast scene from its built-in state and
//! writes files or RTMP streams; following the backend's events, scene files and the
//! stream manager API come next (see docs/renderer.md).

#![allow(elided_lifetimes_in_paths, reason = "Bevy system parameters read better without their lifetimes")]

mod output;
mod scene;
mod show;

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::time::Duration;

use bevy::app::ScheduleRunnerPlugin;
use bevy::camera::RenderTarget;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::window::ExitCondition;
use clap::Parser;

use crate::output::{Encoding, Output, OutputStats, Pipeline};
use crate::scene::Canvas;
use crate::show::{Phase, Show, TickerBid};

/// The SothebAIs renderer.
#[derive(Debug, Parser)]
#[command(name = "sothebais-renderer", version, about)]
struct Cli {
    /// Output: rtmp://, rtmps:// or a .mp4/.mkv/.flv file (repeatable)
    #[arg(long, value_name = "URL", env = "STREAM_OUTPUTS", value_delimiter = ',', required = true)]
    output: Vec<String>,
    /// x (1280×720@30), youtube, twitch, 1080p60
    #[arg(long, env = "STREAM_PRESET", default_value = "x")]
    preset: String,
    /// Override the preset's width (a multiple of 64 avoids row padding)
    #[arg(long)]
    width: Option<u32>,
    /// Override the preset's height
    #[arg(long)]
    height: Option<u32>,
    /// Override the preset's frame rate
    #[arg(long)]
    fps: Option<u32>,
    /// auto (nvh264enc when present, else x264enc), nvenc or x264
    #[arg(long, env = "STREAM_ENCODER", default_value = "auto")]
    encoder: String,
    /// Stop after this many frames (recordings, tests); default: run until stopped
    #[arg(long)]
    frames: Option<u64>,
}

/// Where rendered frames go: to the output thread, dropped when it falls behind.
#[derive(Resource)]
struct FrameSink {
    sender: SyncSender<Vec<u8>>,
    stats: Arc<OutputStats>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            #[expect(clippy::print_stderr, reason = "the binary's one-line reason for exiting")]
            {
                eprintln!("sothebais-renderer: {error:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut encoding = Encoding::preset(&cli.preset)
        .ok_or_else(|| anyhow::anyhow!("unknown preset {:?}: x, youtube, twitch or 1080p60", cli.preset))?;
    encoding.width = cli.width.unwrap_or(encoding.width);
    encoding.height = cli.height.unwrap_or(encoding.height);
    encoding.fps = cli.fps.unwrap_or(encoding.fps).max(1);
    let outputs = cli
        .output
        .iter()
        .map(|text| Output::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    output::check_system()?;
    let encoder = output::pick_encoder(&cli.encoder)?;
    let pipeline = Pipeline::start(encoding, encoder, &outputs, cli.frames)?;
    eprintln_outputs(&outputs, encoder, &encoding);

    let stats = Arc::new(OutputStats::default());
    // Two frames of slack: the render loop never waits for the encoder.
    let (sender, frames): (SyncSender<Vec<u8>>, Receiver<Vec<u8>>) = sync_channel(2);
    let padded_row = (encoding.width as usize * 4).div_ceil(256) * 256;
    let writer = {
        let stats = stats.clone();
        std::thread::spawn(move || pipeline.run(frames, padded_row, cli.frames, stats))
    };

    let mut app = App::new();
    app.add_plugins((
        DefaultPlugins
            .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
            .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() }),
        ScheduleRunnerPlugin::run_loop(Duration::from_secs_f64(1.0 / f64::from(encoding.fps))),
    ))
    .insert_resource(Canvas { width: encoding.width, height: encoding.height })
    .insert_resource(demo_show())
    .insert_resource(FrameSink { sender, stats: stats.clone() })
    .add_systems(Startup, (setup_target, scene::spawn))
    .add_systems(Update, (scene::update_texts, scene::start_pulse, scene::animate_pulse, stop_when_finished));
    app.run();
    // Dropping the app closes the frame channel: the output thread then ends the
    // streams and finalises the files (also after Ctrl-C, which Bevy turns into an exit).
    drop(app);
    writer.join().map_err(|_| anyhow::anyhow!("the output thread panicked"))??;
    Ok(())
}

#[expect(clippy::print_stderr, reason = "start-up summary for the operator")]
fn eprintln_outputs(outputs: &[Output], encoder: &str, encoding: &Encoding) {
    for output in outputs {
        eprintln!(
            "sothebais-renderer: output {} ({}x{}@{} {encoder} {} kbps)",
            output.masked(),
            encoding.width,
            encoding.height,
            encoding.fps,
            encoding.bitrate_kbps
        );
    }
}

/// The state shown until the renderer follows the backend's events.
fn demo_show() -> Show {
    let mut show = Show {
        title: "Lot 1 - Genesis #0042".into(),
        phase: Phase::Open,
        ends_at: Some(chrono::Utc::now() + chrono::TimeDelta::seconds(90)),
        caption: Some("Welcome to the show! Reply to bid.".into()),
        ..Show::default()
    };
    for (handle, amount) in [("alice", "1.2"), ("bob", "1.35"), ("carol", "1.5")] {
        show.accept(TickerBid { handle: handle.into(), amount: amount.into() });
    }
    show
}

/// The camera renders into an image that is read back every frame.
fn setup_target(mut commands: Commands, mut images: ResMut<Assets<Image>>, canvas: Res<Canvas>) {
    let mut image =
        Image::new_target_texture(canvas.width, canvas.height, TextureFormat::Rgba8UnormSrgb, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let handle = images.add(image);
    commands.spawn((Camera2d, Msaa::Off, RenderTarget::Image(handle.clone().into()), IsDefaultUiCamera));
    commands.spawn(Readback::texture(handle)).observe(|frame: On<ReadbackComplete>, sink: Res<FrameSink>| {
        if sink.sender.try_send(frame.data.clone()).is_err() {
            sink.stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
        }
    });
}

/// Ends the app once the output thread has finished (frame limit reached or failed).
fn stop_when_finished(sink: Res<FrameSink>, mut exit: MessageWriter<AppExit>) {
    if sink.stats.finished.load(Ordering::Relaxed) {
        exit.write(AppExit::Success);
    }
}
