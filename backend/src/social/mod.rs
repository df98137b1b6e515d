//! The `social` role: the X integration (`x.md`, docs/x.md). Bids are read from
//! posts (`parse`), X is spoken to through `client` in X API v2's shapes (`xapi`),
//! the role's tasks live in `service`, and what the show says in `words`.

pub mod client;
pub mod login;
pub mod parse;
pub mod service;
pub mod words;
pub mod xapi;

use std::collections::BTreeMap;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use serde_json::json;
use sothebais_kit::http::ok;

use crate::app::AppState;
use crate::error::Result;
use sothebais_kit::openapi::Operation;

pub use service::{Social, SocialHandle};

pub fn router() -> Router<AppState> {
    Router::new().route("/api/social/status", get(status))
}

pub fn operations() -> Vec<Operation> {
    vec![Operation::new(
        "GET",
        "/api/social/status",
        "The X connection: account, cursor, last poll, rate limits, replies sent and pending, spend",
    )]
}

/// `GET /api/social/status` (public; no secret is ever in it).
async fn status(State(state): State<AppState>) -> Result<Response> {
    let view = state.social.view();
    let mut sent = 0u64;
    let mut pending = 0u64;
    let mut writes: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    for (kind, write_state, count) in state.storage.write_counts().await? {
        match write_state.as_str() {
            "sent" => sent += count,
            "pending" => pending += count,
            _ => {}
        }
        writes.entry(kind).or_default().insert(write_state, count);
    }
    let posts: BTreeMap<String, u64> = state.storage.post_counts().await?.into_iter().collect();
    let (spend, resources) = state.social.client.spend();
    let rate_limits: BTreeMap<&str, serde_json::Value> = state
        .social
        .client
        .rate_limits()
        .into_iter()
        .map(|(endpoint, limit)| {
            (endpoint, json!({"remaining": limit.remaining, "reset_at": limit.reset_at}))
        })
        .collect();
    let resources: BTreeMap<&str, u64> =
        resources.into_iter().map(|(resource, count)| (resource.as_str(), count)).collect();
    Ok(ok(json!({
        "configured": view.configured,
        "connected": view.connected,
        "handle": view.handle,
        "since_id": view.since_id,
        "last_poll_at": view.last_poll_at,
        "last_error": view.last_error,
        "poll_interval_ms": view.poll_interval_ms,
        "dry_run": view.dry_run,
        "rate_limits": rate_limits,
        "replies_sent": sent,
        "replies_pending": pending,
        "writes": writes,
        "posts": posts,
        "resources": resources,
        "spend_usd": {"show": spend, "by_lot": view.by_lot},
        "spend_limit_usd": state.runtime.spend_limit_usd(),
    })))
}
