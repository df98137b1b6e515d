//! The storage trait, the same tests on SQLite and PostgreSQL.

use chrono::{Duration as ChronoDuration, Utc};
use sothebais_backend::auction::rules::{AuctionCore, BidInput, BidderStanding, millis};
use sothebais_backend::storage::{AuctionCommit, CommitOutcome, EventQuery};
use sothebais_shared::Amount;
use sothebais_shared::auction::{Bid, BidSource, Bidder, NewAuction};
use sothebais_shared::events::{
    AgentMood, BidEvent, Envelope, EventType, Mood, RawEnvelope, Source, SystemMetric,
};
use uuid::Uuid;

use crate::both_backends;
use crate::helpers::Backend;

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

/// An open auction, stored, with one bid decided on it (not stored yet) and that
/// bid's `placed` and `accepted` events.
async fn auction_with_a_bid(
    storage: &dyn sothebais_backend::storage::Storage,
) -> (AuctionCore, Vec<Bid>, Vec<RawEnvelope>) {
    let new = NewAuction {
        title: "Lot".into(),
        starting_price: Amount::from_eth(1),
        duration_secs: Some(600),
        ..NewAuction::default()
    };
    let mut core = AuctionCore::create(Uuid::now_v7(), &new).expect("valid auction");
    storage.insert_auction(&core, &[]).await.expect("insert");
    let now = millis(Utc::now());
    core.start(now).expect("starts");
    let input = BidInput {
        id: Uuid::now_v7(),
        amount: Some(Amount::from_eth(2)),
        bidder: Bidder { id: "bidder-1".into(), handle: None },
        source: BidSource::Http,
        source_ref: None,
        created_at: now,
        received_at: now,
    };
    let bid = core.decide(&input, BidderStanding::default());
    let events = [EventType::AuctionBidPlaced, EventType::AuctionBidAccepted]
        .into_iter()
        .map(|kind| {
            let data = BidEvent { bid: bid.clone(), seq: core.seq, auction: None };
            RawEnvelope::new_typed(kind, Source::AuctionEngine, &data).expect("event")
        })
        .collect();
    (core, vec![bid], events)
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
        let (fresh, fresh_bids, fresh_events) = auction_with_a_bid(storage.as_ref()).await;
        let (stale, stale_bids, stale_events) = auction_with_a_bid(storage.as_ref()).await;
        let commits = [
            AuctionCommit { core: &fresh, expected_version: 1, bids: &fresh_bids, events: &fresh_events },
            // Another writer moved this one on: the version read is out of date.
            AuctionCommit { core: &stale, expected_version: 0, bids: &stale_bids, events: &stale_events },
        ];
        let outcomes = storage.commit_auctions(&commits).await.expect("commit");
        assert_eq!(outcomes, vec![CommitOutcome::Committed, CommitOutcome::Conflict]);

        let stored = storage.auction(fresh.id).await.expect("read").expect("stored");
        assert_eq!((stored.version, stored.core.seq), (2, 1));
        assert_eq!(storage.bids(fresh.id, 0, 10).await.expect("bids"), fresh_bids);
        let stored = storage.auction(stale.id).await.expect("read").expect("stored");
        assert_eq!((stored.version, stored.core.seq), (1, 0), "the stale commit changed nothing");
        assert!(storage.bids(stale.id, 0, 10).await.expect("bids").is_empty());

        let history = storage.events(&EventQuery { after_seq: Some(0), ..query(&["auction:*"]) }).await.expect("history");
        let ids: Vec<Uuid> = history.iter().map(|stored| stored.event.id).collect();
        assert_eq!(ids, fresh_events.iter().map(|event| event.id).collect::<Vec<_>>(), "in the order given");
        let data: BidEvent = history[1].event.decode().expect("typed data");
        assert_eq!(data.bid, fresh_bids[0]);

        let bus = backend.bus(1000).await;
        let relayed = storage.relay_outbox(0, 10, bus.as_ref()).await.expect("storage").expect("bus");
        assert_eq!(relayed.len(), 2, "both queued in the outbox");
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
