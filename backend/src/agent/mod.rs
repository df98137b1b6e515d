//! The `agent` role: the AI host (`agent.md`, docs/agent.md). Characters are ElizaOS
//! files (`character`, `library`); the mood is a pure machine (`mood`); lines come
//! from a model (`llm`, `prompt`) or the template speaker (`speaker`), and are held
//! to the auction's facts (`ground`); memory is per subject in the database
//! (`memory`); `host` puts it to work as an event consumer and a clock task.

pub mod character;
pub mod ground;
pub mod host;
pub mod library;
pub mod llm;
pub mod memory;
pub mod mood;
pub mod prompt;
pub mod speaker;
pub mod voice;
pub mod wording;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::response::Response;
use axum::routing::{get, post};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sothebais_kit::access::{Authorized, OperatorRole, Role};
use sothebais_kit::http::{created, ok};
use sothebais_shared::events::EventType;

use crate::app::AppState;
use crate::error::{Error, Result};
use crate::events::live;
use crate::http::{Json, Query};
use sothebais_kit::openapi::Operation;

pub use host::{AgentConsumer, AgentHandle, CharacterChange};

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/agent/state", get(state))
        .route("/api/agent/interact", post(interact))
        .route("/api/agent/memory", get(memory))
        .route("/api/agent/characters", get(characters).post(upload))
        .route("/api/agent/characters/active", post(activate))
        .route("/api/agent/speech/{file}", get(speech))
}

/// The agent's WebSocket (`AGENT_SERVICE_WS_PORT`): `agent:state` on connect and
/// after each mood change, then every `agent:message` and `agent:mood`.
pub fn websocket_router() -> Router<AppState> {
    Router::new().route("/", get(upgrade))
}

pub fn operations() -> Vec<Operation> {
    vec![
        Operation::new(
            "GET",
            "/api/agent/state",
            "The host: character, mood, expression, last line, provider",
        ),
        Operation::new(
            "POST",
            "/api/agent/interact",
            "What the host answers a viewer (remembered, not posted)",
        )
        .auth(Role::Operator)
        .request::<InteractRequest>(),
        Operation::new(
            "GET",
            "/api/agent/memory",
            "What the host remembers: ?user=handle, ?lot=id, or the recent window",
        )
        .auth(Role::Operator),
        Operation::new(
            "GET",
            "/api/agent/characters",
            "The characters, their art and origin, and files that did not load",
        ),
        Operation::new(
            "POST",
            "/api/agent/characters",
            "Upload a character file (ElizaOS JSON); validated, kept, not yet on air",
        )
        .auth(Role::Operator),
        Operation::new("POST", "/api/agent/characters/active", "Put a character on air")
            .auth(Role::Operator)
            .request::<ActivateRequest>(),
        Operation::new(
            "GET",
            "/api/agent/speech/{id}.wav",
            "A spoken line's audio (mono 16-bit WAV), while it is kept",
        ),
    ]
}

/// `GET /api/agent/speech/{id}.wav`: the audio itself (one of the documented binary
/// answers), or the enveloped 404 once it is gone.
async fn speech(
    State(state): State<AppState>,
    axum::extract::Path(file): axum::extract::Path<String>,
) -> Result<Response> {
    let id = file.strip_suffix(".wav").unwrap_or(&file);
    let wav = state.agent.speech(id).ok_or_else(|| Error::NotFound(format!("speech {id:?}")))?;
    Ok(axum::response::IntoResponse::into_response((
        [(axum::http::header::CONTENT_TYPE, "audio/wav"), (axum::http::header::CACHE_CONTROL, "max-age=600")],
        wav,
    )))
}

async fn state(State(state): State<AppState>) -> Result<Response> {
    Ok(ok(state.agent.state()))
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractUser {
    pub handle: String,
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct InteractRequest {
    pub user: InteractUser,
    pub text: String,
}

async fn interact(
    State(state): State<AppState>,
    _: Authorized<OperatorRole>,
    Json(request): Json<InteractRequest>,
) -> Result<Response> {
    let handle = request.user.handle.trim().trim_start_matches('@');
    if handle.is_empty()
        || handle.len() > 50
        || !handle.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    {
        return Err(Error::bad_field("user.handle", "a handle is letters, digits and _, at most 50"));
    }
    let text = request.text.trim();
    if text.is_empty() || text.chars().count() > 1000 {
        return Err(Error::bad_field("text", "text must be 1 to 1000 characters"));
    }
    let reply = state.agent.answer(&format!("@{handle}"), text, None).await;
    let view = state.agent.state();
    Ok(ok(json!({ "reply": reply.text, "mood": view.mood, "expression": view.expression })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MemoryQuery {
    user: Option<String>,
    lot: Option<uuid::Uuid>,
}

async fn memory(
    State(state): State<AppState>,
    _: Authorized<OperatorRole>,
    Query(query): Query<MemoryQuery>,
) -> Result<Response> {
    let subject = match (&query.user, query.lot) {
        (Some(user), None) => memory::user(user),
        (None, Some(lot)) => format!("lot:{lot}"),
        (None, None) => return Ok(ok(json!({ "memories": state.agent.recent(), "subject": null }))),
        (Some(_), Some(_)) => return Err(Error::bad_field("user", "ask for a user or a lot, not both")),
    };
    Ok(ok(state.agent.memory_of(&subject).await?))
}

async fn characters(State(state): State<AppState>) -> Result<Response> {
    Ok(ok(state.agent.characters()))
}

fn refused(change: CharacterChange) -> Error {
    match change {
        CharacterChange::Unknown(id) => Error::NotFound(format!("character {id:?}")),
        CharacterChange::Invalid(error) => Error::BadRequest {
            message: error.to_string(),
            details: Some(json!({ "field": error.path, "reason": error.reason })),
        },
        CharacterChange::Io(error) => Error::Internal(error.into()),
    }
}

async fn upload(
    State(state): State<AppState>,
    _: Authorized<OperatorRole>,
    Json(body): Json<Value>,
) -> Result<Response> {
    let (character, origin) = state.agent.upload(&body.to_string()).await.map_err(refused)?;
    Ok(created(json!({ "id": character.id, "name": character.name, "origin": origin })))
}

#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ActivateRequest {
    pub id: String,
}

async fn activate(
    State(state): State<AppState>,
    _: Authorized<OperatorRole>,
    Json(request): Json<ActivateRequest>,
) -> Result<Response> {
    let character = state.agent.switch(&request.id).await.map_err(refused)?;
    Ok(ok(json!({ "id": character.id, "name": character.name })))
}

async fn upgrade(State(state): State<AppState>, socket: WebSocketUpgrade) -> Response {
    socket.on_upgrade(move |socket| follow(socket, state))
}

fn message(kind: &str, data: &impl Serialize) -> Message {
    Message::Text(json!({ "type": kind, "data": data }).to_string().into())
}

async fn follow(mut socket: WebSocket, state: AppState) {
    let mut events = state.feed.subscribe();
    if socket.send(message("agent:state", &state.agent.state())).await.is_err() {
        return;
    }
    while let Some(event) = live::next_event(&mut socket, &mut events, &state.shutdown, "agent").await {
        let mut outgoing = Vec::new();
        match event.event_type {
            EventType::AgentMessage => outgoing.push(message("agent:message", &event.data)),
            EventType::AgentMood => {
                outgoing.push(message("agent:mood", &event.data));
                outgoing.push(message("agent:state", &state.agent.state()));
            }
            _ => {}
        }
        for outgoing in outgoing {
            if !live::send_in_time(&mut socket, outgoing).await {
                return;
            }
        }
    }
}
