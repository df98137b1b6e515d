//! The renderer's benchmark: the real `sothebais-renderer` (release build) drawing
//! the default scene on this machine's Vulkan driver and encoding with x264, beside
//! an ffmpeg-only baseline measured in the same run that composes a comparable scene
//! (colour background, boxes, changing text, a moving overlay) and encodes it the
//! same way (x264 ultrafast, zerolatency, CBR, AAC).
//!
//! For each size it measures:
//! - **paced**: the renderer live at 30 fps for the window: the render loop's fps,
//!   frame time p50/p99 (from `/api/stream/status`), frames dropped or repeated in
//!   the window, and the CPU it used (cores, from `/proc`);
//! - **unpaced**: the renderer recording as fast as it can (`--unpaced --frames N`):
//!   fps and CPU;
//! - **baseline**: ffmpeg alone, as fast as it can, on as many threads as the
//!   renderer's cores (`-threads N -filter_threads N`, N the machine's cores, which
//!   the unpaced renderer uses), and the renderer's unpaced fps and CPU time per
//!   frame as ratios of ffmpeg's.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;
use sothebais_testkit::process::{Process, RENDERER_FREE_PORTS, addr, binary};

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name (which may hold spaces) start after ") ".
    let rest = stat.rsplit_once(") ").map(|(_, rest)| rest).context("unreadable /proc stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    Ok(ticks / 100.0)
}

/// The stream manager's status (blocking: the benchmark runs on a blocking thread).
fn status(api: &str) -> anyhow::Result<Value> {
    let url = format!("http://{api}/api/stream/status");
    let body: Value =
        tokio::runtime::Handle::current().block_on(async { reqwest::get(&url).await?.json().await })?;
    Ok(body["data"].clone())
}

/// One row of the report.
struct Row {
    size: String,
    scenario: &'static str,
    fps: f64,
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
    dropped: Option<u64>,
    cores: f64,
    /// Unpaced fps and CPU time per frame, as ratios of the baseline's.
    ratio: Option<(f64, f64)>,
}

impl Row {
    /// CPU milliseconds per frame.
    fn cpu_per_frame_ms(&self) -> f64 {
        self.cores / self.fps.max(0.001) * 1000.0
    }
}

fn renderer_args<'a>(width: &'a str, height: &'a str, output: &'a str) -> Vec<&'a str> {
    let scene = ["--no-follow", "--scene", "default", "--width", width, "--height", height, "--fps", "30"];
    [&scene[..], &["--output", output], &RENDERER_FREE_PORTS[..]].concat()
}

fn paced(dir: &Path, width: u32, height: u32, seconds: u64) -> anyhow::Result<Row> {
    let (w, h) = (width.to_string(), height.to_string());
    let output = dir.join("paced.mkv");
    let output = output.to_str().context("path")?;
    let env = std::collections::BTreeMap::from([(
        "RUST_LOG".to_owned(),
        "warn,sothebais_kit::listen=info".to_owned(),
    )]);
    let mut process =
        Process::start(&binary("sothebais-renderer"), &renderer_args(&w, &h, output), dir, &env)?;
    let listeners = process.wait_for_listeners(4, Duration::from_secs(60))?;
    let api = addr(&listeners, "stream", "api");
    // Warm up: pipelines compiled, fonts rasterised.
    std::thread::sleep(Duration::from_secs(5));
    let (cpu0, at0, before) = (cpu_secs(process.id())?, Instant::now(), status(&api)?);
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, elapsed, after) = (cpu_secs(process.id())?, at0.elapsed().as_secs_f64(), status(&api)?);
    let _ = process.terminate(Duration::from_secs(30));
    let dropped = after["frames_dropped"]
        .as_u64()
        .unwrap_or(0)
        .saturating_sub(before["frames_dropped"].as_u64().unwrap_or(0));
    Ok(Row {
        size: format!("{width}x{height}"),
        scenario: "renderer, live at 30 fps",
        fps: after["fps"].as_f64().unwrap_or(0.0),
        p50_ms: after["frame_time_ms"]["p50"].as_f64(),
        p99_ms: after["frame_time_ms"]["p99"].as_f64(),
        dropped: Some(dropped),
        cores: (cpu1 - cpu0) / elapsed,
        ratio: None,
    })
}

fn unpaced(dir: &Path, width: u32, height: u32, frames: u64) -> anyhow::Result<Row> {
    let (w, h) = (width.to_string(), height.to_string());
    let output = dir.join("unpaced.mkv");
    let output = output.to_str().context("path")?;
    let frames_arg = frames.to_string();
    let mut args = renderer_args(&w, &h, output);
    args.extend(["--unpaced", "--frames", &frames_arg]);
    let child = Command::new(binary("sothebais-renderer"))
        .args(&args)
        .env("RUST_LOG", "warn,sothebais_kit::listen=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let out = child.wait_with_output()?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("the renderer failed:\n{log}");
    }
    // "sothebais-renderer: rendered N frames in S s (F fps), D dropped, C CPU s"
    let summary =
        log.lines().find(|line| line.contains("rendered ") && line.contains(" fps")).context("no summary")?;
    let number_after = |key: &str| -> Option<f64> {
        summary
            .split(key)
            .nth(1)?
            .split_whitespace()
            .next()?
            .trim_matches(|c| c == '(' || c == ',')
            .parse()
            .ok()
    };
    let fps = number_after("s (").unwrap_or(0.0);
    let secs = number_after(" frames in ").unwrap_or(1.0);
    let cpu = number_after("dropped, ").unwrap_or(0.0);
    Ok(Row {
        size: format!("{width}x{height}"),
        scenario: "renderer, unpaced",
        fps,
        p50_ms: None,
        p99_ms: None,
        dropped: None,
        cores: cpu / secs.max(0.001),
        ratio: None,
    })
}

/// ffmpeg composing a comparable scene and encoding it the same way, on the same
/// cores as the renderer.
fn baseline(dir: &Path, width: u32, height: u32, frames: u64) -> anyhow::Result<Row> {
    let font = Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets/fonts/DejaVuSans-Bold.ttf");
    let font = font.to_str().context("path")?;
    let s = f64::from(width) / 1920.0;
    let px = |v: f64| (v * s).round() as i64;
    let graph = format!(
        "[0]drawbox=x={}:y={}:w={}:h={}:color=0x161922:t=fill,\
         drawbox=x={}:y={}:w={}:h={}:color=0x161922:t=fill,\
         drawbox=x={}:y={}:w={}:h={}:color=0x161922:t=fill,\
         drawbox=x=0:y={}:w={width}:h={}:color=0x7a1418:t=fill,\
         drawtext=fontfile={font}:text='%{{n}} ETH':x={}:y={}:fontsize={}:fontcolor=0xd4b038,\
         drawtext=fontfile={font}:text='%{{pts\\:hms}}':x={}:y={}:fontsize={}:fontcolor=white,\
         drawtext=fontfile={font}:text='Reply bid 1.5 on X to bid':x={}:y={}:fontsize={}:fontcolor=white[bg];\
         [1]format=rgba[box];[bg][box]overlay=x='mod(t*300\\,{width})':y={}[v]",
        px(48.0),
        px(132.0),
        px(760.0),
        px(820.0),
        px(856.0),
        px(132.0),
        px(560.0),
        px(540.0),
        px(1464.0),
        px(132.0),
        px(408.0),
        px(540.0),
        px(990.0),
        px(90.0),
        px(896.0),
        px(240.0),
        px(72.0),
        px(896.0),
        px(560.0),
        px(60.0),
        px(48.0),
        px(1010.0),
        px(36.0),
        px(700.0),
    );
    let output = dir.join("baseline.mkv");
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get).to_string();
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostats", "-benchmark", "-y"])
        .args(["-f", "lavfi", "-i", &format!("color=c=0x0d0f14:s={width}x{height}:r=30")])
        .args(["-f", "lavfi", "-i", &format!("color=c=0xc0262d:s={}x{}:r=30", px(220.0), px(220.0))])
        .args(["-f", "lavfi", "-i", "anullsrc=r=44100:cl=stereo"])
        .args(["-filter_threads", &threads, "-filter_complex", &graph, "-map", "[v]", "-map", "2:a"])
        .args(["-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-threads", &threads])
        .args(["-b:v", "4000k", "-maxrate", "4000k", "-bufsize", "8000k", "-g", "90", "-pix_fmt", "yuv420p"])
        .args(["-c:a", "aac", "-b:a", "128k", "-frames:v", &frames.to_string(), "-shortest"])
        .arg(&output)
        .output()
        .context("running ffmpeg")?;
    let log = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("ffmpeg failed:\n{log}");
    }
    // "bench: utime=1.234s stime=0.056s rtime=1.300s"
    let line = log.lines().find(|line| line.starts_with("bench: utime")).context("no ffmpeg bench line")?;
    let field = |key: &str| -> f64 {
        line.split(key).nth(1).and_then(|v| v.split('s').next()).and_then(|v| v.parse().ok()).unwrap_or(0.0)
    };
    let (user, system, real) = (field("utime="), field("stime="), field("rtime="));
    Ok(Row {
        size: format!("{width}x{height}"),
        scenario: "baseline: ffmpeg only, same cores",
        fps: frames as f64 / real.max(0.001),
        p50_ms: None,
        p99_ms: None,
        dropped: None,
        cores: (user + system) / real.max(0.001),
        ratio: Some((1.0, 1.0)),
    })
}

pub fn run(seconds: u64) -> anyhow::Result<()> {
    eprintln!("sothebais-bench: renderer {}", binary("sothebais-renderer").display());
    let dir = tempfile::tempdir()?;
    let mut rows = Vec::new();
    for (width, height) in [(1280, 720), (1920, 1080)] {
        eprintln!("==> {width}x{height}: ffmpeg baseline");
        let base = baseline(dir.path(), width, height, 600)?;
        eprintln!("==> {width}x{height}: renderer live at 30 fps for {seconds} s");
        let live = paced(dir.path(), width, height, seconds)?;
        eprintln!("==> {width}x{height}: renderer unpaced");
        let mut fast = unpaced(dir.path(), width, height, 300)?;
        fast.ratio =
            Some((fast.fps / base.fps.max(0.001), fast.cpu_per_frame_ms() / base.cpu_per_frame_ms()));
        rows.extend([base, live, fast]);
    }
    println!();
    println!(
        "| size | scenario | fps | frame p50 ms | frame p99 ms | dropped in window | CPU cores | CPU ms per frame | fps vs baseline | CPU per frame vs baseline |"
    );
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    let opt = |value: Option<f64>| value.map_or(String::new(), |value| format!("{value:.1}"));
    for row in rows {
        println!(
            "| {} | {} | {:.1} | {} | {} | {} | {:.2} | {:.1} | {} | {} |",
            row.size,
            row.scenario,
            row.fps,
            opt(row.p50_ms),
            opt(row.p99_ms),
            row.dropped.map_or(String::new(), |dropped| dropped.to_string()),
            row.cores,
            row.cpu_per_frame_ms(),
            row.ratio.map_or(String::new(), |(fps, _)| format!("{:.0} %", fps * 100.0)),
            row.ratio.map_or(String::new(), |(_, cpu)| format!("{:.2}x", cpu)),
        );
    }
    Ok(())
}
