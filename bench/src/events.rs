//! The event handler's benchmark: events published on Redis Streams, validated,
//! stored in PostgreSQL by the event store consumer and delivered to one and to four
//! consumer groups, beside `redis-benchmark`'s XADD rate measured in the same run.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use async_trait::async_trait;
use sothebais_backend::bus::{EventBus, GroupStart, RedisBus, SubscribeOptions};
use sothebais_backend::events::dispatch::{self, Consumer, DispatchSettings, EventStore, RetryPolicy};
use sothebais_backend::storage::{PostgresStorage, Storage};
use sothebais_shared::events::{AgentMood, Category, Envelope, EventType, Mood, Source, TypePattern};
use tokio_util::sync::CancellationToken;

/// Publishing tasks (like the clients of redis-benchmark).
const PUBLISHERS: usize = 16;

/// A consumer that counts what it receives and how late.
#[derive(Debug)]
struct Counter {
    name: String,
    patterns: Vec<TypePattern>,
    received: AtomicU64,
    lags_us: Mutex<Vec<u64>>,
}

fn now_nanos() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |since| since.as_nanos())
}

#[async_trait]
impl Consumer for Counter {
    fn name(&self) -> &str {
        &self.name
    }

    fn patterns(&self) -> &[TypePattern] {
        &self.patterns
    }

    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        // The publish time travels in the data, in nanoseconds.
        let sent: u128 = event.data["expression"].as_str().unwrap_or("0").parse().unwrap_or(0);
        let lag = now_nanos().saturating_sub(sent) / 1000;
        self.lags_us.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.push(lag as u64);
        self.received.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

fn event() -> anyhow::Result<Envelope> {
    let data = AgentMood { mood: Mood::Excited, intensity: 0.9, expression: now_nanos().to_string() };
    Ok(Envelope::new(EventType::AgentMood, Source::AgentService, &data)?.correlated("bench"))
}

/// `redis-benchmark`'s XADD rate with a payload the size of one envelope.
fn xadd_rate(redis: &str, payload_len: usize) -> anyhow::Result<f64> {
    let port = redis
        .rsplit(':')
        .next()
        .and_then(|port| port.trim_end_matches('/').parse::<u16>().ok())
        .unwrap_or(6379);
    let key = format!("bench:xadd:{}", uuid::Uuid::new_v4().simple());
    let payload = "x".repeat(payload_len);
    let output = std::process::Command::new("redis-benchmark")
        .args(["-p", &port.to_string(), "-c", &PUBLISHERS.to_string(), "-n", "200000", "-q"])
        .args(["XADD", &key, "MAXLEN", "~", "100000", "*", "event", &payload])
        .output()
        .context("running redis-benchmark (package redis-tools)")?;
    let _ = std::process::Command::new("redis-cli").args(["-p", &port.to_string(), "DEL", &key]).output();
    let text = String::from_utf8_lossy(&output.stdout);
    let rate = text
        .rsplit("XADD")
        .next()
        .and_then(|tail| tail.split(": ").nth(1))
        .and_then(|tail| tail.split_whitespace().next())
        .and_then(|number| number.parse::<f64>().ok())
        .with_context(|| {
            format!(
                "cannot read redis-benchmark's output: {}",
                text.chars().rev().take(200).collect::<String>()
            )
        })?;
    Ok(rate)
}

/// One measured window.
pub struct Figures {
    pub groups: usize,
    pub max_rate: f64,
    pub paced_rate: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub stored: u64,
}

async fn stored_count(pool: &sqlx::PgPool) -> u64 {
    sqlx::query_scalar::<_, i64>("SELECT count(*) FROM events").fetch_one(pool).await.map_or(0, |n| n as u64)
}

/// Publishes from [`PUBLISHERS`] tasks for `duration`, at `rate` events/s in all, or
/// as fast as they can when `rate` is `None`; returns how many were published.
async fn publish(bus: Arc<dyn EventBus>, duration: Duration, rate: Option<f64>) -> u64 {
    let published = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..PUBLISHERS {
        let bus = bus.clone();
        let published = published.clone();
        tasks.push(tokio::spawn(async move {
            let mut ticker = rate.map(|rate| {
                let mut ticker = tokio::time::interval(Duration::from_secs_f64(PUBLISHERS as f64 / rate));
                ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                ticker
            });
            while Instant::now() < deadline {
                if let Some(ticker) = ticker.as_mut() {
                    ticker.tick().await;
                }
                let Ok(event) = event() else { break };
                if bus.publish(&event).await.is_ok() {
                    published.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    published.load(Ordering::Relaxed)
}

/// Waits until every counter has `expected` events and the store holds `stored`.
async fn drained(
    counters: &[Arc<Counter>],
    pool: &sqlx::PgPool,
    expected: u64,
    stored: u64,
) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let delivered = counters.iter().all(|counter| counter.received.load(Ordering::Relaxed) >= expected);
        if delivered && stored_count(pool).await >= stored {
            return Ok(());
        }
        anyhow::ensure!(
            Instant::now() < deadline,
            "events were not all delivered and stored within 5 minutes"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

async fn scenario(database_url: &str, redis: &str, groups: usize, seconds: u64) -> anyhow::Result<Figures> {
    let storage: Arc<dyn Storage> = Arc::new(PostgresStorage::connect(database_url).await?);
    let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
    let bus: Arc<dyn EventBus> = Arc::new(RedisBus::connect(redis, &prefix, 1_000_000).await?);
    let pool = sqlx::PgPool::connect(database_url).await?;
    let shutdown = CancellationToken::new();
    let settings =
        DispatchSettings { retry: RetryPolicy::default(), claim_idle: Duration::from_secs(30), batch: 512 };
    dispatch::spawn(
        storage.clone(),
        bus.clone(),
        Arc::new(EventStore::new(storage.clone())),
        settings,
        shutdown.clone(),
    );
    let agent: TypePattern = "agent:*".parse().map_err(|error: String| anyhow::anyhow!(error))?;
    let counters: Vec<Arc<Counter>> = (0..groups)
        .map(|n| {
            Arc::new(Counter {
                name: format!("bench-{n}"),
                patterns: vec![agent.clone()],
                received: AtomicU64::new(0),
                lags_us: Mutex::new(Vec::new()),
            })
        })
        .collect();
    for counter in &counters {
        dispatch::spawn(storage.clone(), bus.clone(), counter.clone(), settings, shutdown.clone());
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while storage.consumers().await?.len() < groups + 1 {
        anyhow::ensure!(Instant::now() < deadline, "consumers did not start");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    // Maximum: publish as fast as possible; time until everything is stored and delivered.
    let started = Instant::now();
    let published = publish(bus.clone(), Duration::from_secs(seconds), None).await;
    drained(&counters, &pool, published, published).await?;
    let max_rate = published as f64 / started.elapsed().as_secs_f64();

    // Half that rate: the lag from publish to delivery.
    for counter in &counters {
        counter.received.store(0, Ordering::Relaxed);
        counter.lags_us.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.clear();
    }
    let paced_rate = max_rate / 2.0;
    let paced = publish(bus.clone(), Duration::from_secs(seconds), Some(paced_rate)).await;
    drained(&counters, &pool, paced, published + paced).await?;
    let mut lags: Vec<u64> = Vec::new();
    for counter in &counters {
        lags.extend(counter.lags_us.lock().map_err(|_| anyhow::anyhow!("poisoned"))?.iter());
    }
    let stored = stored_count(&pool).await;
    shutdown.cancel();
    Ok(Figures {
        groups,
        max_rate,
        paced_rate: paced as f64 / seconds as f64,
        p50_ms: super::percentile_ms(&lags, 0.5),
        p99_ms: super::percentile_ms(&lags, 0.99),
        stored,
    })
}

/// The ceiling the transport puts on the pipeline: the same publishers, and `groups`
/// consumer groups that read and acknowledge each batch and do nothing else (no
/// validation, no store, no handled ids). Returns events/s until every group has
/// acknowledged everything published.
async fn transport_ceiling(redis: &str, groups: usize, seconds: u64) -> anyhow::Result<f64> {
    let prefix = format!("bench:{}:", uuid::Uuid::new_v4().simple());
    let bus: Arc<dyn EventBus> = Arc::new(RedisBus::connect(redis, &prefix, 1_000_000).await?);
    let shutdown = CancellationToken::new();
    // The readers stop when this function returns, whichever way.
    let _stop_readers = shutdown.clone().drop_guard();
    let acknowledged: Vec<Arc<AtomicU64>> = (0..groups).map(|_| Arc::new(AtomicU64::new(0))).collect();
    for (n, count) in acknowledged.iter().enumerate() {
        let options =
            SubscribeOptions::new(&format!("ceiling-{n}"), "bench", &[Category::Agent], GroupStart::Latest);
        let mut subscription = bus.subscribe(options).await?;
        let (count, shutdown) = (count.clone(), shutdown.clone());
        tokio::spawn(async move {
            while !shutdown.is_cancelled() {
                let batch = match subscription.read(512, Duration::from_millis(100)).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        eprintln!("ceiling reader {n}: {error}");
                        return;
                    }
                };
                if batch.is_empty() {
                    continue;
                }
                if let Err(error) = subscription.ack_many(&batch).await {
                    eprintln!("ceiling reader {n}: {error}");
                    return;
                }
                count.fetch_add(batch.len() as u64, Ordering::Relaxed);
            }
        });
    }
    let started = Instant::now();
    let published = publish(bus.clone(), Duration::from_secs(seconds), None).await;
    let deadline = Instant::now() + Duration::from_secs(120);
    while acknowledged.iter().any(|count| count.load(Ordering::Relaxed) < published) {
        anyhow::ensure!(Instant::now() < deadline, "the ceiling's groups did not catch up within 2 minutes");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(published as f64 / started.elapsed().as_secs_f64())
}

/// Runs the event benchmark and prints its table.
pub async fn run(postgres: &str, redis: &str, seconds: u64) -> anyhow::Result<()> {
    let payload_len = serde_json::to_string(&event()?)?.len();
    eprintln!("==> baseline: redis-benchmark XADD, {PUBLISHERS} clients, {payload_len}-byte entries");
    let xadd = xadd_rate(redis, payload_len)?;
    let mut ceilings = Vec::new();
    for groups in [1, 4] {
        eprintln!(
            "==> ceiling: published on Redis, read and acknowledged by {groups} group(s), nothing else"
        );
        ceilings.push((groups, transport_ceiling(redis, groups, seconds).await?));
    }
    let mut rows = Vec::new();
    for groups in [1, 4] {
        eprintln!("==> events: published on Redis, stored, delivered to {groups} consumer group(s)");
        let database = super::fresh_database(postgres).await?;
        rows.push(scenario(&database, redis, groups, seconds).await?);
    }
    // The box's speed drifts within minutes: XADD again after the scenarios, and the
    // ratios against the mean of both.
    eprintln!("==> baseline again, after the scenarios");
    let xadd_after = xadd_rate(redis, payload_len)?;
    let xadd_mean = (xadd + xadd_after) / 2.0;
    println!();
    println!("| scenario | events/s | vs XADD | paced events/s | p50 lag ms | p99 lag ms | stored |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    for (when, rate) in [("before", xadd), ("after", xadd_after)] {
        println!(
            "| baseline: redis-benchmark XADD, {PUBLISHERS} clients, {payload_len} B, {when} | {rate:.0} | {:.0} % | | | | |",
            100.0 * rate / xadd_mean
        );
    }
    for (groups, rate) in ceilings {
        println!(
            "| ceiling: read and acknowledged by {groups} group(s), nothing else | {rate:.0} | {:.0} % | | | | |",
            100.0 * rate / xadd_mean
        );
    }
    for row in rows {
        println!(
            "| validated, stored, delivered to {} group(s) | {:.0} | {:.0} % | {:.0} | {:.2} | {:.2} | {} |",
            row.groups,
            row.max_rate,
            100.0 * row.max_rate / xadd_mean,
            row.paced_rate,
            row.p50_ms,
            row.p99_ms,
            row.stored
        );
    }
    println!(
        "goal: >= 50 % of the XADD rate (the mean of its two runs) end to end; p99 lag <= 10 ms at half that rate"
    );
    Ok(())
}
