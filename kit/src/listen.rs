//! The four listeners of a role's port block (API, WebSocket, metrics, health), bound
//! before anything is served so port 0 can pick free ports, each logged with its
//! real address as `listening role=… kind=… addr=…` (what tests and operators read).

use std::future::Future;
use std::net::{IpAddr, SocketAddr};

use anyhow::Context as _;
use axum::Router;
use sothebais_shared::ports::PortBlock;
use tokio::net::TcpListener;

/// The kind of a listener.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ListenerKind {
    Api,
    Ws,
    Metrics,
    Health,
}

impl ListenerKind {
    /// Every kind, in block order.
    pub const ALL: [ListenerKind; 4] =
        [ListenerKind::Api, ListenerKind::Ws, ListenerKind::Metrics, ListenerKind::Health];

    pub fn as_str(self) -> &'static str {
        match self {
            ListenerKind::Api => "api",
            ListenerKind::Ws => "ws",
            ListenerKind::Metrics => "metrics",
            ListenerKind::Health => "health",
        }
    }

    /// This kind's port in `block`.
    pub fn port(self, block: PortBlock) -> u16 {
        match self {
            ListenerKind::Api => block.api,
            ListenerKind::Ws => block.ws,
            ListenerKind::Metrics => block.metrics,
            ListenerKind::Health => block.health,
        }
    }
}

impl std::fmt::Display for ListenerKind {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// The routers of a block's four listeners.
#[derive(Debug)]
pub struct BlockRouters {
    pub api: Router,
    pub ws: Router,
    pub metrics: Router,
    pub health: Router,
}

/// A bound listener and what it serves.
#[derive(Debug)]
pub struct Listener {
    pub role: &'static str,
    pub kind: ListenerKind,
    pub addr: SocketAddr,
    listener: TcpListener,
    router: Router,
}

/// Binds the four listeners of `role`'s block on `ip` and logs each real address.
pub async fn bind_block(
    role: &'static str,
    ip: IpAddr,
    ports: PortBlock,
    routers: BlockRouters,
) -> anyhow::Result<Vec<Listener>> {
    let BlockRouters { api, ws, metrics, health } = routers;
    let mut bound = Vec::with_capacity(4);
    for (kind, router) in [
        (ListenerKind::Api, api),
        (ListenerKind::Ws, ws),
        (ListenerKind::Metrics, metrics),
        (ListenerKind::Health, health),
    ] {
        let wanted = SocketAddr::new(ip, kind.port(ports));
        let listener = TcpListener::bind(wanted)
            .await
            .with_context(|| format!("role {role} cannot listen for {kind} on {wanted}"))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        tracing::info!(role = %role, kind = %kind, addr = %addr, "listening");
        bound.push(Listener { role, kind, addr, listener, router });
    }
    Ok(bound)
}

impl Listener {
    /// Serves until `stop` resolves, then lets in-flight requests finish.
    pub async fn serve(self, stop: impl Future<Output = ()> + Send + 'static) -> anyhow::Result<()> {
        let Listener { role, kind, addr, listener, router } = self;
        axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(stop)
            .await
            .with_context(|| format!("serving {role} {kind} on {addr}"))
    }
}
