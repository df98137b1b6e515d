//! The renderer as the end-to-end tests see it: started following a real backend
//! on copies of the repository's scenes and assets, its frames read back with OCR
//! (`tesseract-ocr`), its recordings probed and decoded with ffprobe and ffmpeg.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use sothebais_testkit::process::{Process, RENDERER_FREE_PORTS, addr, binary};

pub(crate) const START: Duration = Duration::from_secs(60);

/// The repository's folder `name` (scenes, assets).
pub(crate) fn repo(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(name)
}

pub(crate) fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_file() {
            std::fs::copy(&path, to.join(entry.file_name())).expect("copy");
        } else if path.is_dir() {
            copy_dir(&path, &to.join(entry.file_name()));
        }
    }
}

/// The text tesseract reads in a PNG (sparse text: a broadcast frame is not a page).
pub(crate) fn ocr(png: &[u8], dir: &Path) -> String {
    let file = dir.join("frame.png");
    std::fs::write(&file, png).expect("write frame");
    let output = Command::new("tesseract")
        .arg(&file)
        .args(["stdout", "--psm", "11"])
        .output()
        .expect("tesseract runs (package tesseract-ocr)");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub(crate) struct Show {
    pub(crate) client: reqwest::Client,
    pub(crate) stream: String,
    pub(crate) dir: PathBuf,
}

impl Show {
    /// Waits until the renderer follows the backend and has rendered a frame.
    pub(crate) async fn wait_until_following(&self, renderer: &Process) {
        let deadline = Instant::now() + START;
        loop {
            let status = self.json("/api/stream/status").await;
            if status["data"]["following"] == true && status["data"]["frames_rendered"].as_u64() > Some(0) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the renderer never followed: {status}\n{}",
                renderer.log().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    pub(crate) async fn json(&self, path: &str) -> Value {
        let response = self.client.get(format!("{}{path}", self.stream)).send().await.expect("request");
        response.json().await.expect("json")
    }

    pub(crate) async fn frame_text(&self) -> String {
        let response =
            self.client.get(format!("{}/api/stream/frame", self.stream)).send().await.expect("frame");
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["content-type"], "image/png");
        let png = response.bytes().await.expect("bytes");
        ocr(&png, &self.dir)
    }

    /// The text of the rows `top..bottom` of a frame alone. Tesseract thresholds a
    /// whole image at once, so light text on the red banner reads reliably only
    /// without the rest of the frame (captions, panels) around it.
    pub(crate) async fn band_text(&self, top: usize, bottom: usize) -> String {
        let response =
            self.client.get(format!("{}/api/stream/frame", self.stream)).send().await.expect("frame");
        let png = response.bytes().await.expect("bytes");
        let mut reader = png::Decoder::new(std::io::Cursor::new(png.to_vec())).read_info().expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a frame size")];
        let info = reader.next_frame(&mut pixels).expect("the frame");
        let row = info.line_size;
        let band = &pixels[top * row..bottom.min(info.height as usize) * row];
        let mut out = Vec::new();
        {
            let mut encoder = png::Encoder::new(&mut out, info.width, (bottom - top) as u32);
            encoder.set_color(info.color_type);
            encoder.set_depth(info.bit_depth);
            encoder.write_header().expect("header").write_image_data(band).expect("band");
        }
        ocr(&out, &self.dir)
    }

    /// Reads frames until one shows `wanted`; the time it took, or the last text read.
    pub(crate) async fn until_frame_shows(
        &self,
        wanted: &str,
        timeout: Duration,
    ) -> Result<Duration, String> {
        self.until_shows(wanted, timeout, None).await
    }

    /// Reads frames (or one band of rows of them) until one shows `wanted`.
    pub(crate) async fn until_shows(
        &self,
        wanted: &str,
        timeout: Duration,
        band: Option<(usize, usize)>,
    ) -> Result<Duration, String> {
        let started = Instant::now();
        let mut text = String::new();
        while started.elapsed() < timeout {
            text = match band {
                Some((top, bottom)) => self.band_text(top, bottom).await,
                None => self.frame_text().await,
            };
            if shows(&text, wanted) {
                return Ok(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(text)
    }

    /// The host's square of the default scene on a 1280x720 frame (the layer at
    /// [1750, 832], 220 canvas units wide, on a 1920x1080 canvas), as RGB.
    pub(crate) async fn host_pixels(&self) -> Vec<u8> {
        self.region(1094, 482, 146, 146).await
    }

    /// The pixels of a rectangle of a frame, as RGB.
    pub(crate) async fn region(&self, left: usize, top: usize, width: usize, height: usize) -> Vec<u8> {
        let response =
            self.client.get(format!("{}/api/stream/frame", self.stream)).send().await.expect("frame");
        let png = response.bytes().await.expect("bytes");
        let mut reader = png::Decoder::new(std::io::Cursor::new(png.to_vec())).read_info().expect("a PNG");
        let mut pixels = vec![0; reader.output_buffer_size().expect("a frame size")];
        let info = reader.next_frame(&mut pixels).expect("the frame");
        let channels = info.color_type.samples();
        let mut out = Vec::with_capacity(width * height * 3);
        for y in top..top + height {
            for x in left..left + width {
                let at = (y * info.width as usize + x) * channels;
                out.extend_from_slice(&pixels[at..at + 3]);
            }
        }
        out
    }

    pub(crate) async fn frames_rendered(&self) -> u64 {
        self.json("/api/stream/status").await["data"]["frames_rendered"].as_u64().unwrap_or_default()
    }
}

/// Whether OCR text holds `wanted`, ignoring spaces (OCR often drops or adds them).
pub(crate) fn shows(text: &str, wanted: &str) -> bool {
    let squeeze = |text: &str| text.split_whitespace().collect::<String>();
    squeeze(text).contains(&squeeze(wanted))
}

/// `M:SS` lines of an OCR text (the countdown), as seconds.
pub(crate) fn countdowns(text: &str) -> Vec<i64> {
    text.lines()
        .filter_map(|line| {
            let line = line.trim();
            let (minutes, seconds) = line.split_once(':')?;
            if seconds.len() != 2 || seconds.contains(':') {
                return None;
            }
            Some(minutes.parse::<i64>().ok()? * 60 + seconds.parse::<i64>().ok()?)
        })
        .collect()
}

/// A renderer following `base` at 1280x720, 15 fps, on copies of the repository's
/// scenes and assets under `dir`, recording to `dir/<file>` (and to the `--output`s
/// in `extra`, with any other flags there); with the backend's Redis settings when
/// it has them. Returns it, its API, the recording and the folders.
pub(crate) fn start_renderer(
    dir: &Path,
    base: &str,
    env: &BTreeMap<String, String>,
    client: &reqwest::Client,
    file: &str,
    extra: &[&str],
) -> (Process, Show, PathBuf, PathBuf, PathBuf) {
    let scenes = dir.join("scenes");
    copy_dir(&repo("scenes"), &scenes);
    // The renderer's own assets folder: downloads and uploads land there.
    let assets = dir.join("assets");
    copy_dir(&repo("assets"), &assets);
    let recording = dir.join(file);
    let mut renderer_env: BTreeMap<String, String> = BTreeMap::new();
    renderer_env.insert("SOTHEBAIS_DATA_DIR".into(), dir.join("data").display().to_string());
    for key in ["REDIS_URL", "REDIS_KEY_PREFIX", "STREAM_CLIP_SECS"] {
        if let Some(value) = env.get(key) {
            renderer_env.insert(key.into(), value.clone());
        }
    }
    let args = [
        "--output",
        recording.to_str().expect("path"),
        "--width",
        "1280",
        "--height",
        "720",
        "--fps",
        "15",
        "--backend",
        base,
        "--scenes",
        scenes.to_str().expect("path"),
        "--assets",
        assets.to_str().expect("path"),
    ];
    let args = [&args[..], &RENDERER_FREE_PORTS[..], extra].concat();
    let mut renderer =
        Process::start(&binary("sothebais-renderer"), &args, dir, &renderer_env).expect("renderer");
    let listeners = renderer.wait_for_listeners(4, START).expect("renderer listening");
    let show = Show {
        client: client.clone(),
        stream: format!("http://{}", addr(&listeners, "stream", "api")),
        dir: dir.to_path_buf(),
    };
    (renderer, show, recording, scenes, assets)
}

/// The newest stored events of a type on the backend (`GET …/history`, newest first).
pub(crate) async fn history(client: &reqwest::Client, base: &str, kind: &str, limit: u32) -> Value {
    let response = client.get(format!("{base}/api/events/{kind}/history?limit={limit}")).send().await;
    response.expect("history").json().await.expect("json")
}

/// The recording's audio as mono 8 kHz samples, decoded by ffmpeg.
pub(crate) fn decoded_audio(recording: &Path) -> Vec<i16> {
    let output = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-i"])
        .arg(recording)
        .args(["-vn", "-ac", "1", "-ar", "8000", "-f", "s16le", "-"])
        .output()
        .expect("ffmpeg");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    output.stdout.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect()
}

/// The codecs of a file's streams, as ffprobe names them.
pub(crate) fn codecs(file: &Path) -> Vec<String> {
    let streams = probe(file, &["-show_entries", "stream=codec_name"]);
    streams["streams"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|stream| stream["codec_name"].as_str().map(str::to_owned))
        .collect()
}

/// What ffprobe says of a file: `-show_entries <entries>` as JSON.
pub(crate) fn probe(file: &Path, args: &[&str]) -> Value {
    let output = Command::new("ffprobe")
        .args(["-v", "error", "-of", "json"])
        .args(args)
        .arg(file)
        .output()
        .expect("ffprobe runs");
    serde_json::from_slice(&output.stdout).expect("ffprobe's JSON")
}

/// The loudness of each 100 ms of `decoded_audio`'s samples, in dBFS.
pub(crate) fn loudness_db(samples: &[i16]) -> Vec<f64> {
    samples
        .chunks(800)
        .map(|chunk| {
            let power = chunk.iter().map(|sample| (f64::from(*sample) / 32768.0).powi(2)).sum::<f64>()
                / chunk.len() as f64;
            10.0 * power.max(1e-12).log10()
        })
        .collect()
}
