//! HTTP in the backend: the conventions every listener shares come from the service
//! kit (`sothebais_kit::http`: the envelope on every path, body caps, timeouts, panic
//! catching, request metrics and logs, extractors whose rejections are enveloped),
//! and so does the OpenAPI builder (`sothebais_kit::openapi`) each role feeds with its
//! operations.

pub use sothebais_kit::http::{Json, Path, Query, created, empty, ok, with_conventions};
