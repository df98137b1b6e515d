//! A table test per rule and per reason code, and a property test of the state machine
//! against a simple reference model.

use chrono::TimeZone as _;
use proptest::prelude::*;

use super::*;

const MAX_BID: Amount = Amount::from_eth(DEFAULT_MAX_BID_ETH);

fn eth(text: &str) -> Amount {
    text.parse().expect("amount")
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 20, 0, 0).single().expect("valid time")
}

fn at(secs: f64) -> DateTime<Utc> {
    t0() + Duration::milliseconds((secs * 1000.0) as i64)
}

fn new_auction() -> NewAuction {
    NewAuction {
        title: "Lot 1".into(),
        starting_price: eth("1"),
        starts_at: Some(t0()),
        ..NewAuction::default()
    }
}

/// An open auction (90 s from t0, default rules) built from `new`.
fn open(new: NewAuction) -> AuctionCore {
    let mut core = AuctionCore::create(Uuid::from_u128(7), &new, MAX_BID).expect("valid settings");
    assert_eq!(core.advance(t0()), vec![Transition::Opened]);
    core
}

fn bid(bidder: &str, amount: &str, secs: f64) -> BidInput {
    BidInput {
        id: Uuid::new_v4(),
        amount: amount.parse().ok().into(),
        bidder: Bidder { id: bidder.into(), handle: Some(format!("@{bidder}")) },
        source: BidSource::Http,
        source_ref: None,
        created_at: at(secs),
        received_at: at(secs),
    }
}

fn x_bid(bidder: &str, amount: &str, posted: f64, arrived: f64) -> BidInput {
    BidInput {
        source: BidSource::X,
        created_at: at(posted),
        received_at: at(arrived),
        ..bid(bidder, amount, arrived)
    }
}

/// Advances to the bid's arrival and decides it, as the engine does.
fn place(core: &mut AuctionCore, input: &BidInput) -> Bid {
    core.advance(input.received_at);
    core.decide(input, BidderStanding::default())
}

fn reason(core: &mut AuctionCore, input: &BidInput) -> Option<RejectReason> {
    place(core, input).reason
}

#[test]
fn first_bid_must_reach_the_starting_price() {
    let mut core = open(new_auction());
    assert_eq!(reason(&mut core, &bid("a", "0.99", 1.0)), Some(RejectReason::BelowStartingPrice));
    assert_eq!(reason(&mut core, &bid("a", "1", 2.0)), None);
}

#[test]
fn next_bid_must_reach_high_bid_plus_the_larger_of_percent_and_table_step() {
    let mut core = open(new_auction());
    place(&mut core, &bid("a", "1", 1.0));
    // 5 % of 1 = 0.05; table step below 2.5 = 0.05.
    assert_eq!(core.min_next_bid(), eth("1.05"));
    let rejected = place(&mut core, &bid("b", "1.049999999999999999", 2.0));
    assert_eq!(rejected.reason, Some(RejectReason::BelowMinIncrement));
    assert_eq!(reason(&mut core, &bid("b", "1.05", 3.0)), None);
}

#[test]
fn table_step_wins_when_larger_than_the_percentage() {
    let mut core = open(NewAuction { starting_price: eth("0.05"), ..new_auction() });
    place(&mut core, &bid("a", "0.05", 1.0));
    // 5 % of 0.05 = 0.0025 < table step 0.005.
    assert_eq!(core.min_next_bid(), eth("0.055"));
}

#[test]
fn empty_table_means_percent_only_and_zero_percent_still_needs_one_wei() {
    let mut core =
        open(NewAuction { increment_table: Some(vec![]), increment_percent: Some(10), ..new_auction() });
    place(&mut core, &bid("a", "1", 1.0));
    assert_eq!(core.min_next_bid(), eth("1.1"));
    let mut core =
        open(NewAuction { increment_table: Some(vec![]), increment_percent: Some(0), ..new_auction() });
    place(&mut core, &bid("a", "1", 1.0));
    assert_eq!(core.min_next_bid(), eth("1.000000000000000001"));
}

#[test]
fn the_high_bidder_may_raise_their_own_bid() {
    let mut core = open(new_auction());
    place(&mut core, &bid("a", "1", 1.0));
    assert_eq!(reason(&mut core, &bid("a", "1.05", 4.0)), None);
    assert_eq!(core.high_bid.as_ref().map(|high| high.amount), Some(eth("1.05")));
}

#[test]
fn a_bidder_faster_than_one_accepted_bid_per_two_seconds_is_rate_limited() {
    let mut core = open(new_auction());
    place(&mut core, &bid("a", "1", 1.0));
    assert_eq!(reason(&mut core, &bid("a", "2", 2.5)), Some(RejectReason::RateLimited));
    assert_eq!(reason(&mut core, &bid("b", "2", 2.6)), None, "other bidders are not limited");
    assert_eq!(reason(&mut core, &bid("a", "3", 3.0)), None, "two seconds after the accepted bid");
}

#[test]
fn ties_go_to_the_earlier_bid_in_the_log() {
    let mut core = open(new_auction());
    let first = place(&mut core, &bid("a", "1.5", 5.0));
    let second = place(&mut core, &bid("b", "1.5", 5.0));
    assert_eq!(first.status, BidStatus::Accepted);
    assert_eq!(second.reason, Some(RejectReason::BelowMinIncrement));
}

#[test]
fn invalid_amounts_are_refused() {
    let mut core = open(new_auction());
    assert_eq!(reason(&mut core, &bid("a", "not a number", 1.0)), Some(RejectReason::InvalidAmount));
    assert_eq!(reason(&mut core, &bid("a", "0", 2.0)), Some(RejectReason::InvalidAmount));
    assert_eq!(
        reason(&mut core, &bid("a", "1000000.000000000000000001", 3.0)),
        Some(RejectReason::InvalidAmount)
    );
}

#[test]
fn a_consignor_named_by_handle_or_found_by_wallet_cannot_bid() {
    let mut core = open(NewAuction { consignor: Some("@Seller".into()), ..new_auction() });
    let mut by_handle = bid("x:1", "5", 1.0);
    by_handle.bidder.handle = Some("@seller".into());
    assert_eq!(
        core.decide(&by_handle, BidderStanding::default()).reason,
        Some(RejectReason::SellerCannotBid)
    );
    let wallet = BidderStanding { consignor: true, ..Default::default() };
    assert_eq!(core.decide(&bid("x:2", "5", 2.0), wallet).reason, Some(RejectReason::SellerCannotBid));
    assert_eq!(core.decide(&bid("x:3", "5", 3.0), BidderStanding::default()).reason, None);
}

#[test]
fn bidder_standing_gives_its_own_reasons() {
    let mut core = open(NewAuction { consignor: Some("seller".into()), ..new_auction() });
    let cases = [
        (BidderStanding { blocked: true, ..Default::default() }, "a", RejectReason::BidderBlocked),
        (BidderStanding::default(), "seller", RejectReason::SellerCannotBid),
        (
            BidderStanding { verified: Some(false), ..Default::default() },
            "a",
            RejectReason::BidderNotVerified,
        ),
        (
            BidderStanding { funds_sufficient: Some(false), ..Default::default() },
            "a",
            RejectReason::InsufficientFunds,
        ),
    ];
    for (index, (standing, bidder, expected)) in cases.into_iter().enumerate() {
        let decided = core.decide(&bid(bidder, "5", 1.0 + index as f64), standing);
        assert_eq!(decided.reason, Some(expected));
    }
}

#[test]
fn a_scheduled_auction_is_not_open_and_opens_at_its_start() {
    let mut core = AuctionCore::create(Uuid::from_u128(1), &new_auction(), MAX_BID).expect("valid");
    assert_eq!(
        core.decide(&bid("a", "1", -1.0), BidderStanding::default()).reason,
        Some(RejectReason::AuctionNotOpen)
    );
    assert_eq!(core.next_deadline(), Some(t0()));
    assert_eq!(core.advance(at(0.05)), vec![Transition::Opened]);
    assert_eq!(core.state_at(at(0.05)), AuctionState::Open);
    assert_eq!(core.ends_at, Some(at(90.0)), "the schedule holds even when opened late");
}

#[test]
fn a_bid_in_the_last_window_resets_the_end_to_thirty_seconds_after_it() {
    let mut core = open(new_auction());
    let accepted = place(&mut core, &bid("a", "1", 75.0));
    assert_eq!(accepted.extended_to, Some(at(105.0)));
    assert_eq!(core.ends_at, Some(at(105.0)));
    assert!(core.snapshot(at(76.0)).extended);
}

#[test]
fn a_bid_outside_the_window_does_not_extend() {
    let mut core = open(new_auction());
    let accepted = place(&mut core, &bid("a", "1", 59.0));
    assert_eq!(accepted.extended_to, None);
    assert_eq!(core.ends_at, Some(at(90.0)));
}

#[test]
fn extension_resets_to_and_never_adds() {
    let mut core = open(new_auction());
    place(&mut core, &bid("a", "1", 80.0));
    assert_eq!(core.ends_at, Some(at(110.0)));
    place(&mut core, &bid("b", "2", 81.0));
    assert_eq!(core.ends_at, Some(at(111.0)), "reset to 81 + 30, not 110 + 30");
}

#[test]
fn extensions_never_pass_the_cap() {
    let mut core = open(NewAuction {
        anti_snipe: Some(Some(AntiSnipe { window_secs: 30, reset_secs: 30, max_extension_secs: 20 })),
        ..new_auction()
    });
    place(&mut core, &bid("a", "1", 85.0));
    assert_eq!(core.ends_at, Some(at(110.0)), "capped at scheduled end + 20 s");
    place(&mut core, &bid("b", "2", 100.0));
    assert_eq!(core.ends_at, Some(at(110.0)));
}

#[test]
fn rejected_bids_never_extend() {
    let mut core = open(new_auction());
    let rejected = place(&mut core, &bid("a", "0.5", 85.0));
    assert_eq!(rejected.status, BidStatus::Rejected);
    assert_eq!(core.ends_at, Some(at(90.0)));
}

#[test]
fn sudden_death_closes_at_the_scheduled_end() {
    let mut core = open(NewAuction { anti_snipe: Some(None), ..new_auction() });
    let accepted = place(&mut core, &bid("a", "1", 89.0));
    assert_eq!(accepted.extended_to, None);
    assert_eq!(core.ends_at, Some(at(90.0)));
}

#[test]
fn http_bids_after_the_end_are_closed_even_within_the_grace() {
    let mut core = open(new_auction());
    assert_eq!(core.state_at(at(91.0)), AuctionState::Closing);
    assert_eq!(reason(&mut core, &bid("a", "1", 91.0)), Some(RejectReason::AuctionClosed));
    assert_eq!(
        reason(&mut core, &bid("a", "1", 90.0)),
        Some(RejectReason::AuctionClosed),
        "ends_at is exclusive"
    );
}

#[test]
fn a_post_made_in_time_that_arrives_within_the_grace_is_decided_by_its_post_time() {
    let mut core = open(new_auction());
    let late = place(&mut core, &x_bid("a", "1", 89.0, 100.0));
    assert_eq!(late.status, BidStatus::Accepted);
    // Acted at 89 s with 1 s left: the end resets to 89 + 30.
    assert_eq!(core.ends_at, Some(at(119.0)));
    assert_eq!(core.state_at(at(100.0)), AuctionState::Open);
}

#[test]
fn a_post_made_after_the_end_or_arriving_after_the_grace_is_closed() {
    let mut core = open(new_auction());
    assert_eq!(reason(&mut core, &x_bid("a", "1", 90.5, 91.0)), Some(RejectReason::AuctionClosed));
    let mut core = open(new_auction());
    assert_eq!(reason(&mut core, &x_bid("a", "1", 89.0, 105.001)), Some(RejectReason::AuctionClosed));
}

#[test]
fn a_post_made_before_the_lot_opened_is_not_open() {
    let mut core = open(new_auction());
    assert_eq!(reason(&mut core, &x_bid("a", "1", -2.0, 1.0)), Some(RejectReason::AuctionNotOpen));
}

#[test]
fn the_auction_closes_after_the_grace_with_its_outcome() {
    let mut sold = open(NewAuction { reserve_price: Some(eth("2")), ..new_auction() });
    place(&mut sold, &bid("a", "2", 10.0));
    assert_eq!(sold.advance(at(104.999)), vec![]);
    let transitions = sold.advance(at(105.0));
    let winner = Bidder { id: "a".into(), handle: Some("@a".into()) };
    let expected = Outcome { result: OutcomeResult::Sold, winner: Some(winner), amount: Some(eth("2")) };
    assert_eq!(transitions, vec![Transition::Closed(expected)]);
    assert_eq!(sold.state_at(at(105.0)), AuctionState::Closed);
    assert_eq!(reason(&mut sold, &bid("b", "9", 106.0)), Some(RejectReason::AuctionClosed));

    let mut short = open(NewAuction { reserve_price: Some(eth("2")), ..new_auction() });
    place(&mut short, &bid("a", "1.5", 10.0));
    short.advance(at(200.0));
    assert_eq!(short.outcome.as_ref().map(|outcome| outcome.result), Some(OutcomeResult::ReserveNotMet));

    let mut empty = open(new_auction());
    empty.advance(at(200.0));
    assert_eq!(empty.outcome.as_ref().map(|outcome| outcome.result), Some(OutcomeResult::NoBids));
}

#[test]
fn a_hidden_reserve_is_not_shown_but_reserve_met_is() {
    let mut core =
        open(NewAuction { reserve_price: Some(eth("3")), reserve_visible: Some(false), ..new_auction() });
    place(&mut core, &bid("a", "3", 1.0));
    let snapshot = core.snapshot(at(2.0));
    assert_eq!(snapshot.reserve_price, None);
    assert!(snapshot.reserve_met);
}

#[test]
fn cancelled_auction_refuses_bids_as_closed() {
    let mut core = open(new_auction());
    core.cancel(at(1.0), "op", false, None).expect("cancel before bids");
    assert_eq!(core.state_at(at(2.0)), AuctionState::Cancelled);
    assert_eq!(reason(&mut core, &bid("a", "1", 2.0)), Some(RejectReason::AuctionClosed));
}

#[test]
fn after_the_first_bid_only_an_admin_with_a_reason_may_cancel() {
    let mut core = open(new_auction());
    place(&mut core, &bid("a", "1", 1.0));
    assert!(matches!(core.cancel(at(2.0), "op", false, Some("why".into())), Err(CommandError::Forbidden(_))));
    assert!(matches!(core.cancel(at(2.0), "boss", true, Some("  ".into())), Err(CommandError::Invalid(_))));
    core.cancel(at(2.0), "boss", true, Some("consignor withdrew the lot".into())).expect("admin cancels");
    assert_eq!(core.phase, Phase::Cancelled);
}

#[test]
fn a_closed_auction_cannot_be_cancelled_or_started() {
    let mut core = open(new_auction());
    core.advance(at(500.0));
    assert!(matches!(
        core.cancel(at(501.0), "boss", true, Some("late".into())),
        Err(CommandError::Conflict(_))
    ));
    assert!(matches!(core.start(at(501.0)), Err(CommandError::Conflict(_))));
}

#[test]
fn operator_start_opens_now_for_the_configured_duration() {
    let mut core =
        AuctionCore::create(Uuid::from_u128(2), &NewAuction { starts_at: None, ..new_auction() }, MAX_BID)
            .expect("valid");
    assert_eq!(core.next_deadline(), None, "waits for an operator");
    core.start(at(10.0)).expect("start");
    assert_eq!((core.starts_at, core.ends_at), (Some(at(10.0)), Some(at(100.0))));
}

#[test]
fn settings_errors_name_the_field() {
    let cases = [
        (NewAuction { starting_price: Amount::ZERO, ..new_auction() }, "starting_price"),
        (NewAuction { title: " ".into(), ..new_auction() }, "title"),
        (NewAuction { duration_secs: Some(0), ..new_auction() }, "duration_secs"),
        (NewAuction { increment_percent: Some(101), ..new_auction() }, "increment_percent"),
        (
            NewAuction {
                increment_table: Some(vec![
                    IncrementStep { below: None, step: eth("1") },
                    IncrementStep { below: Some(eth("2")), step: eth("1") },
                ]),
                ..new_auction()
            },
            "increment_table",
        ),
        (
            NewAuction {
                anti_snipe: Some(Some(AntiSnipe { window_secs: 0, reset_secs: 30, max_extension_secs: 300 })),
                ..new_auction()
            },
            "anti_snipe",
        ),
    ];
    for (new, field) in cases {
        assert_eq!(Settings::from_new(&new, MAX_BID).map_err(|error| error.field), Err(field));
    }
}

#[test]
fn the_bid_log_is_hash_chained_and_tampering_is_detected() {
    let mut core = open(new_auction());
    let log: Vec<Bid> = [bid("a", "1", 1.0), bid("b", "0.5", 2.0), bid("b", "1.1", 3.0)]
        .iter()
        .map(|input| place(&mut core, input))
        .collect();
    assert_eq!(verify_chain(core.id, &log), Ok(()));
    let mut tampered = log.clone();
    tampered[1].amount = eth("5");
    assert_eq!(verify_chain(core.id, &tampered), Err(2));
    let mut reordered = log.clone();
    reordered.swap(0, 1);
    assert_eq!(verify_chain(core.id, &reordered), Err(1));
}

// ---- the property test ----

/// One step of a random session.
#[derive(Debug, Clone)]
struct Step {
    wait_ms: i64,
    bidder: u8,
    /// In units of 0.005 ETH.
    amount_units: u32,
    /// For X bids: how long the post took to arrive.
    x_lag_ms: Option<i64>,
}

fn step() -> impl Strategy<Value = Step> {
    (0i64..8_000, 0u8..4, 0u32..2_000, proptest::option::of(0i64..20_000)).prop_map(
        |(wait_ms, bidder, amount_units, x_lag_ms)| Step { wait_ms, bidder, amount_units, x_lag_ms },
    )
}

/// The rules written as plainly as possible, independently of `AuctionCore`.
struct Model {
    start: i64,
    end: i64,
    scheduled_end: i64,
    grace: i64,
    high: Option<(u128, u8)>,
    last_accepted: [Option<i64>; 4],
}

impl Model {
    fn min_raise(high: u128) -> u128 {
        let wei = 1_000_000_000_000_000_000u128;
        let percent = (high * 5).div_ceil(100);
        let table = [
            (wei / 10, wei / 200),
            (wei / 2, wei / 100),
            (wei, wei / 40),
            (wei * 5 / 2, wei / 20),
            (wei * 5, wei / 10),
            (wei * 10, wei / 4),
            (wei * 25, wei / 2),
        ];
        let step = table.iter().find(|(below, _)| high < *below).map_or(wei, |(_, step)| *step);
        percent.max(step).max(1)
    }

    /// Accepted or not, and the new end.
    fn decide(&mut self, bidder: u8, wei: u128, acted: i64, arrived: i64) -> bool {
        let open = acted >= self.start && acted < self.end && arrived <= self.end + self.grace;
        let rate_ok = self.last_accepted[bidder as usize].is_none_or(|last| arrived - last >= 2_000);
        let price_ok = match self.high {
            None => wei >= 1_000_000_000_000_000_000,
            Some((high, _)) => wei >= high + Model::min_raise(high),
        };
        if !(open && wei > 0 && rate_ok && price_ok) {
            return false;
        }
        self.high = Some((wei, bidder));
        self.last_accepted[bidder as usize] = Some(arrived);
        if self.end - acted < 30_000 {
            self.end = self.end.max((acted + 30_000).min(self.scheduled_end + 300_000));
        }
        true
    }
}

fn run_session(steps: &[Step]) -> (AuctionCore, Vec<Bid>, Vec<BidInput>) {
    let mut core = open(new_auction());
    let mut clock = 0i64;
    let mut log = Vec::new();
    let mut inputs = Vec::new();
    for (index, step) in steps.iter().enumerate() {
        clock += step.wait_ms;
        let amount = Amount::from_wei(u128::from(step.amount_units) * 5_000_000_000_000_000);
        let arrived = t0() + Duration::milliseconds(clock);
        let input = BidInput {
            id: Uuid::from_u128(index as u128 + 1),
            amount: Offer::Amount(amount),
            bidder: Bidder { id: format!("bidder-{}", step.bidder), handle: None },
            source: if step.x_lag_ms.is_some() { BidSource::X } else { BidSource::Http },
            source_ref: None,
            created_at: arrived - Duration::milliseconds(step.x_lag_ms.unwrap_or(0)),
            received_at: arrived,
        };
        log.push(place(&mut core, &input));
        inputs.push(input);
    }
    (core, log, inputs)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn state_machine_agrees_with_the_reference_model_and_keeps_its_invariants(
        steps in proptest::collection::vec(step(), 1..60)
    ) {
        let (mut core, log, inputs) = run_session(&steps);

        // Decisions match the reference model.
        let mut model = Model { start: 0, end: 90_000, scheduled_end: 90_000, grace: 15_000, high: None, last_accepted: [None; 4] };
        for (input, decided) in inputs.iter().zip(&log) {
            let acted = (input.created_at - t0()).num_milliseconds();
            let arrived = (input.received_at - t0()).num_milliseconds();
            let bidder = input.bidder.id.trim_start_matches("bidder-").parse::<u8>().unwrap_or(0);
            let expected = model.decide(bidder, input.amount.or_zero().wei(), acted, arrived);
            prop_assert_eq!(decided.status == BidStatus::Accepted, expected, "bid {:?}", decided);
        }

        // Accepted amounts strictly increase by at least the increment.
        let accepted: Vec<&Bid> = log.iter().filter(|bid| bid.status == BidStatus::Accepted).collect();
        for pair in accepted.windows(2) {
            let raise = core.settings.increment(pair[0].amount);
            prop_assert!(pair[1].amount >= pair[0].amount.checked_add(raise).unwrap_or(Amount::ZERO));
        }

        // The end only moves on accepted bids, and never past the cap.
        let cap = at(90.0 + 300.0);
        for bid in &log {
            if bid.extended_to.is_some() {
                prop_assert_eq!(bid.status, BidStatus::Accepted);
            }
            prop_assert!(bid.extended_to.is_none_or(|end| end <= cap));
        }
        prop_assert!(core.ends_at.is_some_and(|end| end <= cap));

        // Nothing accepted arrives after close + grace.
        let final_close = core.closes_at().expect("open auction has a close");
        prop_assert!(accepted.iter().all(|bid| bid.received_at <= final_close));

        // The log verifies and implies the same winner as the engine.
        prop_assert_eq!(verify_chain(core.id, &log), Ok(()));
        core.advance(final_close + Duration::seconds(1));
        prop_assert_eq!(core.outcome.clone(), Some(outcome_from_log(&log, core.settings.reserve_price)));

        // Replaying the same inputs gives byte-identical decisions.
        let mut replay = open(new_auction());
        let replayed: Vec<Bid> = inputs.iter().map(|input| place(&mut replay, input)).collect();
        prop_assert_eq!(
            serde_json::to_string(&replayed).expect("serialize"),
            serde_json::to_string(&log).expect("serialize")
        );
    }
}

#[test]
fn the_rate_memory_keeps_only_the_last_window_of_bidders() {
    let mut core =
        open(NewAuction { increment_table: Some(vec![]), increment_percent: Some(0), ..new_auction() });
    for index in 0..1000u32 {
        let amount = format!("{}", 1 + index);
        place(&mut core, &bid(&format!("bidder-{index}"), &amount, f64::from(index) * 0.05));
    }
    // 50 ms apart: only the bidders of the last two seconds are remembered.
    assert!(core.last_accepted.len() <= 41, "{} entries", core.last_accepted.len());
}
