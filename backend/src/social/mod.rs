//! The `social` role: the X integration (`x.md`).

pub mod parse;
pub mod xapi;

use axum::Router;

use crate::app::AppState;
use crate::http::openapi::Operation;

pub fn router() -> Router<AppState> {
    Router::new()
}

pub fn operations() -> Vec<Operation> {
    Vec::new()
}
