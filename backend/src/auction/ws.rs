//! The auction WebSocket (`AUCTION_ENGINE_WS_PORT`): a full `Auction` snapshot on
//! connect and on every change (`auction:state`), each accepted bid (`auction:bid`)
//! and each outcome (`auction:result`); `?auction_id=` filters to one auction.
//!
//! It follows the process's event feed (see `events::live`), so it shows every
//! process's decisions; a client that falls behind is disconnected, never allowed to
//! slow anyone else.

use std::collections::HashMap;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::get;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sothebais_shared::events::{Envelope, EventType};
use uuid::Uuid;

use super::rules::{Phase, millis};
use crate::app::AppState;
use crate::events::live;
use crate::http::Query;
use crate::storage::AuctionFilter;

pub fn router() -> Router<AppState> {
    Router::new().route("/", get(upgrade))
}

#[derive(Debug, Deserialize)]
struct Filter {
    auction_id: Option<Uuid>,
}

async fn upgrade(
    State(state): State<AppState>,
    Query(filter): Query<Filter>,
    socket: WebSocketUpgrade,
) -> Response {
    socket.on_upgrade(move |socket| follow(socket, state, filter.auction_id))
}

fn message(kind: &str, data: &Value) -> Message {
    Message::Text(json!({ "type": kind, "data": data }).to_string().into())
}

/// The messages one auction event becomes for a client following `filter`.
fn messages(event: &Envelope, filter: Option<Uuid>) -> Vec<Message> {
    let data = &event.data;
    let auction = match event.event_type {
        EventType::AuctionStart | EventType::AuctionEnd | EventType::AuctionCancelled => data.get("auction"),
        EventType::AuctionBidAccepted | EventType::AuctionBidRejected => data.get("auction"),
        _ => None,
    };
    let auction_id = auction
        .and_then(|auction| auction.get("id"))
        .or_else(|| data.get("auction_id"))
        .and_then(Value::as_str)
        .and_then(|id| Uuid::parse_str(id).ok());
    if filter.is_some() && auction_id != filter {
        return Vec::new();
    }
    let mut out = Vec::new();
    if event.event_type == EventType::AuctionBidAccepted
        && let Some(bid) = data.get("bid")
    {
        out.push(message("auction:bid", bid));
    }
    if let Some(auction) = auction {
        out.push(message("auction:state", auction));
    }
    if event.event_type == EventType::AuctionWinner {
        out.push(message("auction:result", data));
    }
    out
}

async fn follow(mut socket: WebSocket, state: AppState, filter: Option<Uuid>) {
    // Subscribe before reading the snapshot, so no change falls between the two.
    let mut events = state.feed.subscribe();
    let now = millis(state.clock.now());
    let snapshots: Vec<Value> = match filter {
        Some(id) => match state.storage.auction(id).await {
            Ok(Some(record)) => vec![json!(record.core.view_at(now))],
            _ => Vec::new(),
        },
        None => match state
            .storage
            .auctions(&AuctionFilter {
                phases: vec![Phase::Scheduled, Phase::Open],
                campaign_id: None,
                limit: 1000,
            })
            .await
        {
            Ok(records) => records.iter().map(|record| json!(record.core.view_at(now))).collect(),
            Err(_) => Vec::new(),
        },
    };
    // When each open auction followed ends: nothing is committed then (the close
    // comes after the grace), so the socket itself says `closing` at that moment.
    let mut ends: HashMap<Uuid, DateTime<Utc>> = HashMap::new();
    for snapshot in &snapshots {
        note_end(&mut ends, snapshot);
        if socket.send(message("auction:state", snapshot)).await.is_err() {
            return;
        }
    }
    loop {
        let next = ends.iter().min_by_key(|(_, at)| **at).map(|(id, at)| (*id, *at));
        let timer = match next {
            Some((_, at)) => state.clock.sleep_until(at),
            None => Box::pin(std::future::pending()),
        };
        let outgoing = tokio::select! {
            event = live::next_event(&mut socket, &mut events, &state.shutdown, "auction") => {
                let Some(event) = event else { return };
                if let Some(auction) = event.data.get("auction") {
                    note_end(&mut ends, auction);
                }
                messages(&event, filter)
            }
            () = timer => {
                let Some((id, _)) = next else { continue };
                ends.remove(&id);
                match state.storage.auction(id).await {
                    Ok(Some(record)) => vec![message("auction:state", &json!(record.core.view_at(millis(state.clock.now()))))],
                    _ => Vec::new(),
                }
            }
        };
        for outgoing in outgoing {
            if !live::send_in_time(&mut socket, outgoing).await {
                return;
            }
        }
    }
}

/// Keeps the end of an auction that is open (an extension moves it), forgets others.
fn note_end(ends: &mut HashMap<Uuid, DateTime<Utc>>, auction: &Value) {
    let Some(id) = auction.get("id").and_then(Value::as_str).and_then(|id| Uuid::parse_str(id).ok()) else {
        return;
    };
    let ends_at =
        auction.get("ends_at").and_then(Value::as_str).and_then(|at| at.parse::<DateTime<Utc>>().ok());
    match (auction.get("state").and_then(Value::as_str), ends_at) {
        (Some("open"), Some(at)) => {
            ends.insert(id, at);
        }
        _ => {
            ends.remove(&id);
        }
    }
}
