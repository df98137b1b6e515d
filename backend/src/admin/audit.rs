//! The audit trail: every write through any API of the backend (every method but
//! GET, HEAD and OPTIONS) is recorded after it is answered: when, the account or
//! token subject and its role, how it signed in, the method, the path, the status
//! and what the handler noted. A write cut off by the request timeout is recorded
//! as such (status 408). Bids are the exception: each is already recorded,
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

/// A write's audit entry until it is stored. A request cut off by the request
/// timeout is dropped before it is answered; the guard then stores it as timed out,
/// since the change may have been made all the same.
struct Pending {
    state: AppState,
    slot: CallerSlot,
    entry: Option<AuditEntry>,
}

impl Pending {
    /// The entry as it stands, with the caller the handler found.
    fn take(&mut self) -> Option<AuditEntry> {
        let mut entry = self.entry.take()?;
        if let Some((claims, via)) = self.slot.get() {
            entry.account = Some(claims.sub.clone());
            entry.role = Some(claims.role.to_string());
            entry.via = via.as_str().to_owned();
        }
        Some(entry)
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        let Some(mut entry) = self.take() else { return };
        entry.status = axum::http::StatusCode::REQUEST_TIMEOUT.as_u16();
        entry.note = "no answer within the request timeout: the change may or may not have been made".into();
        let storage = self.state.storage.clone();
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move { store(storage.as_ref(), &entry).await });
        }
    }
}

async fn store(storage: &dyn crate::storage::Storage, entry: &AuditEntry) {
    if let Err(error) = storage.add_audit(entry).await {
        tracing::error!(%error, method = %entry.method, path = %entry.path, "audit entry not stored");
    }
}

async fn record(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    if method.is_safe() || exempt(&path) {
        return next.run(request).await;
    }
    let slot = CallerSlot::default();
    request.extensions_mut().insert(slot.clone());
    let entry = AuditEntry {
        id: uuid::Uuid::now_v7().to_string(),
        at: state.clock.now(),
        account: None,
        role: None,
        via: "anonymous".to_owned(),
        method: method.to_string(),
        path,
        status: 0,
        note: String::new(),
    };
    let mut pending = Pending { state: state.clone(), slot, entry: Some(entry) };
    let response = next.run(request).await;
    if let Some(mut entry) = pending.take() {
        entry.status = response.status().as_u16();
        entry.note = response.extensions().get::<AuditNote>().map(|note| note.0.clone()).unwrap_or_default();
        store(state.storage.as_ref(), &entry).await;
    }
    response
}
