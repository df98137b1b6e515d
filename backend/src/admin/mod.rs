//! The `admin` role: the admin API (`/api/admin`), the dashboard at `/`, and the
//! gateway: on `ADMIN_PORT` it also serves every other role's API under its prefix,
//! the merged OpenAPI document, and `/api/stream` proxied to the renderer.

pub mod accounts;
mod api;
pub mod audit;
mod dashboard;
pub mod preview;
mod proxy;
pub mod services;
pub mod throttle;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{any, get, post};
use serde_json::json;
use std::time::Duration;

pub use api::{announce_first_start, generate_password, redact};

use crate::app::{AppState, ServiceRole, health_checks};
use crate::http::ok;
use sothebais_kit::access::Role;
use sothebais_kit::openapi::{self, Operation};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/admin/status", get(status))
        .route("/api/admin/login", post(api::login))
        .route("/api/admin/logout", post(api::logout))
        .route("/api/admin/session", get(api::session))
        .route("/api/admin/first-login", get(api::first_login))
        .route("/api/admin/password", post(api::set_password))
        .route("/api/admin/services/status", get(api::services_status))
        .route("/api/admin/services/metrics", get(api::services_metrics))
        .route("/api/admin/config", get(api::config).post(api::change_config))
        .route("/api/admin/logs", get(api::logs))
        .route("/api/admin/maintenance", post(api::maintenance))
        .route("/api/admin/audit", get(api::audit))
        .route("/api/admin/blocklist", get(api::blocklist).post(api::block).delete(api::unblock))
        .route("/api/admin/users", get(api::users).post(api::add_user).delete(api::remove_user))
        .route("/api/admin/live", get(preview::upgrade))
}

pub fn operations() -> Vec<Operation> {
    vec![
        Operation::new(
            "GET",
            "/api/admin/status",
            "Roles in this process, storage and bus, health checks, uptime, event consumers with pending entries and dead letters",
        ),
        Operation::new(
            "POST",
            "/api/admin/login",
            "Sign in with `username` and `password`: a session cookie and the CSRF token for writes",
        ),
        Operation::new("POST", "/api/admin/logout", "End the session of the cookie"),
        Operation::new("GET", "/api/admin/session", "The signed-in account, its role and the CSRF token"),
        Operation::new(
            "GET",
            "/api/admin/first-login",
            "The first start's one-time sign-in link (`?token=`), from this machine only",
        ),
        Operation::new(
            "POST",
            "/api/admin/password",
            "Set the signed-in account's own password (`password`); its other sessions end",
        )
        .auth(Role::Viewer),
        Operation::new(
            "GET",
            "/api/admin/services/status",
            "Every role's and the renderer's health as each reports it, with version and uptime",
        )
        .auth(Role::Viewer),
        Operation::new(
            "GET",
            "/api/admin/services/metrics",
            "Key figures per role: bids/s, decision p99, events lag, dead letters, fps, drops, X spend, fallbacks",
        )
        .auth(Role::Viewer),
        Operation::new(
            "GET",
            "/api/admin/config",
            "The effective configuration, secrets redacted, each setting with its origin",
        )
        .auth(Role::Admin),
        Operation::new(
            "POST",
            "/api/admin/config",
            "Change settings that may change while running (`{\"NAME\": \"value\"}`); others are refused by name",
        )
        .auth(Role::Admin),
        Operation::new("GET", "/api/admin/logs", "Recent log lines (`level`, `since`, `limit`), secrets redacted")
            .auth(Role::Admin),
        Operation::new(
            "POST",
            "/api/admin/maintenance",
            "`action`: `backup` (SQLite online backup), `prune_events` (`older_than_days`), `retry_dead_letters`",
        )
        .auth(Role::Admin),
        Operation::new("GET", "/api/admin/audit", "Every write through any API: who, what, when, how it ended")
            .auth(Role::Admin),
        Operation::new("GET", "/api/admin/blocklist", "Bidders refused `BIDDER_BLOCKED`").auth(Role::Operator),
        Operation::new("POST", "/api/admin/blocklist", "Block a bidder (`entry`: id or @handle, `reason`)")
            .auth(Role::Operator),
        Operation::new("DELETE", "/api/admin/blocklist", "Unblock a bidder (`?entry=`)").auth(Role::Operator),
        Operation::new("GET", "/api/admin/users", "Console accounts").auth(Role::Admin),
        Operation::new(
            "POST",
            "/api/admin/users",
            "Add an account (`username`, `role`, `password` or one generated and answered once)",
        )
        .auth(Role::Admin),
        Operation::new("DELETE", "/api/admin/users", "Remove an account (`?username=`); its sessions end")
            .auth(Role::Admin),
        Operation::new(
            "GET",
            "/api/admin/live",
            "WebSocket: the renderer's status and JPEG previews, one renderer connection for every dashboard",
        ),
    ]
}

/// Adds the gateway to the admin API router: every other role's API, the merged
/// OpenAPI document, the renderer proxy and the dashboard.
pub fn gateway(mut router: Router<AppState>) -> Router<AppState> {
    for role in ServiceRole::ALL.into_iter().filter(|role| *role != ServiceRole::Admin) {
        router = router.merge(role.router_for_gateway());
    }
    router
        .route("/api/openapi.json", get(merged_openapi))
        .route("/api/stream", any(proxy::to_renderer))
        .route("/api/stream/{*rest}", any(proxy::to_renderer))
        .merge(dashboard::router())
}

/// How long the merged document waits for the stream manager's own.
const STREAM_DOCUMENT_DEADLINE: Duration = Duration::from_secs(2);

/// The merged document, bare like each role's: every role's operations, and the
/// stream manager's own document (`/api/stream/openapi.json`, read from the renderer
/// the gateway proxies). When the renderer cannot be read, the document says so in
/// `info.x-unavailable` rather than listing operations nobody answers.
async fn merged_openapi(State(state): State<AppState>) -> axum::Json<serde_json::Value> {
    let operations: Vec<Operation> = ServiceRole::ALL.into_iter().flat_map(ServiceRole::operations).collect();
    let mut document = openapi::document("SothebAIs API", &operations);
    let url = format!("{}/api/stream/openapi.json", state.config.stream_manager_url);
    match stream_document(&state.http, &url).await {
        Ok(stream) => openapi::merge_paths(&mut document, &stream),
        Err(reason) => {
            tracing::warn!(%url, %reason, "the merged OpenAPI document goes without the stream manager's API");
            document["info"]["x-unavailable"] = serde_json::json!({ "stream": format!("{url}: {reason}") });
        }
    }
    axum::Json(document)
}

async fn stream_document(http: &reqwest::Client, url: &str) -> Result<serde_json::Value, String> {
    let answer = http
        .get(url)
        .timeout(STREAM_DOCUMENT_DEADLINE)
        .send()
        .await
        .and_then(reqwest::Response::error_for_status)
        .map_err(|error| error.without_url().to_string())?;
    let document: serde_json::Value = answer.json().await.map_err(|error| error.without_url().to_string())?;
    if document.get("openapi").is_none() {
        return Err("not an OpenAPI document".into());
    }
    Ok(document)
}

/// Each registered consumer with its pending entries and dead letters, for the dashboard.
async fn consumer_summary(state: &AppState) -> Vec<serde_json::Value> {
    let Ok(consumers) = state.storage.consumers().await else { return Vec::new() };
    let dead_letters = state.storage.dead_letter_counts().await.unwrap_or_default();
    let mut summary = Vec::new();
    for consumer in consumers {
        let pending: u64 = crate::events::dispatch::pending_by_stream(state.bus.as_ref(), &consumer)
            .await
            .iter()
            .map(|(_, count)| count)
            .sum();
        let dead =
            dead_letters.iter().find(|(name, _)| *name == consumer.name).map_or(0, |(_, count)| *count);
        summary.push(json!({ "name": consumer.name, "patterns": consumer.patterns, "pending": pending, "dead_letters": dead }));
    }
    summary
}

async fn status(State(state): State<AppState>) -> Response {
    let checks = health_checks(&state).await;
    let consumers = consumer_summary(&state).await;
    ok(json!({
        "version": env!("CARGO_PKG_VERSION"),
        "mode": if state.bus.kind() == "redis" || state.storage.kind() == crate::storage::StorageKind::Postgres { "production" } else { "embedded" },
        "roles": state.roles.iter().map(|role| role.as_str()).collect::<Vec<_>>(),
        "storage": format!("{:?}", state.storage.kind()).to_lowercase(),
        "bus": state.bus.kind(),
        "checks": checks.to_json(),
        "uptime_secs": state.started_at.elapsed().as_secs(),
        "timezone": state.config.timezone.name(),
        "consumers": consumers,
    }))
}
