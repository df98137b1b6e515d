//! The whole show on this machine: a release `sothebais demo` (embedded: every
//! backend role, the X simulator with its twelve viewers, the host speaking with its
//! voice) and the release renderer it starts, at 1280x720 and 30 fps, recording.
//!
//! For the hot lot (the campaign's fourth, from its opening line to its summary) it
//! reports the whole machine's CPU (busy cores of all it has), each part's (the
//! `sothebais` process, the renderer, the voice's processes), the memory in use (the
//! machine's, and the parts' resident sets) at its peak, and the renderer's frames
//! and drops in that window (and, on stderr, over the whole run); beside, as the
//! baseline, the renderer alone at the
//! same size and rate, following nothing, for the same time, on the same cores.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::Value;
use sothebais_testkit::process::{Process, RENDERER_FREE_PORTS, addr, binary};

use crate::cpu;

/// CPU ticks and resident memory of the show's parts, and the machine's.
#[derive(Debug, Clone, Copy, Default)]
struct Parts {
    backend: u64,
    renderer: u64,
    voice: u64,
    rss_mib: f64,
}

/// The parts, found by their command names (the kernel keeps 15 bytes of them).
fn parts() -> Parts {
    let mut parts = Parts::default();
    let Ok(entries) = std::fs::read_dir("/proc") else { return parts };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|name| name.parse::<u32>().ok()) else {
            continue;
        };
        let Some((comm, own, _)) = cpu::process_ticks(pid) else { continue };
        let slot = match comm.as_str() {
            "sothebais" => &mut parts.backend,
            "sothebais-rende" => &mut parts.renderer,
            // Piper runs in Python; espeak-ng is its fallback.
            "python" | "python3" | "espeak-ng" => &mut parts.voice,
            _ => continue,
        };
        *slot += own;
        parts.rss_mib += rss_mib(pid);
    }
    parts
}

fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// The machine's memory in use (total less available), in MiB.
fn machine_mib() -> f64 {
    let info = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let field = |name: &str| -> f64 {
        info.lines()
            .find_map(|line| line.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next()?.parse().ok())
            .unwrap_or(0.0)
    };
    (field("MemTotal:") - field("MemAvailable:")) / 1024.0
}

async fn stream_status(client: &reqwest::Client, api: &str) -> Value {
    let url = format!("http://{api}/api/stream/status");
    match client.get(&url).send().await {
        Ok(response) => {
            response.json::<Value>().await.map(|body| body["data"].clone()).unwrap_or(Value::Null)
        }
        Err(_) => Value::Null,
    }
}

/// What one window measured.
struct Window {
    scenario: &'static str,
    seconds: f64,
    busy_cores: f64,
    cores: f64,
    backend: f64,
    renderer: f64,
    voice: f64,
    machine_peak_mib: f64,
    parts_peak_mib: f64,
    frames: u64,
    dropped: u64,
}

/// Samples the machine every second until `done` says so (or `limit` passes).
async fn window(scenario: &'static str, limit: Duration, mut done: impl FnMut() -> bool) -> Window {
    let (machine0, parts0, started) = (cpu::sample(None), parts(), Instant::now());
    let (mut machine_peak, mut parts_peak) = (machine_mib(), parts0.rss_mib);
    while !done() && started.elapsed() < limit {
        tokio::time::sleep(Duration::from_secs(1)).await;
        machine_peak = machine_peak.max(machine_mib());
        parts_peak = parts_peak.max(parts().rss_mib);
    }
    let (machine1, parts1) = (cpu::sample(None), parts());
    let usage = machine1.since(&machine0);
    let seconds = started.elapsed().as_secs_f64().max(0.001);
    let per_second = |later: u64, earlier: u64| later.saturating_sub(earlier) as f64 / 100.0 / seconds;
    Window {
        scenario,
        seconds,
        busy_cores: usage.machine / seconds,
        cores: usage.machine / seconds / usage.busy_share.max(f64::EPSILON),
        backend: per_second(parts1.backend, parts0.backend),
        renderer: per_second(parts1.renderer, parts0.renderer),
        voice: per_second(parts1.voice, parts0.voice),
        machine_peak_mib: machine_peak,
        parts_peak_mib: parts_peak,
        frames: 0,
        dropped: 0,
    }
}

/// The demo, its hot lot measured; the frames and drops over the whole run.
async fn show(lot_secs: u64) -> anyhow::Result<Window> {
    let dir = tempfile::tempdir()?;
    let mut env = BTreeMap::from([
        ("SOTHEBAIS_DATA_DIR".to_owned(), dir.path().join("data").display().to_string()),
        ("RUST_LOG".to_owned(), "info".to_owned()),
    ]);
    if let Some(home) = std::env::var_os("HOME") {
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
    }
    let lot_secs_arg = lot_secs.to_string();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut demo = Process::start(
        &binary("sothebais"),
        &["demo", "--lots", "4", "--lot-secs", &lot_secs_arg, "--lead-secs", "10", "--x-port", "0"],
        &repo,
        &env,
    )?;
    demo.wait_for_line("demo ready", Duration::from_secs(60))?;
    let listeners = demo.wait_for_listeners(24, Duration::from_secs(60))?;
    let api = addr(&listeners, "stream", "api");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    let started = stream_status(&client, &api).await;
    let lot = Duration::from_secs(lot_secs * 4 + 120);
    demo.wait_for_line("lot 4/4 open", lot)?;
    let hot = stream_status(&client, &api).await;
    let log = |demo: &Process| demo.log();
    let mut window = window("the demo: backend, xsim and audience, host with voice, renderer", lot, || {
        log(&demo).iter().any(|line| line.contains("lot 4/4 closed"))
    })
    .await;
    let ended = stream_status(&client, &api).await;
    let count = |status: &Value, key: &str| status[key].as_u64().unwrap_or(0);
    window.frames = count(&ended, "frames_rendered").saturating_sub(count(&hot, "frames_rendered"));
    window.dropped = count(&ended, "frames_dropped").saturating_sub(count(&hot, "frames_dropped"));
    eprintln!(
        "  the whole run: {} frames, {} dropped (the renderer's start included)",
        count(&ended, "frames_rendered").saturating_sub(count(&started, "frames_rendered")),
        count(&ended, "frames_dropped").saturating_sub(count(&started, "frames_dropped"))
    );
    for line in log(&demo).iter().filter(|line| line.contains("lot 4/4")) {
        eprintln!("  {line}");
    }
    let _ = demo.terminate(Duration::from_secs(40)).context("stopping the demo")?;
    Ok(window)
}

/// The renderer alone, following nothing, for `seconds`.
async fn renderer_alone(seconds: f64) -> anyhow::Result<Window> {
    let dir = tempfile::tempdir()?;
    let output = dir.path().join("alone.mkv");
    let output = output.to_str().context("path")?;
    let args = [
        &["--no-follow", "--scene", "default", "--width", "1280", "--height", "720", "--fps", "30"][..],
        &["--output", output],
        &RENDERER_FREE_PORTS[..],
    ]
    .concat();
    let env = BTreeMap::from([("RUST_LOG".to_owned(), "warn,sothebais_kit::listen=info".to_owned())]);
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut renderer = Process::start(&binary("sothebais-renderer"), &args, &repo, &env)?;
    let listeners = renderer.wait_for_listeners(4, Duration::from_secs(60))?;
    let api = addr(&listeners, "stream", "api");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build()?;
    // Warm up as the demo's renderer had: pipelines compiled, fonts rasterised.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let started = stream_status(&client, &api).await;
    let limit = Duration::from_secs_f64(seconds);
    let mut window = window("baseline: the renderer alone, following nothing", limit, || false).await;
    let ended = stream_status(&client, &api).await;
    let count = |status: &Value, key: &str| status[key].as_u64().unwrap_or(0);
    window.frames = count(&ended, "frames_rendered").saturating_sub(count(&started, "frames_rendered"));
    window.dropped = count(&ended, "frames_dropped").saturating_sub(count(&started, "frames_dropped"));
    let _ = renderer.terminate(Duration::from_secs(30));
    Ok(window)
}

pub async fn run(lot_secs: u64) -> anyhow::Result<()> {
    eprintln!("==> the demo: four lots of {lot_secs} s, the hot lot measured");
    let show = show(lot_secs).await?;
    eprintln!("==> baseline: the renderer alone for {:.0} s", show.seconds);
    let alone = renderer_alone(show.seconds).await?;
    println!();
    println!("## The demo on this machine (release; renderer 1280x720 at 30 fps; the hot lot)");
    println!();
    println!(
        "| scenario | window s | busy cores (of) | sothebais | renderer | voice | memory in use, peak MiB (parts' RSS) | frames | dropped |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |");
    for window in [&show, &alone] {
        println!(
            "| {} | {:.0} | {:.2} ({:.0}) | {:.2} | {:.2} | {:.2} | {:.0} ({:.0}) | {} | {} |",
            window.scenario,
            window.seconds,
            window.busy_cores,
            window.cores,
            window.backend,
            window.renderer,
            window.voice,
            window.machine_peak_mib,
            window.parts_peak_mib,
            window.frames,
            window.dropped,
        );
    }
    Ok(())
}
