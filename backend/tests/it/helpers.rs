//! Shared test helpers: backends, a running application, tokens.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;
use sothebais_backend::app::{ListenerAddress, ListenerKind};
use sothebais_backend::auth::{Role, issue_token};
use sothebais_backend::bus::{EventBus, RedisBus};
use sothebais_backend::config::FlagValues;
use sothebais_backend::storage::{PostgresStorage, SqliteStorage, Storage};
use sothebais_backend::{Application, Config, ServiceRole};
use sqlx::Connection as _;
use tokio_util::sync::CancellationToken;

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
                run($crate::helpers::Backend::Embedded).await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn production() {
                if $crate::helpers::Backend::Production.skipped() {
                    return;
                }
                run($crate::helpers::Backend::Production).await;
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
    /// True when the run was explicitly told to skip this backend
    /// (`SOTHEBAIS_TEST_SKIP=production`).
    pub fn skipped(self) -> bool {
        let name = match self {
            Backend::Embedded => "embedded",
            Backend::Production => "production",
        };
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

    /// Settings that point a backend process at this backend's fresh resources.
    pub async fn settings(self, data_dir: &std::path::Path) -> BTreeMap<String, String> {
        let mut settings = BTreeMap::new();
        settings.insert("SOTHEBAIS_DATA_DIR".into(), data_dir.display().to_string());
        if self == Backend::Production {
            settings.insert("DATABASE_URL".into(), fresh_postgres_database().await);
            settings.insert("REDIS_URL".into(), redis_url());
            settings.insert("REDIS_KEY_PREFIX".into(), unique_prefix());
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

/// A backend application running in this test process.
pub struct TestApp {
    pub addresses: Vec<ListenerAddress>,
    pub client: reqwest::Client,
    pub state: sothebais_backend::app::AppState,
    /// The settings it was started with, to start another process on the same state.
    pub settings: BTreeMap<String, String>,
    shutdown: CancellationToken,
    stopped: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _data_dir: Arc<tempfile::TempDir>,
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
        for prefix in ["ADMIN", "EVENT_HANDLER", "AUCTION_ENGINE", "AGENT_SERVICE", "SOCIAL"] {
            settings.insert(format!("{prefix}_PORT"), "0".into());
        }
        for (key, value) in extra {
            settings.insert((*key).to_owned(), (*value).to_owned());
        }
        TestApp::start(settings, data_dir).await
    }

    /// Another process on the same database, bus settings and data folder.
    pub async fn sibling(&self) -> TestApp {
        TestApp::start(self.settings.clone(), self._data_dir.clone()).await
    }

    async fn start(settings: BTreeMap<String, String>, data_dir: Arc<tempfile::TempDir>) -> TestApp {
        let lookup = settings.clone();
        let env = move |key: &str| lookup.get(key).cloned();
        let config = Config::load(&FlagValues::new(), None, &env).expect("test configuration");
        let application = Application::build(config, &ServiceRole::ALL).await.expect("build the application");
        let addresses = application.addresses();
        let state = application.state().clone();
        let shutdown = CancellationToken::new();
        let stopped = tokio::spawn(application.run(shutdown.clone()));
        TestApp {
            addresses,
            client: reqwest::Client::builder().timeout(Duration::from_secs(20)).build().expect("client"),
            state,
            settings,
            shutdown,
            stopped: Some(stopped),
            _data_dir: data_dir,
        }
    }

    /// The data folder, kept alive for a restart on the same state.
    pub fn sibling_dir(&self) -> Arc<tempfile::TempDir> {
        self._data_dir.clone()
    }

    /// Starts again on settings and a data folder an earlier process used.
    pub async fn restart(settings: BTreeMap<String, String>, data_dir: Arc<tempfile::TempDir>) -> TestApp {
        TestApp::start(settings, data_dir).await
    }

    /// Stops it gracefully and waits until it has.
    pub async fn stop(mut self) {
        self.shutdown.cancel();
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
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
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// A valid token for `role`.
pub fn token(role: Role) -> String {
    issue_token(&SecretString::from(JWT_SECRET.to_owned()), "tester", role, Duration::from_secs(600))
        .expect("sign")
}

/// The JSON body of a response, with its status.
pub async fn json(response: reqwest::Response) -> (u16, serde_json::Value) {
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    let value =
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("status {status}: body is not JSON: {text}"));
    (status, value)
}

/// Asserts the failed-response envelope with `code`.
pub fn assert_error(body: &serde_json::Value, code: &str) {
    assert_eq!(body["success"], false, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(body["error"]["message"].as_str().is_some_and(|message| !message.is_empty()), "{body}");
}

/// The next text message of a WebSocket, as JSON, within five seconds.
pub async fn next_json<S>(socket: &mut S) -> serde_json::Value
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
