//! The chain suite: bid decision latency with `verification: funds` (warm cache and
//! no cache, anvil local) beside `verification: none` on the same server in the same
//! run. A release `sothebais serve` on PostgreSQL + Redis; anvil from npm with the
//! test tokens and the settlement contract; linked, funded bidders.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use alloy::signers::SignerSync as _;
use alloy::signers::local::PrivateKeySigner;
use anyhow::Context as _;
use serde_json::{Value, json};
use sothebais_testkit::chain::{ChainFixture, eth};
use sothebais_testkit::free_ports;
use sothebais_testkit::process::{Process, binary, gateway, token};

use crate::Run;

/// Linked bidders, spread over the clients so the per-bidder rate rarely applies.
const BIDDERS: usize = 32;
/// Concurrent clients: few, so latency is the decision's, not a queue's.
const CLIENTS: usize = 4;

pub async fn run(postgres: &str, redis: &str, seconds: u64) -> anyhow::Result<()> {
    let seconds = Duration::from_secs(seconds);
    eprintln!("==> anvil with the test tokens and the settlement contract; {BIDDERS} funded bidders");
    let chain = ChainFixture::start().await;
    let mut wallets = Vec::new();
    for _ in 0..BIDDERS {
        let wallet = chain.anvil.account(10).await;
        chain.fund(&wallet, eth(5.0), eth(5.0)).await;
        wallets.push(wallet);
    }

    let mut rows = Vec::new();
    for (server, ttl_ms) in [("warm cache", 600_000u64), ("no cache", 1)] {
        let database = crate::fresh_database(postgres).await?;
        let mut settings = free_ports();
        settings.insert("DATABASE_URL".into(), database);
        settings.insert("REDIS_URL".into(), redis.to_owned());
        settings.insert("REDIS_KEY_PREFIX".into(), format!("bench:{}:", uuid::Uuid::new_v4().simple()));
        settings.insert("RUST_LOG".into(), "warn,sothebais_kit::listen=info".into());
        settings.insert("SOTHEBAIS_DOMAIN".into(), "bench.example".into());
        settings.insert("ETH_CACHE_TTL_MS".into(), ttl_ms.to_string());
        settings.insert("ETH_CHECK_DEADLINE_MS".into(), "2000".into());
        for (key, value) in chain.settings() {
            settings.insert(key, value);
        }
        let dir = tempfile::tempdir()?;
        let mut process = Process::start(
            &binary("sothebais"),
            &["serve", "--roles", "auction,events,admin"],
            dir.path(),
            &settings,
        )?;
        let listeners = process.wait_for_listeners(12, Duration::from_secs(60))?;
        let base = gateway(&listeners);
        let operator = token(dir.path(), &settings, "operator")?;
        let client = reqwest::Client::builder().timeout(Duration::from_secs(30)).build()?;
        for (index, wallet) in wallets.iter().enumerate() {
            link(&client, &base, &format!("bench{index}"), wallet).await?;
        }

        for verification in ["none", "funds"] {
            let auction = create(&client, &base, &operator, verification).await?;
            // One bid per bidder first: writers, connections and (with a cache) funds warm.
            let counter = Arc::new(AtomicU64::new(1_000_000));
            for index in 0..BIDDERS {
                bid(&client, &base, &operator, &auction, index, &counter).await;
            }
            eprintln!(
                "==> {server}: verification {verification}, {CLIENTS} clients, {} s",
                seconds.as_secs()
            );
            let (run, codes) = closed_loop(&client, &base, &operator, &auction, seconds, counter).await;
            rows.push((format!("{server}: verification {verification}"), run, codes));
        }
        process.terminate(Duration::from_secs(30))?;
    }

    println!();
    println!("| scenario | decisions/s | p50 ms | p99 ms | statuses | refusal codes |");
    println!("| --- | ---: | ---: | ---: | --- | --- |");
    for (name, run, codes) in &rows {
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:?} | {codes:?} |",
            run.rate(),
            run.percentile_ms(0.5),
            run.percentile_ms(0.99),
            run.statuses
        );
    }
    let p99 = |index: usize| rows.get(index).map_or(f64::NAN, |(_, run, _)| run.percentile_ms(0.99));
    println!();
    println!(
        "funds overhead at p99: warm cache {:+.2} ms against none on the same server; no cache {:+.2} ms (goal: <= 5 ms warm)",
        p99(1) - p99(0),
        p99(3) - p99(2)
    );
    Ok(())
}

async fn link(
    client: &reqwest::Client,
    base: &str,
    handle: &str,
    wallet: &PrivateKeySigner,
) -> anyhow::Result<()> {
    let challenge: Value = client
        .get(format!("{base}/api/chain/link/nonce?handle={handle}&address={}", wallet.address()))
        .send()
        .await?
        .json()
        .await?;
    let message = challenge["data"]["message"].as_str().context("link message")?;
    let signature = wallet.sign_message_sync(message.as_bytes())?.to_string();
    let linked: Value = client
        .post(format!("{base}/api/chain/link"))
        .json(&json!({ "handle": handle, "address": wallet.address(), "message": message, "signature": signature }))
        .send()
        .await?
        .json()
        .await?;
    anyhow::ensure!(linked["success"] == true, "link {handle}: {linked}");
    Ok(())
}

async fn create(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    verification: &str,
) -> anyhow::Result<String> {
    let response: Value = client
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(token)
        .json(&json!({
            "title": format!("Bench lot ({verification})"),
            "starting_price": "0.000000000000000001",
            "starts_at": chrono::Utc::now().to_rfc3339(),
            "duration_secs": 86400,
            "increment_table": [],
            "increment_percent": 0,
            "verification": verification,
        }))
        .send()
        .await?
        .json()
        .await?;
    Ok(response["data"]["id"].as_str().with_context(|| format!("auction id: {response}"))?.to_owned())
}

/// One bid by bidder `index % BIDDERS`; amounts rise with the shared counter.
async fn bid(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auction: &str,
    index: usize,
    counter: &AtomicU64,
) -> (u16, u64, Option<String>) {
    let n = counter.fetch_add(1, Ordering::Relaxed);
    let bidder = index % BIDDERS;
    let body = json!({
        "auction_id": auction,
        "amount": format!("0.{:018}", n),
        "bidder": { "id": format!("x:{bidder}"), "handle": format!("@bench{bidder}") },
    });
    let started = Instant::now();
    let answer = client.post(format!("{base}/api/auction/bid")).bearer_auth(token).json(&body).send().await;
    let micros = |started: Instant| started.elapsed().as_micros() as u64;
    match answer {
        Ok(response) => {
            let status = response.status().as_u16();
            let body: Value = response.json().await.unwrap_or(Value::Null);
            let code = body["error"]["code"].as_str().map(str::to_owned);
            (status, micros(started), code)
        }
        Err(_) => (0, micros(started), None),
    }
}

async fn closed_loop(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    auction: &str,
    duration: Duration,
    counter: Arc<AtomicU64>,
) -> (Run, BTreeMap<String, u64>) {
    let stop = Arc::new(AtomicBool::new(false));
    let mut tasks = Vec::new();
    for client_index in 0..CLIENTS {
        let (client, base, token, auction, stop, counter) = (
            client.clone(),
            base.to_owned(),
            token.to_owned(),
            auction.to_owned(),
            stop.clone(),
            counter.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut results = Vec::new();
            let mut index = client_index;
            while !stop.load(Ordering::Relaxed) {
                results.push(bid(&client, &base, &token, &auction, index, &counter).await);
                index += CLIENTS;
            }
            results
        }));
    }
    let started = Instant::now();
    tokio::time::sleep(duration).await;
    stop.store(true, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let mut statuses = BTreeMap::new();
    let mut codes = BTreeMap::new();
    let mut latencies_us = Vec::new();
    for task in tasks {
        for (status, latency, code) in task.await.unwrap_or_default() {
            *statuses.entry(status).or_insert(0u64) += 1;
            let failed_check = matches!(code.as_deref(), Some("INSUFFICIENT_FUNDS" | "BIDDER_NOT_VERIFIED"));
            if let Some(code) = code {
                *codes.entry(code).or_insert(0u64) += 1;
            }
            // A decision: accepted, or refused by the rules. A failed check would mean
            // the setup is wrong: it is listed, not counted.
            if status == 200 || (status == 422 && !failed_check) {
                latencies_us.push(latency);
            }
        }
    }
    (Run { decisions: latencies_us.len() as u64, elapsed, latencies_us, statuses }, codes)
}
