//! The audit trail: every write through any API of the backend (every method but
//! GET, HEAD and OPTIONS) is recorded after it is answered: when, the account or
//! token subject and its role, how it signed in, the method, the path, the status
//! and what the handler noted. Bids are the exception: each is already recorded,
//! with its bidder, in its lot's hash-chained log.

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::Response;
use sothebais_kit::access::CallerSlot;

use crate::app::AppState;
use crate::storage::AuditEntry;

/// What a handler says changed, for the audit trail (never a secret): put in the
/// response's extensions.
#[derive(Debug, Clone)]
pub struct AuditNote(pub String);

/// Paths whose writes are not audited here (their own logs record them).
fn exempt(path: &str) -> bool {
    path == "/api/auction/bid"
}

/// Adds the audit trail to a role's API router.
pub fn audited(router: Router<AppState>, state: &AppState) -> Router<AppState> {
    router.layer(axum::middleware::from_fn_with_state(state.clone(), record))
}

async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method.is_safe() || exempt(&path) {
        return next.run(request).await;
    }
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let response = next.run(request).await;
    let caller = slot.get();
    let note = response.extensions().get::<AuditNote>().map(|note| note.0.clone()).unwrap_or_default();
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: state.clock.now(),
        account: caller.as_ref().map(|(claims, _)| claims.sub.clone()),
        role: caller.as_ref().map(|(claims, _)| claims.role.to_string()),
        via: caller.as_ref().map_or("anonymous", |(_, via)| via.as_str()).to_owned(),
        method: method.to_string(),
        path,
        status: response.status().as_u16(),
        note,
    };
    if let Err(error) = state.storage.add_audit(&entry).await {
        tracing::error!(%error, method = %entry.method, path = %entry.path, "audit entry not stored");
    }
    response
}
