//! The event handler role (`/api/events`): publish, history, schemas, dead letters,
//! replay; the outbox relay that publishes stored events on the bus; delivery to
//! consumers ([`dispatch`]).
//!
//! An event posted here is checked against its type's data struct, stored in the
//! event store, then published on the bus.

pub mod dispatch;
pub mod live;
pub mod relay;
pub mod websocket;

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};
use sothebais_kit::http::Failure;
use sothebais_shared::events::{Category, Envelope, EventType, InvalidEvent, Source, TypePattern};

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::http::{Json, Path, Query, created, ok};
use crate::storage::{ConsumerRecord, DeadLetter, EventQuery};
use sothebais_kit::access::{Authorized, Caller, OperatorRole, Role};
use sothebais_kit::openapi::Operation;

/// How many of each type: per-type counters are incremented once per batch, since a
/// labelled metric handle is looked up (its labels built and hashed) at each use.
fn tally(types: impl IntoIterator<Item = EventType>) -> Vec<(EventType, u64)> {
    let mut counts: Vec<(EventType, u64)> = Vec::new();
    for kind in types {
        match counts.iter_mut().find(|(counted, _)| *counted == kind) {
            Some((_, count)) => *count += 1,
            None => counts.push((kind, 1)),
        }
    }
    counts
}

/// Most events one history request returns.
pub const MAX_HISTORY: u32 = 1000;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/events/schemas", get(schemas))
        .route("/api/events/dead-letters", get(dead_letters))
        .route("/api/events/dead-letters/{id}/retry", post(retry_dead_letters))
        .route("/api/events/replay", post(replay))
        .route("/api/events/consumers", get(consumers))
        .route("/api/events/{event_type}", post(publish))
        .route("/api/events/stream", get(websocket::upgrade))
        .route("/api/events/{event_type}/history", get(history))
}

/// The event stream WebSocket listener.
pub fn websocket_router() -> Router<AppState> {
    Router::new().route("/", get(websocket::upgrade))
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
            "GET",
            "/api/events/dead-letters",
            "Events a consumer refused or failed on every try, newest first (?consumer=&limit=)",
        )
        .auth(Role::Operator)
        .response::<DeadLetterPage>(),
        Operation::new(
            "POST",
            "/api/events/dead-letters/{id}/retry",
            "Deliver dead-lettered events again to their consumer; {id} is a dead letter's id or an event id",
        )
        .auth(Role::Operator)
        .response::<Retried>(),
        Operation::new(
            "POST",
            "/api/events/replay",
            "Deliver stored events again to one consumer: { from, to?, types, consumer }; from/to are a store sequence number, an RFC 3339 time or an event id",
        )
        .auth(Role::Operator)
        .request::<ReplayRequest>()
        .response::<Replayed>(),
        Operation::new("GET", "/api/events/consumers", "Registered consumers and the type patterns they read")
            .auth(Role::Operator)
            .response::<ConsumerList>(),
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
    if event_type.category() == Category::Auction {
        // Decisions come only from the engine, in the transaction that made them: an
        // operator token must not be able to put a winner on air.
        return Err(Failure::forbidden(format!(
            "{event_type} is an auction decision: only the auction engine publishes those, from its outbox"
        ))
        .into());
    }
    let is_envelope = body.get("type").is_some() && body.get("data").is_some();
    let event = if is_envelope {
        let mut event = Envelope::from_value_checked(body).map_err(|invalid| {
            let field = match invalid {
                InvalidEvent::UnknownType(_) => "type",
                InvalidEvent::Data { .. } => "data",
                InvalidEvent::NewerVersion { .. } => "version",
                InvalidEvent::NotJson(_) | InvalidEvent::Envelope(_) => "envelope",
            };
            Error::bad_field(field, invalid.to_string())
        })?;
        if event.event_type != event_type {
            return Err(Error::bad_field(
                "type",
                format!("the envelope's type {} differs from the path's {event_type}", event.event_type),
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

/// Most dead letters one request lists.
pub const MAX_DEAD_LETTERS: u32 = 1000;
/// Most events one replay request hands over; a longer range is replayed in parts.
pub const MAX_REPLAY: usize = 100_000;

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct DeadLetterPage {
    events: Vec<DeadLetter>,
}

#[derive(Debug, Deserialize)]
struct DeadLetterQuery {
    consumer: Option<String>,
    limit: Option<u32>,
}

async fn dead_letters(
    State(state): State<AppState>,
    _: Authorized<OperatorRole>,
    Query(query): Query<DeadLetterQuery>,
) -> Result<Response> {
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > MAX_DEAD_LETTERS {
        return Err(Error::bad_field("limit", format!("limit must be between 1 and {MAX_DEAD_LETTERS}")));
    }
    let events = state.storage.dead_letters(query.consumer.as_deref(), limit).await?;
    Ok(ok(DeadLetterPage { events }))
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct Retried {
    /// The dead letters handed back to their consumers (and removed from the list).
    retried: Vec<uuid::Uuid>,
}

#[tracing::instrument(skip_all, fields(key = %key))]
async fn retry_dead_letters(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<OperatorRole>,
    Path(key): Path<String>,
) -> Result<Response> {
    let letters = state.storage.dead_letters_matching(&key).await?;
    if letters.is_empty() {
        return Err(Error::NotFound(format!("dead letter or event {key}")));
    }
    let retried = hand_back(&state, &letters, &claims.sub).await?;
    Ok(ok(Retried { retried }))
}

/// Hands dead letters back to their consumers for delivery; their ids.
pub async fn hand_back(state: &AppState, letters: &[DeadLetter], by: &str) -> Result<Vec<uuid::Uuid>> {
    // Hand back first, then remove: a failure in between leaves a dead letter that
    // was already retried, never a lost one.
    for letter in letters {
        state.bus.publish_raw(&crate::bus::direct_stream(&letter.consumer), &letter.payload).await?;
    }
    let retried: Vec<uuid::Uuid> = letters.iter().map(|letter| letter.id).collect();
    state.storage.remove_dead_letters(&retried).await?;
    tracing::info!(count = retried.len(), %by, "dead letters handed back for delivery");
    Ok(retried)
}

/// Where a replay starts or ends.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Position {
    /// A store sequence number.
    Seq(i64),
    /// An RFC 3339 time, an event id, or a sequence number as text.
    Text(String),
}

/// Type patterns as a list or as one comma-separated string.
#[derive(Debug, Clone, Deserialize, schemars::JsonSchema)]
#[serde(untagged)]
enum Types {
    List(Vec<String>),
    Text(String),
}

#[derive(Debug, Deserialize, schemars::JsonSchema)]
struct ReplayRequest {
    /// First event replayed (inclusive).
    from: Position,
    /// Last event replayed (inclusive); default: the newest.
    to: Option<Position>,
    /// Type patterns, such as `["auction:*"]` or `"auction:*,agent:mood"`.
    types: Types,
    /// The consumer that receives them.
    consumer: String,
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct Replayed {
    consumer: String,
    /// Events handed to the consumer.
    replayed: usize,
    first_seq: Option<i64>,
    last_seq: Option<i64>,
    /// True when the range held more than one request replays; continue from `last_seq + 1`.
    truncated: bool,
}

/// A bound of a replay, resolved against the store.
enum Bound {
    Seq(i64),
    Time(DateTime<Utc>),
}

async fn resolve(state: &AppState, field: &str, position: &Position) -> Result<Bound> {
    match position {
        Position::Seq(seq) => Ok(Bound::Seq(*seq)),
        Position::Text(text) => {
            if let Ok(seq) = text.parse::<i64>() {
                return Ok(Bound::Seq(seq));
            }
            if let Ok(time) = DateTime::parse_from_rfc3339(text) {
                return Ok(Bound::Time(time.with_timezone(&Utc)));
            }
            if let Ok(id) = uuid::Uuid::parse_str(text) {
                let stored = state
                    .storage
                    .event(id)
                    .await?
                    .ok_or_else(|| Error::bad_field(field, format!("no stored event has the id {id}")))?;
                return Ok(Bound::Seq(stored.seq));
            }
            Err(Error::bad_field(
                field,
                format!("{text:?} is not a sequence number, an RFC 3339 time or an event id"),
            ))
        }
    }
}

#[tracing::instrument(skip_all, fields(consumer = %request.consumer))]
async fn replay(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<OperatorRole>,
    Json(request): Json<ReplayRequest>,
) -> Result<Response> {
    let patterns = parse_patterns(&request.types)?;
    let known = state.storage.consumers().await?;
    if !known.iter().any(|consumer| consumer.name == request.consumer) {
        let names: Vec<&str> = known.iter().map(|consumer| consumer.name.as_str()).collect();
        return Err(Error::Coded {
            status: axum::http::StatusCode::NOT_FOUND,
            code: sothebais_shared::api::codes::NOT_FOUND,
            message: format!("no consumer named {:?} has registered", request.consumer),
            details: Some(json!({ "field": "consumer", "known": names })),
        });
    }
    let (mut after_seq, after) = match resolve(&state, "from", &request.from).await? {
        Bound::Seq(seq) => (seq.saturating_sub(1).max(0), None),
        Bound::Time(time) => (0, Some(time - chrono::TimeDelta::milliseconds(1))),
    };
    let (to_seq, before) = match &request.to {
        None => (i64::MAX, None),
        Some(position) => match resolve(&state, "to", position).await? {
            Bound::Seq(seq) => (seq, None),
            Bound::Time(time) => (i64::MAX, Some(time + chrono::TimeDelta::milliseconds(1))),
        },
    };
    let stream = crate::bus::direct_stream(&request.consumer);
    let (mut replayed, mut first_seq, mut last_seq) = (0, None, None);
    let truncated = loop {
        let page = state
            .storage
            .events(&EventQuery {
                patterns: patterns.clone(),
                before,
                after,
                after_seq: Some(after_seq),
                correlation_id: None,
                limit: MAX_HISTORY,
            })
            .await?;
        let full = page.len() == MAX_HISTORY as usize;
        let in_range: Vec<_> = page.into_iter().take_while(|stored| stored.seq <= to_seq).collect();
        let past_end = full && in_range.len() < MAX_HISTORY as usize;
        let room = MAX_REPLAY - replayed;
        let cut = in_range.len() > room;
        let batch = &in_range[..in_range.len().min(room)];
        // One bus round trip per page.
        let entries = batch
            .iter()
            .map(|stored| Ok((stream.clone(), serde_json::to_string(&stored.event)?)))
            .collect::<Result<Vec<_>, serde_json::Error>>()
            .map_err(anyhow::Error::from)?;
        state.bus.publish_raw_many(&entries).await?;
        if let (Some(first), Some(last)) = (batch.first(), batch.last()) {
            first_seq.get_or_insert(first.seq);
            last_seq = Some(last.seq);
            after_seq = last.seq;
        }
        replayed += batch.len();
        if cut || !full || past_end {
            break cut;
        }
    };
    tracing::info!(replayed, ?first_seq, ?last_seq, by = %claims.sub, "events replayed to a consumer");
    Ok(ok(Replayed { consumer: request.consumer, replayed, first_seq, last_seq, truncated }))
}

fn parse_patterns(types: &Types) -> Result<Vec<TypePattern>> {
    let items: Vec<String> = match types {
        Types::List(items) => items.clone(),
        Types::Text(text) => text.split(',').map(|item| item.trim().to_owned()).collect(),
    };
    let patterns = items
        .iter()
        .filter(|item| !item.is_empty())
        .map(|item| item.parse::<TypePattern>().map_err(|message| Error::bad_field("types", message)))
        .collect::<Result<Vec<_>>>()?;
    if patterns.is_empty() {
        return Err(Error::bad_field(
            "types",
            "name at least one type pattern, such as \"auction:*\" or \"*\"",
        ));
    }
    Ok(patterns)
}

#[derive(Debug, serde::Serialize, schemars::JsonSchema)]
struct ConsumerList {
    consumers: Vec<ConsumerRecord>,
}

async fn consumers(State(state): State<AppState>, _: Authorized<OperatorRole>) -> Result<Response> {
    Ok(ok(ConsumerList { consumers: state.storage.consumers().await? }))
}
