//! The voice on the stream: a release `sothebais serve` (embedded, the host speaking
//! with piper) and a release renderer at 1280x720, 30 fps, following it, on this
//! machine. A bid every few seconds on an open lot makes the host speak; for the
//! window it reports the delay from each spoken line's `agent:message` to its first
//! audible sample on the track (measured by the renderer's mixer), piper's synthesis
//! time (the agent's histogram), and the renderer's fps and dropped frames while it
//! speaks, beside the same window with the voice off (`TTS_PROVIDER=none`).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::{Value, json};
use sothebais_backend::admin::services::{parse_prometheus, quantile};
use sothebais_testkit::free_ports;
use sothebais_testkit::process::{Process, addr, binary, gateway, token};

use crate::console::free_port;

struct Window {
    provider: &'static str,
    lines: usize,
    delay_p50: Option<f64>,
    delay_p99: Option<f64>,
    synthesis_p99_ms: Option<f64>,
    fps: f64,
    frames: u64,
    dropped: u64,
}

pub async fn run(seconds: u64) -> anyhow::Result<()> {
    let mut windows = Vec::new();
    for provider in ["none", "piper"] {
        eprintln!("==> the host with TTS_PROVIDER={provider}, a bid every 4 s for {seconds} s");
        windows.push(window(provider, seconds).await?);
    }
    println!();
    println!("## Voice (release, embedded; renderer 1280x720 at 30 fps on this machine)");
    println!();
    println!(
        "| voice | lines heard | message → first audible p50 (ms) | p99 (ms) | synthesis p99 (ms, histogram bound) | fps | frames | dropped |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- |");
    let shown = |value: Option<f64>| value.map_or("–".to_owned(), |value| format!("{value:.0}"));
    for window in &windows {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {} | {} |",
            window.provider,
            window.lines,
            shown(window.delay_p50),
            shown(window.delay_p99),
            shown(window.synthesis_p99_ms),
            window.fps,
            window.frames,
            window.dropped
        );
    }
    Ok(())
}

async fn window(provider: &'static str, seconds: u64) -> anyhow::Result<Window> {
    let dir = tempfile::tempdir()?;
    let (stream_port, stream_ws_port) = (free_port()?, free_port()?);
    let mut env = free_ports();
    env.insert("TTS_PROVIDER".into(), provider.into());
    if let Some(home) = std::env::var_os("HOME") {
        env.insert("HOME".into(), home.to_string_lossy().into_owned());
    }
    env.insert("STREAM_MANAGER_URL".into(), format!("http://127.0.0.1:{stream_port}"));
    env.insert("STREAM_MANAGER_WS_URL".into(), format!("ws://127.0.0.1:{stream_ws_port}"));
    env.insert("RUST_LOG".into(), "warn,sothebais_kit::listen=info".into());
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env)?;
    let listeners = server.wait_for_listeners(20, Duration::from_secs(60))?;
    let base = gateway(&listeners);
    let agent_metrics = format!("http://{}/metrics", addr(&listeners, "agent", "metrics"));
    let operator = token(dir.path(), &env, "operator")?;
    let renderer_env = BTreeMap::from([
        ("SOTHEBAIS_DATA_DIR".to_owned(), dir.path().join("data").display().to_string()),
        ("RUST_LOG".to_owned(), "warn,sothebais_kit::listen=info".to_owned()),
    ]);
    let output = dir.path().join("voice.mkv");
    let (port, ws_port) = (stream_port.to_string(), stream_ws_port.to_string());
    let args = [
        "--output",
        output.to_str().context("path")?,
        "--width",
        "1280",
        "--height",
        "720",
        "--fps",
        "30",
        "--backend",
        &base,
        "--port",
        &port,
        "--ws-port",
        &ws_port,
        "--metrics-port",
        "0",
        "--health-port",
        "0",
    ];
    let mut renderer = Process::start(&binary("sothebais-renderer"), &args, dir.path(), &renderer_env)?;
    renderer.wait_for_listeners(4, Duration::from_secs(60))?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build()?;
    let created: Value = client
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(&operator)
        .json(&json!({ "title": "Voice lot", "starting_price": "1", "starts_at": chrono::Utc::now().to_rfc3339(), "duration_secs": 3600, "anti_snipe": null }))
        .send()
        .await?
        .json()
        .await?;
    let auction = created["data"]["id"].as_str().context("auction id")?.to_owned();
    // Piper loads its model and the renderer its pipelines.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let status_url = format!("http://127.0.0.1:{stream_port}/api/stream/status");
    let before: Value = client.get(&status_url).send().await?.json().await?;
    let started = Instant::now();
    let mut bid = 0u64;
    while started.elapsed() < Duration::from_secs(seconds) {
        bid += 1;
        let body = json!({ "auction_id": auction, "amount": format!("{}", 1 + bid), "bidder": { "id": format!("web:voice{bid}"), "handle": format!("@voice{bid}") } });
        let _ =
            client.post(format!("{base}/api/auction/bid")).bearer_auth(&operator).json(&body).send().await;
        tokio::time::sleep(Duration::from_secs(4)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let after: Value = client.get(&status_url).send().await?.json().await?;
    let samples = parse_prometheus(&client.get(&agent_metrics).send().await?.text().await?);
    let _ = renderer.terminate(Duration::from_secs(30));
    let _ = server.terminate(Duration::from_secs(30));
    let count = |status: &Value, key: &str| status["data"][key].as_u64().unwrap_or(0);
    let frames = count(&after, "frames_rendered").saturating_sub(count(&before, "frames_rendered"));
    Ok(Window {
        provider,
        lines: after["data"]["speech_lines"].as_u64().unwrap_or(0) as usize,
        delay_p50: after["data"]["speech_delay_ms"]["p50"].as_f64(),
        delay_p99: after["data"]["speech_delay_ms"]["p99"].as_f64(),
        synthesis_p99_ms: quantile(&samples, "agent_speech_synthesis_seconds", 0.99)
            .map(|secs| secs * 1000.0),
        fps: frames as f64 / elapsed,
        frames,
        dropped: count(&after, "frames_dropped").saturating_sub(count(&before, "frames_dropped")),
    })
}
