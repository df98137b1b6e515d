//! `sothebais-renderer`: draws the show offscreen with Bevy (no window, no display
//! server) and pushes every frame through GStreamer to the outputs. It follows the
//! backend's auctions and host (snapshot + events), draws the scene files under
//! `scenes/` (reloaded when saved), and serves the stream manager API.

#![allow(elided_lifetimes_in_paths, reason = "Bevy system parameters read better without their lifetimes")]

mod api;
mod branch;
mod character;
mod clips;
mod convert;
mod follow;
mod frame_cache;
mod output;
mod scene;
mod show;
mod sound;

use std::collections::VecDeque;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::app::{PluginsState, TerminalCtrlCHandlerPlugin};
use bevy::asset::RenderAssetUsages;
use bevy::camera::{CameraMainTextureUsages, CameraOutputMode, CompositingSpace, RenderTarget};
use bevy::diagnostic::FrameCount;
use bevy::prelude::*;
use bevy::render::RenderPlugin;
use bevy::render::gpu_readback::{Readback, ReadbackComplete};
use bevy::render::render_resource::{TextureFormat, TextureUsages};
use bevy::render::storage::ShaderBuffer;
use bevy::window::ExitCondition;
use clap::Parser;
use secrecy::SecretString;
use sothebais_kit::telemetry::LogFormat;
use sothebais_shared::auction::OutcomeResult;
use sothebais_shared::events::{
    AuctionSnapshot, AuctionWinner, Envelope, EventType, Source as EventSource, StreamAssetLoaded, StreamClip, StreamEnded,
    StreamErrorData, StreamQuality, StreamSceneUpdate, StreamStarted,
};
use sothebais_shared::ports::{PortBlock, defaults};

use crate::api::{Command, Frame, Shared};
use crate::follow::Feed;
use crate::output::{Encoding, Output, OutputStats, Pipeline};
use crate::scene::backdrop;
use crate::scene::draw::{self as draw, AssetFiles, Canvas, News, OnAir, Overrides, SceneNews};
use crate::scene::library::{Change, Library};
use crate::show::Show;

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
    /// The folder of images, fonts and sounds (uploads and downloaded lot images land here)
    #[arg(long, env = "STREAM_ASSETS_DIR", default_value = "assets")]
    assets: PathBuf,
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

/// Where rendered frames go: to the output thread, dropped when it falls behind.
#[derive(Resource)]
struct FrameSink {
    sender: SyncSender<Arc<Vec<u8>>>,
    stats: Arc<OutputStats>,
    shared: Arc<Shared>,
    width: u32,
    height: u32,
}

/// The channels from the Tokio side: the follower's feed and the API's commands.
#[derive(Resource)]
struct Inbox {
    feed: Mutex<Receiver<Feed>>,
    commands: Mutex<Receiver<Command>>,
    /// Events the renderer publishes (`stream:*`).
    outbox: Option<tokio::sync::mpsc::UnboundedSender<Envelope>>,
    stop: Arc<AtomicBool>,
    /// Where a sold lot's hammer is marked for its clip (`None`: no clips).
    clips: Option<Arc<clips::Clips>>,
}

/// The sound effects and the way to the output thread's mixer.
#[derive(Resource)]
struct Sounds {
    bank: sound::Bank,
    sender: std::sync::mpsc::Sender<sound::Play>,
}

/// Plays the sound of each show event of this frame.
fn play_sounds(
    show: Res<Show>,
    mut sounds: ResMut<Sounds>,
    mut news: ResMut<News>,
    time: Res<Time>,
    mut since: Local<f32>,
) {
    // Sound files are looked at once a second: an uploaded or edited one is used
    // from then on.
    *since += time.delta_secs();
    if *since >= 1.0 {
        *since = 0.0;
        for file in sounds.bank.refresh() {
            info!("sound {file} reloaded");
            news.0.push(SceneNews::AssetLoaded(file.to_owned()));
        }
    }
    for trigger in &show.triggers {
        if let Some(clip) = sounds.bank.get(*trigger) {
            let _ = sounds.sender.send(sound::Play::Effect(clip));
        }
    }
}

/// How often the renderer publishes `stream:quality`.
const QUALITY_EVERY: Duration = Duration::from_secs(10);

/// Figures the status and metrics report.
#[derive(Resource)]
struct Timing {
    started: Instant,
    last: Option<Instant>,
    frame_times: VecDeque<f64>,
    frame_ends: VecDeque<Instant>,
    following: bool,
    /// Events applied and not yet seen in a read-back frame: (arrival, frame applied).
    unseen: Vec<(Instant, u32)>,
    readbacks: u64,
    encoder: String,
    encoding: Encoding,
    failed_reported: bool,
    /// Bytes each output had taken at `bytes_at`, for its bitrate.
    bytes: Vec<u64>,
    bytes_at: Option<Instant>,
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

    let (mut library, changes) = Library::open(&cli.scenes);
    for change in &changes {
        if let Change::Invalid(error) = change {
            eprintln_line(&format!("scene error (skipped until fixed): {error}"));
        }
    }
    if let Some(scene) = &cli.scene {
        library.pin(Some(scene_name(scene))).map_err(anyhow::Error::msg)?;
    }

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
        assets: cli.assets.clone(),
        recordings: cli.data_dir.join("recordings"),
        clips: cli.data_dir.join("clips"),
        started: Instant::now(),
    });
    let ports =
        PortBlock { api: cli.port, ws: cli.ws_port, metrics: cli.metrics_port, health: cli.health_port };
    for listener in runtime.block_on(api::bind(shared.clone(), cli.bind, ports))? {
        runtime.spawn(async move {
            if let Err(error) = listener.serve(std::future::pending()).await {
                error!("{error:#}");
            }
        });
    }

    let (feed_sender, feed) = std::sync::mpsc::channel();
    let outbox = if cli.no_follow {
        None
    } else {
        let source = match &cli.redis_url {
            Some(url) => follow::Source::Redis { url: url.clone(), prefix: cli.redis_key_prefix.clone() },
            None => follow::Source::WebSocket,
        };
        runtime.spawn(follow::run(cli.backend.clone(), source.clone(), cli.assets.clone(), feed_sender));
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        runtime.spawn(follow::publish(cli.backend.clone(), source, secret, receiver));
        Some(sender)
    };
    let stop = Arc::new(AtomicBool::new(false));
    runtime.spawn(wait_for_signal(stop.clone()));

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
        convert::ConvertPlugin,
    ))
    .set_runner(grid_runner(if cli.unpaced { None } else { Some(output::slot(encoding.fps)) }))
    .insert_resource(Canvas { width: encoding.width, height: encoding.height })
    .insert_resource(Show::default())
    .insert_resource(library)
    .insert_resource(AssetFiles::new(cli.assets.clone()))
    .init_resource::<OnAir>()
    .init_resource::<Overrides>()
    .init_resource::<News>()
    .insert_resource(FrameSink {
        sender,
        stats: stats.clone(),
        shared: shared.clone(),
        width: encoding.width,
        height: encoding.height,
    })
    .insert_resource(Sounds { bank: sound::Bank::load(&cli.assets), sender: sound_sender })
    .insert_resource(Inbox {
        feed: Mutex::new(feed),
        commands: Mutex::new(commands),
        outbox: outbox.clone(),
        stop,
        clips,
    })
    .insert_resource(Timing {
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
    })
    .add_systems(Startup, (setup_target, backdrop::setup))
    .add_systems(
        Update,
        (
            take_inbox,
            play_sounds,
            draw::poll_files,
            draw::switch_scene,
            draw::update_nodes,
            draw::start_animations,
            draw::animate,
            character::animate,
            backdrop::bake,
            report_news,
            publish_view,
            stop_when_finished,
        )
            .chain(),
    );
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
    // Give the publisher a moment to hand over the last events.
    runtime.shutdown_timeout(Duration::from_secs(2));
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

/// CPU seconds (user + system) this process has used, from `/proc` (0 elsewhere).
fn process_cpu_secs() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else { return 0.0 };
    let fields: Vec<&str> =
        stat.rsplit_once(") ").map(|(_, rest)| rest.split_whitespace().collect()).unwrap_or_default();
    let ticks = |index: usize| fields.get(index).and_then(|value| value.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime, in clock ticks of 1/100 s on Linux.
    (ticks(11) + ticks(12)) / 100.0
}

/// Sets `stop` on the first SIGINT or SIGTERM, so the app ends and the outputs are
/// finalised; a second signal exits at once.
async fn wait_for_signal(stop: Arc<AtomicBool>) {
    use futures::StreamExt as _;
    let Ok(mut signals) = sothebais_kit::shutdown::signals() else {
        warn!("cannot listen for SIGINT and SIGTERM");
        return;
    };
    if let Some(signal) = signals.next().await {
        info!("{signal}: stopping, finishing the outputs (a second signal stops at once)");
        stop.store(true, Ordering::Relaxed);
    }
    if let Some(signal) = signals.next().await {
        warn!("second {signal}: exiting at once; the outputs are not finalised");
        std::process::exit(130);
    }
}

fn send_event<T: serde::Serialize>(
    outbox: &tokio::sync::mpsc::UnboundedSender<Envelope>,
    event_type: EventType,
    data: &T,
) {
    if let Ok(event) = Envelope::new_typed(event_type, EventSource::StreamManager, data) {
        let _ = outbox.send(event);
    }
}

/// The camera draws the frame; the conversion pass (`convert.rs`) turns it into I420
/// planes in a storage buffer, and that buffer is read back every frame.
fn setup_target(
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

/// Applies what the follower and the API sent since the last frame.
fn take_inbox(
    inbox: Res<Inbox>,
    mut show: ResMut<Show>,
    mut library: ResMut<Library>,
    mut overrides: ResMut<Overrides>,
    mut timing: ResMut<Timing>,
    count: Res<FrameCount>,
    sounds: Res<Sounds>,
) {
    let now = chrono::Utc::now();
    if let Ok(feed) = inbox.feed.lock() {
        while let Ok(item) = feed.try_recv() {
            match item {
                Feed::Snapshot(snapshot, taken) => show.apply_snapshot(snapshot, taken),
                Feed::Event(event, arrival) => {
                    if show.apply(&event, now) {
                        metrics::counter!("stream_events_applied_total").increment(1);
                        timing.unseen.push((arrival, count.0));
                        if let Some(clips) = &inbox.clips
                            && let Some(auction_id) = sold_now(&event)
                        {
                            clips.sold(auction_id);
                        }
                    }
                }
                Feed::Speech { event, arrival, clip, levels, secs } => {
                    // The caption and the voice start together.
                    if show.apply(&event, now) {
                        metrics::counter!("stream_events_applied_total").increment(1);
                        timing.unseen.push((arrival, count.0));
                        show.speaking(levels, secs);
                        let _ = sounds
                            .sender
                            .send(sound::Play::Voice { clip, published_ms: Some(event.timestamp) });
                    }
                }
                Feed::Connected(connected) => timing.following = connected,
                Feed::Image { url, path } => show.image_ready(url, path),
            }
        }
    }
    if let Ok(commands) = inbox.commands.lock() {
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Pin(name) => match library.pin(name.clone()) {
                    Ok(()) => info!("scene pinned by the operator: {}", name.as_deref().unwrap_or("(rules)")),
                    Err(error) => warn!("{error}"),
                },
                Command::Patch(id, patch) => {
                    info!("layer {id} patched by the operator");
                    overrides.0.insert(id, patch);
                }
            }
        }
    }
}

/// The lot an event says was sold: `auction:end` with a sold outcome, or
/// `auction:winner` (whichever comes first; the clips take each lot once).
fn sold_now(event: &Envelope) -> Option<uuid::Uuid> {
    let (auction_id, outcome) = match event.event_type {
        EventType::AuctionWinner => {
            let winner = event.decode::<AuctionWinner>().ok()?;
            (winner.auction_id, winner.outcome)
        }
        EventType::AuctionEnd => {
            let auction = event.decode::<AuctionSnapshot>().ok()?.auction;
            (auction.id, auction.outcome?)
        }
        _ => return None,
    };
    (outcome.result == OutcomeResult::Sold).then_some(auction_id)
}

/// Logs what the scene systems did and publishes it as `stream:*` events.
fn report_news(mut news: ResMut<News>, inbox: Res<Inbox>) {
    for item in news.0.drain(..) {
        let Some(outbox) = &inbox.outbox else { continue };
        match item {
            SceneNews::OnAir(scene) => {
                send_event(outbox, EventType::StreamSceneUpdate, &StreamSceneUpdate { scene, layer: None });
            }
            SceneNews::Changed(Change::Invalid(error)) => send_event(
                outbox,
                EventType::StreamError,
                &StreamErrorData {
                    kind: "scene".to_owned(),
                    message: error.message.clone(),
                    file: Some(error.file.clone()),
                    line: Some(error.line),
                    column: Some(error.column),
                },
            ),
            SceneNews::Changed(_) => {}
            SceneNews::AssetLoaded(path) => {
                let kind = if path.ends_with(".ttf") || path.ends_with(".otf") { "font" } else { "image" };
                send_event(
                    outbox,
                    EventType::StreamAssetLoaded,
                    &StreamAssetLoaded { path, kind: kind.to_owned() },
                );
            }
        }
    }
}

/// Measures the frame and, four times a second, publishes the renderer's view of
/// itself for the API.
#[allow(clippy::too_many_arguments, reason = "a Bevy system takes what it touches")]
fn publish_view(
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
    let reports: Vec<branch::Report> = sink
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
    } else if outputs.iter().any(|output| output.state == "live") {
        "live"
    } else if outputs.iter().any(|output| output.state == "reconnecting") {
        "reconnecting"
    } else if outputs.iter().all(|output| output.state == "stopped") {
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
    let layers = draw::layer_infos(&on_air, &overrides, &show, &files, &nodes);
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
fn stop_when_finished(sink: Res<FrameSink>, inbox: Res<Inbox>, mut exit: MessageWriter<AppExit>) {
    if sink.stats.finished.load(Ordering::Relaxed) || inbox.stop.load(Ordering::Relaxed) {
        exit.write(AppExit::Success);
    }
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
