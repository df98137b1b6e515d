//! What the console reports of the services: each role's health as its own
//! `/health` answers (asked over HTTP, never assumed), the renderer's, and a digest
//! of the key figures read from each role's `/metrics` and the renderer's status.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::app::{AppState, ListenerKind, ServiceRole};

/// How long a service may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// Where a role's listener of `kind` is: its real address when it runs in this
/// process, else its host (`ADMIN_SERVICE_HOSTS`, default 127.0.0.1) at its port.
/// The base URL of a role's listener: this process's own where it runs the role
/// (an unspecified bind address reached on loopback), else `ADMIN_SERVICE_HOSTS`.
pub fn address(state: &AppState, role: ServiceRole, kind: ListenerKind) -> String {
    if let Some(addr) = state.listener(role, kind) {
        let addr = SocketAddr::new(
            if addr.ip().is_unspecified() { std::net::Ipv4Addr::LOCALHOST.into() } else { addr.ip() },
            addr.port(),
        );
        return format!("http://{addr}");
    }
    let ports = role.ports(&state.config);
    let port = match kind {
        ListenerKind::Api => ports.api,
        ListenerKind::Ws => ports.ws,
        ListenerKind::Metrics => ports.metrics,
        ListenerKind::Health => ports.health,
    };
    let host = state.config.service_hosts.get(role.as_str()).map_or("127.0.0.1", String::as_str);
    format!("http://{host}:{port}")
}

/// One service's health as it reported it.
async fn ask_health(state: &AppState, name: &str, url: String, here: bool) -> Value {
    let started = Instant::now();
    let answer = state.http.get(&url).timeout(ASK_TIMEOUT).send().await;
    let mut report = json!({ "name": name, "url": url, "here": here });
    match answer {
        Ok(response) => {
            let code = response.status().as_u16();
            match response.json::<Value>().await {
                Ok(body) => {
                    report["status"] = body["status"].clone();
                    report["checks"] = body["checks"].clone();
                    report["version"] = body["version"].clone();
                    report["uptime_secs"] = body["uptime_secs"].clone();
                    if let Some(idle) = body.get("idle") {
                        report["idle"] = idle.clone();
                    }
                }
                Err(_) => {
                    report["status"] = json!("unreachable");
                    report["error"] = json!(format!("HTTP {code} without a health answer"));
                }
            }
        }
        Err(error) => {
            report["status"] = json!("unreachable");
            report["error"] = json!(if error.is_timeout() {
                format!("no answer within {} s", ASK_TIMEOUT.as_secs())
            } else {
                "connection refused or failed".to_owned()
            });
        }
    }
    report["answered_ms"] = json!(started.elapsed().as_millis() as u64);
    report
}

/// `GET /api/admin/services/status`: every backend role and the renderer.
pub async fn status(state: &AppState) -> Value {
    let mut asks = Vec::new();
    for role in ServiceRole::ALL {
        let url = format!("{}/health", address(state, role, ListenerKind::Health));
        let here = state.roles.contains(&role);
        asks.push(async move { ask_health(state, role.as_str(), url, here).await });
    }
    let mut services = futures::future::join_all(asks).await;
    services.push(
        ask_health(state, "stream", format!("{}/health", state.config.stream_manager_url), false).await,
    );
    let worst = services
        .iter()
        .map(|service| service["status"].as_str().unwrap_or("unreachable"))
        .max_by_key(|status| match *status {
            "ok" | "idle" => 0,
            "degraded" => 1,
            _ => 2,
        })
        .unwrap_or("ok");
    json!({
        "overall": match worst { "ok" | "idle" => "ok", "degraded" => "degraded", _ => "failing" },
        "services": services,
    })
}

/// One sample of a Prometheus text exposition.
#[derive(Debug, Clone, PartialEq)]
pub struct Sample {
    pub name: String,
    /// The label text between the braces, as written.
    pub labels: String,
    pub value: f64,
}

/// Reads the samples of a Prometheus text exposition (comments skipped).
pub fn parse_prometheus(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.trim().is_empty())
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            let value: f64 = value.trim().parse().ok()?;
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => (name, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            Some(Sample { name: name.to_owned(), labels: labels.to_owned(), value })
        })
        .collect()
}

/// The sum of every series of `name`.
pub fn total(samples: &[Sample], name: &str) -> f64 {
    samples.iter().filter(|sample| sample.name == name).map(|sample| sample.value).sum()
}

/// The `q` quantile of histogram `name` over all its series, from its buckets: the
/// upper bound of the first bucket holding `q` of the observations; `None` without
/// observations.
pub fn quantile(samples: &[Sample], name: &str, q: f64) -> Option<f64> {
    let bucket = format!("{name}_bucket");
    let mut by_bound: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    for sample in samples.iter().filter(|sample| sample.name == bucket) {
        let bound = sample.labels.split(',').find_map(|label| label.trim().strip_prefix("le="))?;
        let bound = bound.trim_matches('"');
        let bound: f64 = if bound == "+Inf" { f64::INFINITY } else { bound.parse().ok()? };
        by_bound.entry(bound.to_bits()).or_insert((bound, 0.0)).1 += sample.value;
    }
    let mut bounds: Vec<(f64, f64)> = by_bound.into_values().collect();
    bounds.sort_by(|a, b| a.0.total_cmp(&b.0));
    let count = bounds.last()?.1;
    if count <= 0.0 {
        return None;
    }
    bounds.iter().find(|(_, cumulative)| *cumulative >= q * count).map(|(bound, _)| *bound)
}

async fn metrics_of(state: &AppState, role: ServiceRole) -> Option<Vec<Sample>> {
    let url = format!("{}/metrics", address(state, role, ListenerKind::Metrics));
    let response = state.http.get(url).timeout(ASK_TIMEOUT).send().await.ok()?;
    Some(parse_prometheus(&response.text().await.ok()?))
}

/// The counters a rate is computed from, between two digests.
#[derive(Debug, Default)]
pub struct DigestMemory {
    last: std::sync::Mutex<Option<(Instant, f64)>>,
}

fn finite(value: Option<f64>) -> Value {
    value.filter(|value| value.is_finite()).map_or(Value::Null, |value| json!(value))
}

/// `GET /api/admin/services/metrics`: the key figures per role.
pub async fn digest(state: &AppState) -> Value {
    let (auction, events, agent, social) = futures::join!(
        metrics_of(state, ServiceRole::Auction),
        metrics_of(state, ServiceRole::Events),
        metrics_of(state, ServiceRole::Agent),
        metrics_of(state, ServiceRole::Social),
    );
    let dead_letters: u64 =
        state.storage.dead_letter_counts().await.unwrap_or_default().iter().map(|(_, count)| count).sum();
    let stream = state
        .http
        .get(format!("{}/api/stream/status", state.config.stream_manager_url))
        .timeout(ASK_TIMEOUT)
        .send()
        .await
        .ok();
    let stream = match stream {
        Some(response) => response.json::<Value>().await.ok().map(|body| body["data"].clone()),
        None => None,
    };
    let bids_total = auction.as_deref().map(|samples| total(samples, "auction_bids_total"));
    let bids_per_sec = bids_total.and_then(|now_total| {
        let mut last = state.digest.last.lock().ok()?;
        let rate = last.and_then(|(at, before)| {
            let secs = at.elapsed().as_secs_f64();
            (secs > 0.0).then(|| (now_total - before).max(0.0) / secs)
        });
        *last = Some((Instant::now(), now_total));
        rate
    });
    json!({
        "auction": auction.as_deref().map(|samples| json!({
            "bids_total": bids_total,
            "bids_per_sec": finite(bids_per_sec),
            "decision_p99_ms": finite(quantile(samples, "auction_bid_decision_seconds", 0.99).map(|secs| secs * 1000.0)),
        })),
        "events": events.as_deref().map(|samples| json!({
            "pending": total(samples, "events_pending"),
            "delivery_lag_p99_ms": finite(quantile(samples, "events_delivery_lag_seconds", 0.99).map(|secs| secs * 1000.0)),
            "dead_letters": dead_letters,
        })),
        "agent": agent.as_deref().map(|samples| json!({
            "lines": total(samples, "agent_lines_total"),
            "llm_fallbacks": total(samples, "agent_fallbacks_total"),
            "speech_fallbacks": total(samples, "agent_speech_fallbacks_total"),
            "speech_queue": total(samples, "agent_speech_queue"),
        })),
        "social": social.as_deref().map(|samples| json!({
            "x_spend_usd": total(samples, "x_spend_usd_total"),
            "x_writes": total(samples, "x_writes_total"),
        })),
        "stream": stream.map(|status| json!({
            "fps": status["fps"],
            "frames_dropped": status["frames_dropped"],
            "state": status["state"],
        })),
        "dashboards_watching": state.preview.watchers(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = "# TYPE auction_bids_total counter\n\
        auction_bids_total{outcome=\"accepted\"} 7\n\
        auction_bids_total{outcome=\"rejected\",reason=\"RATE_LIMITED\"} 3\n\
        auction_bid_decision_seconds_bucket{le=\"0.001\"} 50\n\
        auction_bid_decision_seconds_bucket{le=\"0.005\"} 98\n\
        auction_bid_decision_seconds_bucket{le=\"0.01\"} 100\n\
        auction_bid_decision_seconds_bucket{le=\"+Inf\"} 100\n\
        events_pending 4\n";

    #[test]
    fn counters_sum_over_their_series() {
        let samples = parse_prometheus(TEXT);
        assert_eq!(total(&samples, "auction_bids_total"), 10.0);
        assert_eq!(total(&samples, "events_pending"), 4.0);
        assert_eq!(total(&samples, "missing"), 0.0);
    }

    #[test]
    fn quantiles_come_from_the_first_bucket_that_holds_them() {
        let samples = parse_prometheus(TEXT);
        assert_eq!(quantile(&samples, "auction_bid_decision_seconds", 0.5), Some(0.001));
        assert_eq!(quantile(&samples, "auction_bid_decision_seconds", 0.99), Some(0.01));
        assert_eq!(quantile(&samples, "missing", 0.99), None);
    }
}
