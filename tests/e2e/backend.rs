//! `sothebais serve`, `token`, `migrate` and `--help` as real processes.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use sothebais_testkit::free_ports;
use sothebais_testkit::process::{Process, addr, binary};

const START: Duration = Duration::from_secs(30);

async fn get_json(url: &str) -> (u16, serde_json::Value) {
    let response = reqwest::get(url).await.expect("request");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

#[tokio::test]
async fn serve_with_nothing_configured_runs_every_role_healthy() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process =
        Process::start(&binary("sothebais"), &["serve"], dir.path(), &free_ports()).expect("start");
    let listeners = process.wait_for_listeners(20, START).expect("listening");
    for role in ["auction", "events", "agent", "social", "admin"] {
        for kind in ["api", "ws", "metrics", "health"] {
            assert!(
                listeners.iter().any(|l| l.role == role && l.kind == kind),
                "{role} {kind} missing: {listeners:?}"
            );
        }
        let (status, health) = get_json(&format!("http://{}/health", addr(&listeners, role, "health"))).await;
        // Without X credentials the social role has nothing to do, and says so.
        let expected = if role == "social" { "idle" } else { "ok" };
        assert_eq!((status, health["status"].as_str()), (200, Some(expected)), "{role}: {health}");
        let metrics = reqwest::get(format!("http://{}/metrics", addr(&listeners, role, "metrics")))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text");
        assert!(metrics.contains("# TYPE sothebais_role_up gauge"), "{metrics}");
    }
    assert!(dir.path().join("data/sothebais.db").exists(), "embedded SQLite file in ./data");
    assert!(dir.path().join("data/jwt_secret").exists(), "generated signing secret in ./data");
}

#[tokio::test]
async fn token_command_prints_a_token_the_server_accepts() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process =
        Process::start(&binary("sothebais"), &["serve"], dir.path(), &free_ports()).expect("start");
    let listeners = process.wait_for_listeners(20, START).expect("listening");
    let output = Command::new(binary("sothebais"))
        .args(["token", "--role", "operator", "--sub", "e2e", "--ttl", "10m"])
        .current_dir(dir.path())
        .env_remove("JWT_SECRET")
        .output()
        .expect("run token");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let token = String::from_utf8(output.stdout).expect("utf-8").trim().to_owned();
    let response = reqwest::Client::new()
        .post(format!("http://{}/api/events/agent:mood", addr(&listeners, "admin", "api")))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "mood": "happy", "intensity": 0.5, "expression": "happy.png" }))
        .send()
        .await
        .expect("post");
    assert_eq!(response.status(), 201);
}

#[tokio::test]
async fn sigterm_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process =
        Process::start(&binary("sothebais"), &["serve"], dir.path(), &free_ports()).expect("start");
    process.wait_for_listeners(20, START).expect("listening");
    let status = process.terminate(Duration::from_secs(15)).expect("exit");
    assert!(status.success(), "exit status {status}");
    let log = process.log();
    assert!(log.iter().any(|line| line.contains("SIGTERM")), "{log:?}");
    // The stages stop in their fixed order, each logged, and every task is accounted for.
    let stopping = |stage: &str| {
        log.iter()
            .position(|line| line.contains(" stopping ") && line.contains(stage))
            .unwrap_or_else(|| panic!("no `stopping {stage}` line in {log:#?}"))
    };
    let order =
        ["listeners", "auction scheduler", "auction engine", "outbox relay", "event consumers", "live feed"];
    let positions: Vec<usize> = order.iter().map(|stage| stopping(stage)).collect();
    assert!(positions.windows(2).all(|pair| pair[0] < pair[1]), "stages out of order: {log:#?}");
    assert!(log.iter().any(|line| line.contains("every task stopped")), "{log:#?}");
}

#[tokio::test]
async fn only_the_named_roles_run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start(
        &binary("sothebais"),
        &["serve", "--roles", "auction,events"],
        dir.path(),
        &free_ports(),
    )
    .expect("start");
    let listeners = process.wait_for_listeners(8, START).expect("listening");
    // Every listener is bound before the process serves: after `serving` no more come.
    process.wait_for_line(" serving ", START).expect("serving");
    let roles: std::collections::BTreeSet<String> = process
        .log()
        .iter()
        .filter_map(|line| sothebais_testkit::process::parse_listening(line))
        .map(|l| l.role)
        .collect();
    assert_eq!(roles.into_iter().collect::<Vec<_>>(), vec!["auction", "events"], "{listeners:?}");
}

fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let dir = tempfile::tempdir().expect("temp dir");
    Command::new(binary("sothebais"))
        .args(args)
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().copied())
        .output()
        .expect("run")
}

#[test]
fn malformed_setting_exits_with_a_one_line_reason_naming_the_key() {
    let output = run_with_env(&["serve"], &[("ADMIN_PORT", "three-thousand")]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("ADMIN_PORT") && stderr.contains("environment"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
}

#[test]
fn unknown_key_in_the_config_file_exits_naming_the_key() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("sothebais.toml");
    std::fs::write(&file, "admin_port = 3000\nadmn_ws_port = 3001\n").expect("write");
    let output = Command::new(binary("sothebais"))
        .args(["--config", file.to_str().expect("path"), "serve"])
        .output()
        .expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("`admn_ws_port`"), "{stderr}");
}

#[test]
fn unknown_role_is_refused_by_the_command_line() {
    let output = run_with_env(&["serve", "--roles", "auction,renderer"], &[]);
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("renderer"));
}

#[test]
fn migrate_creates_and_migrates_the_embedded_database() {
    let dir = tempfile::tempdir().expect("temp dir");
    let output = Command::new(binary("sothebais"))
        .arg("migrate")
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .env("SOTHEBAIS_DATA_DIR", dir.path().join("state"))
        .output()
        .expect("run");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    assert!(dir.path().join("state/sothebais.db").exists());
}

#[test]
fn every_command_has_help() {
    for args in [&["--help"][..], &["serve", "--help"], &["token", "--help"], &["migrate", "--help"]] {
        let output = Command::new(binary("sothebais")).args(args).output().expect("run");
        assert!(output.status.success(), "{args:?}");
        let text = String::from_utf8_lossy(&output.stdout);
        assert!(text.contains("Usage:"), "{args:?}: {text}");
    }
}

#[tokio::test]
async fn serve_in_production_mode_reports_redis_and_postgres_healthy() {
    if std::env::var("SOTHEBAIS_TEST_SKIP").is_ok_and(|skip| skip.split(',').any(|item| item == "production"))
    {
        #[expect(clippy::print_stderr, reason = "a skipped backend is said in the test output")]
        {
            eprintln!("skipped: the production backend (SOTHEBAIS_TEST_SKIP)");
        }
        return;
    }
    let admin_url = std::env::var("SOTHEBAIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into());
    let name = format!("sothebais_test_{}", uuid::Uuid::new_v4().simple());
    let created =
        Command::new("psql").args([admin_url.as_str(), "-qc", &format!("CREATE DATABASE {name}")]).output();
    let created = created.expect("psql is installed (postgresql-client)");
    assert!(
        created.status.success(),
        "PostgreSQL at {admin_url} is unreachable: {}",
        String::from_utf8_lossy(&created.stderr)
    );
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
    let mut env: BTreeMap<String, String> = free_ports();
    env.insert("DATABASE_URL".into(), format!("{base}/{name}"));
    env.insert(
        "REDIS_URL".into(),
        std::env::var("SOTHEBAIS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into()),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut process = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let listeners = process.wait_for_listeners(20, START).expect("listening");
    let (status, health) = get_json(&format!("http://{}/health", addr(&listeners, "events", "health"))).await;
    assert_eq!(status, 200, "{health}");
    assert_eq!(health["checks"]["database"], "ok");
    assert_eq!(health["checks"]["redis"], "ok");
    let (_, admin) = get_json(&format!("http://{}/api/admin/status", addr(&listeners, "admin", "api"))).await;
    assert_eq!(admin["data"]["mode"], "production", "{admin}");
    assert!(!process.log().join("\n").contains("hunter2"));
}

#[tokio::test]
async fn json_logs_are_one_object_per_line_with_the_listener_fields() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut env = free_ports();
    env.insert("LOG_FORMAT".into(), "json".into());
    let process = Process::start(&binary("sothebais"), &["serve", "--roles", "events"], dir.path(), &env)
        .expect("start");
    let deadline = std::time::Instant::now() + START;
    let listening = loop {
        let lines = process.log();
        let found: Vec<serde_json::Value> = lines
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|line| line["message"] == "listening")
            .collect();
        if found.len() == 4 || std::time::Instant::now() > deadline {
            break found;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(listening.len(), 4, "{:?}", process.log());
    assert!(
        listening.iter().all(|line| line["role"] == "events" && line["addr"].is_string()),
        "{listening:?}"
    );
    assert!(
        process.log().iter().all(|line| serde_json::from_str::<serde_json::Value>(line).is_ok()),
        "every line is JSON: {:?}",
        process.log()
    );
}
