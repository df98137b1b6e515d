//! Per-client rate limits on a role's API: token buckets by client address, one for
//! reads (GET, HEAD) and one for writes (every other method). Past its bucket a
//! client gets 429 `RATE_LIMITED` with `Retry-After`. Requests carrying a valid
//! console token (viewer, operator or admin) are not limited: they are the show's
//! own tools (the dashboard, whose pages call the API as their account from the
//! gateway's own address, the renderer, scripts), and a token can be revoked. A
//! bidder's token is limited like any client. Bids keep their own per-bidder limit
//! besides.
//!
//! Behind a reverse proxy every client has the proxy's address; the proxy then needs
//! its own limits (docs/api.md).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sothebais_auth::{Authenticator, Role};

use crate::access::bearer;
use crate::http::Failure;

/// A bucket's size and refill.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rate {
    pub per_second: f64,
    pub burst: f64,
}

/// The limits of one listener's API.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClientRates {
    pub reads: Rate,
    pub writes: Rate,
}

impl Default for ClientRates {
    /// 100 reads/s (bursts of 200) and 20 writes/s (bursts of 40) per address: far
    /// above a dashboard or a viewer, far below what wears a server down.
    fn default() -> Self {
        ClientRates {
            reads: Rate { per_second: 100.0, burst: 200.0 },
            writes: Rate { per_second: 20.0, burst: 40.0 },
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Read,
    Write,
}

/// The buckets of every client.
pub struct Limiter {
    rates: ClientRates,
    buckets: Mutex<HashMap<(Kind, IpAddr), (f64, Instant)>>,
    authenticator: Option<Arc<Authenticator>>,
}

impl std::fmt::Debug for Limiter {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Limiter").field("rates", &self.rates).finish_non_exhaustive()
    }
}

impl Limiter {
    /// Limits at `rates`; tokens are checked with `authenticator` to exempt operators.
    pub fn new(rates: ClientRates, authenticator: Option<Arc<Authenticator>>) -> Arc<Limiter> {
        Arc::new(Limiter { rates, buckets: Mutex::new(HashMap::new()), authenticator })
    }

    /// Takes one token of `kind` for `client`, or the seconds to wait.
    fn take(&self, kind: Kind, client: IpAddr) -> Result<(), u64> {
        let rate = match kind {
            Kind::Read => self.rates.reads,
            Kind::Write => self.rates.writes,
        };
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let now = Instant::now();
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = buckets.entry((kind, client)).or_insert((rate.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * rate.per_second).min(rate.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / rate.per_second).ceil().max(1.0) as u64)
        }
    }

    async fn exempt(&self, token: Option<String>) -> bool {
        let (Some(authenticator), Some(token)) = (&self.authenticator, token) else { return false };
        authenticator.verify(&token).await.is_ok_and(|claims| claims.role != Role::Bidder)
    }
}

/// The middleware: `axum::middleware::from_fn(move |request, next| limit(limiter.clone(), request, next))`.
pub async fn limit(limiter: Arc<Limiter>, request: Request, next: Next) -> Response {
    let client =
        request.extensions().get::<ConnectInfo<SocketAddr>>().map(|ConnectInfo(address)| address.ip());
    if let Some(client) = client {
        let kind =
            if matches!(*request.method(), Method::GET | Method::HEAD) { Kind::Read } else { Kind::Write };
        let token = bearer(request.headers()).ok().flatten().map(str::to_owned);
        if let Err(retry_after) = limiter.take(kind, client)
            && !limiter.exempt(token).await
        {
            metrics::counter!("http_rate_limited_total", "kind" => if kind == Kind::Read { "read" } else { "write" })
                .increment(1);
            return Failure::rate_limited(retry_after).into_response();
        }
    }
    next.run(request).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_past_its_burst_waits_and_others_do_not() {
        let limiter = Limiter::new(
            ClientRates {
                reads: Rate { per_second: 1.0, burst: 2.0 },
                writes: Rate { per_second: 1.0, burst: 1.0 },
            },
            None,
        );
        let one: IpAddr = [10, 0, 0, 1].into();
        let two: IpAddr = [10, 0, 0, 2].into();
        assert_eq!(limiter.take(Kind::Read, one), Ok(()));
        assert_eq!(limiter.take(Kind::Read, one), Ok(()));
        assert_eq!(limiter.take(Kind::Read, one), Err(1));
        assert_eq!(limiter.take(Kind::Read, two), Ok(()), "another client has its own bucket");
        assert_eq!(limiter.take(Kind::Write, one), Ok(()), "writes have their own bucket");
        assert_eq!(limiter.take(Kind::Write, one), Err(1));
    }

    #[tokio::test]
    async fn console_tokens_are_exempt_and_bidder_tokens_are_not() {
        let secret = secrecy::SecretString::from("a-test-secret-of-enough-length-0123456789");
        let authenticator = Arc::new(Authenticator::new(
            Some(secrecy::ExposeSecret::expose_secret(&secret).as_bytes()),
            None,
            reqwest::Client::new(),
        ));
        let limiter = Limiter::new(ClientRates::default(), Some(authenticator));
        let token = |role| {
            crate::access::issue_token(&secret, "someone", role, std::time::Duration::from_secs(60)).ok()
        };
        for role in [Role::Viewer, Role::Operator, Role::Admin] {
            assert!(limiter.exempt(token(role)).await, "{role}");
        }
        assert!(!limiter.exempt(token(Role::Bidder)).await);
        assert!(!limiter.exempt(Some("not a token".into())).await);
        assert!(!limiter.exempt(None).await);
    }
}
