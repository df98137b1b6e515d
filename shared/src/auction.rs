//! Auction and bid snapshots as the API and events carry them (`spec/auction.md`).
//! The rules that produce them live in the backend; these are only the shapes.

use chrono::{DateTime, Utc};
use schemars::JsonSchema;
use serde::{Deserialize, Deserializer, Serialize};
use uuid::Uuid;

use crate::amount::Amount;

/// Where an auction is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuctionState {
    Scheduled,
    Open,
    Closing,
    Closed,
    Settled,
    Cancelled,
    PaymentFailed,
}

/// The NFT being sold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Lot {
    pub chain_id: u64,
    pub contract: String,
    pub token_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_url: Option<String>,
}

/// One row of an increment table: below `below` (or above everything when null),
/// the minimum raise is `step`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct IncrementStep {
    pub below: Option<Amount>,
    pub step: Amount,
}

/// Anti-snipe settings: a bid accepted with less than `window_secs` left sets the end
/// to `reset_secs` from the bid, never past `scheduled_end + max_extension_secs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AntiSnipe {
    pub window_secs: u32,
    pub reset_secs: u32,
    pub max_extension_secs: u32,
}

/// Who bid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub struct Bidder {
    pub id: String,
    #[serde(default)]
    pub handle: Option<String>,
}

/// The body of `POST /api/auction/auctions`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAuction {
    pub title: String,
    #[serde(default)]
    pub lot: Option<Lot>,
    pub starting_price: Amount,
    #[serde(default)]
    pub reserve_price: Option<Amount>,
    #[serde(default)]
    pub reserve_visible: Option<bool>,
    #[serde(default)]
    pub increment_percent: Option<u32>,
    #[serde(default)]
    pub increment_table: Option<Vec<IncrementStep>>,
    #[serde(default)]
    pub starts_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub duration_secs: Option<u32>,
    /// Absent: the default anti-snipe. `null`: sudden death, no extensions.
    #[serde(default, deserialize_with = "present_or_null")]
    #[schemars(with = "Option<AntiSnipe>")]
    pub anti_snipe: Option<Option<AntiSnipe>>,
    #[serde(default)]
    pub late_grace_secs: Option<u32>,
    #[serde(default)]
    pub campaign_id: Option<Uuid>,
    #[serde(default)]
    pub consignor: Option<String>,
    /// What a bidder must prove before a bid counts (`chain.md`).
    #[serde(default)]
    pub verification: Verification,
    /// What a funds check that misses its deadline means.
    #[serde(default)]
    pub unverifiable: Unverifiable,
}

/// What a bidder must prove before a bid counts (`verification` of `NewAuction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Verification {
    /// Nothing (demos).
    #[default]
    None,
    /// A wallet linked to the bidder's X handle: else `BIDDER_NOT_VERIFIED`.
    Wallet,
    /// Also WETH balance and allowance to the settlement contract that cover the
    /// bid: else `INSUFFICIENT_FUNDS`.
    Funds,
}

/// What a funds check that cannot answer in time means (`unverifiable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Unverifiable {
    /// The bid is refused `INSUFFICIENT_FUNDS`.
    #[default]
    Reject,
    /// The bid is decided as if the funds were there (accepted provisionally).
    Accept,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
fn present_or_null<'de, D, T>(deserializer: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Some)
}

/// The current high bid of an auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct HighBid {
    pub amount: Amount,
    pub bidder: Bidder,
    pub bid_id: Uuid,
    pub at: DateTime<Utc>,
}

/// How an auction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutcomeResult {
    Sold,
    ReserveNotMet,
    NoBids,
}

/// The outcome of a closed auction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Outcome {
    pub result: OutcomeResult,
    pub winner: Option<Bidder>,
    pub amount: Option<Amount>,
}

/// An auction as the API and events show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Auction {
    pub id: Uuid,
    pub title: String,
    pub state: AuctionState,
    pub lot: Option<Lot>,
    pub starting_price: Amount,
    /// Null when the reserve is hidden.
    pub reserve_price: Option<Amount>,
    pub reserve_met: bool,
    pub high_bid: Option<HighBid>,
    pub min_next_bid: Amount,
    pub bid_count: u64,
    pub starts_at: Option<DateTime<Utc>>,
    pub scheduled_end: Option<DateTime<Utc>>,
    pub ends_at: Option<DateTime<Utc>>,
    pub extended: bool,
    /// `ends_at` plus the late grace.
    pub closes_at: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub campaign_id: Option<Uuid>,
    pub seq: u64,
}

/// How a bid reached the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BidSource {
    Http,
    X,
    Admin,
}

impl BidSource {
    /// The name as written in the API (`http`, `x`, `admin`).
    pub fn as_str(self) -> &'static str {
        match self {
            BidSource::Http => "http",
            BidSource::X => "x",
            BidSource::Admin => "admin",
        }
    }
}

impl std::str::FromStr for BidSource {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [BidSource::Http, BidSource::X, BidSource::Admin]
            .into_iter()
            .find(|source| source.as_str() == name)
            .ok_or_else(|| format!("unknown bid source {name:?}"))
    }
}

/// Whether a bid was accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BidStatus {
    Accepted,
    Rejected,
}

impl BidStatus {
    /// The name as written in the API (`accepted`, `rejected`).
    pub fn as_str(self) -> &'static str {
        match self {
            BidStatus::Accepted => "accepted",
            BidStatus::Rejected => "rejected",
        }
    }
}

/// Why a bid was rejected: exactly one code per rejected bid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum RejectReason {
    AuctionNotFound,
    AuctionNotOpen,
    AuctionClosed,
    InvalidAmount,
    AmbiguousAmount,
    AmbiguousLot,
    BelowStartingPrice,
    BelowMinIncrement,
    RateLimited,
    BidderNotVerified,
    InsufficientFunds,
    SellerCannotBid,
    BidderBlocked,
    Duplicate,
}

impl RejectReason {
    /// The code as written in the API (`BELOW_MIN_INCREMENT`).
    pub fn code(self) -> &'static str {
        match self {
            RejectReason::AuctionNotFound => "AUCTION_NOT_FOUND",
            RejectReason::AuctionNotOpen => "AUCTION_NOT_OPEN",
            RejectReason::AuctionClosed => "AUCTION_CLOSED",
            RejectReason::InvalidAmount => "INVALID_AMOUNT",
            RejectReason::AmbiguousAmount => "AMBIGUOUS_AMOUNT",
            RejectReason::AmbiguousLot => "AMBIGUOUS_LOT",
            RejectReason::BelowStartingPrice => "BELOW_STARTING_PRICE",
            RejectReason::BelowMinIncrement => "BELOW_MIN_INCREMENT",
            RejectReason::RateLimited => "RATE_LIMITED",
            RejectReason::BidderNotVerified => "BIDDER_NOT_VERIFIED",
            RejectReason::InsufficientFunds => "INSUFFICIENT_FUNDS",
            RejectReason::SellerCannotBid => "SELLER_CANNOT_BID",
            RejectReason::BidderBlocked => "BIDDER_BLOCKED",
            RejectReason::Duplicate => "DUPLICATE",
        }
    }
}

/// One bid as logged, accepted or rejected.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Bid {
    pub id: Uuid,
    pub auction_id: Uuid,
    pub seq: u64,
    pub amount: Amount,
    pub bidder: Bidder,
    pub source: BidSource,
    /// The post id or idempotency key.
    pub source_ref: Option<String>,
    pub created_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub status: BidStatus,
    pub reason: Option<RejectReason>,
    pub extended_to: Option<DateTime<Utc>>,
    pub hash: String,
    pub prev_hash: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reject_reason_codes_match_their_serialized_form() {
        use RejectReason::*;
        for reason in [
            AuctionNotFound,
            AuctionNotOpen,
            AuctionClosed,
            InvalidAmount,
            AmbiguousAmount,
            AmbiguousLot,
            BelowStartingPrice,
            BelowMinIncrement,
            RateLimited,
            BidderNotVerified,
            InsufficientFunds,
            SellerCannotBid,
            BidderBlocked,
            Duplicate,
        ] {
            let json = serde_json::to_value(reason).expect("serialize");
            assert_eq!(json, serde_json::Value::String(reason.code().to_owned()));
        }
    }

    #[test]
    fn source_and_status_names_match_their_serialized_form() {
        for source in [BidSource::Http, BidSource::X, BidSource::Admin] {
            assert_eq!(serde_json::to_value(source).expect("serialize"), source.as_str());
            assert_eq!(source.as_str().parse::<BidSource>(), Ok(source));
        }
        for status in [BidStatus::Accepted, BidStatus::Rejected] {
            assert_eq!(serde_json::to_value(status).expect("serialize"), status.as_str());
        }
    }

    #[test]
    fn anti_snipe_absent_means_default_and_null_means_sudden_death() {
        let absent: NewAuction =
            serde_json::from_str(r#"{"title":"a","starting_price":"1"}"#).expect("valid");
        assert_eq!(absent.anti_snipe, None);
        let null: NewAuction =
            serde_json::from_str(r#"{"title":"a","starting_price":"1","anti_snipe":null}"#).expect("valid");
        assert_eq!(null.anti_snipe, Some(None));
    }

    #[test]
    fn new_auction_names_an_unknown_field() {
        let error = serde_json::from_str::<NewAuction>(r#"{"title":"a","starting_price":"1","reserve":"2"}"#)
            .expect_err("unknown field");
        assert!(error.to_string().contains("reserve"), "{error}");
    }
}

/// The body of `POST /api/auction/campaigns`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NewCampaign {
    pub name: String,
    /// IANA timezone of the schedule; default `SOTHEBAIS_TIMEZONE` (`America/New_York`).
    #[serde(default)]
    pub timezone: Option<String>,
    /// Start of the first lot: a wall-clock time in the campaign's timezone
    /// (`2026-03-08T01:30:00`) or an RFC 3339 time with any offset, read on that clock.
    pub starts_at: crate::time::CampaignStart,
    /// Seconds between one lot's scheduled end and the next lot's start (default 10).
    #[serde(default)]
    pub gap_secs: Option<u32>,
    /// The character hosting the show.
    #[serde(default)]
    pub character: Option<String>,
    /// When true every lot opens at the campaign's start (concurrent lots); bids must
    /// then name their lot.
    #[serde(default)]
    pub concurrent: bool,
    /// The lots in order; their `starts_at` and `campaign_id` come from the campaign.
    pub lots: Vec<NewAuction>,
}

/// One lot of a campaign with its computed times.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CampaignLot {
    pub index: u32,
    pub auction_id: Uuid,
    pub title: String,
    pub starts_at: DateTime<Utc>,
    pub scheduled_end: DateTime<Utc>,
    /// `starts_at` on the campaign's wall clock, with its offset.
    pub starts_at_local: String,
}

/// A campaign: an ordered list of lots in one timezone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Campaign {
    pub id: Uuid,
    pub name: String,
    pub timezone: String,
    pub starts_at_local: chrono::NaiveDateTime,
    pub gap_secs: u32,
    pub character: Option<String>,
    pub concurrent: bool,
    pub lots: Vec<CampaignLot>,
    pub created_at: DateTime<Utc>,
}
