//! The backend application: its state, its roles, and the listeners each role binds.
//!
//! `Application::build` binds every listener first (port 0 picks a free port) and
//! logs each real address as `listening role=… kind=… addr=…`; `run` then serves
//! them all until the shutdown token fires, finishing in-flight requests.

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use futures::Stream;
use metrics_exporter_prometheus::PrometheusHandle;
use sothebais_kit::access::{Authenticator, HasAuthenticator};
use sothebais_kit::clock::SharedClock;
use sothebais_kit::health::Checks;
pub use sothebais_kit::listen::ListenerKind;
use sothebais_kit::listen::{self, BlockRouters, Listener};
use sothebais_kit::shutdown::{Stage, Supervisor};
use sothebais_shared::ports::PortBlock;
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::auction::engine::{DeadlineUpdate, Engine};
use crate::auction::http::ClientRateLimit;
use crate::bus::EventBus;
use crate::config::Config;
use crate::events::live::EventFeed;
use crate::http::with_conventions;
use crate::runtime::Runtime;
use crate::storage::Storage;
use crate::{admin, agent, auction, bus, chain, events, social, storage};
use sothebais_kit::openapi::{self, Operation};

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

    pub(crate) fn ports(self, config: &Config) -> PortBlock {
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
            ServiceRole::Auction => auction::router().merge(chain::api::router()),
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
                // The bare document (not the envelope), so Swagger UI and generators read it.
                axum::Json(openapi::document(&format!("SothebAIs {self} API"), &self.operations()))
            }),
        )
    }

    /// The operations the role's OpenAPI document lists.
    pub fn operations(self) -> Vec<Operation> {
        let own = match self {
            ServiceRole::Auction => {
                let mut operations = auction::operations();
                operations.extend(chain::api::operations());
                operations
            }
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
    /// Where the logic reads the time: the wall clock, or a test's clock.
    pub clock: SharedClock,
    /// Fires when the listeners stop: long-lived connections (WebSockets) end.
    pub shutdown: CancellationToken,
    pub engine: Engine,
    /// Woken when events were stored, so the relay publishes them at once.
    pub outbox: Arc<Notify>,
    pub bid_rate: Arc<ClientRateLimit>,
    /// Verifications by the `seq` they covered.
    pub verify_cache: Arc<auction::http::VerifyCache>,
    /// Live events for WebSocket clients.
    pub feed: EventFeed,
    /// The X integration's client, wording and status.
    pub social: social::SocialHandle,
    /// The AI host: characters, mood, memory, speakers.
    pub agent: agent::AgentHandle,
    /// Per-client rate limits of every API and WebSocket listener of this process.
    pub limiter: Arc<sothebais_kit::ratelimit::Limiter>,
    /// The settings that may change while running, and the block list.
    pub runtime: Arc<Runtime>,
    /// Console accounts and sessions.
    pub accounts: Arc<admin::accounts::Accounts>,
    /// The renderer's live feed, shared by every dashboard.
    pub preview: admin::preview::PreviewRelay,
    /// The figures the metrics digest computes rates from.
    pub digest: Arc<admin::services::DigestMemory>,
    /// The HS256 signing secret: the dashboard mints short tokens with it for the
    /// calls it makes for a signed-in account (the renderer checks the same secret).
    pub secret: Arc<secrecy::SecretString>,
    /// Ethereum, when `ETH_RPC_URL` is set.
    pub chain: Option<Arc<chain::Chain>>,
    /// Where this process's listeners ended up, once bound.
    pub bound: Arc<std::sync::OnceLock<Vec<ListenerAddress>>>,
}

impl AppState {
    /// The address of a listener of this process.
    pub fn listener(&self, role: ServiceRole, kind: ListenerKind) -> Option<SocketAddr> {
        self.bound
            .get()?
            .iter()
            .find(|bound| bound.role == role && bound.kind == kind)
            .map(|bound| bound.addr)
    }
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
    fn authenticator(&self) -> Option<&Authenticator> {
        Some(&self.auth)
    }

    fn sessions(&self) -> Option<&dyn sothebais_kit::access::SessionStore> {
        Some(self.accounts.as_ref())
    }
}

/// Where a listener ended up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerAddress {
    pub role: ServiceRole,
    pub kind: ListenerKind,
    pub addr: SocketAddr,
}

/// The stages a backend process stops in, in order: the listeners first (in-flight
/// requests finish, WebSockets close), then the scheduler, the auction engine (queued
/// commands are decided and committed), the outbox relay (what was committed is
/// published), the event consumers, and the live feed and metrics upkeep last.
struct Stages {
    listeners: Stage,
    scheduler: Stage,
    engine: Stage,
    relay: Stage,
    consumers: Stage,
    feeds: Stage,
}

impl Stages {
    fn declare(supervisor: &mut Supervisor) -> Stages {
        Stages {
            listeners: supervisor.stage("listeners"),
            scheduler: supervisor.stage("auction scheduler"),
            engine: supervisor.stage("auction engine"),
            relay: supervisor.stage("outbox relay"),
            consumers: supervisor.stage("event consumers"),
            feeds: supervisor.stage("live feed and metrics"),
        }
    }
}

/// A backend process with its listeners bound.
pub struct Application {
    state: AppState,
    listeners: Vec<(ServiceRole, Listener)>,
    deadlines: mpsc::UnboundedReceiver<DeadlineUpdate>,
    supervisor: Supervisor,
    stages: Stages,
}

impl fmt::Debug for Application {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Application").field("addresses", &self.addresses()).finish()
    }
}

impl Application {
    /// Connects storage (applying migrations) and the bus, then binds every listener
    /// of `roles`. The engine and the scheduler read the time from `clock`.
    pub async fn build(
        config: Config,
        roles: &[ServiceRole],
        clock: SharedClock,
    ) -> anyhow::Result<Application> {
        let storage = storage::connect(&config).await.context("opening the database")?;
        let bus = bus::connect(&config).await.context("connecting the event bus")?;
        let secret =
            sothebais_kit::access::load_or_create_secret(config.jwt_secret.as_ref(), &config.data_dir)?;
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(3))
            .build()
            .context("building the HTTP client")?;
        let auth = Arc::new(Authenticator::new(
            Some(secrecy::ExposeSecret::expose_secret(&secret).as_bytes()),
            config.auth_jwks_url.clone(),
            http.clone(),
        ));
        let mut supervisor = Supervisor::new();
        let stages = Stages::declare(&mut supervisor);
        let outbox = Arc::new(Notify::new());
        let (engine, deadlines) = Engine::new(storage.clone(), outbox.clone(), clock.clone(), config.max_bid);
        let config = Arc::new(config);
        let runtime = Arc::new(Runtime::new(config.clone()));
        runtime.refresh(storage.as_ref()).await.context("reading the runtime settings")?;
        let agent = agent::AgentHandle::new(
            &config,
            storage.clone(),
            clock.clone(),
            outbox.clone(),
            http.clone(),
            runtime.clone(),
        )
        .await?;
        let cache_at =
            chain::CacheAt { redis_url: config.redis_url.clone(), prefix: config.redis_key_prefix.clone() };
        let chain = chain::Chain::connect(&config.chain, &cache_at)
            .await
            .context("connecting to Ethereum")?
            .map(Arc::new);
        engine.set_checks(Arc::new(chain::checks::BidChecks::new(
            storage.clone(),
            chain.clone(),
            config.chain.check_deadline,
        )));
        let mut social = social::SocialHandle::new(&config, http.clone());
        if roles.contains(&ServiceRole::Agent) {
            // Replies on X in the host's voice when the host runs here.
            social.wording = Arc::new(agent::wording::AgentWording { agent: agent.clone() });
        }
        let state = AppState {
            agent,
            social,
            engine,
            outbox,
            bid_rate: Arc::new(ClientRateLimit::default()),
            verify_cache: Arc::default(),
            feed: EventFeed::default(),
            limiter: sothebais_kit::ratelimit::Limiter::new(config.client_rates, Some(auth.clone())),
            accounts: Arc::new(admin::accounts::Accounts::new(
                storage.clone(),
                clock.clone(),
                config.session_idle,
            )),
            preview: admin::preview::PreviewRelay::new(config.stream_manager_ws_url.clone()),
            digest: Arc::default(),
            bound: Arc::default(),
            chain,
            secret: Arc::new(secret.clone()),
            runtime,
            config,
            storage,
            bus,
            auth,
            metrics: sothebais_kit::metrics::recorder()?,
            http,
            roles: roles.into(),
            started_at: Instant::now(),
            clock,
            shutdown: supervisor.stop_token(stages.listeners),
        };
        let mut listeners = Vec::new();
        for &role in roles {
            let routers = BlockRouters {
                api: api_router(role, &state),
                ws: ws_router(role, &state),
                metrics: metrics_router(role, &state),
                health: health_router(role, &state),
            };
            for listener in
                listen::bind_block(role.as_str(), state.config.bind, role.ports(&state.config), routers)
                    .await?
            {
                listeners.push((role, listener));
            }
            metrics::gauge!("sothebais_role_up", "role" => role.as_str()).set(1.0);
        }
        let application = Application { state, listeners, deadlines, supervisor, stages };
        let _ = application.state.bound.set(application.addresses());
        if roles.contains(&ServiceRole::Admin) {
            admin::announce_first_start(&application.state).await;
        }
        Ok(application)
    }

    /// The real address of every listener.
    pub fn addresses(&self) -> Vec<ListenerAddress> {
        self.listeners
            .iter()
            .map(|(role, listener)| ListenerAddress { role: *role, kind: listener.kind, addr: listener.addr })
            .collect()
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

    /// Serves every listener and runs the background tasks until the first of
    /// `signals` (SIGINT/SIGTERM in the binary), then stops them stage by stage
    /// (see [`Stages`]), each waited for and logged. A task that fails is reported
    /// in the result; a second signal stops at once.
    pub async fn run(self, signals: impl Stream<Item = &'static str> + Unpin) -> anyhow::Result<()> {
        let Application { state, listeners, deadlines, mut supervisor, stages } = self;
        for (role, listener) in listeners {
            let name = format!("{role} {} listener on {}", listener.kind, listener.addr);
            supervisor.spawn(stages.listeners, name, |stop| listener.serve(stop.cancelled_owned()));
        }
        if state.roles.contains(&ServiceRole::Auction) {
            let (engine, clock) = (state.engine.clone(), state.clock.clone());
            supervisor.spawn(stages.scheduler, "auction scheduler", |stop| async move {
                auction::scheduler::run(engine, deadlines, clock, stop).await;
                Ok(())
            });
        }
        let engine = state.engine.clone();
        supervisor.spawn(stages.engine, "auction writers and committer", |stop| async move {
            stop.cancelled().await;
            engine.stop().await
        });
        let (storage, bus, outbox) = (state.storage.clone(), state.bus.clone(), state.outbox.clone());
        supervisor.spawn(stages.relay, "outbox relay", |stop| async move {
            events::relay::run(storage, bus, outbox, stop).await;
            Ok(())
        });
        if state.roles.contains(&ServiceRole::Events) {
            let store = Arc::new(events::dispatch::EventStore::new(state.storage.clone()));
            let settings = events::dispatch::DispatchSettings::from_config(&state.config);
            let (storage, bus) = (state.storage.clone(), state.bus.clone());
            supervisor.spawn(stages.consumers, "event-store consumer", |stop| {
                events::dispatch::deliver(storage, bus, store, settings, stop)
            });
            let (storage, bus) = (state.storage.clone(), state.bus.clone());
            supervisor.spawn(stages.consumers, "event upkeep", |stop| async move {
                events::dispatch::upkeep(storage, bus, stop).await;
                Ok(())
            });
        }
        if state.roles.contains(&ServiceRole::Agent) {
            let agent = state.agent.clone();
            if let Err(error) = agent.catch_up().await {
                tracing::warn!(%error, "open lots not read at start; the host follows them from their next event");
            }
            supervisor.spawn(stages.scheduler, "agent clock", |stop| agent.run_clock(stop));
            let voice = state.agent.clone();
            supervisor.spawn(stages.scheduler, "agent voice", |stop| voice.run_voice(stop));
            let consumer = Arc::new(agent::AgentConsumer::new(state.agent.clone()));
            let settings = events::dispatch::DispatchSettings::from_config(&state.config);
            let (storage, bus) = (state.storage.clone(), state.bus.clone());
            supervisor.spawn(stages.consumers, "agent consumer", |stop| {
                events::dispatch::deliver(storage, bus, consumer, settings, stop)
            });
            let character = state.agent.character();
            match &state.config.agent.llm {
                Some(llm) => {
                    tracing::info!(character = %character.id, model = %llm.model, url = %llm.base_url, "host on air with a model; templates as fallback")
                }
                None => {
                    tracing::info!(character = %character.id, "host on air with the template speaker (set LLM_BASE_URL for a model)")
                }
            }
        }
        if state.roles.contains(&ServiceRole::Social) {
            if state.config.x.configured() {
                let social = social::Social {
                    storage: state.storage.clone(),
                    engine: state.engine.clone(),
                    clock: state.clock.clone(),
                    outbox: state.outbox.clone(),
                    config: state.config.clone(),
                    runtime: state.runtime.clone(),
                    handle: state.social.clone(),
                };
                let reader = social.clone();
                supervisor.spawn(stages.scheduler, "X reader", |stop| reader.read(stop));
                let sender = social.clone();
                supervisor.spawn(stages.consumers, "X sender", |stop| sender.send(stop));
                let follower = Arc::new(social::service::LotFollower::new(social));
                let settings = events::dispatch::DispatchSettings::from_config(&state.config);
                let (storage, bus) = (state.storage.clone(), state.bus.clone());
                supervisor.spawn(stages.consumers, "social consumer", |stop| {
                    events::dispatch::deliver(storage, bus, follower, settings, stop)
                });
                tracing::info!(
                    api = %state.config.x.api_base_url, dry_run = state.config.x.dry_run,
                    "social role reading X"
                );
            } else {
                tracing::info!(
                    "social role idle: X is not configured (set X_BEARER_TOKEN or run `sothebais x login`)"
                );
            }
        }
        let (runtime, storage) = (state.runtime.clone(), state.storage.clone());
        supervisor.spawn(stages.feeds, "runtime settings", |stop| runtime.follow(storage, stop));
        let (feed, bus) = (state.feed.clone(), state.bus.clone());
        supervisor.spawn(stages.feeds, "live event feed", |stop| async move {
            feed.run(bus, stop).await;
            Ok(())
        });
        let metrics = state.metrics.clone();
        supervisor.spawn(stages.feeds, "metrics upkeep", |stop| async move {
            sothebais_kit::metrics::upkeep(metrics, stop.cancelled_owned()).await;
            Ok(())
        });
        let names: Vec<&str> = state.roles.iter().map(|role| role.as_str()).collect();
        tracing::info!(roles = %names.join(","), "serving");
        let result = supervisor.run(signals).await;
        tracing::info!("stopped");
        result
    }
}

/// Per-client rate limits (`sothebais_kit::ratelimit`) on a router's routes.
fn rate_limited(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    let limiter = state.limiter.clone();
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            sothebais_kit::ratelimit::limit(limiter.clone(), request, next)
        },
    ))
}

fn api_router(role: ServiceRole, state: &AppState) -> Router {
    let mut router = role.router_for_gateway();
    if role == ServiceRole::Admin {
        router = admin::gateway(router);
    }
    let router = admin::audit::audited(router, state);
    let router = rate_limited(router, state);
    with_conventions(router, role.as_str(), state.config.request_timeout).with_state(state.clone())
}

fn ws_router(role: ServiceRole, state: &AppState) -> Router {
    let router = match role {
        ServiceRole::Events | ServiceRole::Admin => events::websocket_router(),
        ServiceRole::Auction => auction::ws::router(),
        ServiceRole::Agent => agent::websocket_router(),
        _ => Router::new(),
    };
    let router = rate_limited(router, state);
    // WebSockets live longer than any request timeout; only the envelope applies.
    with_conventions(router, role.as_str(), Duration::from_secs(24 * 3600)).with_state(state.clone())
}

fn metrics_router(role: ServiceRole, state: &AppState) -> Router {
    with_conventions(
        sothebais_kit::metrics::router(state.metrics.clone()),
        role.as_str(),
        state.config.request_timeout,
    )
}

fn health_router(role: ServiceRole, state: &AppState) -> Router {
    let router = Router::new().route(
        "/health",
        get(move |State(state): State<AppState>| async move { health(role, &state).await }),
    );
    with_conventions(router, role.as_str(), state.config.request_timeout).with_state(state.clone())
}

/// The checks of a role: the database, and Redis when the bus is Redis.
pub async fn health_checks(state: &AppState) -> Checks {
    let mut checks = Checks::new();
    let timeout = Duration::from_secs(2);
    checks.probe("database", timeout, state.storage.ping()).await;
    if state.bus.kind() == "redis" {
        checks.probe("redis", timeout, state.bus.ping()).await;
    }
    checks
}

async fn health(role: ServiceRole, state: &AppState) -> Response {
    let mut checks = health_checks(state).await;
    if role == ServiceRole::Social {
        if state.config.x.configured() {
            checks.set("x_api", state.social.health());
        } else {
            checks.idle("X is not configured (set X_BEARER_TOKEN or run `sothebais x login`)");
        }
    }
    if role == ServiceRole::Auction
        && let Some(chain) = &state.chain
    {
        checks.probe("rpc", Duration::from_secs(3), async { chain.health().await.map(drop) }).await;
    }
    if role == ServiceRole::Agent
        && let Some(llm) = state.agent.llm_health()
    {
        checks.set("llm", llm);
    }
    checks.response(role.as_str(), state.started_at.elapsed())
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
