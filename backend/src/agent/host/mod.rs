//! The host at work: it follows the auction (an event consumer), keeps its mood and
//! memory, and speaks: `agent:message` for captions and X replies, `agent:mood` for
//! the renderer's face. A clock task adds what no event says: the last seconds of a
//! lot, idle banter, the mood's fade.
//!
//! Lines are spoken one at a time (the `voice` lock). With a model configured a line
//! is asked of it first; a line that is late, failing or unfit (ungrounded, a link,
//! blocked words, a repeat) is replaced by the template speaker's.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::rngs::StdRng;
use rand::{Rng as _, SeedableRng as _};
use serde::Serialize;
use serde_json::{Value, json};
use sothebais_kit::clock::SharedClock;
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{Auction, AuctionState, Bidder, OutcomeResult};
use sothebais_shared::events::{
    AgentInteraction, AgentMemoryUpdate, AgentMessage, AgentMood, AuctionCancelled, AuctionExtended,
    AuctionSnapshot, BidEvent, Channel, Envelope, EventType, Mood, SocialPostReceived, Source, TypePattern,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::character::{Character, CharacterError, Moment, slug};
use super::ground::{self, Policy};
use super::library::{Library, Origin};
use super::llm::{BreakerState, LlmClient};
use super::memory::{self, MemoryBook, Recent};
use super::mood::{MoodChange, MoodMachine, Stimulus};
use super::prompt;
use super::speaker::{LotView, Situation, TemplateSpeaker};
use super::voice::Voice;
use crate::config::Config;
use crate::events::dispatch::Consumer;
use crate::storage::Storage;

mod moments;
mod queue;

pub use moments::{AgentConsumer, asks_something};
use queue::Job;

/// On screen, accepted bids get a line at most this often (first bids always do).
const BID_LINE_EVERY: chrono::Duration = chrono::Duration::seconds(4);
/// Idle banter comes after a quiet stretch of this many seconds (drawn each time).
const IDLE_SECS: std::ops::Range<i64> = 20..41;
/// The active character's key in `agent_state`.
const ACTIVE_KEY: &str = "active_character";

/// An open lot as the host follows it.
#[derive(Debug, Clone)]
struct Track {
    auction: Auction,
    number: Option<u32>,
    /// The last-call line was said (reset by an extension).
    last_called: bool,
    opened_at: DateTime<Utc>,
}

#[derive(Debug)]
struct Host {
    mood: MoodMachine,
    lots: HashMap<Uuid, Track>,
    last_stream: Option<String>,
    last_x: Option<String>,
    last_message: Option<AgentMessage>,
    last_bid_line: Option<DateTime<Utc>>,
    /// The last bid, line or opening: idle banter waits for quiet after it.
    last_activity: DateTime<Utc>,
    idle_after: chrono::Duration,
    rng: StdRng,
}

/// The host: what the agent role's API, consumer and clock task share.
#[derive(Clone)]
pub struct AgentHandle {
    inner: Arc<Inner>,
}

struct Inner {
    storage: Arc<dyn Storage>,
    clock: SharedClock,
    outbox: Arc<Notify>,
    uploads: PathBuf,
    library: RwLock<Library>,
    active: RwLock<Arc<Character>>,
    host: Mutex<Host>,
    /// One line composed at a time.
    turn: tokio::sync::Mutex<()>,
    templates: TemplateSpeaker,
    llm: Option<LlmClient>,
    memory: MemoryBook,
    voice: Option<Arc<Voice>>,
    queue: Mutex<(Vec<Job>, u64)>,
    queued: Notify,
    /// The voice is speaking a line (until its audio ends).
    speaking: std::sync::atomic::AtomicBool,
    /// When the last `agent:message` was stored (for the benchmark's event-to-line figure).
    last_line: Mutex<Option<std::time::Instant>>,
    /// The settings that may change while running (the voice's provider).
    runtime: Arc<crate::runtime::Runtime>,
}

impl std::fmt::Debug for AgentHandle {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("AgentHandle").finish_non_exhaustive()
    }
}

/// Why a character could not be switched to or uploaded.
#[derive(Debug, thiserror::Error)]
pub enum CharacterChange {
    #[error("no character {0:?}")]
    Unknown(String),
    #[error(transparent)]
    Invalid(#[from] CharacterError),
    #[error("the character file could not be kept: {0}")]
    Io(#[from] std::io::Error),
}

/// What `GET /api/agent/state` shows.
#[derive(Debug, Clone, Serialize)]
pub struct StateView {
    pub character: Value,
    pub mood: Mood,
    pub intensity: f32,
    pub expression: String,
    pub last_message: Option<AgentMessage>,
    pub provider: &'static str,
    pub llm_healthy: bool,
    pub llm_state: Option<BreakerState>,
    /// The voice: its providers in fallback order, whether it is speaking, lines waiting.
    pub voice: Value,
}

fn name_of(bidder: &Bidder) -> String {
    match &bidder.handle {
        Some(handle) => format!("@{}", handle.trim_start_matches('@')),
        None => bidder.id.clone(),
    }
}

impl Track {
    fn view(&self, now: DateTime<Utc>) -> LotView {
        let auction = &self.auction;
        LotView {
            id: auction.id,
            title: auction.title.clone(),
            number: self.number,
            starting: auction.starting_price,
            high: auction.high_bid.as_ref().map(|high| high.amount),
            leader: auction.high_bid.as_ref().map(|high| name_of(&high.bidder)),
            min_next: auction.min_next_bid,
            secs_left: auction.ends_at.map(|ends| (ends - now).num_seconds().max(0)),
            bids: auction.bid_count,
        }
    }
}

impl AgentHandle {
    /// The host with its characters, memory and speakers; the active character is
    /// the one remembered, else `AGENT_CHARACTER`, else the auctioneer.
    pub async fn new(
        config: &Config,
        storage: Arc<dyn Storage>,
        clock: SharedClock,
        outbox: Arc<Notify>,
        http: reqwest::Client,
        runtime: Arc<crate::runtime::Runtime>,
    ) -> anyhow::Result<AgentHandle> {
        let uploads = config.data_dir.join("characters");
        let library = Library::load(&config.agent.characters_dir, &uploads);
        let remembered = storage.agent_value(ACTIVE_KEY).await.ok().flatten();
        let active = remembered
            .iter()
            .chain(std::iter::once(&config.agent.character))
            .find_map(|id| library.get(id))
            .or_else(|| library.get("auctioneer"))
            .ok_or_else(|| anyhow::anyhow!("no character loads: {:?}", library.invalid))?;
        if active.id != config.agent.character && remembered.as_deref() != Some(active.id.as_str()) {
            tracing::warn!(wanted = %config.agent.character, using = %active.id, "character not found; using the default");
        }
        let recent = match &config.redis_url {
            Some(url) => {
                match Recent::redis(secrecy::ExposeSecret::expose_secret(url), &config.redis_key_prefix).await
                {
                    Ok(recent) => recent,
                    Err(error) => {
                        tracing::warn!(%error, "recent memory not loaded from Redis; kept in memory");
                        Recent::in_memory()
                    }
                }
            }
            None => Recent::in_memory(),
        };
        let now = clock.now();
        let host = Host {
            mood: MoodMachine::new(active.show.mood_rules.clone(), now),
            lots: HashMap::new(),
            last_stream: None,
            last_x: None,
            last_message: None,
            last_bid_line: None,
            last_activity: now,
            idle_after: chrono::Duration::seconds(30),
            rng: StdRng::from_rng(&mut rand::rng()),
        };
        let policy = Policy {
            allow_links: config.agent.allow_links,
            blocklist: config.agent.blocklist.clone(),
            caption_max_chars: config.agent.caption_max_chars,
        };
        let voice = Voice::from_config(&config.agent.voice, http.clone(), &config.data_dir).map(Arc::new);
        let llm = config.agent.llm.clone().map(|llm| LlmClient::new(llm, http, clock.clone()));
        Ok(AgentHandle {
            inner: Arc::new(Inner {
                memory: MemoryBook { storage: storage.clone(), recent },
                storage,
                clock,
                outbox,
                uploads,
                library: RwLock::new(library),
                active: RwLock::new(active),
                host: Mutex::new(host),
                turn: tokio::sync::Mutex::new(()),
                templates: TemplateSpeaker { policy },
                llm,
                voice,
                queue: Mutex::new((Vec::new(), 0)),
                queued: Notify::new(),
                speaking: std::sync::atomic::AtomicBool::new(false),
                last_line: Mutex::new(None),
                runtime,
            }),
        })
    }

    fn host(&self) -> std::sync::MutexGuard<'_, Host> {
        self.inner.host.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    /// The character on air.
    pub fn character(&self) -> Arc<Character> {
        self.inner.active.read().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }

    pub fn policy(&self) -> &Policy {
        &self.inner.templates.policy
    }

    /// The `llm` health check, when a model is configured.
    pub fn llm_health(&self) -> Option<Result<(), String>> {
        self.inner.llm.as_ref().map(LlmClient::health)
    }

    /// The characters, each with where it came from and whether it is on air, and
    /// the files that did not load.
    pub fn characters(&self) -> Value {
        let active = self.character().id.clone();
        let library = self.inner.library.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let characters: Vec<Value> = library
            .characters
            .values()
            .map(|(character, origin)| {
                json!({
                    "id": character.id,
                    "name": character.name,
                    "bio": character.bio.first(),
                    "origin": origin,
                    "active": character.id == active,
                    "art": art(character),
                })
            })
            .collect();
        let invalid: Vec<String> = library.invalid.iter().map(ToString::to_string).collect();
        json!({ "characters": characters, "invalid": invalid })
    }

    pub fn state(&self) -> StateView {
        let character = self.character();
        let now = self.now();
        let host = self.host();
        let mood = host.mood.mood();
        let llm_state = self.inner.llm.as_ref().map(LlmClient::state);
        let llm_healthy = llm_state == Some(BreakerState::Closed);
        StateView {
            character: json!({ "name": character.name, "id": character.id, "art": art(&character) }),
            mood,
            intensity: host.mood.intensity(now),
            expression: character.expression_name(mood),
            last_message: host.last_message.clone(),
            provider: if llm_healthy { "llm" } else { "template" },
            llm_healthy,
            llm_state,
            voice: json!({
                "providers": self.inner.voice.as_ref().map(|voice| voice.providers()).unwrap_or_default(),
                "speaking": self.inner.speaking.load(std::sync::atomic::Ordering::Relaxed),
                "queued": self.queue().0.len(),
            }),
        }
    }

    fn lined(&self) {
        *self.inner.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
            Some(std::time::Instant::now());
    }

    /// When the last `agent:message` was stored.
    pub fn last_line_at(&self) -> Option<std::time::Instant> {
        *self.inner.last_line.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn event<T: Serialize>(&self, event_type: EventType, data: &T) {
        match Envelope::new(event_type, Source::AgentService, data) {
            Ok(event) => match self.inner.storage.append_event(&event).await {
                Ok(_) => self.inner.outbox.notify_one(),
                Err(error) => tracing::warn!(%error, %event_type, "agent event not stored"),
            },
            Err(error) => tracing::warn!(%error, %event_type, "agent event not built"),
        }
    }

    async fn announce_mood(&self, change: MoodChange) {
        let expression = self.character().expression_name(change.mood);
        tracing::debug!(mood = ?change.mood, intensity = change.intensity, %expression, "mood");
        metrics::counter!("agent_mood_changes_total", "mood" => change.mood.as_str()).increment(1);
        self.event(
            EventType::AgentMood,
            &AgentMood { mood: change.mood, intensity: change.intensity, expression },
        )
        .await;
    }

    async fn feel(&self, stimulus: Stimulus) {
        let now = self.now();
        let change = self.host().mood.apply(&stimulus, now);
        if let Some(change) = change {
            self.announce_mood(change).await;
        }
    }

    async fn remember(&self, subject: &str, kind: &str, text: String, tallies: (u64, u64)) {
        match self.inner.memory.note(subject, kind, text, self.now(), tallies).await {
            Ok(Some(summary)) => {
                self.event(
                    EventType::AgentMemoryUpdate,
                    &AgentMemoryUpdate { subject: subject.to_owned(), summary },
                )
                .await;
            }
            Ok(None) => {}
            Err(error) => tracing::warn!(%error, subject, "memory not stored"),
        }
    }

    /// What the prompt is told of the past: the recent window, and what the host
    /// remembers of the person concerned.
    async fn context(&self, situation: &Situation) -> Vec<String> {
        let mut lines = self.inner.memory.recent.last(8);
        if let Some(who) = &situation.who
            && let Ok((Some(subject), entries)) = self.inner.memory.about(&memory::user(who), 3).await
        {
            lines.push(format!("{who}: {} bids, {} wins so far", subject.bids, subject.wins));
            if !subject.summary.is_empty() {
                lines.push(format!("{who}, earlier: {}", subject.summary));
            }
            lines.extend(entries.into_iter().rev().map(|entry| format!("{who}: {}", entry.text)));
        }
        lines
    }

    /// A line for a situation: the model's when it gives a fit one, else the
    /// template speaker's. Returns the text and the provider.
    async fn compose(&self, situation: &Situation, previous: Option<&str>) -> (String, &'static str) {
        let character = self.character();
        if let Some(llm) = &self.inner.llm {
            let max = ground::max_chars(situation.channel, self.policy());
            let context = self.context(situation).await;
            let messages = prompt::messages(&character, situation, &context, max);
            let reason = match llm.complete(&messages, 120).await {
                Ok(completion) => {
                    let (tag, text) = ground::take_tags(&completion.text);
                    let text = ground::fit(text.trim_matches('"'), max);
                    match ground::check(&text, &situation.facts(), self.policy(), previous) {
                        Ok(()) => {
                            if let Some(mood) = tag {
                                self.feel(Stimulus::Tag(mood)).await;
                            }
                            return (text, "llm");
                        }
                        Err(unfit) => {
                            tracing::info!(line = %text, reason = %unfit, "model line replaced by a template line");
                            "unfit"
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(%error, "model line not had; template line instead");
                    error.label()
                }
            };
            metrics::counter!("agent_fallbacks_total", "reason" => reason).increment(1);
        }
        let line = {
            let mut host = self.host();
            self.inner.templates.line(&character, situation, previous, &mut host.rng)
        };
        (line, "template")
    }

    /// Speaks: composes the line, publishes `agent:message`, remembers it.
    async fn speak(&self, situation: Situation, in_reply_to: Option<String>) -> AgentMessage {
        let _turn = self.inner.turn.lock().await;
        let started = std::time::Instant::now();
        let previous = {
            let host = self.host();
            match situation.channel {
                Channel::Stream => host.last_stream.clone(),
                Channel::X => host.last_x.clone(),
            }
        };
        let (text, provider) = self.compose(&situation, previous.as_deref()).await;
        let message = {
            let mut host = self.host();
            let message = AgentMessage {
                text: text.clone(),
                channel: situation.channel,
                in_reply_to,
                mood: host.mood.mood(),
                speech: None,
            };
            match situation.channel {
                Channel::Stream => host.last_stream = Some(text.clone()),
                Channel::X => host.last_x = Some(text.clone()),
            }
            host.last_activity = self.inner.clock.now();
            message
        };
        if situation.channel == Channel::Stream && self.inner.voice.is_some() {
            // Spoken by the voice task, published with its speech.
            self.enqueue(message.clone(), &situation);
        } else {
            self.host().last_message = Some(message.clone());
            self.event(EventType::AgentMessage, &message).await;
            self.lined();
        }
        self.inner.memory.recent.push(format!("you said: {text}")).await;
        let trigger = situation.moment.to_string();
        metrics::counter!("agent_lines_total", "provider" => provider, "trigger" => trigger.clone())
            .increment(1);
        metrics::histogram!("agent_line_seconds", "provider" => provider)
            .record(started.elapsed().as_secs_f64());
        tracing::info!(%trigger, provider, channel = ?situation.channel, line = %text, "host spoke");
        message
    }

    fn situation(&self, moment: Moment, lot: Option<&Track>) -> Situation {
        Situation {
            moment,
            channel: Channel::Stream,
            lot: lot.map(|track| track.view(self.now())),
            who: None,
            amount: None,
            said: None,
        }
    }

    /// Puts a character on air: remembered across restarts, and the renderer told
    /// at once (an `agent:mood` with the new character's expression).
    pub async fn switch(&self, id: &str) -> Result<Arc<Character>, CharacterChange> {
        let character = {
            let library = self.inner.library.read().unwrap_or_else(std::sync::PoisonError::into_inner);
            library.get(id).ok_or_else(|| CharacterChange::Unknown(id.to_owned()))?
        };
        *self.inner.active.write().unwrap_or_else(std::sync::PoisonError::into_inner) = character.clone();
        let (mood, intensity) = {
            let mut host = self.host();
            host.mood.set_rules(character.show.mood_rules.clone());
            (host.mood.mood(), host.mood.intensity(self.now()))
        };
        if let Err(error) = self.inner.storage.set_agent_value(ACTIVE_KEY, &character.id).await {
            tracing::warn!(%error, "active character not remembered");
        }
        tracing::info!(id = %character.id, name = %character.name, "host switched");
        self.event(
            EventType::AgentMood,
            &AgentMood { mood, intensity, expression: character.expression_name(mood) },
        )
        .await;
        Ok(character)
    }

    /// Validates an uploaded character file, keeps it in `<data>/characters` and adds
    /// it to the library (not on air until switched to).
    pub async fn upload(&self, text: &str) -> Result<(Arc<Character>, Origin), CharacterChange> {
        let value: Value = serde_json::from_str(text).map_err(|error| CharacterError {
            file: "upload".into(),
            path: "$".into(),
            reason: format!("not valid JSON: {error}"),
        })?;
        let name = value.get("name").and_then(Value::as_str).unwrap_or_default();
        let id = slug(name);
        let character = Character::parse("upload", &id, text)?;
        tokio::fs::create_dir_all(&self.inner.uploads).await?;
        let path = self.inner.uploads.join(format!("{id}.json"));
        let temporary = path.with_extension("json.tmp");
        tokio::fs::write(&temporary, text).await?;
        tokio::fs::rename(&temporary, &path).await?;
        let mut library = self.inner.library.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        library.add(character, Origin::Upload);
        let (character, origin) = library.characters.get(&id).cloned().ok_or(CharacterChange::Unknown(id))?;
        Ok((character, origin))
    }

    /// What the host remembers of a subject.
    pub async fn memory_of(&self, subject: &str) -> Result<Value, crate::storage::StorageError> {
        let (summary, entries) = self.inner.memory.about(subject, memory::MAX_ENTRIES as u32).await?;
        Ok(json!({ "subject": subject, "summary": summary, "memories": entries }))
    }

    /// The recent window, oldest first.
    pub fn recent(&self) -> Vec<String> {
        self.inner.memory.recent.last(memory::RECENT)
    }
}

/// The expressions a character shows, for the renderer and the dashboard.
fn art(character: &Character) -> Value {
    json!({ "expressions": character.show.expressions, "blink": character.show.blink })
}
