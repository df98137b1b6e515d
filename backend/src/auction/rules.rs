//! The auction rules as a pure state machine: no I/O, no clock. Every operation takes
//! the time it happens at, so the same inputs always give the same decisions (the
//! property tests and the log replay depend on it).
//!
//! Times are kept at millisecond precision, the precision of the stored log.

use chrono::{DateTime, Duration, DurationRound as _, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest as _, Sha256};
use sothebais_shared::Amount;
use sothebais_shared::auction::{
    AntiSnipe, Auction, AuctionState, Bid, BidSource, BidStatus, Bidder, HighBid, IncrementStep, Lot,
    NewAuction, Outcome, OutcomeResult, RejectReason, Unverifiable, Verification,
};
use uuid::Uuid;

/// The default increment table of `spec/auction.md` (ETH): below 0.1 → 0.005, …, 25 and
/// above → 1.
pub fn default_increment_table() -> Vec<IncrementStep> {
    let eth = |text: &str| text.parse::<Amount>().unwrap_or(Amount::ZERO);
    [
        (Some("0.1"), "0.005"),
        (Some("0.5"), "0.01"),
        (Some("1"), "0.025"),
        (Some("2.5"), "0.05"),
        (Some("5"), "0.1"),
        (Some("10"), "0.25"),
        (Some("25"), "0.5"),
        (None, "1"),
    ]
    .into_iter()
    .map(|(below, step)| IncrementStep { below: below.map(eth), step: eth(step) })
    .collect()
}

/// Default anti-snipe: a bid with less than 30 s left resets the end to 30 s after
/// it, at most 300 s past the scheduled end.
pub const DEFAULT_ANTI_SNIPE: AntiSnipe =
    AntiSnipe { window_secs: 30, reset_secs: 30, max_extension_secs: 300 };
pub const DEFAULT_DURATION_SECS: u32 = 90;
pub const DEFAULT_LATE_GRACE_SECS: u32 = 15;
pub const DEFAULT_INCREMENT_PERCENT: u32 = 5;
/// One accepted bid per bidder per auction per this many milliseconds.
pub const DEFAULT_BIDDER_INTERVAL_MS: i64 = 2_000;
/// The default sanity cap (`MAX_BID_ETH`): no bid above this many ETH is taken seriously.
pub const DEFAULT_MAX_BID_ETH: u64 = 10_000;

/// The settings of one auction, fixed once the first bid is accepted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settings {
    pub starting_price: Amount,
    pub reserve_price: Amount,
    pub reserve_visible: bool,
    pub increment_percent: u32,
    pub increment_table: Vec<IncrementStep>,
    pub duration_secs: u32,
    pub anti_snipe: Option<AntiSnipe>,
    pub late_grace_secs: u32,
    pub consignor: Option<String>,
    pub bidder_interval_ms: i64,
    pub max_bid: Amount,
    /// Absent in auctions stored before the chain checks: none.
    #[serde(default)]
    pub verification: Verification,
    #[serde(default)]
    pub unverifiable: Unverifiable,
}

/// Why a new auction's settings are refused; `field` names the input at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct SettingsError {
    pub field: &'static str,
    pub message: String,
}

fn invalid(field: &'static str, message: impl Into<String>) -> SettingsError {
    SettingsError { field, message: message.into() }
}

impl Settings {
    /// The settings a `NewAuction` asks for, defaults filled in and checked; `max_bid`
    /// is the sanity cap no price or bid may pass.
    pub fn from_new(new: &NewAuction, max_bid: Amount) -> Result<Settings, SettingsError> {
        if new.title.trim().is_empty() {
            return Err(invalid("title", "must not be empty"));
        }
        if new.starting_price.is_zero() {
            return Err(invalid("starting_price", "must be greater than 0"));
        }
        if new.starting_price > max_bid {
            return Err(invalid("starting_price", format!("must be at most {max_bid} ETH")));
        }
        let reserve_price = new.reserve_price.unwrap_or(new.starting_price);
        if reserve_price.is_zero() || reserve_price > max_bid {
            return Err(invalid(
                "reserve_price",
                format!("must be greater than 0 and at most {max_bid} ETH"),
            ));
        }
        let increment_percent = new.increment_percent.unwrap_or(DEFAULT_INCREMENT_PERCENT);
        if increment_percent > 100 {
            return Err(invalid("increment_percent", "must be between 0 and 100"));
        }
        let increment_table = new.increment_table.clone().unwrap_or_else(default_increment_table);
        for (index, row) in increment_table.iter().enumerate() {
            if row.step.is_zero() {
                return Err(invalid("increment_table", format!("row {index}: step must be greater than 0")));
            }
            let last = index + 1 == increment_table.len();
            match (row.below, increment_table.get(index + 1).and_then(|next| next.below)) {
                (None, _) if !last => {
                    return Err(invalid(
                        "increment_table",
                        format!("row {index}: only the last row may omit `below`"),
                    ));
                }
                (Some(below), Some(next)) if next <= below => {
                    return Err(invalid("increment_table", "rows must be in increasing order of `below`"));
                }
                _ => {}
            }
        }
        let duration_secs = new.duration_secs.unwrap_or(DEFAULT_DURATION_SECS);
        if duration_secs == 0 || duration_secs > 7 * 24 * 3600 {
            return Err(invalid("duration_secs", "must be between 1 and 604800"));
        }
        let anti_snipe = match new.anti_snipe {
            None => Some(DEFAULT_ANTI_SNIPE),
            Some(choice) => choice,
        };
        if let Some(rule) = anti_snipe
            && (rule.window_secs == 0 || rule.reset_secs == 0)
        {
            return Err(invalid(
                "anti_snipe",
                "window_secs and reset_secs must be greater than 0 (null disables)",
            ));
        }
        let late_grace_secs = new.late_grace_secs.unwrap_or(DEFAULT_LATE_GRACE_SECS);
        if late_grace_secs > 600 {
            return Err(invalid("late_grace_secs", "must be at most 600"));
        }
        Ok(Settings {
            starting_price: new.starting_price,
            reserve_price,
            reserve_visible: new.reserve_visible.unwrap_or(true),
            increment_percent,
            increment_table,
            duration_secs,
            anti_snipe,
            late_grace_secs,
            consignor: new.consignor.clone(),
            bidder_interval_ms: DEFAULT_BIDDER_INTERVAL_MS,
            max_bid,
            verification: new.verification,
            unverifiable: new.unverifiable,
        })
    }

    /// The least raise over `high`: the larger of the percentage and the table's step,
    /// and never less than one wei, so accepted amounts strictly increase.
    pub fn increment(&self, high: Amount) -> Amount {
        let percent = high.percent_ceil(self.increment_percent).unwrap_or(self.max_bid);
        let step = self
            .increment_table
            .iter()
            .find(|row| row.below.is_none_or(|below| high < below))
            .map_or(Amount::ZERO, |row| row.step);
        percent.max(step).max(Amount::from_wei(1))
    }
}

/// The stored life stage of an auction. `closing` is not stored: it is an open auction
/// past `ends_at` and before `ends_at + grace`, derived from the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    Scheduled,
    Open,
    Closed,
    Settled,
    Cancelled,
    PaymentFailed,
}

/// Everything the rules know about one auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuctionCore {
    pub id: Uuid,
    pub title: String,
    pub lot: Option<Lot>,
    pub campaign_id: Option<Uuid>,
    pub settings: Settings,
    pub phase: Phase,
    pub starts_at: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub high_bid: Option<HighBid>,
    pub accepted_count: u64,
    /// Bids decided so far (accepted and rejected): the last bid's `seq`.
    pub seq: u64,
    pub last_hash: String,
    /// When each bidder's last accepted bid arrived, for the per-bidder rate; only the
    /// last `bidder_interval_ms` are kept. Not stored with the state: it is rebuilt
    /// from the bid log when a writer loads the auction (see `recent_accepted`).
    #[serde(skip)]
    pub last_accepted: RateMemory,
    pub outcome: Option<Outcome>,
    pub cancelled: Option<Cancellation>,
}

/// When each bidder's last accepted bid arrived, within the rate window. Arrivals only
/// move forward, so entries leave in arrival order: remembering costs O(1) amortised
/// however many bidders there are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RateMemory {
    last: std::collections::HashMap<String, DateTime<Utc>>,
    order: std::collections::VecDeque<(DateTime<Utc>, String)>,
}

impl RateMemory {
    /// Records an accepted bid and forgets those older than `window` before it.
    pub fn remember(&mut self, bidder: String, at: DateTime<Utc>, window: Duration) {
        while let Some((oldest, who)) = self.order.front() {
            if at - *oldest < window {
                break;
            }
            if self.last.get(who) == Some(oldest) {
                self.last.remove(who);
            }
            self.order.pop_front();
        }
        self.last.insert(bidder.clone(), at);
        self.order.push_back((at, bidder));
    }

    /// When `bidder`'s last remembered accepted bid arrived.
    pub fn last(&self, bidder: &str) -> Option<DateTime<Utc>> {
        self.last.get(bidder).copied()
    }

    /// How many bidders are remembered.
    pub fn len(&self) -> usize {
        self.last.len()
    }

    pub fn is_empty(&self) -> bool {
        self.last.is_empty()
    }
}

/// Who cancelled and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cancellation {
    pub at: DateTime<Utc>,
    pub by: String,
    pub reason: Option<String>,
}

/// A bid as it reaches the rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BidInput {
    pub id: Uuid,
    pub amount: Offer,
    pub bidder: Bidder,
    pub source: BidSource,
    pub source_ref: Option<String>,
    /// When the bidder acted: the post's time for X, the arrival for HTTP.
    pub created_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
}

/// The amount a bid offers, as its source read it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Amount(Amount),
    /// Not an ETH amount (the log records 0): `INVALID_AMOUNT`.
    Unreadable,
    /// A number that reads two ways, such as `1,500` in a post: `AMBIGUOUS_AMOUNT`.
    Ambiguous,
}

impl Offer {
    /// The amount, or 0 when there is none (as the log records it).
    pub fn or_zero(self) -> Amount {
        match self {
            Offer::Amount(amount) => amount,
            Offer::Unreadable | Offer::Ambiguous => Amount::ZERO,
        }
    }
}

impl From<Option<Amount>> for Offer {
    fn from(amount: Option<Amount>) -> Offer {
        amount.map_or(Offer::Unreadable, Offer::Amount)
    }
}

/// Facts about the bidder the rules cannot know themselves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BidderStanding {
    pub blocked: bool,
    /// `Some(false)` when verification is required and the bidder has no linked wallet.
    pub verified: Option<bool>,
    /// `Some(false)` when the linked wallet cannot cover the bid.
    pub funds_sufficient: Option<bool>,
    /// The bidder's linked wallet is the consignor's address.
    pub consignor: bool,
}

/// What changed on its own as time passed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    Opened,
    Closed(Outcome),
}

/// Why an operator command was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    Invalid(String),
}

/// Whether `bidder` is the consignor named `consignor`: its id, or its handle when
/// the consignor is named by `@handle` (case aside). A consignor named by address is
/// matched by the bid checks, which know the bidder's linked wallet
/// ([`BidderStanding::consignor`]).
fn is_consignor(consignor: &str, bidder: &Bidder) -> bool {
    let consignor = consignor.trim();
    consignor == bidder.id
        || (consignor.starts_with('@')
            && bidder.handle.as_deref().is_some_and(|handle| {
                handle.trim().trim_start_matches('@').eq_ignore_ascii_case(consignor.trim_start_matches('@'))
            }))
}

/// Truncates to the millisecond, the precision of the stored log.
pub fn millis(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(Duration::milliseconds(1)).unwrap_or(at)
}

fn secs(value: u32) -> Duration {
    Duration::seconds(i64::from(value))
}

/// The hash every bid log starts from.
pub fn genesis_hash(auction_id: Uuid) -> String {
    hex(&Sha256::digest(format!("sothebais:auction:{auction_id}").as_bytes()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// The hash of a bid record: SHA-256 over its canonical line, which ends with the
/// previous record's hash. Anyone holding the log can recompute it.
pub fn bid_hash(bid: &Bid) -> String {
    let time =
        |at: Option<DateTime<Utc>>| at.map_or_else(String::new, |at| at.timestamp_millis().to_string());
    let line = format!(
        "{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}|{}",
        bid.auction_id,
        bid.seq,
        bid.amount.wei(),
        bid.bidder.id,
        bid.bidder.handle.as_deref().unwrap_or(""),
        bid.source.as_str(),
        bid.source_ref.as_deref().unwrap_or(""),
        bid.created_at.timestamp_millis(),
        bid.received_at.timestamp_millis(),
        bid.status.as_str(),
        bid.reason.map_or("", RejectReason::code),
        time(bid.extended_to),
        bid.prev_hash,
    );
    hex(&Sha256::digest(line.as_bytes()))
}

/// Checks a bid log: gapless sequence from 1, each record chained to the previous one
/// and hashing to its stored hash. Returns the first bad `seq`.
pub fn verify_chain(auction_id: Uuid, bids: &[Bid]) -> Result<(), u64> {
    let mut previous = genesis_hash(auction_id);
    for (index, bid) in bids.iter().enumerate() {
        let expected_seq = index as u64 + 1;
        if bid.seq != expected_seq || bid.prev_hash != previous || bid_hash(bid) != bid.hash {
            return Err(expected_seq);
        }
        previous = bid.hash.clone();
    }
    Ok(())
}

/// The outcome a bid log implies: the last accepted bid is the high bid.
pub fn outcome_from_log(bids: &[Bid], reserve: Amount) -> Outcome {
    let high = bids.iter().rev().find(|bid| bid.status == BidStatus::Accepted);
    outcome_of(high.map(|bid| (bid.amount, bid.bidder.clone())), reserve)
}

fn outcome_of(high: Option<(Amount, Bidder)>, reserve: Amount) -> Outcome {
    match high {
        None => Outcome { result: OutcomeResult::NoBids, winner: None, amount: None },
        Some((amount, bidder)) if amount >= reserve => {
            Outcome { result: OutcomeResult::Sold, winner: Some(bidder), amount: Some(amount) }
        }
        Some((amount, _)) => {
            Outcome { result: OutcomeResult::ReserveNotMet, winner: None, amount: Some(amount) }
        }
    }
}

impl AuctionCore {
    /// A new auction: scheduled for `starts_at`, or waiting for an operator's start.
    pub fn create(id: Uuid, new: &NewAuction, max_bid: Amount) -> Result<AuctionCore, SettingsError> {
        let settings = Settings::from_new(new, max_bid)?;
        if let Some(at) = new.starts_at {
            sothebais_shared::time::check_year(at).map_err(|message| invalid("starts_at", message))?;
        }
        let starts_at = new.starts_at.map(millis);
        Ok(AuctionCore {
            id,
            title: new.title.trim().to_owned(),
            lot: new.lot.clone(),
            campaign_id: new.campaign_id,
            scheduled_end: starts_at.map(|start| start + secs(settings.duration_secs)),
            ends_at: starts_at.map(|start| start + secs(settings.duration_secs)),
            settings,
            phase: Phase::Scheduled,
            starts_at,
            high_bid: None,
            accepted_count: 0,
            seq: 0,
            last_hash: genesis_hash(id),
            last_accepted: RateMemory::default(),
            outcome: None,
            cancelled: None,
        })
    }

    /// Restores the per-bidder rate memory from the accepted bids of the log that
    /// arrived within the rate window before `now`.
    pub fn restore_rate_memory(
        &mut self,
        recent_accepted: impl IntoIterator<Item = (String, DateTime<Utc>)>,
        now: DateTime<Utc>,
    ) {
        let window = Duration::milliseconds(self.settings.bidder_interval_ms);
        self.last_accepted = RateMemory::default();
        for (bidder, at) in recent_accepted {
            if now - at < window {
                self.last_accepted.remember(bidder, at, window);
            }
        }
    }

    /// How far back the bid log must be read to restore the rate memory.
    pub fn rate_window(&self) -> Duration {
        Duration::milliseconds(self.settings.bidder_interval_ms)
    }

    /// `ends_at` plus the late grace: when the winner is decided.
    pub fn closes_at(&self) -> Option<DateTime<Utc>> {
        self.ends_at.map(|end| end + secs(self.settings.late_grace_secs))
    }

    /// The next time at which `advance` would change something.
    pub fn next_deadline(&self) -> Option<DateTime<Utc>> {
        match self.phase {
            Phase::Scheduled => self.starts_at,
            Phase::Open => self.closes_at(),
            _ => None,
        }
    }

    /// The state as a viewer sees it at `now` (`closing` is derived).
    pub fn state_at(&self, now: DateTime<Utc>) -> AuctionState {
        match self.phase {
            Phase::Scheduled => AuctionState::Scheduled,
            Phase::Open if self.ends_at.is_some_and(|end| now >= end) => AuctionState::Closing,
            Phase::Open => AuctionState::Open,
            Phase::Closed => AuctionState::Closed,
            Phase::Settled => AuctionState::Settled,
            Phase::Cancelled => AuctionState::Cancelled,
            Phase::PaymentFailed => AuctionState::PaymentFailed,
        }
    }

    /// The least amount the next bid must reach.
    pub fn min_next_bid(&self) -> Amount {
        match &self.high_bid {
            None => self.settings.starting_price,
            Some(high) => {
                high.amount.checked_add(self.settings.increment(high.amount)).unwrap_or(self.settings.max_bid)
            }
        }
    }

    /// Applies what time alone changes: opening at `starts_at`, closing at
    /// `ends_at + grace`. Opening keeps the schedule even when noticed late.
    pub fn advance(&mut self, now: DateTime<Utc>) -> Vec<Transition> {
        let mut transitions = Vec::new();
        if self.phase == Phase::Scheduled && self.starts_at.is_some_and(|start| start <= now) {
            self.phase = Phase::Open;
            transitions.push(Transition::Opened);
        }
        if self.phase == Phase::Open && self.closes_at().is_some_and(|close| close <= now) {
            let outcome = outcome_of(
                self.high_bid.as_ref().map(|high| (high.amount, high.bidder.clone())),
                self.settings.reserve_price,
            );
            self.phase = Phase::Closed;
            self.outcome = Some(outcome.clone());
            transitions.push(Transition::Closed(outcome));
        }
        transitions
    }

    /// An operator opens a scheduled auction now.
    pub fn start(&mut self, now: DateTime<Utc>) -> Result<(), CommandError> {
        if self.phase != Phase::Scheduled {
            return Err(CommandError::Conflict(format!(
                "the auction is {:?}, not scheduled",
                self.state_at(now)
            )));
        }
        let now = millis(now);
        let end = now + secs(self.settings.duration_secs);
        self.starts_at = Some(now);
        self.scheduled_end = Some(end);
        self.ends_at = Some(end);
        self.phase = Phase::Open;
        Ok(())
    }

    /// Cancels: an operator only before the first accepted bid; an admin at any time
    /// before the close, with a written reason.
    pub fn cancel(
        &mut self,
        now: DateTime<Utc>,
        by: &str,
        by_admin: bool,
        reason: Option<String>,
    ) -> Result<(), CommandError> {
        if !matches!(self.phase, Phase::Scheduled | Phase::Open) {
            return Err(CommandError::Conflict(format!(
                "a {:?} auction cannot be cancelled",
                self.state_at(now)
            )));
        }
        let reason = reason.map(|text| text.trim().to_owned()).filter(|text| !text.is_empty());
        if self.accepted_count > 0 {
            if !by_admin {
                return Err(CommandError::Forbidden(
                    "after the first accepted bid only an admin may cancel, with a reason".into(),
                ));
            }
            if reason.is_none() {
                return Err(CommandError::Invalid("cancelling after bids needs a written reason".into()));
            }
        }
        self.phase = Phase::Cancelled;
        self.cancelled = Some(Cancellation { at: millis(now), by: by.to_owned(), reason });
        Ok(())
    }

    /// Decides one bid at `now` (its arrival). Call `advance(now)` first. Returns the
    /// logged bid, accepted or rejected, chained to the previous one.
    pub fn decide(&mut self, input: &BidInput, standing: BidderStanding) -> Bid {
        let reason = self.check(input, standing);
        let acted_at = self.acted_at(input);
        let mut extended_to = None;
        if reason.is_none() {
            let amount = input.amount.or_zero();
            self.high_bid =
                Some(HighBid { amount, bidder: input.bidder.clone(), bid_id: input.id, at: acted_at });
            self.accepted_count += 1;
            // The rate counts arrivals, which only move forward: entries older than the
            // window can never matter again, so they go and the state stays small.
            let received_at = millis(input.received_at);
            let window = Duration::milliseconds(self.settings.bidder_interval_ms);
            self.last_accepted.remember(input.bidder.id.clone(), received_at, window);
            if let (Some(rule), Some(ends_at), Some(scheduled_end)) =
                (self.settings.anti_snipe, self.ends_at, self.scheduled_end)
                && ends_at - acted_at < secs(rule.window_secs)
            {
                // Reset to, never add; never past the cap; never shorten.
                let reset =
                    (acted_at + secs(rule.reset_secs)).min(scheduled_end + secs(rule.max_extension_secs));
                if reset > ends_at {
                    self.ends_at = Some(reset);
                    extended_to = Some(reset);
                }
            }
        }
        self.seq += 1;
        let mut bid = Bid {
            id: input.id,
            auction_id: self.id,
            seq: self.seq,
            amount: input.amount.or_zero(),
            bidder: input.bidder.clone(),
            source: input.source,
            source_ref: input.source_ref.clone(),
            created_at: millis(input.created_at),
            received_at: millis(input.received_at),
            status: if reason.is_none() { BidStatus::Accepted } else { BidStatus::Rejected },
            reason,
            extended_to,
            hash: String::new(),
            prev_hash: self.last_hash.clone(),
        };
        bid.hash = bid_hash(&bid);
        self.last_hash = bid.hash.clone();
        bid
    }

    /// When the bidder acted: the post's creation time for X, else the arrival.
    fn acted_at(&self, input: &BidInput) -> DateTime<Utc> {
        match input.source {
            BidSource::X => millis(input.created_at),
            BidSource::Http | BidSource::Admin => millis(input.received_at),
        }
    }

    /// The one reason a bid is refused, checked in a fixed order: lot state and
    /// timing, amount validity, the bidder, the rate, then the price.
    fn check(&self, input: &BidInput, standing: BidderStanding) -> Option<RejectReason> {
        let acted_at = self.acted_at(input);
        let received_at = millis(input.received_at);
        match self.phase {
            Phase::Scheduled => return Some(RejectReason::AuctionNotOpen),
            Phase::Open => {}
            Phase::Closed | Phase::Settled | Phase::Cancelled | Phase::PaymentFailed => {
                return Some(RejectReason::AuctionClosed);
            }
        }
        let (Some(ends_at), Some(closes_at)) = (self.ends_at, self.closes_at()) else {
            return Some(RejectReason::AuctionNotOpen);
        };
        if self.starts_at.is_some_and(|start| acted_at < start) {
            return Some(RejectReason::AuctionNotOpen);
        }
        if acted_at >= ends_at || received_at > closes_at {
            return Some(RejectReason::AuctionClosed);
        }
        let amount = match input.amount {
            Offer::Amount(amount) if !amount.is_zero() && amount <= self.settings.max_bid => amount,
            Offer::Ambiguous => return Some(RejectReason::AmbiguousAmount),
            _ => return Some(RejectReason::InvalidAmount),
        };
        if standing.blocked {
            return Some(RejectReason::BidderBlocked);
        }
        let named = self
            .settings
            .consignor
            .as_deref()
            .is_some_and(|consignor| is_consignor(consignor, &input.bidder));
        if standing.consignor || named {
            return Some(RejectReason::SellerCannotBid);
        }
        if standing.verified == Some(false) {
            return Some(RejectReason::BidderNotVerified);
        }
        if standing.funds_sufficient == Some(false) {
            return Some(RejectReason::InsufficientFunds);
        }
        if let Some(last) = self.last_accepted.last(&input.bidder.id)
            && received_at - last < Duration::milliseconds(self.settings.bidder_interval_ms)
        {
            return Some(RejectReason::RateLimited);
        }
        if self.high_bid.is_none() && amount < self.settings.starting_price {
            return Some(RejectReason::BelowStartingPrice);
        }
        if amount < self.min_next_bid() {
            return Some(RejectReason::BelowMinIncrement);
        }
        None
    }

    /// The auction as it stands at `now`, including what time alone has changed and
    /// the writer has not stored yet (an opening or closing due a moment ago).
    pub fn view_at(&self, now: DateTime<Utc>) -> Auction {
        let mut current = self.clone();
        current.advance(now);
        current.snapshot(now)
    }

    /// The API's view of the auction at `now`, as stored.
    pub fn snapshot(&self, now: DateTime<Utc>) -> Auction {
        let reserve_met =
            self.high_bid.as_ref().is_some_and(|high| high.amount >= self.settings.reserve_price);
        Auction {
            id: self.id,
            title: self.title.clone(),
            state: self.state_at(now),
            lot: self.lot.clone(),
            starting_price: self.settings.starting_price,
            reserve_price: self.settings.reserve_visible.then_some(self.settings.reserve_price),
            reserve_met,
            high_bid: self.high_bid.clone(),
            min_next_bid: self.min_next_bid(),
            bid_count: self.accepted_count,
            starts_at: self.starts_at,
            scheduled_end: self.scheduled_end,
            ends_at: self.ends_at,
            extended: self.ends_at != self.scheduled_end,
            closes_at: self.closes_at(),
            outcome: self.outcome.clone(),
            campaign_id: self.campaign_id,
            seq: self.seq,
        }
    }
}

#[cfg(test)]
#[path = "rules_tests.rs"]
mod tests;
