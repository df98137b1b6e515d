//! The wallet-link API under `/api/chain` (served by the auction role, whose bid
//! checks read the links): the message to sign, the signed link, a handle's link and
//! its revocation.

use alloy::primitives::Address;
use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;
use rand::distr::{Alphanumeric, SampleString};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sothebais_kit::access::{Authorized, OperatorRole, Role};
use sothebais_kit::openapi::Operation;
use sothebais_shared::events::{ChainWallet, Envelope, EventType, Source};

use super::siwe::{self, Expected, IssuedNonce, LinkError, LinkMessage};
use crate::app::{AppState, ListenerKind, ServiceRole};
use crate::error::{Error, Result};
use crate::http::{Json, Path, Query, ok};
use crate::storage::{NonceRow, WalletLink};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/chain/link/nonce", get(nonce))
        .route("/api/chain/link", axum::routing::post(link).delete(revoke))
        .route("/api/chain/links/{handle}", get(show))
}

pub fn operations() -> Vec<Operation> {
    vec![
        Operation::new(
            "GET",
            "/api/chain/link/nonce",
            "The EIP-4361 message linking `handle` to `address`, with a one-time nonce (10 min)",
        )
        .response::<LinkChallenge>(),
        Operation::new(
            "POST",
            "/api/chain/link",
            "Link a handle to a wallet with the signed message (EIP-191); refusals name the check",
        )
        .request::<LinkRequest>()
        .response::<LinkAnswer>(),
        Operation::new("GET", "/api/chain/links/{handle}", "A handle's wallet link").response::<LinkAnswer>(),
        Operation::new("DELETE", "/api/chain/link", "Revoke a handle's link (`?handle=`)")
            .auth(Role::Operator),
    ]
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NonceQuery {
    handle: String,
    address: String,
}

/// `GET /api/chain/link/nonce`.
#[derive(Debug, Serialize, JsonSchema)]
struct LinkChallenge {
    /// The text to sign with `personal_sign`, unchanged.
    message: String,
    nonce: String,
    expires_at: chrono::DateTime<Utc>,
}

/// `POST /api/chain/link`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct LinkRequest {
    handle: String,
    address: String,
    message: String,
    /// 65 bytes in hex, as `personal_sign` returns them.
    signature: String,
}

#[derive(Debug, Serialize, JsonSchema)]
struct LinkAnswer {
    handle: String,
    address: String,
    linked_at: chrono::DateTime<Utc>,
    revoked_at: Option<chrono::DateTime<Utc>>,
}

impl From<&WalletLink> for LinkAnswer {
    fn from(link: &WalletLink) -> LinkAnswer {
        LinkAnswer {
            handle: link.handle.clone(),
            address: link.address.clone(),
            linked_at: link.linked_at,
            revoked_at: link.revoked_at,
        }
    }
}

fn handle(value: &str) -> Result<String> {
    siwe::normal_handle(value).ok_or_else(|| {
        Error::bad_field("handle", "an X handle: up to 15 letters, digits or _, with or without @")
    })
}

fn address(value: &str) -> Result<Address> {
    value.trim().parse().map_err(|_| Error::bad_field("address", "an Ethereum address: 0x and 40 hex digits"))
}

async fn nonce(State(state): State<AppState>, Query(query): Query<NonceQuery>) -> Result<Response> {
    let handle = handle(&query.handle)?;
    let address = address(&query.address)?;
    let now = state.clock.now();
    let nonce = Alphanumeric.sample_string(&mut rand::rng(), 16);
    let domain = link_domain(&state);
    let message = LinkMessage {
        uri: siwe::link_uri(&domain),
        domain,
        address,
        handle: handle.clone(),
        chain_id: state.config.chain.chain_id,
        nonce: nonce.clone(),
        issued_at: now,
        expires_at: now + siwe::NONCE_TTL,
    };
    state
        .storage
        .add_nonce(&NonceRow {
            nonce: nonce.clone(),
            handle,
            address: address.to_checksum(None),
            issued_at: now,
            used_at: None,
        })
        .await?;
    // Nonces older than a day are of no use to anyone.
    let _ = state.storage.prune_nonces(now - siwe::NONCE_TTL).await;
    let expires_at = message.expires_at;
    Ok(ok(LinkChallenge { message: message.text(), nonce, expires_at }))
}

/// The domain link messages name: `SOTHEBAIS_DOMAIN`, else the gateway's address as
/// bound here (`127.0.0.1:<port>`), which is what a browser on this machine shows.
fn link_domain(state: &AppState) -> String {
    if let Some(domain) = &state.config.chain.domain {
        return domain.clone();
    }
    let bound = state.bound.get().and_then(|addresses| {
        addresses
            .iter()
            .find(|address| address.role == ServiceRole::Admin && address.kind == ListenerKind::Api)
            .map(|address| address.addr.port())
    });
    format!("127.0.0.1:{}", bound.unwrap_or(state.config.ports.admin.api))
}

fn refused(error: &LinkError) -> Error {
    Error::Coded {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: error.code(),
        message: error.to_string(),
        details: None,
    }
}

async fn link(State(state): State<AppState>, Json(request): Json<LinkRequest>) -> Result<Response> {
    let handle = handle(&request.handle)?;
    let address = address(&request.address)?;
    let now = state.clock.now();
    let nonce = match LinkMessage::parse(&request.message) {
        Ok(message) => state.storage.nonce(&message.nonce).await?,
        Err(error) => return Err(refused(&error)),
    };
    let issued = nonce.and_then(|row| {
        Some(IssuedNonce {
            address: row.address.parse().ok()?,
            nonce: row.nonce,
            handle: row.handle,
            issued_at: row.issued_at,
            used: row.used_at.is_some(),
        })
    });
    let domain = link_domain(&state);
    let expected =
        Expected { domain: &domain, chain_id: state.config.chain.chain_id, handle: &handle, address, now };
    let message = siwe::verify(&request.message, &request.signature, issued.as_ref(), &expected)
        .map_err(|e| refused(&e))?;
    // A live link is replaced only after it is revoked: a signature proves the
    // wallet, not the X account, so nobody re-points someone else's handle.
    if let Some(live) = state.storage.wallet_link(&handle).await?.filter(|link| link.revoked_at.is_none())
        && live.address != message.address.to_checksum(None)
    {
        return Err(Error::Conflict(format!(
            "{handle} is linked to {} already; an operator revokes that link first (DELETE /api/chain/link)",
            live.address
        )));
    }
    let link = WalletLink {
        handle: handle.clone(),
        address: message.address.to_checksum(None),
        nonce: message.nonce,
        message: request.message,
        signature: request.signature.trim().to_owned(),
        linked_at: now,
        revoked_at: None,
    };
    // Using the nonce and storing the link are one transaction: of two requests
    // racing with one nonce, one links and the other is told the nonce was used.
    if !state.storage.link_wallet(&link, now - siwe::NONCE_TTL).await? {
        return Err(refused(&LinkError::NonceUsed));
    }
    publish(&state, EventType::ChainWalletLinked, &link).await?;
    tracing::info!(handle = %link.handle, address = %link.address, "wallet linked");
    Ok(ok(LinkAnswer::from(&link)))
}

async fn show(State(state): State<AppState>, Path(handle_text): Path<String>) -> Result<Response> {
    let handle = handle(&handle_text)?;
    let link = state
        .storage
        .wallet_link(&handle)
        .await?
        .ok_or_else(|| Error::NotFound(format!("no wallet is linked to {handle}")))?;
    Ok(ok(LinkAnswer::from(&link)))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RevokeQuery {
    handle: String,
}

async fn revoke(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<OperatorRole>,
    Query(query): Query<RevokeQuery>,
) -> Result<Response> {
    let handle = handle(&query.handle)?;
    let now = state.clock.now();
    if !state.storage.revoke_wallet_link(&handle, now).await? {
        return Err(Error::NotFound(format!("no live wallet link for {handle}")));
    }
    let link = state.storage.wallet_link(&handle).await?;
    if let Some(link) = &link {
        publish(&state, EventType::ChainWalletRevoked, link).await?;
    }
    tracing::info!(%handle, by = %claims.sub, "wallet link revoked");
    Ok(ok(serde_json::json!({ "handle": handle, "revoked_at": now })))
}

async fn publish(state: &AppState, event_type: EventType, link: &WalletLink) -> Result<()> {
    let data = ChainWallet { handle: link.handle.clone(), address: link.address.clone() };
    let event = Envelope::new(event_type, Source::Chain, &data).map_err(|error| anyhow::anyhow!(error))?;
    let id = event.id.to_string();
    state.storage.append_event(&event.correlated(id)).await?;
    state.outbox.notify_one();
    Ok(())
}
