//! The social role's three tasks:
//!
//! - the **reader** polls X (mentions, then the conversations of open lots), stores
//!   each post once (its id is the key), decides bids through the engine (the post's
//!   `created_at` as bid time, `source: "x"`, `source_ref` = post id) and stores the
//!   reply to send, all before moving its cursor;
//! - the **lot follower** (an event consumer of `auction:*`) queues a lot's
//!   announcement when it opens, outbid notices, and the result when it closes;
//! - the **sender** posts what is stored, by priority, within the reply budget and the
//!   spend limit; a refused reply (X's reply rule) and rejections batched for budget
//!   are acknowledged in the lot's thread by a standings post (at most one per 20 s
//!   while the lot is open; those still owed when it closes, at once after).
//!
//! Every write is stored before it is sent, keyed by what it answers, so a crash and
//! restart never posts twice (X's duplicate refusal counts as sent).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::Serialize;
use sothebais_kit::clock::SharedClock;
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{Auction, AuctionState, BidSource, BidStatus, Bidder, RejectReason};
use sothebais_shared::events::{
    AgentMessage, AuctionCancelled, AuctionSnapshot, BidEvent, Channel, Envelope, EventType, SocialAnnounced,
    SocialPostReceived, SocialRateLimited, SocialReply, Source, TypePattern,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::client::{Endpoint, Posted, XClient, XError};
use super::parse::{self, Parsed, Reading};
use super::words::{self, LotName, Refusal, Standings, Templates, Wording};
use super::xapi::{self, Tweet, User};
use crate::auction::engine::{Engine, EngineError};
use crate::auction::rules::{BidInput, BidderStanding, Offer, Phase, millis};
use crate::config::Config;
use crate::events::dispatch::Consumer;
use crate::storage::{
    ACKNOWLEDGED, AuctionFilter, LotChange, PostState, SocialLot, SocialPost, SocialWrite, Storage,
    WriteKind, WriteState,
};

/// The least time between two standings posts of one lot.
const STANDINGS_EVERY: chrono::Duration = chrono::Duration::seconds(20);
/// An outbid notice goes to a bidder at most once per lot per this long.
const OUTBID_EVERY_SECS: i64 = 60;
/// Reads look this far back behind their cursor: X gives a post its id (its time)
/// when it is written, but may deliver it seconds later, after newer ones; a cursor
/// that jumped past it would never see it. Posts are stored once, and X bills a
/// repeat read of a post on the same day once, so the overlap costs no money; it is
/// read only as far as the page that reaches the cursor (see `reached`), so it costs
/// at most one page of requests per read.
const LOOKBACK: chrono::Duration = chrono::Duration::seconds(30);

/// `since_id` for a read: the cursor, or the id of `LOOKBACK` ago if that is older.
fn read_since(cursor: Option<&str>) -> Option<String> {
    let cursor = cursor?;
    let floor = xapi::snowflake(Utc::now() - LOOKBACK, 0);
    Some(if xapi::id_number(cursor) < xapi::id_number(&floor) { cursor.to_owned() } else { floor })
}

/// Whether a page (newest first) has reached back to the cursor: the rest of the
/// look-back is read only as far as this one page, so the overlap costs at most a
/// page per read, whatever the rate of posts.
fn reached(page: &xapi::TweetPage, cursor: Option<&str>) -> bool {
    let Some(cursor) = cursor.map(xapi::id_number) else { return false };
    page.data.iter().any(|tweet| xapi::id_number(&tweet.id) <= cursor)
}

/// X's reply window.
const BUDGET_WINDOW: chrono::Duration = chrono::Duration::minutes(15);

/// What `GET /api/social/status` shows, kept up to date by the tasks.
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusView {
    pub configured: bool,
    pub connected: bool,
    pub handle: Option<String>,
    pub since_id: Option<String>,
    pub last_poll_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub poll_interval_ms: u64,
    pub dry_run: bool,
    pub by_lot: BTreeMap<Uuid, f64>,
}

/// The social role's shared parts: the client, the wording and the status.
#[derive(Debug, Clone)]
pub struct SocialHandle {
    pub client: XClient,
    pub wording: Arc<dyn Wording>,
    status: Arc<Mutex<StatusView>>,
    /// Woken when a write is stored, so the sender sends it at once.
    pub writes: Arc<Notify>,
    poll_interval: Duration,
}

impl SocialHandle {
    pub fn new(config: &Config, http: reqwest::Client) -> SocialHandle {
        let status = StatusView {
            configured: config.x.configured(),
            poll_interval_ms: config.x.poll_interval.as_millis() as u64,
            dry_run: config.x.dry_run,
            handle: config.x.handle.clone(),
            ..StatusView::default()
        };
        SocialHandle {
            client: XClient::new(&config.x, &config.data_dir, http),
            wording: Arc::new(Templates),
            status: Arc::new(Mutex::new(status)),
            writes: Arc::new(Notify::new()),
            poll_interval: config.x.poll_interval,
        }
    }

    fn status(&self) -> std::sync::MutexGuard<'_, StatusView> {
        self.status.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub fn view(&self) -> StatusView {
        self.status().clone()
    }

    fn add_lot_spend(&self, auction_id: Uuid, usd: f64) {
        if usd > 0.0 {
            *self.status().by_lot.entry(auction_id).or_default() += usd;
        }
    }

    /// The `x_api` health check: the last poll reached X with valid credentials,
    /// recently enough.
    pub fn health(&self) -> Result<(), String> {
        if let Some(reason) = self.client.unauthorized() {
            return Err(format!("X refused the credentials: {reason}"));
        }
        let status = self.status();
        let stale = chrono::Duration::from_std(self.poll_interval * 5).unwrap_or_default()
            + chrono::Duration::seconds(30);
        match (status.last_poll_at, &status.last_error) {
            (_, Some(error)) => Err(error.clone()),
            (Some(at), None) if Utc::now() - at <= stale => Ok(()),
            (Some(at), None) => Err(format!("no successful poll since {at}")),
            (None, None) => Err("not connected yet".into()),
        }
    }
}

/// The show's account on X.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: String,
    pub handle: String,
}

/// The social role's working parts.
#[derive(Clone)]
pub struct Social {
    pub storage: Arc<dyn Storage>,
    pub engine: Engine,
    pub clock: SharedClock,
    pub outbox: Arc<Notify>,
    pub config: Arc<Config>,
    /// The reply budget, spend limit, poll interval and block list in force.
    pub runtime: Arc<crate::runtime::Runtime>,
    pub handle: SocialHandle,
}

impl std::fmt::Debug for Social {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Social").finish_non_exhaustive()
    }
}

mod follower;
mod reader;
mod sender;

pub use follower::LotFollower;

impl Social {
    pub(super) fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    pub(super) async fn event<T: Serialize>(&self, event_type: EventType, data: &T) {
        match Envelope::new(event_type, Source::Social, data) {
            Ok(event) => match self.storage.append_event(&event).await {
                Ok(_) => self.outbox.notify_one(),
                Err(error) => tracing::warn!(%error, %event_type, "social event not stored"),
            },
            Err(error) => tracing::warn!(%error, %event_type, "social event not built"),
        }
    }

    /// The show's account: configured, remembered, or asked of X once.
    pub async fn account(&self) -> Result<Account, XError> {
        if let (Some(id), Some(handle)) = (&self.config.x.user_id, &self.config.x.handle) {
            return Ok(Account { id: id.clone(), handle: handle.clone() });
        }
        if let Ok(Some(known)) = self.storage.social_value("account").await
            && let Some((id, handle)) = known.split_once(':')
        {
            return Ok(Account { id: id.to_owned(), handle: handle.to_owned() });
        }
        let me = self.handle.client.me().await?;
        let _ = self.storage.set_social_value("account", &format!("{}:{}", me.id, me.username)).await;
        tracing::info!(id = %me.id, handle = %me.username, "X account identified");
        Ok(Account { id: me.id, handle: me.username })
    }

    pub(super) async fn rate_limited(&self, error: &XError) {
        if let XError::RateLimited { endpoint, reset_at } = error {
            self.event(
                EventType::SocialRateLimited,
                &SocialRateLimited { endpoint: (*endpoint).to_owned(), reset_at: *reset_at },
            )
            .await;
        }
    }

    pub(super) async fn queue(&self, write: SocialWrite) {
        match self.storage.queue_write(&write).await {
            Ok(true) => self.handle.writes.notify_one(),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, key = %write.key, "write not stored"),
        }
    }

    pub(super) fn write(
        &self,
        key: String,
        kind: WriteKind,
        priority: i64,
        auction_id: impl Into<Option<Uuid>>,
        in_reply_to: Option<String>,
        text: String,
    ) -> SocialWrite {
        SocialWrite {
            key,
            kind,
            priority,
            auction_id: auction_id.into(),
            in_reply_to,
            text: words::fit(text),
            state: WriteState::Pending,
            post_id: None,
            attempts: 0,
            error: None,
            created_at: self.now(),
            sent_at: None,
        }
    }
}

/// The post a reply to `post` answers: the version read (stored with the post), or
/// the first version.
fn reply_target(post: &SocialPost) -> String {
    post.outcome
        .as_deref()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(text).ok())
        .and_then(|value| value["reply_to"].as_str().map(str::to_owned))
        .unwrap_or_else(|| post.post_id.clone())
}
