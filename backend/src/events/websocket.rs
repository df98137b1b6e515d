//! The event stream WebSocket: `ws://host:4301/?types=auction:*,agent:*&since=<id>`
//! (also `/api/events/stream` on the gateway). Each matching envelope is one text
//! message: first the stored events after `since`, in order, then live ones, with no
//! gap and no event twice. Public types need no token; others need an operator token
//! (`Authorization: Bearer …`, or `?access_token=` where a browser cannot set headers).

use std::collections::HashSet;

use axum::extract::State;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::http::request::Parts;
use axum::response::Response;
use serde::Deserialize;
use sothebais_shared::events::{Envelope, EventType, TypePattern};
use uuid::Uuid;

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::events::live;
use crate::http::Query;
use crate::storage::EventQuery;
use sothebais_kit::access::{Caller, Role};

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    types: Option<String>,
    since: Option<Uuid>,
    access_token: Option<String>,
}

/// Checks the request and upgrades it.
pub async fn upgrade(
    State(state): State<AppState>,
    Query(query): Query<StreamQuery>,
    parts: Parts,
    socket: std::result::Result<WebSocketUpgrade, axum::extract::ws::rejection::WebSocketUpgradeRejection>,
) -> Result<Response> {
    let patterns: Vec<TypePattern> = match query.types.as_deref().filter(|types| !types.is_empty()) {
        None => vec![TypePattern::everything()],
        Some(list) => list
            .split(',')
            .map(|pattern| {
                pattern.trim().parse::<TypePattern>().map_err(|message| Error::bad_field("types", message))
            })
            .collect::<Result<_>>()?,
    };
    let private =
        EventType::ALL.iter().any(|kind| !kind.is_public() && patterns.iter().any(|p| p.matches(*kind)));
    if private {
        let caller = match &query.access_token {
            Some(token) => Caller(Some(
                state.auth.verify(token).await.map_err(sothebais_kit::http::Failure::unauthenticated)?,
            )),
            None => {
                let mut parts = parts;
                <Caller as axum::extract::FromRequestParts<AppState>>::from_request_parts(&mut parts, &state)
                    .await?
            }
        };
        caller.require(Role::Operator)?;
    }
    let since = match query.since {
        None => None,
        Some(id) => {
            Some(state.storage.event(id).await?.ok_or_else(|| Error::NotFound(format!("event {id}")))?.seq)
        }
    };
    let socket = socket.map_err(|rejection| {
        Error::bad_field("upgrade", format!("a WebSocket is expected here: {rejection}"))
    })?;
    Ok(socket.on_upgrade(move |socket| follow(socket, state, patterns, since)))
}

fn matches(patterns: &[TypePattern], event: &Envelope) -> bool {
    patterns.iter().any(|pattern| pattern.matches(event.event_type))
}

async fn send(socket: &mut WebSocket, event: &Envelope) -> bool {
    let Ok(text) = serde_json::to_string(event) else { return true };
    // A client that cannot take a message within a second is too slow.
    matches!(
        tokio::time::timeout(sothebais_kit::http::WS_SEND_TIMEOUT, socket.send(Message::Text(text.into())))
            .await,
        Ok(Ok(()))
    )
}

async fn follow(mut socket: WebSocket, state: AppState, patterns: Vec<TypePattern>, since: Option<i64>) {
    // Subscribe before replaying, so nothing published meanwhile is missed; the ids
    // replayed are remembered so the live part does not send them again.
    let mut live = state.feed.subscribe();
    let mut replayed = HashSet::new();
    // Until a live event newer than the replay arrives, live events may be ones the
    // replay already covered (published after being stored): their store sequence says.
    let mut boundary = since;
    if let Some(mut after) = since {
        loop {
            let page = match state
                .storage
                .events(&EventQuery {
                    patterns: patterns.clone(),
                    after_seq: Some(after),
                    limit: 500,
                    ..EventQuery::default()
                })
                .await
            {
                Ok(page) => page,
                Err(error) => {
                    tracing::warn!(%error, "replay failed");
                    let _ = socket
                        .send(Message::Close(Some(CloseFrame { code: 1011, reason: "replay failed".into() })))
                        .await;
                    return;
                }
            };
            let Some(last) = page.last().map(|stored| stored.seq) else { break };
            for stored in page {
                if !send(&mut socket, &stored.event).await {
                    return;
                }
                replayed.insert(stored.event.id);
            }
            after = last;
            boundary = Some(last);
        }
    }
    while let Some(event) = live::next_event(&mut socket, &mut live, &state.shutdown, "events").await {
        if !matches(&patterns, &event) || replayed.remove(&event.id) {
            continue;
        }
        if let Some(last) = boundary {
            match state.storage.event(event.id).await {
                Ok(Some(stored)) if stored.seq <= last => continue,
                _ => boundary = None,
            }
        }
        if !send(&mut socket, &event).await {
            return;
        }
    }
}
