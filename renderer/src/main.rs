//! `sothebais-renderer`: draws the show offscreen with Bevy (no window, no display
//! server) and pushes every frame through GStreamer to the outputs. It follows the
//! backend's auctions and host (snapshot + events), draws the scene files under
//! `scenes/` (reloaded when saved), and serves the stream manager API.

#![allow(elided_lifetimes_in_paths, reason = "Bevy system parameters read better without their lifetimes")]

mod api;
mod bridge;
mod builtin;
mod capture;
mod character;
mod clips;
mod convert;
mod files;
mod follow;
mod frame_cache;
mod output;
mod output_pipeline;
mod publish;
mod report;
mod scene;
mod show;
mod sound;
mod stage;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::app::{PluginsState, TerminalCtrlCHandlerPlugin};
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::window::ExitCondition;
use clap::Parser;
use secrecy::SecretString;
use sothebais_kit::telemetry::LogFormat;
use sothebais_shared::events::{EventType, StreamClip, StreamEnded, StreamStarted};
use sothebais_shared::ports::{PortBlock, defaults};

use crate::api::Shared;
use crate::bridge::{Inbox, send_event};
use crate::capture::{FrameSink, process_cpu_secs};
use crate::output::{Encoding, Output, OutputStats, Pipeline};
use crate::report::Timing;
use crate::scene::draw::Canvas;
use crate::scene::library::{Change, Library};
use crate::sound::Sounds;
use sothebais_kit::shutdown::{StoppedAtOnce, Supervisor};

/// The SothebAIs renderer.
#[derive(Debug, Parser)]
#[command(name = "sothebais-renderer", version, about)]
struct Cli {
    /// Output: rtmp://, rtmps:// or a .mp4/.mkv/.flv file (repeatable); default: a
    /// recording at <data dir>/recordings/show-<time>.mkv
    #[arg(long, value_name = "URL", env = "STREAM_OUTPUTS", value_delimiter = ',', hide_env_values = true)]
    output: Vec<String>,
    /// x (1280×720@30), youtube, twitch, 1080p60
    #[arg(long, env = "STREAM_PRESET", default_value = "x")]
    preset: String,
    /// Override the preset's width (a multiple of 8; frames are encoded 4:2:0)
    #[arg(long)]
    width: Option<u32>,
    /// Override the preset's height (even)
    #[arg(long)]
    height: Option<u32>,
    /// Override the preset's frame rate
    #[arg(long)]
    fps: Option<u32>,
    /// auto (NVENC when an encoder session opens, else x264), nvenc or x264
    #[arg(long, env = "STREAM_ENCODER", default_value = "auto")]
    encoder: String,
    /// Override the preset's video bitrate (kbps, constant)
    #[arg(long, env = "STREAM_BITRATE_KBPS", value_parser = clap::value_parser!(u32).range(100..=50_000))]
    bitrate_kbps: Option<u32>,
    /// Override the preset's keyframe interval (seconds)
    #[arg(long, env = "STREAM_KEYFRAME_SECS", value_parser = clap::value_parser!(u32).range(1..=10))]
    keyframe_secs: Option<u32>,
    /// Seconds of stream kept for winning-moment clips (written to <data dir>/clips
    /// when a lot is sold); 0 writes none
    #[arg(long, env = "STREAM_CLIP_SECS", default_value_t = 20, value_parser = clap::value_parser!(u64).range(0..=120))]
    clip_secs: u64,
    /// Stop after this many frames (recordings, tests); default: run until stopped
    #[arg(long)]
    frames: Option<u64>,
    /// Render as fast as the machine allows instead of at --fps (benchmarks and
    /// offline recordings; clocks and animations still follow the wall clock)
    #[arg(long, requires = "frames")]
    unpaced: bool,
    /// The backend (the gateway) to take snapshots from and follow events of
    #[arg(long, env = "SOTHEBAIS_BACKEND_URL", default_value = "http://127.0.0.1:3000")]
    backend: String,
    /// Draw the scenes without following a backend
    #[arg(long)]
    no_follow: bool,
    /// Follow events from Redis Streams instead of the backend's WebSocket
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    redis_url: Option<String>,
    /// Prefix of the backend's Redis keys
    #[arg(long, env = "REDIS_KEY_PREFIX", default_value = "")]
    redis_key_prefix: String,
    /// The folder of scene files (watched: a saved file goes on air within a second)
    #[arg(long, env = "STREAM_SCENES_DIR", default_value = "scenes")]
    scenes: PathBuf,
    /// Put this scene on air whatever the auction's state (a name or scenes/NAME.toml)
    #[arg(long)]
    scene: Option<String>,
    /// The folder of images, fonts and sounds (uploads and downloaded lot images land
    /// here); default: `assets` beside the binary, else `assets` here. Fonts, the lot
    /// placeholder and the sounds missing from it are built in
    #[arg(long, env = "STREAM_ASSETS_DIR")]
    assets: Option<PathBuf>,
    /// Address every listener of the stream manager binds (0.0.0.0 in containers)
    #[arg(long, alias = "host", env = "SOTHEBAIS_BIND", default_value = "127.0.0.1")]
    bind: std::net::IpAddr,
    /// Stream manager API port (0 picks a free one)
    #[arg(long, env = "STREAM_MANAGER_PORT", default_value_t = defaults::STREAM_MANAGER)]
    port: u16,
    /// Stream manager WebSocket port
    #[arg(long, env = "STREAM_MANAGER_WS_PORT", default_value_t = defaults::STREAM_MANAGER + 1)]
    ws_port: u16,
    /// Prometheus metrics port
    #[arg(long, env = "STREAM_MANAGER_METRICS_PORT", default_value_t = defaults::STREAM_MANAGER + 90)]
    metrics_port: u16,
    /// Health port
    #[arg(long, env = "STREAM_MANAGER_HEALTH_PORT", default_value_t = defaults::STREAM_MANAGER + 91)]
    health_port: u16,
    /// pretty or json (one JSON object per line)
    #[arg(long, env = "LOG_FORMAT", default_value = "pretty")]
    log_format: LogFormat,
    /// Log filter
    #[arg(long, env = "RUST_LOG", default_value = "info,wgpu=error,naga=warn")]
    log_filter: String,
    /// The backend's data folder, where its token secret (`jwt_secret`) lives
    #[arg(long, env = "SOTHEBAIS_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    /// The backend's token secret (instead of the data folder's file; at least 16 characters)
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, value_parser = sothebais_kit::access::parse_secret)]
    jwt_secret: Option<SecretString>,
    /// Also accept RS256 operator tokens from this OIDC provider's JWKS
    #[arg(long, env = "AUTH_JWKS_URL")]
    auth_jwks_url: Option<String>,
}

/// The whole app: the stages and each concern's plugin (Bevy's own plugins and the
/// resources made from the command line are added beside it in [`run`]).
#[derive(Debug)]
struct RendererPlugin {
    scenes: PathBuf,
    assets: PathBuf,
}

impl Plugin for RendererPlugin {
    fn build(&self, app: &mut App) {
        app.add_plugins((
            stage::StagesPlugin,
            bridge::BridgePlugin,
            scene::ScenePlugin { scenes: self.scenes.clone(), assets: self.assets.clone() },
            character::CharacterPlugin,
            sound::SoundPlugin,
            capture::CapturePlugin,
            report::ReportPlugin,
        ));
    }
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

/// The scene name from `--scene` (`sold`, `scenes/sold`, `scenes/sold.toml`).
fn scene_name(arg: &str) -> String {
    let path = std::path::Path::new(arg);
    path.file_stem().map_or_else(|| arg.to_owned(), |stem| stem.to_string_lossy().into_owned())
}

fn run(cli: Cli) -> anyhow::Result<()> {
    // Our subscriber, not Bevy's: `LOG_FORMAT` and `RUST_LOG` apply, and the listeners'
    // lines are logged before the app starts.
    sothebais_kit::telemetry::init(cli.log_format, &cli.log_filter);
    let mut encoding = Encoding::preset(&cli.preset)
        .ok_or_else(|| anyhow::anyhow!("unknown preset {:?}: x, youtube, twitch or 1080p60", cli.preset))?;
    encoding.width = cli.width.unwrap_or(encoding.width);
    encoding.height = cli.height.unwrap_or(encoding.height);
    encoding.fps = cli.fps.unwrap_or(encoding.fps).max(1);
    encoding.bitrate_kbps = cli.bitrate_kbps.unwrap_or(encoding.bitrate_kbps);
    encoding.keyframe_secs = cli.keyframe_secs.unwrap_or(encoding.keyframe_secs);
    if !convert::size_is_supported(encoding.width, encoding.height) {
        anyhow::bail!(
            "{}x{}: the width must be a multiple of 8 and the height even (frames are encoded as 4:2:0)",
            encoding.width,
            encoding.height
        );
    }
    let given =
        if cli.output.is_empty() { vec![default_recording(&cli.data_dir)?] } else { cli.output.clone() };
    let outputs = given
        .iter()
        .map(|text| Output::parse(text))
        .collect::<Result<Vec<_>, _>>()
        .map_err(anyhow::Error::msg)?;
    output::check_system()?;
    let encoder = output::pick_encoder(&cli.encoder)?;

    let binary = std::env::current_exe().ok();
    let (assets, found) =
        builtin::find_folder(cli.assets.clone(), binary.as_deref(), &std::env::current_dir()?);
    if found {
        info!("assets from {}", assets.display());
    } else {
        eprintln_line(&format!(
            "no assets folder at {}: the built-in fonts, lot placeholder and sounds are used",
            assets.display()
        ));
    }
    // A first look at the scenes, to say at once what is wrong and to check the pin;
    // from here on the file watcher reads them (`files.rs`).
    let (mut checked, changes) = Library::open(&cli.scenes);
    for change in &changes {
        match change {
            Change::Invalid(error) => eprintln_line(&format!("scene error (skipped until fixed): {error}")),
            Change::MissingAsset(error) => eprintln_line(&format!("scene asset missing: {error}")),
            Change::Loaded(_) | Change::Removed(_) => {}
        }
    }
    let pin = cli.scene.as_ref().map(|scene| scene_name(scene));
    checked.pin(pin.clone()).map_err(anyhow::Error::msg)?;
    let library = Library::pinned_to(pin);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .thread_name("sothebais-io")
        .enable_all()
        .build()?;
    let prometheus = sothebais_kit::metrics::recorder()?;
    let secret = sothebais_kit::access::read_secret(cli.jwt_secret.as_ref(), &cli.data_dir)?;
    let auth = (secret.is_some() || cli.auth_jwks_url.is_some()).then(|| {
        Arc::new(sothebais_kit::access::Authenticator::new(
            secret.as_ref().map(|secret| secrecy::ExposeSecret::expose_secret(secret).as_bytes()),
            cli.auth_jwks_url.clone(),
            reqwest::Client::new(),
        ))
    });
    let stats = Arc::new(OutputStats::default());
    let (command_sender, commands) = std::sync::mpsc::channel();
    let shared = Arc::new(Shared {
        view: Mutex::new(api::View::default()),
        frame: Mutex::new(None),
        frames: frame_cache::FrameCache::default(),
        sockets: std::sync::atomic::AtomicUsize::new(0),
        commands: Mutex::new(command_sender),
        stats: stats.clone(),
        auth,
        prometheus,
        outputs: std::sync::OnceLock::new(),
        assets: assets.clone(),
        recordings: cli.data_dir.join("recordings"),
        clips: cli.data_dir.join("clips"),
        started: Instant::now(),
    });
    let ports =
        PortBlock { api: cli.port, ws: cli.ws_port, metrics: cli.metrics_port, health: cli.health_port };
    // Every task stops on one signal, stage by stage, each logged (`stopping
    // stage=…`): the app and its outputs first (the recording finalised), then the
    // API, the follower, and last the publisher with the final `stream:*` events. A
    // second signal exits at once.
    let _entered = runtime.enter();
    let mut supervisor = Supervisor::new();
    let render_stage = supervisor.stage("render");
    let listeners_stage = supervisor.stage("listeners");
    let follower_stage = supervisor.stage("follower");
    let publisher_stage = supervisor.stage("publisher");
    for listener in runtime.block_on(api::bind(shared.clone(), cli.bind, ports))? {
        let name = format!("stream manager {}", listener.kind);
        supervisor.spawn(listeners_stage, name, |stop| listener.serve(stop.cancelled_owned()));
    }

    let (feed_sender, feed) = std::sync::mpsc::channel();
    let outbox = if cli.no_follow {
        None
    } else {
        let source = match &cli.redis_url {
            Some(url) => follow::Source::Redis { url: url.clone(), prefix: cli.redis_key_prefix.clone() },
            None => follow::Source::WebSocket,
        };
        let follow = follow::run(cli.backend.clone(), source.clone(), assets.clone(), feed_sender);
        supervisor.spawn(follower_stage, "follower", |stop| async move {
            tokio::select! {
                // It ends when the app is gone: that is no failure, the stop follows.
                () = follow => stop.cancelled().await,
                () = stop.cancelled() => {}
            }
            Ok(())
        });
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        let backend = cli.backend.clone();
        supervisor.spawn(publisher_stage, "publisher", |stop| async move {
            publish::run(backend, source, secret, receiver, stop.clone()).await;
            stop.cancelled().await;
            Ok(())
        });
        Some(sender)
    };
    // The render stage: tells the app to stop and waits until its outputs are final.
    let stop = Arc::new(AtomicBool::new(false));
    let (finalised, outputs_final) = tokio::sync::oneshot::channel::<()>();
    {
        let stop = stop.clone();
        supervisor.spawn(render_stage, "app and outputs", |token| async move {
            token.cancelled().await;
            stop.store(true, Ordering::Relaxed);
            let _ = outputs_final.await;
            Ok(())
        });
    }
    let (end_of_show, internal) = sothebais_kit::shutdown::channel_signals();
    let signals = futures::stream::select(
        anyhow::Context::context(sothebais_kit::shutdown::signals(), "listening for SIGINT and SIGTERM")?,
        internal,
    );
    let supervised = runtime.spawn(async move {
        match supervisor.run(signals).await {
            Ok(()) => Ok(()),
            Err(error) if error.downcast_ref::<StoppedAtOnce>().is_some() => {
                warn!("{error}: exiting; the outputs are not finalised");
                std::process::exit(130);
            }
            Err(error) => Err(error),
        }
    });

    let clips = if cli.clip_secs == 0 {
        None
    } else {
        let cut = clips::Cut::new(
            Duration::from_secs(cli.clip_secs),
            Duration::from_secs(u64::from(encoding.keyframe_secs)),
        );
        let outbox = outbox.clone();
        let announce = move |clip: &clips::ClipInfo| {
            if let Some(outbox) = &outbox {
                let data = StreamClip {
                    auction_id: clip.auction_id,
                    path: clip.path.clone(),
                    duration_ms: clip.duration_ms,
                };
                send_event(outbox, EventType::StreamClip, &data);
            }
        };
        Some(Arc::new(clips::Clips::start(cli.data_dir.join("clips"), cut, announce)?))
    };
    let pipeline = Pipeline::start(encoding, encoder, &outputs, cli.frames, clips.clone())?;
    let _ = shared.outputs.set(pipeline.outputs());
    let masked: Vec<String> = outputs.iter().map(Output::masked).collect();
    for url in &masked {
        eprintln_line(&format!(
            "output {url} ({}x{}@{} {encoder} {} kbps)",
            encoding.width, encoding.height, encoding.fps, encoding.bitrate_kbps
        ));
    }

    // Two frames of slack: the render loop never waits for the encoder.
    let (sender, frames) = sync_channel(2);
    let (sound_sender, sounds) = std::sync::mpsc::channel();
    let writer = {
        let stats = stats.clone();
        std::thread::spawn(move || {
            let result = pipeline.run(frames, sounds, cli.frames, stats.clone());
            if let Err(error) = &result
                && let Ok(mut failed) = stats.failed.lock()
            {
                *failed = Some(format!("{error:#}"));
            }
            stats.finished.store(true, Ordering::Relaxed);
            result
        })
    };

    let mut app = App::new();
    app.add_plugins((
        DefaultPlugins
            .set(WindowPlugin { primary_window: None, exit_condition: ExitCondition::DontExit, ..default() })
            .set(RenderPlugin { synchronous_pipeline_compilation: true, ..default() })
            .disable::<TerminalCtrlCHandlerPlugin>()
            .disable::<bevy::log::LogPlugin>(),
        RendererPlugin { scenes: cli.scenes.clone(), assets: assets.clone() },
    ))
    .set_runner(grid_runner(if cli.unpaced { None } else { Some(output::slot(encoding.fps)) }))
    // What the Tokio side and the output thread are reached through, made above.
    .insert_resource(Canvas { width: encoding.width, height: encoding.height })
    .insert_resource(library)
    .insert_resource(FrameSink {
        sender,
        stats: stats.clone(),
        shared: shared.clone(),
        width: encoding.width,
        height: encoding.height,
    })
    .insert_resource(Sounds { bank: sound::Bank::default(), sender: sound_sender })
    .insert_resource(Inbox {
        feed: Mutex::new(feed),
        commands: Mutex::new(commands),
        outbox: outbox.clone(),
        stop: stop.clone(),
        clips,
    })
    .insert_resource(Timing::new(encoder, encoding));
    if let Some(outbox) = &outbox {
        let started = StreamStarted {
            outputs: masked,
            resolution: format!("{}x{}", encoding.width, encoding.height),
            fps: encoding.fps,
            encoder: encoder.to_owned(),
        };
        send_event(outbox, EventType::StreamStart, &started);
    }
    app.run();
    // The runner has dropped the app (and with it the frame channel): the output
    // thread ends the streams and finalises the files (also after SIGINT or SIGTERM).
    let result = writer.join().map_err(|_| anyhow::anyhow!("the output thread panicked"))?;
    let frames_rendered = stats.frames_pushed.load(Ordering::Relaxed);
    // (`app.run()` hands the app to the runner: what is left here is empty.)
    if let Some((first, cpu)) = stats.first_frame.lock().ok().and_then(|first| *first) {
        let secs = first.elapsed().as_secs_f64();
        eprintln_line(&format!(
            "rendered {frames_rendered} frames in {secs:.2} s ({:.1} fps), {} dropped, {:.2} CPU s",
            frames_rendered as f64 / secs.max(0.001),
            stats.frames_dropped.load(Ordering::Relaxed),
            process_cpu_secs() - cpu,
        ));
    }
    if let Some(outbox) = &outbox {
        let reason = match &result {
            Ok(()) => "stopped".to_owned(),
            Err(error) => format!("{error:#}"),
        };
        send_event(outbox, EventType::StreamEnd, &StreamEnded { reason, frames_rendered });
    }
    // The app ended (a signal, the frame count, the outputs done): the stages after
    // the render stage stop now, the publisher last with `stream:end`.
    let _ = finalised.send(());
    if !stop.load(Ordering::Relaxed) {
        // Not stopped by a signal: the stop starts here.
        let _ = end_of_show.send("the end of the show");
    }
    drop(outbox);
    let stopped = runtime.block_on(async { tokio::time::timeout(Duration::from_secs(10), supervised).await });
    match stopped {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(error))) => warn!("{error:#}"),
        Ok(Err(error)) => warn!("the supervisor: {error}"),
        Err(_) => warn!("the tasks did not stop within 10 s"),
    }
    drop(_entered);
    runtime.shutdown_timeout(Duration::from_secs(1));
    result
}

/// The recording made when no output is given: `<data dir>/recordings/show-<UTC time>.mkv`.
fn default_recording(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let folder = data_dir.join("recordings");
    // (The same folder recordings started through the API go to: `Shared::recordings`.)
    std::fs::create_dir_all(&folder)
        .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", folder.display()))?;
    let name = format!("show-{}.mkv", chrono::Utc::now().format("%Y%m%dT%H%M%SZ"));
    Ok(folder.join(name).display().to_string())
}

/// Runs the app's updates on the grid of output slots: update k starts at
/// `start + k × slot` (or at once, unpaced). Sleeping "one slot after the last
/// update" overshoots a little every time, so such a loop runs slightly slower than
/// the output's clock and now and then a slot has no new frame.
fn grid_runner(slot: Option<Duration>) -> impl FnOnce(App) -> AppExit {
    move |mut app: App| {
        if app.plugins_state() != PluginsState::Cleaned {
            while app.plugins_state() == PluginsState::Adding {
                bevy::tasks::tick_global_task_pools_on_main_thread();
            }
            app.finish();
            app.cleanup();
        }
        let mut grid = slot.map(|slot| Grid::new(slot, Instant::now()));
        loop {
            app.update();
            if let Some(exit) = app.should_exit() {
                return exit;
            }
            if let Some(grid) = grid.as_mut()
                && let Some(pause) = grid.after_update(Instant::now())
            {
                std::thread::sleep(pause);
            }
        }
    }
}

/// The deadlines of a paced loop: one every `slot` from the start, whatever each
/// update took.
struct Grid {
    slot: Duration,
    next: Instant,
}

impl Grid {
    fn new(slot: Duration, start: Instant) -> Grid {
        Grid { slot, next: start }
    }

    /// How long to wait before the next update, given the time an update ended. An
    /// update that overran its slot is followed at once; one that fell more than a
    /// slot behind starts the grid again from now rather than rushing to catch up.
    fn after_update(&mut self, now: Instant) -> Option<Duration> {
        self.next += self.slot;
        if self.next > now {
            return Some(self.next - now);
        }
        if now - self.next > self.slot {
            self.next = now;
        }
        None
    }
}

#[expect(clippy::print_stderr, reason = "start-up lines for the operator")]
fn eprintln_line(line: &str) {
    eprintln!("sothebais-renderer: {line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_paced_loop_keeps_to_its_grid_whatever_each_update_takes() {
        let slot = Duration::from_nanos(33_333_333);
        let start = Instant::now();
        let mut grid = Grid::new(slot, start);
        let mut now = start;
        for frame in 1..=300u32 {
            // Updates of 10 to 30 ms, each followed by the pause the grid asks for
            // plus a sleep that overshoots by 0.2 ms.
            now += Duration::from_millis(10 + u64::from(frame % 21));
            let pause = grid.after_update(now).expect("the update fits in its slot");
            now += pause + Duration::from_micros(200);
            assert_eq!(grid.next, start + slot * frame, "no drift at frame {frame}");
        }
    }

    #[test]
    fn an_overrun_is_followed_at_once_and_a_long_stall_restarts_the_grid() {
        let slot = Duration::from_millis(33);
        let start = Instant::now();
        let mut grid = Grid::new(slot, start);
        assert_eq!(grid.after_update(start + Duration::from_millis(40)), None, "7 ms late: go at once");
        assert_eq!(grid.next, start + slot);
        let stalled = start + Duration::from_millis(500);
        assert_eq!(grid.after_update(stalled), None);
        assert_eq!(grid.next, stalled, "no burst of catch-up frames after a stall");
        assert_eq!(grid.after_update(stalled + Duration::from_millis(3)), Some(Duration::from_millis(30)));
    }
}
