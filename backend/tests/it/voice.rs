//! The host's voice: each provider available here speaks a line as a plausible WAV
//! (piper from the virtual environment `scripts/test` makes, espeak-ng, an
//! OpenAI-compatible stub), a failing provider falls back to the next, and in a real
//! application stream lines are spoken one after the other, a stale one dropped, each
//! `agent:message` carrying its speech, served as audio.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{Value, json};
use sothebais_backend::agent::character::VoiceSettings;
use sothebais_backend::agent::voice::{Piper, Synthesizer as _, Voice};
use sothebais_backend::config::{TtsChoice, VoiceConfig};
use sothebais_shared::wav;
use sothebais_testkit::llm::{Behaviour, LlmStub};
use sothebais_testkit::{Backend, TestApp, eventually};

fn config(provider: TtsChoice, base_url: Option<String>) -> VoiceConfig {
    VoiceConfig {
        provider,
        timeout: Duration::from_secs(20),
        base_url,
        model: "tts-1".into(),
        voice: "alloy".into(),
        api_key: None,
        piper_python: PathBuf::from("/nonexistent/python"),
        piper_model: None,
    }
}

/// A spoken sentence: between half a second and ten, and loud somewhere.
fn assert_plausible(audio: &wav::Mono, what: &str) {
    let millis = audio.duration_ms();
    assert!((500..10_000).contains(&millis), "{what}: {millis} ms");
    let loudest = wav::levels(audio, 20).into_iter().fold(0.0_f32, f32::max);
    assert!(loudest > 0.02, "{what}: loudest 20 ms at {loudest}");
}

const LINE: &str = "Sold! Blue Hour goes to curie for one and a half ether.";

#[tokio::test]
async fn espeak_speaks_a_line_as_a_plausible_wav() {
    let dir = tempfile::tempdir().expect("dir");
    let voice = Voice::from_config(&config(TtsChoice::Espeak, None), reqwest::Client::new(), dir.path())
        .expect("espeak-ng is installed (Debian package espeak-ng)");
    assert_eq!(voice.providers(), ["espeak"]);
    let spoken = voice.speak(LINE, &VoiceSettings::default()).await.expect("spoken");
    assert_eq!(spoken.provider, "espeak");
    assert_plausible(&spoken.audio, "espeak");
    let stored = voice.store.get(&spoken.speech.id).expect("kept");
    assert_eq!(wav::read(&stored).expect("a WAV").duration_ms(), spoken.speech.duration_ms);
}

#[tokio::test]
#[expect(clippy::print_stderr, reason = "a skipped test says so")]
async fn piper_speaks_lines_from_one_long_lived_process() {
    let python = PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into()))
        .join(".cache/sothebais-piper/bin/python");
    if std::env::var("SOTHEBAIS_TEST_SKIP").is_ok_and(|skip| skip.split(',').any(|part| part == "piper")) {
        eprintln!("skipped: SOTHEBAIS_TEST_SKIP names piper");
        return;
    }
    assert!(python.exists(), "{} is missing: scripts/test installs piper-tts and a voice", python.display());
    let dir = tempfile::tempdir().expect("dir");
    let piper = Piper::new(python, None, dir.path());
    let first = piper.synthesize(LINE, &VoiceSettings::default()).await.expect("piper speaks");
    assert_plausible(&first, "piper");
    let pid = piper.pid().await.expect("running");
    let slower = VoiceSettings { rate: Some(0.5), ..VoiceSettings::default() };
    let second = piper.synthesize(LINE, &slower).await.expect("piper speaks again");
    assert_eq!(piper.pid().await, Some(pid), "the same process, the model loaded once");
    assert!(second.duration_ms() > first.duration_ms() * 3 / 2, "half the rate is longer");
}

#[tokio::test]
async fn an_openai_compatible_speech_server_is_used_and_a_failing_one_falls_back() {
    let stub = LlmStub::start(Behaviour::Line("unused".into())).await;
    let dir = tempfile::tempdir().expect("dir");
    let voice = Voice::from_config(
        &config(TtsChoice::OpenAi, Some(stub.url.clone())),
        reqwest::Client::new(),
        dir.path(),
    )
    .expect("a voice");
    assert_eq!(voice.providers(), ["openai", "espeak"]);
    let spoken = voice.speak(LINE, &VoiceSettings::default()).await.expect("spoken");
    assert_eq!(spoken.provider, "openai");
    assert_eq!(spoken.speech.duration_ms, 1000);
    let asked = stub.requests().last().cloned().expect("a request");
    assert_eq!(asked["input"], LINE);
    assert_eq!(asked["response_format"], "wav");

    stub.set(Behaviour::Fail);
    let spoken = voice.speak(LINE, &VoiceSettings::default()).await.expect("spoken by the next");
    assert_eq!(spoken.provider, "espeak");
    assert_plausible(&spoken.audio, "espeak after openai failed");
}

async fn spoken_lines(app: &TestApp, count: usize) -> Vec<Value> {
    eventually(Duration::from_secs(60), &format!("{count} spoken lines"), async || {
        let (_, body) = app.get("/api/events/agent:message/history?limit=100").await;
        let mut events = body["data"]["events"].as_array().cloned().unwrap_or_default();
        events.reverse();
        (events.len() >= count).then_some(events)
    })
    .await
    .unwrap_or_else(|error| panic!("{error}"))
}

#[tokio::test]
async fn stream_lines_are_spoken_one_after_the_other_and_a_stale_bid_line_is_dropped() {
    let app = TestApp::spawn_with(Backend::Embedded, &[("TTS_PROVIDER", "espeak")]).await;
    let auction = app.create_auction(json!({ "title": "Blue Hour", "duration_secs": 600 })).await;
    // While the opening is spoken, two bids: the first bid's line is overtaken.
    let first = spoken_lines(&app, 1).await;
    assert_eq!(app.bid(&auction, "alice", "1", None).await.0, 200);
    app.settle_events().await;
    app.clock.advance(Duration::from_secs(5));
    assert_eq!(app.bid(&auction, "bob", "1.2", None).await.0, 200);
    let lines = spoken_lines(&app, 2).await;
    assert!(first[0]["data"]["text"].as_str().is_some_and(|text| text.contains("Blue Hour")), "{first:?}");
    let second = &lines[1]["data"];
    assert!(
        second["text"].as_str().is_some_and(|text| text.contains("@bob")),
        "the stale line was dropped: {lines:?}"
    );
    assert!(
        !lines.iter().any(|line| line["data"]["text"].as_str().is_some_and(|text| text.contains("@alice")))
    );
    // One after the other: the second is published after the first one's audio.
    let at = |event: &Value| event["timestamp"].as_i64().expect("timestamp");
    let length = first[0]["data"]["speech"]["duration_ms"].as_i64().expect("speech");
    assert!(at(&lines[1]) - at(&lines[0]) >= length, "{lines:?}");
    // The speech is served as audio while it is kept.
    let url = second["speech"]["url"].as_str().expect("url");
    let response = app.client.get(app.gateway(url)).send().await.expect("speech");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "audio/wav");
    let audio = wav::read(&response.bytes().await.expect("bytes")).expect("a WAV");
    assert_eq!(audio.duration_ms(), second["speech"]["duration_ms"].as_u64().expect("duration"));
    let (status, body) = app.get("/api/agent/speech/nothing.wav").await;
    assert_eq!(status, 404, "{body}");
    let metrics = app.metrics(sothebais_backend::app::ServiceRole::Agent).await;
    assert!(metrics.contains("agent_speech_stale_total 1"), "{metrics}");
    assert!(metrics.contains("agent_speech_lines_total{provider=\"espeak\"}"), "{metrics}");
    let (_, state) = app.get("/api/agent/state").await;
    assert_eq!(state["data"]["voice"]["providers"][0], "espeak", "{state}");
    app.stop().await.expect("stops");
}
