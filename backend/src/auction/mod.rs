//! The `auction` role: auctions, bids, campaigns (filled by the auction engine).
//! Until its work lands it serves only its OpenAPI document and health, metrics and
//! the envelope on every other path.

use axum::Router;

use crate::app::AppState;
use crate::http::openapi::Operation;

pub fn router() -> Router<AppState> {
    Router::new()
}

pub fn operations() -> Vec<Operation> {
    Vec::new()
}
