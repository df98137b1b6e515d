//! The reader: polls X, stores each post once, decides bids through the engine and
//! stores their replies.

use super::*;

impl Social {
    /// Polls X until `stop`: each round finishes posts left undecided by a crash, reads
    /// new mentions and the open lots' conversations, and decides what it read.
    pub async fn read(self, stop: CancellationToken) -> anyhow::Result<()> {
        let mut account = None;
        loop {
            let interval = self.runtime.poll_interval();
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
            // Never faster than X's windows allow: spending one early means minutes
            // without reading before its reset.
            let client = &self.handle.client;
            let paced = [Endpoint::Mentions, Endpoint::Search]
                .into_iter()
                .filter_map(|endpoint| client.pace(endpoint))
                .fold(interval, Duration::max);
            let mut pause = paced.saturating_sub(began.elapsed()).max(Duration::from_millis(10));
            if let Some(until) = client.blocked_until(Endpoint::Mentions) {
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
        let blocked = self.runtime.is_blocked(&bidder.id, bidder.handle.as_deref());
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

fn exact(reading: &Reading) -> Option<Amount> {
    match reading {
        Reading::Exact(amount) => Some(*amount),
        _ => None,
    }
}

fn users_of(users: Option<&[User]>) -> HashMap<String, User> {
    users.unwrap_or_default().iter().map(|user| (user.id.clone(), user.clone())).collect()
}
