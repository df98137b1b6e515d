//! Wire types shared by the SothebAIs backend and renderer.
//!
//! This crate does no I/O: it holds the shapes that cross process boundaries (the
//! event envelope and types, auction and bid snapshots, exact ETH amounts, the API
//! response envelope, the port-block pattern) and small pure helpers around them.

pub mod amount;
pub mod api;
pub mod auction;
pub mod events;
pub mod ports;
pub mod time;
pub mod wav;

pub use amount::Amount;
pub use api::{ApiError, ApiResponse};
pub use events::{Envelope, EventType, Source};
