//! The AI host's benchmark, in this process against SQLite (embedded mode):
//!
//! - **event to line** with the template speaker: from handing an accepted bid to
//!   the host until its `agent:message` is committed (the mood, the memory writes
//!   and the line all happen in that call), beside the baseline of committing one
//!   `agent:message` event alone on the same database;
//! - **event to line with a model**: the same against a local OpenAI-compatible stub
//!   that waits a fixed time before streaming its answer, beside the baseline of
//!   asking the stub directly with the same client; the difference is the host's
//!   overhead (prompt, memory, grounding, commit);
//! - **memory** after many bidder interactions (distinct bidders, recurring): the
//!   process's resident memory and the rows kept, against the bound.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::json;
use sothebais_backend::Config;
use sothebais_backend::agent::AgentHandle;
use sothebais_backend::agent::memory::MAX_ENTRIES;
use sothebais_backend::config::FlagValues;
use sothebais_backend::storage::{EventQuery, Storage};
use sothebais_kit::clock::{SharedClock, TestClock};
use sothebais_shared::events::{AgentMessage, Channel, Envelope, EventType, Mood, Source};
use sothebais_testkit::llm::{Behaviour, LlmStub};
use sothebais_testkit::{Backend, TestApp};

use crate::percentile_ms;

fn rss_mib() -> f64 {
    crate::rss_mib(std::process::id())
}

/// Accepted-bid events of a real auction: bids placed through the API of an
/// in-process application, read back from its store.
async fn bid_events(count: usize) -> anyhow::Result<Vec<Envelope>> {
    let app = TestApp::spawn_with(Backend::Embedded, &[]).await;
    let auction = app
        .create_auction(json!({ "title": "Benchmark Lot", "duration_secs": 86_400, "increment_percent": 1 }))
        .await;
    let mut amount = "1".to_owned();
    for index in 0..count {
        let (status, body) = app.bid(&auction, &format!("bidder{index}"), &amount, None).await;
        anyhow::ensure!(status == 200, "bid refused: {body}");
        amount = body["data"]["auction"]["min_next_bid"].as_str().unwrap_or("1").to_owned();
    }
    let events = app
        .state
        .storage
        .events(&EventQuery {
            patterns: vec![
                "auction:start".parse().map_err(anyhow::Error::msg)?,
                "auction:bid:accepted".parse().map_err(anyhow::Error::msg)?,
            ],
            before: None,
            after: None,
            after_seq: Some(0),
            correlation_id: None,
            limit: 100_000,
        })
        .await?;
    app.stop().await?;
    Ok(events.into_iter().map(|stored| stored.event).collect())
}

/// A host of its own on a fresh SQLite database, its clock, and the folders to keep.
type Host = (AgentHandle, Arc<dyn Storage>, Arc<TestClock>, Vec<tempfile::TempDir>);

async fn host(extra: &[(String, String)]) -> anyhow::Result<Host> {
    let (storage, folder) = Backend::Embedded.storage().await;
    let data = tempfile::tempdir()?;
    // Captions only: the voice is measured on its own (`voices`).
    let mut settings: Vec<(String, String)> = vec![
        ("SOTHEBAIS_DATA_DIR".into(), data.path().display().to_string()),
        ("TTS_PROVIDER".into(), "none".into()),
    ];
    settings.extend(extra.iter().cloned());
    let env = move |key: &str| settings.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone());
    let config = Config::load(&FlagValues::new(), None, &env)?;
    let clock = TestClock::new();
    let shared: SharedClock = clock.clone();
    let agent = AgentHandle::new(
        &config,
        storage.clone(),
        shared,
        Default::default(),
        reqwest::Client::new(),
        Arc::new(sothebais_backend::runtime::Runtime::new(Arc::new(config.clone()))),
    )
    .await?;
    Ok((agent, storage, clock, folder.into_iter().chain([data]).collect()))
}

/// Hands each bid event to the host with the clock moved past the on-screen limit,
/// so every bid gets a line; the time of each call in microseconds.
async fn lines(agent: &AgentHandle, clock: &TestClock, events: &[Envelope]) -> anyhow::Result<Vec<u64>> {
    let mut micros = Vec::new();
    for event in events {
        clock.advance(Duration::from_secs(5));
        let started = Instant::now();
        agent.on_event(event).await?;
        // To the line's commit (the mood and the memory are written after it).
        if event.event_type == EventType::AuctionBidAccepted
            && let Some(lined) = agent.last_line_at().filter(|at| *at >= started)
        {
            micros.push((lined - started).as_micros() as u64);
        }
    }
    Ok(micros)
}

fn report(name: &str, micros: &[u64]) {
    println!(
        "{name:<52} n={:<6} p50 {:>8.3} ms   p99 {:>8.3} ms   max {:>8.3} ms",
        micros.len(),
        percentile_ms(micros, 0.50),
        percentile_ms(micros, 0.99),
        percentile_ms(micros, 1.0)
    );
}

/// Synthesis time per line and real-time factor (synthesis time / audio length) of
/// each speech provider installed here, on the same lines.
async fn voices(lines: usize) -> anyhow::Result<()> {
    use sothebais_backend::agent::character::VoiceSettings;
    use sothebais_backend::agent::voice::Voice;
    use sothebais_backend::config::TtsChoice;
    let dir = tempfile::tempdir()?;
    let settings: Vec<(String, String)> =
        vec![("SOTHEBAIS_DATA_DIR".into(), dir.path().display().to_string())];
    let env = move |key: &str| settings.iter().find(|(name, _)| name == key).map(|(_, value)| value.clone());
    let base = Config::load(&FlagValues::new(), None, &env)?.agent.voice;
    let texts = [
        "Ladies and gentlemen! Blue Hour is open. Bidding starts at one ether.",
        "We have a first bid: one and a half ether from curie.",
        "Going once, going twice... two ether to noether!",
        "Sold! Blue Hour goes to hopper for two and a quarter ether.",
    ];
    println!("\nagent: speech synthesis, {lines} lines per provider (2 cores, this box)");
    for (name, choice) in [("piper", TtsChoice::Piper), ("espeak", TtsChoice::Espeak)] {
        let config = sothebais_backend::config::VoiceConfig { provider: choice, ..base.clone() };
        let Some(voice) = Voice::from_config(&config, reqwest::Client::new(), dir.path()) else {
            println!("{name:<10} not installed");
            continue;
        };
        if voice.providers().first() != Some(&name) {
            println!("{name:<10} not installed");
            continue;
        }
        voice.warm().await;
        let (mut micros, mut audio_ms) = (Vec::new(), 0u64);
        for index in 0..lines {
            let started = Instant::now();
            let spoken = voice
                .speak(texts[index % texts.len()], &VoiceSettings::default())
                .await
                .ok_or_else(|| anyhow::anyhow!("{name} did not speak"))?;
            micros.push(started.elapsed().as_micros() as u64);
            audio_ms += spoken.speech.duration_ms;
        }
        let spent_ms = micros.iter().sum::<u64>() as f64 / 1000.0;
        println!(
            "{name:<10} per line p50 {:>7.1} ms  p99 {:>7.1} ms   real-time factor {:.3} ({:.1} s of speech in {:.1} s)",
            percentile_ms(&micros, 0.5),
            percentile_ms(&micros, 0.99),
            spent_ms / audio_ms.max(1) as f64,
            audio_ms as f64 / 1000.0,
            spent_ms / 1000.0
        );
    }
    Ok(())
}

pub async fn run(lines_per_run: usize, interactions: usize, model_delay_ms: u64) -> anyhow::Result<()> {
    voices(20).await?;
    eprintln!("==> agent: recording {lines_per_run} accepted bids from a real engine");
    let events = bid_events(lines_per_run).await?;

    // Template speaker, beside committing one agent:message alone.
    let (agent, storage, clock, _folder) = host(&[]).await?;
    let template = lines(&agent, &clock, &events).await?;
    let mut commits = Vec::new();
    for index in 0..template.len() {
        let message = AgentMessage {
            text: format!("baseline line {index}"),
            channel: Channel::Stream,
            in_reply_to: None,
            mood: Mood::Happy,
            speech: None,
        };
        let event = Envelope::new(EventType::AgentMessage, Source::AgentService, &message)?;
        let started = Instant::now();
        storage.append_event(&event).await?;
        commits.push(started.elapsed().as_micros() as u64);
    }
    println!("\nagent: event to committed line (SQLite, one process)");
    report("template speaker: bid event -> agent:message committed", &template);
    report("baseline: commit one agent:message alone", &commits);

    // A model with a fixed delay, beside asking it directly.
    let stub = LlmStub::start(Behaviour::Line("What a bid, the room is alive!".into())).await;
    stub.set_delay(Duration::from_millis(model_delay_ms));
    let (agent, _, clock, _folder_model) = host(&stub.settings(8000)).await?;
    let model = lines(&agent, &clock, &events).await?;
    let client = reqwest::Client::new();
    let mut direct = Vec::new();
    for _ in 0..model.len() {
        let started = Instant::now();
        let response = client
            .post(format!("{}/chat/completions", stub.url))
            .json(&json!({ "model": "stub-model", "stream": true, "messages": [{ "role": "user", "content": "line" }] }))
            .send()
            .await?;
        let _ = response.bytes().await?;
        direct.push(started.elapsed().as_micros() as u64);
    }
    report(&format!("model ({model_delay_ms} ms stub): bid event -> line committed"), &model);
    report("baseline: the same stub asked directly", &direct);
    println!(
        "{:<52} p50 {:>8.3} ms   p99 {:>8.3} ms",
        "host overhead beyond the model",
        percentile_ms(&model, 0.5) - percentile_ms(&direct, 0.5),
        percentile_ms(&model, 0.99) - percentile_ms(&direct, 0.99)
    );

    // Memory after many bidder interactions.
    let (agent, storage, clock, _folder_memory) = host(&[]).await?;
    let Some(template_event) =
        events.iter().find(|event| event.event_type == EventType::AuctionBidAccepted).cloned()
    else {
        anyhow::bail!("no accepted bid recorded");
    };
    let before = rss_mib();
    let started = Instant::now();
    let bidders = 2_000;
    for index in 0..interactions {
        let mut event = template_event.clone();
        event.id = uuid::Uuid::now_v7();
        let name = format!("viewer{}", index % bidders);
        event.data["bid"]["bidder"] = json!({ "id": name, "handle": name });
        clock.advance(Duration::from_millis(100));
        agent.on_event(&event).await?;
        if index > 0 && index % 20_000 == 0 {
            eprintln!("    {index} interactions, rss {:.1} MiB", rss_mib());
        }
    }
    let (subjects, entries) = storage.memory_totals().await?;
    println!(
        "\nagent: {interactions} bidder interactions ({bidders} bidders) in {:.1} s: rss {before:.1} -> {:.1} MiB; \
         {subjects} subjects, {entries} entries kept (bound: {} per subject = {})",
        started.elapsed().as_secs_f64(),
        rss_mib(),
        MAX_ENTRIES,
        subjects * MAX_ENTRIES
    );
    Ok(())
}
