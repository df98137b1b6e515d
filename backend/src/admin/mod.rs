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

pub use api::{announce_first_start, generate_password, redact};

use crate::app::{AppState, ServiceRole, health_checks};
use crate::http::ok;
use crate::http::openapi::{self, Operation};
use sothebais_kit::access::Role;

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

/// The merged document, bare like each role's: every role's operations and the
/// stream manager's, which the gateway proxies.
async fn merged_openapi() -> axum::Json<serde_json::Value> {
    let mut operations: Vec<Operation> =
        ServiceRole::ALL.into_iter().flat_map(ServiceRole::operations).collect();
    operations.extend(stream_operations());
    axum::Json(openapi::document("SothebAIs API", &operations))
}

/// The stream manager's API (the renderer), as the gateway serves it under `/api/stream`.
fn stream_operations() -> Vec<Operation> {
    vec![
        Operation::new(
            "GET",
            "/api/stream/status",
            "The renderer: state, fps, frame times, drops, outputs, encoder, scene",
        ),
        Operation::new("GET", "/api/stream/layers", "The layers of the scene on air"),
        Operation::new(
            "POST",
            "/api/stream/layers/{id}",
            "Show, hide, retext, move or fade a layer until its scene file changes it",
        )
        .auth(Role::Operator),
        Operation::new(
            "GET",
            "/api/stream/scenes",
            "The scenes, the one on air, the pinned one and each file's error",
        ),
        Operation::new(
            "POST",
            "/api/stream/scenes/active",
            "Pin a scene on air, or `null` to go back to the rules",
        )
        .auth(Role::Operator),
        Operation::new(
            "GET",
            "/api/stream/frame",
            "The latest frame as PNG, or JPEG scaled to `width` (binary, not the envelope)",
        ),
        Operation::new(
            "POST",
            "/api/stream/playback",
            "Stop, start or restart outputs while rendering goes on",
        )
        .auth(Role::Operator),
        Operation::new("POST", "/api/stream/assets/upload", "Upload an image, font or sound (multipart)")
            .auth(Role::Operator),
        Operation::new(
            "GET",
            "/api/stream/clips",
            "The winning-moment clips of sold lots, newest first: auction id, file, duration, size",
        ),
        Operation::new(
            "GET",
            "/api/stream/clips/{file}",
            "One clip as MP4 (`<auction id>.mp4`; byte ranges for seeking; binary, not the envelope)",
        ),
    ]
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
