//! What the show says on X when the agent does not write it: one function per kind
//! of post, behind the [`Wording`] trait so the agent (the AI host) can replace the
//! wording without touching when and to whom the show posts. No URL is ever added
//! (a post with a URL costs $0.20 instead of $0.015).

use chrono::{DateTime, Utc};
use sothebais_shared::amount::Amount;
use sothebais_shared::auction::{Auction, AuctionState, OutcomeResult, RejectReason};

/// A lot as the posts name it.
#[derive(Debug, Clone)]
pub struct LotName<'a> {
    pub number: Option<u32>,
    pub title: &'a str,
}

impl std::fmt::Display for LotName<'_> {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.number {
            Some(number) => write!(formatter, "Lot {number}, \"{}\"", self.title),
            None => write!(formatter, "\"{}\"", self.title),
        }
    }
}

/// Why a post's bid was not taken, in plain words.
#[derive(Debug, Clone)]
pub enum Refusal {
    Reason {
        reason: RejectReason,
        min_bid: Amount,
    },
    /// The amount cannot be read (`bid 1.5.0`, too many decimals, above the cap).
    InvalidAmount(String),
    /// Several lots are open and the post names none.
    AmbiguousLot {
        open: Vec<u32>,
    },
    /// No lot is open.
    NoOpenLot,
}

/// The standings of a lot, posted in its thread.
#[derive(Debug, Clone)]
pub struct Standings<'a> {
    pub lot: LotName<'a>,
    pub auction: &'a Auction,
    /// Handles whose bids were accepted since the last standings post.
    pub accepted: Vec<String>,
    /// Bids refused since then, by plain reason.
    pub refused: usize,
    pub under_minimum: usize,
}

/// The show's words on X.
pub trait Wording: Send + Sync + std::fmt::Debug {
    fn announcement(&self, lot: &LotName<'_>, auction: &Auction, handle: &str) -> String;
    fn accepted(&self, bidder: &str, lot: &LotName<'_>, auction: &Auction, now: DateTime<Utc>) -> String;
    fn rejected(
        &self,
        bidder: &str,
        lot: Option<&LotName<'_>>,
        amount: Option<Amount>,
        why: &Refusal,
    ) -> String;
    fn outbid(&self, bidder: &str, lot: &LotName<'_>, auction: &Auction) -> String;
    fn result(&self, lot: &LotName<'_>, auction: &Auction) -> String;
    fn cancelled(&self, lot: &LotName<'_>) -> String;
    fn standings(&self, standings: &Standings<'_>, now: DateTime<Utc>) -> String;
}

/// The built-in templates.
#[derive(Debug, Clone, Copy, Default)]
pub struct Templates;

fn time_left(auction: &Auction, now: DateTime<Utc>) -> String {
    let Some(ends) = auction.ends_at else { return "soon".into() };
    let secs = (ends - now).num_seconds().max(0);
    if secs >= 120 { format!("{} min left", secs / 60) } else { format!("{secs} s left") }
}

/// The high bid, or the opening price before one.
fn high_bid(auction: &Auction) -> Amount {
    auction.high_bid.as_ref().map_or(auction.min_next_bid, |high| high.amount)
}

fn handle(name: &str) -> String {
    if name.starts_with('@') { name.to_owned() } else { format!("@{name}") }
}

impl Wording for Templates {
    fn announcement(&self, lot: &LotName<'_>, auction: &Auction, account: &str) -> String {
        let name = match lot.number {
            Some(number) => format!("Lot {number} is open: \"{}\"", lot.title),
            None => format!("Now open: \"{}\"", lot.title),
        };
        let secs = match (auction.starts_at, auction.ends_at) {
            (Some(start), Some(end)) => (end - start).num_seconds().max(0),
            _ => 0,
        };
        let naming = lot.number.map(|number| format!(" #lot{number}")).unwrap_or_default();
        format!(
            "{name}. Bidding starts at {} ETH. Reply or post \"@{} bid {}{naming}\". Closes in {secs} s.",
            auction.starting_price,
            account.trim_start_matches('@'),
            auction.min_next_bid,
        )
    }

    fn accepted(&self, bidder: &str, lot: &LotName<'_>, auction: &Auction, now: DateTime<Utc>) -> String {
        let high = high_bid(auction);
        format!(
            "{} your bid of {high} ETH on {lot} is the high bid. Next bid at least {} ETH, {}.",
            handle(bidder),
            auction.min_next_bid,
            time_left(auction, now)
        )
    }

    fn rejected(
        &self,
        bidder: &str,
        lot: Option<&LotName<'_>>,
        amount: Option<Amount>,
        why: &Refusal,
    ) -> String {
        let on = lot.map(|lot| format!(" on {lot}")).unwrap_or_default();
        let bid = amount.map(|amount| format!(" of {amount} ETH")).unwrap_or_default();
        let reason = match why {
            Refusal::Reason { reason, min_bid } => match reason {
                RejectReason::BelowStartingPrice | RejectReason::BelowMinIncrement => {
                    format!("the min bid is {min_bid} ETH")
                }
                RejectReason::AuctionClosed => "bidding has closed".into(),
                RejectReason::AuctionNotOpen => "bidding has not opened yet".into(),
                RejectReason::AuctionNotFound => "there is no such lot".into(),
                RejectReason::RateLimited => "one bid every 2 seconds, please".into(),
                RejectReason::AmbiguousAmount => {
                    "that amount reads two ways; write it with a dot, like 1.5".into()
                }
                RejectReason::InvalidAmount => "that is not an ETH amount we can take".into(),
                RejectReason::AmbiguousLot => "several lots are open: name one, like #lot2".into(),
                RejectReason::BidderBlocked => "this account cannot bid".into(),
                RejectReason::SellerCannotBid => "the seller cannot bid on their own lot".into(),
                RejectReason::BidderNotVerified => "link a wallet first to bid on this lot".into(),
                RejectReason::InsufficientFunds => "the linked wallet cannot cover that bid".into(),
                RejectReason::Duplicate => "that post was already counted".into(),
            },
            Refusal::InvalidAmount(detail) => format!("that amount is not valid ({detail})"),
            Refusal::AmbiguousLot { open } => {
                let names: Vec<String> = open.iter().map(|number| format!("#lot{number}")).collect();
                format!("several lots are open: name one ({})", names.join(", "))
            }
            Refusal::NoOpenLot => "no lot is open right now".into(),
        };
        format!("{} your bid{bid}{on} was not taken: {reason}.", handle(bidder))
    }

    fn outbid(&self, bidder: &str, lot: &LotName<'_>, auction: &Auction) -> String {
        let high = high_bid(auction);
        format!(
            "{} you've been outbid on {lot}: the high bid is now {high} ETH. Bid at least {} ETH to lead again.",
            handle(bidder),
            auction.min_next_bid
        )
    }

    fn result(&self, lot: &LotName<'_>, auction: &Auction) -> String {
        match auction.outcome.as_ref() {
            Some(outcome) => match outcome.result {
                OutcomeResult::Sold => format!(
                    "SOLD: {lot} to {} for {} ETH. Thank you all!",
                    outcome
                        .winner
                        .as_ref()
                        .map(|winner| winner.handle.clone().unwrap_or_else(|| winner.id.clone()))
                        .map(|name| handle(&name))
                        .unwrap_or_else(|| "the high bidder".into()),
                    outcome.amount.unwrap_or_default()
                ),
                OutcomeResult::ReserveNotMet => format!(
                    "{lot} closes: the reserve was not met (high bid {} ETH).",
                    outcome.amount.unwrap_or_default()
                ),
                OutcomeResult::NoBids => format!("{lot} closes with no bids."),
            },
            None => format!("{lot} has closed."),
        }
    }

    fn cancelled(&self, lot: &LotName<'_>) -> String {
        format!("{lot} has been withdrawn from the sale.")
    }

    fn standings(&self, standings: &Standings<'_>, now: DateTime<Utc>) -> String {
        // The last standings of a lot come after its end (bids X would not let the
        // show answer, still owed): no time is left then.
        let open = standings.auction.state == AuctionState::Open
            && standings.auction.ends_at.is_none_or(|ends| ends > now);
        let when = if open { time_left(standings.auction, now) } else { "bidding closed".into() };
        let mut text = match standings.auction.high_bid.as_ref() {
            Some(high) => format!(
                "{} standings: high bid {} ETH by {}, {when}.",
                standings.lot,
                high.amount,
                handle(high.bidder.handle.as_deref().unwrap_or(&high.bidder.id)),
            ),
            None => format!("{} standings: no bid yet, {when}.", standings.lot),
        };
        if !standings.accepted.is_empty() {
            let names: Vec<String> = standings.accepted.iter().map(|name| handle(name)).collect();
            text.push_str(&format!(" Accepted: {}.", names.join(", ")));
        }
        if standings.under_minimum > 0 {
            text.push_str(&format!(" {} under the minimum.", bids(standings.under_minimum)));
        }
        let other = standings.refused.saturating_sub(standings.under_minimum);
        if other > 0 {
            text.push_str(&format!(" {} not taken for other reasons.", bids(other)));
        }
        text
    }
}

/// `1 bid`, `3 bids`.
fn bids(count: usize) -> String {
    if count == 1 { "1 bid".to_owned() } else { format!("{count} bids") }
}

/// Shortens `text` to X's 280 characters, on a character boundary.
pub fn fit(text: String) -> String {
    if text.chars().count() <= 280 {
        return text;
    }
    let mut short: String = text.chars().take(279).collect();
    short.push('…');
    short
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn standings_count_bids_in_plain_words() {
        assert_eq!(bids(1), "1 bid");
        assert_eq!(bids(3), "3 bids");
    }
}
