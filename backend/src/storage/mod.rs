//! Durable storage behind one trait, with two implementations tested by the same
//! suite: SQLite (embedded mode) and PostgreSQL (production mode).

#[macro_use]
mod auction_sql;
#[macro_use]
mod delivery_sql;
#[macro_use]
mod social_sql;
#[macro_use]
mod agent_sql;
#[macro_use]
mod admin_sql;
#[macro_use]
mod chain_sql;
mod postgres;
mod sqlite;

use std::borrow::Cow;
use std::fmt;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use sothebais_shared::auction::{Bid, Campaign};
use sothebais_shared::events::{Envelope, EventType, RawEnvelope, Source, TypePattern};
use uuid::Uuid;

use crate::auction::rules::{AuctionCore, Phase};

pub use admin_sql::{Account, AuditEntry, BlockEntry, RuntimeSetting, SessionRow};
pub use agent_sql::{Memory, MemorySubject};
pub use chain_sql::{NonceRow, WalletLink};
pub use postgres::PostgresStorage;
pub use social_sql::{
    ACKNOWLEDGED, LotChange, PostState, SocialLot, SocialPost, SocialWrite, WriteKind, WriteState,
};
pub use sqlite::SqliteStorage;

use crate::config::Config;

/// Why storage failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StorageError {
    /// The database cannot be reached; the request may be retried later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// A stored row could not be read back.
    #[error("corrupt row: {0}")]
    Corrupt(String),
    #[error("database error: {0}")]
    Database(String),
    #[error("migration failed: {0}")]
    Migration(String),
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed
            | sqlx::Error::Tls(_)
            // A connection cut in the middle of a conversation.
            | sqlx::Error::Protocol(_) => StorageError::Unavailable(error.to_string()),
            // Connection exceptions (08xxx), the server shutting down or restarting
            // (57P01-57P03), a database not accepting connections (55000), too many
            // connections (53300), SQLite busy or locked past its timeout (5, 6).
            sqlx::Error::Database(database)
                if database.code().is_some_and(|code| {
                    code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "55000" | "53300" | "5" | "6")
                }) =>
            {
                StorageError::Unavailable(error.to_string())
            }
            _ => StorageError::Database(error.to_string()),
        }
    }
}

/// Which database is behind the trait.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageKind {
    Sqlite,
    Postgres,
}

/// An event as stored: its store sequence number and the envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Envelope,
}

/// An event the outbox relay published: its store sequence number and the envelope
/// as stored, `data` left as text (published without being parsed again).
#[derive(Debug, Clone)]
pub struct RelayedEvent {
    pub seq: i64,
    pub event: RawEnvelope,
}

/// A stored event's columns as read, `data` still text. Each backend reads its rows
/// into this; history and replay then parse `data`, the relay keeps it as text.
struct StoredRow {
    seq: i64,
    id: Uuid,
    timestamp: i64,
    event_type: String,
    source: String,
    version: String,
    correlation_id: Option<String>,
    causation_id: Option<Uuid>,
    data: String,
}

fn corrupt(what: &str, error: &dyn fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {error}"))
}

impl StoredRow {
    /// The event with `data` kept as the stored text (checked to be JSON).
    fn into_relayed(self) -> Result<RelayedEvent, StorageError> {
        Ok(RelayedEvent {
            seq: self.seq,
            event: RawEnvelope {
                id: self.id,
                timestamp: self.timestamp,
                event_type: self.event_type.parse().map_err(|error| corrupt("event_type", &error))?,
                source: self.source.parse().map_err(|error: String| corrupt("source", &error))?,
                version: self.version,
                correlation_id: self.correlation_id,
                causation_id: self.causation_id,
                data: serde_json::value::RawValue::from_string(self.data)
                    .map_err(|error| corrupt("data", &error))?,
            },
        })
    }

    /// The event with `data` read.
    fn into_stored(self) -> Result<StoredEvent, StorageError> {
        let RelayedEvent { seq, event } = self.into_relayed()?;
        Ok(StoredEvent { seq, event: event.parse().map_err(|error| corrupt("data", &error))? })
    }
}

/// An event's columns as they are written: `data` as JSON text, borrowed from an
/// event that holds it as text (the engine's) or written out from a parsed one.
pub(crate) struct EventRow<'a> {
    id: Uuid,
    event_type: EventType,
    source: Source,
    version: &'a str,
    timestamp: i64,
    correlation_id: Option<&'a str>,
    causation_id: Option<Uuid>,
    data: Cow<'a, str>,
}

impl<'a> From<&'a Envelope> for EventRow<'a> {
    fn from(event: &'a Envelope) -> Self {
        EventRow {
            id: event.id,
            event_type: event.event_type,
            source: event.source,
            version: &event.version,
            timestamp: event.timestamp,
            correlation_id: event.correlation_id.as_deref(),
            causation_id: event.causation_id,
            data: Cow::Owned(event.data.to_string()),
        }
    }
}

impl<'a> From<&'a RawEnvelope> for EventRow<'a> {
    fn from(event: &'a RawEnvelope) -> Self {
        EventRow {
            id: event.id,
            event_type: event.event_type,
            source: event.source,
            version: &event.version,
            timestamp: event.timestamp,
            correlation_id: event.correlation_id.as_deref(),
            causation_id: event.causation_id,
            data: Cow::Borrowed(event.data.get()),
        }
    }
}

/// A filter over the event store. History is returned newest first.
#[derive(Debug, Clone, Default)]
pub struct EventQuery {
    pub patterns: Vec<TypePattern>,
    pub before: Option<DateTime<Utc>>,
    pub after: Option<DateTime<Utc>>,
    pub after_seq: Option<i64>,
    pub correlation_id: Option<String>,
    pub limit: u32,
}

/// An auction as stored, with the version its next commit must expect.
#[derive(Debug, Clone, PartialEq)]
pub struct AuctionRecord {
    pub core: AuctionCore,
    pub version: i64,
}

/// One commit of an auction's writer: the new state, the bids it decided and the
/// events they caused, all or nothing, and only if nobody committed since
/// `expected_version` (the single-writer guarantee, also across processes).
#[derive(Debug, Clone, Copy)]
pub struct AuctionCommit<'a> {
    pub core: &'a AuctionCore,
    pub expected_version: i64,
    pub bids: &'a [Bid],
    pub events: &'a [RawEnvelope],
}

/// Whether a commit went in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommitOutcome {
    Committed,
    /// Another writer committed first, or a post / idempotency key was already stored:
    /// reload and decide again.
    Conflict,
}

/// Which auctions to list.
#[derive(Debug, Clone, Default)]
pub struct AuctionFilter {
    /// Empty: every phase.
    pub phases: Vec<Phase>,
    pub campaign_id: Option<Uuid>,
    pub limit: u32,
}

/// An event a consumer refused or failed on every try, kept for an operator to
/// inspect and retry.
#[derive(Debug, Clone, PartialEq, serde::Serialize, schemars::JsonSchema)]
pub struct DeadLetter {
    /// The dead letter's own id (`POST /api/events/dead-letters/{id}/retry`).
    pub id: Uuid,
    /// The consumer that gave up on it.
    pub consumer: String,
    /// The envelope as received: a JSON value, or a string when it was not JSON.
    pub event: serde_json::Value,
    /// Why: the validation error, or the consumer's last error.
    pub error: String,
    /// Deliveries tried (0 when the event was refused as invalid).
    pub attempts: u32,
    pub failed_at: DateTime<Utc>,
    /// The event's id and type, when the payload could be read that far.
    #[serde(skip)]
    pub event_id: Option<String>,
    #[serde(skip)]
    pub event_type: Option<String>,
    /// The payload exactly as received.
    #[serde(skip)]
    pub payload: String,
}

impl DeadLetter {
    /// A dead letter for `payload`, failed now.
    pub fn new(consumer: &str, payload: &str, error: String, attempts: u32) -> DeadLetter {
        let event: serde_json::Value =
            serde_json::from_str(payload).unwrap_or_else(|_| serde_json::Value::String(payload.to_owned()));
        let field = |name: &str| event.get(name).and_then(serde_json::Value::as_str).map(str::to_owned);
        DeadLetter {
            id: Uuid::now_v7(),
            consumer: consumer.to_owned(),
            event_id: field("id"),
            event_type: field("type"),
            event,
            error,
            attempts,
            failed_at: Utc::now(),
            payload: payload.to_owned(),
        }
    }
}

/// A consumer as registered: its name and the type patterns it reads.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
pub struct ConsumerRecord {
    pub name: String,
    pub patterns: Vec<String>,
    /// When a runner of it last started.
    pub seen_at: DateTime<Utc>,
}

/// Delivery bookkeeping, written once for both databases (see `delivery_sql.rs`).
#[async_trait]
pub trait DeliveryStorage: Send + Sync {
    /// Stores events received from the bus (published elsewhere, so not queued for
    /// publishing again); ids already stored are skipped. Returns how many were new.
    async fn ingest_events(&self, events: &[Envelope]) -> Result<u64, StorageError>;

    /// Records that a consumer runs and which patterns it reads.
    async fn register_consumer(&self, name: &str, patterns: &[String]) -> Result<(), StorageError>;

    async fn consumers(&self) -> Result<Vec<ConsumerRecord>, StorageError>;

    /// Which of `ids` the consumer has already handled.
    async fn handled_among(&self, consumer: &str, ids: &[Uuid]) -> Result<Vec<Uuid>, StorageError>;

    /// Remembers that the consumer handled these events (already remembered: no change).
    async fn mark_handled(&self, consumer: &str, ids: &[Uuid]) -> Result<(), StorageError>;

    /// Forgets handled ids older than `before`; returns how many.
    async fn prune_handled(&self, before: DateTime<Utc>) -> Result<u64, StorageError>;

    async fn add_dead_letter(&self, letter: &DeadLetter) -> Result<(), StorageError>;

    /// Dead letters, newest first, of one consumer or all.
    async fn dead_letters(&self, consumer: Option<&str>, limit: u32)
    -> Result<Vec<DeadLetter>, StorageError>;

    /// How many dead letters each consumer has (consumers with none are left out).
    async fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StorageError>;

    /// The dead letters whose own id or event id is `key`.
    async fn dead_letters_matching(&self, key: &str) -> Result<Vec<DeadLetter>, StorageError>;

    /// Removes dead letters (after they were handed back for delivery).
    async fn remove_dead_letters(&self, ids: &[Uuid]) -> Result<(), StorageError>;
}

/// The backend's durable state.
/// The social role's tables: posts read from X (each once), writes stored before
/// they are sent, announced lots, and the reader's cursors.
#[async_trait]
pub trait SocialStorage: Send + Sync {
    /// Stores a post; false when its id was stored before (it is not handled again).
    async fn insert_post(&self, post: &SocialPost) -> Result<bool, StorageError>;
    async fn social_post(&self, post_id: &str) -> Result<Option<SocialPost>, StorageError>;
    /// Posts stored but not decided yet, oldest first.
    async fn undecided_posts(&self, limit: u32) -> Result<Vec<SocialPost>, StorageError>;
    async fn finish_post(
        &self,
        post_id: &str,
        state: PostState,
        auction_id: Option<Uuid>,
        outcome: Option<&str>,
    ) -> Result<(), StorageError>;
    /// Posts by state.
    async fn post_counts(&self) -> Result<Vec<(String, u64)>, StorageError>;
    /// Stores a write; false when its key was stored before.
    async fn queue_write(&self, write: &SocialWrite) -> Result<bool, StorageError>;
    /// Writes, by priority then age, optionally of one state and one lot.
    async fn social_writes(
        &self,
        state: Option<WriteState>,
        auction_id: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SocialWrite>, StorageError>;
    /// Replies a standings post still owes an acknowledgement: refused by X's reply
    /// rule or batched for the budget, and not yet acknowledged; oldest first.
    async fn owed_writes(&self, limit: u32) -> Result<Vec<SocialWrite>, StorageError>;
    /// The keys of sent writes whose text is exactly `text` (at most 10).
    async fn sent_keys_with_text(&self, text: &str) -> Result<Vec<String>, StorageError>;
    /// Stores a write's state, text, post id, attempts, error and sending time.
    async fn finish_write(&self, write: &SocialWrite) -> Result<(), StorageError>;
    /// Writes by kind and state.
    async fn write_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError>;
    /// Stores a lot when it opens; for a lot already stored, only its number, title
    /// and open flag change (the rest through `update_lot`).
    async fn save_lot(&self, lot: &SocialLot) -> Result<(), StorageError>;
    async fn update_lot(&self, auction_id: Uuid, change: &LotChange) -> Result<(), StorageError>;
    async fn social_lots(&self, open_only: bool) -> Result<Vec<SocialLot>, StorageError>;
    async fn social_lot(&self, auction_id: Uuid) -> Result<Option<SocialLot>, StorageError>;
    async fn social_value(&self, key: &str) -> Result<Option<String>, StorageError>;
    async fn set_social_value(&self, key: &str, value: &str) -> Result<(), StorageError>;
}

/// The agent's tables: what the host remembers by subject, bounded by folding old
/// entries into a summary, and its own state.
#[async_trait]
pub trait AgentStorage: Send + Sync {
    /// Stores an entry and adds `bids` and `wins` to its subject's tallies.
    async fn remember(&self, memory: &Memory, bids: u64, wins: u64) -> Result<(), StorageError>;
    async fn memory_subject(&self, subject: &str) -> Result<Option<MemorySubject>, StorageError>;
    /// A subject's entries, newest first.
    async fn memories(&self, subject: &str, limit: u32) -> Result<Vec<Memory>, StorageError>;
    async fn memory_count(&self, subject: &str) -> Result<u64, StorageError>;
    /// Drops entries folded into the subject's new summary.
    async fn fold_memories(&self, subject: &str, ids: &[String], summary: &str) -> Result<(), StorageError>;
    /// Subjects and entries in all.
    async fn memory_totals(&self) -> Result<(u64, u64), StorageError>;
    async fn agent_value(&self, key: &str) -> Result<Option<String>, StorageError>;
    async fn set_agent_value(&self, key: &str, value: &str) -> Result<(), StorageError>;
}

/// The console's tables: accounts, sessions, the audit trail, the block list and
/// settings changed while running; and event pruning.
#[async_trait]
pub trait AdminStorage: Send + Sync {
    /// Adds an account; `false` when the name is taken.
    async fn add_account(&self, account: &Account) -> Result<bool, StorageError>;
    async fn account(&self, username: &str) -> Result<Option<Account>, StorageError>;
    async fn accounts(&self) -> Result<Vec<Account>, StorageError>;
    /// Removes an account and revokes its sessions; `false` when there was none.
    async fn remove_account(&self, username: &str, at: DateTime<Utc>) -> Result<bool, StorageError>;
    async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StorageError>;
    async fn add_session(&self, session: &SessionRow) -> Result<(), StorageError>;
    async fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StorageError>;
    async fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StorageError>;
    /// Ends one session; `false` when it had ended already.
    async fn revoke_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<bool, StorageError>;
    /// Ends every session of an account but `except` (an `id_hash`); how many were live.
    async fn revoke_sessions_of(
        &self,
        username: &str,
        except: Option<&str>,
        at: DateTime<Utc>,
    ) -> Result<u64, StorageError>;
    async fn add_audit(&self, entry: &AuditEntry) -> Result<(), StorageError>;
    /// The audit trail, newest first, before `before` when given.
    async fn audit(&self, before: Option<DateTime<Utc>>, limit: u32)
    -> Result<Vec<AuditEntry>, StorageError>;
    /// Adds a bidder to the block list; `false` when it was there.
    async fn block_bidder(&self, entry: &BlockEntry) -> Result<bool, StorageError>;
    async fn unblock_bidder(&self, entry: &str) -> Result<bool, StorageError>;
    async fn blocked_bidders(&self) -> Result<Vec<BlockEntry>, StorageError>;
    async fn set_runtime_setting(&self, setting: &RuntimeSetting) -> Result<(), StorageError>;
    async fn runtime_settings(&self) -> Result<Vec<RuntimeSetting>, StorageError>;
    /// Deletes stored events older than `before` that the outbox no longer holds.
    async fn prune_events(&self, before: DateTime<Utc>) -> Result<u64, StorageError>;
}

/// The chain's tables: wallet-link nonces and links (docs/chain.md).
#[async_trait]
pub trait ChainStorage: Send + Sync {
    async fn add_nonce(&self, nonce: &NonceRow) -> Result<(), StorageError>;
    async fn nonce(&self, nonce: &str) -> Result<Option<NonceRow>, StorageError>;
    /// Uses the link's nonce (unused and issued at or after `before`) and stores the
    /// link in one transaction; `false`, storing nothing, when the nonce was used or
    /// stale meanwhile.
    async fn link_wallet(&self, link: &WalletLink, before: DateTime<Utc>) -> Result<bool, StorageError>;
    /// A handle's link, revoked or not.
    async fn wallet_link(&self, handle: &str) -> Result<Option<WalletLink>, StorageError>;
    /// `false` when the handle had no live link.
    async fn revoke_wallet_link(&self, handle: &str, at: DateTime<Utc>) -> Result<bool, StorageError>;
    async fn prune_nonces(&self, before: DateTime<Utc>) -> Result<u64, StorageError>;
}

#[async_trait]
pub trait Storage:
    SharedStorage + DeliveryStorage + SocialStorage + AgentStorage + AdminStorage + ChainStorage + fmt::Debug
{
    fn kind(&self) -> StorageKind;

    /// Succeeds when the database answers.
    async fn ping(&self) -> Result<(), StorageError>;

    /// Stores an event. Storing an id that is already stored changes nothing and
    /// returns the existing row, so at-least-once producers stay exactly-once here.
    async fn append_event(&self, event: &Envelope) -> Result<StoredEvent, StorageError>;

    /// Events matching `query`: newest first, or oldest first after `after_seq`
    /// (the order a replay needs).
    async fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StorageError>;

    /// One stored event by id.
    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>, StorageError>;

    /// Writes a consistent copy of the database to `file` while it stays in use
    /// (SQLite's `VACUUM INTO`); `false` where backups are the database server's own
    /// (PostgreSQL: `pg_dump`).
    async fn backup(&self, file: &Path) -> Result<bool, StorageError>;
}

/// Auctions, bids, campaigns and the outbox, written once for both databases (see
/// `auction_sql.rs`) but for the group commit. Every [`Storage`] has them.
#[async_trait]
pub trait SharedStorage: Send + Sync {
    /// Publishes up to `limit` events of the outbox with a store sequence number above
    /// `after` on `bus`, oldest first, and takes them off the outbox, in one
    /// transaction: a crash or a bus failure leaves them queued (published again
    /// later: at least once). Returns the events that went out, or the bus's error.
    async fn relay_outbox(
        &self,
        after: i64,
        limit: u32,
        bus: &dyn crate::bus::EventBus,
    ) -> Result<Result<Vec<RelayedEvent>, crate::bus::BusError>, StorageError>;

    /// How many stored events wait in the outbox, those a relay is publishing now
    /// included (their rows go only when that relay commits).
    async fn outbox_len(&self) -> Result<u64, StorageError>;

    /// Stores a new auction with its events.
    async fn insert_auction(&self, core: &AuctionCore, events: &[Envelope]) -> Result<(), StorageError>;

    /// Stores a campaign, its auctions and their events in one transaction.
    async fn insert_campaign(
        &self,
        campaign: &Campaign,
        auctions: &[AuctionCore],
        events: &[Envelope],
    ) -> Result<(), StorageError>;

    async fn auction(&self, id: Uuid) -> Result<Option<AuctionRecord>, StorageError>;

    async fn auctions(&self, filter: &AuctionFilter) -> Result<Vec<AuctionRecord>, StorageError>;

    /// Commits several auction writers' batches, as one transaction when it can
    /// (group commit across auctions); each is applied only if its version still
    /// matches. One result per commit, in order: when a post id or idempotency key
    /// collides, each commit goes again on its own, and some may then be stored while
    /// others fail. At most one commit per auction. See [`AuctionCommit`].
    async fn commit_auctions(
        &self,
        commits: &[AuctionCommit<'_>],
    ) -> Vec<Result<CommitOutcome, StorageError>>;

    /// An auction's bid log in sequence order, after `after_seq`.
    async fn bids(&self, auction_id: Uuid, after_seq: u64, limit: u32) -> Result<Vec<Bid>, StorageError>;

    /// `(bidder id, arrival)` of an auction's accepted bids that arrived at or after `since`.
    async fn recent_accepted(
        &self,
        auction_id: Uuid,
        since: DateTime<Utc>,
    ) -> Result<Vec<(String, DateTime<Utc>)>, StorageError>;

    /// Bids of an auction carrying any of these post ids or idempotency keys.
    async fn bids_by_source_ref(&self, auction_id: Uuid, refs: &[String]) -> Result<Vec<Bid>, StorageError>;

    /// Auctions whose next deadline (opening or closing) is at or before `before`.
    async fn due_auctions(&self, before: DateTime<Utc>) -> Result<Vec<(Uuid, DateTime<Utc>)>, StorageError>;

    async fn campaign(&self, id: Uuid) -> Result<Option<Campaign>, StorageError>;

    async fn campaigns(&self) -> Result<Vec<Campaign>, StorageError>;
}

/// Opens the storage the configuration names: PostgreSQL for `postgres://`, else
/// SQLite (`sqlite://` or the data dir's `sothebais.db`), with migrations applied.
pub async fn connect(config: &Config) -> Result<Arc<dyn Storage>, StorageError> {
    match config.database_url.as_ref().map(|url| url.expose_secret().to_owned()) {
        Some(url) if url.starts_with("postgres") => Ok(Arc::new(PostgresStorage::connect(&url).await?)),
        Some(url) => Ok(Arc::new(SqliteStorage::open_url(&url).await?)),
        None => Ok(Arc::new(SqliteStorage::open(&config.data_dir.join("sothebais.db")).await?)),
    }
}

/// SQL `LIKE` patterns equivalent to type patterns (`auction:*` -> `auction:%`);
/// `None` when a pattern matches everything.
fn like_patterns(patterns: &[TypePattern]) -> Option<Vec<String>> {
    if patterns.is_empty() || patterns.iter().any(|pattern| pattern.as_str() == "*") {
        return None;
    }
    Some(
        patterns
            .iter()
            .map(|pattern| match pattern.as_str().strip_suffix('*') {
                Some(prefix) => format!("{prefix}%"),
                None => pattern.as_str().to_owned(),
            })
            .collect(),
    )
}

fn ensure_parent(path: &Path) -> Result<(), StorageError> {
    if let Some(parent) = path.parent().filter(|parent| !parent.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|error| {
            StorageError::Unavailable(format!("cannot create {}: {error}", parent.display()))
        })?;
    }
    Ok(())
}
