//! The agent role (the AI host) in a real application on both backends: the lines and
//! moods of a lot from open to sale, a model behind a local OpenAI-compatible stub
//! (used, refused when it invents, dropped when it fails, back when it recovers),
//! questions from X answered once, memory, and characters switched on air.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};
use sothebais_backend::agent::character::Character;
use sothebais_backend::agent::ground::{self, Facts};
use sothebais_backend::agent::memory::{self, MemoryBook, Recent};
use sothebais_backend::app::{ListenerKind, ServiceRole};
use sothebais_testkit::llm::{Behaviour, LlmStub};
use sothebais_testkit::x::SimServer;
use sothebais_testkit::{Backend, Role, TestApp, both_backends, eventually, next_json};

const WAIT: Duration = Duration::from_secs(15);

/// The events of a type, oldest first.
async fn events(app: &TestApp, kind: &str) -> Vec<Value> {
    let (status, body) = app.get(&format!("/api/events/{kind}/history?limit=500")).await;
    assert_eq!(status, 200, "{body}");
    let mut events = body["data"]["events"].as_array().cloned().unwrap_or_default();
    events.reverse();
    events.into_iter().map(|event| event["data"].clone()).collect()
}

/// Waits until the host has said `count` lines; returns their texts.
async fn lines(app: &TestApp, count: usize) -> Vec<String> {
    eventually(WAIT, &format!("the host has said {count} lines"), async || {
        let lines: Vec<String> = events(app, "agent:message")
            .await
            .iter()
            .filter_map(|data| data["text"].as_str().map(str::to_owned))
            .collect();
        (lines.len() >= count).then_some(lines)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"))
}

async fn moods(app: &TestApp) -> Vec<String> {
    events(app, "agent:mood")
        .await
        .iter()
        .filter_map(|data| data["mood"].as_str().map(str::to_owned))
        .collect()
}

async fn with_settings(backend: Backend, extra: &[(String, String)]) -> TestApp {
    let borrowed: Vec<(&str, &str)> =
        extra.iter().map(|(key, value)| (key.as_str(), value.as_str())).collect();
    TestApp::spawn_with(backend, &borrowed).await
}

async fn interact(app: &TestApp, handle: &str, text: &str) -> Value {
    let (status, body) = app
        .post("/api/agent/interact", Role::Operator, &json!({ "user": { "handle": handle }, "text": text }))
        .await;
    assert_eq!(status, 200, "{body}");
    body["data"].clone()
}

async fn agent_health(app: &TestApp) -> (u16, Value) {
    let url = app.url(ServiceRole::Agent, ListenerKind::Health, "/health");
    sothebais_testkit::json(app.client.get(url).send().await.expect("health")).await
}

both_backends! {
    async fn with_no_model_every_moment_of_a_lot_gets_a_varied_grounded_line(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let auction = app.create_auction(json!({ "title": "Blue Hour", "duration_secs": 60 })).await;
        let opened = lines(&app, 1).await;
        assert!(opened[0].contains("Blue Hour"), "{opened:?}");

        assert_eq!(app.bid(&auction, "alice", "1", None).await.0, 200);
        let first = lines(&app, 2).await;
        assert!(first[1].contains("@alice") && first[1].contains("1 ETH"), "{first:?}");
        // Within four seconds of a bid line the screen gets no other.
        assert_eq!(app.bid(&auction, "bob", "1.5", None).await.0, 200);
        app.settle_events().await;
        assert_eq!(lines(&app, 2).await.len(), 2);
        app.clock.advance(Duration::from_secs(5));
        assert_eq!(app.bid(&auction, "alice", "1.6", None).await.0, 200);
        let bid = lines(&app, 3).await;
        assert!(bid[2].contains("1.6"), "{bid:?}");

        // The last ten seconds: a last call, tense.
        app.clock.advance(Duration::from_secs(48));
        let call = lines(&app, 4).await;
        assert!(call[3].contains("1.6") || call[3].contains("alice") || call[3].contains("seconds"), "{call:?}");

        // Sold.
        app.clock.advance(Duration::from_secs(20));
        app.settle(&auction).await;
        let all = lines(&app, 5).await;
        let sold = all.last().expect("a line");
        assert!(sold.contains("@alice") && sold.contains("1.6"), "{all:?}");

        let mut facts = Facts::default();
        for amount in ["1", "1.05", "1.5", "1.575", "1.6", "1.68"] {
            facts.amount(amount.parse().expect("amount"));
        }
        facts.handle("alice");
        facts.handle("bob");
        facts.titles.push("blue hour".into());
        facts.numbers.extend(0..=60);
        let policy = app.state.agent.policy().clone();
        for (index, line) in all.iter().enumerate() {
            let previous = index.checked_sub(1).map(|at| all[at].as_str());
            assert_eq!(ground::check(line, &facts, &policy, previous), Ok(()), "{line:?} in {all:?}");
            assert!(line.chars().count() <= policy.caption_max_chars, "{line}");
        }

        let seen = moods(&app).await;
        assert_eq!(seen.first().map(String::as_str), Some("happy"), "{seen:?}");
        assert!(seen.contains(&"tense".to_owned()), "{seen:?}");
        assert_eq!(seen.last().map(String::as_str), Some("celebrating"), "{seen:?} {all:?}");
        for pair in seen.windows(2) {
            assert_ne!(pair[0], pair[1], "one agent:mood per change: {seen:?}");
        }
        let metrics = app.metrics(ServiceRole::Agent).await;
        assert!(metrics.contains("agent_lines_total{provider=\"template\",trigger=\"sold\"}"), "{metrics}");
        app.stop().await.expect("stops");
    }

    async fn a_question_posted_on_x_is_answered_once_in_the_hosts_words(backend: Backend) {
        let sim = SimServer::start().await;
        let settings: Vec<(String, String)> = sim.settings().into_iter().collect();
        let app = with_settings(backend, &settings).await;
        app.create_auction(json!({ "title": "Quiet Harbour" })).await;
        // The host has opened the lot (its line) before the question comes.
        lines(&app, 1).await;
        let post = sim.post("curie", "@SothebAIs what is the price now?", json!({})).await;
        let reply = eventually(WAIT, "the host answers on X", async || {
            sim.replies_to(&post).first().map(|reply| reply.text.clone())
        })
        .await
        .unwrap_or_else(|error| panic!("{error}"));
        assert!(reply.starts_with("@curie") && reply.contains("Quiet Harbour"), "{reply}");
        let answered = events(&app, "agent:message").await;
        assert!(answered.iter().any(|data| data["channel"] == "x" && data["in_reply_to"] == post), "{answered:?}");
        app.settle_events().await;
        assert_eq!(sim.replies_to(&post).len(), 1);
        // Remembered.
        let (status, body) = app.get_as("/api/agent/memory?user=curie", Role::Operator).await;
        assert_eq!(status, 200, "{body}");
        let memories = body["data"]["memories"].as_array().cloned().unwrap_or_default();
        assert!(memories.iter().any(|memory| memory["kind"] == "said"), "{body}");
        assert!(memories.iter().any(|memory| memory["kind"] == "answered"), "{body}");
        app.stop().await.expect("stops");
    }

    async fn memory_of_a_bidder_is_kept_bounded_and_shown(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let auction = app.create_auction(json!({ "title": "Long Night", "duration_secs": 3600 })).await;
        assert_eq!(app.bid(&auction, "hopper", "1", None).await.0, 200);
        app.settle_events().await;
        let (status, body) = app.get_as("/api/agent/memory?user=@Hopper", Role::Operator).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(body["data"]["summary"]["bids"], 1, "{body}");
        assert!(body["data"]["memories"][0]["text"].as_str().is_some_and(|text| text.contains("1 ETH")), "{body}");
        assert_eq!(app.get("/api/agent/memory?user=hopper").await.0, 401, "memory needs an operator");

        let book = MemoryBook { storage: app.state.storage.clone(), recent: Recent::in_memory() };
        let subject = memory::user("turing");
        for round in 0..120 {
            book.note(&subject, "bid", format!("bid {round} on lot"), app.clock.now(), (1, 0)).await.expect("noted");
        }
        let (summary, entries) = book.about(&subject, 500).await.expect("read");
        assert!(entries.len() as u64 <= memory::MAX_ENTRIES, "{}", entries.len());
        let summary = summary.expect("subject");
        assert_eq!(summary.bids, 120);
        assert_eq!(summary.folded + entries.len() as u64, 120);
        assert!(summary.summary.contains("earlier bid"), "{}", summary.summary);
        app.stop().await.expect("stops");
    }

    async fn characters_are_listed_uploaded_checked_and_switched_on_air(backend: Backend) {
        let app = TestApp::spawn(backend).await;
        let (status, body) = app.get("/api/agent/characters").await;
        assert_eq!(status, 200, "{body}");
        let ids: Vec<&str> =
            body["data"]["characters"].as_array().into_iter().flatten().filter_map(|c| c["id"].as_str()).collect();
        assert!(ids.contains(&"auctioneer") && ids.contains(&"pixel"), "{body}");

        let broken = json!({ "name": "Broken", "messageExamples": [[{ "user": "a", "content": { "text": 5 } }]] });
        let (status, body) = app.post("/api/agent/characters", Role::Operator, &broken).await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["error"]["details"]["field"], "messageExamples[0][0].content.text", "{body}");

        let upload: Value =
            serde_json::from_str(include_str!("fixtures/eliza-0x.character.json")).expect("fixture");
        let (status, body) = app.post("/api/agent/characters", Role::Operator, &upload).await;
        assert_eq!(status, 201, "{body}");
        assert_eq!(body["data"]["id"], "collector");

        let (status, _) = app.post("/api/agent/characters/active", Role::Operator, &json!({ "id": "nobody" })).await;
        assert_eq!(status, 404);
        let ws = app.url(ServiceRole::Agent, ListenerKind::Ws, "/").replacen("http://", "ws://", 1);
        let (mut socket, _) = tokio_tungstenite::connect_async(ws).await.expect("the agent's WebSocket");
        let hello = next_json(&mut socket).await;
        assert_eq!(hello["type"], "agent:state", "{hello}");
        assert_eq!(hello["data"]["character"]["id"], "auctioneer", "{hello}");
        let (status, body) = app.post("/api/agent/characters/active", Role::Operator, &json!({ "id": "pixel" })).await;
        assert_eq!(status, 200, "{body}");
        let mood = next_json(&mut socket).await;
        assert_eq!(mood["type"], "agent:mood", "{mood}");
        assert!(mood["data"]["expression"].as_str().is_some_and(|face| face.starts_with("characters/pixel/")), "{mood}");
        assert_eq!(next_json(&mut socket).await["data"]["character"]["id"], "pixel");
        let expression = eventually(WAIT, "the renderer is told the new face", async || {
            events(&app, "agent:mood").await.last().and_then(|data| data["expression"].as_str().map(str::to_owned))
        })
        .await
        .unwrap_or_else(|error| panic!("{error}"));
        assert!(expression.starts_with("characters/pixel/"), "{expression}");
        let (_, state) = app.get("/api/agent/state").await;
        assert_eq!(state["data"]["character"]["id"], "pixel", "{state}");
        assert_eq!(state["data"]["provider"], "template");

        // Remembered across a restart.
        let (settings, data, clock) = (app.settings.clone(), app.data_dir(), app.clock.clone());
        app.stop().await.expect("stops");
        let app = TestApp::restart(settings, data, clock).await;
        let (_, state) = app.get("/api/agent/state").await;
        assert_eq!(state["data"]["character"]["id"], "pixel", "{state}");
        let (_, listed) = app.get("/api/agent/characters").await;
        assert!(listed.to_string().contains("\"collector\""), "the upload is kept: {listed}");
        app.stop().await.expect("stops");
    }
}

#[tokio::test]
async fn a_model_line_is_used_with_its_mood_and_one_that_invents_a_fact_is_replaced() {
    let stub = LlmStub::start(Behaviour::Line("[excited] What a way to open Blue Hour!".into())).await;
    let app = with_settings(Backend::Embedded, &stub.settings(3000)).await;
    app.create_auction(json!({ "title": "Blue Hour" })).await;
    let opened = lines(&app, 1).await;
    assert_eq!(opened[0], "What a way to open Blue Hour!");
    let seen = eventually(WAIT, "the tag becomes the mood", async || {
        let seen = moods(&app).await;
        seen.contains(&"excited".to_owned()).then_some(seen)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"));
    assert!(seen.contains(&"excited".to_owned()));

    // The prompt carries the persona and the facts.
    let request = stub.requests().first().cloned().expect("a request");
    let system = request["messages"][0]["content"].as_str().unwrap_or_default().to_owned();
    let user = request["messages"][1]["content"].as_str().unwrap_or_default().to_owned();
    assert!(
        system.contains("Sir Reginald Hammerstone") && system.contains("Forty years on the rostrum"),
        "{system}"
    );
    assert!(user.contains("Blue Hour") && user.contains("opening price: 1 ETH"), "{user}");
    assert_eq!(request["stream"], true);

    let (state, _) = (app.get("/api/agent/state").await, ());
    assert_eq!(state.1["data"]["provider"], "llm", "{}", state.1);

    // A bidder and an amount the auction never saw: the template line is used.
    stub.set(Behaviour::Line("[happy] @mallory bids 99 ETH!".into()));
    let reply = interact(&app, "curie", "who is winning?").await;
    let text = reply["reply"].as_str().unwrap_or_default();
    assert!(!text.contains("mallory") && !text.contains("99") && text.starts_with("@curie"), "{reply}");
    let metrics = app.metrics(ServiceRole::Agent).await;
    assert!(metrics.contains("agent_fallbacks_total{reason=\"unfit\"}"), "{metrics}");
    assert!(metrics.contains("agent_llm_tokens_total{kind=\"prompt\"}"), "{metrics}");
    app.stop().await.expect("stops");
}

#[tokio::test]
async fn a_failing_model_trips_the_breaker_templates_carry_the_show_and_recovery_brings_it_back() {
    let stub = LlmStub::start(Behaviour::Hang).await;
    let app = with_settings(Backend::Embedded, &stub.settings(400)).await;
    assert_eq!(agent_health(&app).await.0, 200);
    // A model that hangs: each line waits out the deadline, then a template line.
    for _ in 0..3 {
        let reply = interact(&app, "curie", "what is on now?").await;
        assert!(reply["reply"].as_str().is_some_and(|text| text.starts_with("@curie")), "{reply}");
    }
    let (status, health) = agent_health(&app).await;
    assert_eq!(status, 503, "{health}");
    assert_eq!(health["status"], "degraded", "{health}");
    assert_eq!(health["checks"]["database"], "ok", "{health}");
    assert!(
        health["checks"]["llm"].as_str().is_some_and(|reason| reason.contains("templates carry the show")),
        "{health}"
    );
    let (_, state) = app.get("/api/agent/state").await;
    assert_eq!(state["data"]["llm_healthy"], false, "{state}");
    assert_eq!(state["data"]["provider"], "template");
    // While open, the model is not asked at all.
    let asked = stub.requests().len();
    interact(&app, "curie", "still there?").await;
    assert_eq!(stub.requests().len(), asked);

    // The model is back; after the cool-down one trial closes the breaker.
    stub.set(Behaviour::Line("@curie Back on the rostrum, my friend!".into()));
    app.clock.advance(Duration::from_secs(31));
    let reply = interact(&app, "curie", "are you back?").await;
    assert_eq!(reply["reply"], "@curie Back on the rostrum, my friend!", "{reply}");
    assert_eq!(agent_health(&app).await.0, 200);

    // A model that answers 500: retried, then the breaker opens again.
    stub.set(Behaviour::Fail);
    for _ in 0..3 {
        interact(&app, "curie", "what now?").await;
    }
    let (status, health) = agent_health(&app).await;
    assert_eq!(status, 503, "{health}");
    let metrics = app.metrics(ServiceRole::Agent).await;
    assert!(metrics.contains("agent_llm_breaker_open 1"), "{metrics}");
    assert!(metrics.contains("agent_fallbacks_total{reason=\"timeout\"}"), "{metrics}");
    app.stop().await.expect("stops");
}

#[test]
fn real_elizaos_character_files_of_each_shape_load() {
    let folder = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/fixtures");
    for (file, name, said) in [
        ("eliza-newest.character.json", "Eliza", "The colours feel like late summer. Who made it?"),
        ("eliza-1x.character.json", "Gallerist", "It is, and it will not stay that way for long."),
        ("eliza-0x.character.json", "Collector", "Condition, edition size and who owned it before you."),
    ] {
        let character = Character::load(&folder.join(file)).unwrap_or_else(|error| panic!("{error}"));
        assert_eq!(character.name, name);
        assert!(character.message_examples.iter().flatten().any(|line| line.text == said), "{file}");
    }
    let old = Character::load(&folder.join("eliza-0x.character.json")).expect("loads");
    assert_eq!(old.knowledge.len(), 2);
    assert_eq!(old.lore.len(), 2);
}
