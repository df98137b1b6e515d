//! The health answer every role gives on its health port:
//! `200 {"status":"ok","checks":{…}}`, `200` with `"status":"idle"` and the reason
//! when the role has nothing to do (nothing configured for it), or `503` with
//! `"status":"degraded"` (some checks fail) or `"down"` (every check fails), each
//! check `"ok"` or the reason it fails. The one documented exception to the envelope.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// What a failing probe answers; the reason itself is in the log.
pub const FAILING: &str = "failing; the reason is in this process's log";

/// What a role's checks found, by check name (`database`, `redis`, `encoder`, …).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Checks(BTreeMap<&'static str, Result<(), String>>, Option<String>);

impl Checks {
    pub fn new() -> Checks {
        Checks::default()
    }

    /// Records check `name`: passed, or failing for `reason`.
    pub fn set(&mut self, name: &'static str, outcome: Result<(), String>) {
        self.0.insert(name, outcome);
    }

    /// Marks the role idle: running, failing nothing, but with nothing to do, for
    /// `reason` (for example "X is not configured").
    pub fn idle(&mut self, reason: impl Into<String>) {
        self.1 = Some(reason.into());
    }

    /// Runs `probe` with a deadline: no answer in time is a failure that says so. A
    /// probe's own error is logged, not answered: it may carry a database's or a
    /// driver's internal text (addresses, names).
    pub async fn probe<E: std::fmt::Display>(
        &mut self,
        name: &'static str,
        timeout: Duration,
        probe: impl Future<Output = Result<(), E>>,
    ) {
        let outcome = match tokio::time::timeout(timeout, probe).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => {
                tracing::warn!(check = name, error = %error, "health check failing");
                Err(FAILING.to_owned())
            }
            Err(_) => Err(format!("no answer within {} s", timeout.as_secs_f64())),
        };
        self.set(name, outcome);
    }

    /// `ok`, `idle` (nothing fails, nothing to do), `degraded` (some fail) or `down`
    /// (all fail).
    pub fn status(&self) -> &'static str {
        let failing = self.0.values().filter(|outcome| outcome.is_err()).count();
        match failing {
            0 if self.1.is_some() => "idle",
            0 => "ok",
            n if n == self.0.len() => "down",
            _ => "degraded",
        }
    }

    /// The checks as JSON: each `"ok"` or its reason.
    pub fn to_json(&self) -> serde_json::Map<String, serde_json::Value> {
        self.0
            .iter()
            .map(|(name, outcome)| {
                let value = match outcome {
                    Ok(()) => json!("ok"),
                    Err(reason) => json!(reason),
                };
                ((*name).to_owned(), value)
            })
            .collect()
    }

    /// The health response of `role` up for `uptime`.
    pub fn response(&self, role: &str, uptime: Duration) -> Response {
        let status = self.status();
        let code =
            if matches!(status, "ok" | "idle") { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
        let mut body = json!({
            "status": status,
            "role": role,
            "checks": self.to_json(),
            "uptime_secs": uptime.as_secs(),
            "version": env!("CARGO_PKG_VERSION"),
        });
        if let Some(reason) = &self.1 {
            body["idle"] = json!(reason);
        }
        (code, axum::Json(body)).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_ok_degraded_or_down_by_how_many_checks_fail() {
        let mut checks = Checks::new();
        checks.set("database", Ok(()));
        checks.set("redis", Ok(()));
        assert_eq!(checks.status(), "ok");
        checks.set("redis", Err("connection refused".into()));
        assert_eq!(checks.status(), "degraded");
        checks.set("database", Err("gone".into()));
        assert_eq!(checks.status(), "down");
        assert_eq!(checks.to_json()["redis"], "connection refused");
    }

    #[tokio::test]
    async fn a_probe_error_is_logged_not_answered() {
        let mut checks = Checks::new();
        checks
            .probe("database", Duration::from_secs(1), async {
                Err::<(), _>("password authentication failed for user \"app\" at 10.0.0.7")
            })
            .await;
        assert_eq!(checks.to_json()["database"], FAILING);
    }

    #[tokio::test]
    async fn a_probe_that_never_answers_fails_naming_its_deadline() {
        let mut checks = Checks::new();
        checks.probe("rpc", Duration::from_millis(10), std::future::pending::<Result<(), String>>()).await;
        assert_eq!(checks.to_json()["rpc"], "no answer within 0.01 s");
    }
}
