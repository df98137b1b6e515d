//! The event bus trait, the same tests on the in-process bus and Redis Streams.

use std::time::Duration;

use sothebais_backend::bus::{Delivery, GroupStart, SubscribeOptions};
use sothebais_shared::events::{AgentMood, Category, Envelope, EventType, Mood, Source};

use crate::helpers::Backend;
use crate::helpers::both_backends;

fn event(mood: Mood) -> Envelope {
    Envelope::new(
        EventType::AgentMood,
        Source::AgentService,
        &AgentMood { mood, intensity: 1.0, expression: "x".into() },
    )
    .expect("valid")
}

fn options(group: &str, consumer: &str) -> SubscribeOptions {
    SubscribeOptions::new(group, consumer, &[Category::Agent, Category::Auction], GroupStart::Latest)
}

fn ids(deliveries: &[Delivery]) -> Vec<uuid::Uuid> {
    deliveries.iter().map(|delivery| delivery.envelope().expect("valid envelope").id).collect()
}

const WAIT: Duration = Duration::from_secs(2);

both_backends! {
    async fn a_groups_backlog_counts_what_is_undelivered_and_unacknowledged(backend: Backend) {
        let bus = backend.bus(1000).await;
        assert_eq!(bus.backlog("events:agent", "projector").await.expect("backlog"), 0, "no stream, no group");
        let mut subscription = bus.subscribe(options("projector", "one")).await.expect("subscribe");
        for mood in [Mood::Happy, Mood::Tense, Mood::Neutral] {
            bus.publish(&event(mood)).await.expect("publish");
        }
        assert_eq!(bus.backlog("events:agent", "projector").await.expect("backlog"), 3, "three undelivered");
        let first = subscription.read(2, WAIT).await.expect("read");
        assert_eq!(first.len(), 2);
        assert_eq!(bus.backlog("events:agent", "projector").await.expect("backlog"), 3, "two pending, one undelivered");
        subscription.ack_many(&first).await.expect("ack");
        assert_eq!(bus.backlog("events:agent", "projector").await.expect("backlog"), 1);
        let rest = subscription.read(10, WAIT).await.expect("read");
        subscription.ack_many(&rest).await.expect("ack");
        assert_eq!(bus.backlog("events:agent", "projector").await.expect("backlog"), 0, "caught up");
        assert_eq!(bus.backlog("events:agent", "nobody").await.expect("backlog"), 0, "an unknown group has nothing to do");
    }

    async fn published_event_reaches_a_subscriber_intact(backend: Backend) {
        let bus = backend.bus(1000).await;
        let mut subscription = bus.subscribe(options("renderer", "one")).await.expect("subscribe");
        let sent = event(Mood::Happy);
        bus.publish(&sent).await.expect("publish");
        let received = subscription.read(10, WAIT).await.expect("read");
        assert_eq!(received.len(), 1);
        assert_eq!(received[0].stream, "events:agent");
        assert_eq!(received[0].envelope().expect("envelope"), sent);
    }

    async fn a_blocked_read_wakes_on_publish(backend: Backend) {
        let bus = backend.bus(1000).await;
        let mut subscription = bus.subscribe(options("renderer", "one")).await.expect("subscribe");
        let publisher = bus.clone();
        let sent = event(Mood::Excited);
        let expected = sent.id;
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            publisher.publish(&sent).await.expect("publish");
        });
        let received = subscription.read(10, Duration::from_secs(5)).await.expect("read");
        assert_eq!(ids(&received), vec![expected]);
    }

    async fn each_group_gets_every_event_and_each_consumer_a_share(backend: Backend) {
        let bus = backend.bus(1000).await;
        let mut renderer = bus.subscribe(options("renderer", "r1")).await.expect("subscribe");
        let mut agent_a = bus.subscribe(options("agent", "a1")).await.expect("subscribe");
        let mut agent_b = bus.subscribe(options("agent", "a2")).await.expect("subscribe");
        let sent: Vec<Envelope> = (0..4).map(|_| event(Mood::Neutral)).collect();
        for item in &sent {
            bus.publish(item).await.expect("publish");
        }
        let all = renderer.read(10, WAIT).await.expect("read");
        assert_eq!(ids(&all), sent.iter().map(|item| item.id).collect::<Vec<_>>());
        let first = agent_a.read(3, WAIT).await.expect("read");
        let rest = agent_b.read(10, WAIT).await.expect("read");
        assert_eq!(first.len() + rest.len(), 4);
        assert!(ids(&first).iter().all(|id| !ids(&rest).contains(id)), "no entry goes to two consumers of a group");
    }

    async fn unacknowledged_entry_of_a_dead_consumer_is_redelivered_to_another(backend: Backend) {
        let bus = backend.bus(1000).await;
        let mut doomed = bus.subscribe(options("agent", "doomed")).await.expect("subscribe");
        let mut survivor = bus.subscribe(options("agent", "survivor")).await.expect("subscribe");
        let sent = event(Mood::Tense);
        bus.publish(&sent).await.expect("publish");
        let taken = doomed.read(10, WAIT).await.expect("read");
        assert_eq!(ids(&taken), vec![sent.id]);
        drop(doomed); // dies before acknowledging

        assert!(survivor.read(10, Duration::from_millis(50)).await.expect("read").is_empty(),
            "a pending entry is not handed out as new");
        assert!(survivor.claim_stalled(Duration::from_secs(60), 10).await.expect("claim").is_empty(),
            "a recently delivered entry is not yet stalled");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let claimed = survivor.claim_stalled(Duration::from_millis(100), 10).await.expect("claim");
        assert_eq!(ids(&claimed), vec![sent.id]);
        survivor.ack(&claimed[0]).await.expect("ack");
        tokio::time::sleep(Duration::from_millis(150)).await;
        assert!(survivor.claim_stalled(Duration::from_millis(100), 10).await.expect("claim").is_empty(),
            "an acknowledged entry is never delivered again");
    }

    async fn group_created_at_the_beginning_sees_earlier_events(backend: Backend) {
        let bus = backend.bus(1000).await;
        let early = event(Mood::Surprised);
        bus.publish(&early).await.expect("publish");
        let mut late_latest = bus.subscribe(options("latest", "one")).await.expect("subscribe");
        let mut late_beginning = bus
            .subscribe(SubscribeOptions::new("replayer", "one", &[Category::Agent], GroupStart::Beginning))
            .await
            .expect("subscribe");
        assert!(late_latest.read(10, Duration::from_millis(50)).await.expect("read").is_empty());
        assert_eq!(ids(&late_beginning.read(10, WAIT).await.expect("read")), vec![early.id]);
    }

    async fn streams_are_capped(backend: Backend) {
        let bus = backend.bus(10).await;
        for _ in 0..500 {
            bus.publish(&event(Mood::Neutral)).await.expect("publish");
        }
        // Redis trims approximately (whole macro-nodes), so allow its slack.
        let length = bus.stream_len("events:agent").await.expect("length");
        assert!((10..=200).contains(&length), "stream holds {length} entries");
    }
}

both_backends! {
    async fn every_tail_sees_every_new_event_without_acknowledging(backend: Backend) {
        let bus = backend.bus(1000).await;
        let before = event(Mood::Neutral);
        bus.publish(&before).await.expect("publish");
        let mut first = bus.tail(vec!["events:agent".into()]).await.expect("tail");
        let mut second = bus.tail(vec!["events:agent".into()]).await.expect("tail");
        let sent: Vec<Envelope> = (0..3).map(|_| event(Mood::Happy)).collect();
        for item in &sent {
            bus.publish(item).await.expect("publish");
        }
        let expected: Vec<uuid::Uuid> = sent.iter().map(|item| item.id).collect();
        for tail in [&mut first, &mut second] {
            let mut seen = Vec::new();
            while seen.len() < 3 {
                let batch = tail.next(10, WAIT).await.expect("next");
                assert!(!batch.is_empty(), "events arrive");
                seen.extend(ids(&batch));
            }
            assert_eq!(seen, expected, "only events added after the tail started, in order");
        }
    }

    async fn handled_ids_are_remembered_per_group(backend: Backend) {
        let bus = backend.bus(1000).await;
        let (storage, _dir) = backend.storage().await;
        let handled = sothebais_backend::events::dispatch::handled_ids(storage, bus.as_ref());
        let [first, second, third] = [uuid::Uuid::new_v4(), uuid::Uuid::new_v4(), uuid::Uuid::new_v4()];
        assert!(handled.among("agent", &[first, second]).await.expect("among").is_empty());
        handled.remember("agent", &[first, second]).await.expect("remember");
        handled.remember("agent", &[second]).await.expect("remembering twice is harmless");
        let mut known = handled.among("agent", &[third, second, first]).await.expect("among");
        known.sort();
        let mut expected = vec![first, second];
        expected.sort();
        assert_eq!(known, expected);
        assert!(handled.among("renderer", &[first]).await.expect("among").is_empty(), "each group has its own");
    }
}
