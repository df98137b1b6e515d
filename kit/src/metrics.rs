//! The process-wide Prometheus recorder and the `/metrics` handler.

use std::future::Future;
use std::sync::OnceLock;

use anyhow::Context as _;
use axum::Router;
use axum::http::header;
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Buckets of every `*_seconds` histogram: from half a millisecond (a decision, an
/// event applied) through a frame interval at 30 and 60 fps to ten seconds.
const SECONDS_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.0167, 0.025, 0.0333, 0.05, 0.067, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
    10.0,
];

/// The process-wide recorder, installed on first use.
pub fn recorder() -> anyhow::Result<PrometheusHandle> {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    if let Some(handle) = HANDLE.get() {
        return Ok(handle.clone());
    }
    let recorder = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS_BUCKETS)
        .context("configuring metrics buckets")?
        .build_recorder();
    let handle = recorder.handle();
    if metrics::set_global_recorder(recorder).is_ok() {
        let _ = HANDLE.set(handle);
    }
    HANDLE.get().cloned().context("another metrics recorder is installed")
}

/// `GET /metrics` in Prometheus' text format.
pub fn router(handle: PrometheusHandle) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let handle = handle.clone();
            async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], handle.render()) }
        }),
    )
}

/// Runs the recorder's upkeep (draining histogram buffers) every five seconds until
/// `stop` resolves.
pub async fn upkeep(handle: PrometheusHandle, stop: impl Future<Output = ()>) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(5));
    tokio::pin!(stop);
    loop {
        tokio::select! {
            () = &mut stop => return,
            _ = tick.tick() => handle.run_upkeep(),
        }
    }
}
