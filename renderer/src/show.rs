//! The show's state as the renderer knows it: the auctions (from snapshots and
//! events), the lot on air, its bid ticker, the host's mood and line. Pure: no Bevy
//! systems, no I/O, time passed in. Scene templates read it through [`Show::field`].
//!
//! Events may arrive twice or out of order around a reconnect (a snapshot taken
//! while events flow, a replay from `since`): each auction's `seq` decides, so a
//! snapshot or event older than what is known changes nothing, and event ids seen
//! before are skipped.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};

use bevy::prelude::Resource;
use chrono::{DateTime, TimeDelta, Utc};
use sothebais_shared::auction::{Auction, AuctionState, Bid, BidStatus, Bidder, OutcomeResult};
use sothebais_shared::events::{
    AgentMessage, AgentMood, AuctionCancelled, AuctionExtended, AuctionSnapshot, AuctionWinner, BidEvent,
    Channel, Envelope, EventType, Mood,
};
use uuid::Uuid;

use crate::scene::format::Trigger;

/// The fields scene templates and conditions can name.
pub const FIELDS: &[&str] = &[
    "auction.title",
    "auction.state",
    "auction.lot",
    "auction.image",
    "auction.high_bid.amount",
    "auction.high_bid.handle",
    "auction.min_next_bid",
    "auction.starting_price",
    "auction.reserve",
    "auction.reserve_met",
    "auction.bid_count",
    "auction.countdown",
    "auction.ends_at",
    "auction.extended",
    "auction.result",
    "auction.winner.handle",
    "auction.winner.amount",
    "agent.mood",
    "agent.line",
    "show.next",
    "show.clock",
];

/// The fields of one ticker row.
pub const ROW_FIELDS: &[&str] = &["bid.handle", "bid.amount", "bid.time"];

/// Accepted bids remembered per auction for the ticker.
pub const TICKER_KEEP: usize = 50;

/// Event ids remembered to skip a redelivered event.
const SEEN_KEEP: usize = 4096;

/// One accepted bid as the ticker shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickerBid {
    pub handle: String,
    pub amount: String,
    pub at: DateTime<Utc>,
}

impl TickerBid {
    fn from_bid(bid: &Bid) -> TickerBid {
        TickerBid { handle: handle(&bid.bidder), amount: bid.amount.to_string(), at: bid.created_at }
    }

    /// A ticker row's field.
    pub fn field(&self, name: &str) -> Option<String> {
        match name {
            "bid.handle" => Some(self.handle.clone()),
            "bid.amount" => Some(self.amount.clone()),
            "bid.time" => Some(self.at.format("%H:%M:%S").to_string()),
            _ => None,
        }
    }
}

/// The handle a viewer knows a bidder by (the id when there is none).
/// A bidder's handle without its `@` (the scenes and the result line add one):
/// handles read from X keep theirs, those given through the API may not.
fn handle(bidder: &Bidder) -> String {
    bidder
        .handle
        .as_deref()
        .map_or_else(|| bidder.id.clone(), |handle| handle.trim_start_matches('@').to_owned())
}

/// A line of the host, shown as a caption from `started` (renderer clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub text: String,
    pub started: DateTime<Utc>,
    /// When the line is spoken: the speech's loudness per [`LEVEL_WINDOW_MS`], from
    /// `started` (the voice starts playing as the line does).
    pub levels: Option<std::sync::Arc<Vec<f32>>>,
    /// The speech's length in seconds: the caption is revealed at this pace.
    pub speech_secs: Option<f32>,
}

/// The window of the speech's loudness, in milliseconds.
pub const LEVEL_WINDOW_MS: u32 = 20;

impl Line {
    /// The speech's loudness `secs` into the line: `None` when it is not spoken or is
    /// over, else 0 (silence) to 1.
    pub fn level_at(&self, secs: f32) -> Option<f32> {
        let levels = self.levels.as_ref()?;
        if secs < 0.0 {
            return None;
        }
        levels.get((secs * 1000.0 / LEVEL_WINDOW_MS as f32) as usize).copied()
    }
}

/// What a snapshot of the backend holds.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The backend's clock when the snapshot was taken.
    pub now: Option<DateTime<Utc>>,
    pub auctions: Vec<Auction>,
    /// Recent bids per auction, in sequence order (for the ticker).
    pub bids: HashMap<Uuid, Vec<Bid>>,
    pub mood: Option<Mood>,
    /// The host's face: the image of the mood for the character on air.
    pub expression: Option<String>,
}

/// Everything the scene draws, fed by snapshots and events.
#[derive(Debug, Clone, Resource, Default)]
pub struct Show {
    auctions: BTreeMap<Uuid, Auction>,
    tickers: HashMap<Uuid, VecDeque<TickerBid>>,
    pub mood: Option<Mood>,
    /// The image the agent named for the mood (`characters/<id>/<mood>.png`), or the
    /// mood's name when its character has no art (then the drawn face is shown).
    pub expression: Option<String>,
    pub line: Option<Line>,
    /// Backend clock minus renderer clock.
    clock_offset: TimeDelta,
    seen: HashSet<Uuid>,
    seen_order: VecDeque<Uuid>,
    /// The last event applied, to resume from after a reconnect.
    pub last_event: Option<Uuid>,
    /// Show events since the scene last looked, for animations.
    pub triggers: Vec<Trigger>,
    /// Remote lot images downloaded under the assets folder: URL → relative path.
    images: HashMap<String, String>,
}

impl Show {
    /// Applies a snapshot taken at `local_now` on the renderer's clock.
    pub fn apply_snapshot(&mut self, snapshot: Snapshot, local_now: DateTime<Utc>) {
        if let Some(now) = snapshot.now {
            self.clock_offset = now - local_now;
        }
        for auction in snapshot.auctions {
            self.upsert(auction);
        }
        for (id, bids) in snapshot.bids {
            let ticker: VecDeque<TickerBid> = bids
                .iter()
                .rev()
                .filter(|bid| bid.status == BidStatus::Accepted)
                .take(TICKER_KEEP)
                .map(TickerBid::from_bid)
                .collect();
            self.tickers.insert(id, ticker);
        }
        if snapshot.mood.is_some() {
            self.mood = snapshot.mood;
        }
        if snapshot.expression.is_some() {
            self.expression = snapshot.expression;
        }
    }

    /// Applies one event; false when it was seen before, is older than what is
    /// known, or is not something the show draws.
    pub fn apply(&mut self, event: &Envelope, local_now: DateTime<Utc>) -> bool {
        if !self.seen.insert(event.id) {
            return false;
        }
        self.seen_order.push_back(event.id);
        if self.seen_order.len() > SEEN_KEEP
            && let Some(old) = self.seen_order.pop_front()
        {
            self.seen.remove(&old);
        }
        self.last_event = Some(event.id);
        let on_air_before = self.on_air_id();
        let applied = match event.event_type {
            EventType::AuctionStart | EventType::AuctionEnd => {
                event.decode::<AuctionSnapshot>().ok().is_some_and(|data| self.upsert(data.auction))
            }
            EventType::AuctionCancelled => {
                event.decode::<AuctionCancelled>().ok().is_some_and(|data| self.upsert(data.auction))
            }
            EventType::AuctionBidAccepted => {
                event.decode::<BidEvent>().ok().is_some_and(|data| self.accepted(data))
            }
            EventType::AuctionBidRejected => event
                .decode::<BidEvent>()
                .ok()
                .and_then(|data| data.auction)
                .is_some_and(|auction| self.upsert(auction)),
            EventType::AuctionExtended => {
                event.decode::<AuctionExtended>().ok().is_some_and(|data| self.extended(&data))
            }
            EventType::AuctionWinner => {
                event.decode::<AuctionWinner>().ok().is_some_and(|data| self.winner(data))
            }
            EventType::AgentMessage => event.decode::<AgentMessage>().ok().is_some_and(|message| {
                if message.channel != Channel::Stream {
                    return false;
                }
                self.line =
                    Some(Line { text: message.text, started: local_now, levels: None, speech_secs: None });
                self.set_mood(message.mood);
                self.triggers.push(Trigger::Message);
                true
            }),
            EventType::AgentMood => event.decode::<AgentMood>().ok().is_some_and(|data| {
                self.set_mood(data.mood);
                self.expression = Some(data.expression);
                true
            }),
            _ => false,
        };
        if applied && self.on_air_id() != on_air_before {
            self.triggers.push(Trigger::Enter);
        }
        applied
    }

    /// The line on air is spoken now: its loudness and length.
    pub fn speaking(&mut self, levels: std::sync::Arc<Vec<f32>>, secs: f32) {
        if let Some(line) = &mut self.line {
            line.levels = Some(levels);
            line.speech_secs = Some(secs);
        }
    }

    /// A lot image downloaded to `path` (under the assets folder).
    pub fn image_ready(&mut self, url: String, path: String) {
        self.images.insert(url, path);
    }

    fn set_mood(&mut self, mood: Mood) {
        if self.mood != Some(mood) {
            self.mood = Some(mood);
            self.triggers.push(Trigger::Mood);
        }
    }

    /// Stores a newer snapshot of an auction; false when it is not newer.
    fn upsert(&mut self, auction: Auction) -> bool {
        let newer = self.auctions.get(&auction.id).is_none_or(|known| auction.seq >= known.seq);
        if !newer {
            return false;
        }
        let ended = is_final(auction.state)
            && self.auctions.get(&auction.id).is_some_and(|known| !is_final(known.state));
        self.auctions.insert(auction.id, auction);
        if ended {
            self.triggers.push(Trigger::Closed);
        }
        true
    }

    fn accepted(&mut self, data: BidEvent) -> bool {
        let id = data.bid.auction_id;
        if self.auctions.get(&id).is_some_and(|known| data.seq <= known.seq) {
            return false;
        }
        let ticker = self.tickers.entry(id).or_default();
        ticker.push_front(TickerBid::from_bid(&data.bid));
        ticker.truncate(TICKER_KEEP);
        if let Some(auction) = data.auction {
            self.upsert(auction);
        } else if let Some(known) = self.auctions.get_mut(&id) {
            known.seq = data.seq;
        }
        self.triggers.push(Trigger::BidAccepted);
        true
    }

    fn extended(&mut self, data: &AuctionExtended) -> bool {
        let Some(known) = self.auctions.get_mut(&data.auction_id) else { return false };
        if data.seq < known.seq {
            return false;
        }
        known.ends_at = Some(data.ends_at);
        known.extended = true;
        self.triggers.push(Trigger::Extended);
        true
    }

    fn winner(&mut self, data: AuctionWinner) -> bool {
        let Some(known) = self.auctions.get_mut(&data.auction_id) else { return false };
        if known.outcome.is_some() || data.seq < known.seq {
            return false;
        }
        known.outcome = Some(data.outcome);
        if !is_final(known.state) {
            known.state = AuctionState::Closed;
            self.triggers.push(Trigger::Closed);
        }
        true
    }

    /// The auction on air: the open one ending first; else the one that ended last;
    /// else the next scheduled.
    pub fn on_air(&self) -> Option<&Auction> {
        let live = self
            .auctions
            .values()
            .filter(|auction| matches!(auction.state, AuctionState::Open | AuctionState::Closing))
            .min_by_key(|auction| auction.ends_at);
        let ended = || {
            self.auctions
                .values()
                .filter(|auction| is_final(auction.state))
                .max_by_key(|auction| (auction.ends_at, auction.seq))
        };
        let next = || {
            self.auctions
                .values()
                .filter(|auction| auction.state == AuctionState::Scheduled)
                .min_by_key(|auction| auction.starts_at)
        };
        live.or_else(ended).or_else(next)
    }

    fn on_air_id(&self) -> Option<Uuid> {
        self.on_air().map(|auction| auction.id)
    }

    /// The accepted bids of the lot on air, newest first.
    pub fn ticker(&self) -> impl Iterator<Item = &TickerBid> {
        self.on_air_id().and_then(|id| self.tickers.get(&id)).into_iter().flatten()
    }

    /// The backend's clock, from the renderer's.
    pub fn backend_now(&self, local_now: DateTime<Utc>) -> DateTime<Utc> {
        local_now + self.clock_offset
    }

    /// The state of the lot on air as scenes see it (`waiting` when none); `closing`
    /// once `ends_at` has passed but the grace has not.
    pub fn state(&self, local_now: DateTime<Utc>) -> &'static str {
        let Some(auction) = self.on_air() else { return "waiting" };
        let now = self.backend_now(local_now);
        match auction.state {
            AuctionState::Scheduled => "scheduled",
            AuctionState::Open if auction.ends_at.is_some_and(|ends_at| now >= ends_at) => "closing",
            AuctionState::Open => "open",
            AuctionState::Closing => "closing",
            AuctionState::Cancelled => "cancelled",
            AuctionState::Closed | AuctionState::Settled | AuctionState::PaymentFailed => "closed",
        }
    }

    /// The countdown line at `local_now`.
    pub fn countdown(&self, local_now: DateTime<Utc>) -> String {
        let Some(auction) = self.on_air() else { return "STARTING SOON".to_owned() };
        match self.state(local_now) {
            "scheduled" => "STARTING SOON".to_owned(),
            "closing" => "CLOSING".to_owned(),
            "cancelled" => "CANCELLED".to_owned(),
            "closed" => result_line(auction),
            _ => match auction.ends_at {
                None => "OPEN".to_owned(),
                Some(ends_at) => {
                    let left = (ends_at - self.backend_now(local_now)).num_milliseconds().max(0);
                    // Rounded up: the clock shows 0:01 until the last second has passed.
                    let secs = (left + 999) / 1000;
                    let clock = format!("{}:{:02}", secs / 60, secs % 60);
                    if auction.extended { format!("{clock}  EXTENDED") } else { clock }
                }
            },
        }
    }

    /// True in the last ten seconds, when the countdown changes style.
    pub fn final_seconds(&self, local_now: DateTime<Utc>) -> bool {
        self.state(local_now) == "open"
            && self
                .on_air()
                .and_then(|auction| auction.ends_at)
                .is_some_and(|ends_at| (ends_at - self.backend_now(local_now)).num_milliseconds() <= 10_000)
    }

    /// A field for scene templates; `None` when it has no value now.
    pub fn field(&self, name: &str, local_now: DateTime<Utc>) -> Option<String> {
        let auction = self.on_air();
        let high = auction.and_then(|auction| auction.high_bid.as_ref());
        let winner = auction
            .and_then(|auction| auction.outcome.as_ref())
            .filter(|outcome| outcome.result == OutcomeResult::Sold);
        let yes_no = |value: bool| if value { "true" } else { "false" }.to_owned();
        match name {
            "auction.title" => auction.map(|auction| auction.title.clone()),
            "auction.state" => Some(self.state(local_now).to_owned()),
            "auction.lot" => {
                auction.and_then(|auction| auction.lot.as_ref()).map(|lot| format!("#{}", lot.token_id))
            }
            "auction.image" => {
                let url = auction.and_then(|auction| auction.lot.as_ref()?.image_url.as_ref())?;
                match self.images.get(url) {
                    Some(path) => Some(path.clone()),
                    // A remote image not downloaded (yet) has no value here.
                    None if url.contains("://") => None,
                    None => Some(url.clone()),
                }
            }
            "auction.high_bid.amount" => high.map(|bid| bid.amount.to_string()),
            "auction.high_bid.handle" => high.map(|bid| handle(&bid.bidder)),
            "auction.min_next_bid" => auction.map(|auction| auction.min_next_bid.to_string()),
            "auction.starting_price" => auction.map(|auction| auction.starting_price.to_string()),
            "auction.reserve" => {
                auction.filter(|auction| auction.reserve_price.is_some() || auction.reserve_met).map(
                    |auction| if auction.reserve_met { "RESERVE MET" } else { "RESERVE NOT MET" }.to_owned(),
                )
            }
            "auction.reserve_met" => auction.map(|auction| yes_no(auction.reserve_met)),
            "auction.bid_count" => auction.map(|auction| auction.bid_count.to_string()),
            "auction.countdown" => Some(self.countdown(local_now)),
            "auction.ends_at" => auction
                .and_then(|auction| auction.ends_at)
                .map(|ends_at| ends_at.format("%H:%M:%S UTC").to_string()),
            "auction.extended" => auction.map(|auction| yes_no(auction.extended)),
            "auction.result" => auction.filter(|auction| auction.outcome.is_some()).map(result_line),
            "auction.winner.handle" => winner.and_then(|outcome| outcome.winner.as_ref()).map(handle),
            "auction.winner.amount" => {
                winner.and_then(|outcome| outcome.amount).map(|amount| amount.to_string())
            }
            "agent.mood" => self.mood.map(|mood| mood.as_str().to_owned()),
            "agent.line" => self.line.as_ref().map(|line| line.text.clone()),
            "show.next" => self
                .auctions
                .values()
                .filter(|auction| auction.state == AuctionState::Scheduled)
                .min_by_key(|auction| auction.starts_at)
                .map(|auction| match auction.starts_at {
                    Some(at) => format!("{} at {}", auction.title, at.format("%H:%M UTC")),
                    None => auction.title.clone(),
                }),
            "show.clock" => Some(self.backend_now(local_now).format("%H:%M:%S UTC").to_string()),
            _ => None,
        }
    }
}

fn is_final(state: AuctionState) -> bool {
    matches!(
        state,
        AuctionState::Closed | AuctionState::Settled | AuctionState::Cancelled | AuctionState::PaymentFailed
    )
}

/// "SOLD to @handle for X ETH", "RESERVE NOT MET" or "NO BIDS".
fn result_line(auction: &Auction) -> String {
    match &auction.outcome {
        Some(outcome) => match outcome.result {
            OutcomeResult::Sold => format!(
                "SOLD to @{} for {} ETH",
                outcome.winner.as_ref().map(handle).unwrap_or_default(),
                outcome.amount.map(|amount| amount.to_string()).unwrap_or_default()
            ),
            OutcomeResult::ReserveNotMet => "RESERVE NOT MET".to_owned(),
            OutcomeResult::NoBids => "NO BIDS".to_owned(),
        },
        None if auction.state == AuctionState::Cancelled => "CANCELLED".to_owned(),
        None => "CLOSED".to_owned(),
    }
}

#[cfg(test)]
pub mod tests {
    use sothebais_shared::amount::Amount;
    use sothebais_shared::auction::{BidSource, HighBid, Outcome};
    use sothebais_shared::events::Source;

    use super::*;

    pub fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
    }

    fn eth(text: &str) -> Amount {
        text.parse().expect("amount")
    }

    pub fn auction(seq: u64, ends_in: i64) -> Auction {
        Auction {
            id: Uuid::from_u128(1),
            title: "Genesis #42".into(),
            state: AuctionState::Open,
            lot: None,
            starting_price: eth("1"),
            reserve_price: None,
            reserve_met: true,
            high_bid: None,
            min_next_bid: eth("1"),
            bid_count: 0,
            starts_at: Some(at(0)),
            scheduled_end: Some(at(ends_in)),
            ends_at: Some(at(ends_in)),
            extended: false,
            closes_at: Some(at(ends_in + 2)),
            outcome: None,
            campaign_id: None,
            seq,
        }
    }

    pub fn accepted(seq: u64, handle: &str, amount: &str) -> Envelope {
        let mut auction = auction(seq, 120);
        let bidder = Bidder { id: format!("x:{handle}"), handle: Some(handle.into()) };
        auction.high_bid =
            Some(HighBid { amount: eth(amount), bidder: bidder.clone(), bid_id: Uuid::now_v7(), at: at(1) });
        auction.bid_count = seq;
        let bid = Bid {
            id: Uuid::now_v7(),
            auction_id: auction.id,
            seq,
            amount: eth(amount),
            bidder,
            source: BidSource::X,
            source_ref: None,
            created_at: at(1),
            received_at: at(1),
            status: BidStatus::Accepted,
            reason: None,
            extended_to: None,
            hash: String::new(),
            prev_hash: String::new(),
        };
        Envelope::new_typed(
            EventType::AuctionBidAccepted,
            Source::AuctionEngine,
            &BidEvent { bid, seq, auction: Some(auction) },
        )
        .expect("envelope")
    }

    fn open_show() -> Show {
        let mut show = Show::default();
        show.apply_snapshot(
            Snapshot { now: Some(at(0)), auctions: vec![auction(0, 125)], ..Snapshot::default() },
            at(0),
        );
        show
    }

    #[test]
    fn the_countdown_follows_the_backend_clock_rounding_up() {
        let mut show = Show::default();
        // The renderer's clock is 3 s behind the backend's.
        show.apply_snapshot(
            Snapshot { now: Some(at(3)), auctions: vec![auction(0, 125)], ..Snapshot::default() },
            at(0),
        );
        assert_eq!(show.countdown(at(0)), "2:02");
        assert_eq!(show.countdown(at(121) + TimeDelta::milliseconds(1)), "0:01");
        assert_eq!(show.countdown(at(122)), "CLOSING");
        assert_eq!(show.field("auction.state", at(122)).as_deref(), Some("closing"));
    }

    #[test]
    fn an_accepted_bid_updates_the_high_bid_and_the_ticker_once() {
        let mut show = open_show();
        let event = accepted(1, "alice", "1.5");
        assert!(show.apply(&event, at(1)));
        assert!(!show.apply(&event, at(1)), "the same event is applied once");
        assert_eq!(show.field("auction.high_bid.amount", at(1)).as_deref(), Some("1.5"));
        assert_eq!(show.field("auction.high_bid.handle", at(1)).as_deref(), Some("alice"));
        assert_eq!(show.ticker().count(), 1);
        assert_eq!(show.triggers, vec![Trigger::BidAccepted]);
    }

    #[test]
    fn a_handle_read_from_x_is_drawn_with_one_at_sign() {
        let mut show = open_show();
        show.apply(&accepted(1, "@curie", "1.5"), at(1));
        assert_eq!(show.field("auction.high_bid.handle", at(1)).as_deref(), Some("curie"));
        assert_eq!(show.ticker().map(|bid| bid.handle.as_str()).collect::<Vec<_>>(), ["curie"]);
    }

    #[test]
    fn older_news_never_overwrites_newer() {
        let mut show = open_show();
        show.apply(&accepted(2, "bob", "2"), at(1));
        // A replayed older bid (a new event id, an old seq) and an old snapshot change nothing.
        assert!(!show.apply(&accepted(1, "alice", "1.5"), at(1)));
        show.apply_snapshot(Snapshot { auctions: vec![auction(1, 125)], ..Snapshot::default() }, at(1));
        assert_eq!(show.field("auction.high_bid.handle", at(1)).as_deref(), Some("bob"));
        assert_eq!(show.ticker().map(|bid| bid.handle.as_str()).collect::<Vec<_>>(), ["bob"]);
    }

    #[test]
    fn the_result_line_says_who_won() {
        let mut show = open_show();
        show.apply(&accepted(1, "alice", "1.5"), at(1));
        let winner = AuctionWinner {
            auction_id: Uuid::from_u128(1),
            outcome: Outcome {
                result: OutcomeResult::Sold,
                winner: Some(Bidder { id: "x:alice".into(), handle: Some("alice".into()) }),
                amount: Some(eth("1.5")),
            },
            seq: 2,
        };
        let event =
            Envelope::new_typed(EventType::AuctionWinner, Source::AuctionEngine, &winner).expect("event");
        assert!(show.apply(&event, at(200)));
        assert_eq!(show.countdown(at(200)), "SOLD to @alice for 1.5 ETH");
        assert_eq!(show.field("auction.state", at(200)).as_deref(), Some("closed"));
        assert!(show.triggers.contains(&Trigger::Closed));
    }

    #[test]
    fn every_field_a_scene_may_name_is_answered() {
        let mut show = open_show();
        show.apply(&accepted(1, "alice", "1.5"), at(1));
        for name in FIELDS {
            // Fields without a value are None; none may be unknown to `field`.
            let known = show.field(name, at(1)).is_some()
                || [
                    "auction.lot",
                    "auction.image",
                    "auction.reserve",
                    "auction.result",
                    "auction.winner.handle",
                ]
                .contains(name)
                || name.starts_with("auction.winner")
                || name.starts_with("agent.")
                || *name == "show.next";
            assert!(known, "{name} has no value");
        }
        let row = show.ticker().next().expect("row");
        for name in ROW_FIELDS {
            assert!(row.field(name).is_some(), "{name}");
        }
    }
}
