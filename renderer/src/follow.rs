//! Following the backend: a snapshot from the HTTP API, then the events, from Redis
//! Streams when `REDIS_URL` is set, else from the event stream WebSocket. Runs on
//! the renderer's Tokio runtime and hands what it learns to the Bevy app through a
//! channel; [`Show`](crate::show::Show) applies it so that nothing is applied twice.
//!
//! After a disconnect it reconnects with backoff (1 s doubling to 30 s), takes a new
//! snapshot and resumes the events where it stopped (`since=<last event id>` on the
//! WebSocket, the last entry ids on Redis), so a reconnect leaves no gap.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bevy::log::{info, warn};
use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use serde::Deserialize;
use sothebais_shared::api::ApiResponse;
use sothebais_shared::auction::{Auction, Bid};
use sothebais_shared::events::{Category, Envelope, Mood};
use uuid::Uuid;

use crate::show::Snapshot;

/// What the follower hands to the app.
#[derive(Debug)]
pub enum Feed {
    /// A snapshot taken at the given renderer time.
    Snapshot(Snapshot, DateTime<Utc>),
    /// An event and when it reached the renderer.
    Event(Box<Envelope>, Instant),
    /// Whether the follower is connected now.
    Connected(bool),
    /// A lot's remote image, downloaded under the assets folder (relative path).
    Image { url: String, path: String },
    /// A spoken `agent:message` with its speech fetched: the audio at the track's
    /// rate and its loudness per window.
    Speech {
        event: Box<Envelope>,
        arrival: Instant,
        clip: crate::sound::Clip,
        levels: Arc<Vec<f32>>,
        secs: f32,
    },
}

/// Where the events come from.
#[derive(Debug, Clone)]
pub enum Source {
    WebSocket,
    Redis { url: String, prefix: String },
}

/// The event types the show draws.
const TYPES: &str = "auction:*,agent:message,agent:mood";
const STREAMS: [Category; 2] = [Category::Auction, Category::Agent];

/// Follows the backend at `backend` until the receiver is gone (or the task is
/// stopped).
pub async fn run(backend: String, source: Source, assets: PathBuf, feed: Sender<Feed>) {
    let http = match reqwest::Client::builder().timeout(Duration::from_secs(10)).build() {
        Ok(http) => http,
        Err(error) => {
            warn!("follow: no HTTP client: {error}");
            return;
        }
    };
    let backend = backend.trim_end_matches('/').to_owned();
    let mut backoff = Duration::from_secs(1);
    let mut resume = Resume::default();
    let images = Downloads::new(http.clone(), assets, feed.clone(), backend.clone());
    loop {
        let started = Instant::now();
        let result = match &source {
            Source::WebSocket => follow_websocket(&http, &backend, &feed, &mut resume, &images).await,
            Source::Redis { url, prefix } => {
                follow_redis(&http, &backend, url, prefix, &feed, &mut resume, &images).await
            }
        };
        if feed.send(Feed::Connected(false)).is_err() {
            return;
        }
        if let Err(error) = result {
            warn!("follow: {error}; retrying in {} s", backoff.as_secs());
        }
        if started.elapsed() > Duration::from_secs(30) {
            backoff = Duration::from_secs(1);
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(30));
    }
}

/// Where to pick the events up again after a reconnect.
#[derive(Debug, Default)]
struct Resume {
    last_event: Option<Uuid>,
    stream_ids: HashMap<String, String>,
}

async fn follow_websocket(
    http: &reqwest::Client,
    backend: &str,
    feed: &Sender<Feed>,
    resume: &mut Resume,
    images: &Downloads,
) -> anyhow::Result<()> {
    let base = backend.replacen("http", "ws", 1);
    let mut url = format!("{base}/api/events/stream?types={TYPES}");
    if let Some(since) = resume.last_event {
        url.push_str(&format!("&since={since}"));
    }
    // Connect first, then take the snapshot: events decided in between arrive on
    // the socket and are recognised as already known by their sequence number.
    let (mut socket, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|error| anyhow::anyhow!("event stream {base}/api/events/stream: {error}"))?;
    send_snapshot(http, backend, feed, images).await?;
    info!("follow: following {base}/api/events/stream");
    let _ = feed.send(Feed::Connected(true));
    while let Some(message) = socket.next().await {
        let message = message?;
        let Ok(text) = message.to_text() else { continue };
        if text.is_empty() {
            continue;
        }
        if !deliver(text, resume, images, feed) {
            return Ok(());
        }
    }
    anyhow::bail!("the event stream closed")
}

async fn follow_redis(
    http: &reqwest::Client,
    backend: &str,
    url: &str,
    prefix: &str,
    feed: &Sender<Feed>,
    resume: &mut Resume,
    images: &Downloads,
) -> anyhow::Result<()> {
    let client = redis::Client::open(url)?;
    let mut connection = client.get_multiplexed_async_connection().await?;
    let keys: Vec<String> =
        STREAMS.iter().map(|stream| format!("{prefix}{}", stream.stream_name())).collect();
    if resume.stream_ids.is_empty() {
        // Start at the newest entry of each stream; the snapshot covers the past.
        for key in &keys {
            let last: redis::streams::StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query_async(&mut connection)
                .await?;
            let id = last.ids.first().map_or_else(|| "0-0".to_owned(), |entry| entry.id.clone());
            resume.stream_ids.insert(key.clone(), id);
        }
    }
    send_snapshot(http, backend, feed, images).await?;
    info!("follow: following Redis streams {}", keys.join(", "));
    let _ = feed.send(Feed::Connected(true));
    loop {
        let ids: Vec<String> =
            keys.iter().map(|key| resume.stream_ids.get(key).cloned().unwrap_or_default()).collect();
        let reply: Option<redis::streams::StreamReadReply> = redis::cmd("XREAD")
            .arg("COUNT")
            .arg(500)
            .arg("BLOCK")
            .arg(1000)
            .arg("STREAMS")
            .arg(&keys)
            .arg(&ids)
            .query_async(&mut connection)
            .await?;
        let Some(reply) = reply else { continue };
        for stream in reply.keys {
            for entry in stream.ids {
                resume.stream_ids.insert(stream.key.clone(), entry.id.clone());
                let Some(payload) = entry.get::<String>("event") else { continue };
                if !deliver(&payload, resume, images, feed) {
                    return Ok(());
                }
            }
        }
    }
}

/// Checks a received envelope and hands it to the app, remembering where to resume;
/// false once the app has stopped listening. An invalid one is logged and skipped.
fn deliver(payload: &str, resume: &mut Resume, images: &Downloads, feed: &Sender<Feed>) -> bool {
    match Envelope::parse_checked(payload) {
        Ok(event) if event.is_forged_decision() => {
            resume.last_event = Some(event.id);
            warn!(
                "follow: ignoring {} from {}: auction decisions come only from the engine",
                event.event_type,
                event.source.as_str()
            );
            true
        }
        Ok(event) => {
            resume.last_event = Some(event.id);
            images.look_at(&event.data);
            if let Some(url) = spoken(&event) {
                images.speech(event, url, Instant::now());
                return true;
            }
            feed.send(Feed::Event(Box::new(event), Instant::now())).is_ok()
        }
        Err(error) => {
            warn!("follow: skipping an invalid event: {error}");
            true
        }
    }
}

#[derive(Debug, Deserialize)]
struct Status {
    now: DateTime<Utc>,
    auctions: Vec<Auction>,
}

#[derive(Debug, Deserialize)]
struct History {
    bids: Vec<Bid>,
}

#[derive(Debug, Deserialize)]
struct AgentState {
    mood: Option<Mood>,
    expression: Option<String>,
}

async fn get<T: serde::de::DeserializeOwned>(http: &reqwest::Client, url: &str) -> anyhow::Result<Option<T>> {
    let response = http.get(url).send().await.map_err(|error| anyhow::anyhow!("GET {url}: {error}"))?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body: ApiResponse<serde_json::Value> =
        response.json().await.map_err(|error| anyhow::anyhow!("GET {url}: {error}"))?;
    match (body.data, body.error) {
        (Some(data), _) => {
            Ok(Some(serde_json::from_value(data).map_err(|error| anyhow::anyhow!("GET {url}: {error}"))?))
        }
        (None, Some(error)) => anyhow::bail!("GET {url}: {} {}", error.code, error.message),
        (None, None) => anyhow::bail!("GET {url}: no data"),
    }
}

/// The auctions now, the recent bids of each (for the ticker) and the host's mood.
async fn send_snapshot(
    http: &reqwest::Client,
    backend: &str,
    feed: &Sender<Feed>,
    images: &Downloads,
) -> anyhow::Result<()> {
    let sent = Utc::now();
    let status: Status = get(http, &format!("{backend}/api/auction/status"))
        .await?
        .ok_or_else(|| anyhow::anyhow!("{backend} has no auction API (is the auction role running?)"))?;
    // The backend read its clock about halfway through the request.
    let local = sent + (Utc::now() - sent) / 2;
    let mut bids = HashMap::new();
    for auction in &status.auctions {
        if let Some(url) = auction.lot.as_ref().and_then(|lot| lot.image_url.as_deref()) {
            images.want(url);
        }
        let after = auction.seq.saturating_sub(200);
        let url =
            format!("{backend}/api/auction/history?auction_id={}&after_seq={after}&limit=200", auction.id);
        if let Some(history) = get::<History>(http, &url).await? {
            bids.insert(auction.id, history.bids);
        }
    }
    // The agent's state, when the agent role runs.
    let agent = get::<AgentState>(http, &format!("{backend}/api/agent/state")).await.ok().flatten();
    let (mood, expression) = agent.map_or((None, None), |agent| (agent.mood, agent.expression));
    info!(
        "follow: snapshot of {} auctions; the backend's clock is {} ms ahead",
        status.auctions.len(),
        (status.now - local).num_milliseconds()
    );
    let snapshot = Snapshot { now: Some(status.now), auctions: status.auctions, bids, mood, expression };
    feed.send(Feed::Snapshot(snapshot, local)).map_err(|_| anyhow::anyhow!("the renderer stopped"))?;
    Ok(())
}

/// Largest lot image downloaded.
const MAX_IMAGE: usize = 10 * 1024 * 1024;

/// What the follower fetches beside the events: lots' remote images (`http(s)://`)
/// into `assets/cache/lots/`, once each (a failed download is tried again when the
/// URL comes up after a minute), and the host's speech for a spoken line.
#[derive(Debug, Clone)]
struct Downloads {
    http: reqwest::Client,
    assets: PathBuf,
    feed: Sender<Feed>,
    seen: Arc<Mutex<HashMap<String, Option<Instant>>>>,
    /// The backend's base URL, for the host's speech.
    backend: String,
}

/// The speech URL of a stream `agent:message`, if it is spoken.
fn spoken(event: &Envelope) -> Option<String> {
    if event.event_type != sothebais_shared::events::EventType::AgentMessage {
        return None;
    }
    let message: sothebais_shared::events::AgentMessage = event.decode().ok()?;
    (message.channel == sothebais_shared::events::Channel::Stream).then_some(message.speech?.url)
}

/// The longest wait for a line's speech: past it the caption shows alone.
const SPEECH_DEADLINE: Duration = Duration::from_secs(2);

impl Downloads {
    fn new(http: reqwest::Client, assets: PathBuf, feed: Sender<Feed>, backend: String) -> Downloads {
        Downloads { http, assets, feed, seen: Arc::default(), backend }
    }

    /// Fetches a line's speech, then hands the line over with it (caption and voice
    /// together); the caption alone when the speech cannot be had in time.
    fn speech(&self, event: Envelope, url: String, arrival: Instant) {
        let (http, feed, url) = (self.http.clone(), self.feed.clone(), format!("{}{url}", self.backend));
        tokio::spawn(async move {
            let fetched = tokio::time::timeout(SPEECH_DEADLINE, async {
                let response = http.get(&url).send().await?.error_for_status()?;
                anyhow::Ok(response.bytes().await?)
            })
            .await;
            let audio = match fetched {
                Ok(Ok(bytes)) => sothebais_shared::wav::read(&bytes).map_err(anyhow::Error::from),
                Ok(Err(error)) => Err(error),
                Err(_) => Err(anyhow::anyhow!("not fetched within {SPEECH_DEADLINE:?}")),
            };
            let item = match audio {
                Ok(audio) => {
                    let levels =
                        Arc::new(sothebais_shared::wav::levels(&audio, crate::show::LEVEL_WINDOW_MS));
                    let secs = audio.duration_ms() as f32 / 1000.0;
                    metrics::counter!("stream_speech_total", "outcome" => "played").increment(1);
                    Feed::Speech {
                        event: Box::new(event),
                        arrival,
                        clip: crate::sound::voice_clip(&audio),
                        levels,
                        secs,
                    }
                }
                Err(error) => {
                    warn!("follow: the host's speech {url}: {error:#}; the caption shows alone");
                    metrics::counter!("stream_speech_total", "outcome" => "missing").increment(1);
                    Feed::Event(Box::new(event), arrival)
                }
            };
            let _ = feed.send(item);
        });
    }

    /// Looks for `auction.lot.image_url` in an event's data.
    fn look_at(&self, data: &serde_json::Value) {
        if let Some(url) = data.pointer("/auction/lot/image_url").and_then(serde_json::Value::as_str) {
            self.want(url);
        }
    }

    fn want(&self, url: &str) {
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return;
        }
        {
            let Ok(mut seen) = self.seen.lock() else { return };
            match seen.get(url) {
                // Downloaded, or being downloaded.
                Some(None) => return,
                Some(Some(failed)) if failed.elapsed() < Duration::from_secs(60) => return,
                _ => {}
            }
            seen.insert(url.to_owned(), None);
        }
        let (images, url) = (self.clone(), url.to_owned());
        tokio::spawn(async move {
            match images.download(&url).await {
                Ok(path) => {
                    info!("follow: lot image {url} saved as {path}");
                    let _ = images.feed.send(Feed::Image { url, path });
                }
                Err(error) => {
                    warn!("follow: lot image {url}: {error:#}");
                    if let Ok(mut seen) = images.seen.lock() {
                        seen.insert(url, Some(Instant::now()));
                    }
                }
            }
        });
    }

    async fn download(&self, url: &str) -> anyhow::Result<String> {
        let response = self.http.get(url).send().await?.error_for_status()?;
        let bytes = read_capped(response, MAX_IMAGE).await?;
        let extension = if bytes.starts_with(b"\x89PNG\r\n\x1a\n") {
            "png"
        } else if bytes.starts_with(&[0xFF, 0xD8, 0xFF]) {
            "jpg"
        } else {
            anyhow::bail!("not a PNG or JPEG image");
        };
        let relative = format!("cache/lots/{:016x}.{extension}", fnv1a(url));
        let target = self.assets.join(&relative);
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)?;
            }
            let partial = target.with_extension("part");
            std::fs::write(&partial, &bytes)?;
            std::fs::rename(&partial, &target)
        })
        .await??;
        Ok(relative)
    }
}

/// A response's body, read chunk by chunk and given up as soon as it passes `cap`
/// bytes (a body without `Content-Length` is never read whole before the check).
async fn read_capped(mut response: reqwest::Response, cap: usize) -> anyhow::Result<Vec<u8>> {
    if response.content_length().is_some_and(|length| length > cap as u64) {
        anyhow::bail!("larger than {cap} bytes");
    }
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        if body.len() + chunk.len() > cap {
            anyhow::bail!("larger than {cap} bytes");
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// A stable 64-bit hash of a URL, for its cache file name.
fn fnv1a(text: &str) -> u64 {
    text.bytes()
        .fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3))
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncWriteExt as _;

    use super::*;

    #[tokio::test]
    async fn a_body_without_a_length_is_given_up_at_the_cap_not_read_whole() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let url = format!("http://{}/big.png", listener.local_addr().expect("addr"));
        let served = tokio::spawn(async move {
            let (mut socket, _) = listener.accept().await.expect("accept");
            let mut request = [0u8; 1024];
            let _ = tokio::io::AsyncReadExt::read(&mut socket, &mut request).await;
            let _ = socket
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nConnection: close\r\n\r\n")
                .await;
            let chunk = vec![0u8; 64 * 1024];
            let mut written = 0usize;
            while written < 64 * 1024 * 1024 {
                if socket.write_all(&chunk).await.is_err() {
                    break;
                }
                written += chunk.len();
            }
            written
        });
        let response = reqwest::get(&url).await.expect("response");
        let error = read_capped(response, 1024 * 1024).await.expect_err("too big");
        assert!(error.to_string().contains("larger than"), "{error}");
        let written = served.await.expect("server");
        assert!(written < 32 * 1024 * 1024, "the body was not read to its end: {written} bytes sent");
    }
}
