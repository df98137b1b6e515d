//! HTTP in the backend: the conventions every listener shares come from the service
//! kit (`sothebais_kit::http`: the envelope on every path, body caps, timeouts, panic
//! catching, request metrics and logs, extractors whose rejections are enveloped);
//! what is the backend's own is the OpenAPI builder fed by each role's operations.

pub mod openapi;

pub use sothebais_kit::http::{Json, Path, Query, created, empty, ok, with_conventions};
