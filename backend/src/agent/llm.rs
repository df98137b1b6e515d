//! The OpenAI-compatible chat-completions client (OpenAI, Ollama, llama.cpp's
//! server, vLLM): streamed answers read as server-sent events, a deadline for the
//! whole line (retries included), retries of transport errors and 5xx, and a circuit
//! breaker that stops asking a model that keeps failing until a cool-down has passed
//! (read from the injected clock), then lets one request through to try it.

use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use secrecy::ExposeSecret as _;
use serde::Serialize;
use serde_json::{Value, json};
use sothebais_kit::clock::SharedClock;
use tokio::time::Instant;

use super::prompt::ChatMessage;
use crate::config::LlmConfig;

/// Failures in a row that open the breaker.
pub const BREAKER_FAILURES: u32 = 3;
/// How long an open breaker refuses before it lets one request try.
pub const BREAKER_COOL_DOWN: chrono::Duration = chrono::Duration::seconds(30);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LlmError {
    #[error("the model is resting after failures (circuit breaker open)")]
    Open,
    #[error("the model did not answer within {0} ms")]
    Timeout(u128),
    #[error("the model answered HTTP {0}")]
    Status(u16),
    #[error("the model could not be reached: {0}")]
    Transport(String),
    #[error("the model's answer could not be read: {0}")]
    Malformed(String),
    #[error("the model answered nothing")]
    Empty,
}

impl LlmError {
    /// The metric label.
    pub fn label(&self) -> &'static str {
        match self {
            LlmError::Open => "breaker_open",
            LlmError::Timeout(_) => "timeout",
            LlmError::Status(_) => "status",
            LlmError::Transport(_) => "transport",
            LlmError::Malformed(_) => "malformed",
            LlmError::Empty => "empty",
        }
    }

    fn retryable(&self) -> bool {
        matches!(self, LlmError::Transport(_) | LlmError::Status(429 | 500..=599))
    }
}

/// The breaker's state, as `/health` and the metrics show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BreakerState {
    Closed,
    Open,
    /// The cool-down is over: the next request tries the model.
    HalfOpen,
}

#[derive(Debug, Default)]
struct Breaker {
    failures: u32,
    open_until: Option<DateTime<Utc>>,
    /// A trial request is out (half-open).
    trying: bool,
    last_error: Option<String>,
}

impl Breaker {
    fn state(&self, now: DateTime<Utc>) -> BreakerState {
        match self.open_until {
            Some(until) if now < until => BreakerState::Open,
            Some(_) => BreakerState::HalfOpen,
            None => BreakerState::Closed,
        }
    }
}

/// An answer of the model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

#[derive(Debug)]
pub struct LlmClient {
    config: LlmConfig,
    http: reqwest::Client,
    clock: SharedClock,
    breaker: Mutex<Breaker>,
}

impl LlmClient {
    pub fn new(config: LlmConfig, http: reqwest::Client, clock: SharedClock) -> LlmClient {
        LlmClient { config, http, clock, breaker: Mutex::default() }
    }

    pub fn model(&self) -> &str {
        &self.config.model
    }

    fn breaker(&self) -> std::sync::MutexGuard<'_, Breaker> {
        self.breaker.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn state(&self) -> BreakerState {
        self.breaker().state(self.clock.now())
    }

    /// The `llm` health check: failing while the breaker is open or half-open.
    pub fn health(&self) -> Result<(), String> {
        let breaker = self.breaker();
        match breaker.state(self.clock.now()) {
            BreakerState::Closed => Ok(()),
            state => Err(format!(
                "model {} unavailable ({}), templates carry the show: {}",
                self.config.model,
                if state == BreakerState::Open { "breaker open" } else { "breaker half-open, trying again" },
                breaker.last_error.as_deref().unwrap_or("failing")
            )),
        }
    }

    /// Whether a request may go out now (the breaker closed, or its one trial).
    fn admit(&self) -> bool {
        let now = self.clock.now();
        let mut breaker = self.breaker();
        match breaker.state(now) {
            BreakerState::Closed => true,
            BreakerState::Open => false,
            BreakerState::HalfOpen if breaker.trying => false,
            BreakerState::HalfOpen => {
                breaker.trying = true;
                true
            }
        }
    }

    fn record(&self, outcome: &Result<Completion, LlmError>) {
        let now = self.clock.now();
        let mut breaker = self.breaker();
        breaker.trying = false;
        match outcome {
            Ok(_) => {
                if breaker.open_until.is_some() {
                    tracing::info!(model = %self.config.model, "model answering again: breaker closed");
                }
                *breaker = Breaker::default();
            }
            Err(error) => {
                breaker.failures += 1;
                breaker.last_error = Some(error.to_string());
                if breaker.failures >= BREAKER_FAILURES || breaker.open_until.is_some() {
                    if breaker.state(now) != BreakerState::Open {
                        tracing::warn!(model = %self.config.model, %error, "model failing: breaker open, templates take over");
                    }
                    breaker.open_until = Some(now + BREAKER_COOL_DOWN);
                }
            }
        }
        let open = breaker.state(now) != BreakerState::Closed;
        metrics::gauge!("agent_llm_breaker_open").set(if open { 1.0 } else { 0.0 });
    }

    /// One line from the model, within the deadline, retried while time is left.
    pub async fn complete(&self, messages: &[ChatMessage], max_tokens: u32) -> Result<Completion, LlmError> {
        if !self.admit() {
            return Err(LlmError::Open);
        }
        let started = Instant::now();
        let deadline = started + self.config.timeout;
        let mut attempt = 0u32;
        let outcome = loop {
            attempt += 1;
            let result = match tokio::time::timeout_at(deadline, self.request(messages, max_tokens)).await {
                Ok(result) => result,
                Err(_) => Err(LlmError::Timeout(self.config.timeout.as_millis())),
            };
            match result {
                Err(error) if error.retryable() && attempt < 3 => {
                    let pause = Duration::from_millis(150 * u64::from(attempt));
                    if Instant::now() + pause >= deadline {
                        break Err(error);
                    }
                    tracing::debug!(%error, attempt, "model request failed; retrying");
                    tokio::time::sleep(pause).await;
                }
                other => break other,
            }
        };
        let label = match &outcome {
            Ok(_) => "ok",
            Err(error) => error.label(),
        };
        metrics::counter!("agent_llm_requests_total", "outcome" => label).increment(1);
        metrics::histogram!("agent_llm_latency_seconds").record(started.elapsed().as_secs_f64());
        if let Ok(completion) = &outcome {
            metrics::counter!("agent_llm_tokens_total", "kind" => "prompt")
                .increment(completion.prompt_tokens);
            metrics::counter!("agent_llm_tokens_total", "kind" => "completion")
                .increment(completion.completion_tokens);
        }
        self.record(&outcome);
        outcome
    }

    async fn request(&self, messages: &[ChatMessage], max_tokens: u32) -> Result<Completion, LlmError> {
        let body = json!({
            "model": self.config.model,
            "messages": messages,
            "stream": true,
            "stream_options": { "include_usage": true },
            "max_tokens": max_tokens,
            "temperature": 0.9,
        });
        let mut request = self.http.post(format!("{}/chat/completions", self.config.base_url)).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response = request.send().await.map_err(|error| LlmError::Transport(without_url(&error)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(LlmError::Status(status.as_u16()));
        }
        let event_stream = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("text/event-stream"));
        let mut text = String::new();
        let mut usage = None;
        if event_stream {
            let mut body = response.bytes_stream();
            let mut pending = Vec::new();
            'read: while let Some(chunk) = body.next().await {
                let chunk = chunk.map_err(|error| LlmError::Transport(without_url(&error)))?;
                pending.extend_from_slice(&chunk);
                while let Some(end) = pending.iter().position(|&byte| byte == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let line = String::from_utf8_lossy(&line);
                    let Some(data) = line.trim().strip_prefix("data:") else { continue };
                    let data = data.trim();
                    if data == "[DONE]" {
                        break 'read;
                    }
                    let value: Value =
                        serde_json::from_str(data).map_err(|error| LlmError::Malformed(error.to_string()))?;
                    if let Some(delta) = value.pointer("/choices/0/delta/content").and_then(Value::as_str) {
                        text.push_str(delta);
                    }
                    if value.get("usage").is_some_and(Value::is_object) {
                        usage = value.get("usage").cloned();
                    }
                }
            }
        } else {
            let value: Value =
                response.json().await.map_err(|error| LlmError::Malformed(without_url(&error)))?;
            text = value
                .pointer("/choices/0/message/content")
                .and_then(Value::as_str)
                .ok_or_else(|| LlmError::Malformed("no choices[0].message.content".into()))?
                .to_owned();
            usage = value.get("usage").cloned();
        }
        if text.trim().is_empty() {
            return Err(LlmError::Empty);
        }
        let count = |key: &str| usage.as_ref().and_then(|usage| usage.get(key)).and_then(Value::as_u64);
        let estimate = |chars: usize| (chars as u64).div_ceil(4);
        Ok(Completion {
            prompt_tokens: count("prompt_tokens")
                .unwrap_or_else(|| estimate(messages.iter().map(|message| message.content.len()).sum())),
            completion_tokens: count("completion_tokens").unwrap_or_else(|| estimate(text.len())),
            text,
        })
    }
}

/// A transport error's text without the URL (which may carry a key in its query).
fn without_url(error: &reqwest::Error) -> String {
    let mut text = error.to_string();
    if let Some(url) = error.url() {
        text = text.replace(url.as_str(), "the model's URL");
    }
    text
}
