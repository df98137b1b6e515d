//! Delivery of bus events to consumers: each registered [`Consumer`] is a consumer
//! group on the bus (Redis Streams or the in-process bus), reading the category
//! streams its type patterns need plus its own direct stream (dead-letter retries and
//! replays).
//!
//! For every entry the runner:
//! 1. validates the envelope ([`Envelope::parse_checked`]); an invalid one becomes a
//!    dead letter with the reason, never an error of the consumer;
//! 2. skips types the consumer's patterns do not match, and events the consumer has
//!    already handled (their ids are remembered by the Redis bus, or in the database
//!    beside the in-process bus, so a redelivery after a crash or a claim is not
//!    applied twice);
//! 3. hands the event to the consumer, retrying a failure with exponential backoff
//!    and jitter, and dead-letters it with the last error after the last try;
//! 4. remembers the handled ids, then acknowledges.
//!
//! An entry is acknowledged only once its outcome is stored (handled id or dead
//! letter). Anything else, a crash or a database outage, leaves it pending, and the
//! group claims it again after `claim_idle` (`XAUTOCLAIM`): at least once, applied
//! once.

use std::collections::HashSet;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use sothebais_shared::events::{Category, Envelope, EventType, TypePattern};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::bus::{
    BusError, Delivery, EventBus, GroupStart, HandledIds, SubscribeOptions, Subscription, direct_stream,
};
use crate::storage::{ConsumerRecord, DeadLetter, Storage};

/// How a failing delivery is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included; the event is dead-lettered after the last.
    pub tries: u32,
    /// The pause after the first failure.
    pub initial: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy { tries: 5, initial: Duration::from_millis(100), max: Duration::from_secs(30) }
    }
}

impl RetryPolicy {
    /// The pause after `failures` failed tries (1, 2, …): `initial · 2^(failures-1)`
    /// capped at `max`, of which the upper half is random (`random` in `[0, 1)`), so
    /// consumers that failed together do not retry together.
    pub fn pause(&self, failures: u32, random: f64) -> Duration {
        let doubled = self.initial.saturating_mul(1u32 << failures.saturating_sub(1).min(30));
        let ceiling = doubled.min(self.max);
        ceiling / 2 + ceiling.div_f64(2.0).mul_f64(random.clamp(0.0, 1.0))
    }
}

/// What the runner needs besides the consumer.
#[derive(Debug, Clone, Copy)]
pub struct DispatchSettings {
    pub retry: RetryPolicy,
    /// How long an entry may stay pending with a consumer before another member of
    /// its group claims it.
    pub claim_idle: Duration,
    /// Entries read at once.
    pub batch: usize,
}

impl DispatchSettings {
    pub fn from_config(config: &crate::Config) -> DispatchSettings {
        DispatchSettings { retry: config.event_retry, claim_idle: config.event_claim_idle, batch: 256 }
    }
}

/// Something that reacts to events. Deliveries are at least once; the runner
/// remembers handled ids, so `handle` sees an event again only after it failed.
#[async_trait]
pub trait Consumer: Send + Sync + fmt::Debug {
    /// The consumer's name: its group on the bus, and how dead letters and replays
    /// name it. Letters, digits, `-`, `_` and `.`.
    fn name(&self) -> &str;

    /// The types it wants (`auction:*`, `agent:mood`, `*`).
    fn patterns(&self) -> &[TypePattern];

    /// Applies one event; an error is retried, then dead-lettered with its text.
    async fn handle(&self, event: &Envelope) -> anyhow::Result<()>;

    /// Whether the runner remembers the ids this consumer handled, so a redelivered
    /// event is not handed over again. A consumer whose effect is idempotent by event
    /// id on its own (the event store inserts by id) says false and saves two
    /// database round trips per batch.
    fn remembers_handled(&self) -> bool {
        true
    }

    /// Applies a batch all or nothing, when the consumer can do that faster than one
    /// at a time (the event store writes a batch in one transaction). `None`: it
    /// cannot. After an error the runner hands the events over one at a time.
    async fn handle_all(&self, _events: &[Envelope]) -> Option<anyhow::Result<()>> {
        None
    }
}

/// Whether a consumer name is usable as a group and stream name.
pub fn valid_consumer_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|char| char.is_ascii_alphanumeric() || matches!(char, '-' | '_' | '.'))
}

/// The streams a consumer with `patterns` reads: the categories any of its types
/// belong to (all of them for `*`, so nothing published anywhere goes unseen), then
/// its direct stream.
pub fn streams_for(name: &str, patterns: &[TypePattern]) -> Vec<String> {
    let everything = patterns.iter().any(|pattern| pattern.as_str() == "*");
    let mut streams: Vec<String> = Category::ALL
        .iter()
        .filter(|category| {
            everything
                || EventType::ALL.iter().any(|kind| {
                    kind.category() == **category && patterns.iter().any(|pattern| pattern.matches(*kind))
                })
        })
        .map(|category| category.stream_name())
        .collect();
    streams.push(direct_stream(name));
    streams
}

/// Delivers to `consumer` until `shutdown`; an error when it cannot start at all.
pub async fn deliver(
    storage: Arc<dyn Storage>,
    bus: Arc<dyn EventBus>,
    consumer: Arc<dyn Consumer>,
    settings: DispatchSettings,
    shutdown: CancellationToken,
) -> anyhow::Result<()> {
    let handled = handled_ids(storage.clone(), bus.as_ref());
    Runner { storage, bus, handled, consumer, settings, shutdown }.run().await
}

/// Starts delivering to `consumer` until `shutdown`, on a task of its own.
pub fn spawn(
    storage: Arc<dyn Storage>,
    bus: Arc<dyn EventBus>,
    consumer: Arc<dyn Consumer>,
    settings: DispatchSettings,
    shutdown: CancellationToken,
) -> JoinHandle<anyhow::Result<()>> {
    tokio::spawn(deliver(storage, bus, consumer, settings, shutdown))
}

/// Where consumers' handled ids are kept: by the bus when it keeps them (Redis,
/// beside the streams), else in the database.
pub fn handled_ids(storage: Arc<dyn Storage>, bus: &dyn EventBus) -> Arc<dyn HandledIds> {
    bus.handled_ids().unwrap_or_else(|| Arc::new(StoredHandledIds(storage)))
}

/// Handled ids in the database (`consumer_handled`), for a bus that keeps none.
#[derive(Debug)]
struct StoredHandledIds(Arc<dyn Storage>);

#[async_trait]
impl HandledIds for StoredHandledIds {
    async fn among(&self, group: &str, ids: &[Uuid]) -> Result<Vec<Uuid>, BusError> {
        self.0.handled_among(group, ids).await.map_err(|error| BusError::Unavailable(error.to_string()))
    }

    async fn remember(&self, group: &str, ids: &[Uuid]) -> Result<(), BusError> {
        self.0.mark_handled(group, ids).await.map_err(|error| BusError::Unavailable(error.to_string()))
    }
}

struct Runner {
    storage: Arc<dyn Storage>,
    bus: Arc<dyn EventBus>,
    handled: Arc<dyn HandledIds>,
    consumer: Arc<dyn Consumer>,
    settings: DispatchSettings,
    shutdown: CancellationToken,
}

/// How one delivery ended.
enum Outcome {
    Handled,
    Failed {
        error: String,
        attempts: u32,
    },
    /// The process is stopping: leave the entry pending.
    Stopped,
}

impl Runner {
    fn name(&self) -> &str {
        self.consumer.name()
    }

    async fn run(self) -> anyhow::Result<()> {
        let name = self.name().to_owned();
        if !valid_consumer_name(&name) {
            anyhow::bail!("consumer {name:?} not started: names are letters, digits, '-', '_' and '.'");
        }
        let patterns: Vec<String> =
            self.consumer.patterns().iter().map(|pattern| pattern.as_str().to_owned()).collect();
        let streams = streams_for(&name, self.consumer.patterns());
        let instance = format!("{}-{}", std::process::id(), &Uuid::new_v4().simple().to_string()[..8]);
        let mut backoff = Duration::from_millis(100);
        loop {
            // Registered once its group exists: from then on nothing published is missed.
            let subscription = async {
                let options = SubscribeOptions {
                    group: name.clone(),
                    consumer: instance.clone(),
                    streams: streams.clone(),
                    start: GroupStart::Latest,
                };
                let subscription = self.bus.subscribe(options).await.map_err(|error| error.to_string())?;
                self.storage.register_consumer(&name, &patterns).await.map_err(|error| error.to_string())?;
                Ok::<_, String>(subscription)
            }
            .await;
            match subscription {
                Ok(subscription) => {
                    tracing::info!(consumer = %name, %instance, patterns = ?patterns, "consumer started");
                    backoff = Duration::from_millis(100);
                    if self.consume(subscription).await {
                        return Ok(());
                    }
                }
                Err(error) => tracing::warn!(consumer = %name, %error, "consumer cannot start; retrying"),
            }
            backoff = (backoff * 2).min(Duration::from_secs(5));
            tokio::select! {
                () = self.shutdown.cancelled() => return Ok(()),
                () = tokio::time::sleep(backoff) => {}
            }
        }
    }

    /// Reads and handles until shutdown (true) or a bus failure (false).
    async fn consume(&self, mut subscription: Box<dyn Subscription>) -> bool {
        let claim_every = (self.settings.claim_idle / 2).max(Duration::from_millis(50));
        let mut last_claim: Option<Instant> = None;
        loop {
            if self.shutdown.is_cancelled() {
                return true;
            }
            let claim_due = last_claim.is_none_or(|at| at.elapsed() >= claim_every);
            let batch = if claim_due {
                last_claim = Some(Instant::now());
                subscription.claim_stalled(self.settings.claim_idle, self.settings.batch).await
            } else {
                let block = claim_every.min(Duration::from_secs(1));
                tokio::select! {
                    () = self.shutdown.cancelled() => return true,
                    batch = subscription.read(self.settings.batch, block) => batch,
                }
            };
            match batch {
                Ok(deliveries) if deliveries.is_empty() => {}
                Ok(deliveries) => {
                    if claim_due {
                        tracing::info!(consumer = %self.name(), entries = deliveries.len(), "claimed stalled entries");
                        metrics::counter!("events_claimed_total", "consumer" => self.name().to_owned())
                            .increment(deliveries.len() as u64);
                    }
                    let done = self.process(deliveries).await;
                    if !done.is_empty()
                        && let Err(error) = subscription.ack_many(&done).await
                    {
                        // Redelivered after claim_idle; the handled ids keep it from
                        // being applied twice.
                        tracing::warn!(consumer = %self.name(), %error, "cannot acknowledge");
                        return false;
                    }
                }
                Err(error) => {
                    tracing::warn!(consumer = %self.name(), %error, "consumer lost the bus; subscribing again");
                    return false;
                }
            }
        }
    }

    /// Handles a batch; returns the entries whose outcome is stored, to acknowledge.
    async fn process(&self, deliveries: Vec<Delivery>) -> Vec<Delivery> {
        let name = self.name();
        let direct = direct_stream(name);
        let mut done = Vec::with_capacity(deliveries.len());
        let mut valid = Vec::with_capacity(deliveries.len());
        for delivery in deliveries {
            match Envelope::parse_checked(&delivery.payload) {
                Err(invalid) => {
                    metrics::counter!("events_invalid_total", "consumer" => name.to_owned(), "reason" => invalid.kind())
                        .increment(1);
                    let letter = DeadLetter::new(name, &delivery.payload, invalid.to_string(), 0);
                    tracing::warn!(consumer = %name, entry = %delivery.entry_id, error = %letter.error, "invalid event dead-lettered");
                    if self.dead_letter(letter).await {
                        done.push(delivery);
                    }
                }
                Ok(event)
                    if !self.consumer.patterns().iter().any(|pattern| pattern.matches(event.event_type)) =>
                {
                    done.push(delivery);
                }
                // Decisions come only from the engine's outbox: one from anywhere else
                // (a forged entry on the bus) is never applied.
                Ok(event) if event.is_forged_decision() => {
                    metrics::counter!("events_invalid_total", "consumer" => name.to_owned(), "reason" => "forged_decision")
                        .increment(1);
                    let why = format!(
                        "{} from {}: auction decisions come only from the auction engine",
                        event.event_type,
                        event.source.as_str()
                    );
                    let letter = DeadLetter::new(name, &delivery.payload, why, 0);
                    tracing::warn!(consumer = %name, entry = %delivery.entry_id, error = %letter.error, "decision event not from the engine dead-lettered");
                    if self.dead_letter(letter).await {
                        done.push(delivery);
                    }
                }
                Ok(event) => valid.push((delivery, event)),
            }
        }
        let remembers = self.consumer.remembers_handled();
        let ids: Vec<Uuid> = valid
            .iter()
            .filter(|(delivery, _)| remembers && delivery.stream != direct)
            .map(|(_, event)| event.id)
            .collect();
        let handled_before =
            if ids.is_empty() { Ok(Vec::new()) } else { self.handled.among(name, &ids).await };
        let mut seen: HashSet<Uuid> = match handled_before {
            Ok(handled) => handled.into_iter().collect(),
            Err(error) => {
                tracing::warn!(consumer = %name, %error, "cannot read handled ids; the batch stays pending");
                return done;
            }
        };
        // Deliveries and their events side by side, so a batch is handed over without copies.
        let mut deliveries = Vec::with_capacity(valid.len());
        let mut events = Vec::with_capacity(valid.len());
        for (delivery, event) in valid {
            if delivery.stream != direct && !seen.insert(event.id) {
                metrics::counter!("events_duplicates_total", "consumer" => name.to_owned()).increment(1);
                done.push(delivery);
            } else {
                deliveries.push(delivery);
                events.push(event);
            }
        }
        let mut handled = Vec::with_capacity(events.len());
        let mut handled_deliveries = Vec::with_capacity(events.len());
        // The whole batch at once when the consumer can; one at a time (with retries,
        // so a bad event is isolated) when it cannot or the batch failed.
        let batch_handled = !events.is_empty()
            && match self.consumer.handle_all(&events).await {
                Some(Ok(())) => true,
                Some(Err(error)) => {
                    tracing::info!(consumer = %name, events = events.len(), error = %format!("{error:#}"), "batch failed; handing its events over one at a time");
                    false
                }
                None => false,
            };
        // Metrics once per batch, not per event: a handle lookup builds its labels.
        let lag = metrics::histogram!("events_delivery_lag_seconds", "consumer" => name.to_owned());
        let mut delivered = Vec::with_capacity(events.len());
        for (delivery, event) in deliveries.into_iter().zip(events) {
            let outcome = if batch_handled { Outcome::Handled } else { self.deliver(&event).await };
            match outcome {
                Outcome::Handled => {
                    delivered.push(event.event_type);
                    if delivery.stream != direct {
                        let now = chrono::Utc::now().timestamp_millis();
                        lag.record((now - event.timestamp).max(0) as f64 / 1000.0);
                    }
                    handled.push(event.id);
                    handled_deliveries.push(delivery);
                }
                Outcome::Failed { error, attempts } => {
                    let letter = DeadLetter::new(name, &delivery.payload, error, attempts);
                    tracing::warn!(consumer = %name, event_id = %event.id, event_type = %event.event_type, attempts, error = %letter.error, "delivery failed on every try; dead-lettered");
                    if self.dead_letter(letter).await {
                        done.push(delivery);
                    }
                }
                Outcome::Stopped => break,
            }
        }
        for (kind, count) in super::tally(delivered) {
            metrics::counter!("events_delivered_total", "type" => kind.as_str(), "consumer" => name.to_owned())
                .increment(count);
        }
        let remembered = if remembers && !handled.is_empty() {
            self.handled.remember(name, &handled).await
        } else {
            Ok(())
        };
        match remembered {
            Ok(()) => done.extend(handled_deliveries),
            Err(error) => {
                tracing::warn!(consumer = %name, %error, "cannot remember handled ids; those entries stay pending")
            }
        }
        done
    }

    /// Stores a dead letter; false when it could not be stored (the entry then stays
    /// pending, to be tried again).
    async fn dead_letter(&self, letter: DeadLetter) -> bool {
        let kind = letter.event_type.clone().unwrap_or_else(|| "unknown".into());
        metrics::counter!("events_dead_lettered_total", "type" => kind, "consumer" => letter.consumer.clone())
            .increment(1);
        match self.storage.add_dead_letter(&letter).await {
            Ok(()) => true,
            Err(error) => {
                tracing::warn!(consumer = %letter.consumer, %error, "cannot store a dead letter; the entry stays pending");
                false
            }
        }
    }

    /// Hands one event to the consumer, retrying failures.
    async fn deliver(&self, event: &Envelope) -> Outcome {
        let name = self.name();
        let policy = self.settings.retry;
        let mut attempt = 1;
        loop {
            let error = match self.consumer.handle(event).await {
                Ok(()) => return Outcome::Handled,
                Err(error) => format!("{error:#}"),
            };
            if attempt >= policy.tries {
                return Outcome::Failed { error, attempts: attempt };
            }
            let pause = policy.pause(attempt, rand::random::<f64>());
            tracing::info!(consumer = %name, event_id = %event.id, attempt, %error, pause_ms = pause.as_millis() as u64, "delivery failed; retrying");
            metrics::counter!("events_retried_total", "type" => event.event_type.as_str(), "consumer" => name.to_owned())
                .increment(1);
            tokio::select! {
                () = self.shutdown.cancelled() => return Outcome::Stopped,
                () = tokio::time::sleep(pause) => {}
            }
            attempt += 1;
        }
    }
}

/// The event handler's own consumer: stores every valid event that arrives on the
/// bus and is not stored yet (events other programs publish straight to Redis), so
/// the history holds them too. Events that came through the outbox are already
/// stored and are skipped by id; auction events are not read at all (see `new`).
#[derive(Debug)]
pub struct EventStore {
    storage: Arc<dyn Storage>,
    patterns: Vec<TypePattern>,
}

impl EventStore {
    pub const NAME: &'static str = "event-store";

    /// Reads every category but `auction`: auction events record decisions and are
    /// stored with them by their producer (the outbox), so storing them again from the
    /// bus would only cost a second write per bid.
    pub fn new(storage: Arc<dyn Storage>) -> EventStore {
        EventStore { storage, patterns: EventStore::patterns_read() }
    }

    fn patterns_read() -> Vec<TypePattern> {
        Category::ALL
            .iter()
            .filter(|category| **category != Category::Auction)
            .filter_map(|category| format!("{}:*", category.as_str()).parse().ok())
            .collect()
    }
}

#[async_trait]
impl Consumer for EventStore {
    fn name(&self) -> &str {
        EventStore::NAME
    }

    fn patterns(&self) -> &[TypePattern] {
        &self.patterns
    }

    fn remembers_handled(&self) -> bool {
        false
    }

    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        self.storage.ingest_events(std::slice::from_ref(event)).await?;
        Ok(())
    }

    async fn handle_all(&self, events: &[Envelope]) -> Option<anyhow::Result<()>> {
        Some(self.storage.ingest_events(events).await.map(drop).map_err(anyhow::Error::from))
    }
}

/// A registered consumer's entries delivered and not yet acknowledged, per stream it
/// reads (streams the bus cannot answer for are left out).
pub async fn pending_by_stream(bus: &dyn EventBus, consumer: &ConsumerRecord) -> Vec<(String, u64)> {
    let patterns: Vec<TypePattern> =
        consumer.patterns.iter().filter_map(|pattern| pattern.parse().ok()).collect();
    let mut pending = Vec::new();
    for stream in streams_for(&consumer.name, &patterns) {
        if let Ok(count) = bus.pending(&stream, &consumer.name).await {
            pending.push((stream, count));
        }
    }
    pending
}

/// What `consumer` still has to do over all its streams (see [`EventBus::backlog`]).
pub async fn backlog(bus: &dyn EventBus, consumer: &ConsumerRecord) -> Result<u64, BusError> {
    let patterns: Vec<TypePattern> =
        consumer.patterns.iter().filter_map(|pattern| pattern.parse().ok()).collect();
    let mut total = 0;
    for stream in streams_for(&consumer.name, &patterns) {
        total += bus.backlog(&stream, &consumer.name).await?;
    }
    Ok(total)
}

/// Every few seconds, records stream lengths and pending counts per consumer as
/// gauges; every hour, forgets handled ids in the database older than
/// [`HANDLED_IDS_KEPT`](crate::bus::HANDLED_IDS_KEPT).
pub async fn upkeep(storage: Arc<dyn Storage>, bus: Arc<dyn EventBus>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut last_prune: Option<Instant> = None;
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        for category in Category::ALL {
            let stream = category.stream_name();
            if let Ok(length) = bus.stream_len(&stream).await {
                metrics::gauge!("events_stream_length", "stream" => stream).set(length as f64);
            }
        }
        if let Ok(consumers) = storage.consumers().await {
            for consumer in consumers {
                for (stream, pending) in pending_by_stream(bus.as_ref(), &consumer).await {
                    metrics::gauge!("events_pending", "consumer" => consumer.name.clone(), "stream" => stream)
                        .set(pending as f64);
                }
            }
        }
        if last_prune.is_none_or(|at| at.elapsed() >= Duration::from_secs(3600)) {
            last_prune = Some(Instant::now());
            let kept = chrono::TimeDelta::from_std(crate::bus::HANDLED_IDS_KEPT)
                .unwrap_or(chrono::TimeDelta::days(1));
            match storage.prune_handled(chrono::Utc::now() - kept).await {
                Ok(0) => {}
                Ok(pruned) => tracing::info!(pruned, "forgot old handled event ids"),
                Err(error) => tracing::warn!(%error, "cannot prune handled event ids"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pauses_double_from_the_initial_pause_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let ceilings: Vec<Duration> = (1..=12).map(|failures| policy.pause(failures, 1.0)).collect();
        assert_eq!(ceilings[0], Duration::from_millis(100));
        assert_eq!(ceilings[1], Duration::from_millis(200));
        assert_eq!(ceilings[4], Duration::from_millis(1600));
        assert_eq!(ceilings[11], Duration::from_secs(30), "capped");
        assert!(ceilings.windows(2).all(|pair| pair[0] <= pair[1]));
    }

    #[test]
    fn jitter_keeps_each_pause_within_the_upper_half() {
        let policy = RetryPolicy::default();
        for failures in 1..=10 {
            let low = policy.pause(failures, 0.0);
            let high = policy.pause(failures, 0.999);
            assert_eq!(low * 2, policy.pause(failures, 1.0), "the lowest pause is half the ceiling");
            assert!(low <= high && high <= policy.pause(failures, 1.0));
        }
        assert_eq!(policy.pause(u32::MAX, 1.0), Duration::from_secs(30), "no overflow");
    }

    #[test]
    fn a_consumer_reads_the_streams_of_its_patterns_and_its_own() {
        let patterns: Vec<TypePattern> =
            ["auction:*", "agent:mood"].iter().map(|text| text.parse().expect("pattern")).collect();
        assert_eq!(
            streams_for("renderer", &patterns),
            vec!["events:auction", "events:agent", "events:direct:renderer"]
        );
        let everything = streams_for("store", &[TypePattern::everything()]);
        assert_eq!(everything.len(), Category::ALL.len() + 1);
    }

    #[test]
    fn the_event_store_reads_every_category_but_auction() {
        let streams = streams_for(EventStore::NAME, &EventStore::patterns_read());
        assert!(!streams.contains(&"events:auction".to_owned()));
        for stream in ["events:stream", "events:agent", "events:user", "events:system", "events:chain"] {
            assert!(streams.contains(&stream.to_owned()), "{stream}");
        }
    }

    #[test]
    fn consumer_names_are_safe_stream_and_group_names() {
        assert!(valid_consumer_name("event-store"));
        assert!(valid_consumer_name("agent_v2.reactions"));
        assert!(!valid_consumer_name(""));
        assert!(!valid_consumer_name("a b"));
        assert!(!valid_consumer_name("x:y"));
    }
}
