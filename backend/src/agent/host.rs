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

/// On screen, accepted bids get a line at most this often (first bids always do).
const BID_LINE_EVERY: chrono::Duration = chrono::Duration::seconds(4);
/// Idle banter comes after a quiet stretch of this many seconds (drawn each time).
const IDLE_SECS: std::ops::Range<i64> = 20..41;
/// The active character's key in `agent_state`.
const ACTIVE_KEY: &str = "active_character";

/// A stream line waiting for the voice (lines are spoken one at a time).
#[derive(Debug)]
struct Job {
    message: AgentMessage,
    /// Results first (0), then bids and the clock (1), openings (2), banter (3).
    priority: u8,
    order: u64,
    queued_at: std::time::Instant,
    /// A bid line is stale once its lot has more bids than this.
    lot_bids: Option<(Uuid, u64)>,
}

/// A line waiting longer than this is dropped, unless it is a result.
const STALE_AFTER: Duration = Duration::from_secs(20);

fn priority(moment: Moment) -> u8 {
    match moment {
        Moment::Sold | Moment::ReserveNotMet | Moment::NoBids | Moment::Cancelled => 0,
        Moment::FirstBid | Moment::Bid | Moment::Extended | Moment::LastCall => 1,
        Moment::LotOpen | Moment::Question => 2,
        Moment::Idle => 3,
    }
}

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

/// Whether a post that is not a bid asks the host something.
pub fn asks_something(text: &str) -> bool {
    let words: Vec<String> = text
        .split_whitespace()
        .filter(|word| !word.starts_with('@'))
        .map(|word| word.to_lowercase())
        .collect();
    const OPENERS: &[&str] = &[
        "what", "when", "how", "who", "which", "why", "where", "is", "are", "can", "could", "does", "do",
        "will", "should", "tell",
    ];
    text.contains('?') || words.first().is_some_and(|word| OPENERS.contains(&word.trim_matches(',')))
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

    fn queue(&self) -> std::sync::MutexGuard<'_, (Vec<Job>, u64)> {
        self.inner.queue.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A spoken line's WAV, while it is kept.
    pub fn speech(&self, id: &str) -> Option<bytes::Bytes> {
        self.inner.voice.as_ref()?.store.get(id)
    }

    /// The voice task: speaks the queued stream lines one after the other, best
    /// first, each published with its speech once synthesised, the next only after
    /// the last one's audio has played; stale lines are dropped. Without a voice
    /// there is no queue (lines are published as they are composed).
    pub async fn run_voice(self, stop: CancellationToken) -> anyhow::Result<()> {
        let Some(voice) = self.inner.voice.clone() else {
            // No voice: nothing to do until the end (a task ending early is a failure).
            stop.cancelled().await;
            return Ok(());
        };
        tokio::select! {
            () = voice.warm() => {}
            () = stop.cancelled() => return Ok(()),
        }
        loop {
            let job = loop {
                if let Some(job) = self.next_job() {
                    break job;
                }
                tokio::select! {
                    () = self.inner.queued.notified() => {}
                    () = stop.cancelled() => return Ok(()),
                }
            };
            if self.stale(&job) {
                metrics::counter!("agent_speech_stale_total").increment(1);
                tracing::debug!(line = %job.message.text, "stale line dropped");
                continue;
            }
            let settings = self.character().show.voice.clone().unwrap_or_default();
            let spoken = voice.speak(&job.message.text, &settings).await;
            let mut message = job.message;
            message.speech = spoken.as_ref().map(|spoken| spoken.speech.clone());
            self.host().last_message = Some(message.clone());
            self.event(EventType::AgentMessage, &message).await;
            self.lined();
            if let Some(spoken) = spoken {
                self.inner.speaking.store(true, std::sync::atomic::Ordering::Relaxed);
                let length = Duration::from_millis(spoken.speech.duration_ms);
                tokio::select! {
                    () = tokio::time::sleep(length) => {}
                    () = stop.cancelled() => return Ok(()),
                }
                self.inner.speaking.store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    fn next_job(&self) -> Option<Job> {
        let mut queue = self.queue();
        let best =
            queue.0.iter().enumerate().min_by_key(|(_, job)| (job.priority, job.order)).map(|(at, _)| at)?;
        let job = queue.0.remove(best);
        metrics::gauge!("agent_speech_queue").set(queue.0.len() as f64);
        Some(job)
    }

    /// A bid line whose lot has had another bid since, or any line but a result
    /// waiting too long, is not worth saying any more.
    fn stale(&self, job: &Job) -> bool {
        if job.priority > 0 && job.queued_at.elapsed() > STALE_AFTER {
            return true;
        }
        let Some((lot, bids)) = job.lot_bids else { return false };
        self.host().lots.get(&lot).is_some_and(|track| track.auction.bid_count > bids)
    }

    fn enqueue(&self, message: AgentMessage, situation: &Situation) {
        let lot_bids = match situation.moment {
            Moment::FirstBid | Moment::Bid => situation.lot.as_ref().map(|lot| (lot.id, lot.bids)),
            _ => None,
        };
        let mut queue = self.queue();
        queue.1 += 1;
        let order = queue.1;
        queue.0.push(Job {
            message,
            priority: priority(situation.moment),
            order,
            queued_at: std::time::Instant::now(),
            lot_bids,
        });
        metrics::gauge!("agent_speech_queue").set(queue.0.len() as f64);
        drop(queue);
        self.inner.queued.notify_one();
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

    async fn lot_number(&self, auction: &Auction) -> Option<u32> {
        let campaign = self.inner.storage.campaign(auction.campaign_id?).await.ok().flatten()?;
        campaign.lots.iter().find(|lot| lot.auction_id == auction.id).map(|lot| lot.index + 1)
    }

    /// Applies one auction or social event: mood, memory, and the line it calls for.
    pub async fn on_event(&self, event: &Envelope) -> anyhow::Result<()> {
        let now = self.now();
        match event.event_type {
            EventType::AuctionStart => {
                let AuctionSnapshot { auction } = event.decode()?;
                if auction.state != AuctionState::Open {
                    return Ok(());
                }
                let track = Track {
                    number: self.lot_number(&auction).await,
                    auction,
                    last_called: false,
                    opened_at: now,
                };
                let situation = self.situation(Moment::LotOpen, Some(&track));
                self.host().lots.insert(track.auction.id, track.clone());
                self.remember(
                    &format!("lot:{}", track.auction.id),
                    "lot",
                    format!("opened at {} ETH", track.auction.starting_price),
                    (0, 0),
                )
                .await;
                self.speak(situation, None).await;
            }
            EventType::AuctionBidAccepted => {
                let BidEvent { bid, auction, .. } = event.decode()?;
                let Some(auction) = auction else { return Ok(()) };
                let who = name_of(&bid.bidder);
                let (previous, speak) = {
                    let mut host = self.host();
                    host.last_activity = now;
                    let track = host.lots.entry(auction.id).or_insert_with(|| Track {
                        auction: auction.clone(),
                        number: None,
                        last_called: false,
                        opened_at: now,
                    });
                    let previous =
                        (track.auction.high_bid.as_ref().map(|high| high.amount), track.auction.min_next_bid);
                    let first = track.auction.high_bid.is_none() && auction.bid_count <= 1;
                    if track.auction.seq <= auction.seq {
                        track.auction = auction.clone();
                    }
                    let due = host.last_bid_line.is_none_or(|at| now - at >= BID_LINE_EVERY);
                    let speak = if first || due {
                        host.last_bid_line = Some(now);
                        Some(if first { Moment::FirstBid } else { Moment::Bid })
                    } else {
                        None
                    };
                    (previous, speak)
                };
                let min_raise = previous
                    .0
                    .map_or(Amount::ZERO, |high| previous.1.checked_sub(high).unwrap_or(Amount::ZERO));
                // The line first (its commit ends the event-to-line path), then the
                // mood's event and the memory.
                let stimulus = Stimulus::Bid { amount: bid.amount, previous_high: previous.0, min_raise };
                let change = self.host().mood.apply(&stimulus, now);
                if let Some(moment) = speak {
                    let track = self.host().lots.get(&auction.id).cloned();
                    let mut situation = self.situation(moment, track.as_ref());
                    situation.who = Some(who.clone());
                    situation.amount = Some(bid.amount);
                    self.speak(situation, None).await;
                }
                if let Some(change) = change {
                    self.announce_mood(change).await;
                }
                self.remember(
                    &memory::user(&who),
                    "bid",
                    format!("bid {} ETH on \"{}\"", bid.amount, auction.title),
                    (1, 0),
                )
                .await;
                self.remember(
                    &format!("lot:{}", auction.id),
                    "bid",
                    format!("{} ETH from {who}", bid.amount),
                    (1, 0),
                )
                .await;
            }
            EventType::AuctionExtended => {
                let extended: AuctionExtended = event.decode()?;
                let track = {
                    let mut host = self.host();
                    host.lots.get_mut(&extended.auction_id).map(|track| {
                        track.auction.ends_at = Some(extended.ends_at);
                        track.last_called = false;
                        track.clone()
                    })
                };
                if let Some(track) = track {
                    let mut situation = self.situation(Moment::Extended, Some(&track));
                    situation.who = track.auction.high_bid.as_ref().map(|high| name_of(&high.bidder));
                    self.speak(situation, None).await;
                }
            }
            EventType::AuctionEnd => {
                let AuctionSnapshot { auction } = event.decode()?;
                let Some(outcome) = auction.outcome.clone() else { return Ok(()) };
                let track = self.host().lots.remove(&auction.id);
                let track = Track {
                    number: match &track {
                        Some(track) => track.number,
                        None => self.lot_number(&auction).await,
                    },
                    opened_at: track.map_or(now, |track| track.opened_at),
                    auction: auction.clone(),
                    last_called: true,
                };
                self.feel(Stimulus::Closed(outcome.result)).await;
                let mut situation = self.situation(
                    match outcome.result {
                        OutcomeResult::Sold => Moment::Sold,
                        OutcomeResult::ReserveNotMet => Moment::ReserveNotMet,
                        OutcomeResult::NoBids => Moment::NoBids,
                    },
                    Some(&track),
                );
                situation.lot = situation.lot.map(|lot| LotView { secs_left: None, ..lot });
                if let (Some(winner), Some(amount)) = (&outcome.winner, outcome.amount) {
                    let who = name_of(winner);
                    self.remember(
                        &memory::user(&who),
                        "win",
                        format!("won \"{}\" for {amount} ETH", auction.title),
                        (0, 1),
                    )
                    .await;
                    situation.who = Some(who);
                    situation.amount = Some(amount);
                }
                let result = match (&situation.who, situation.amount) {
                    (Some(who), Some(amount)) => format!("sold to {who} for {amount} ETH"),
                    _ => format!("closed: {:?}", outcome.result).to_lowercase(),
                };
                self.remember(&format!("lot:{}", auction.id), "result", result.clone(), (0, 0)).await;
                if let Some(campaign) = auction.campaign_id {
                    self.remember(
                        &format!("campaign:{campaign}"),
                        "result",
                        format!("\"{}\" {result}", auction.title),
                        (0, 0),
                    )
                    .await;
                }
                self.speak(situation, None).await;
            }
            EventType::AuctionCancelled => {
                let AuctionCancelled { auction, .. } = event.decode()?;
                let track = self.host().lots.remove(&auction.id);
                let track = Track {
                    number: track.as_ref().and_then(|track| track.number),
                    opened_at: track.map_or(now, |track| track.opened_at),
                    auction,
                    last_called: true,
                };
                self.feel(Stimulus::Cancelled).await;
                let mut situation = self.situation(Moment::Cancelled, Some(&track));
                situation.lot = situation.lot.map(|lot| LotView { secs_left: None, ..lot });
                self.speak(situation, None).await;
            }
            EventType::SocialPostReceived => {
                let post: SocialPostReceived = event.decode()?;
                if post.is_bid || !asks_something(&post.text) {
                    return Ok(());
                }
                let who = post.author.clone().unwrap_or_else(|| post.author_id.clone());
                let reply = self.answer(&who, &post.text, Some(post.post_id.clone())).await;
                tracing::info!(post = %post.post_id, %who, reply = %reply.text, "answered a question on X");
            }
            _ => {}
        }
        Ok(())
    }

    /// The lot a viewer most likely means: the one open that ends first.
    fn current_lot(&self) -> Option<Track> {
        let host = self.host();
        host.lots.values().min_by_key(|track| (track.auction.ends_at, track.opened_at)).cloned()
    }

    /// Answers what a viewer said: on X (in reply to `post`) when it came from a
    /// post, else only as `agent:interaction`. Remembered both ways.
    pub async fn answer(&self, who: &str, text: &str, post: Option<String>) -> AgentMessage {
        if self.current_lot().is_none() {
            // A lot's opening may not have reached the host yet (events of different
            // streams arrive in any order): ask the store.
            if let Err(error) = self.catch_up().await {
                tracing::debug!(%error, "open lots not read");
            }
        }
        let lot = self.current_lot();
        let mut situation = self.situation(Moment::Question, lot.as_ref());
        situation.channel = Channel::X;
        situation.who = Some(if who.starts_with('@') || who.chars().all(|c| c.is_ascii_digit()) {
            who.to_owned()
        } else {
            format!("@{who}")
        });
        situation.said = Some(text.chars().take(500).collect());
        let subject = memory::user(who);
        self.remember(
            &subject,
            "said",
            format!("said \"{}\"", text.chars().take(200).collect::<String>()),
            (0, 0),
        )
        .await;
        self.inner
            .memory
            .recent
            .push(format!("{who} said: {}", text.chars().take(200).collect::<String>()))
            .await;
        let message = if post.is_some() {
            self.speak(situation, post).await
        } else {
            let _turn = self.inner.turn.lock().await;
            let previous = self.host().last_x.clone();
            let (reply, provider) = self.compose(&situation, previous.as_deref()).await;
            metrics::counter!("agent_lines_total", "provider" => provider, "trigger" => "interact")
                .increment(1);
            AgentMessage {
                text: reply,
                channel: Channel::X,
                in_reply_to: None,
                mood: self.host().mood.mood(),
                speech: None,
            }
        };
        self.remember(&subject, "answered", format!("you answered \"{}\"", message.text), (0, 0)).await;
        let user = Bidder {
            id: who.trim_start_matches('@').to_owned(),
            handle: Some(who.trim_start_matches('@').to_owned()),
        };
        self.event(
            EventType::AgentInteraction,
            &AgentInteraction { user, text: text.to_owned(), reply: message.text.clone() },
        )
        .await;
        message
    }

    /// Time passed: the mood's fade, last calls, idle banter.
    pub async fn tick(&self) {
        let now = self.now();
        let (change, mut due) = {
            let mut host = self.host();
            let change = host.mood.tick(now);
            let last_seconds = self.character().show.mood_rules.last_seconds as i64;
            let mut due = Vec::new();
            for track in host.lots.values_mut() {
                let Some(ends) = track.auction.ends_at else { continue };
                let left = (ends - now).num_seconds();
                if !track.last_called && left <= last_seconds && ends > now {
                    track.last_called = true;
                    due.push((Moment::LastCall, Some(track.clone())));
                }
            }
            if now - host.last_activity >= host.idle_after && due.is_empty() {
                host.last_activity = now;
                let secs = host.rng.random_range(IDLE_SECS);
                host.idle_after = chrono::Duration::seconds(secs);
                let lot = host.lots.values().min_by_key(|track| track.auction.ends_at).cloned();
                due.push((Moment::Idle, lot));
            }
            (change, due)
        };
        if let Some(change) = change {
            self.announce_mood(change).await;
        }
        for (moment, track) in due.drain(..) {
            if moment == Moment::LastCall {
                let has_bids = track.as_ref().is_some_and(|track| track.auction.high_bid.is_some());
                self.feel(Stimulus::LastSeconds { has_bids }).await;
            }
            let mut situation = self.situation(moment, track.as_ref());
            if moment == Moment::LastCall {
                situation.who = situation.lot.as_ref().and_then(|lot| lot.leader.clone());
            }
            self.speak(situation, None).await;
        }
    }

    /// The clock task: [`tick`](AgentHandle::tick) four times a second until stopped.
    pub async fn run_clock(self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut interval = tokio::time::interval(Duration::from_millis(250));
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                _ = interval.tick() => self.tick().await,
            }
        }
    }

    /// Lots open when the host started (it missed their opening), from storage.
    pub async fn catch_up(&self) -> anyhow::Result<()> {
        use crate::auction::rules::{Phase, millis};
        use crate::storage::AuctionFilter;
        let now = self.now();
        let records = self
            .inner
            .storage
            .auctions(&AuctionFilter {
                phases: vec![Phase::Scheduled, Phase::Open],
                campaign_id: None,
                limit: 100,
            })
            .await?;
        for record in records {
            let auction = record.core.view_at(millis(now));
            if auction.state == AuctionState::Open {
                let track = Track {
                    number: self.lot_number(&auction).await,
                    auction,
                    last_called: false,
                    opened_at: now,
                };
                self.host().lots.entry(track.auction.id).or_insert(track);
            }
        }
        Ok(())
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

/// The host as an event consumer (`agent`).
#[derive(Debug)]
pub struct AgentConsumer {
    agent: AgentHandle,
    patterns: Vec<TypePattern>,
}

impl AgentConsumer {
    pub fn new(agent: AgentHandle) -> AgentConsumer {
        let patterns = [
            "auction:start",
            "auction:bid:accepted",
            "auction:extended",
            "auction:end",
            "auction:cancelled",
            "social:post:received",
        ]
        .iter()
        .filter_map(|pattern| pattern.parse().ok())
        .collect();
        AgentConsumer { agent, patterns }
    }
}

#[async_trait]
impl Consumer for AgentConsumer {
    fn name(&self) -> &str {
        "agent"
    }

    fn patterns(&self) -> &[TypePattern] {
        &self.patterns
    }

    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        self.agent.on_event(event).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn questions_are_told_from_other_posts() {
        assert!(asks_something("@SothebAIs what is the reserve?"));
        assert!(asks_something("@SothebAIs how do I bid"));
        assert!(asks_something("Can I still bid"));
        assert!(!asks_something("@SothebAIs love this piece"));
        assert!(!asks_something("gm"));
    }
}
