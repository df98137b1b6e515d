//! The outbox across a crash: an event committed while the bus was unreachable, in a
//! process killed before it could publish, is published exactly once after a restart.

use std::time::Duration;

use serde_json::{Value, json};
use sothebais_testkit::process::{Process, binary, gateway, get_json, token};
use sothebais_testkit::{Backend, eventually};

/// A private `redis-server` on `port`, keeping nothing on disk; killed on drop.
struct RedisServer(std::process::Child);

impl RedisServer {
    async fn start(port: u16) -> RedisServer {
        #[expect(clippy::zombie_processes, reason = "the drop of RedisServer kills and waits for it")]
        let child = std::process::Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).expect("url");
        for _ in 0..100 {
            if let Ok(mut connection) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING").query_async::<String>(&mut connection).await.is_ok()
            {
                return RedisServer(child);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("redis-server did not start on port {port}");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// How many entries of `stream` carry the event `id`.
async fn copies(url: &str, stream: &str, id: &str) -> usize {
    let client = redis::Client::open(url).expect("url");
    let Ok(mut connection) = client.get_multiplexed_async_connection().await else { return 0 };
    let entries: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut connection)
        .await
        .expect("xrange");
    entries
        .ids
        .iter()
        .filter(|entry| entry.get::<String>("event").is_some_and(|event| event.contains(id)))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_committed_but_not_published_before_a_kill_is_published_once_after_restart() {
    if !Backend::all().contains(&Backend::Production) {
        #[expect(clippy::print_stderr, reason = "a skipped test says so")]
        {
            eprintln!("skipped: needs the production backend (SOTHEBAIS_TEST_SKIP)");
        }
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("free port")
        .port();
    let redis_url = format!("redis://127.0.0.1:{port}");
    let redis = RedisServer::start(port).await;
    let mut env = Backend::Production.process_settings().await;
    env.insert("REDIS_URL".into(), redis_url.clone());
    let stream = format!("{}events:agent", env.get("REDIS_KEY_PREFIX").cloned().unwrap_or_default());
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, Duration::from_secs(30)).expect("listening"));
    let token = token(dir.path(), &env, "operator").expect("token");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    // The bus goes away: the event is committed, and cannot be published.
    drop(redis);
    let response = client
        .post(format!("{base}/api/events/agent:mood"))
        .bearer_auth(&token)
        .json(&json!({ "mood": "tense", "intensity": 0.8, "expression": "frown" }))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 201);
    let body: Value = response.json().await.expect("json");
    let id = body["data"]["id"].as_str().expect("id").to_owned();
    let history = get_json(&client, &format!("{base}/api/events/agent:mood/history")).await.expect("history");
    assert_eq!(history["data"]["events"][0]["id"], id.as_str(), "committed before the kill");

    // Killed between commit and publish; the bus comes back empty.
    server.kill().expect("kill");
    let _redis = RedisServer::start(port).await;
    assert_eq!(copies(&redis_url, &stream, &id).await, 0);

    let mut restarted = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("restart");
    restarted.wait_for_listeners(20, Duration::from_secs(30)).expect("listening again");
    eventually(Duration::from_secs(20), "the event is published after the restart", async || {
        (copies(&redis_url, &stream, &id).await > 0).then_some(())
    })
    .await
    .expect("published");
    // Several relay rounds later, still one copy.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(copies(&redis_url, &stream, &id).await, 1, "published exactly once");
}
