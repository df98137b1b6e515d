//! The service kit: the plumbing both SothebAIs binaries (the backend `sothebais` and
//! the renderer `sothebais-renderer`) share, written once.
//!
//! - [`http`]: the response envelope, [`Failure`](http::Failure), extractors whose
//!   rejections come back in the envelope, and the conventions every listener wears
//!   (body cap, timeout, panic catching, request metrics and logs).
//! - [`access`]: bearer tokens on top of `sothebais-auth`: the caller and role
//!   extractors, minting tokens, the signing secret and its file.
//! - [`listen`]: the four listeners of a port block and their `listening` lines.
//! - [`metrics`] and [`health`]: the Prometheus recorder and handler, the
//!   `{"status","checks"}` health answer.
//! - [`clock`]: the time the logic reads, which tests can move forward.
//! - [`shutdown`]: tasks tracked by stage and stopped in a fixed, logged order.
//! - [`telemetry`]: logging set-up (`LOG_FORMAT`, `RUST_LOG`).
//! - [`stats`]: percentile helpers.
//! - [`openapi`]: OpenAPI 3.1 documents from a list of operations, and merging them.
//!
//! `sothebais-shared` stays free of I/O; everything here may do I/O.

pub mod access;
pub mod clock;
pub mod health;
pub mod http;
pub mod listen;
pub mod metrics;
pub mod openapi;
pub mod ratelimit;
pub mod shutdown;
pub mod stats;
pub mod telemetry;
