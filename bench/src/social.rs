//! The X integration's benchmark: posts made on the X simulator (in this process,
//! latency 0) at 1, 10 and 100 bids/s, read by a release `sothebais serve` (embedded
//! mode) polling at the default interval, decided and answered. Printed per rate:
//! post-to-decision latency (the post's creation on X to its decision event arriving
//! on the event stream, which is published only after the decision is committed),
//! post-to-reply latency (the post's creation to its reply's creation on X), X
//! requests, post reads and billed resources per decided bid, and the cost per 100
//! bids. The baseline beside it: the same bids placed over the HTTP API, from the
//! request to the same decision event.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use futures::StreamExt as _;
use serde_json::{Value, json};
use sothebais_backend::xsim::{Draft, SimOptions, XSim};
use sothebais_testkit::free_ports;
use sothebais_testkit::process::{Process, addr, binary, gateway, token};
use tokio_util::sync::CancellationToken;

use crate::percentile_ms;

/// When each decision event arrived, by the bid's `source_ref` (post id or key).
type Arrivals = Arc<Mutex<HashMap<String, chrono::DateTime<chrono::Utc>>>>;

async fn follow_decisions(ws: String, arrivals: Arrivals, stop: CancellationToken) -> anyhow::Result<()> {
    let url = format!("ws://{ws}/?types=auction:bid:accepted,auction:bid:rejected");
    let (mut socket, _) = tokio_tungstenite::connect_async(url).await.context("event stream")?;
    loop {
        let message = tokio::select! {
            () = stop.cancelled() => return Ok(()),
            message = socket.next() => message,
        };
        let Some(Ok(message)) = message else { return Ok(()) };
        let Ok(text) = message.into_text() else { continue };
        let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
        if let Some(key) = event["data"]["bid"]["source_ref"].as_str()
            && let Ok(mut arrivals) = arrivals.lock()
        {
            arrivals.entry(key.to_owned()).or_insert_with(chrono::Utc::now);
        }
    }
}

fn billing(sim: &XSim) -> (BTreeMap<String, u64>, BTreeMap<String, u64>, f64) {
    sim.billing_view()
}

struct Window {
    rate: u32,
    bids: usize,
    decided: usize,
    decision_ms: Vec<u64>,
    reply_ms: Vec<u64>,
    replies: usize,
    reads: u64,
    requests: u64,
    posts_read: u64,
    billed: u64,
    usd: f64,
}

/// The bid parser's time per byte on bid-like text of growing length: flat when the
/// parser is linear.
fn parser_scaling() {
    use sothebais_backend::social::parse;
    use sothebais_shared::amount::Amount;
    let unit = "@SothebAIs bid 1,500 lot 3 Ξ2.5eth bid: -1 $50 #lot12 1.000,5 bid 0.0000000000000000001 ";
    println!("Bid parser, time per byte by post length (linear: the same figure at every length):");
    for length in [280usize, 10_000, 100_000, 1_000_000] {
        let text: String = unit.chars().cycle().take(length).collect();
        let rounds = (2_000_000 / length).max(3);
        let started = Instant::now();
        for _ in 0..rounds {
            std::hint::black_box(parse::parse(std::hint::black_box(&text), Amount::from_eth(10_000)));
        }
        let per_byte = started.elapsed().as_nanos() as f64 / (rounds * text.len()) as f64;
        println!("  {length:>9} chars: {per_byte:>6.1} ns/byte ({rounds} runs)");
    }
}

pub async fn run(seconds: u64) -> anyhow::Result<()> {
    parser_scaling();
    let sim = XSim::new(SimOptions::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let sim_url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let (serving, stopping) = (sim.clone(), stop.clone());
    tokio::spawn(async move { serving.serve(listener, stopping.cancelled_owned()).await });

    let dir = tempfile::tempdir()?;
    let mut settings = free_ports();
    settings.insert("SOTHEBAIS_DATA_DIR".into(), dir.path().join("data").display().to_string());
    for (key, value) in [
        ("X_API_BASE_URL", sim_url.as_str()),
        ("X_BEARER_TOKEN", "xsim-bearer"),
        ("X_USER_ACCESS_TOKEN", "xsim-user"),
        ("X_USER_REFRESH_TOKEN", "xsim-refresh"),
        ("X_CLIENT_ID", "bench"),
        ("X_REPLY_BUDGET_PER_15MIN", "100"),
        ("RUST_LOG", "warn,sothebais_kit::listen=info"),
    ] {
        settings.insert(key.into(), value.into());
    }
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &settings)?;
    let listeners = server.wait_for_listeners(20, Duration::from_secs(60))?;
    let base = gateway(&listeners);
    let operator = token(dir.path(), &settings, "operator")?;
    let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
    let arrivals: Arrivals = Arc::default();
    tokio::spawn(follow_decisions(addr(&listeners, "events", "ws"), arrivals.clone(), stop.clone()));

    let created: Value = client
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(&operator)
        .json(&json!({
            "title": "Benchmark Lot", "starting_price": "0.001", "starts_at": chrono::Utc::now().to_rfc3339(),
            "duration_secs": 3600, "anti_snipe": null, "increment_table": [], "increment_percent": 0,
        }))
        .send()
        .await?
        .json()
        .await?;
    let auction = created["data"]["id"].as_str().context("auction id")?.to_owned();
    let started = Instant::now();
    while sim.announcement_of("Benchmark Lot").is_none() {
        anyhow::ensure!(started.elapsed() < Duration::from_secs(30), "the lot was never announced");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!("==> X: posts on the simulator read by `sothebais serve` every 2000 ms (the default)");

    let mut amount_milli: u64 = 10;
    let mut windows = Vec::new();
    for rate in [1u32, 10, 100] {
        let count = (u64::from(rate) * seconds) as usize;
        eprintln!("==> {rate} bids/s for {seconds} s ({count} posts)");
        let (requests_before, resources_before, usd_before) = billing(&sim);
        let mut posts = Vec::new();
        let pace = Duration::from_secs_f64(1.0 / f64::from(rate));
        let begin = Instant::now();
        for index in 0..count {
            let due = begin + pace * index as u32;
            tokio::time::sleep_until(due.into()).await;
            amount_milli += 1;
            let text = format!("@SothebAIs bid {}.{:03}", amount_milli / 1000, amount_milli % 1000);
            let post = sim.post_as(&format!("r{rate}b{index}"), Draft { text, ..Draft::default() });
            posts.push(post);
        }
        // Wait for every decision (and the replies the budget allows) to land.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let decided = {
                let arrivals = arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
                posts.iter().filter(|post| arrivals.contains_key(&post.id)).count()
            };
            if decided == posts.len() || Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        let (requests_after, resources_after, usd_after) = billing(&sim);
        let delta = |after: &BTreeMap<String, u64>, before: &BTreeMap<String, u64>, key: &str| {
            after.get(key).copied().unwrap_or(0).saturating_sub(before.get(key).copied().unwrap_or(0))
        };
        let arrivals_now = arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
        let replies: HashMap<String, chrono::DateTime<chrono::Utc>> = sim
            .posts()
            .into_iter()
            .filter_map(|reply| Some((reply.replied_to()?.to_owned(), reply.created_at?)))
            .collect();
        let mut window = Window {
            rate,
            bids: posts.len(),
            decided: 0,
            decision_ms: Vec::new(),
            reply_ms: Vec::new(),
            replies: 0,
            reads: delta(&requests_after, &requests_before, "mentions")
                + delta(&requests_after, &requests_before, "search"),
            requests: requests_after.values().sum::<u64>() - requests_before.values().sum::<u64>(),
            posts_read: delta(&resources_after, &resources_before, "owned_post_read")
                + delta(&resources_after, &resources_before, "post_read"),
            billed: resources_after.values().sum::<u64>() - resources_before.values().sum::<u64>(),
            usd: usd_after - usd_before,
        };
        for post in &posts {
            let Some(created) = post.created_at else { continue };
            if let Some(decided) = arrivals_now.get(&post.id) {
                window.decided += 1;
                window.decision_ms.push((*decided - created).num_microseconds().unwrap_or(0).max(0) as u64);
            }
            if let Some(replied) = replies.get(&post.id) {
                window.replies += 1;
                window.reply_ms.push((*replied - created).num_microseconds().unwrap_or(0).max(0) as u64);
            }
        }
        windows.push(window);
    }

    eprintln!("==> baseline: the same bids over the HTTP API, 10 bids/s");
    let mut baseline = Vec::new();
    for index in 0..(10 * seconds.min(5)) {
        amount_milli += 1;
        let key = format!("http-{index}");
        let sent = chrono::Utc::now();
        let response = client
            .post(format!("{base}/api/auction/bid"))
            .bearer_auth(&operator)
            .json(&json!({
                "auction_id": auction,
                "amount": format!("{}.{:03}", amount_milli / 1000, amount_milli % 1000),
                "bidder": { "id": format!("http{index}") },
                "idempotency_key": key,
            }))
            .send()
            .await?;
        anyhow::ensure!(
            response.status().is_success() || response.status() == 422,
            "bid: {}",
            response.status()
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let arrived = arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.get(&key).copied();
            if let Some(arrived) = arrived {
                baseline.push((arrived - sent).num_microseconds().unwrap_or(0).max(0) as u64);
                break;
            }
            if Instant::now() > deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop.cancel();
    server.terminate(Duration::from_secs(30))?;

    println!();
    println!("X integration (poll interval 2000 ms, simulator latency 0, embedded backend, one machine):");
    println!(
        "  {:>7} {:>6} {:>8} {:>16} {:>16} {:>8} {:>8} {:>9} {:>10} {:>11} {:>10}",
        "bids/s",
        "bids",
        "decided",
        "decision p50/p99",
        "reply p50/p99",
        "replies",
        "req/bid",
        "reads/bid",
        "posts/bid",
        "billed/bid",
        "$/100 bids"
    );
    for window in &windows {
        let per_bid = |value: f64| if window.decided == 0 { f64::NAN } else { value / window.decided as f64 };
        println!(
            "  {:>7} {:>6} {:>8} {:>7.0}/{:>5.0} ms {:>7.0}/{:>5.0} ms {:>8} {:>8.3} {:>9.3} {:>10.2} {:>11.2} {:>10.3}",
            window.rate,
            window.bids,
            window.decided,
            percentile_ms(&window.decision_ms, 0.50),
            percentile_ms(&window.decision_ms, 0.99),
            percentile_ms(&window.reply_ms, 0.50),
            percentile_ms(&window.reply_ms, 0.99),
            window.replies,
            per_bid(window.requests as f64),
            per_bid(window.reads as f64),
            per_bid(window.posts_read as f64),
            per_bid(window.billed as f64),
            per_bid(window.usd) * 100.0,
        );
    }
    println!(
        "  baseline, HTTP API at 10 bids/s: request to decision event p50 {:.1} ms, p99 {:.1} ms ({} bids)",
        percentile_ms(&baseline, 0.50),
        percentile_ms(&baseline, 0.99),
        baseline.len()
    );
    println!("  (X allows 100 posts per 15 min: replies beyond that wait for the next window.)");
    Ok(())
}
