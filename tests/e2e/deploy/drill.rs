//! The restore drill, on real databases: a show's worth of bids against a real
//! `sothebais serve`, a backup taken the way the stack takes it (`scripts/backup`'s
//! pg_dump; the admin maintenance action for SQLite), restored with `scripts/restore`
//! into an empty database, and the backend `scripts/restore` starts on it holds every
//! acknowledged bid with its decision, the hash chains verify, the closed lot keeps
//! its outcome and the lot that was open closes at its time with the right winner.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use sothebais_testkit::process::{Process, addr, binary, gateway, get_json, token};
use sothebais_testkit::{Backend, eventually};

use super::root;

/// What a client was told about one bid.
#[derive(Debug, Clone, PartialEq)]
struct Decision {
    status: String,
    reason: Value,
    hash: String,
}

struct Show {
    client: reqwest::Client,
    base: String,
    token: String,
}

impl Show {
    async fn create(&self, title: &str, duration_secs: u64) -> (String, String) {
        let response = self
            .client
            .post(format!("{}/api/auction/auctions", self.base))
            .bearer_auth(&self.token)
            .json(&json!({
                "title": title,
                "starting_price": "0.1",
                "starts_at": chrono::Utc::now().to_rfc3339(),
                "duration_secs": duration_secs,
                "late_grace_secs": 1,
                "anti_snipe": null,
            }))
            .send()
            .await
            .expect("create an auction");
        assert_eq!(response.status().as_u16(), 201, "created");
        let created: Value = response.json().await.expect("json");
        let data = &created["data"];
        (
            data["id"].as_str().expect("id").to_owned(),
            data["closes_at"].as_str().expect("closes_at").to_owned(),
        )
    }

    /// Bids and returns the decision the client was told (accepted or rejected).
    async fn bid(&self, auction: &str, bidder: &str, amount: &str) -> (String, Decision) {
        let response = self
            .client
            .post(format!("{}/api/auction/bid", self.base))
            .bearer_auth(&self.token)
            .json(&json!({ "auction_id": auction, "amount": amount, "bidder": { "id": bidder, "handle": bidder } }))
            .send()
            .await
            .expect("bid");
        let status = response.status().as_u16();
        let body: Value = response.json().await.expect("json");
        let bid = match status {
            200 => &body["data"]["bid"],
            422 => &body["error"]["details"]["bid"],
            other => panic!("a bid was answered {other}: {body}"),
        };
        let decision = Decision {
            status: bid["status"].as_str().unwrap_or_default().to_owned(),
            reason: bid["reason"].clone(),
            hash: bid["hash"].as_str().unwrap_or_default().to_owned(),
        };
        (bid["id"].as_str().expect("bid id").to_owned(), decision)
    }
}

async fn history(client: &reqwest::Client, base: &str, auction: &str) -> BTreeMap<String, Decision> {
    let page = get_json(client, &format!("{base}/api/auction/history?auction_id={auction}&limit=1000"))
        .await
        .expect("history");
    page["data"]["bids"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .iter()
        .map(|bid| {
            (
                bid["id"].as_str().unwrap_or_default().to_owned(),
                Decision {
                    status: bid["status"].as_str().unwrap_or_default().to_owned(),
                    reason: bid["reason"].clone(),
                    hash: bid["hash"].as_str().unwrap_or_default().to_owned(),
                },
            )
        })
        .collect()
}

async fn closed(client: &reqwest::Client, base: &str, auction: &str) -> Value {
    let url = format!("{base}/api/auction/auctions/{auction}");
    eventually(Duration::from_secs(40), "the auction is closed", async || {
        let current = get_json(client, &url).await.ok()?;
        (current["data"]["state"] == "closed").then(|| current["data"].clone())
    })
    .await
    .expect("closed")
}

/// Runs a script of the repository with exactly `env` (and PATH).
fn script(name: &str, args: &[&str], env: &BTreeMap<String, String>) -> std::process::Output {
    Command::new(root().join("scripts").join(name))
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env)
        .output()
        .unwrap_or_else(|error| panic!("running scripts/{name}: {error}"))
}

/// Takes the backup the way the stack does and returns its file.
async fn back_up(
    backend: Backend,
    show: &Show,
    dir: &Path,
    env: &BTreeMap<String, String>,
    folder: &Path,
) -> PathBuf {
    match backend {
        Backend::Production => {
            let mut backup_env = BTreeMap::new();
            backup_env.insert("DATABASE_URL".to_owned(), env["DATABASE_URL"].clone());
            backup_env.insert("BACKUP_DIR".to_owned(), folder.display().to_string());
            backup_env.insert("BACKUP_KEEP".to_owned(), "1".to_owned());
            for round in 0..2 {
                if round == 1 {
                    // Dump names carry the second: the second dump gets its own.
                    tokio::time::sleep(Duration::from_millis(1100)).await;
                }
                let output = script("backup", &[], &backup_env);
                assert!(
                    output.status.success(),
                    "scripts/backup: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let dumps: Vec<PathBuf> = std::fs::read_dir(folder)
                .expect("the backup folder")
                .filter_map(|entry| entry.ok().map(|entry| entry.path()))
                .collect();
            assert_eq!(dumps.len(), 1, "BACKUP_KEEP=1 keeps the newest dump only: {dumps:?}");
            assert!(dumps[0].extension().is_some_and(|ext| ext == "dump"), "{dumps:?}");
            dumps[0].clone()
        }
        Backend::Embedded => {
            let admin = token(dir, env, "admin").expect("an admin token");
            let response = show
                .client
                .post(format!("{}/api/admin/maintenance", show.base))
                .bearer_auth(admin)
                .json(&json!({ "action": "backup" }))
                .send()
                .await
                .expect("the backup action");
            assert_eq!(response.status().as_u16(), 200, "the backup action is taken");
            let answer: Value = response.json().await.expect("json");
            let file = PathBuf::from(answer["data"]["file"].as_str().unwrap_or_else(|| panic!("{answer}")));
            let copy = folder.join(file.file_name().expect("a file name"));
            std::fs::copy(&file, &copy).expect("the backup is a file");
            copy
        }
    }
}

async fn drill(backend: Backend) {
    let work = tempfile::tempdir().expect("temp dir");
    let first = work.path().join("first");
    std::fs::create_dir_all(&first).expect("folder");
    let mut env = backend.process_settings().await;
    env.insert("SOTHEBAIS_DATA_DIR".into(), first.join("data").display().to_string());
    let mut server = Process::start(&binary("sothebais"), &["serve"], &first, &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, Duration::from_secs(30)).expect("listening"));
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
    let show = Show { client: client.clone(), base, token: token(&first, &env, "operator").expect("token") };

    // A lot that closes before the backup, and one still open after the restore.
    let (sold, _) = show.create("Sold before the backup", 6).await;
    let (open, open_closes_at) = show.create("Open across the restore", 30).await;
    // Rising amounts: the last accepted bid wins. A bidder back within 2 s is
    // rate-limited, so the log holds several kinds of decision.
    let mut told: BTreeMap<String, (String, Decision)> = BTreeMap::new();
    let mut leader: BTreeMap<String, &str> = BTreeMap::new();
    for (round, bidder) in ["ada", "grace", "alan", "ada", "grace"].iter().enumerate() {
        for auction in [&sold, &open] {
            let amount = format!("{}.{}", round + 1, round);
            let (id, decision) = show.bid(auction, bidder, &amount).await;
            if decision.status == "accepted" {
                leader.insert(auction.clone(), bidder);
            }
            told.insert(id, (auction.clone(), decision));
            // A bid that does not beat the last: rejected, and that decision is kept too.
            let (id, decision) = show.bid(auction, "late", "0.2").await;
            told.insert(id, (auction.clone(), decision));
        }
    }
    assert!(
        told.values().any(|(_, decision)| decision.status == "rejected"),
        "both decisions are in the log"
    );
    let sold_before = closed(&client, &show.base, &sold).await;
    assert_eq!(sold_before["outcome"]["winner"]["id"], leader[&sold], "{sold_before}");

    let backups = work.path().join("backups");
    std::fs::create_dir_all(&backups).expect("folder");
    let file = back_up(backend, &show, &first, &env, &backups).await;
    server.terminate(Duration::from_secs(20)).expect("stopped");

    // Restoring over data is refused, whichever the database.
    let refused = script("restore", &[&file.display().to_string(), "--no-start"], &env);
    assert!(!refused.status.success(), "a restore over the live database is refused");
    let said = String::from_utf8_lossy(&refused.stderr);
    assert!(said.contains("restore only"), "the refusal says why: {said}");

    // Restore into an empty database; scripts/restore starts the backend on it.
    let second = work.path().join("second");
    std::fs::create_dir_all(&second).expect("folder");
    let mut restored_env = backend.process_settings().await;
    restored_env.insert("SOTHEBAIS_DATA_DIR".into(), second.join("data").display().to_string());
    restored_env.insert("SOTHEBAIS_BIN".into(), binary("sothebais").display().to_string());
    let mut restored = Process::start(
        &root().join("scripts/restore"),
        &[&file.display().to_string()],
        &second,
        &restored_env,
    )
    .expect("scripts/restore");
    let listeners =
        restored.wait_for_listeners(20, Duration::from_secs(60)).expect("the restored backend listens");
    let base = gateway(&listeners);
    assert!(
        restored.log().iter().any(|line| line.contains("restore: restored")),
        "scripts/restore says what it restored: {:?}",
        restored.log()
    );

    for auction in [&sold, &open] {
        let stored = history(&client, &base, auction).await;
        for (id, (of, decision)) in &told {
            if of == auction {
                assert_eq!(
                    stored.get(id),
                    Some(decision),
                    "an acknowledged bid is restored with its decision"
                );
            }
        }
    }
    let verified =
        get_json(&client, &format!("{base}/api/auction/auctions/{sold}/verify")).await.expect("verify");
    assert_eq!(verified["data"]["chain_valid"], true, "{verified}");
    assert_eq!(verified["data"]["outcome_from_log"], sold_before["outcome"], "{verified}");
    let sold_after =
        get_json(&client, &format!("{base}/api/auction/auctions/{sold}")).await.expect("auction");
    assert_eq!(sold_after["data"]["outcome"], sold_before["outcome"], "the outcome is restored");

    // The lot that was open closes on the restored backend, on time, to its top bidder.
    let open_after = closed(&client, &base, &open).await;
    assert_eq!(open_after["closes_at"].as_str(), Some(open_closes_at.as_str()), "the schedule is kept");
    assert_eq!(open_after["outcome"]["winner"]["id"], leader[&open], "{open_after}");
    let verified =
        get_json(&client, &format!("{base}/api/auction/auctions/{open}/verify")).await.expect("verify");
    assert_eq!(verified["data"]["chain_valid"], true, "{verified}");
    assert_eq!(verified["data"]["outcome_from_log"], open_after["outcome"], "{verified}");
    restored.terminate(Duration::from_secs(20)).expect("stopped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restored_backup_holds_every_acknowledged_bid_and_the_open_lot_closes_on_it() {
    for backend in Backend::all() {
        drill(backend).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_probe_of_the_images_passes_on_a_healthy_role_and_fails_elsewhere() {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = Backend::Embedded.process_settings().await;
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let listeners = server.wait_for_listeners(20, Duration::from_secs(30)).expect("listening");
    let probe = |addr: &str| {
        let port = addr.rsplit(':').next().unwrap_or_default().to_owned();
        Command::new(root().join("deploy/healthcheck")).arg(port).output().expect("deploy/healthcheck")
    };
    for role in ["admin", "auction", "events", "agent", "social"] {
        let output = probe(&addr(&listeners, role, "health"));
        assert!(output.status.success(), "{role} is healthy: {}", String::from_utf8_lossy(&output.stderr));
    }
    // The API port has no /health: a 404 is not healthy.
    let output = probe(&addr(&listeners, "auction", "api"));
    assert!(!output.status.success(), "a 404 is not healthy");
    assert!(String::from_utf8_lossy(&output.stderr).contains("404"), "it says what it got");
    let health = addr(&listeners, "admin", "health");
    server.terminate(Duration::from_secs(20)).expect("stopped");
    let output = probe(&health);
    assert!(!output.status.success(), "nothing listening is not healthy");
}
