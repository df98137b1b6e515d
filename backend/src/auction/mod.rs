//! The `auction` role: auctions, bids, campaigns.
//!
//! `rules` is the pure state machine; the engine around it stores each decision and
//! its events in one transaction before anything is acknowledged.

pub mod engine;
pub mod rules;

use axum::Router;

use crate::app::AppState;
use crate::http::openapi::Operation;

pub fn router() -> Router<AppState> {
    Router::new()
}

pub fn operations() -> Vec<Operation> {
    Vec::new()
}
