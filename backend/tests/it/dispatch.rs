//! Delivery to consumers on both backends: validation into dead letters, retries with
//! backoff, idempotent consumers, claiming from a dead consumer, retry from the dead
//! letters, replay; and the history API's filters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::helpers::Role;
use async_trait::async_trait;
use serde_json::{Value, json};
use sothebais_backend::ServiceRole;
use sothebais_backend::events::dispatch::{self, Consumer, DispatchSettings, RetryPolicy};
use sothebais_shared::Amount;
use sothebais_shared::auction::{Bidder, Outcome, OutcomeResult};
use sothebais_shared::events::{AgentMood, AuctionWinner, Envelope, EventType, Mood, Source, TypePattern};
use tokio::sync::Notify;
use uuid::Uuid;

use crate::helpers::both_backends;
use crate::helpers::{Backend, TestApp, json, token};

/// A consumer under the test's control: it fails the first `fail_first` tries of each
/// event, fails every try while `broken`, hangs while `hang`, and records what it
/// applied.
#[derive(Debug)]
struct Probe {
    name: String,
    patterns: Vec<TypePattern>,
    fail_first: u32,
    broken: AtomicBool,
    hang: AtomicBool,
    calls: Mutex<HashMap<Uuid, u32>>,
    applied: Mutex<Vec<Envelope>>,
    called: Notify,
    /// Applies batches all or nothing, refusing any batch with a disappointed mood.
    batches: bool,
}

impl Probe {
    fn new(name: &str, patterns: &[&str]) -> Probe {
        Probe {
            name: name.to_owned(),
            patterns: patterns.iter().map(|pattern| pattern.parse().expect("pattern")).collect(),
            fail_first: 0,
            broken: AtomicBool::new(false),
            hang: AtomicBool::new(false),
            calls: Mutex::new(HashMap::new()),
            applied: Mutex::new(Vec::new()),
            called: Notify::new(),
            batches: false,
        }
    }

    fn poisoned(event: &Envelope) -> bool {
        event.data["mood"] == "disappointed"
    }

    fn calls(&self, id: Uuid) -> u32 {
        self.calls.lock().expect("lock").get(&id).copied().unwrap_or(0)
    }

    fn applied(&self) -> Vec<Uuid> {
        self.applied.lock().expect("lock").iter().map(|event| event.id).collect()
    }
}

#[async_trait]
impl Consumer for Probe {
    fn name(&self) -> &str {
        &self.name
    }

    fn patterns(&self) -> &[TypePattern] {
        &self.patterns
    }

    async fn handle(&self, event: &Envelope) -> anyhow::Result<()> {
        let call = {
            let mut calls = self.calls.lock().expect("lock");
            let count = calls.entry(event.id).or_insert(0);
            *count += 1;
            *count
        };
        self.called.notify_waiters();
        if self.hang.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        if self.broken.load(Ordering::SeqCst) {
            anyhow::bail!("the sink is broken");
        }
        if call <= self.fail_first {
            anyhow::bail!("transient failure {call}");
        }
        if self.batches && Probe::poisoned(event) {
            anyhow::bail!("poisoned event");
        }
        self.applied.lock().expect("lock").push(event.clone());
        Ok(())
    }

    async fn handle_all(&self, events: &[Envelope]) -> Option<anyhow::Result<()>> {
        if !self.batches {
            return None;
        }
        if events.iter().any(Probe::poisoned) {
            return Some(Err(anyhow::anyhow!("a poisoned event in the batch")));
        }
        self.applied.lock().expect("lock").extend(events.iter().cloned());
        Some(Ok(()))
    }
}

fn settings(tries: u32) -> DispatchSettings {
    DispatchSettings {
        retry: RetryPolicy { tries, initial: Duration::from_millis(10), max: Duration::from_millis(40) },
        claim_idle: Duration::from_millis(400),
        batch: 64,
    }
}

/// Starts delivering to `probe` in the test's application, once its group exists.
async fn start(app: &TestApp, probe: Arc<Probe>, tries: u32) -> tokio::task::JoinHandle<anyhow::Result<()>> {
    let name = probe.name.clone();
    let runner = dispatch::spawn(
        app.state.storage.clone(),
        app.state.bus.clone(),
        probe,
        settings(tries),
        app.state.shutdown.clone(),
    );
    registered(app, &name).await;
    runner
}

async fn registered(app: &TestApp, name: &str) {
    // The consumer registers from its own task, once its group exists.
    crate::helpers::eventually(Duration::from_secs(10), &format!("{name} is registered"), async || {
        let consumers = app.state.storage.consumers().await.expect("consumers");
        consumers.iter().any(|consumer| consumer.name == name).then_some(())
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"));
}

fn mood(mood: Mood) -> Envelope {
    Envelope::new(
        EventType::AgentMood,
        Source::AgentService,
        &AgentMood { mood, intensity: 0.5, expression: "x".into() },
    )
    .expect("valid")
}

/// Publishes through the API: stored, then relayed to the bus from the outbox.
async fn post_event(app: &TestApp, event: &Envelope) -> Value {
    let (status, body) = json(
        app.client
            .post(app.gateway(&format!("/api/events/{}", event.event_type)))
            .bearer_auth(token(Role::Operator))
            .json(event)
            .send()
            .await
            .expect("send"),
    )
    .await;
    assert_eq!(status, 201, "{body}");
    body
}

async fn get(app: &TestApp, path: &str) -> (u16, Value) {
    app.get_as(path, Role::Operator).await
}

async fn post(app: &TestApp, path: &str, body: &Value) -> (u16, Value) {
    app.post(path, Role::Operator, body).await
}

async fn dead_letters(app: &TestApp, consumer: &str) -> Vec<Value> {
    let (status, body) = get(app, &format!("/api/events/dead-letters?consumer={consumer}")).await;
    assert_eq!(status, 200, "{body}");
    body["data"]["events"].as_array().expect("events").clone()
}

both_backends! {
    async fn invalid_events_land_in_the_dead_letters_with_the_reason(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        registered(&app, dispatch::EventStore::NAME).await;
        let valid = serde_json::to_value(mood(Mood::Happy)).expect("json");
        let mut unknown_type = valid.clone();
        unknown_type["type"] = "agent:dance".into();
        unknown_type["id"] = Uuid::now_v7().to_string().into();
        let mut bad_data = valid.clone();
        bad_data["data"]["intensity"] = "very".into();
        bad_data["id"] = Uuid::now_v7().to_string().into();
        let mut no_id = valid.clone();
        no_id.as_object_mut().expect("object").remove("id");
        let mut newer = valid.clone();
        newer["version"] = "2.0".into();
        newer["id"] = Uuid::now_v7().to_string().into();
        let cases = [
            ("{not json".to_owned(), "not JSON"),
            (unknown_type.to_string(), "unknown event type \"agent:dance\""),
            (bad_data.to_string(), "data of agent:mood does not match its schema"),
            (no_id.to_string(), "missing field `id`"),
            (newer.to_string(), "version 2.0 is newer"),
        ];
        for (payload, _) in &cases {
            app.state.bus.publish_raw("events:agent", payload).await.expect("publish");
        }
        // A valid event after the bad ones: the consumer is still alive and stores it.
        app.state.bus.publish_raw("events:agent", &valid.to_string()).await.expect("publish");

        app.settle_events().await;
        let letters = dead_letters(&app, dispatch::EventStore::NAME).await;
        for (payload, reason) in &cases {
            let letter = letters
                .iter()
                .find(|letter| letter["error"].as_str().is_some_and(|error| error.contains(reason)))
                .unwrap_or_else(|| panic!("a dead letter says {reason:?}: {letters:#?}"));
            assert_eq!(letter["attempts"], 0);
            assert_eq!(letter["consumer"], dispatch::EventStore::NAME);
            let kept = match &letter["event"] {
                Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            assert_eq!(serde_json::from_str::<Value>(&kept).ok(), serde_json::from_str::<Value>(payload).ok());
            assert!(letter["failed_at"].as_str().is_some());
        }
        let id = valid["id"].as_str().expect("id");
        let (_, body) = get(&app, "/api/events/agent:mood/history").await;
        assert!(body["data"]["events"].as_array().is_some_and(|events| events.iter().any(|event| event["id"] == id)), "{body}");
        let (status, body) = json(app.client.get(app.gateway("/api/events/dead-letters")).send().await.expect("send")).await;
        assert_eq!(status, 401, "dead letters need an operator: {body}");
    }

    async fn a_consumer_that_fails_twice_then_succeeds_gets_the_event_three_times_and_applies_it_once(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let probe = Arc::new(Probe { fail_first: 2, ..Probe::new("flaky", &["agent:*"]) });
        start(&app, probe.clone(), 5).await;
        let event = mood(Mood::Excited);
        post_event(&app, &event).await;
        app.settle_events().await;
        assert_eq!(probe.applied(), vec![event.id]);
        assert_eq!(probe.calls(event.id), 3);

        // The bus delivers it again (at least once); the consumer does not apply it again.
        app.state.bus.publish(&event).await.expect("publish again");
        let next = mood(Mood::Neutral);
        post_event(&app, &next).await;
        app.settle_events().await;
        assert_eq!(probe.applied(), vec![event.id, next.id]);
        assert_eq!(probe.calls(event.id), 3, "a redelivered event is not handed over again");
        assert!(dead_letters(&app, "flaky").await.is_empty());

        let metrics = app.metrics(ServiceRole::Events).await;
        let line = |name: &str| {
            metrics
                .lines()
                .find(|line| line.starts_with(name) && line.contains("consumer=\"flaky\""))
                .map(str::to_owned)
                .unwrap_or_else(|| panic!("{name} for flaky in:\n{metrics}"))
        };
        // Each of the two events failed twice before it went through.
        assert!(line("events_retried_total").ends_with(" 4"), "{}", line("events_retried_total"));
        assert!(line("events_delivered_total").ends_with(" 2"), "{}", line("events_delivered_total"));
        assert!(line("events_duplicates_total").ends_with(" 1"), "{}", line("events_duplicates_total"));
        assert!(metrics.contains("events_delivery_lag_seconds"), "lag histogram");
    }

    async fn a_consumer_that_always_fails_ends_in_the_dead_letters_and_can_be_retried_from_there(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let probe = Arc::new(Probe::new("sink", &["agent:mood"]));
        probe.broken.store(true, Ordering::SeqCst);
        start(&app, probe.clone(), 3).await;
        let event = mood(Mood::Tense);
        post_event(&app, &event).await;
        app.settle_events().await;
        let letters = dead_letters(&app, "sink").await;
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0]["attempts"], 3);
        assert_eq!(letters[0]["error"], "the sink is broken");
        assert_eq!(letters[0]["event"]["id"], event.id.to_string());
        assert_eq!(probe.calls(event.id), 3, "tried as many times as configured");
        assert!(probe.applied().is_empty());
        let (_, status) = get(&app, "/api/admin/status").await;
        let sink = status["data"]["consumers"]
            .as_array()
            .and_then(|consumers| consumers.iter().find(|consumer| consumer["name"] == "sink"))
            .cloned()
            .unwrap_or_else(|| panic!("the status lists the sink: {status}"));
        assert_eq!(sink["dead_letters"], 1, "{sink}");

        let (status, body) = post(&app, &format!("/api/events/dead-letters/{}/retry", Uuid::now_v7()), &json!({})).await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");

        probe.broken.store(false, Ordering::SeqCst);
        let (status, body) = post(&app, &format!("/api/events/dead-letters/{}/retry", event.id), &json!({})).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["retried"], json!([letters[0]["id"]]));
        app.settle_events().await;
        assert_eq!(probe.applied(), vec![event.id]);
        assert!(dead_letters(&app, "sink").await.is_empty(), "a retried dead letter leaves the list");
    }

    async fn a_failing_batch_is_handed_over_one_at_a_time_so_only_the_bad_event_is_dead_lettered(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let probe = Arc::new(Probe { batches: true, ..Probe::new("batcher", &["agent:*"]) });
        start(&app, probe.clone(), 2).await;
        let events: Vec<Envelope> =
            [Mood::Happy, Mood::Excited, Mood::Disappointed, Mood::Neutral].into_iter().map(mood).collect();
        // In one round trip, so the consumer reads them as one batch.
        let entries: Vec<(String, String)> =
            events.iter().map(|event| (event.stream(), serde_json::to_string(event).expect("json"))).collect();
        app.state.bus.publish_raw_many(&entries).await.expect("publish");
        app.settle_events().await;
        let mut applied = probe.applied();
        applied.sort();
        let mut good: Vec<Uuid> = events.iter().filter(|event| !Probe::poisoned(event)).map(|event| event.id).collect();
        good.sort();
        assert_eq!(applied, good, "each good event applied exactly once");
        let letters = dead_letters(&app, "batcher").await;
        assert_eq!(letters.len(), 1);
        assert_eq!(letters[0]["event"]["id"], events[2].id.to_string());
        assert_eq!(letters[0]["error"], "poisoned event");
    }

    async fn entries_of_a_consumer_killed_before_acknowledging_are_claimed_by_another(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let doomed = Arc::new(Probe::new("projector", &["agent:*"]));
        doomed.hang.store(true, Ordering::SeqCst);
        let runner = start(&app, doomed.clone(), 3).await;
        let event = mood(Mood::Surprised);
        let called = doomed.called.notified();
        post_event(&app, &event).await;
        tokio::time::timeout(Duration::from_secs(10), called).await.expect("the first consumer got the event");
        // Killed while handling: the entry was read and never acknowledged.
        runner.abort();
        let _ = runner.await;

        let survivor = Arc::new(Probe::new("projector", &["agent:*"]));
        start(&app, survivor.clone(), 3).await;
        app.settle_events().await;
        assert_eq!(survivor.applied(), vec![event.id]);
        assert_eq!(doomed.calls(event.id), 1);
        assert!(doomed.applied().is_empty());
    }

    async fn replay_hands_stored_events_again_to_the_named_consumer_in_order(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let probe = Arc::new(Probe::new("projector", &["agent:*"]));
        start(&app, probe.clone(), 3).await;
        let first = mood(Mood::Happy);
        let second = mood(Mood::Disappointed);
        post_event(&app, &first).await;
        post_event(&app, &second).await;
        app.settle_events().await;
        assert_eq!(probe.applied(), vec![first.id, second.id]);

        let (status, body) = post(
            &app,
            "/api/events/replay",
            &json!({ "from": first.id.to_string(), "types": ["agent:*"], "consumer": "projector" }),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["replayed"], 2);
        assert_eq!(body["data"]["truncated"], false);
        app.settle_events().await;
        assert_eq!(probe.applied(), vec![first.id, second.id, first.id, second.id]);

        // Only up to `to`, by sequence number.
        let first_seq = body["data"]["first_seq"].as_i64().expect("seq");
        let (status, body) = post(
            &app,
            "/api/events/replay",
            &json!({ "from": first_seq, "to": first_seq, "types": "agent:mood", "consumer": "projector" }),
        )
        .await;
        assert_eq!((status, body["data"]["replayed"].as_u64()), (200, Some(1)), "{body}");
        app.settle_events().await;
        assert_eq!(probe.applied().len(), 5);

        let (status, body) = post(
            &app,
            "/api/events/replay",
            &json!({ "from": 0, "types": ["agent:*"], "consumer": "nobody" }),
        )
        .await;
        assert_eq!((status, body["error"]["code"].as_str()), (404, Some("NOT_FOUND")), "{body}");
        let (status, body) = post(
            &app,
            "/api/events/replay",
            &json!({ "from": "yesterday", "types": ["agent:*"], "consumer": "projector" }),
        )
        .await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("from")), "{body}");
        let (status, body) =
            post(&app, "/api/events/replay", &json!({ "from": 0, "types": ["agent:nope*"], "consumer": "projector" }))
                .await;
        assert_eq!((status, body["error"]["details"]["field"].as_str()), (400, Some("types")), "{body}");
    }

    async fn a_decision_event_not_from_the_engine_is_refused_by_the_api_and_never_applied_from_the_bus(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let winner = |source: Source| {
            let data = AuctionWinner {
                auction_id: Uuid::now_v7(),
                outcome: Outcome {
                    result: OutcomeResult::Sold,
                    winner: Some(Bidder { id: "mallory".into(), handle: Some("mallory".into()) }),
                    amount: Some(Amount::from_eth(1)),
                },
                seq: 1,
            };
            Envelope::new(EventType::AuctionWinner, source, &data).expect("valid")
        };
        // Through the API, even an operator may not publish a decision.
        let forged = winner(Source::AdminFrontend);
        let (status, body) = post(&app, "/api/events/auction:winner", &serde_json::to_value(&forged).expect("json")).await;
        assert_eq!((status, body["error"]["code"].as_str()), (403, Some("FORBIDDEN")), "{body}");

        // Straight onto the bus: a follower never applies it, and says why.
        let probe = Arc::new(Probe::new("follower", &["auction:*"]));
        start(&app, probe.clone(), 3).await;
        let genuine = winner(Source::AuctionEngine);
        app.state.bus.publish(&forged).await.expect("publish");
        app.state.bus.publish(&genuine).await.expect("publish");
        app.settle_events().await;
        assert_eq!(probe.applied(), vec![genuine.id], "only the engine's decision is applied");
        let letters = dead_letters(&app, "follower").await;
        assert_eq!(letters.len(), 1, "{letters:?}");
        assert!(letters[0]["error"].as_str().is_some_and(|why| why.contains("only from the auction engine")), "{letters:?}");
    }

    async fn history_filters_by_type_pattern_time_window_and_correlation(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let base = chrono::Utc::now().timestamp_millis() - 60_000;
        let mut posted = Vec::new();
        for (offset, chain, kind) in
            [(0, "chain-a", Mood::Happy), (1000, "chain-a", Mood::Neutral), (2000, "chain-b", Mood::Disappointed)]
        {
            let mut event = mood(kind).correlated(chain);
            event.timestamp = base + offset;
            post_event(&app, &event).await;
            posted.push(event.id.to_string());
        }
        let message = Envelope::new(
            EventType::AgentMessage,
            Source::AgentService,
            &json!({ "text": "hello", "channel": "stream", "mood": "happy" }),
        )
        .expect("valid")
        .correlated("chain-a");
        post_event(&app, &message).await;

        let ids = async |path: &str| -> Vec<String> {
            let (status, body) = get(&app, path).await;
            assert_eq!(status, 200, "{body}");
            body["data"]["events"]
                .as_array()
                .expect("events")
                .iter()
                .map(|event| event["id"].as_str().expect("id").to_owned())
                .collect()
        };
        assert_eq!(ids("/api/events/agent:mood/history").await, vec![posted[2].clone(), posted[1].clone(), posted[0].clone()]);
        assert_eq!(ids("/api/events/agent:*/history").await.len(), 4);
        assert_eq!(ids("/api/events/agent:*/history?correlation_id=chain-a").await.len(), 3);
        assert_eq!(ids("/api/events/agent:mood/history?correlation_id=chain-a").await, vec![posted[1].clone(), posted[0].clone()]);
        let at = |millis: i64| {
            chrono::DateTime::from_timestamp_millis(millis).expect("time").to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        };
        let window = format!("/api/events/agent:mood/history?after={}&before={}", at(base + 500), at(base + 1500));
        assert_eq!(ids(&window.replace('+', "%2B")).await, vec![posted[1].clone()]);
        assert_eq!(ids("/api/events/agent:mood/history?limit=1").await, vec![posted[2].clone()]);
        assert!(ids("/api/events/user:*/history").await.is_empty());
    }
}
