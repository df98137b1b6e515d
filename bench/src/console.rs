//! The console's benchmark: a release `sothebais serve` (embedded) and a release
//! renderer at 1280x720, 30 fps, following it, both on this machine.
//!
//! - **First load** of the Live page as a signed-in operator: bytes and requests
//!   (the page, its assets, its two WebSockets), and the time from asking for the
//!   page to the first preview picture on `/api/admin/live`.
//! - **Dashboards during a hot lot**: a bid storm on one open lot for the window,
//!   with 0 dashboards (the baseline), then with N dashboards connected the way the
//!   page connects (the renderer's feed through the gateway and the event stream):
//!   the gateway's CPU per dashboard, and the renderer's dropped frames and CPU. A
//!   third run connects the same N clients straight to the renderer's WebSocket,
//!   each asking for its own previews, to show what the gateway's single relayed
//!   connection spares the renderer.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use futures::StreamExt as _;
use serde_json::{Value, json};
use sothebais_testkit::free_ports;
use sothebais_testkit::process::{Process, binary, gateway, token};

const PASSWORD: &str = "benchmark console password";

pub(crate) fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// CPU seconds (user + system) a process has used so far.
fn cpu_secs(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
    let Some((_, rest)) = stat.rsplit_once(") ") else { return 0.0 };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|u| u.parse::<f64>().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|s| s.parse::<f64>().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// One measured window.
struct Window {
    dashboards: usize,
    how: &'static str,
    gateway_cores: f64,
    renderer_cores: f64,
    dropped: u64,
    frames: u64,
    bids: u64,
    messages: u64,
}

pub async fn run(seconds: u64, dashboards: usize) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let (stream_port, stream_ws_port) = (free_port()?, free_port()?);
    let mut env = free_ports();
    env.insert("TTS_PROVIDER".into(), "none".into());
    env.insert("STREAM_MANAGER_URL".into(), format!("http://127.0.0.1:{stream_port}"));
    env.insert("STREAM_MANAGER_WS_URL".into(), format!("ws://127.0.0.1:{stream_ws_port}"));
    env.insert("RUST_LOG".into(), "warn,sothebais_kit::listen=info".into());
    env.insert("RATE_LIMIT_READS_PER_SEC".into(), "100000".into());

    let mut add = Command::new(binary("sothebais"))
        .args(["user", "add", "bench", "--role", "operator"])
        .current_dir(dir.path())
        .envs(&env)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()?;
    add.stdin.take().context("stdin")?.write_all(format!("{PASSWORD}\n").as_bytes())?;
    if !add.wait()?.success() {
        bail!("sothebais user add failed");
    }
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env)?;
    let base = gateway(&server.wait_for_listeners(20, Duration::from_secs(60))?);
    let operator = token(dir.path(), &env, "operator")?;

    let renderer_env = BTreeMap::from([
        ("SOTHEBAIS_DATA_DIR".to_owned(), dir.path().join("data").display().to_string()),
        ("RUST_LOG".to_owned(), "warn,sothebais_kit::listen=info".to_owned()),
    ]);
    let output = dir.path().join("console.mkv");
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

    // A lot on air for the whole benchmark.
    let created: Value = client
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(&operator)
        .json(&json!({ "title": "Benchmark lot", "starting_price": "1", "starts_at": chrono::Utc::now().to_rfc3339(), "duration_secs": 3600, "anti_snipe": null }))
        .send()
        .await?
        .json()
        .await?;
    let auction = created["data"]["id"].as_str().context("auction id")?.to_owned();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let cookie = sign_in(&client, &base).await?;
    eprintln!("==> first load of the Live page");
    let (bytes, requests, to_picture) = first_load(&client, &base, &cookie).await?;

    let stream_status = format!("http://127.0.0.1:{stream_port}/api/stream/status");
    let mut windows = Vec::new();
    for (count, how) in
        [(0, "none"), (dashboards, "through the gateway"), (dashboards, "straight to the renderer")]
    {
        eprintln!("==> {count} dashboards ({how}), a bid storm for {seconds} s");
        let stop = Arc::new(AtomicBool::new(false));
        let messages = Arc::new(AtomicU64::new(0));
        let mut watchers = Vec::new();
        for _ in 0..count {
            let urls = if how == "through the gateway" {
                vec![
                    format!("{}/api/admin/live", base.replace("http://", "ws://")),
                    format!(
                        "{}/api/events/stream?types=auction:*,agent:message,agent:mood",
                        base.replace("http://", "ws://")
                    ),
                ]
            } else {
                vec![format!("ws://127.0.0.1:{stream_ws_port}/?preview_fps=5")]
            };
            for url in urls {
                let (stop, messages) = (stop.clone(), messages.clone());
                watchers.push(tokio::spawn(async move {
                    let Ok((mut socket, _)) = tokio_tungstenite::connect_async(url.as_str()).await else {
                        return;
                    };
                    while !stop.load(Ordering::Relaxed) {
                        match tokio::time::timeout(Duration::from_millis(500), socket.next()).await {
                            Ok(Some(Ok(_))) => {
                                messages.fetch_add(1, Ordering::Relaxed);
                            }
                            Ok(_) => return,
                            Err(_) => {}
                        }
                    }
                }));
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let before: Value = client.get(&stream_status).send().await?.json().await?;
        let (gateway0, renderer0, at) = (cpu_secs(server.id()), cpu_secs(renderer.id()), Instant::now());
        messages.store(0, Ordering::Relaxed);
        let bids = storm(&client, &base, &operator, &auction, Duration::from_secs(seconds)).await;
        let elapsed = at.elapsed().as_secs_f64();
        let (gateway1, renderer1) = (cpu_secs(server.id()), cpu_secs(renderer.id()));
        let after: Value = client.get(&stream_status).send().await?.json().await?;
        stop.store(true, Ordering::Relaxed);
        for watcher in watchers {
            let _ = watcher.await;
        }
        let count_of = |status: &Value, key: &str| status["data"][key].as_u64().unwrap_or(0);
        windows.push(Window {
            dashboards: count,
            how,
            gateway_cores: (gateway1 - gateway0) / elapsed,
            renderer_cores: (renderer1 - renderer0) / elapsed,
            dropped: count_of(&after, "frames_dropped").saturating_sub(count_of(&before, "frames_dropped")),
            frames: count_of(&after, "frames_rendered").saturating_sub(count_of(&before, "frames_rendered")),
            bids,
            messages: messages.load(Ordering::Relaxed),
        });
    }
    let _ = renderer.terminate(Duration::from_secs(30));
    let _ = server.terminate(Duration::from_secs(30));

    println!();
    println!("## Console (release, embedded; renderer 1280x720 at 30 fps on this machine)");
    println!();
    println!(
        "First load of the Live page: {bytes} bytes in {requests} requests (page, assets, two WebSockets); first preview picture after {to_picture:.0} ms"
    );
    println!();
    println!(
        "| dashboards | connected | bids in window | messages to dashboards | gateway CPU (cores) | per dashboard (cores) | renderer CPU (cores) | frames | dropped |"
    );
    println!("| --- | --- | --- | --- | --- | --- | --- | --- | --- |");
    let baseline = windows.first().map_or(0.0, |window| window.gateway_cores);
    for window in &windows {
        let per = if window.dashboards == 0 {
            "–".to_owned()
        } else {
            format!("{:.4}", (window.gateway_cores - baseline) / window.dashboards as f64)
        };
        println!(
            "| {} | {} | {} | {} | {:.3} | {per} | {:.3} | {} | {} |",
            window.dashboards,
            window.how,
            window.bids,
            window.messages,
            window.gateway_cores,
            window.renderer_cores,
            window.frames,
            window.dropped
        );
    }
    Ok(())
}

async fn sign_in(client: &reqwest::Client, base: &str) -> anyhow::Result<String> {
    let response = client
        .post(format!("{base}/api/admin/login"))
        .json(&json!({ "username": "bench", "password": PASSWORD }))
        .send()
        .await?;
    let cookie = response
        .headers()
        .get(reqwest::header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.split(';').next())
        .context("no session cookie")?
        .to_owned();
    Ok(cookie)
}

/// The Live page and what it loads, as a browser would: bytes, requests, and the
/// time to the first preview picture.
async fn first_load(
    client: &reqwest::Client,
    base: &str,
    cookie: &str,
) -> anyhow::Result<(usize, usize, f64)> {
    let started = Instant::now();
    let page = client.get(format!("{base}/")).header("cookie", cookie).send().await?.text().await?;
    let mut bytes = page.len();
    let mut requests = 1;
    for marker in ["href=\"/ui/assets/", "src=\"/ui/assets/"] {
        for (at, _) in page.match_indices(marker) {
            let start = at + marker.len() - "/ui/assets/".len();
            let end = page[start..].find('"').map_or(page.len(), |offset| start + offset);
            let asset = client.get(format!("{base}{}", &page[start..end])).send().await?.bytes().await?;
            bytes += asset.len();
            requests += 1;
        }
    }
    let live = format!("{}/api/admin/live", base.replace("http://", "ws://"));
    let events = format!(
        "{}/api/events/stream?types=auction:*,agent:message,agent:mood",
        base.replace("http://", "ws://")
    );
    let (_events, _) = tokio_tungstenite::connect_async(events.as_str()).await?;
    let (mut socket, _) = tokio_tungstenite::connect_async(live.as_str()).await?;
    requests += 2;
    let to_picture = loop {
        let Some(message) =
            tokio::time::timeout(Duration::from_secs(30), socket.next()).await?.transpose()?
        else {
            bail!("the live feed closed before a picture");
        };
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            bytes += text.len();
            if text.contains("\"stream:frame\"") {
                break started.elapsed().as_secs_f64() * 1000.0;
            }
        }
    };
    Ok((bytes, requests, to_picture))
}

/// Bids on the lot from forty bidders in turn (each within its 2 s rate), each raising the last, as fast as
/// decisions come back, for `window`; how many were decided.
async fn storm(client: &reqwest::Client, base: &str, token: &str, auction: &str, window: Duration) -> u64 {
    let deadline = Instant::now() + window;
    let mut amount: u64 = 1000;
    let mut decided = 0;
    while Instant::now() < deadline {
        amount += 100;
        let bidder = format!("web:bidder{}", decided % 40);
        let body = json!({ "auction_id": auction, "amount": format!("{}.{:03}", amount / 1000, amount % 1000), "bidder": { "id": bidder, "handle": format!("@{}", bidder.trim_start_matches("web:")) } });
        if client.post(format!("{base}/api/auction/bid")).bearer_auth(token).json(&body).send().await.is_ok()
        {
            decided += 1;
        }
        // About 20 bids a second: a hot lot on X, not a load test.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    decided
}
