//! The moments the host speaks of: auction and social events (the event consumer
//! `agent`), the clock (last calls, idle banter, the mood's fade) and questions.

use super::*;

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

impl AgentHandle {
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
