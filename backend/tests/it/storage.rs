//! The storage trait, the same tests on SQLite and PostgreSQL.

use chrono::{Duration as ChronoDuration, Utc};
use sothebais_backend::auction::rules::{
    AuctionCore, BidInput, BidderStanding, DEFAULT_MAX_BID_ETH, Offer, millis,
};
use sothebais_backend::storage::{AuctionCommit, CommitOutcome, EventQuery};
use sothebais_shared::Amount;
use sothebais_shared::auction::{Bid, BidSource, Bidder, NewAuction};
use sothebais_shared::events::{
    AgentMood, BidEvent, Envelope, EventType, Mood, RawEnvelope, Source, SystemMetric,
};
use uuid::Uuid;

use crate::helpers::Backend;
use crate::helpers::both_backends;

fn mood_event() -> Envelope {
    Envelope::new(
        EventType::AgentMood,
        Source::AgentService,
        &AgentMood { mood: Mood::Tense, intensity: 0.75, expression: "tense.png".into() },
    )
    .expect("valid")
}

fn metric_event(value: f64) -> Envelope {
    Envelope::new(
        EventType::SystemMetric,
        Source::EventHandler,
        &SystemMetric { name: "lag".into(), value, labels: Default::default() },
    )
    .expect("valid")
}

/// An open auction, stored (version 1), its state in memory.
async fn open_auction(storage: &dyn sothebais_backend::storage::Storage) -> AuctionCore {
    let new = NewAuction {
        title: "Lot".into(),
        starting_price: Amount::from_eth(1),
        duration_secs: Some(600),
        ..NewAuction::default()
    };
    let mut core = AuctionCore::create(Uuid::now_v7(), &new, Amount::from_eth(DEFAULT_MAX_BID_ETH))
        .expect("valid auction");
    storage.insert_auction(&core, &[]).await.expect("insert");
    core.start(millis(Utc::now())).expect("starts");
    core
}

/// A bid decided on `core` (not stored) and its `placed` and decided events.
fn decide(core: &mut AuctionCore, bidder: &str, eth: u64, key: Option<&str>) -> (Bid, Vec<RawEnvelope>) {
    let now = millis(Utc::now());
    let input = BidInput {
        id: Uuid::now_v7(),
        amount: Offer::Amount(Amount::from_eth(eth)),
        bidder: Bidder { id: bidder.into(), handle: Some(format!("@{bidder}")) },
        source: BidSource::Http,
        source_ref: key.map(str::to_owned),
        created_at: now,
        received_at: now,
    };
    let bid = core.decide(&input, BidderStanding::default());
    let decided = match bid.status {
        sothebais_shared::auction::BidStatus::Accepted => EventType::AuctionBidAccepted,
        sothebais_shared::auction::BidStatus::Rejected => EventType::AuctionBidRejected,
    };
    let events = [EventType::AuctionBidPlaced, decided]
        .into_iter()
        .map(|kind| {
            let data = BidEvent { bid: bid.clone(), seq: core.seq, auction: None };
            RawEnvelope::new_typed(kind, Source::AuctionEngine, &data).expect("event")
        })
        .collect();
    (bid, events)
}

fn query(patterns: &[&str]) -> EventQuery {
    EventQuery {
        patterns: patterns.iter().map(|pattern| pattern.parse().expect("pattern")).collect(),
        limit: 100,
        ..EventQuery::default()
    }
}

both_backends! {
    async fn a_group_commit_applies_each_auction_whose_version_matches_and_only_its_bids_and_events(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        // The second auction's events are made first, so store order is not id order.
        let mut second = open_auction(storage.as_ref()).await;
        let (second_bid, second_events) = decide(&mut second, "carol", 2, None);
        let mut first = open_auction(storage.as_ref()).await;
        let (accepted, mut first_events) = decide(&mut first, "alice", 2, Some("key-1"));
        let (rejected, events) = decide(&mut first, "bob", 2, None);
        assert!(rejected.reason.is_some(), "the same amount again is refused");
        first_events.extend(events);
        let first_bids = vec![accepted, rejected];
        let mut stale = open_auction(storage.as_ref()).await;
        let (stale_bid, stale_events) = decide(&mut stale, "dave", 2, None);
        let stale_bids = vec![stale_bid];
        let second_bids = vec![second_bid];
        let commits = [
            AuctionCommit { core: &first, expected_version: 1, bids: &first_bids, events: &first_events },
            AuctionCommit { core: &second, expected_version: 1, bids: &second_bids, events: &second_events },
            // Another writer moved this one on: the version read is out of date.
            AuctionCommit { core: &stale, expected_version: 0, bids: &stale_bids, events: &stale_events },
        ];
        let outcomes: Vec<CommitOutcome> =
            storage.commit_auctions(&commits).await.into_iter().map(|outcome| outcome.expect("commit")).collect();
        assert_eq!(outcomes, vec![CommitOutcome::Committed, CommitOutcome::Committed, CommitOutcome::Conflict]);

        let stored = storage.auction(first.id).await.expect("read").expect("stored");
        assert_eq!((stored.version, stored.core.seq), (2, 2));
        assert_eq!(storage.bids(first.id, 0, 10).await.expect("bids"), first_bids, "every column read back");
        assert_eq!(storage.bids(second.id, 0, 10).await.expect("bids"), second_bids);
        let stored = storage.auction(stale.id).await.expect("read").expect("stored");
        assert_eq!((stored.version, stored.core.seq), (1, 0), "the stale commit changed nothing");
        assert!(storage.bids(stale.id, 0, 10).await.expect("bids").is_empty());

        let history = storage.events(&EventQuery { after_seq: Some(0), ..query(&["auction:*"]) }).await.expect("history");
        let stored_ids: Vec<Uuid> = history.iter().map(|stored| stored.event.id).collect();
        let given: Vec<Uuid> = first_events.iter().chain(&second_events).map(|event| event.id).collect();
        assert_eq!(stored_ids, given, "the applied commits' events, in the order given");
        let data: BidEvent = history[1].event.decode().expect("typed data");
        assert_eq!(data.bid, first_bids[0]);

        let bus = backend.bus(1000).await;
        let relayed = storage.relay_outbox(0, 10, bus.as_ref()).await.expect("storage").expect("bus");
        assert_eq!(relayed.len(), given.len(), "all queued in the outbox");
    }

    async fn a_key_stored_before_makes_its_commit_a_conflict_and_the_rest_of_the_group_still_commits(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        let mut taken = open_auction(storage.as_ref()).await;
        let (bid, events) = decide(&mut taken, "alice", 2, Some("post-1"));
        let commit = AuctionCommit { core: &taken, expected_version: 1, bids: std::slice::from_ref(&bid), events: &events };
        assert!(matches!(storage.commit_auctions(&[commit]).await[..], [Ok(CommitOutcome::Committed)]));

        // A writer that has not seen it decides the same post again on the stored state.
        let (again, again_events) = decide(&mut taken, "alice", 3, Some("post-1"));
        let mut other = open_auction(storage.as_ref()).await;
        let (other_bid, other_events) = decide(&mut other, "bob", 2, Some("post-1"));
        let (again_bids, other_bids) = (vec![again], vec![other_bid]);
        let commits = [
            AuctionCommit { core: &taken, expected_version: 2, bids: &again_bids, events: &again_events },
            AuctionCommit { core: &other, expected_version: 1, bids: &other_bids, events: &other_events },
        ];
        let outcomes: Vec<CommitOutcome> =
            storage.commit_auctions(&commits).await.into_iter().map(|outcome| outcome.expect("commit")).collect();
        assert_eq!(outcomes, vec![CommitOutcome::Conflict, CommitOutcome::Committed]);
        assert_eq!(storage.bids(taken.id, 0, 10).await.expect("bids"), vec![bid], "the first decision only");
        assert_eq!(storage.bids(other.id, 0, 10).await.expect("bids"), other_bids, "a key is per auction");
        assert_eq!(storage.auction(taken.id).await.expect("read").expect("stored").version, 2);
    }

    async fn the_relay_publishes_after_its_cursor_and_a_sweep_from_the_start_finds_the_rest(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        let bus = backend.bus(1000).await;
        let first = storage.append_event(&mood_event()).await.expect("append");
        let second = storage.append_event(&mood_event()).await.expect("append");
        assert!(first.seq < second.seq);
        // As if `second` had gone out first (it committed before `first`).
        let after = storage.relay_outbox(first.seq, 10, bus.as_ref()).await.expect("storage").expect("bus");
        assert_eq!(after.iter().map(|stored| stored.event.id).collect::<Vec<_>>(), vec![second.event.id]);
        assert!(
            storage.relay_outbox(second.seq, 10, bus.as_ref()).await.expect("storage").expect("bus").is_empty(),
            "nothing after the cursor"
        );
        let swept = storage.relay_outbox(0, 10, bus.as_ref()).await.expect("storage").expect("bus");
        assert_eq!(swept.iter().map(|stored| stored.event.id).collect::<Vec<_>>(), vec![first.event.id]);
        assert!(
            storage.relay_outbox(0, 10, bus.as_ref()).await.expect("storage").expect("bus").is_empty(),
            "each event is taken off the outbox once published"
        );
        assert_eq!(bus.stream_len("events:agent").await.expect("length"), 2, "each published once");
    }

    async fn stored_event_reads_back_identical(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        let event = mood_event().correlated("post-42");
        let stored = storage.append_event(&event).await.expect("append");
        assert_eq!(stored.event, event);
        let read = storage.event(event.id).await.expect("read").expect("present");
        assert_eq!(read, stored);
    }

    async fn storing_the_same_event_twice_keeps_one_row(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        let event = mood_event();
        let first = storage.append_event(&event).await.expect("append");
        let second = storage.append_event(&event).await.expect("append again");
        assert_eq!(first.seq, second.seq);
        assert_eq!(storage.events(&query(&["*"])).await.expect("history").len(), 1);
    }

    async fn history_is_newest_first_and_filtered_by_pattern(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        let first = mood_event();
        let metric = metric_event(1.0);
        let second = mood_event();
        for event in [&first, &metric, &second] {
            storage.append_event(event).await.expect("append");
        }
        let agent: Vec<_> = storage.events(&query(&["agent:*"])).await.expect("history")
            .into_iter().map(|stored| stored.event.id).collect();
        assert_eq!(agent, vec![second.id, first.id]);
        let exact = storage.events(&query(&["system:metric"])).await.expect("history");
        assert_eq!(exact.len(), 1);
        assert_eq!(exact[0].event, metric);
        let both = storage.events(&query(&["agent:mood", "system:*"])).await.expect("history");
        assert_eq!(both.len(), 3);
    }

    async fn history_filters_by_correlation_and_time(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        let mut old = mood_event().correlated("chain-a");
        old.timestamp = (Utc::now() - ChronoDuration::hours(2)).timestamp_millis();
        let recent = mood_event().correlated("chain-b");
        storage.append_event(&old).await.expect("append");
        storage.append_event(&recent).await.expect("append");

        let by_chain = storage
            .events(&EventQuery { correlation_id: Some("chain-a".into()), ..query(&["*"]) })
            .await
            .expect("history");
        assert_eq!(by_chain.iter().map(|stored| stored.event.id).collect::<Vec<_>>(), vec![old.id]);

        let last_hour = storage
            .events(&EventQuery { after: Some(Utc::now() - ChronoDuration::hours(1)), ..query(&["*"]) })
            .await
            .expect("history");
        assert_eq!(last_hour.iter().map(|stored| stored.event.id).collect::<Vec<_>>(), vec![recent.id]);

        let before = storage
            .events(&EventQuery { before: Some(Utc::now() - ChronoDuration::hours(1)), ..query(&["*"]) })
            .await
            .expect("history");
        assert_eq!(before.iter().map(|stored| stored.event.id).collect::<Vec<_>>(), vec![old.id]);
    }

    async fn replay_after_a_sequence_number_is_oldest_first(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        let events: Vec<Envelope> = (0..5).map(|value| metric_event(f64::from(value))).collect();
        let mut seqs = Vec::new();
        for event in &events {
            seqs.push(storage.append_event(event).await.expect("append").seq);
        }
        assert!(seqs.windows(2).all(|pair| pair[0] < pair[1]), "{seqs:?}");
        let replay = storage
            .events(&EventQuery { after_seq: Some(seqs[1]), limit: 2, ..query(&["*"]) })
            .await
            .expect("replay");
        assert_eq!(replay.iter().map(|stored| stored.event.id).collect::<Vec<_>>(), vec![events[2].id, events[3].id]);
    }

    async fn ping_answers_when_the_database_is_up(backend: Backend) {
        let (storage, _dir) = backend.storage().await;
        storage.ping().await.expect("ping");
    }
}
