//! The show on air, end to end: a real `sothebais serve` runs an auction, a real
//! `sothebais-renderer` follows it (the WebSocket in embedded mode, Redis Streams in
//! production mode) and records it, and the frames it serves at
//! `/api/stream/frame` are read back with OCR (`tesseract-ocr`).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use sothebais_testkit::Backend;
use sothebais_testkit::process::{Process, binary, gateway, token};

use crate::on_air::{
    START, Show, codecs, countdowns, decoded_audio, history, loudness_db, ocr, probe, repo, shows,
    start_renderer,
};

/// Serves `body` as a PNG to every request on a free port (the NFT's image host).
async fn image_server(body: Vec<u8>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let body = body.clone();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                let mut request = [0u8; 4096];
                let _ = stream.read(&mut request).await;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = stream.write_all(head.as_bytes()).await;
                let _ = stream.write_all(&body).await;
            });
        }
    });
    format!("http://{addr}/nft/42.png")
}

/// The banner's rows on a 1280x720 frame of the default scene.
const BANNER: (usize, usize) = (655, 720);

/// An embedded backend (`sothebais serve` with the `extra` settings) and a renderer
/// following it (`start_renderer`), recording to `dir/<file>`, once it follows.
struct OnAir {
    server: Process,
    base: String,
    operator: String,
    client: reqwest::Client,
    renderer: Process,
    show: Show,
    recording: PathBuf,
}

impl OnAir {
    async fn embedded(dir: &Path, extra: &[(&str, &str)], file: &str) -> OnAir {
        let mut env = Backend::Embedded.process_settings().await;
        env.extend(extra.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())));
        let mut server = Process::start(&binary("sothebais"), &["serve"], dir, &env).expect("start");
        let base = gateway(&server.wait_for_listeners(20, START).expect("listening"));
        let operator = token(dir, &env, "operator").expect("token");
        let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");
        let (renderer, show, recording, _, _) = start_renderer(dir, &base, &env, &client, file, &[]);
        show.wait_until_following(&renderer).await;
        OnAir { server, base, operator, client, renderer, show, recording }
    }
}

#[expect(clippy::print_stderr, reason = "the measured times are said in the test output")]
async fn the_show_follows_the_auction(backend: Backend) {
    let dir = tempfile::tempdir().expect("temp dir");
    let env = backend.process_settings().await;
    let mut server = Process::start(&binary("sothebais"), &["serve"], dir.path(), &env).expect("start");
    let base = gateway(&server.wait_for_listeners(20, START).expect("listening"));
    let operator = token(dir.path(), &env, "operator").expect("token");
    let client = reqwest::Client::builder().timeout(Duration::from_secs(10)).build().expect("client");

    let nft = std::fs::read(repo("assets/lots/placeholder.png")).expect("an image to serve");
    let image_url = image_server(nft.clone()).await;
    let created: Value = client
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(&operator)
        .json(&json!({
            "title": "Genesis #42",
            "lot": {
                "chain_id": 1,
                "contract": "0x5af0d9827e0c53e4799bb226655a1de152a425a5",
                "token_id": "42",
                "image_url": image_url,
            },
            "starting_price": "1",
            "starts_at": chrono::Utc::now().to_rfc3339(),
            "duration_secs": 600,
            "increment_percent": 5,
        }))
        .send()
        .await
        .expect("create")
        .json()
        .await
        .expect("json");
    let auction_id = created["data"]["id"].as_str().expect("auction id").to_owned();

    let (mut renderer, show, recording, scenes, assets) =
        start_renderer(dir.path(), &base, &env, &client, "show.mkv", &[]);

    // The lot is open: the bidding scene goes on air once the renderer follows.
    let deadline = Instant::now() + START;
    loop {
        let status = show.json("/api/stream/status").await;
        if status["data"]["following"] == true
            && status["data"]["scene"] == "default"
            && status["data"]["frames_rendered"].as_u64() > Some(0)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the renderer never followed the backend: {status}\n{}",
            renderer.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The lot's image was fetched from its host and is on the lot card.
    let deadline = Instant::now() + Duration::from_secs(20);
    let shown = loop {
        let layers = show.json("/api/stream/layers").await;
        let image = layers["data"]["layers"]
            .as_array()
            .and_then(|layers| layers.iter().find(|layer| layer["id"] == "lot-image"))
            .and_then(|layer| layer["image"].as_str().map(str::to_owned));
        if let Some(image) = image.filter(|image| image.starts_with("cache/lots/")) {
            break image;
        }
        assert!(
            Instant::now() < deadline,
            "the lot image was never shown: {layers}\n{}",
            renderer.log().join("\n")
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(std::fs::read(assets.join(&shown)).expect("cached image"), nft);

    // The host before any bid: a few frames (one may catch a blink).
    let mut faces_before = Vec::new();
    for _ in 0..3 {
        faces_before.push(show.host_pixels().await);
        tokio::time::sleep(Duration::from_millis(350)).await;
    }
    let text_before = show.frame_text().await.to_lowercase();

    // An accepted bid of 1.5 ETH reaches the frame.
    let bid: Value = client
        .post(format!("{base}/api/auction/bid"))
        .bearer_auth(&operator)
        .json(&json!({ "auction_id": auction_id, "amount": "1.5", "bidder": { "id": "x:alice", "handle": "alice" } }))
        .send()
        .await
        .expect("bid")
        .json()
        .await
        .expect("json");
    assert_eq!(bid["data"]["bid"]["status"], "accepted", "{bid}");
    let ends_at: chrono::DateTime<chrono::Utc> =
        bid["data"]["auction"]["ends_at"].as_str().expect("ends_at").parse().expect("time");

    // The host reacts: the agent's first-bid line in the caption, its happy face drawn.
    let deadline = Instant::now() + Duration::from_secs(20);
    let line = loop {
        let history: Value = history(&client, &base, "agent:message", 20).await;
        let found = history["data"]["events"].as_array().into_iter().flatten().find_map(|event| {
            event["data"]["text"].as_str().filter(|text| text.contains("@alice")).map(str::to_owned)
        });
        if let Some(line) = found {
            break line;
        }
        assert!(Instant::now() < deadline, "the host said nothing of the bid: {history}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let word = line
        .split_whitespace()
        .map(|word| word.trim_matches(|c: char| !c.is_ascii_alphabetic()))
        .filter(|word| word.len() >= 5 && word.chars().all(|c| c.is_ascii_alphabetic()))
        .filter(|word| !text_before.contains(&word.to_lowercase()))
        .max_by_key(|word| word.len())
        .unwrap_or_else(|| panic!("no word of {line:?} to look for"))
        .to_owned();
    show.until_frame_shows(&word, Duration::from_secs(20)).await.unwrap_or_else(|text| {
        panic!("the caption never showed {word:?} of {line:?}; the last read:\n{text}")
    });
    let took = show.until_frame_shows("1.5 ETH", Duration::from_secs(20)).await.unwrap_or_else(|text| {
        panic!("no frame showed 1.5 ETH; the last read:\n{text}\n{}", renderer.log().join("\n"))
    });
    eprintln!("bid to a frame showing it, OCR included: {took:?}");
    let moods: Value = history(&client, &base, "agent:mood", 5).await;
    assert_eq!(
        moods["data"]["events"][0]["data"]["expression"], "characters/auctioneer/happy.png",
        "{moods}"
    );
    // Past the talking, the face differs from before the bid by more than a blink does.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let distance = |a: &[u8], b: &[u8]| {
        a.iter().zip(b).map(|(a, b)| u64::from(a.abs_diff(*b))).sum::<u64>() as f64 / a.len() as f64
    };
    let noise = [(0, 1), (0, 2), (1, 2)]
        .iter()
        .map(|(a, b)| distance(&faces_before[*a], &faces_before[*b]))
        .fold(f64::INFINITY, f64::min);
    let mut change = 0.0_f64;
    for _ in 0..3 {
        let after = show.host_pixels().await;
        let nearest =
            faces_before.iter().map(|before| distance(before, &after)).fold(f64::INFINITY, f64::min);
        change = change.max(nearest);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // (Neutral to happy changes the auctioneer's 146 px square by about 0.9 a channel.)
    assert!(change > 0.4 && change > noise * 4.0, "the face changed by {change:.2} (noise {noise:.2})");
    eprintln!("the host's face changed by {change:.2} per channel (frames before: {noise:.2})");
    // Another host goes on air: the frame shows the other character.
    let auctioneer = show.host_pixels().await;
    let switched = client
        .post(format!("{base}/api/agent/characters/active"))
        .bearer_auth(&operator)
        .json(&json!({ "id": "pixel" }))
        .send()
        .await
        .expect("switch");
    assert_eq!(switched.status(), 200);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = show.host_pixels().await;
        let moved = distance(&auctioneer, &now);
        if moved > 10.0 {
            eprintln!("the host switched on air: the square changed by {moved:.1} a channel");
            break;
        }
        assert!(Instant::now() < deadline, "the new host never reached the frame ({moved:.1})");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The countdown on the frame matches ends_at: a frame fetched when `left`
    // seconds remain shows that, rounded up, give or take the frame's age.
    let left = (ends_at - chrono::Utc::now()).num_milliseconds() as f64 / 1000.0;
    let text = show.frame_text().await;
    assert!(shows(&text, "@alice"), "the high bidder is shown: {text}");
    let shown = countdowns(&text);
    assert!(
        shown.iter().any(|secs| (*secs as f64 - left).abs() <= 2.0),
        "countdown {shown:?} vs {left} s left:\n{text}\n{}",
        renderer.log().join("\n")
    );

    // A designer saves the scene: the frame changes, the output never stops.
    let frames_before = show.frames_rendered().await;
    let file = scenes.join("default.toml");
    let original = std::fs::read_to_string(&file).expect("scene");
    let edited = original.replace("Reply \\\"@SothebAIs bid 1.5\\\" on X to bid", "Designers were here");
    assert_ne!(edited, original, "the banner text is in the default scene");
    std::fs::write(&file, &edited).expect("save scene");
    let saved = Instant::now();
    // The scene on the stream (its layers as drawn), then read on a frame.
    let applied = loop {
        let layers = show.json("/api/stream/layers").await;
        let banner = layers["data"]["layers"]
            .as_array()
            .and_then(|layers| layers.iter().find(|layer| layer["id"] == "how-to-bid"))
            .map(|layer| layer["text"].clone());
        if banner == Some(json!("Designers were here")) {
            break saved.elapsed();
        }
        assert!(saved.elapsed() < Duration::from_secs(20), "the edit never reached the stream: {layers}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    eprintln!("scene saved to the stream drawing it: {applied:?} (the spec promises within 1 s)");
    let took = show
        .until_shows("Designers were here", Duration::from_secs(20), Some(BANNER))
        .await
        .unwrap_or_else(|text| {
            panic!("the edit never reached the frame; the last read:\n{text}\n{}", renderer.log().join("\n"))
        });
    eprintln!("scene saved to a frame showing it, OCR included: {took:?}");

    // An invalid save keeps the last good scene on air and names the line.
    let broken = edited.replacen("color = \"#7a1418\"", "color = \"#7a14\"", 1);
    let broken_line = broken.lines().position(|line| line.contains("#7a14\"")).expect("broken line") + 1;
    std::fs::write(&file, &broken).expect("save broken scene");
    let deadline = Instant::now() + Duration::from_secs(10);
    let error = loop {
        let scenes = show.json("/api/stream/scenes").await;
        let found = scenes["data"]["scenes"]
            .as_array()
            .and_then(|list| list.iter().find(|scene| scene["name"] == "default"))
            .and_then(|scene| scene["error"].as_str().map(str::to_owned));
        if let Some(error) = found {
            break error;
        }
        assert!(Instant::now() < deadline, "no scene error reported: {scenes}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(error.contains(&format!("default.toml:{broken_line}:")), "the error names the line: {error}");
    let layers = show.json("/api/stream/layers").await;
    let banner = layers["data"]["layers"]
        .as_array()
        .and_then(|layers| layers.iter().find(|layer| layer["id"] == "how-to-bid"))
        .map(|layer| layer["text"].clone());
    assert_eq!(banner, Some(json!("Designers were here")), "the last good scene stays: {layers}");
    show.until_shows("Designers were here", Duration::from_secs(10), Some(BANNER))
        .await
        .unwrap_or_else(|text| panic!("the last good scene left the frame:\n{text}"));
    let frames_after = show.frames_rendered().await;
    assert!(frames_after > frames_before, "the output kept going: {frames_before} -> {frames_after}");
    let status = show.json("/api/stream/status").await;
    assert_eq!(status["data"]["state"], "live", "{status}");

    // Stopping with SIGTERM finalises the recording.
    let exit = renderer.terminate(Duration::from_secs(30)).expect("renderer stops");
    assert!(exit.success(), "{exit:?}\n{}", renderer.log().join("\n"));
    let probe = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=codec_name,nb_read_frames",
            "-of",
            "json",
        ])
        .arg(&recording)
        .output()
        .expect("ffprobe");
    let probed: Value = serde_json::from_slice(&probe.stdout).unwrap_or(Value::Null);
    assert_eq!(probed["streams"][0]["codec_name"], "h264", "{probed}");
    let frames: u64 =
        probed["streams"][0]["nb_read_frames"].as_str().and_then(|n| n.parse().ok()).unwrap_or(0);
    assert!(
        frames >= frames_after.saturating_sub(30),
        "the recording holds the frames: {frames} of {frames_after}"
    );
    // The accepted bid rang its chime on the audio track.
    let volume = Command::new("ffmpeg")
        .args(["-hide_banner", "-i"])
        .arg(&recording)
        .args(["-vn", "-af", "volumedetect", "-f", "null", "-"])
        .output()
        .expect("ffmpeg");
    let report = String::from_utf8_lossy(&volume.stderr);
    let max_db: f64 = report
        .lines()
        .find_map(|line| line.split("max_volume:").nth(1))
        .and_then(|rest| rest.trim().trim_end_matches("dB").trim().parse().ok())
        .unwrap_or(f64::NEG_INFINITY);
    assert!(max_db > -30.0, "the track is silent (max {max_db} dB):\n{report}");
    let _ = server.terminate(Duration::from_secs(10));
}

#[tokio::test]
async fn the_show_follows_the_auction_embedded() {
    if Backend::all().contains(&Backend::Embedded) {
        the_show_follows_the_auction(Backend::Embedded).await;
    }
}

#[tokio::test]
async fn the_show_follows_the_auction_production() {
    if Backend::all().contains(&Backend::Production) {
        the_show_follows_the_auction(Backend::Production).await;
    }
}

/// Mean absolute difference per channel of two equal-sized pixel buffers.
fn distance(a: &[u8], b: &[u8]) -> f64 {
    a.iter().zip(b).map(|(a, b)| u64::from(a.abs_diff(*b))).sum::<u64>() as f64 / a.len().max(1) as f64
}

/// The host's mouth on a 1280x720 frame of the default scene (the auctioneer's mouth
/// at (256, 306) of his 512 px art, drawn 146 px wide from (1094, 482)).
const MOUTH: (usize, usize, usize, usize) = (1147, 556, 40, 30);

#[expect(clippy::print_stderr, reason = "the measured figures are said in the test output")]
#[tokio::test]
async fn the_host_is_heard_on_the_track_and_its_mouth_moves_with_the_speech() {
    if !Backend::all().contains(&Backend::Embedded) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let OnAir { mut server, base, operator, client, mut renderer, show, recording } =
        OnAir::embedded(dir.path(), &[("TTS_PROVIDER", "espeak")], "voice.mkv").await;
    // A lot opens (the bidding scene goes on air): the host announces it aloud.
    let created = client
        .post(format!("{base}/api/auction/auctions"))
        .bearer_auth(&operator)
        .json(&json!({ "title": "Quiet Harbour", "starting_price": "1", "starts_at": chrono::Utc::now().to_rfc3339(), "duration_secs": 600 }))
        .send()
        .await
        .expect("create");
    assert_eq!(created.status(), 201);
    let deadline = Instant::now() + Duration::from_secs(20);
    let speech = loop {
        let history: Value = history(&client, &base, "agent:message", 5).await;
        if let Some(speech) = history["data"]["events"][0]["data"].get("speech").cloned() {
            break speech;
        }
        assert!(Instant::now() < deadline, "no spoken line: {history}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let speech_ms = speech["duration_ms"].as_u64().expect("duration");
    // The line plays once the renderer has fetched its audio: look for the line's
    // length and a little more (a frame is a PNG encoded on a busy box, so there
    // are few of them).
    let started = Instant::now();
    let mut speaking = Vec::new();
    while started.elapsed() < Duration::from_millis(speech_ms + 1500) {
        speaking.push(show.region(MOUTH.0, MOUTH.1, MOUTH.2, MOUTH.3).await);
    }
    // Then silence: the closed mouth, and how much frames differ without speech.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut silent = Vec::new();
    for _ in 0..6 {
        silent.push(show.region(MOUTH.0, MOUTH.1, MOUTH.2, MOUTH.3).await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let closed = &silent[0];
    let noise = silent.iter().map(|frame| distance(closed, frame)).fold(0.0_f64, f64::max);
    let open = |frames: &[Vec<u8>]| {
        frames.iter().filter(|frame| distance(closed, frame) > noise * 2.0 + 3.0).count()
    };
    let (open_speaking, open_silent) = (open(&speaking), open(&silent));
    eprintln!(
        "mouth open in {open_speaking} of {} frames while speaking, {open_silent} of {} in silence (noise {noise:.2})",
        speaking.len(),
        silent.len()
    );
    assert!(
        open_speaking >= 2,
        "the mouth never opened while speaking: {open_speaking} of {}",
        speaking.len()
    );
    assert!(
        open_speaking as f64 / speaking.len() as f64 > open_silent as f64 / silent.len() as f64,
        "the mouth opens more while speaking"
    );

    // The track: loud for about the line's length, near silent elsewhere.
    let exit = renderer.terminate(Duration::from_secs(30)).expect("renderer stops");
    assert!(exit.success(), "{exit:?}\n{}", renderer.log().join("\n"));
    let samples = decoded_audio(&recording);
    let windows = loudness_db(&samples);
    let loud: Vec<usize> =
        windows.iter().enumerate().filter(|(_, db)| **db > -35.0).map(|(at, _)| at).collect();
    let (Some(first), Some(last)) = (loud.first(), loud.last()) else {
        panic!("the track is silent: {windows:?}")
    };
    let loud_ms = (last - first + 1) as u64 * 100;
    eprintln!("speech of {speech_ms} ms heard over {loud_ms} ms of the track, from {} ms", first * 100);
    assert!(
        loud_ms * 10 >= speech_ms * 6 && loud_ms * 10 <= speech_ms * 15,
        "{loud_ms} ms loud for {speech_ms} ms of speech"
    );
    let quiet = windows
        .iter()
        .enumerate()
        .filter(|(at, _)| *at + 3 < *first || *at > last + 3)
        .map(|(_, db)| *db)
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(quiet < -50.0, "elsewhere the track is near silent: loudest {quiet:.1} dB");
    let _ = server.terminate(Duration::from_secs(10));
}

#[tokio::test]
#[expect(clippy::print_stderr, reason = "the measured figures are said in the test output")]
async fn a_sold_lot_gets_its_winning_moment_clip_and_a_lot_without_bids_none() {
    if !Backend::all().contains(&Backend::Embedded) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let OnAir { mut server, base, operator, client, mut renderer, show, .. } =
        OnAir::embedded(dir.path(), &[("STREAM_CLIP_SECS", "10")], "clips.mkv").await;
    let open = |title: &str, secs: u64| {
        client
            .post(format!("{base}/api/auction/auctions"))
            .bearer_auth(&operator)
            .json(&json!({ "title": title, "starting_price": "1", "starts_at": chrono::Utc::now().to_rfc3339(), "duration_secs": secs, "anti_snipe": null }))
            .send()
    };
    // A lot that ends unsold first, then one sold to @alice, each more than a clip
    // after the renderer started.
    let unsold: Value = open("Empty Room", 15).await.expect("create").json().await.expect("json");
    let sold: Value = open("Quiet Harbour", 25).await.expect("create").json().await.expect("json");
    let (unsold, sold) = (
        unsold["data"]["id"].as_str().expect("id").to_owned(),
        sold["data"]["id"].as_str().expect("id").to_owned(),
    );
    let bid: Value = client
        .post(format!("{base}/api/auction/bid"))
        .bearer_auth(&operator)
        .json(
            &json!({ "auction_id": sold, "amount": "1.5", "bidder": { "id": "x:alice", "handle": "alice" } }),
        )
        .send()
        .await
        .expect("bid")
        .json()
        .await
        .expect("json");
    assert_eq!(bid["data"]["bid"]["status"], "accepted", "{bid}");

    // The clip is announced once its few seconds after the hammer are encoded.
    let deadline = Instant::now() + Duration::from_secs(90);
    let announced = loop {
        let history = history(&client, &base, "stream:clip", 5).await;
        if let Some(event) = history["data"]["events"].as_array().and_then(|events| events.first()) {
            break event["data"].clone();
        }
        assert!(Instant::now() < deadline, "no stream:clip: {history}\n{}", renderer.log().join("\n"));
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    assert_eq!(announced["auction_id"], sold, "{announced}");
    let path = PathBuf::from(announced["path"].as_str().expect("path"));
    assert_eq!(path, dir.path().join("data").join("clips").join(format!("{sold}.mp4")));
    assert_eq!(announced["duration_ms"], 10_000, "a clip of STREAM_CLIP_SECS: {announced}");

    // Listed; the unsold lot has none.
    let listed = show.json("/api/stream/clips").await;
    let clips = listed["data"]["clips"].as_array().cloned().unwrap_or_default();
    assert_eq!(clips.len(), 1, "one clip, the sold lot's: {listed}");
    assert_eq!(clips[0]["auction_id"], sold);
    assert!(!listed.to_string().contains(&unsold));

    // Served whole, by byte range, and a lot without a clip is not found.
    let served =
        client.get(format!("{}/api/stream/clips/{sold}.mp4", show.stream)).send().await.expect("clip");
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["content-type"], "video/mp4");
    let bytes = served.bytes().await.expect("bytes");
    assert_eq!(bytes.as_ref(), std::fs::read(&path).expect("the clip file"));
    let ranged = client
        .get(format!("{}/api/stream/clips/{sold}.mp4", show.stream))
        .header("range", "bytes=0-99")
        .send()
        .await
        .expect("range");
    assert_eq!(ranged.status(), 206);
    assert_eq!(ranged.bytes().await.expect("bytes").as_ref(), &bytes[..100]);
    let missing =
        client.get(format!("{}/api/stream/clips/{unsold}.mp4", show.stream)).send().await.expect("404");
    assert_eq!(missing.status(), 404);
    let missing: Value = missing.json().await.expect("the envelope");
    assert_eq!(missing["error"]["code"], "NOT_FOUND", "{missing}");

    // A playable H.264 + AAC file of the setting's length (within a frame at 15 fps
    // and an AAC frame), starting at a keyframe.
    let codecs = codecs(&path);
    assert!(
        codecs.iter().any(|codec| codec == "h264") && codecs.iter().any(|codec| codec == "aac"),
        "{codecs:?}"
    );
    let format = probe(&path, &["-show_entries", "format=duration"]);
    let duration: f64 =
        format["format"]["duration"].as_str().and_then(|text| text.parse().ok()).expect("duration");
    eprintln!("clip of {duration:.3} s, {} KiB", bytes.len() / 1024);
    assert!((duration - 10.0).abs() <= 1.0 / 15.0 + 0.025, "{duration} s");
    let first = probe(
        &path,
        &["-select_streams", "v", "-read_intervals", "%+#1", "-show_entries", "frame=key_frame,pict_type"],
    );
    assert_eq!(first["frames"][0]["key_frame"], 1, "{first}");

    // The hammer is inside: the clip begins with the lot open and ends on its sale.
    let frame_at = |seek: &[&str], name: &str| {
        let png = dir.path().join(name);
        let status = Command::new("ffmpeg")
            .args(["-hide_banner", "-loglevel", "error", "-y"])
            .args(seek)
            .arg("-i")
            .arg(&path)
            .args(["-frames:v", "1"])
            .arg(&png)
            .status()
            .expect("ffmpeg");
        assert!(status.success());
        ocr(&std::fs::read(&png).expect("frame"), dir.path()).to_lowercase()
    };
    let (opening, closing) = (frame_at(&[], "first.png"), frame_at(&["-sseof", "-0.5"], "last.png"));
    eprintln!("clip opens on {opening:?}\ncloses on {closing:?}");
    // ("sold to @alice", not "sold": the host may call the other lot unsold.)
    assert!(!shows(&opening, "sold to @alice"), "the lot is still open at the clip's start: {opening}");
    assert!(shows(&closing, "sold to @alice"), "the sale is shown at the clip's end: {closing}");

    let exit = renderer.terminate(Duration::from_secs(30)).expect("renderer stops");
    assert!(exit.success(), "{exit:?}");
    let _ = server.terminate(Duration::from_secs(10));
}
