//! A local OpenAI-compatible chat-completions server for tests and benchmarks: it
//! streams its answer as server-sent events the way OpenAI, Ollama and vLLM do, and
//! can be told to answer a fixed line, wait first, hang, or fail with a 500. It keeps
//! every request, so a test can read the prompt the host sent.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

/// How the stub answers.
#[derive(Debug, Clone, PartialEq)]
pub enum Behaviour {
    /// Streams this text in a few chunks.
    Line(String),
    /// Answers 500.
    Fail,
    /// Never answers.
    Hang,
}

#[derive(Debug)]
struct Inner {
    behaviour: Behaviour,
    delay: Duration,
    requests: Vec<Value>,
}

/// A running stub and its base URL (with `/v1`, as `LLM_BASE_URL` takes it).
#[derive(Debug)]
pub struct LlmStub {
    pub url: String,
    inner: Arc<Mutex<Inner>>,
    stop: CancellationToken,
}

impl LlmStub {
    pub async fn start(behaviour: Behaviour) -> LlmStub {
        let inner = Arc::new(Mutex::new(Inner { behaviour, delay: Duration::ZERO, requests: Vec::new() }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind the model stub");
        let url = format!("http://{}/v1", listener.local_addr().expect("address"));
        let stop = CancellationToken::new();
        let app = Router::new()
            .route("/v1/chat/completions", post(complete))
            .route("/v1/audio/speech", post(speak))
            .with_state(inner.clone());
        let stopped = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(stopped.cancelled_owned()).await;
        });
        LlmStub { url, inner, stop }
    }

    fn inner(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn set(&self, behaviour: Behaviour) {
        self.inner().behaviour = behaviour;
    }

    /// A fixed wait before every answer (the model's own time).
    pub fn set_delay(&self, delay: Duration) {
        self.inner().delay = delay;
    }

    /// Every request body received, oldest first.
    pub fn requests(&self) -> Vec<Value> {
        self.inner().requests.clone()
    }

    /// The settings that point a backend at this stub.
    pub fn settings(&self, timeout_ms: u64) -> Vec<(String, String)> {
        vec![
            ("LLM_BASE_URL".into(), self.url.clone()),
            ("LLM_MODEL".into(), "stub-model".into()),
            ("LLM_API_KEY".into(), "stub-key".into()),
            ("LLM_TIMEOUT_MS".into(), timeout_ms.to_string()),
        ]
    }
}

impl Drop for LlmStub {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `POST /v1/audio/speech`: one second of a 220 Hz tone as a 24 kHz WAV (OpenAI's
/// rate), whatever the text; the behaviour's failures as for completions.
async fn speak(State(inner): State<Arc<Mutex<Inner>>>, body: String) -> Response {
    let behaviour = {
        let mut inner = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.requests.push(serde_json::from_str(&body).unwrap_or(Value::Null));
        inner.behaviour.clone()
    };
    match behaviour {
        Behaviour::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "speech crashed").into_response(),
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Behaviour::Line(_) => {
            let rate = 24_000u32;
            let samples = (0..rate)
                .map(|index| {
                    ((f64::from(index) * 220.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 12_000.0)
                        as i16
                })
                .collect();
            let wav = sothebais_shared::wav::write(&sothebais_shared::wav::Mono { rate, samples });
            ([(header::CONTENT_TYPE, "audio/wav")], wav).into_response()
        }
    }
}

async fn complete(State(inner): State<Arc<Mutex<Inner>>>, body: String) -> Response {
    let (behaviour, delay) = {
        let mut inner = inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.requests.push(serde_json::from_str(&body).unwrap_or(Value::Null));
        (inner.behaviour.clone(), inner.delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    match behaviour {
        Behaviour::Fail => (StatusCode::INTERNAL_SERVER_ERROR, "model crashed").into_response(),
        Behaviour::Hang => {
            std::future::pending::<()>().await;
            StatusCode::GATEWAY_TIMEOUT.into_response()
        }
        Behaviour::Line(text) => {
            let mut events = String::new();
            let words: Vec<&str> = text.split_inclusive(' ').collect();
            for chunk in words.chunks(3) {
                let delta = json!({ "choices": [{ "index": 0, "delta": { "content": chunk.concat() } }] });
                events.push_str(&format!("data: {delta}\n\n"));
            }
            let usage = json!({ "choices": [], "usage": { "prompt_tokens": 321, "completion_tokens": 17 } });
            events.push_str(&format!("data: {usage}\n\ndata: [DONE]\n\n"));
            ([(header::CONTENT_TYPE, "text/event-stream")], events).into_response()
        }
    }
}
