//! The auction API (`/api/auction`), exactly as `spec/auction.md` lists it, plus
//! `GET /auctions/{id}/verify`, which recomputes the hash chain and the winner.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Instant;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use sothebais_shared::Amount;
use sothebais_shared::auction::{
    Auction, AuctionState, Bid, BidSource, BidStatus, Bidder, Campaign, NewAuction, NewCampaign, Outcome,
    RejectReason,
};
use uuid::Uuid;

use super::engine::{BidOutcome, EngineError};
use super::rules::{self, BidInput, BidderStanding, Phase, millis};
use crate::app::AppState;
use crate::error::{Error, Result};
use crate::http::{Json, Path, Query, created, ok};
use crate::storage::AuctionFilter;
use sothebais_kit::access::{Authorized, BidderRole, Caller, OperatorRole, Role};
use sothebais_kit::http::Failure;
use sothebais_kit::openapi::Operation;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/api/auction/status", get(status))
        .route("/api/auction/bid", post(place_bid))
        .route("/api/auction/history", get(history))
        .route("/api/auction/auctions", post(create_auction).get(list_auctions))
        .route("/api/auction/auctions/{id}", get(get_auction))
        .route("/api/auction/auctions/{id}/start", post(start_auction))
        .route("/api/auction/auctions/{id}/cancel", post(cancel_auction))
        .route("/api/auction/auctions/{id}/verify", get(verify_auction))
        .route("/api/auction/campaigns", post(create_campaign).get(list_campaigns))
        .route("/api/auction/campaigns/{id}", get(get_campaign))
}

pub fn operations() -> Vec<Operation> {
    vec![
        Operation::new(
            "GET",
            "/api/auction/status",
            "Open, closing and scheduled auctions with the server's time; ?auction_id= for one",
        )
        .response::<StatusPage>(),
        Operation::new(
            "POST",
            "/api/auction/bid",
            "Place a bid: 200 accepted, 422 with the reason code when rejected",
        )
        .auth(Role::Bidder)
        .request::<BidRequest>()
        .response::<BidAnswer>(),
        Operation::new(
            "GET",
            "/api/auction/history",
            "An auction's bid log in sequence order, accepted and rejected",
        )
        .response::<BidsPage>(),
        Operation::new("POST", "/api/auction/auctions", "Create an auction")
            .auth(Role::Operator)
            .request::<NewAuction>()
            .response::<Auction>(),
        Operation::new("GET", "/api/auction/auctions", "List auctions; ?state=&campaign_id=")
            .response::<AuctionsPage>(),
        Operation::new("GET", "/api/auction/auctions/{id}", "One auction").response::<Auction>(),
        Operation::new("POST", "/api/auction/auctions/{id}/start", "Open a scheduled auction now")
            .auth(Role::Operator)
            .response::<Auction>(),
        Operation::new(
            "POST",
            "/api/auction/auctions/{id}/cancel",
            "Cancel (operator before the first accepted bid, admin any time with a reason)",
        )
        .auth(Role::Operator)
        .request::<CancelRequest>()
        .response::<Auction>(),
        Operation::new(
            "GET",
            "/api/auction/auctions/{id}/verify",
            "Recompute the bid log's hash chain and the winner",
        )
        .response::<Verification>(),
        Operation::new("POST", "/api/auction/campaigns", "Create a campaign of ordered lots")
            .auth(Role::Operator)
            .request::<NewCampaign>()
            .response::<Campaign>(),
        Operation::new("GET", "/api/auction/campaigns", "List campaigns").response::<CampaignsPage>(),
        Operation::new("GET", "/api/auction/campaigns/{id}", "One campaign").response::<Campaign>(),
    ]
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct StatusPage {
    now: DateTime<Utc>,
    auctions: Vec<Auction>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct AuctionsPage {
    auctions: Vec<Auction>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct BidsPage {
    bids: Vec<Bid>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct CampaignsPage {
    campaigns: Vec<Campaign>,
}

#[derive(Debug, Serialize, schemars::JsonSchema)]
struct BidAnswer {
    bid: Bid,
    auction: Auction,
    /// Present and true when this is the earlier decision of the same key or post.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    duplicate: bool,
}

#[derive(Debug, Clone, Serialize, schemars::JsonSchema)]
struct Verification {
    auction_id: Uuid,
    bids: u64,
    chain_valid: bool,
    /// The first record whose sequence, link or hash is wrong.
    first_bad_seq: Option<u64>,
    /// The outcome the log implies (for a closed auction, equal to `outcome`).
    outcome_from_log: Outcome,
    outcome: Option<Outcome>,
}

/// The body of `POST /api/auction/bid`.
#[derive(Debug, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct BidRequest {
    /// Optional when exactly one auction is open.
    #[serde(default)]
    auction_id: Option<Uuid>,
    /// ETH as a decimal string, such as "1.5".
    amount: String,
    /// Who bids: a bidder token bids as its own `sub`; operators must say.
    #[serde(default)]
    bidder: Option<Bidder>,
    #[serde(default)]
    idempotency_key: Option<String>,
    /// Operators relaying a post from X: `x`, with the post's id and time.
    #[serde(default)]
    source: Option<BidSource>,
    #[serde(default)]
    post_id: Option<String>,
    #[serde(default)]
    created_at: Option<DateTime<Utc>>,
}

/// Per-client request rate for bidder tokens (the rules' per-bidder rate is separate).
/// The last verification of each auction, by the `seq` it covered: a log only grows,
/// so while `seq` stands the answer stands, and a repeated verify reads nothing.
#[derive(Debug, Default)]
pub struct VerifyCache(Mutex<HashMap<Uuid, (u64, Verification)>>);

impl VerifyCache {
    /// The most auctions remembered; past it the memory starts afresh.
    const CAPACITY: usize = 10_000;

    fn get(&self, id: Uuid, seq: u64) -> Option<Verification> {
        let cache = self.0.lock().ok()?;
        cache.get(&id).filter(|(known, _)| *known == seq).map(|(_, verification)| verification.clone())
    }

    fn put(&self, id: Uuid, seq: u64, verification: &Verification) {
        if let Ok(mut cache) = self.0.lock() {
            if cache.len() >= Self::CAPACITY {
                cache.clear();
            }
            cache.insert(id, (seq, verification.clone()));
        }
    }
}

pub struct ClientRateLimit {
    buckets: Mutex<HashMap<String, (f64, Instant)>>,
    per_second: f64,
    burst: f64,
}

impl std::fmt::Debug for ClientRateLimit {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("ClientRateLimit").field("per_second", &self.per_second).finish()
    }
}

impl Default for ClientRateLimit {
    fn default() -> Self {
        ClientRateLimit { buckets: Mutex::new(HashMap::new()), per_second: 10.0, burst: 20.0 }
    }
}

impl ClientRateLimit {
    /// Takes one token for `client`, or says how long to wait.
    fn take(&self, client: &str) -> std::result::Result<(), u64> {
        let Ok(mut buckets) = self.buckets.lock() else { return Ok(()) };
        let now = Instant::now();
        if buckets.len() > 100_000 {
            buckets.retain(|_, (_, at)| now.duration_since(*at).as_secs() < 60);
        }
        let (tokens, at) = buckets.entry(client.to_owned()).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.per_second).min(self.burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / self.per_second).ceil().max(1.0) as u64)
        }
    }
}

fn engine_error(error: EngineError) -> Error {
    match error {
        EngineError::NotFound => Error::NotFound("auction".into()),
        EngineError::Conflict(message) => Error::Conflict(message),
        EngineError::Forbidden(message) => Error::Refused(Failure::forbidden(message)),
        EngineError::Invalid { field, message } => Error::bad_field(field, message),
        EngineError::Storage(error) => Error::Storage(error),
        EngineError::Contended => Error::Unavailable { dependency: "auction writer" },
        EngineError::Stopping => Error::Unavailable { dependency: "auction engine (stopping)" },
    }
}

fn rejection(status: StatusCode, reason: RejectReason, message: String, details: serde_json::Value) -> Error {
    Error::Coded { status, code: reason.code(), message, details: Some(details) }
}

/// A sentence for each reason, for the API and for replies on X.
pub fn reason_message(reason: RejectReason, min_bid: Amount) -> String {
    match reason {
        RejectReason::AuctionNotFound => "no such auction".into(),
        RejectReason::AuctionNotOpen => "the auction has not opened yet".into(),
        RejectReason::AuctionClosed => "the auction is closed to new bids".into(),
        RejectReason::InvalidAmount => {
            "the amount is not a positive ETH amount with at most 18 decimals".into()
        }
        RejectReason::AmbiguousAmount => "the amount can be read two ways; write it like 1500 or 1.5".into(),
        RejectReason::AmbiguousLot => "several lots are open; name the lot you bid on".into(),
        RejectReason::BelowStartingPrice => format!("the first bid must be at least {min_bid} ETH"),
        RejectReason::BelowMinIncrement => format!("bid must be at least {min_bid} ETH"),
        RejectReason::RateLimited => "one accepted bid per bidder every 2 seconds".into(),
        RejectReason::BidderNotVerified => "link a wallet to bid".into(),
        RejectReason::InsufficientFunds => "the linked wallet cannot cover this bid".into(),
        RejectReason::SellerCannotBid => "the consignor cannot bid on their own lot".into(),
        RejectReason::BidderBlocked => "this bidder may not bid".into(),
        RejectReason::Duplicate => "this bid was already decided".into(),
    }
}

#[tracing::instrument(skip_all, fields(auction_id))]
async fn place_bid(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<BidderRole>,
    Json(request): Json<BidRequest>,
) -> Result<Response> {
    let received_at = millis(state.clock.now());
    let operator = claims.role.satisfies(Role::Operator);
    if !operator && let Err(retry_after_secs) = state.bid_rate.take(&claims.sub) {
        return Err(Failure::rate_limited(retry_after_secs).into());
    }
    let bidder = match (operator, request.bidder) {
        (true, Some(bidder)) => bidder,
        (true, None) => {
            return Err(Error::bad_field("bidder", "operators bid on behalf of a bidder: name it"));
        }
        (false, Some(bidder)) if bidder.id != claims.sub => {
            return Err(Failure::forbidden("a bidder token bids only as its own subject").into());
        }
        (false, bidder) => Bidder { id: claims.sub.clone(), handle: bidder.and_then(|bidder| bidder.handle) },
    };
    if bidder.id.trim().is_empty() {
        return Err(Error::bad_field("bidder", "the bidder id must not be empty"));
    }
    let source = match request.source {
        None if operator => BidSource::Admin,
        None => BidSource::Http,
        Some(source) if operator => source,
        Some(_) => return Err(Failure::forbidden("only operators relay bids from other sources").into()),
    };
    if request.created_at.is_some() && source != BidSource::X {
        return Err(Error::bad_field("created_at", "only bids relayed from X carry the post's time"));
    }
    let source_ref = match (source, request.post_id, request.idempotency_key) {
        (BidSource::X, Some(post), _) => Some(post),
        (BidSource::X, None, _) => {
            return Err(Error::bad_field("post_id", "bids from X carry their post id"));
        }
        (_, Some(_), _) => return Err(Error::bad_field("post_id", "only bids from X carry a post id")),
        (_, None, key) => key.filter(|key| !key.is_empty()),
    };
    if source_ref.as_ref().is_some_and(|key| key.len() > 200) {
        return Err(Error::bad_field("idempotency_key", "at most 200 characters"));
    }
    let auction_id = match request.auction_id {
        Some(id) => id,
        None => only_open_auction(&state, received_at).await?,
    };
    tracing::Span::current().record("auction_id", tracing::field::display(auction_id));
    let blocked = state.runtime.is_blocked(&bidder.id, bidder.handle.as_deref());
    let input = BidInput {
        id: Uuid::now_v7(),
        amount: request.amount.trim().parse::<Amount>().ok().into(),
        bidder,
        source,
        source_ref,
        created_at: request.created_at.map_or(received_at, millis),
        received_at,
    };
    let started = Instant::now();
    let outcome = state
        .engine
        .place_bid(auction_id, input, BidderStanding { blocked, ..BidderStanding::default() })
        .await
        .map_err(|error| match error {
            EngineError::NotFound => rejection(
                StatusCode::NOT_FOUND,
                RejectReason::AuctionNotFound,
                reason_message(RejectReason::AuctionNotFound, Amount::ZERO),
                json!({ "auction_id": auction_id }),
            ),
            other => engine_error(other),
        })?;
    metrics::histogram!("auction_bid_decision_seconds").record(started.elapsed().as_secs_f64());
    bid_response(outcome)
}

fn bid_response(outcome: BidOutcome) -> Result<Response> {
    let BidOutcome { bid, auction, duplicate } = outcome;
    match (bid.status, bid.reason) {
        (BidStatus::Accepted, _) | (BidStatus::Rejected, None) => {
            Ok(ok(BidAnswer { bid, auction, duplicate }))
        }
        (BidStatus::Rejected, Some(reason)) => {
            let mut details =
                json!({ "auction_id": auction.id, "bid": bid, "min_bid": auction.min_next_bid });
            if duplicate {
                details["duplicate"] = json!(true);
            }
            Err(rejection(
                StatusCode::UNPROCESSABLE_ENTITY,
                reason,
                reason_message(reason, auction.min_next_bid),
                details,
            ))
        }
    }
}

/// The one open auction, when a bid names none.
async fn only_open_auction(state: &AppState, now: DateTime<Utc>) -> Result<Uuid> {
    let candidates = state
        .storage
        .auctions(&AuctionFilter {
            phases: vec![Phase::Scheduled, Phase::Open],
            campaign_id: None,
            limit: 1000,
        })
        .await?;
    let open: Vec<Uuid> = candidates
        .iter()
        .filter(|record| record.core.view_at(now).state == AuctionState::Open)
        .map(|record| record.core.id)
        .collect();
    match open.as_slice() {
        [only] => Ok(*only),
        [] => Err(rejection(
            StatusCode::NOT_FOUND,
            RejectReason::AuctionNotFound,
            "no auction is open; name the auction".into(),
            json!({ "field": "auction_id" }),
        )),
        several => Err(rejection(
            StatusCode::UNPROCESSABLE_ENTITY,
            RejectReason::AmbiguousLot,
            reason_message(RejectReason::AmbiguousLot, Amount::ZERO),
            json!({ "open_auctions": several }),
        )),
    }
}

#[derive(Debug, Deserialize)]
struct StatusQuery {
    auction_id: Option<Uuid>,
}

async fn status(State(state): State<AppState>, Query(query): Query<StatusQuery>) -> Result<Response> {
    let now = millis(state.clock.now());
    if let Some(id) = query.auction_id {
        return Ok(ok(load(&state, id).await?.view_at(now)));
    }
    let records = state
        .storage
        .auctions(&AuctionFilter {
            phases: vec![Phase::Scheduled, Phase::Open],
            campaign_id: None,
            limit: 1000,
        })
        .await?;
    let auctions = records.iter().map(|record| record.core.view_at(now)).collect();
    Ok(ok(StatusPage { now, auctions }))
}

async fn load(state: &AppState, id: Uuid) -> Result<rules::AuctionCore> {
    state
        .storage
        .auction(id)
        .await?
        .map(|record| record.core)
        .ok_or_else(|| Error::NotFound(format!("auction {id}")))
}

#[derive(Debug, Deserialize)]
struct HistoryQuery {
    auction_id: Option<Uuid>,
    limit: Option<u32>,
    after_seq: Option<u64>,
}

async fn history(State(state): State<AppState>, Query(query): Query<HistoryQuery>) -> Result<Response> {
    let auction_id =
        query.auction_id.ok_or_else(|| Error::bad_field("auction_id", "auction_id is required"))?;
    let limit = query.limit.unwrap_or(100);
    if limit == 0 || limit > 1000 {
        return Err(Error::bad_field("limit", "limit must be between 1 and 1000"));
    }
    load(&state, auction_id).await?;
    let bids = state.storage.bids(auction_id, query.after_seq.unwrap_or(0), limit).await?;
    Ok(ok(BidsPage { bids }))
}

async fn create_auction(
    State(state): State<AppState>,
    _operator: Authorized<OperatorRole>,
    Json(new): Json<NewAuction>,
) -> Result<Response> {
    check_lot(&state, &new, "lot").await?;
    let auction = state.engine.create_auction(&new).await.map_err(engine_error)?;
    Ok(created(auction))
}

/// With a chain configured, an auction's lot must be owned by its consignor and
/// approved for the settlement contract (docs/chain.md); the error names the check.
/// Without one, lots are taken as given (demos), and the log says so.
async fn check_lot(state: &AppState, new: &NewAuction, field: &str) -> Result<()> {
    if new.verification == sothebais_shared::auction::Verification::Funds
        && !state.chain.as_ref().is_some_and(|chain| chain.can_check_funds())
    {
        return Err(Error::bad_field(
            "verification",
            "funds checks need a chain: set ETH_RPC_URL, ETH_WETH_ADDRESS and ETH_SETTLEMENT_ADDRESS",
        ));
    }
    let Some(lot) = &new.lot else { return Ok(()) };
    let Some(chain) = &state.chain else {
        tracing::debug!(title = %new.title, "no chain configured: the lot is not checked");
        return Ok(());
    };
    let consignor = match new.consignor.as_deref().map(str::trim) {
        Some(text) if text.starts_with("0x") => text.parse().ok(),
        Some(text) => match crate::chain::siwe::normal_handle(text) {
            Some(handle) => state
                .storage
                .wallet_link(&handle)
                .await?
                .filter(|link| link.revoked_at.is_none())
                .and_then(|link| link.address.parse().ok()),
            None => None,
        },
        None => None,
    };
    let outcome = match consignor {
        Some(consignor) => chain.check_lot(lot, consignor).await,
        None => Err(crate::chain::LotRefusal::NoConsignorWallet),
    };
    outcome.map_err(|refusal| Error::Coded {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        code: "LOT_CHECK_FAILED",
        message: refusal.to_string(),
        details: Some(json!({ "field": field, "check": refusal.check() })),
    })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<AuctionState>,
    campaign_id: Option<Uuid>,
}

async fn list_auctions(State(state): State<AppState>, Query(query): Query<ListQuery>) -> Result<Response> {
    let now = millis(state.clock.now());
    let phases = match query.state {
        None => vec![],
        Some(AuctionState::Scheduled) => vec![Phase::Scheduled],
        // Time may have moved an auction on before its writer stored it: look one phase back.
        Some(AuctionState::Open | AuctionState::Closing) => vec![Phase::Scheduled, Phase::Open],
        Some(AuctionState::Closed) => vec![Phase::Open, Phase::Closed],
        Some(AuctionState::Settled) => vec![Phase::Settled],
        Some(AuctionState::Cancelled) => vec![Phase::Cancelled],
        Some(AuctionState::PaymentFailed) => vec![Phase::PaymentFailed],
    };
    let records = state
        .storage
        .auctions(&AuctionFilter { phases, campaign_id: query.campaign_id, limit: 1000 })
        .await?;
    let auctions = records
        .iter()
        .map(|record| record.core.view_at(now))
        .filter(|auction| query.state.is_none_or(|wanted| auction.state == wanted))
        .collect();
    Ok(ok(AuctionsPage { auctions }))
}

async fn get_auction(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Response> {
    Ok(ok(load(&state, id).await?.view_at(millis(state.clock.now()))))
}

async fn start_auction(
    State(state): State<AppState>,
    _operator: Authorized<OperatorRole>,
    Path(id): Path<Uuid>,
) -> Result<Response> {
    Ok(ok(state.engine.start(id).await.map_err(engine_error)?))
}

/// The body of `POST /api/auction/auctions/{id}/cancel`.
#[derive(Debug, Default, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CancelRequest {
    #[serde(default)]
    reason: Option<String>,
}

async fn cancel_auction(
    State(state): State<AppState>,
    Authorized(claims, _): Authorized<OperatorRole>,
    Path(id): Path<Uuid>,
    Json(request): Json<CancelRequest>,
) -> Result<Response> {
    let admin = claims.role.satisfies(Role::Admin);
    let auction = state.engine.cancel(id, &claims.sub, admin, request.reason).await.map_err(engine_error)?;
    tracing::info!(auction_id = %id, by = %claims.sub, "auction cancelled");
    Ok(ok(auction))
}

async fn verify_auction(State(state): State<AppState>, Path(id): Path<Uuid>) -> Result<Response> {
    let core = load(&state, id).await?;
    if let Some(known) = state.verify_cache.get(id, core.seq) {
        metrics::counter!("auction_verify_total", "cached" => "true").increment(1);
        return Ok(ok(known));
    }
    metrics::counter!("auction_verify_total", "cached" => "false").increment(1);
    let mut log = Vec::new();
    loop {
        let page = state.storage.bids(id, log.last().map_or(0, |bid: &Bid| bid.seq), 1000).await?;
        if page.is_empty() {
            break;
        }
        log.extend(page);
    }
    let first_bad_seq = rules::verify_chain(id, &log).err();
    let verification = Verification {
        auction_id: id,
        bids: log.len() as u64,
        chain_valid: first_bad_seq.is_none(),
        first_bad_seq,
        outcome_from_log: rules::outcome_from_log(&log, core.settings.reserve_price),
        outcome: core.outcome.clone(),
    };
    state.verify_cache.put(id, core.seq, &verification);
    Ok(ok(verification))
}

async fn create_campaign(
    State(state): State<AppState>,
    _operator: Authorized<OperatorRole>,
    Json(new): Json<NewCampaign>,
) -> Result<Response> {
    for (index, lot) in new.lots.iter().enumerate() {
        check_lot(&state, lot, &format!("lots[{index}].lot")).await?;
    }
    let campaign = state.engine.create_campaign(&new, state.config.timezone).await.map_err(engine_error)?;
    Ok(created(campaign))
}

async fn list_campaigns(State(state): State<AppState>) -> Result<Response> {
    Ok(ok(CampaignsPage { campaigns: state.storage.campaigns().await? }))
}

async fn get_campaign(
    State(state): State<AppState>,
    Path(id): Path<Uuid>,
    _caller: Caller,
) -> Result<Response> {
    let campaign =
        state.storage.campaign(id).await?.ok_or_else(|| Error::NotFound(format!("campaign {id}")))?;
    Ok(ok(campaign))
}
