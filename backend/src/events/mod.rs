//! The event handler role (`/api/events`): publish, history, schemas; and the
//! outbox relay that publishes stored events on the bus.
//!
//! An event posted here is checked against its type's data struct, stored in the
//! event store, then published on the bus.

pub mod feed;
pub mod relay;
pub mod stream;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sothebais_shared::events::{Envelope, EventType, Source, TypePattern};

use crate::app::AppState;
use crate::auth::{Authorized, Caller, OperatorRole, Role};
use crate::error::{Error, Result};
use crate::http::openapi::Operation;
use crate::http::{Json, Path, Query, created, ok};
use crate::storage::EventQuery;

/// Most events one history request returns.
pub const MAX_HISTORY: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/events/schemas", get(schemas))
        .route("/api/events/{event_type}", post(publish))
        .route("/api/events/stream", get(stream::upgrade))
        .route("/api/events/{event_type}/history", get(history))
}

/// The event stream WebSocket listener.
pub fn stream_router() -> Router<AppState> {
    Router::new().route("/", get(stream::upgrade))
}

pub fn operations() -> Vec<Operation> {
    vec![
        Operation::new("GET", "/api/events/schemas", "JSON Schemas of every event type's data, by type"),
        Operation::new(
            "GET",
            "/api/events/stream",
            "WebSocket: ?types=auction:*,agent:*&since=<event id>; stored events after since, then live (operator token for private types)",
        ),
        Operation::new(
            "POST",
            "/api/events/{type}",
            "Validate, store and publish an event (body: its data or a full envelope)",
        )
        .auth(Role::Operator)
        .response::<Envelope>(),
        Operation::new(
            "GET",
            "/api/events/{type}/history",
            "Stored events of a type or pattern (auction:*), newest first",
        )
        .response::<HistoryPage>(),
    ]
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct HistoryPage {
    events: Vec<Envelope>,
}

async fn schemas() -> Response {
    ok(EventType::all_schemas())
}

fn parse_type(name: &str) -> Result<EventType> {
    name.parse().map_err(|_| {
        Error::bad_field("type", format!("unknown event type {name:?}; see GET /api/events/schemas"))
    })
}

#[tracing::instrument(skip_all, fields(event_type = %event_type))]
async fn publish(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<OperatorRole>,
    Path(event_type): Path<String>,
    Json(body): Json<Value>,
) -> Result<Response> {
    let event_type = parse_type(&event_type)?;
    let is_envelope = body.get("type").is_some() && body.get("data").is_some();
    let event = if is_envelope {
        let mut event: Envelope = serde_json::from_value(body)
            .map_err(|error| Error::bad_field("envelope", format!("not a valid event envelope: {error}")))?;
        if event.event_type != event_type {
            return Err(Error::bad_field(
                "type",
                format!("the envelope's type {} differs from the path's {event_type}", event.event_type),
            ));
        }
        event_type.check_data(&event.data).map_err(|error| Error::bad_field("data", error.to_string()))?;
        if event.version.split('.').next() != Some("1") {
            return Err(Error::bad_field(
                "version",
                format!("version {} is newer than this server reads (1.x)", event.version),
            ));
        }
        event.correlation_id.get_or_insert_with(|| event.id.to_string());
        event
    } else {
        let event = Envelope::new(event_type, Source::AdminFrontend, &body)
            .map_err(|error| Error::bad_field("data", error.to_string()))?;
        let id = event.id.to_string();
        event.correlated(id)
    };
    let stored = state.storage.append_event(&event).await?;
    tracing::info!(event_id = %event.id, seq = stored.seq, by = %claims.sub, "event stored");
    // The relay publishes it from the store.
    state.outbox.notify_one();
    Ok(created(stored.event))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    limit: Option<u32>,
    before: Option<DateTime<Utc>>,
    after: Option<DateTime<Utc>>,
    correlation_id: Option<String>,
}

async fn history(
    State(state): State<AppState>,
    caller: Caller,
    Path(pattern): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Response> {
    let pattern: TypePattern =
        pattern.parse().map_err(|message: String| Error::bad_field("type", message))?;
    let public = EventType::ALL.iter().filter(|kind| pattern.matches(**kind)).all(|kind| kind.is_public());
    if !public {
        caller.require(Role::Operator)?;
    }
    let limit = query.limit.unwrap_or(50);
    if limit == 0 || limit > MAX_HISTORY {
        return Err(Error::bad_field("limit", format!("limit must be between 1 and {MAX_HISTORY}")));
    }
    let events = state
        .storage
        .events(&EventQuery {
            patterns: vec![pattern],
            before: query.before,
            after: query.after,
            after_seq: None,
            correlation_id: query.correlation_id,
            limit,
        })
        .await?;
    Ok(ok(json!({ "events": events.into_iter().map(|stored| stored.event).collect::<Vec<_>>() })))
}
