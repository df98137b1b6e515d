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
//!   are acknowledged in the lot's thread by a standings post (at most one per 20 s).
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
    AuctionCancelled, AuctionSnapshot, BidEvent, Envelope, EventType, SocialAnnounced, SocialPostReceived,
    SocialRateLimited, SocialReply, Source, TypePattern,
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
    AuctionFilter, LotChange, PostState, SocialLot, SocialPost, SocialWrite, Storage, WriteKind, WriteState,
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
    pub handle: SocialHandle,
}

impl std::fmt::Debug for Social {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Social").finish_non_exhaustive()
    }
}

impl Social {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn event<T: Serialize>(&self, event_type: EventType, data: &T) {
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

    // ---- the reader ----

    /// Polls X until `stop`: each round finishes posts left undecided by a crash, reads
    /// new mentions and the open lots' conversations, and decides what it read.
    pub async fn read(self, stop: CancellationToken) -> anyhow::Result<()> {
        let interval = self.config.x.poll_interval;
        let mut account = None;
        loop {
            // Rounds start every interval (not an interval after the last ended), so a
            // long round does not stretch the time a post waits to be read.
            let began = tokio::time::Instant::now();
            if account.is_none() {
                match self.account().await {
                    Ok(found) => {
                        self.handle.status().handle = Some(found.handle.clone());
                        account = Some(found);
                    }
                    Err(error) => self.poll_failed(&error),
                }
            }
            if let Some(account) = &account {
                match self.round(account).await {
                    Ok(()) => {
                        let mut status = self.handle.status();
                        status.last_poll_at = Some(Utc::now());
                        status.last_error = None;
                        status.connected = true;
                    }
                    Err(error) => self.poll_failed(&error),
                }
            }
            let mut pause = interval.saturating_sub(began.elapsed()).max(Duration::from_millis(10));
            if let Some(until) = self.handle.client.blocked_until(Endpoint::Mentions) {
                pause = pause.max((until - Utc::now()).to_std().unwrap_or_default());
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    fn poll_failed(&self, error: &XError) {
        match error {
            XError::RateLimited { .. } => tracing::info!(%error, "X read waits for its rate limit"),
            _ => {
                tracing::warn!(%error, "X poll failed");
                let mut status = self.handle.status();
                status.last_error = Some(error.to_string());
                status.connected = !matches!(error, XError::Unauthorized(_) | XError::NotConfigured(_));
            }
        }
    }

    async fn round(&self, account: &Account) -> Result<(), XError> {
        if let Err(error) = self.catch_up().await {
            tracing::warn!(%error, "catching up with open lots");
        }
        // Posts stored before a crash but not decided: decided now, once.
        match self.storage.undecided_posts(100).await {
            Ok(posts) => self.decide_all(posts).await,
            Err(error) => tracing::warn!(%error, "reading undecided posts"),
        }
        let started_at = self.first_start().await;
        let since = self.storage.social_value("mentions_since_id").await.ok().flatten();
        let client = &self.handle.client;
        let pages = self
            .read_pages(since.as_deref(), None, |since, token| async move {
                client.mentions(&account.id, since.as_deref(), token.as_deref()).await
            })
            .await;
        let (read, newest) = (pages.posts, pages.newest);
        let mut result = pages.failed.map_or(Ok(()), Err);
        // What was read is stored and decided even when a later page failed.
        self.take_all(account, read, started_at).await;
        // The cursor moves only past what is stored; a page that failed halfway is
        // read again (its posts are not handled twice).
        if result.is_ok()
            && let Some(newest) = newest.filter(|newest| Some(newest) != since.as_ref())
        {
            let _ = self.storage.set_social_value("mentions_since_id", &newest).await;
            self.handle.status().since_id = Some(newest);
        }
        if self.config.x.read_conversations && result.is_ok() {
            result = self.read_conversations(account, started_at).await;
        }
        result
    }

    async fn read_conversations(&self, account: &Account, started_at: DateTime<Utc>) -> Result<(), XError> {
        let lots = self.storage.social_lots(true).await.unwrap_or_default();
        for lot in lots {
            let Some(conversation) = lot.post_id.clone() else { continue };
            if conversation.starts_with("dry-run-") {
                continue;
            }
            let since = lot.since_id.clone().or_else(|| Some(conversation.clone()));
            let client = &self.handle.client;
            let conversation = conversation.as_str();
            let pages = self
                .read_pages(since.as_deref(), Some(lot.auction_id), |since, token| async move {
                    client.conversation(conversation, since.as_deref(), token.as_deref()).await
                })
                .await;
            self.handle.add_lot_spend(lot.auction_id, pages.usd);
            let (read, newest, failed) = (pages.posts, pages.newest, pages.failed);
            self.take_all(account, read, started_at).await;
            if let Some(error) = failed {
                return Err(error);
            }
            if let Some(newest) = newest.filter(|newest| Some(newest) != lot.since_id.as_ref()) {
                let _ = self.storage.update_lot(lot.auction_id, &LotChange::Since(newest)).await;
            }
        }
        Ok(())
    }

    /// Reads pages (newest first) after `cursor`, looking back `LOOKBACK`, until a page
    /// reaches the cursor or there is no next one. What was read is kept when a later
    /// page fails.
    async fn read_pages<Fetch, Page>(
        &self,
        cursor: Option<&str>,
        lot: Option<Uuid>,
        mut fetch: Fetch,
    ) -> Pages
    where
        Fetch: FnMut(Option<String>, Option<String>) -> Page,
        Page: Future<Output = Result<(xapi::TweetPage, f64), XError>>,
    {
        let query_since = read_since(cursor);
        let mut pages =
            Pages { posts: Vec::new(), newest: cursor.map(str::to_owned), usd: 0.0, failed: None };
        let mut token = None;
        loop {
            match fetch(query_since.clone(), token.take()).await {
                Ok((page, usd)) => {
                    pages.usd += usd;
                    if let Some(top) = &page.meta.newest_id
                        && pages
                            .newest
                            .as_deref()
                            .is_none_or(|known| xapi::id_number(top) > xapi::id_number(known))
                    {
                        pages.newest = Some(top.clone());
                    }
                    let users = users_of(page.includes.as_ref().map(|includes| includes.users.as_slice()));
                    let done = page.data.is_empty() || reached(&page, cursor);
                    pages.posts.extend(page.data.into_iter().map(|tweet| (tweet, users.clone(), lot)));
                    match page.meta.next_token {
                        Some(next) if !done => token = Some(next),
                        _ => return pages,
                    }
                }
                Err(error) => {
                    self.rate_limited(&error).await;
                    pages.failed = Some(error);
                    return pages;
                }
            }
        }
    }

    async fn rate_limited(&self, error: &XError) {
        if let XError::RateLimited { endpoint, reset_at } = error {
            self.event(
                EventType::SocialRateLimited,
                &SocialRateLimited { endpoint: (*endpoint).to_owned(), reset_at: *reset_at },
            )
            .await;
        }
    }

    /// When the role first ran: older posts (X returns up to 800 mentions on a first
    /// read) are history, not bids for this show.
    async fn first_start(&self) -> DateTime<Utc> {
        if let Ok(Some(text)) = self.storage.social_value("started_at").await
            && let Ok(at) = DateTime::parse_from_rfc3339(&text)
        {
            return at.with_timezone(&Utc);
        }
        let now = self.now() - chrono::Duration::minutes(5);
        let _ = self.storage.set_social_value("started_at", &now.to_rfc3339()).await;
        now
    }

    /// Stores what a read returned (up to 32 at once, each post once), then decides
    /// the new ones together in id order (the engine commits many decisions at once).
    async fn take_all(
        &self,
        account: &Account,
        read: Vec<(Tweet, HashMap<String, User>, Option<Uuid>)>,
        started_at: DateTime<Utc>,
    ) {
        let mut read = read;
        read.sort_by_key(|(tweet, _, _)| xapi::id_number(&tweet.id));
        use futures::StreamExt as _;
        let fresh: Vec<SocialPost> =
            futures::stream::iter(read.into_iter().map(|(tweet, users, lot)| async move {
                self.store(account, &tweet, &users, lot, started_at).await
            }))
            .buffered(32)
            .filter_map(std::future::ready)
            .collect()
            .await;
        self.decide_all(fresh).await;
    }

    /// Stores a post read from X; `None` when it is not for the show or was stored before.
    async fn store(
        &self,
        account: &Account,
        tweet: &Tweet,
        users: &HashMap<String, User>,
        lot: Option<Uuid>,
        started_at: DateTime<Utc>,
    ) -> Option<SocialPost> {
        let author_id = tweet.author_id.clone().unwrap_or_default();
        if author_id == account.id || tweet.is_retweet() {
            return None;
        }
        let post_id = tweet.first_version_id().to_owned();
        let created_at = xapi::snowflake_time(&post_id).or(tweet.created_at).unwrap_or_else(|| self.now());
        if created_at < started_at {
            return None;
        }
        let handle = account.handle.to_lowercase();
        let summons = tweet
            .text
            .to_lowercase()
            .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '@'))
            .any(|word| word.strip_prefix('@') == Some(handle.as_str()))
            || tweet.referenced_tweets.iter().any(|reference| reference.kind == "quoted");
        let post = SocialPost {
            post_id: post_id.clone(),
            author_id: author_id.clone(),
            author_handle: users.get(&author_id).map(|user| user.username.clone()),
            text: tweet.text.clone(),
            created_at,
            received_at: self.now(),
            conversation_id: tweet.conversation_id.clone(),
            summons,
            state: PostState::Received,
            auction_id: lot,
            outcome: Some(serde_json::json!({"reply_to": tweet.id}).to_string()),
        };
        match self.storage.insert_post(&post).await {
            Ok(true) => {}
            Ok(false) => return None,
            Err(error) => {
                tracing::warn!(%error, post_id, "post not stored; read again next round");
                return None;
            }
        }
        let is_bid = parse::parse(&post.text, self.config.max_bid).is_bid();
        metrics::counter!("x_posts_total", "bid" => if is_bid { "true" } else { "false" }).increment(1);
        self.event(
            EventType::SocialPostReceived,
            &SocialPostReceived {
                post_id: post.post_id.clone(),
                author_id: post.author_id.clone(),
                author: post.author_handle.as_ref().map(|name| format!("@{name}")),
                text: post.text.clone(),
                created_at,
                is_bid,
            },
        )
        .await;
        Some(post)
    }

    /// Decides stored posts: the lots and open auctions are read once, the bids go
    /// to the engine in the posts' order, and up to 32 are in flight at once.
    async fn decide_all(&self, posts: Vec<SocialPost>) {
        use futures::StreamExt as _;
        if posts.is_empty() {
            return;
        }
        let lots = self.storage.social_lots(false).await.unwrap_or_default();
        let now = millis(self.now());
        let views: Vec<Auction> = self
            .storage
            .auctions(&AuctionFilter {
                phases: vec![Phase::Open, Phase::Closed],
                campaign_id: None,
                limit: 200,
            })
            .await
            .unwrap_or_default()
            .iter()
            .map(|record| record.core.view_at(now))
            .collect();
        let context = Lots { lots, views };
        futures::stream::iter(posts.into_iter().map(|post| self.decide(post, &context)))
            .buffered(32)
            .collect::<Vec<()>>()
            .await;
    }

    /// Decides a stored post: a bid goes to the engine, and its reply is stored.
    async fn decide(&self, post: SocialPost, context: &Lots) {
        let reply_to = reply_target(&post);
        let bidder_name = post.author_handle.clone().unwrap_or_else(|| post.author_id.clone());
        let (amount, named) = match parse::parse(&post.text, self.config.max_bid) {
            Parsed::NotABid => {
                let _ = self.storage.finish_post(&post.post_id, PostState::Ignored, None, None).await;
                return;
            }
            Parsed::Bid { amount, lot } => (amount, lot),
        };
        let lots = &context.lots;
        let target = match lot_for(&post, named, context) {
            Ok(target) => target,
            Err(refusal) => {
                let text = self.handle.wording.rejected(&bidder_name, None, exact(&amount), &refusal);
                self.store_reply(&post, &reply_to, None, WriteKind::Rejected, text, serde_json::json!({
                    "status": "rejected",
                    "reason": match refusal { Refusal::AmbiguousLot { .. } => "AMBIGUOUS_LOT", _ => "AUCTION_NOT_OPEN" },
                }))
                .await;
                return;
            }
        };
        let lot = lots.iter().find(|lot| lot.auction_id == target);
        let offer = match &amount {
            Reading::Exact(amount) => Offer::Amount(*amount),
            Reading::Ambiguous(_) => Offer::Ambiguous,
            Reading::Invalid(_) => Offer::Unreadable,
        };
        let bidder = Bidder { id: format!("x:{}", post.author_id), handle: Some(format!("@{bidder_name}")) };
        let blocked = self.config.blocked_bidders.iter().any(|entry| {
            *entry == bidder.id || entry.trim_start_matches('@').eq_ignore_ascii_case(&bidder_name)
        });
        let input = BidInput {
            id: Uuid::now_v7(),
            amount: offer,
            bidder,
            source: BidSource::X,
            source_ref: Some(post.post_id.clone()),
            created_at: millis(post.created_at),
            received_at: millis(post.received_at.max(self.now())),
        };
        let outcome = match self
            .engine
            .place_bid(target, input, BidderStanding { blocked, ..BidderStanding::default() })
            .await
        {
            Ok(outcome) => outcome,
            Err(EngineError::NotFound) => {
                let refusal =
                    Refusal::Reason { reason: RejectReason::AuctionNotFound, min_bid: Amount::ZERO };
                let text = self.handle.wording.rejected(&bidder_name, None, exact(&amount), &refusal);
                self.store_reply(
                    &post,
                    &reply_to,
                    Some(target),
                    WriteKind::Rejected,
                    text,
                    serde_json::json!({
                        "status": "rejected", "reason": "AUCTION_NOT_FOUND",
                    }),
                )
                .await;
                return;
            }
            Err(error) => {
                // Left `received`: decided on a later round.
                tracing::warn!(%error, post_id = %post.post_id, "bid from X not decided yet");
                return;
            }
        };
        let name = LotName {
            number: lot.and_then(|lot| lot.number),
            title: lot.map_or(outcome.auction.title.as_str(), |lot| lot.title.as_str()),
        };
        let bid = &outcome.bid;
        let (kind, text) = match bid.status {
            BidStatus::Accepted => (
                WriteKind::Accepted,
                self.handle.wording.accepted(&bidder_name, &name, &outcome.auction, self.now()),
            ),
            BidStatus::Rejected => {
                let reason = bid.reason.unwrap_or(RejectReason::InvalidAmount);
                let refusal = match (&amount, reason) {
                    (Reading::Invalid(detail), RejectReason::InvalidAmount) => {
                        Refusal::InvalidAmount(detail.clone())
                    }
                    _ => Refusal::Reason { reason, min_bid: outcome.auction.min_next_bid },
                };
                (
                    WriteKind::Rejected,
                    self.handle.wording.rejected(&bidder_name, Some(&name), exact(&amount), &refusal),
                )
            }
        };
        tracing::info!(
            post_id = %post.post_id, auction_id = %target, status = ?bid.status, reason = ?bid.reason,
            duplicate = outcome.duplicate, "bid from X decided"
        );
        self.store_reply(
            &post,
            &reply_to,
            Some(target),
            kind,
            text,
            serde_json::json!({
                "status": if bid.status == BidStatus::Accepted { "accepted" } else { "rejected" },
                "reason": bid.reason.map(RejectReason::code),
                "amount": bid.amount,
                "bid_id": bid.id,
                "min_bid": outcome.auction.min_next_bid,
            }),
        )
        .await;
    }

    /// Stores the reply to a post, then marks the post decided (a crash between the
    /// two decides it again: the engine answers with the first decision and the reply
    /// is already stored under the same key).
    async fn store_reply(
        &self,
        post: &SocialPost,
        reply_to: &str,
        auction_id: Option<Uuid>,
        kind: WriteKind,
        text: String,
        mut outcome: serde_json::Value,
    ) {
        let priority = if kind == WriteKind::Accepted { 1 } else { 3 };
        let key = format!("reply:{}", post.post_id);
        let write = self.write(key, kind, priority, auction_id, Some(reply_to.to_owned()), text);
        if let Err(error) = self.storage.queue_write(&write).await {
            tracing::warn!(%error, post_id = %post.post_id, "reply not stored; the post is decided again later");
            return;
        }
        self.handle.writes.notify_one();
        let _ = self
            .storage
            .finish_post(
                &post.post_id,
                PostState::Decided,
                auction_id,
                Some(&{
                    // The decision keeps the post it answers, for outbid notices later.
                    outcome["reply_to"] = serde_json::Value::from(reply_to);
                    outcome.to_string()
                }),
            )
            .await;
    }

    // ---- the lot follower ----

    async fn queue(&self, write: SocialWrite) {
        match self.storage.queue_write(&write).await {
            Ok(true) => self.handle.writes.notify_one(),
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, key = %write.key, "write not stored"),
        }
    }

    fn write(
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

    async fn lot_number(&self, auction: &Auction) -> Option<u32> {
        let campaign = self.storage.campaign(auction.campaign_id?).await.ok().flatten()?;
        campaign.lots.iter().find(|lot| lot.auction_id == auction.id).map(|lot| lot.index + 1)
    }

    /// Records an opened lot and queues its announcement (once: the key is the lot).
    async fn announce(&self, auction: &Auction) -> anyhow::Result<()> {
        let account_handle = self.account().await.map(|account| account.handle).unwrap_or_default();
        let existing = self.storage.social_lot(auction.id).await?;
        let lot = SocialLot {
            auction_id: auction.id,
            number: self.lot_number(auction).await,
            title: auction.title.clone(),
            post_id: existing.as_ref().and_then(|lot| lot.post_id.clone()),
            since_id: existing.as_ref().and_then(|lot| lot.since_id.clone()),
            open: true,
            high_post_id: existing.as_ref().and_then(|lot| lot.high_post_id.clone()),
            high_bidder: existing.as_ref().and_then(|lot| lot.high_bidder.clone()),
            standings_at: existing.as_ref().map_or(self.now(), |lot| lot.standings_at),
        };
        self.storage.save_lot(&lot).await?;
        let name = LotName { number: lot.number, title: &lot.title };
        let text = self.handle.wording.announcement(&name, auction, &account_handle);
        self.queue(self.write(
            format!("announce:{}", auction.id),
            WriteKind::Announcement,
            0,
            auction.id,
            None,
            text,
        ))
        .await;
        Ok(())
    }

    /// Lots that opened while the role was not following (before it started, or
    /// before its consumer group existed) are announced now.
    async fn catch_up(&self) -> anyhow::Result<()> {
        let known: Vec<Uuid> =
            self.storage.social_lots(false).await?.iter().map(|lot| lot.auction_id).collect();
        let now = millis(self.now());
        let records = self
            .storage
            .auctions(&AuctionFilter { phases: vec![Phase::Open], campaign_id: None, limit: 100 })
            .await?;
        for record in records {
            let auction = record.core.view_at(now);
            if auction.state == AuctionState::Open && !known.contains(&auction.id) {
                self.announce(&auction).await?;
            }
        }
        Ok(())
    }

    async fn on_event(&self, event: &Envelope) -> anyhow::Result<()> {
        match event.event_type {
            EventType::AuctionStart => {
                let AuctionSnapshot { auction } = event.decode()?;
                self.announce(&auction).await?;
            }
            EventType::AuctionBidAccepted => {
                let BidEvent { bid, auction, .. } = event.decode()?;
                let Some(lot) = self.storage.social_lot(bid.auction_id).await? else { return Ok(()) };
                if let (Some(previous_post), Some(previous_bidder), Some(auction)) =
                    (&lot.high_post_id, &lot.high_bidder, auction.as_ref())
                    && *previous_bidder != bid.bidder.id
                {
                    let minute = bid.created_at.timestamp() / OUTBID_EVERY_SECS;
                    let post = self.storage.social_post(previous_post).await?;
                    let reply_to = post.as_ref().map_or_else(|| previous_post.clone(), reply_target);
                    let name =
                        post.and_then(|post| post.author_handle).unwrap_or_else(|| previous_bidder.clone());
                    let lot_name = LotName { number: lot.number, title: &lot.title };
                    let text = self.handle.wording.outbid(&name, &lot_name, auction);
                    self.queue(self.write(
                        format!("outbid:{}:{previous_bidder}:{minute}", bid.auction_id),
                        WriteKind::Outbid,
                        2,
                        bid.auction_id,
                        Some(reply_to),
                        text,
                    ))
                    .await;
                }
                let post = if bid.source == BidSource::X { bid.source_ref.clone() } else { None };
                self.storage
                    .update_lot(lot.auction_id, &LotChange::High { post, bidder: bid.bidder.id.clone() })
                    .await?;
            }
            EventType::AuctionEnd | EventType::AuctionCancelled => {
                let ended = event.event_type == EventType::AuctionEnd;
                let auction = if ended {
                    event.decode::<AuctionSnapshot>()?.auction
                } else {
                    event.decode::<AuctionCancelled>()?.auction
                };
                let Some(lot) = self.storage.social_lot(auction.id).await? else { return Ok(()) };
                let name = LotName { number: lot.number, title: &lot.title };
                let text = if ended {
                    self.handle.wording.result(&name, &auction)
                } else {
                    self.handle.wording.cancelled(&name)
                };
                let key = format!("result:{}", auction.id);
                self.queue(self.write(key, WriteKind::Result, 0, auction.id, None, text)).await;
                self.storage.update_lot(lot.auction_id, &LotChange::Closed).await?;
            }
            _ => {}
        }
        Ok(())
    }

    // ---- the sender ----

    /// Sends stored writes until `stop`.
    pub async fn send(self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut sent: VecDeque<DateTime<Utc>> = VecDeque::new();
        loop {
            let pause = match self.send_round(&mut sent).await {
                Ok(pause) => pause,
                Err(error) => {
                    tracing::warn!(%error, "sending to X failed; trying again");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = self.handle.writes.notified() => {}
                () = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// One pass over the pending writes; how long to wait before the next.
    async fn send_round(&self, sent: &mut VecDeque<DateTime<Utc>>) -> anyhow::Result<Duration> {
        let now = Utc::now();
        while sent.front().is_some_and(|at| now - *at > BUDGET_WINDOW) {
            sent.pop_front();
        }
        self.queue_standings().await?;
        let pending = self.storage.social_writes(Some(WriteState::Pending), None, 200).await?;
        let budget = self.config.x.reply_budget_per_15min as usize;
        let mut left = budget.saturating_sub(sent.len());
        let spend = self.handle.client.spend().0;
        let spent_share = self.config.x.spend_limit_usd.map_or(0.0, |limit| spend / limit);
        let important = pending.iter().filter(|write| write.kind != WriteKind::Rejected).count();
        // A quarter of the budget (at least one post) is kept for what matters more
        // than a rejection: announcements, accepted bids, outbid notices, results.
        let reserve = (budget / 4).max(1);
        for mut write in pending {
            // Past the spend limit only results go out; past 80 % rejections are only
            // batched and outbid notices stop. Short of budget, rejections are batched.
            let drop = (spent_share >= 1.0 && write.kind != WriteKind::Result)
                || (spent_share >= 0.8 && write.kind == WriteKind::Outbid);
            let batch =
                write.kind == WriteKind::Rejected && (spent_share >= 0.8 || left <= reserve + important);
            if drop || batch {
                write.state = if drop { WriteState::Dropped } else { WriteState::Batched };
                write.error = Some(if drop { "spend limit".into() } else { "reply budget".into() });
                self.storage.finish_write(&write).await?;
                continue;
            }
            if left == 0 {
                let Some(oldest) = sent.front() else { break };
                return Ok(((*oldest + BUDGET_WINDOW) - now).to_std().unwrap_or(Duration::from_secs(1)));
            }
            if let Some(until) = self.handle.client.blocked_until(Endpoint::Post) {
                return Ok((until - now).to_std().unwrap_or(Duration::from_secs(1)));
            }
            match self.send_one(&mut write).await {
                Ok(()) => {
                    if write.state == WriteState::Sent {
                        sent.push_back(Utc::now());
                        left = left.saturating_sub(1);
                    }
                }
                Err(XError::RateLimited { endpoint, reset_at }) => {
                    self.rate_limited(&XError::RateLimited { endpoint, reset_at }).await;
                    return Ok((reset_at - Utc::now()).to_std().unwrap_or(Duration::from_secs(1)));
                }
                Err(error) => {
                    write.attempts += 1;
                    write.error = Some(error.to_string());
                    if write.attempts >= 8 {
                        write.state = WriteState::Dropped;
                        self.event(
                            EventType::SocialReplyFailed,
                            &reply_event(&write, Some(error.to_string())),
                        )
                        .await;
                    }
                    self.storage.finish_write(&write).await?;
                    return Ok(Duration::from_secs(1 << write.attempts.clamp(0, 5)));
                }
            }
        }
        Ok(Duration::from_secs(1))
    }

    async fn send_one(&self, write: &mut SocialWrite) -> Result<(), XError> {
        let lot = match write.auction_id {
            Some(id) => self.storage.social_lot(id).await.ok().flatten(),
            None => None,
        };
        // Results and standings answer the lot's announcement, once it has an id.
        let in_reply_to = match write.kind {
            WriteKind::Result | WriteKind::Standings => {
                lot.as_ref().and_then(|lot| lot.post_id.clone()).filter(|id| !id.starts_with("dry-run-"))
            }
            _ => write.in_reply_to.clone(),
        };
        let posted = self.handle.client.post(&write.text, in_reply_to.as_deref()).await?;
        let cost = if self.handle.client.dry_run() {
            0.0
        } else if xapi::has_url(&write.text) {
            xapi::Resource::PostCreatedWithUrl.price_usd()
        } else {
            xapi::Resource::PostCreated.price_usd()
        };
        match posted {
            Posted::Created(id) => {
                write.state = WriteState::Sent;
                write.post_id = Some(id.clone());
                if let Some(auction_id) = write.auction_id {
                    self.handle.add_lot_spend(auction_id, cost);
                }
                if write.kind == WriteKind::Announcement
                    && let Some(lot) = lot
                {
                    let _ = self.storage.update_lot(lot.auction_id, &LotChange::Post(id.clone())).await;
                    self.event(
                        EventType::SocialAnnounced,
                        &SocialAnnounced { auction_id: lot.auction_id, post_id: id },
                    )
                    .await;
                }
            }
            Posted::Duplicate => {
                write.state = WriteState::Sent;
                tracing::info!(key = %write.key, "X says this was posted before; counted as sent");
            }
            Posted::NotRepliable => {
                write.state = WriteState::NotRepliable;
                write.error = Some("not_repliable".into());
            }
        }
        write.sent_at = Some(Utc::now());
        write.attempts += 1;
        if let Err(error) = self.storage.finish_write(write).await {
            tracing::warn!(%error, key = %write.key, "sent, but its state was not stored");
        }
        metrics::counter!("x_writes_total", "kind" => write.kind.as_str(), "state" => write.state.as_str())
            .increment(1);
        let failed = write.state == WriteState::NotRepliable;
        let event_type = if failed { EventType::SocialReplyFailed } else { EventType::SocialReplySent };
        self.event(event_type, &reply_event(write, failed.then(|| "not_repliable".to_owned()))).await;
        tracing::info!(key = %write.key, kind = write.kind.as_str(), state = write.state.as_str(), "X write done");
        Ok(())
    }

    /// Queues a standings post for each open lot with refused or batched replies to
    /// acknowledge, at most one per lot every 20 s.
    async fn queue_standings(&self) -> anyhow::Result<()> {
        let now = self.now();
        for lot in self.storage.social_lots(true).await? {
            if now - lot.standings_at < STANDINGS_EVERY {
                continue;
            }
            let mut owed = Vec::new();
            for state in [WriteState::NotRepliable, WriteState::Batched] {
                owed.extend(self.storage.social_writes(Some(state), Some(lot.auction_id), 500).await?);
            }
            let owed: Vec<SocialWrite> =
                owed.into_iter().filter(|write| write.error.as_deref() != Some("acknowledged")).collect();
            if owed.is_empty() {
                continue;
            }
            let Some(record) = self.storage.auction(lot.auction_id).await? else { continue };
            let auction = record.core.view_at(millis(now));
            let mut accepted = Vec::new();
            let (mut refused, mut under_minimum) = (0, 0);
            for write in &owed {
                let post_id = write.key.strip_prefix("reply:").unwrap_or_default();
                let post = self.storage.social_post(post_id).await?;
                let outcome: serde_json::Value = post
                    .as_ref()
                    .and_then(|post| post.outcome.as_deref())
                    .and_then(|text| serde_json::from_str(text).ok())
                    .unwrap_or_default();
                match (outcome["status"].as_str(), outcome["reason"].as_str()) {
                    (Some("accepted"), _) => accepted
                        .push(post.and_then(|post| post.author_handle).unwrap_or_else(|| "someone".into())),
                    (_, Some("BELOW_MIN_INCREMENT" | "BELOW_STARTING_PRICE")) => {
                        refused += 1;
                        under_minimum += 1;
                    }
                    _ => refused += 1,
                }
            }
            let name = LotName { number: lot.number, title: &lot.title };
            let text = self.handle.wording.standings(
                &Standings { lot: name, auction: &auction, accepted, refused, under_minimum },
                now,
            );
            let key = format!("standings:{}:{}", lot.auction_id, now.timestamp_millis());
            self.queue(self.write(key, WriteKind::Standings, 2, lot.auction_id, None, text)).await;
            for mut write in owed {
                write.error = Some("acknowledged".into());
                self.storage.finish_write(&write).await?;
            }
            self.storage.update_lot(lot.auction_id, &LotChange::StandingsAt(now)).await?;
        }
        Ok(())
    }
}

/// What a read of pages returned.
struct Pages {
    posts: Vec<(Tweet, HashMap<String, User>, Option<Uuid>)>,
    /// The newest id seen (the cursor's next value).
    newest: Option<String>,
    usd: f64,
    failed: Option<XError>,
}

/// The lots a round of decisions sees: the announced lots and the recent auctions'
/// views, read once per round.
struct Lots {
    lots: Vec<SocialLot>,
    views: Vec<Auction>,
}

/// The lot a bid is for: the one it names, else the lot whose conversation it
/// replies in, else the only open lot.
fn lot_for(post: &SocialPost, named: Option<u32>, context: &Lots) -> Result<Uuid, Refusal> {
    let lots = &context.lots;
    if let Some(number) = named {
        return lots
            .iter()
            .rev()
            .find(|lot| lot.number == Some(number))
            .map(|lot| lot.auction_id)
            .ok_or(Refusal::NoOpenLot);
    }
    if let Some(conversation) = &post.conversation_id
        && let Some(lot) = lots.iter().find(|lot| lot.post_id.as_deref() == Some(conversation.as_str()))
    {
        return Ok(lot.auction_id);
    }
    if let Some(auction_id) = post.auction_id {
        return Ok(auction_id);
    }
    let views = &context.views;
    let open: Vec<&Auction> = views
        .iter()
        .filter(|auction| matches!(auction.state, AuctionState::Open | AuctionState::Closing))
        .collect();
    match open.as_slice() {
        [only] => Ok(only.id),
        [] => {
            // None open now: the lot that was open when the post was written (a post
            // delivered after its lot closed is decided, and refused, by that lot).
            let created = post.created_at;
            let covering: Vec<&Auction> = views
                .iter()
                .filter(|auction| {
                    auction.starts_at.is_some_and(|start| start <= created)
                        && auction.ends_at.is_some_and(|end| created < end)
                })
                .collect();
            match covering.as_slice() {
                [only] => Ok(only.id),
                _ => Err(Refusal::NoOpenLot),
            }
        }
        several => Err(Refusal::AmbiguousLot {
            open: several
                .iter()
                .filter_map(|auction| lots.iter().find(|lot| lot.auction_id == auction.id)?.number)
                .collect(),
        }),
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

fn exact(reading: &Reading) -> Option<Amount> {
    match reading {
        Reading::Exact(amount) => Some(*amount),
        _ => None,
    }
}

fn users_of(users: Option<&[User]>) -> HashMap<String, User> {
    users.unwrap_or_default().iter().map(|user| (user.id.clone(), user.clone())).collect()
}

fn reply_event(write: &SocialWrite, error: Option<String>) -> SocialReply {
    SocialReply {
        in_reply_to: write.in_reply_to.clone(),
        reply_id: write.post_id.clone(),
        auction_id: write.auction_id,
        kind: write.kind.as_str().to_owned(),
        text: write.text.clone(),
        standings: write.kind == WriteKind::Standings,
        error,
    }
}

/// The lot follower, as an event consumer (`social`) of `auction:*`.
#[derive(Debug)]
pub struct LotFollower {
    social: Social,
    patterns: Vec<TypePattern>,
}

impl LotFollower {
    pub fn new(social: Social) -> LotFollower {
        let patterns = ["auction:start", "auction:bid:accepted", "auction:end", "auction:cancelled"]
            .iter()
            .filter_map(|pattern| pattern.parse().ok())
            .collect();
        LotFollower { social, patterns }
    }
}

#[async_trait]
impl Consumer for LotFollower {
    fn name(&self) -> &str {
        "social"
    }

    fn patterns(&self) -> &[TypePattern] {
        &self.patterns
    }

    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        self.social.on_event(event).await
    }
}
