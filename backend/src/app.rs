//! The backend application: its state, its roles, and the listeners each role binds.
//!
//! `Application::build` binds every listener first (port 0 picks a free port) and
//! logs each real address as `listening role=… kind=… addr=…`; `run` then serves
//! them all until the shutdown token fires, finishing in-flight requests.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;
use sothebais_shared::ports::PortBlock;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use tokio::sync::{Notify, mpsc};

use crate::auction::engine::{DeadlineUpdate, Engine};
use crate::auction::http::ClientRateLimit;
use crate::auth::{Authenticator, HasAuthenticator};
use crate::bus::EventBus;
use crate::config::Config;
use crate::events::feed::EventFeed;
use crate::http::openapi::{self, Operation};
use crate::http::with_conventions;
use crate::storage::Storage;
use crate::{admin, agent, auction, auth, bus, events, social, storage};

/// A part of the backend that can run in its own process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServiceRole {
    Auction,
    Events,
    Agent,
    Social,
    Admin,
}

impl ServiceRole {
    pub const ALL: [ServiceRole; 5] = [
        ServiceRole::Auction,
        ServiceRole::Events,
        ServiceRole::Agent,
        ServiceRole::Social,
        ServiceRole::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ServiceRole::Auction => "auction",
            ServiceRole::Events => "events",
            ServiceRole::Agent => "agent",
            ServiceRole::Social => "social",
            ServiceRole::Admin => "admin",
        }
    }

    fn ports(self, config: &Config) -> PortBlock {
        match self {
            ServiceRole::Auction => config.ports.auction,
            ServiceRole::Events => config.ports.events,
            ServiceRole::Agent => config.ports.agent,
            ServiceRole::Social => config.ports.social,
            ServiceRole::Admin => config.ports.admin,
        }
    }

    /// The role's API, under its own prefix (`/api/auction/…`).
    fn api(self) -> Router<AppState> {
        match self {
            ServiceRole::Auction => auction::router(),
            ServiceRole::Events => events::router(),
            ServiceRole::Agent => agent::router(),
            ServiceRole::Social => social::router(),
            ServiceRole::Admin => admin::router(),
        }
    }

    /// The role's API as the gateway mounts it, with its OpenAPI document.
    pub fn router_for_gateway(self) -> Router<AppState> {
        self.api().route(
            openapi_path(self),
            get(move || async move {
                crate::http::ok(openapi::document(&format!("SothebAIs {self} API"), &self.operations()))
            }),
        )
    }

    /// The operations the role's OpenAPI document lists.
    pub fn operations(self) -> Vec<Operation> {
        let own = match self {
            ServiceRole::Auction => auction::operations(),
            ServiceRole::Events => events::operations(),
            ServiceRole::Agent => agent::operations(),
            ServiceRole::Social => social::operations(),
            ServiceRole::Admin => admin::operations(),
        };
        let mut operations = vec![Operation::new("GET", openapi_path(self), "This OpenAPI document")];
        operations.extend(own);
        operations
    }
}

fn openapi_path(role: ServiceRole) -> &'static str {
    match role {
        ServiceRole::Auction => "/api/auction/openapi.json",
        ServiceRole::Events => "/api/events/openapi.json",
        ServiceRole::Agent => "/api/agent/openapi.json",
        ServiceRole::Social => "/api/social/openapi.json",
        ServiceRole::Admin => "/api/admin/openapi.json",
    }
}

impl fmt::Display for ServiceRole {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

impl FromStr for ServiceRole {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        ServiceRole::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| format!("unknown role {text:?}: use auction, events, agent, social or admin"))
    }
}

/// Parses `--roles auction,events`.
pub fn parse_roles(text: &str) -> Result<Vec<ServiceRole>, String> {
    let mut roles = Vec::new();
    for part in text.split(',').map(str::trim).filter(|part| !part.is_empty()) {
        let role: ServiceRole = part.parse()?;
        if !roles.contains(&role) {
            roles.push(role);
        }
    }
    if roles.is_empty() {
        return Err("name at least one role".into());
    }
    roles.sort();
    Ok(roles)
}

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub storage: Arc<dyn Storage>,
    pub bus: Arc<dyn EventBus>,
    pub auth: Arc<Authenticator>,
    pub metrics: PrometheusHandle,
    pub http: reqwest::Client,
    pub roles: Arc<[ServiceRole]>,
    pub started_at: Instant,
    pub shutdown: CancellationToken,
    pub engine: Engine,
    /// Woken when events were stored, so the relay publishes them at once.
    pub outbox: Arc<Notify>,
    pub bid_rate: Arc<ClientRateLimit>,
    /// Live events for WebSocket clients.
    pub feed: EventFeed,
}

impl fmt::Debug for AppState {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter
            .debug_struct("AppState")
            .field("storage", &self.storage.kind())
            .field("bus", &self.bus.kind())
            .field("roles", &self.roles)
            .finish_non_exhaustive()
    }
}

impl HasAuthenticator for AppState {
    fn authenticator(&self) -> &Authenticator {
        &self.auth
    }
}

/// The kind of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerKind {
    Api,
    Ws,
    Metrics,
    Health,
}

impl ListenerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Api => "api",
            ListenerKind::Ws => "ws",
            ListenerKind::Metrics => "metrics",
            ListenerKind::Health => "health",
        }
    }
}

/// Where a listener ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerAddress {
    pub role: ServiceRole,
    pub kind: ListenerKind,
    pub addr: SocketAddr,
}

/// The process-wide Prometheus recorder, installed on first use.
pub fn metrics_handle() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("_seconds".into()),
            &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0],
        )
        .context("configuring metrics buckets")?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
    }
    HANDLE.get().cloned().context("another metrics recorder is installed")
}

/// A backend process with its listeners bound.
pub struct Application {
    state: AppState,
    listeners: Vec<(ListenerAddress, TcpListener, Router)>,
    deadlines: mpsc::UnboundedReceiver<DeadlineUpdate>,
}

impl fmt::Debug for Application {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Application").field("addresses", &self.addresses()).finish()
    }
}

impl Application {
    /// Connects storage (applying migrations) and the bus, then binds every listener
    /// of `roles`.
    pub async fn build(config: Config, roles: &[ServiceRole]) -> anyhow::Result<Application> {
        let storage = storage::connect(&config).await.context("opening the database")?;
        let bus = bus::connect(&config).await.context("connecting the event bus")?;
        let secret = auth::load_or_create_secret(config.jwt_secret.as_ref(), &config.data_dir)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .context("building the HTTP client")?;
        let auth = Arc::new(Authenticator::new(
            Some(secrecy::ExposeSecret::expose_secret(&secret).as_bytes()),
            config.auth_jwks_url.clone(),
            http.clone(),
        ));
        let outbox = Arc::new(Notify::new());
        let (engine, deadlines) = Engine::new(storage.clone(), outbox.clone());
        let state = AppState {
            engine,
            outbox,
            bid_rate: Arc::new(ClientRateLimit::default()),
            feed: EventFeed::default(),
            config: Arc::new(config),
            storage,
            bus,
            auth,
            metrics: metrics_handle()?,
            http,
            roles: roles.into(),
            started_at: Instant::now(),
            shutdown: CancellationToken::new(),
        };
        let mut listeners = Vec::new();
        for &role in roles {
            let ports = role.ports(&state.config);
            for (kind, port, router) in [
                (ListenerKind::Api, ports.api, api_router(role, &state)),
                (ListenerKind::Ws, ports.ws, ws_router(role, &state)),
                (ListenerKind::Metrics, ports.metrics, metrics_router(role, &state)),
                (ListenerKind::Health, ports.health, health_router(role, &state)),
            ] {
                let bind = SocketAddr::new(state.config.bind, port);
                let listener = TcpListener::bind(bind)
                    .await
                    .with_context(|| format!("role {role} cannot listen for {} on {bind}", kind.as_str()))?;
                let addr = listener.local_addr().context("reading the bound address")?;
                tracing::info!(role = %role, kind = %kind.as_str(), addr = %addr, "listening");
                listeners.push((ListenerAddress { role, kind, addr }, listener, router));
            }
            metrics::gauge!("sothebais_role_up", "role" => role.as_str()).set(1.0);
        }
        Ok(Application { state, listeners, deadlines })
    }

    /// The real address of every listener.
    pub fn addresses(&self) -> Vec<ListenerAddress> {
        self.listeners.iter().map(|(address, _, _)| *address).collect()
    }

    /// The address of one listener.
    pub fn address(&self, role: ServiceRole, kind: ListenerKind) -> Option<SocketAddr> {
        self.addresses()
            .into_iter()
            .find(|address| address.role == role && address.kind == kind)
            .map(|a| a.addr)
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves every listener until `shutdown` fires, then lets in-flight requests finish.
    pub async fn run(self, shutdown: CancellationToken) -> anyhow::Result<()> {
        let state = self.state;
        let mut background = tokio::task::JoinSet::new();
        background.spawn(events::relay::run(
            state.storage.clone(),
            state.bus.clone(),
            state.outbox.clone(),
            shutdown.clone(),
        ));
        if state.roles.contains(&ServiceRole::Auction) {
            background.spawn(auction::scheduler::run(state.engine.clone(), self.deadlines, shutdown.clone()));
        }
        background.spawn(state.feed.clone().run(state.bus.clone(), shutdown.clone()));
        if state.roles.contains(&ServiceRole::Events) {
            let store = Arc::new(events::dispatch::EventStore::new(state.storage.clone()));
            let settings = events::dispatch::DispatchSettings::from_config(&state.config);
            let runner = events::dispatch::spawn(
                state.storage.clone(),
                state.bus.clone(),
                store,
                settings,
                shutdown.clone(),
            );
            background.spawn(async move {
                let _ = runner.await;
            });
            background.spawn(events::dispatch::upkeep(
                state.storage.clone(),
                state.bus.clone(),
                shutdown.clone(),
            ));
        }
        let upkeep = {
            let metrics = state.metrics.clone();
            let stop = shutdown.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(5));
                loop {
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tick.tick() => metrics.run_upkeep(),
                    }
                }
            })
        };
        let mut servers = tokio::task::JoinSet::new();
        for (address, listener, router) in self.listeners {
            let stop = shutdown.clone();
            servers.spawn(async move {
                axum::serve(listener, router.into_make_service())
                    .with_graceful_shutdown(async move { stop.cancelled().await })
                    .await
                    .with_context(|| {
                        format!("serving {} {} on {}", address.role, address.kind.as_str(), address.addr)
                    })
            });
        }
        // Long-lived connections (WebSockets) end when the state's token fires.
        let relay = state.shutdown.clone();
        let stop = shutdown.clone();
        tokio::spawn(async move {
            stop.cancelled().await;
            relay.cancel();
        });
        let mut result = Ok(());
        while let Some(joined) = servers.join_next().await {
            let outcome = joined.context("a listener task panicked").and_then(|served| served);
            if let Err(error) = outcome {
                tracing::error!(error = %format!("{error:#}"), "listener stopped");
                shutdown.cancel();
                result = Err(error);
            }
        }
        upkeep.abort();
        while background.join_next().await.is_some() {}
        tracing::info!("stopped");
        result
    }
}

fn api_router(role: ServiceRole, state: &AppState) -> Router {
    let mut router = role.router_for_gateway();
    if role == ServiceRole::Admin {
        router = admin::gateway(router);
    }
    with_conventions(router, role.as_str(), state.config.request_timeout).with_state(state.clone())
}

fn ws_router(role: ServiceRole, state: &AppState) -> Router {
    let router = match role {
        ServiceRole::Events | ServiceRole::Admin => events::stream_router(),
        ServiceRole::Auction => auction::ws::router(),
        _ => Router::new(),
    };
    // WebSockets live longer than any request timeout; only the envelope applies.
    with_conventions(router, role.as_str(), Duration::from_secs(24 * 3600)).with_state(state.clone())
}

fn metrics_router(role: ServiceRole, state: &AppState) -> Router {
    let router = Router::new().route(
        "/metrics",
        get(|State(state): State<AppState>| async move {
            ([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4")], state.metrics.render())
        }),
    );
    with_conventions(router, role.as_str(), state.config.request_timeout).with_state(state.clone())
}

fn health_router(role: ServiceRole, state: &AppState) -> Router {
    let router = Router::new().route(
        "/health",
        get(move |State(state): State<AppState>| async move { health(role, &state).await }),
    );
    with_conventions(router, role.as_str(), state.config.request_timeout).with_state(state.clone())
}

/// The checks of a role, `ok` or the reason they fail.
pub async fn health_checks(state: &AppState) -> serde_json::Map<String, serde_json::Value> {
    let mut checks = serde_json::Map::new();
    let timeout = Duration::from_secs(2);
    let database = match tokio::time::timeout(timeout, state.storage.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(error)) => error.to_string(),
        Err(_) => "no answer within 2 s".to_owned(),
    };
    checks.insert("database".into(), json!(database));
    if state.bus.kind() == "redis" {
        let redis = match tokio::time::timeout(timeout, state.bus.ping()).await {
            Ok(Ok(())) => "ok".to_owned(),
            Ok(Err(error)) => error.to_string(),
            Err(_) => "no answer within 2 s".to_owned(),
        };
        checks.insert("redis".into(), json!(redis));
    }
    checks
}

async fn health(role: ServiceRole, state: &AppState) -> Response {
    let checks = health_checks(state).await;
    let failing = checks.values().filter(|value| value.as_str() != Some("ok")).count();
    let (status, code) = match failing {
        0 => ("ok", StatusCode::OK),
        n if n == checks.len() => ("down", StatusCode::SERVICE_UNAVAILABLE),
        _ => ("degraded", StatusCode::SERVICE_UNAVAILABLE),
    };
    let body = json!({
        "status": status,
        "role": role.as_str(),
        "checks": checks,
        "uptime_secs": state.started_at.elapsed().as_secs(),
    });
    (code, axum::Json(body)).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_from_a_comma_list_without_duplicates() {
        assert_eq!(
            parse_roles("events, auction,events"),
            Ok(vec![ServiceRole::Auction, ServiceRole::Events])
        );
        assert!(parse_roles("auction,stream").expect_err("unknown").contains("stream"));
        assert!(parse_roles("").is_err());
    }
}
