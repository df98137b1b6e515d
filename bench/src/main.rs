//! `sothebais-bench`: drives the real HTTP API of a real `sothebais serve` (release
//! build) on PostgreSQL and Redis, and prints decisions/s and decision latency beside
//! a baseline measured in the same run: raw single-row durable inserts into the same
//! PostgreSQL by 16 clients.
//!
//! ```sh
//! scripts/bench                      # everything, default durations
//! scripts/bench -- --seconds 5       # shorter runs
//! scripts/bench -- --memory-bids 1000000   # also the 1-million-bid memory run
//! scripts/bench -- --suite events    # the event handler: Redis Streams to consumers
//! scripts/bench -- --suite console   # the dashboard: first load, 20 dashboards on a hot lot
//! scripts/bench -- --suite voice     # the voice: agent:message to first audible sample
//! scripts/bench -- --suite demo      # the whole demo: CPU, memory and drops while the hot lot runs
//! scripts/bench -- --suite chain     # bid latency with funds checks (warm, uncached) beside none, on anvil
//! ```

#![expect(clippy::print_stdout, clippy::print_stderr, reason = "a benchmark's output is its report")]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use serde_json::{Value, json};
use sothebais_kit::stats::percentile_of;
use sothebais_testkit::free_ports;
use sothebais_testkit::process::{Process, binary, gateway, token};
use sqlx::Connection as _;

mod agent;
mod chain;
mod console;
mod cpu;
mod demo;
mod events;
mod renderer;
mod social;
mod voice;

/// Which benchmarks to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Suite {
    /// The auction engine through its HTTP API, beside raw PostgreSQL inserts.
    Auction,
    /// The event handler: Redis Streams to stored and delivered events, beside XADD.
    Events,
    /// The renderer: fps, frame times and CPU at 720p and 1080p, beside ffmpeg alone.
    Renderer,
    /// The X integration: posts on the simulator to decisions and replies, beside HTTP bids.
    X,
    /// The AI host: event-to-line latency (templates, a stub model) and memory.
    Agent,
    /// The console: the dashboard's first load, and dashboards during a hot lot (needs a release renderer).
    Console,
    /// The host's voice on the stream: message to first audible sample, fps while speaking (needs a release renderer).
    Voice,
    /// The whole demo on this machine, CPU and memory while its hot lot runs, beside the renderer alone (needs a release renderer).
    Demo,
    /// Ethereum: bid decision latency with funds checks (warm cache, no cache) beside none, on anvil.
    Chain,
    /// Auction, events, X and the host (the renderer has its own suite: it needs a release renderer).
    All,
}

#[derive(Debug, Parser)]
#[command(
    name = "sothebais-bench",
    about = "Benchmark the auction engine (HTTP API vs raw PostgreSQL inserts) and the event handler (Redis Streams delivery vs XADD)"
)]
struct Args {
    /// Which benchmarks to run
    #[arg(long, value_enum, default_value_t = Suite::All)]
    suite: Suite,
    /// Seconds per measured scenario
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Concurrent bidders on the hot auction
    #[arg(long, default_value_t = 64)]
    hot_clients: usize,
    /// Auctions in the many-auctions scenario
    #[arg(long, default_value_t = 100)]
    auctions: usize,
    /// Concurrent clients in the many-auctions scenario
    #[arg(long, default_value_t = 128)]
    many_clients: usize,
    /// Clients of the raw-insert baseline
    #[arg(long, default_value_t = 16)]
    baseline_clients: usize,
    /// Also run this many bids on one auction and sample the server's memory
    #[arg(long, default_value_t = 0)]
    memory_bids: u64,
    /// Bids whose lines the agent suite times
    #[arg(long, default_value_t = 500)]
    agent_lines: usize,
    /// Bidder interactions of the agent suite's memory run
    #[arg(long, default_value_t = 100_000)]
    agent_interactions: usize,
    /// The stub model's own time per line in the agent suite, in ms
    #[arg(long, default_value_t = 200)]
    agent_model_ms: u64,
    /// The length of each lot of the demo suite's campaign, in seconds
    #[arg(long, default_value_t = 45)]
    demo_lot_secs: u64,
    /// Dashboards connected in the console suite
    #[arg(long, default_value_t = 20)]
    dashboards: usize,
    /// PostgreSQL to create the benchmark database in
    #[arg(
        long,
        env = "SOTHEBAIS_TEST_POSTGRES_URL",
        default_value = "postgres://postgres:postgres@127.0.0.1:5432/test"
    )]
    postgres: String,
    /// Redis for the event bus
    #[arg(long, env = "SOTHEBAIS_TEST_REDIS_URL", default_value = "redis://127.0.0.1:6379")]
    redis: String,
}

/// Latencies and a count over a measured window.
struct Run {
    decisions: u64,
    elapsed: Duration,
    latencies_us: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
}

/// The `p` quantile of latencies in microseconds, in milliseconds (NaN for none).
fn percentile_ms(micros: &[u64], p: f64) -> f64 {
    let mut millis: Vec<f64> = micros.iter().map(|us| *us as f64 / 1000.0).collect();
    percentile_of(&mut millis, p).unwrap_or(f64::NAN)
}

impl Run {
    fn rate(&self) -> f64 {
        self.decisions as f64 / self.elapsed.as_secs_f64()
    }

    fn percentile_ms(&self, p: f64) -> f64 {
        percentile_ms(&self.latencies_us, p)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if matches!(args.suite, Suite::Auction | Suite::All) {
        auction(&args).await?;
    }
    if matches!(args.suite, Suite::Events | Suite::All) {
        events::run(&args.postgres, &args.redis, args.seconds).await?;
    }
    if matches!(args.suite, Suite::X | Suite::All) {
        social::run(args.seconds).await?;
    }
    if matches!(args.suite, Suite::Agent | Suite::All) {
        agent::run(args.agent_lines, args.agent_interactions, args.agent_model_ms).await?;
    }
    if args.suite == Suite::Chain {
        chain::run(&args.postgres, &args.redis, args.seconds).await?;
    }
    if args.suite == Suite::Console {
        console::run(args.seconds, args.dashboards).await?;
    }
    if args.suite == Suite::Voice {
        voice::run(args.seconds).await?;
    }
    if args.suite == Suite::Demo {
        demo::run(args.demo_lot_secs).await?;
    }
    if args.suite == Suite::Renderer {
        let seconds = args.seconds;
        tokio::task::spawn_blocking(move || renderer::run(seconds)).await??;
    }
    Ok(())
}

async fn auction(args: &Args) -> anyhow::Result<()> {
    eprintln!("sothebais-bench: {} s per scenario; server {}", args.seconds, binary("sothebais").display());

    let database = fresh_database(&args.postgres).await?;
    let seconds = Duration::from_secs(args.seconds);
    eprintln!("==> baseline: raw single-row durable inserts, {} clients", args.baseline_clients);
    let (baseline_before, baseline_before_usage) =
        cpu::measured(None, baseline(&database, args.baseline_clients, seconds)).await;
    let baseline_before = baseline_before?;

    let mut settings = free_ports();
    settings.insert("DATABASE_URL".into(), database.clone());
    settings.insert("REDIS_URL".into(), args.redis.clone());
    settings.insert("REDIS_KEY_PREFIX".into(), format!("bench:{}:", uuid::Uuid::new_v4().simple()));
    settings.insert("RUST_LOG".into(), "warn,sothebais_kit::listen=info,sothebais_backend::app=info".into());
    let dir = tempfile::tempdir()?;
    let mut server = Process::start(
        &binary("sothebais"),
        &["serve", "--roles", "auction,events,admin"],
        dir.path(),
        &settings,
    )?;
    let listeners = server.wait_for_listeners(12, Duration::from_secs(60))?;
    let base = gateway(&listeners);
    let token = token(dir.path(), &settings, "operator")?;
    let pid = Some(server.id());
    let client =
        reqwest::Client::builder().pool_max_idle_per_host(512).timeout(Duration::from_secs(30)).build()?;

    eprintln!("==> (a) one hot auction, {} concurrent bidders", args.hot_clients);
    let hot = create_auctions(&client, &base, &token, 1).await?;
    warm_up(&client, &base, &token, &hot).await?;
    let (hot_run, hot_run_usage) = cpu::measured(
        pid,
        closed_loop(&client, &base, &token, &hot, args.hot_clients, seconds, Request::Bid),
    )
    .await;

    eprintln!("==> (b) {} concurrent auctions, {} clients", args.auctions, args.many_clients);
    let many = create_auctions(&client, &base, &token, args.auctions).await?;
    warm_up(&client, &base, &token, &many).await?;
    let (many_run, many_run_usage) = cpu::measured(
        pid,
        closed_loop(&client, &base, &token, &many, args.many_clients, seconds, Request::Bid),
    )
    .await;

    eprintln!(
        "==> ceiling: the same bid requests refused before the engine, {} clients over {} auctions",
        args.many_clients, args.auctions
    );
    let (ceiling, ceiling_usage) = cpu::measured(
        pid,
        closed_loop(&client, &base, &token, &many, args.many_clients, seconds, Request::Refused),
    )
    .await;

    let half = (hot_run.rate() / 2.0).max(1.0);
    eprintln!("==> (c) one hot auction paced at half its maximum: {half:.0} bids/s");
    let paced_auction = create_auctions(&client, &base, &token, 1).await?;
    let (paced, paced_usage) =
        cpu::measured(pid, open_loop(&client, &base, &token, &paced_auction[0], half, seconds)).await;

    let half_many = (many_run.rate() / 2.0).max(1.0);
    eprintln!("==> (d) {} auctions paced at half their maximum: {half_many:.0} bids/s", args.auctions);
    let (paced_many, paced_many_usage) =
        cpu::measured(pid, open_loop_many(&client, &base, &token, &many, half_many, seconds)).await;

    // The box's speed drifts within minutes: the baseline again, after the scenarios
    // it is compared with, and the ratios against the mean of both.
    eprintln!("==> baseline again, after the scenarios");
    let (baseline_after, baseline_after_usage) =
        cpu::measured(pid, baseline(&database, args.baseline_clients, seconds)).await;
    let baseline_after = baseline_after?;
    let baseline_rate = (baseline_before.rate() + baseline_after.rate()) / 2.0;

    let memory = if args.memory_bids > 0 {
        eprintln!("==> (e) {} bids on one auction, sampling the server's memory", args.memory_bids);
        let auction = create_auctions(&client, &base, &token, 1).await?;
        Some(memory_run(&client, &base, &token, &auction[0], args.memory_bids, server.id()).await)
    } else {
        None
    };

    eprintln!("==> (f) closing delay: 50 auctions ending 100 ms apart");
    let events_ws = sothebais_testkit::process::addr(&listeners, "events", "ws");
    let mut closing = closing_delays(&client, &base, &token, &events_ws, 50).await?;

    let lag = outbox_lag(&client, &base).await;
    server.terminate(Duration::from_secs(30))?;

    let rows = [
        (
            format!("baseline: raw durable inserts, {} clients, before", args.baseline_clients),
            &baseline_before,
            baseline_before_usage,
        ),
        (
            format!("baseline: raw durable inserts, {} clients, after", args.baseline_clients),
            &baseline_after,
            baseline_after_usage,
        ),
        (format!("(a) one hot auction, {} bidders", args.hot_clients), &hot_run, hot_run_usage),
        (format!("(b) {} auctions, {} clients", args.auctions, args.many_clients), &many_run, many_run_usage),
        (
            format!("ceiling: bid requests refused before the engine (400), {} clients", args.many_clients),
            &ceiling,
            ceiling_usage,
        ),
        ("(c) hot auction at half its max rate".to_owned(), &paced, paced_usage),
        (format!("(d) {} auctions at half their max rate", args.auctions), &paced_many, paced_many_usage),
    ];
    println!();
    println!("| scenario | decisions/s | p50 ms | p99 ms | vs baseline | statuses |");
    println!("| --- | ---: | ---: | ---: | ---: | --- |");
    let row = |name: &str, run: &Run| {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.0} % | {:?} |",
            run.rate(),
            run.percentile_ms(0.5),
            run.percentile_ms(0.99),
            100.0 * run.rate() / baseline_rate,
            run.statuses
        );
    };
    for (name, run, _) in &rows {
        row(name, run);
    }
    if let Some((run, samples)) = memory {
        row("(e) memory run", &run);
        println!();
        println!("server memory (RSS MiB) every 10 % of the memory run: {samples:?}");
    }
    println!();
    println!("CPU per decision (per row for the baseline, per request for the ceiling), in µs of one core:");
    println!();
    println!("| scenario | server | PostgreSQL | Redis | load generator | whole machine | machine busy |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (name, run, usage) in &rows {
        let per = |seconds: f64| 1e6 * seconds / (run.decisions.max(1) as f64);
        println!(
            "| {name} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} % |",
            per(usage.server),
            per(usage.postgres),
            per(usage.redis),
            per(usage.generator),
            per(usage.machine),
            100.0 * usage.busy_share
        );
    }
    println!();
    println!(
        "(f) closing delay, ends_at + grace to auction:end on the event stream (after its commit), over {} auctions: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (goal p99 <= 100 ms)",
        closing.len(),
        percentile_of(&mut closing, 0.5).unwrap_or(f64::NAN),
        percentile_of(&mut closing, 0.99).unwrap_or(f64::NAN),
        percentile_of(&mut closing, 1.0).unwrap_or(f64::NAN)
    );
    println!("outbox: {lag}");
    println!(
        "goals: (a) >= 50 % and (b) >= 90 % of the baseline (the mean of its two runs); p99 <= 25 ms at half the maximum rate"
    );
    Ok(())
}

async fn fresh_database(admin_url: &str) -> anyhow::Result<String> {
    let mut connection = sqlx::PgConnection::connect(admin_url).await.context("connecting to PostgreSQL")?;
    let name = format!("sothebais_bench_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}")).execute(&mut connection).await?;
    let base = admin_url.rsplit_once('/').map_or(admin_url, |(base, _)| base);
    Ok(format!("{base}/{name}"))
}

async fn baseline(url: &str, clients: usize, duration: Duration) -> anyhow::Result<Run> {
    let mut setup = sqlx::PgConnection::connect(url).await?;
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS bench_baseline (id BIGSERIAL PRIMARY KEY, payload TEXT NOT NULL)",
    )
    .execute(&mut setup)
    .await?;
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let mut connection = sqlx::PgConnection::connect(url).await?;
        let stop = stop.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let inserted = sqlx::query("INSERT INTO bench_baseline (payload) VALUES ($1)")
                    .bind("a bid-sized row of about a hundred bytes, like the decision the engine stores per bid....")
                    .execute(&mut connection)
                    .await;
                if inserted.is_ok() {
                    latencies.push(started.elapsed().as_micros() as u64);
                }
            }
            latencies
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let mut latencies_us = Vec::new();
    for task in tasks {
        latencies_us.extend(task.await?);
    }
    Ok(Run {
        decisions: latencies_us.len() as u64,
        elapsed: started.elapsed(),
        statuses: BTreeMap::from([(0, latencies_us.len() as u64)]),
        latencies_us,
    })
}

async fn create_auctions(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    count: usize,
) -> anyhow::Result<Vec<String>> {
    let mut ids = Vec::new();
    for index in 0..count {
        let response: Value = client
            .post(format!("{base}/api/auction/auctions"))
            .bearer_auth(token)
            .json(&json!({
                "title": format!("Bench lot {index}"),
                "starting_price": "0.000000000000000001",
                "starts_at": chrono::Utc::now().to_rfc3339(),
                "duration_secs": 86400,
                "increment_table": [],
                "increment_percent": 0,
            }))
            .send()
            .await?
            .json()
            .await?;
        ids.push(response["data"]["id"].as_str().context("auction id")?.to_owned());
    }
    Ok(ids)
}

/// A few bids per auction so connections, writers and caches are warm.
async fn warm_up(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auctions: &[String],
) -> anyhow::Result<()> {
    let counter = AtomicU64::new(0);
    for auction in auctions {
        send_bid(client, base, token, auction, &counter, Request::Bid).await;
    }
    Ok(())
}

/// What the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Request {
    /// A bid: a durable decision.
    Bid,
    /// The same request with a blank bidder id: authenticated and read like a bid,
    /// then refused (400) before the engine. Its rate is the ceiling the HTTP path,
    /// the load generator and the box put on decisions, whatever the engine does.
    Refused,
}

impl Request {
    /// The statuses that count: a decided bid is accepted (200) or rejected by the
    /// rules (422); a refusal is the request a decision rides on, without the decision.
    fn counted(self) -> &'static [u16] {
        match self {
            Request::Bid => &[200, 422],
            Request::Refused => &[400],
        }
    }
}

/// One bid request. Amounts rise with a shared counter: most bids are accepted,
/// those overtaken are rejected; every one is a durable decision.
async fn send_bid(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auction: &str,
    counter: &AtomicU64,
    request: Request,
) -> (u16, u64) {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let bidder = if request == Request::Refused { " ".to_owned() } else { format!("bidder-{n}") };
    let body = json!({
        "auction_id": auction,
        "amount": format!("0.{:018}", 1_000_000 + n),
        "bidder": { "id": bidder },
    });
    let started = Instant::now();
    let status =
        match client.post(format!("{base}/api/auction/bid")).bearer_auth(token).json(&body).send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let _ = response.bytes().await;
                status
            }
            Err(_) => 0,
        };
    (status, started.elapsed().as_micros() as u64)
}

async fn closed_loop(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auctions: &[String],
    clients: usize,
    duration: Duration,
    request: Request,
) -> Run {
    let stop = Arc::new(AtomicBool::new(false));
    let counter = Arc::new(AtomicU64::new(1_000_000_000));
    let mut tasks = Vec::new();
    for index in 0..clients {
        let (client, base, token, stop, counter) =
            (client.clone(), base.to_owned(), token.to_owned(), stop.clone(), counter.clone());
        let auction = auctions[index % auctions.len()].clone();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                results.push(send_bid(&client, &base, &token, &auction, &counter, request).await);
            }
            results
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.unwrap_or_default());
    }
    summarize(results, elapsed, request)
}

/// Counts the answers with a status that counts for `request`, and their latencies.
fn summarize(results: Vec<(u16, u64)>, elapsed: Duration, request: Request) -> Run {
    let counted = request.counted();
    let mut statuses = BTreeMap::new();
    let mut latencies_us = Vec::new();
    for (status, latency) in results {
        *statuses.entry(status).or_insert(0) += 1;
        if counted.contains(&status) {
            latencies_us.push(latency);
        }
    }
    Run { decisions: latencies_us.len() as u64, elapsed, latencies_us, statuses }
}

/// Bids sent at a fixed rate whatever the answers do (open loop), spread over auctions.
async fn open_loop_many(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auctions: &[String],
    rate: f64,
    duration: Duration,
) -> Run {
    let counter = Arc::new(AtomicU64::new(5_000_000_000));
    let interval = Duration::from_secs_f64(1.0 / rate);
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = futures::stream::FuturesUnordered::new();
    let mut index = 0usize;
    while started.elapsed() < duration {
        ticker.tick().await;
        let (client, base, token, counter) =
            (client.clone(), base.to_owned(), token.to_owned(), counter.clone());
        let auction = auctions[index % auctions.len()].clone();
        index += 1;
        tasks.push(tokio::spawn(async move {
            send_bid(&client, &base, &token, &auction, &counter, Request::Bid).await
        }));
    }
    let elapsed = started.elapsed();
    let mut results = Vec::new();
    use futures::StreamExt as _;
    while let Some(result) = tasks.next().await {
        if let Ok(result) = result {
            results.push(result);
        }
    }
    summarize(results, elapsed, Request::Bid)
}

async fn open_loop(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auction: &str,
    rate: f64,
    duration: Duration,
) -> Run {
    open_loop_many(client, base, token, &[auction.to_owned()], rate, duration).await
}

fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|line| line.starts_with("VmRSS:"))
                .and_then(|line| line.split_whitespace().nth(1).and_then(|kib| kib.parse::<f64>().ok()))
        })
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

async fn memory_run(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auction: &str,
    bids: u64,
    pid: u32,
) -> (Run, Vec<f64>) {
    let counter = Arc::new(AtomicU64::new(9_000_000_000));
    let sent = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::new();
    let started = Instant::now();
    for _ in 0..64 {
        let (client, base, token, counter, sent) =
            (client.clone(), base.to_owned(), token.to_owned(), counter.clone(), sent.clone());
        let auction = auction.to_owned();
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            while sent.fetch_add(1, Ordering::Relaxed) < bids {
                let (status, latency) =
                    send_bid(&client, &base, &token, &auction, &counter, Request::Bid).await;
                // Keep counts only: a million latencies would be the bench's own memory.
                if results.len() < 100_000 {
                    results.push((status, latency));
                }
            }
            results
        }));
    }
    let mut samples = vec![rss_mib(pid)];
    let mut next_mark = bids / 10;
    while tasks.iter().any(|task| !task.is_finished()) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if sent.load(Ordering::Relaxed) >= next_mark && next_mark <= bids {
            samples.push((rss_mib(pid) * 10.0).round() / 10.0);
            next_mark += bids / 10;
        }
    }
    let elapsed = started.elapsed();
    let mut results = Vec::new();
    for task in tasks {
        results.extend(task.await.unwrap_or_default());
    }
    let mut run = summarize(results, elapsed, Request::Bid);
    run.decisions = bids;
    (run, samples)
}

async fn outbox_lag(client: &reqwest::Client, base: &str) -> String {
    let Ok(response) =
        client.get(format!("{base}/api/events/auction:bid:accepted/history?limit=1")).send().await
    else {
        return "unknown".into();
    };
    let Ok(body) = response.json::<Value>().await else { return "unknown".into() };
    format!("latest accepted-bid event stored at {}", body["data"]["events"][0]["timestamp"])
}

/// Creates auctions closing 100 ms apart and measures how long after `ends_at + grace`
/// each one's `auction:end` arrives on the event stream WebSocket. The relay publishes
/// an event only once its transaction has committed, so the delay ends after the
/// commit (it includes the relay's hop), never before it.
async fn closing_delays(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    events_ws: &str,
    count: usize,
) -> anyhow::Result<Vec<f64>> {
    use futures::StreamExt as _;
    let (mut socket, _) = tokio_tungstenite::connect_async(format!("ws://{events_ws}/?types=auction:end"))
        .await
        .context("the event stream")?;
    let arrivals: Arc<std::sync::Mutex<BTreeMap<String, i64>>> = Arc::default();
    let collected = arrivals.clone();
    let follower = tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let arrived = chrono::Utc::now().timestamp_millis();
            let Ok(text) = message.into_text() else { continue };
            let Ok(event) = serde_json::from_str::<Value>(&text) else { continue };
            if let (Some(id), Ok(mut arrivals)) = (event["data"]["auction"]["id"].as_str(), collected.lock())
            {
                arrivals.entry(id.to_owned()).or_insert(arrived);
            }
        }
    });
    let start = chrono::Utc::now() + chrono::Duration::seconds(1);
    let mut closes = BTreeMap::new();
    for index in 0..count {
        let response: Value = client
            .post(format!("{base}/api/auction/auctions"))
            .bearer_auth(token)
            .json(&json!({
                "title": format!("Closing lot {index}"),
                "starting_price": "1",
                "starts_at": (start + chrono::Duration::milliseconds(100 * index as i64)).to_rfc3339(),
                "duration_secs": 2,
                "late_grace_secs": 0,
                "anti_snipe": null,
            }))
            .send()
            .await?
            .json()
            .await?;
        let id = response["data"]["id"].as_str().context("auction id")?.to_owned();
        let closes_at = chrono::DateTime::parse_from_rfc3339(
            response["data"]["closes_at"].as_str().context("closes_at")?,
        )?;
        closes.insert(id, closes_at.timestamp_millis());
    }
    tokio::time::sleep(Duration::from_millis(4_000 + 100 * count as u64)).await;
    follower.abort();
    let arrivals = arrivals.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clone();
    let delays: Vec<f64> = closes
        .iter()
        .filter_map(|(id, closes_at)| arrivals.get(id).map(|arrived| (arrived - closes_at) as f64))
        .collect();
    if delays.len() != count {
        bail!("only {} of {count} auctions closed", delays.len());
    }
    Ok(delays)
}
