//! The event bus behind one trait: an in-process bus (embedded mode) and Redis
//! Streams with consumer groups (production mode), with the same semantics:
//!
//! - one stream per event category (`events:auction`, …), capped in length: the
//!   durable copy of every event is the database, the bus only carries them;
//! - consumer groups: each entry goes to one consumer of each group, stays pending
//!   until acknowledged, and can be claimed by another consumer of the group once it
//!   has been pending longer than a given idle time (a consumer that died);
//! - so delivery is at least once, and consumers must be idempotent: the Redis bus
//!   also remembers which events each group has handled ([`HandledIds`]), beside
//!   the streams whose redeliveries they guard.

mod memory;
mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::ExposeSecret;
use sothebais_shared::events::{Category, Envelope, RawEnvelope};
use uuid::Uuid;

pub use self::memory::MemoryBus;
pub use self::redis::RedisBus;
use crate::config::Config;

/// How many entries a stream keeps (approximately, for Redis).
pub const DEFAULT_STREAM_MAX_LEN: usize = 100_000;

/// Why the bus failed.
#[derive(Debug, thiserror::Error)]
pub enum BusError {
    /// The broker cannot be reached; retry later.
    #[error("event bus unavailable: {0}")]
    Unavailable(String),
    #[error("event bus error: {0}")]
    Other(String),
}

/// Where a new consumer group starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupStart {
    /// Only entries added after the group was created.
    Latest,
    /// Every entry the stream still holds.
    Beginning,
}

/// One entry handed to a consumer; it stays pending until acknowledged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    pub stream: String,
    /// The entry id within its stream (`<millis>-<n>` on Redis).
    pub entry_id: String,
    /// The JSON envelope as published; may be invalid if someone wrote garbage.
    pub payload: String,
}

impl Delivery {
    /// The envelope carried by the entry.
    pub fn envelope(&self) -> Result<Envelope, serde_json::Error> {
        serde_json::from_str(&self.payload)
    }
}

/// Which group and consumer a subscription reads as.
#[derive(Debug, Clone)]
pub struct SubscribeOptions {
    pub group: String,
    pub consumer: String,
    pub streams: Vec<String>,
    pub start: GroupStart,
}

impl SubscribeOptions {
    /// A subscription to the streams of `categories`.
    pub fn new(group: &str, consumer: &str, categories: &[Category], start: GroupStart) -> SubscribeOptions {
        SubscribeOptions {
            group: group.to_owned(),
            consumer: consumer.to_owned(),
            streams: categories.iter().map(|category| category.stream_name()).collect(),
            start,
        }
    }
}

/// The bus.
#[async_trait]
pub trait EventBus: Send + Sync + fmt::Debug {
    /// `memory` or `redis`.
    fn kind(&self) -> &'static str;

    /// Succeeds when the broker answers.
    async fn ping(&self) -> Result<(), BusError>;

    /// Appends the event to its category's stream; returns the entry id.
    async fn publish(&self, event: &Envelope) -> Result<String, BusError> {
        let payload = serde_json::to_string(event).map_err(|error| BusError::Other(error.to_string()))?;
        self.publish_raw(&event.stream(), &payload).await
    }

    /// Appends a payload as it is to a stream: how events from other programs arrive,
    /// and how events are handed to one consumer's [`direct_stream`].
    async fn publish_raw(&self, stream: &str, payload: &str) -> Result<String, BusError>;

    /// Appends each `(stream, payload)` in order; Redis sends them in one round trip.
    /// On an error some may have been appended: a caller that publishes them again
    /// relies on consumers being idempotent.
    async fn publish_raw_many(&self, entries: &[(String, String)]) -> Result<(), BusError> {
        for (stream, payload) in entries {
            self.publish_raw(stream, payload).await?;
        }
        Ok(())
    }

    /// Joins (creating if needed) a consumer group on the given streams.
    async fn subscribe(&self, options: SubscribeOptions) -> Result<Box<dyn Subscription>, BusError>;

    /// The number of entries a stream holds.
    async fn stream_len(&self, stream: &str) -> Result<u64, BusError>;

    /// The number of a group's entries delivered and not yet acknowledged (0 when
    /// the group does not exist).
    async fn pending(&self, stream: &str, group: &str) -> Result<u64, BusError>;

    /// What `group` still has to do on `stream`: entries not yet delivered to it
    /// plus entries delivered and not acknowledged. Zero when it has caught up (or
    /// the group does not exist).
    async fn backlog(&self, stream: &str, group: &str) -> Result<u64, BusError>;

    /// Follows streams from now on without a consumer group: every tail sees every
    /// new entry, nothing is pending, nothing needs acknowledging (fan-out to
    /// WebSocket clients).
    async fn tail(&self, streams: Vec<String>) -> Result<Box<dyn Tail>, BusError>;

    /// Where consumer groups' handled event ids are kept, when the bus keeps them
    /// itself; `None`: the caller keeps them (in the database).
    fn handled_ids(&self) -> Option<Arc<dyn HandledIds>>;
}

/// Remembers the ids of the events each consumer group has handled, so an event
/// delivered again (an entry claimed after a crash, an event published twice) is
/// not applied twice. Ids are remembered for at least [`HANDLED_IDS_KEPT`].
#[async_trait]
pub trait HandledIds: Send + Sync + fmt::Debug {
    /// Those of `ids` that `group` has handled.
    async fn among(&self, group: &str, ids: &[Uuid]) -> Result<Vec<Uuid>, BusError>;

    /// Records `ids` as handled by `group`.
    async fn remember(&self, group: &str, ids: &[Uuid]) -> Result<(), BusError>;
}

/// How long handled ids are remembered at least: far longer than a redelivery takes
/// to arrive (a stalled entry is claimed within `EVENT_CLAIM_IDLE_MS`; an event the
/// outbox publishes again after a crash comes when its process is back).
pub const HANDLED_IDS_KEPT: Duration = Duration::from_secs(24 * 3600);

/// A reader of new entries; see [`EventBus::tail`].
#[async_trait]
pub trait Tail: Send + fmt::Debug {
    /// Entries added since the last call, waiting up to `block` when there are none.
    async fn next(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>, BusError>;
}

/// A consumer in a group. Dropping it without acknowledging leaves its entries
/// pending, to be claimed by another consumer of the group.
#[async_trait]
pub trait Subscription: Send + fmt::Debug {
    /// New entries for this consumer, waiting up to `block` when there are none.
    async fn read(&mut self, max: usize, block: Duration) -> Result<Vec<Delivery>, BusError>;

    /// Takes over entries of the group pending longer than `min_idle` (their consumer
    /// is presumed dead).
    async fn claim_stalled(&mut self, min_idle: Duration, max: usize) -> Result<Vec<Delivery>, BusError>;

    /// Marks an entry as handled by the group.
    async fn ack(&mut self, delivery: &Delivery) -> Result<(), BusError>;

    /// Marks entries as handled by the group.
    async fn ack_many(&mut self, deliveries: &[Delivery]) -> Result<(), BusError> {
        for delivery in deliveries {
            self.ack(delivery).await?;
        }
        Ok(())
    }
}

/// Publishes events read back from the store, `data` as stored, in order, in one
/// [`EventBus::publish_raw_many`].
pub async fn publish_stored<'a>(
    bus: &dyn EventBus,
    events: impl IntoIterator<Item = &'a RawEnvelope>,
) -> Result<(), BusError> {
    let entries = events
        .into_iter()
        .map(|event| Ok((event.stream(), serde_json::to_string(event)?)))
        .collect::<Result<Vec<_>, serde_json::Error>>()
        .map_err(|error| BusError::Other(error.to_string()))?;
    bus.publish_raw_many(&entries).await
}

/// The stream that carries events handed to one consumer alone (dead-letter retries
/// and replays); the consumer's group reads it beside the category streams.
pub fn direct_stream(consumer: &str) -> String {
    format!("events:direct:{consumer}")
}

/// Opens the bus the configuration names: Redis for `REDIS_URL`, else in-process.
pub async fn connect(config: &Config) -> Result<Arc<dyn EventBus>, BusError> {
    match &config.redis_url {
        Some(url) => Ok(Arc::new(
            RedisBus::connect(url.expose_secret(), &config.redis_key_prefix, DEFAULT_STREAM_MAX_LEN).await?,
        )),
        None => Ok(Arc::new(MemoryBus::new(DEFAULT_STREAM_MAX_LEN))),
    }
}
