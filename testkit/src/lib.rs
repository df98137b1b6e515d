//! What the SothebAIs test suites share (the backend's integration tests in
//! `backend/tests/it` and the end-to-end tests in `tests/`):
//!
//! - [`Backend`]: embedded (SQLite in a temporary folder + the in-process bus) or
//!   production (a fresh PostgreSQL database + a fresh Redis key prefix per test), and
//!   [`both_backends!`], which runs one test body against each;
//! - [`TestApp`]: the backend application running in the test process on free ports,
//!   with its [`TestClock`] and request helpers (`create_auction`, `bid`, …) and
//!   [`TestApp::settle`], which lets the engine act on an auction at once;
//! - [`process`]: the real binaries as processes, for end-to-end tests and benchmarks;
//! - [`chain`]: a real local chain (anvil) with the test tokens and the settlement
//!   contract deployed;
//! - tokens, JSON and WebSocket helpers.

pub mod chain;
pub mod llm;
pub mod process;
pub mod x;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::{Value, json};
use sothebais_backend::app::{ListenerAddress, ListenerKind};
use sothebais_backend::bus::{EventBus, RedisBus};
use sothebais_backend::config::FlagValues;
use sothebais_backend::storage::{PostgresStorage, SqliteStorage, Storage};
use sothebais_backend::{Application, Config, ServiceRole};
pub use sothebais_kit::access::Role;
use sothebais_kit::access::issue_token;
pub use sothebais_kit::clock::TestClock;
use sqlx::Connection as _;

/// The signing secret every test application uses.
pub const JWT_SECRET: &str = "integration-test-signing-secret";

/// Which storage and bus a test runs against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in a temporary folder and the in-process bus.
    Embedded,
    /// PostgreSQL (a fresh database per test) and Redis (a fresh key prefix per test).
    Production,
}

/// Runs one test body against both backends, as `<name>::embedded` and
/// `<name>::production`.
#[macro_export]
macro_rules! both_backends {
    ($(async fn $name:ident($backend:ident: $backend_type:ty) $body:block)+) => {$(
        mod $name {
            #[allow(unused_imports, reason = "each test uses a different part of the parent's imports")]
            use super::*;

            async fn run($backend: $backend_type) $body

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                if $crate::Backend::Embedded.skipped() {
                    return;
                }
                run($crate::Backend::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn production() {
                if $crate::Backend::Production.skipped() {
                    return;
                }
                run($crate::Backend::Production).await;
            }
        }
    )+};
}

fn postgres_admin_url() -> String {
    std::env::var("SOTHEBAIS_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres:postgres@127.0.0.1:5432/test".into())
}

fn redis_url() -> String {
    std::env::var("SOTHEBAIS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

impl Backend {
    fn name(self) -> &'static str {
        match self {
            Backend::Embedded => "embedded",
            Backend::Production => "production",
        }
    }

    /// True when the run was explicitly told to skip this backend
    /// (`SOTHEBAIS_TEST_SKIP=production`); says so in the test's output.
    pub fn skipped(self) -> bool {
        let name = self.name();
        let skipped = std::env::var("SOTHEBAIS_TEST_SKIP")
            .is_ok_and(|list| list.split(',').any(|item| item.trim() == name));
        if skipped {
            #[expect(clippy::print_stderr, reason = "a skipped backend is said in the test output")]
            {
                eprintln!("skipped: the {name} backend (SOTHEBAIS_TEST_SKIP)");
            }
        }
        skipped
    }

    /// Both, less those `SOTHEBAIS_TEST_SKIP` names.
    pub fn all() -> Vec<Backend> {
        [Backend::Embedded, Backend::Production].into_iter().filter(|backend| !backend.skipped()).collect()
    }

    /// Settings that point a backend process at this backend's fresh resources, with
    /// its data folder at `data_dir`.
    pub async fn settings(self, data_dir: &std::path::Path) -> BTreeMap<String, String> {
        let mut settings = BTreeMap::new();
        settings.insert("SOTHEBAIS_DATA_DIR".into(), data_dir.display().to_string());
        // Lines are published as composed; the voice's own tests turn it on.
        settings.insert("TTS_PROVIDER".into(), "none".into());
        if self == Backend::Production {
            settings.insert("DATABASE_URL".into(), fresh_postgres_database().await);
            settings.insert("REDIS_URL".into(), redis_url());
            settings.insert("REDIS_KEY_PREFIX".into(), unique_prefix());
        }
        settings
    }

    /// Settings for a backend process of its own (end-to-end tests): every role on a
    /// free port, and for production a fresh database and key prefix.
    pub async fn process_settings(self) -> BTreeMap<String, String> {
        let mut settings = free_ports();
        settings.insert("TTS_PROVIDER".into(), "none".into());
        if self == Backend::Production {
            settings.insert("DATABASE_URL".into(), fresh_postgres_database().await);
            settings.insert("REDIS_URL".into(), redis_url());
            settings.insert("REDIS_KEY_PREFIX".into(), format!("e2e:{}:", uuid::Uuid::new_v4().simple()));
        }
        settings
    }

    /// A fresh, migrated storage of this backend.
    pub async fn storage(self) -> (Arc<dyn Storage>, Option<tempfile::TempDir>) {
        match self {
            Backend::Embedded => {
                let dir = tempfile::tempdir().expect("temp dir");
                let storage = SqliteStorage::open(&dir.path().join("test.db")).await.expect("open SQLite");
                (Arc::new(storage), Some(dir))
            }
            Backend::Production => {
                let url = fresh_postgres_database().await;
                let storage =
                    PostgresStorage::connect(&url).await.expect("connect the fresh PostgreSQL database");
                (Arc::new(storage), None)
            }
        }
    }

    /// A fresh bus of this backend, its streams capped at `max_len`.
    pub async fn bus(self, max_len: usize) -> Arc<dyn EventBus> {
        match self {
            Backend::Embedded => Arc::new(sothebais_backend::bus::MemoryBus::new(max_len)),
            Backend::Production => {
                let url = redis_url();
                let bus = RedisBus::connect(&url, &unique_prefix(), max_len).await.unwrap_or_else(|error| {
                    panic!("Redis at {url} is unreachable ({error}); start it, or set SOTHEBAIS_TEST_SKIP=production")
                });
                Arc::new(bus)
            }
        }
    }
}

fn unique_prefix() -> String {
    format!("test:{}:", uuid::Uuid::new_v4().simple())
}

/// Creates an empty database for one test and returns its URL.
async fn fresh_postgres_database() -> String {
    let admin_url = postgres_admin_url();
    let mut connection = sqlx::PgConnection::connect(&admin_url).await.unwrap_or_else(|error| {
        panic!("PostgreSQL at {admin_url} is unreachable ({error}); start it, or set SOTHEBAIS_TEST_SKIP=production")
    });
    let name = format!("sothebais_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut connection)
        .await
        .expect("create a test database");
    let base = admin_url.rsplit_once('/').map_or(admin_url.as_str(), |(base, _)| base);
    format!("{base}/{name}")
}

/// Settings that give every backend role a free port.
pub fn free_ports() -> BTreeMap<String, String> {
    ["ADMIN", "EVENT_HANDLER", "AUCTION_ENGINE", "AGENT_SERVICE", "SOCIAL"]
        .into_iter()
        .map(|prefix| (format!("{prefix}_PORT"), "0".to_owned()))
        .collect()
}

/// A backend application running in this test process, every role on free ports,
/// its time read from [`TestApp::clock`].
pub struct TestApp {
    pub addresses: Vec<ListenerAddress>,
    pub client: reqwest::Client,
    pub state: sothebais_backend::app::AppState,
    /// The application's clock: move it with `clock.advance(…)` instead of sleeping.
    pub clock: Arc<TestClock>,
    /// The settings it was started with, to start another process on the same state.
    pub settings: BTreeMap<String, String>,
    signal: tokio::sync::mpsc::UnboundedSender<&'static str>,
    stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    data_dir: Arc<tempfile::TempDir>,
}

impl std::fmt::Debug for TestApp {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("TestApp").field("addresses", &self.addresses).finish_non_exhaustive()
    }
}

impl TestApp {
    /// Every role, on free ports, against `backend`.
    pub async fn spawn(backend: Backend) -> TestApp {
        TestApp::spawn_with(backend, &[]).await
    }

    /// Every role, with extra settings (environment names) on top.
    pub async fn spawn_with(backend: Backend, extra: &[(&str, &str)]) -> TestApp {
        let data_dir = Arc::new(tempfile::tempdir().expect("temp dir"));
        let mut settings = backend.settings(data_dir.path()).await;
        settings.insert("JWT_SECRET".into(), JWT_SECRET.into());
        settings.extend(free_ports());
        for (key, value) in extra {
            settings.insert((*key).to_owned(), (*value).to_owned());
        }
        TestApp::start(settings, data_dir, TestClock::new()).await
    }

    /// Another process on the same database, bus settings, data folder and clock.
    pub async fn sibling(&self) -> TestApp {
        TestApp::start(self.settings.clone(), self.data_dir.clone(), self.clock.clone()).await
    }

    /// Starts again on the settings, data folder and clock an earlier process used
    /// (move the clock between stop and restart to let time pass while it was down).
    pub async fn restart(
        settings: BTreeMap<String, String>,
        data_dir: Arc<tempfile::TempDir>,
        clock: Arc<TestClock>,
    ) -> TestApp {
        TestApp::start(settings, data_dir, clock).await
    }

    async fn start(
        settings: BTreeMap<String, String>,
        data_dir: Arc<tempfile::TempDir>,
        clock: Arc<TestClock>,
    ) -> TestApp {
        let lookup = settings.clone();
        let env = move |key: &str| lookup.get(key).cloned();
        let config = Config::load(&FlagValues::new(), None, &env).expect("test configuration");
        let application = Application::build(config, &ServiceRole::ALL, clock.clone())
            .await
            .expect("build the application");
        let addresses = application.addresses();
        let state = application.state().clone();
        let (signal, signals) = sothebais_kit::shutdown::channel_signals();
        let stopped = tokio::spawn(application.run(signals));
        TestApp {
            addresses,
            client: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client"),
            state,
            clock,
            settings,
            signal,
            stopped: Some(stopped),
            data_dir,
        }
    }

    /// The data folder, kept alive for a restart on the same state.
    pub fn data_dir(&self) -> Arc<tempfile::TempDir> {
        self.data_dir.clone()
    }

    /// Stops it as SIGTERM would and waits until every stage has stopped; the
    /// shutdown's result (an error names each task that failed).
    pub async fn stop(mut self) -> anyhow::Result<()> {
        let _ = self.signal.send("SIGTERM");
        match self.stopped.take() {
            Some(stopped) => {
                stopped.await.map_err(|error| anyhow::anyhow!("the application panicked: {error}"))?
            }
            None => Ok(()),
        }
    }

    /// The Prometheus text of one role's metrics listener.
    pub async fn metrics(&self, role: ServiceRole) -> String {
        let url = self.url(role, ListenerKind::Metrics, "/metrics");
        let response = self.client.get(url).send().await.expect("metrics");
        response.text().await.expect("metrics text")
    }

    /// `http://addr/path` of one role's listener.
    pub fn url(&self, role: ServiceRole, kind: ListenerKind, path: &str) -> String {
        let address = self
            .addresses
            .iter()
            .find(|address| address.role == role && address.kind == kind)
            .expect("listener exists");
        format!("http://{}{path}", address.addr)
    }

    /// A URL on the gateway (`ADMIN_PORT`).
    pub fn gateway(&self, path: &str) -> String {
        self.url(ServiceRole::Admin, ListenerKind::Api, path)
    }

    /// `GET path` on the gateway: status and JSON body.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        json(self.client.get(self.gateway(path)).send().await.expect("send")).await
    }

    /// `GET path` on the gateway with a token of `role`.
    pub async fn get_as(&self, path: &str, role: Role) -> (u16, Value) {
        json(self.client.get(self.gateway(path)).bearer_auth(token(role)).send().await.expect("send")).await
    }

    /// `POST path` on the gateway with `body` and a token of `role`.
    pub async fn post(&self, path: &str, role: Role, body: &Value) -> (u16, Value) {
        json(
            self.client
                .post(self.gateway(path))
                .bearer_auth(token(role))
                .json(body)
                .send()
                .await
                .expect("send"),
        )
        .await
    }

    /// Creates an auction open now (by the app's clock) for 60 s, starting at 1 ETH;
    /// `extra` overrides any field. Returns its id.
    pub async fn create_auction(&self, extra: Value) -> String {
        let mut body = json!({
            "title": "Lot",
            "starting_price": "1",
            "starts_at": self.clock.now().to_rfc3339(),
            "duration_secs": 60,
        });
        for (key, value) in extra.as_object().into_iter().flatten() {
            body[key] = value.clone();
        }
        let (status, created) = self.post("/api/auction/auctions", Role::Operator, &body).await;
        assert_eq!(status, 201, "{created}");
        created["data"]["id"].as_str().expect("id").to_owned()
    }

    /// An operator's bid for `bidder` (id and handle), with an optional idempotency key.
    pub async fn bid(&self, auction: &str, bidder: &str, amount: &str, key: Option<&str>) -> (u16, Value) {
        let mut body =
            json!({ "auction_id": auction, "amount": amount, "bidder": { "id": bidder, "handle": bidder } });
        if let Some(key) = key {
            body["idempotency_key"] = json!(key);
        }
        self.post("/api/auction/bid", Role::Operator, &body).await
    }

    /// The auction as the API shows it.
    pub async fn auction(&self, id: &str) -> Value {
        let (status, body) = self.get(&format!("/api/auction/auctions/{id}")).await;
        assert_eq!(status, 200, "{body}");
        body["data"].clone()
    }

    /// The auction's bid log.
    pub async fn history(&self, id: &str) -> Vec<Value> {
        let (status, body) = self.get(&format!("/api/auction/history?auction_id={id}&limit=1000")).await;
        assert_eq!(status, 200, "{body}");
        body["data"]["bids"].as_array().cloned().unwrap_or_default()
    }

    /// Lets the engine act on the auction at the clock's time now (open it, close it)
    /// and returns once what changed is committed, instead of waiting for the
    /// scheduler.
    pub async fn settle(&self, id: &str) -> Value {
        let id: uuid::Uuid = id.parse().expect("auction id");
        self.state.engine.advance(id).await.expect("the engine settles the auction");
        self.auction(&id.to_string()).await
    }

    /// Runs the outbox relay until the outbox is empty and waits until every
    /// registered consumer has caught up (nothing undelivered, nothing
    /// unacknowledged: each event handled, retried to the end or dead-lettered).
    /// After it, what the events caused can be asserted at once.
    pub async fn settle_events(&self) {
        let (storage, bus) = (self.state.storage.as_ref(), self.state.bus.as_ref());
        eventually(
            Duration::from_secs(10),
            "the outbox is empty and every consumer has caught up",
            async || {
                sothebais_backend::events::relay::publish_pending(storage, bus)
                    .await
                    .expect("relay the outbox");
                if storage.outbox_len().await.expect("outbox length") > 0 {
                    return None;
                }
                for consumer in storage.consumers().await.expect("consumers") {
                    if sothebais_backend::events::dispatch::backlog(bus, &consumer).await.expect("backlog")
                        > 0
                    {
                        return None;
                    }
                }
                Some(())
            },
        )
        .await
        .unwrap_or_else(|error| panic!("{error}"));
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Dropped without `stop`: the first signal stops it, the second at once.
        let _ = self.signal.send("SIGTERM");
        let _ = self.signal.send("SIGTERM");
    }
}

/// Asks `probe` every 20 ms until it gives a value; an error naming `what` once
/// `timeout` has passed without one. For conditions other tasks or processes bring
/// about on their own (a consumer applying an event, a process starting).
pub async fn eventually<T>(
    timeout: Duration,
    what: &str,
    mut probe: impl AsyncFnMut() -> Option<T>,
) -> anyhow::Result<T> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = probe().await {
            return Ok(value);
        }
        anyhow::ensure!(
            tokio::time::Instant::now() < deadline,
            "timed out after {timeout:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A valid token for `role`.
pub fn token(role: Role) -> String {
    issue_token(&SecretString::from(JWT_SECRET.to_owned()), "tester", role, Duration::from_secs(600))
        .expect("sign")
}

/// The JSON body of a response, with its status.
pub async fn json(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text}"));
    (status, value)
}

/// Asserts the failed-response envelope with `code`.
pub fn assert_error(body: &Value, code: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
}

/// The next text message of a WebSocket, as JSON, within five seconds.
pub async fn next_json<S>(socket: &mut S) -> Value
where
    S: futures::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    use futures::StreamExt as _;
    loop {
        let message = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .expect("a message within 5 s")
            .expect("stream open")
            .expect("valid frame");
        if let tokio_tungstenite::tungstenite::Message::Text(text) = message {
            return serde_json::from_str(&text).expect("JSON message");
        }
    }
}

/// Reads a WebSocket until the server ends it (or ten quiet seconds pass): how many
/// text messages arrived, and whether it was closed.
pub async fn read_until_closed<S>(socket: &mut S) -> (usize, bool)
where
    S: futures::Stream<
            Item = Result<tokio_tungstenite::tungstenite::Message, tokio_tungstenite::tungstenite::Error>,
        > + Unpin,
{
    use futures::StreamExt as _;
    use tokio_tungstenite::tungstenite::Message;
    let mut received = 0usize;
    while let Ok(next) = tokio::time::timeout(Duration::from_secs(10), socket.next()).await {
        match next {
            Some(Ok(Message::Text(_))) => received += 1,
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return (received, true),
            Some(Ok(_)) => {}
        }
    }
    (received, false)
}

/// A WebSocket client of `url` (`ws://addr/…`) with a tiny receive buffer, so the
/// server's sends back up as soon as it stops reading.
pub async fn connect_slow_client(url: &str) -> tokio_tungstenite::WebSocketStream<tokio::net::TcpStream> {
    let address: std::net::SocketAddr = url
        .trim_start_matches("ws://")
        .split('/')
        .next()
        .and_then(|addr| addr.parse().ok())
        .expect("address");
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket.set_recv_buffer_size(4096).expect("small buffer");
    let stream = socket.connect(address).await.expect("connect");
    tokio_tungstenite::client_async(url, stream).await.expect("handshake").0
}
