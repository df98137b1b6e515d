//! The `auction` role: auctions, bids, campaigns.
//!
//! - `rules`: the pure state machine (no I/O, time passed in);
//! - `engine`: the single writer per auction that decides in batches and commits each
//!   batch with its bid records and events in one transaction;
//! - `scheduler`: the timers that open and close auctions, from stored deadlines;
//! - `http`: the API under `/api/auction`;
//! - `ws`: the auction WebSocket, fed by the bus.

pub mod campaign;
pub mod engine;
pub mod http;
pub mod rules;
pub mod scheduler;
pub mod ws;

pub use http::{operations, router};
