//! Two real `sothebais serve --roles auction,admin` processes on one PostgreSQL and
//! Redis, taking bids for the same auction at once: the stored log has one writer at a
//! time (gapless sequence, a valid chain, strictly rising accepted amounts).

use std::time::Duration;

use serde_json::{Value, json};
use sothebais_testkit::Backend;
use sothebais_testkit::process::{Process, binary, gateway, get_json, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_engine_processes_on_one_postgresql_never_both_write_an_auction() {
    if !Backend::all().contains(&Backend::Production) {
        return;
    }
    let env = Backend::Production.process_settings().await;
    let dir = tempfile::tempdir().expect("temp dir");
    let mut one =
        Process::start(&binary("sothebais"), &["serve", "--roles", "auction,admin"], dir.path(), &env)
            .expect("start");
    let mut two =
        Process::start(&binary("sothebais"), &["serve", "--roles", "auction,admin"], dir.path(), &env)
            .expect("start");
    let first = gateway(&one.wait_for_listeners(8, Duration::from_secs(30)).expect("listening"));
    let second = gateway(&two.wait_for_listeners(8, Duration::from_secs(30)).expect("listening"));
    let token = token(dir.path(), &env, "operator").expect("token");
    let client = reqwest::Client::new();
    let created: Value = client
        .post(format!("{first}/api/auction/auctions"))
        .bearer_auth(&token)
        .json(&json!({
            "title": "Contested lot",
            "starting_price": "1",
            "starts_at": chrono::Utc::now().to_rfc3339(),
            "increment_table": [],
            "increment_percent": 0,
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let id = created["data"]["id"].as_str().expect("id").to_owned();

    let mut tasks = Vec::new();
    for index in 0..120u32 {
        let base = if index % 2 == 0 { first.clone() } else { second.clone() };
        let (client, token, id) = (client.clone(), token.clone(), id.clone());
        tasks.push(tokio::spawn(async move {
            let body = json!({ "auction_id": id, "amount": format!("{}", 1 + index % 40), "bidder": { "id": format!("b{index}") } });
            client.post(format!("{base}/api/auction/bid")).bearer_auth(&token).json(&body).send().await.expect("bid").status().as_u16()
        }));
    }
    for task in tasks {
        let status = task.await.expect("task");
        assert!(status == 200 || status == 422, "status {status}");
    }
    let history = get_json(&client, &format!("{second}/api/auction/history?auction_id={id}&limit=1000"))
        .await
        .expect("history");
    let bids = history["data"]["bids"].as_array().cloned().unwrap_or_default();
    let seqs: Vec<u64> = bids.iter().filter_map(|bid| bid["seq"].as_u64()).collect();
    assert_eq!(seqs, (1..=120).collect::<Vec<_>>(), "every bid decided once, gapless");
    let accepted: Vec<u64> = bids
        .iter()
        .filter(|bid| bid["status"] == "accepted")
        .filter_map(|bid| bid["amount"].as_str().and_then(|amount| amount.parse().ok()))
        .collect();
    assert!(accepted.windows(2).all(|pair| pair[1] > pair[0]), "no double acceptance: {accepted:?}");
    let verified =
        get_json(&client, &format!("{first}/api/auction/auctions/{id}/verify")).await.expect("verify");
    assert_eq!(verified["data"]["chain_valid"], true, "{verified}");
}
