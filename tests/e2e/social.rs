//! The X integration with the real binaries: `sothebais xsim` and `sothebais serve`
//! as an operator runs them. A crash between storing a reply and hearing X's answer
//! posts it once; a simulated audience bids on a real lot.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use sothebais_testkit::process::{Process, addr, binary, gateway, get_json, token};
use sothebais_testkit::{Backend, eventually};

const WAIT: Duration = Duration::from_secs(30);

/// Starts `sothebais xsim` on a free port with `args`; the process and its URL.
fn start_xsim(dir: &std::path::Path, args: &[&str]) -> (Process, String) {
    let mut all = vec!["xsim", "--port", "0"];
    all.extend_from_slice(args);
    let mut sim = Process::start(&binary("sothebais"), &all, dir, &BTreeMap::new()).expect("start xsim");
    let line = sim.wait_for_line("xsim listening", WAIT).expect("xsim listening");
    let address = line
        .split_whitespace()
        .find_map(|field| field.strip_prefix("addr="))
        .expect("the listening line names the address")
        .to_owned();
    (sim, format!("http://{address}"))
}

pub(crate) fn x_settings(env: &mut BTreeMap<String, String>, sim_url: &str) {
    for (key, value) in [
        ("X_API_BASE_URL", sim_url),
        ("X_BEARER_TOKEN", "xsim-bearer"),
        ("X_USER_ACCESS_TOKEN", "xsim-user"),
        ("X_USER_REFRESH_TOKEN", "xsim-refresh"),
        ("X_CLIENT_ID", "sothebais-e2e"),
        ("X_POLL_INTERVAL_MS", "200"),
    ] {
        env.insert(key.to_owned(), value.to_owned());
    }
}

pub(crate) async fn show_posts(client: &reqwest::Client, sim_url: &str) -> Vec<Value> {
    let posts = get_json(client, &format!("{sim_url}/sim/posts?author=SothebAIs")).await.expect("posts");
    posts["data"].as_array().cloned().unwrap_or_default()
}

pub(crate) fn replied_to(post: &Value) -> Option<&str> {
    post["referenced_tweets"].as_array()?.iter().find(|reference| reference["type"] == "replied_to")?["id"]
        .as_str()
}

async fn create_lot(client: &reqwest::Client, base: &str, token: &str, body: Value) -> String {
    let response = client
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .expect("create");
    let created: Value = response.json().await.expect("json");
    created["data"]["id"].as_str().unwrap_or_else(|| panic!("created: {created}")).to_owned()
}

async fn reply_survives_a_crash_between_storing_and_sending(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let (_sim, sim_url) = start_xsim(dir.path(), &[]);
    let mut env = backend.process_settings().await;
    x_settings(&mut env, &sim_url);
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, WAIT).expect("listening"));
    let token = token(dir.path(), &env, "operator").expect("token");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    create_lot(
        &client,
        &base,
        &token,
        json!({ "title": "Crash Proof", "starting_price": "1", "starts_at": chrono::Utc::now().to_rfc3339(), "duration_secs": 120 }),
    )
    .await;
    eventually(WAIT, "the lot is announced", async || {
        (!show_posts(&client, &sim_url).await.is_empty()).then_some(())
    })
    .await
    .expect("announced");

    // X takes 3 s to answer: the reply exists on X before the show hears so.
    client.put(format!("{sim_url}/sim/latency")).json(&json!({ "ms": 3000 })).send().await.expect("latency");
    let posted: Value = client
        .post(format!("{sim_url}/sim/posts"))
        .json(&json!({ "author": "curie", "text": "@SothebAIs bid 1.5" }))
        .send()
        .await
        .expect("post")
        .json()
        .await
        .expect("json");
    let post = posted["data"]["id"].as_str().expect("id").to_owned();
    eventually(WAIT, "the reply is on X", async || {
        show_posts(&client, &sim_url)
            .await
            .iter()
            .any(|reply| replied_to(reply) == Some(post.as_str()))
            .then_some(())
    })
    .await
    .expect("reply on X");
    server.kill().expect("kill -9");

    client.put(format!("{sim_url}/sim/latency")).json(&json!({ "ms": 0 })).send().await.expect("latency");
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("restart");
    let listeners = server.wait_for_listeners(20, WAIT).expect("listening again");
    let status_url = format!("http://{}/api/social/status", addr(&listeners, "social", "api"));
    eventually(WAIT, "the stored reply is settled", async || {
        let status = get_json(&client, &status_url).await.ok()?;
        (status["data"]["writes"]["accepted"]["sent"] == 1 && status["data"]["replies_pending"] == 0)
            .then_some(())
    })
    .await
    .expect("settled");
    let replies: Vec<Value> = show_posts(&client, &sim_url)
        .await
        .into_iter()
        .filter(|reply| replied_to(reply) == Some(post.as_str()))
        .collect();
    assert_eq!(replies.len(), 1, "posted once: {replies:?}");
    let billing = get_json(&client, &format!("{sim_url}/sim/billing")).await.expect("billing");
    assert_eq!(billing["refused"]["duplicate"], 1, "the resend was refused as a duplicate: {billing}");
    server.terminate(WAIT).expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reply_is_posted_once_across_a_kill_9_between_storing_and_sending() {
    for backend in Backend::all() {
        reply_survives_a_crash_between_storing_and_sending(backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_simulated_audience_bids_on_a_lot_and_hears_the_result() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The show starts first (its reads fail until X is up, and are retried), so the
    // audience can be pointed at its gateway.
    let sim_port =
        std::net::TcpListener::bind("127.0.0.1:0").expect("a free port").local_addr().expect("addr").port();
    let sim_url = format!("http://127.0.0.1:{sim_port}");
    let mut env = Backend::Embedded.process_settings().await;
    x_settings(&mut env, &sim_url);
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, WAIT).expect("listening"));
    let port = sim_port.to_string();
    let _sim = Process::start(
        &binary("sothebais"),
        &["xsim", "--port", &port, "--audience", "12", "--seed", "7", "--show-url", &base],
        dir.path(),
        &BTreeMap::new(),
    )
    .expect("start xsim");
    let token = token(dir.path(), &env, "operator").expect("token");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client");
    let auction = create_lot(
        &client,
        &base,
        &token,
        json!({
            "title": "Crowd Pleaser", "starting_price": "0.1", "starts_at": chrono::Utc::now().to_rfc3339(),
            "duration_secs": 12, "late_grace_secs": 3, "anti_snipe": null,
        }),
    )
    .await;
    let result = eventually(Duration::from_secs(60), "the result is posted on X", async || {
        show_posts(&client, &sim_url).await.into_iter().find(|post| {
            let text = post["text"].as_str().unwrap_or_default();
            text.contains("SOLD") || text.contains("no bids") || text.contains("reserve")
        })
    })
    .await
    .expect("result");
    let history = get_json(&client, &format!("{base}/api/auction/history?auction_id={auction}&limit=1000"))
        .await
        .expect("history");
    let bids = history["data"]["bids"].as_array().cloned().unwrap_or_default();
    assert!(
        bids.iter().any(|bid| bid["source"] == "x" && bid["status"] == "accepted"),
        "audience bids: {bids:?}"
    );
    assert!(result["text"].as_str().unwrap_or_default().contains("SOLD"), "{result}");
    server.terminate(WAIT).expect("stops");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sothebais_demo_runs_a_campaign_that_the_audience_bids_on_and_stops_cleanly() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Backend::Embedded.process_settings().await;
    let mut demo = Process::start(
        &binary("sothebais"),
        &[
            "demo",
            "--no-renderer",
            "--lots",
            "1",
            "--lot-secs",
            "8",
            "--lead-secs",
            "2",
            "--grace-secs",
            "2",
            "--x-port",
            "0",
        ],
        dir.path(),
        &env,
    )
    .expect("start the demo");
    let ready = demo.wait_for_line("demo ready", WAIT).expect("the demo is ready");
    let field = |name: &str| {
        ready
            .split_whitespace()
            .find_map(|field| field.strip_prefix(&format!("{name}=")))
            .unwrap_or_else(|| panic!("{name} in {ready}"))
            .to_owned()
    };
    let posts_url = field("x_posts");
    let dashboard = field("dashboard");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let result = eventually(Duration::from_secs(60), "the lot's result is posted on X", async || {
        let posts = get_json(&client, &format!("{posts_url}?author=SothebAIs")).await.ok()?;
        posts["data"].as_array()?.iter().find_map(|post| {
            let text = post["text"].as_str()?;
            (text.contains("SOLD") || text.contains("no bids") || text.contains("reserve"))
                .then(|| text.to_owned())
        })
    })
    .await
    .expect("a result");
    assert!(result.contains("SOLD"), "the audience bid: {result}");
    // The demo said how the lot went, on its own log.
    let opened = demo.wait_for_line("lot 1/1 open", WAIT).expect("the lot's opening line");
    assert!(opened.contains("reserve at the start price"), "{opened}");
    let closed = demo.wait_for_line("lot 1/1 closed", WAIT).expect("the lot's summary");
    assert!(
        closed.contains("SOLD to @") && closed.contains("bids accepted") && closed.contains("X replies"),
        "{closed}"
    );
    let status = get_json(&client, &format!("{dashboard}/api/social/status")).await.expect("status");
    assert_eq!(status["data"]["connected"], true, "{status}");
    let exit = demo.terminate(WAIT).expect("stops");
    assert!(exit.success(), "{exit:?}");
}
