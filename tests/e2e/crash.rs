//! Crash safety: a bid storm against a real `sothebais serve`, killed with SIGKILL
//! mid-storm and started again. Every bid that was answered 200 or 422 must be in the
//! history with the same decision, the hash chain must verify, and the auction must
//! still close at its time with the winner the log implies.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use sothebais_testkit::process::{Process, binary, gateway, get_json, token};
use sothebais_testkit::{Backend, eventually};
use tokio::sync::Mutex;

/// A decision a client was told about.
#[derive(Debug, Clone, PartialEq)]
struct Acknowledged {
    id: String,
    seq: u64,
    status: String,
    reason: Value,
    hash: String,
}

fn acknowledged(bid: &Value) -> Acknowledged {
    Acknowledged {
        id: bid["id"].as_str().unwrap_or_default().to_owned(),
        seq: bid["seq"].as_u64().unwrap_or_default(),
        status: bid["status"].as_str().unwrap_or_default().to_owned(),
        reason: bid["reason"].clone(),
        hash: bid["hash"].as_str().unwrap_or_default().to_owned(),
    }
}

async fn storm_then_crash(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = backend.process_settings().await;
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, Duration::from_secs(30)).expect("listening"));
    let token = token(dir.path(), &env, "operator").expect("token");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().expect("client");

    let (status, created): (u16, Value) = {
        let response = client
            .post(format!("{base}/api/auction/auctions"))
            .bearer_auth(&token)
            .json(&json!({
                "title": "Crash test lot",
                "starting_price": "0.01",
                "starts_at": chrono::Utc::now().to_rfc3339(),
                "duration_secs": 12,
                "late_grace_secs": 1,
                "anti_snipe": null,
                "increment_table": [],
                "increment_percent": 0,
            }))
            .send()
            .await
            .expect("create");
        (response.status().as_u16(), response.json().await.expect("json"))
    };
    assert_eq!(status, 201, "{created}");
    let auction_id = created["data"]["id"].as_str().expect("id").to_owned();
    let closes_at = created["data"]["closes_at"].as_str().expect("closes_at").to_owned();

    let answers: Arc<Mutex<Vec<Acknowledged>>> = Arc::default();
    let mut clients = Vec::new();
    for worker in 0..16u64 {
        let (client, base, token, auction_id, answers) =
            (client.clone(), base.clone(), token.clone(), auction_id.clone(), answers.clone());
        clients.push(tokio::spawn(async move {
            for round in 0u64.. {
                // Rising amounts with collisions between workers: accepted and rejected both.
                let amount = format!("0.{:04}", 100 + round * 16 + worker % 8);
                let body = json!({
                    "auction_id": auction_id,
                    "amount": amount,
                    "bidder": { "id": format!("bidder-{worker}") },
                    "idempotency_key": format!("w{worker}-r{round}"),
                });
                let Ok(response) = client
                    .post(format!("{base}/api/auction/bid"))
                    .bearer_auth(&token)
                    .json(&body)
                    .send()
                    .await
                else {
                    return; // the server is gone
                };
                let status = response.status().as_u16();
                let Ok(body) = response.json::<Value>().await else { return };
                match status {
                    200 => answers.lock().await.push(acknowledged(&body["data"]["bid"])),
                    422 => answers.lock().await.push(acknowledged(&body["error"]["details"]["bid"])),
                    _ => {}
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    server.kill().expect("kill -9");
    for client in clients {
        let _ = client.await;
    }
    let answers = answers.lock().await.clone();
    assert!(answers.len() > 20, "the storm was answered before the crash: {}", answers.len());

    let mut restarted = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("restart");
    let base = gateway(&restarted.wait_for_listeners(20, Duration::from_secs(30)).expect("listening again"));
    let mut history: Vec<Value> = Vec::new();
    loop {
        let after = history.last().and_then(|bid| bid["seq"].as_u64()).unwrap_or(0);
        let url = format!("{base}/api/auction/history?auction_id={auction_id}&limit=1000&after_seq={after}");
        let page = get_json(&client, &url).await.expect("history");
        let bids = page["data"]["bids"].as_array().cloned().unwrap_or_default();
        if bids.is_empty() {
            break;
        }
        history.extend(bids);
    }
    let stored: BTreeMap<String, Acknowledged> =
        history.iter().map(acknowledged).map(|bid| (bid.id.clone(), bid)).collect();
    for answer in &answers {
        assert_eq!(
            stored.get(&answer.id),
            Some(answer),
            "an acknowledged bid is stored with the same decision"
        );
    }

    // The auction still closes at its time, with the winner its log implies.
    let auction_url = format!("{base}/api/auction/auctions/{auction_id}");
    let closed = eventually(Duration::from_secs(30), "the auction is closed", async || {
        let current = get_json(&client, &auction_url).await.expect("auction");
        (current["data"]["state"] == "closed").then(|| current["data"].clone())
    })
    .await
    .expect("closed");
    let verified = get_json(&client, &format!("{auction_url}/verify")).await.expect("verify");
    assert_eq!(verified["data"]["chain_valid"], true, "{verified}");
    assert_eq!(verified["data"]["outcome_from_log"], closed["outcome"], "{verified}");
    assert_eq!(closed["closes_at"].as_str(), Some(closes_at.as_str()), "the schedule did not move");
    // The view above is the auction as of now; the close itself is committed by the
    // scheduler at closes_at, which on a loaded machine may be a moment later.
    let ends_url = format!("{base}/api/events/auction:end/history?limit=10");
    let end = eventually(Duration::from_secs(30), "its auction:end is stored", async || {
        let ends = get_json(&client, &ends_url).await.expect("events");
        ends["data"]["events"]
            .as_array()
            .and_then(|events| {
                events.iter().find(|event| event["data"]["auction"]["id"] == auction_id.as_str())
            })
            .cloned()
    })
    .await
    .expect("an auction:end event");
    let closes_at_ms = chrono::DateTime::parse_from_rfc3339(&closes_at).expect("time").timestamp_millis();
    let closed_at_ms = end["timestamp"].as_i64().unwrap_or(0);
    assert!(closed_at_ms >= closes_at_ms, "not closed before its time: {end}");
    // The restarted process is up seconds before closes_at and its scheduler wakes at
    // the deadline: a close more than 3 s late means the deadline was missed.
    assert!(
        closed_at_ms - closes_at_ms <= 3_000,
        "closed {} ms after its time: {end}",
        closed_at_ms - closes_at_ms
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_bids_survive_kill_9_and_the_auction_closes_on_time() {
    for backend in Backend::all() {
        storm_then_crash(backend).await;
    }
}
