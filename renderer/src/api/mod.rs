//! The stream manager API (`/api/stream/…` on `STREAM_MANAGER_PORT`), its WebSocket
//! (`STREAM_MANAGER_WS_PORT`), `/metrics` and `/health`. It runs on the renderer's
//! Tokio runtime; the Bevy app publishes a [`View`] of itself into [`Shared`] a few
//! times a second and takes [`Command`]s from a channel, so a slow client never
//! touches the render loop.

use std::net::IpAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bevy::log::info;
use metrics_exporter_prometheus::PrometheusHandle;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sothebais_kit::access::{Authenticator, Authorized, HasAuthenticator, OperatorRole, Role};
use sothebais_kit::health::Checks;
use sothebais_kit::http::{Failure, created, ok, with_conventions};
use sothebais_kit::listen::{self, BlockRouters, Listener};
use sothebais_kit::openapi::{self, Operation};
use sothebais_kit::ratelimit::{ClientRates, Limiter, Rate};
use sothebais_shared::api::codes;
use sothebais_shared::ports::PortBlock;

use crate::frame_cache::{FrameCache, FrameFormat};

mod clips;
mod socket;
use crate::output::OutputStats;
use crate::report::LayerInfo;
use crate::scene::draw::Patch;

/// What the operator asks of the running renderer.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Put a scene on air whatever the state (`None`: back to the rules).
    Pin(Option<String>),
    /// Change a layer until its scene file changes it.
    Patch(String, Patch),
}

/// The latest rendered frame: I420 planes, as the encoder gets them.
#[derive(Debug, Clone)]
pub struct Frame {
    pub data: Arc<Vec<u8>>,
    pub width: u32,
    pub height: u32,
    pub number: u64,
}

impl Frame {
    /// The frame as RGBA.
    pub fn image(&self) -> Option<image::RgbaImage> {
        let pixels = crate::convert::i420_to_rgba(&self.data, self.width, self.height)?;
        image::RgbaImage::from_raw(self.width, self.height, pixels)
    }
}

/// `GET /api/stream/status`.
#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Status {
    pub state: &'static str,
    pub fps: f64,
    pub frame_time_ms: Percentiles,
    pub frames_rendered: u64,
    pub frames_dropped: u64,
    pub outputs: Vec<OutputStatus>,
    pub encoder: String,
    pub resolution: String,
    pub scene: String,
    pub uptime_secs: u64,
    /// Whether the renderer follows the backend's events now.
    pub following: bool,
    /// From a spoken line's `agent:message` to its first audible sample on the
    /// track, over the latest lines (`None` before the first).
    pub speech_delay_ms: Option<Percentiles>,
    pub speech_lines: usize,
}

#[derive(Debug, Clone, Copy, Default, Serialize, JsonSchema)]
pub struct Percentiles {
    pub p50: f64,
    pub p99: f64,
}

#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct OutputStatus {
    pub url: String,
    pub state: crate::output_pipeline::OutputState,
    pub bitrate_kbps: u32,
    pub reconnects: u64,
}

/// A scene as `GET /api/stream/scenes` lists it.
#[derive(Debug, Clone, Serialize, JsonSchema)]
pub struct SceneInfo {
    pub name: String,
    pub states: Vec<&'static str>,
    /// The file's current error (`file:line:column: message`); the last good
    /// version stays on air meanwhile.
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, JsonSchema)]
pub struct Scenes {
    pub active: String,
    pub pinned: Option<String>,
    pub scenes: Vec<SceneInfo>,
}

/// What the app publishes about itself.
#[derive(Debug, Clone, Default)]
pub struct View {
    pub status: Status,
    pub layers: Vec<LayerInfo>,
    pub scenes: Scenes,
}

/// State shared by the app and the API.
pub struct Shared {
    pub view: Mutex<View>,
    pub frame: Mutex<Option<Frame>>,
    /// The latest frame's PNG and JPEG encodes, shared by every caller.
    pub frames: FrameCache,
    /// WebSocket clients connected now (at most [`MAX_SOCKETS`]).
    pub sockets: std::sync::atomic::AtomicUsize,
    pub commands: Mutex<Sender<Command>>,
    pub stats: Arc<OutputStats>,
    /// Checks operator tokens: HS256 with the backend's secret, RS256 from `AUTH_JWKS_URL`.
    pub auth: Option<Arc<Authenticator>>,
    pub prometheus: PrometheusHandle,
    /// The outputs, once the pipeline runs.
    pub outputs: std::sync::OnceLock<crate::output::Outputs>,
    /// Where uploaded assets go.
    pub assets: std::path::PathBuf,
    /// Where recordings started through the API go (`<data dir>/recordings`).
    pub recordings: std::path::PathBuf,
    /// Where winning-moment clips are written (`<data dir>/clips`).
    pub clips: std::path::PathBuf,
    pub started: Instant,
}

impl HasAuthenticator for Shared {
    fn authenticator(&self) -> Option<&Authenticator> {
        self.auth.as_deref()
    }
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared").finish_non_exhaustive()
    }
}

type AppState = Arc<Shared>;

/// Per-client limits of the stream manager: a frame is a PNG encoded on the render box,
/// so reads are held lower than the backend's (operator tokens are not limited).
const CLIENT_RATES: ClientRates = ClientRates {
    reads: Rate { per_second: 10.0, burst: 20.0 },
    writes: Rate { per_second: 5.0, burst: 10.0 },
};

/// How long a request to the stream manager may take (uploads of 10 MiB included).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// The stream manager's operations, as its own document lists them and the gateway
/// merges them under `/api/stream`.
pub fn operations() -> Vec<Operation> {
    vec![
        Operation::new("GET", "/api/stream/openapi.json", "This OpenAPI document"),
        Operation::new(
            "GET",
            "/api/stream/status",
            "The renderer: state, fps, frame times, drops, outputs, encoder, scene",
        )
        .response::<Status>(),
        Operation::new("GET", "/api/stream/layers", "The layers of the scene on air").response::<Layers>(),
        Operation::new(
            "POST",
            "/api/stream/layers/{id}",
            "Show, hide, retext, move or fade a layer until its scene file changes it",
        )
        .auth(Role::Operator)
        .request::<PatchBody>(),
        Operation::new(
            "GET",
            "/api/stream/scenes",
            "The scenes, the one on air, the pinned one and each file's error",
        )
        .response::<Scenes>(),
        Operation::new(
            "POST",
            "/api/stream/scenes/active",
            "Pin a scene on air, or `null` to go back to the rules",
        )
        .auth(Role::Operator)
        .request::<PinBody>(),
        Operation::new(
            "GET",
            "/api/stream/frame",
            "The latest frame as PNG, or JPEG scaled to `width` (binary, not the envelope)",
        ),
        Operation::new(
            "POST",
            "/api/stream/playback",
            "Stop, start or restart outputs while rendering goes on",
        )
        .auth(Role::Operator)
        .request::<PlaybackBody>(),
        Operation::new("POST", "/api/stream/assets/upload", "Upload an image, font or sound (multipart)")
            .auth(Role::Operator),
        Operation::new(
            "GET",
            "/api/stream/clips",
            "The winning-moment clips of sold lots, newest first: auction id, file, duration, size",
        ),
        Operation::new(
            "GET",
            "/api/stream/clips/{file}",
            "One clip as MP4 (`<auction id>.mp4`; byte ranges for seeking; binary, not the envelope)",
        ),
    ]
}

/// Binds every listener of the stream manager's block (port 0 picks a free one),
/// each logged as `listening role=stream kind=… addr=…`, with the conventions every
/// listener wears (envelope, body cap, timeout).
pub async fn bind(shared: AppState, ip: IpAddr, ports: PortBlock) -> anyhow::Result<Vec<Listener>> {
    let api = Router::new()
        .route("/api/stream/openapi.json", get(openapi_document))
        .route("/api/stream/status", get(status))
        .route("/api/stream/layers", get(layers))
        .route("/api/stream/layers/{id}", post(patch_layer))
        .route("/api/stream/scenes", get(scenes))
        .route("/api/stream/scenes/active", post(pin_scene))
        .route("/api/stream/frame", get(frame))
        .route("/api/stream/playback", post(playback))
        .route("/api/stream/clips", get(clips::list))
        .route("/api/stream/clips/{file}", get(clips::serve))
        .route(
            "/api/stream/assets/upload",
            post(upload).layer(axum::extract::DefaultBodyLimit::max(MAX_UPLOAD + 64 * 1024)),
        )
        .route("/health", get(health));
    let ws = Router::new().route("/", get(socket::websocket));
    let health = Router::new().route("/health", get(health));
    let with = |router: Router<AppState>, timeout| {
        with_conventions(router, "stream", timeout).with_state(shared.clone())
    };
    let limiter = Limiter::new(CLIENT_RATES, shared.auth.clone());
    let limited = |router: Router<AppState>| {
        let limiter = limiter.clone();
        router.layer(axum::middleware::from_fn(
            move |request: axum::extract::Request, next: axum::middleware::Next| {
                sothebais_kit::ratelimit::limit(limiter.clone(), request, next)
            },
        ))
    };
    let routers = BlockRouters {
        api: with(limited(api), REQUEST_TIMEOUT),
        // WebSockets live longer than any request timeout.
        ws: with(limited(ws), Duration::from_secs(24 * 3600)),
        metrics: with_conventions(
            sothebais_kit::metrics::router(shared.prometheus.clone()),
            "stream",
            REQUEST_TIMEOUT,
        ),
        health: with(health, REQUEST_TIMEOUT),
    };
    listen::bind_block("stream", ip, ports, routers).await
}

fn fail(status: StatusCode, code: &'static str, message: impl Into<String>) -> Response {
    Failure::new(status, code, message).into_response()
}

/// `encoder`: the encode runs; `ingest`: no output is failing or reconnecting (an
/// output the operator stopped is fine).
fn health_checks(shared: &Shared) -> Checks {
    let mut checks = Checks::new();
    let failed = shared.stats.failed.lock().ok().and_then(|failed| failed.clone());
    checks.set("encoder", failed.map_or(Ok(()), Err));
    let troubled: Vec<String> = view(shared)
        .status
        .outputs
        .iter()
        .filter(|output| {
            matches!(
                output.state,
                crate::output_pipeline::OutputState::Error
                    | crate::output_pipeline::OutputState::Reconnecting
            )
        })
        .map(|output| format!("{} is {}", output.url, output.state.as_str()))
        .collect();
    checks.set("ingest", if troubled.is_empty() { Ok(()) } else { Err(troubled.join("; ")) });
    checks
}

async fn health(State(shared): State<AppState>) -> Response {
    health_checks(&shared).response("stream", shared.started.elapsed())
}

fn view(shared: &Shared) -> View {
    shared.view.lock().map(|view| view.clone()).unwrap_or_default()
}

async fn status(State(shared): State<AppState>) -> Response {
    ok(view(&shared).status)
}

/// `GET /api/stream/layers`.
#[derive(Debug, Serialize, JsonSchema)]
struct Layers {
    layers: Vec<LayerInfo>,
}

async fn layers(State(shared): State<AppState>) -> Response {
    ok(Layers { layers: view(&shared).layers })
}

/// `GET /api/stream/openapi.json`: bare, like `/health`, so OpenAPI tools read it.
async fn openapi_document() -> axum::Json<serde_json::Value> {
    axum::Json(openapi::document("SothebAIs stream API", &operations()))
}

async fn scenes(State(shared): State<AppState>) -> Response {
    ok(view(&shared).scenes)
}

fn send(shared: &Shared, command: Command) -> Result<(), Failure> {
    shared.commands.lock().ok().and_then(|sender| sender.send(command).ok()).ok_or_else(|| {
        Failure::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, "the renderer is stopping")
    })
}

/// Reads a JSON body into `T`, or the envelope's error naming what is wrong.
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|error| {
        Failure::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, format!("invalid body: {error}"))
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PinBody {
    name: Option<String>,
}

async fn pin_scene(
    State(shared): State<AppState>,
    _operator: Authorized<OperatorRole>,
    bytes: axum::body::Bytes,
) -> Response {
    let result = (|| {
        let PinBody { name } = body(&bytes)?;
        let known = view(&shared).scenes.scenes;
        if let Some(name) = &name
            && !known.iter().any(|scene| &scene.name == name)
        {
            let names: Vec<&str> = known.iter().map(|scene| scene.name.as_str()).collect();
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                format!("scene {name:?} not found; scenes: {}", names.join(", ")),
            ));
        }
        send(&shared, Command::Pin(name.clone()))?;
        Ok(serde_json::json!({ "pinned": name }))
    })();
    result.map_or_else(IntoResponse::into_response, ok)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PatchBody {
    visible: Option<bool>,
    text: Option<String>,
    position: Option<[f32; 2]>,
    opacity: Option<f32>,
    z: Option<f32>,
}

async fn patch_layer(
    State(shared): State<AppState>,
    Path(id): Path<String>,
    _operator: Authorized<OperatorRole>,
    bytes: axum::body::Bytes,
) -> Response {
    let result = (|| {
        let patch: PatchBody = body(&bytes)?;
        if patch.text.as_ref().is_some_and(|text| text.chars().count() > MAX_LAYER_TEXT) {
            // Laid out on the render thread: a megabyte of text would stall frames.
            return Err(Failure::bad_field(
                "text",
                format!("a layer's text is at most {MAX_LAYER_TEXT} characters"),
            ));
        }
        if patch.opacity.is_some_and(|opacity| !(0.0..=1.0).contains(&opacity)) {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "opacity is between 0 and 1",
            ));
        }
        if !view(&shared).layers.iter().any(|layer| layer.id == id) {
            return Err(Failure::new(
                StatusCode::NOT_FOUND,
                codes::NOT_FOUND,
                format!("layer {id:?} not found in the scene on air"),
            ));
        }
        let patch = Patch {
            visible: patch.visible,
            text: patch.text,
            position: patch.position,
            opacity: patch.opacity,
            z: patch.z,
        };
        send(&shared, Command::Patch(id.clone(), patch))?;
        Ok(serde_json::json!({ "id": id }))
    })();
    result.map_or_else(IntoResponse::into_response, ok)
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PlaybackBody {
    action: String,
    outputs: Option<Vec<String>>,
}

/// `POST /api/stream/playback`: stop, start or restart outputs while rendering goes
/// on. `outputs` picks outputs by URL (as given or masked); for `start`, a URL that is
/// not an output yet is added. Without it, every output.
async fn playback(
    State(shared): State<AppState>,
    _operator: Authorized<OperatorRole>,
    bytes: axum::body::Bytes,
) -> Response {
    let checked = (|| {
        let PlaybackBody { action, outputs } = body(&bytes)?;
        if !matches!(action.as_str(), "start" | "stop" | "restart") {
            return Err(Failure::new(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                "action is start, stop or restart",
            ));
        }
        let parsed = outputs
            .iter()
            .flatten()
            .map(|url| crate::output::Output::parse(url).map(|output| (url.clone(), output)))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|message| Failure::new(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, message))?;
        let handle = shared.outputs.get().cloned().ok_or_else(|| {
            Failure::new(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, "the pipeline is not running")
        })?;
        Ok((action, outputs.is_some(), parsed, handle))
    })();
    let (action, picked, parsed, handle) = match checked {
        Ok(checked) => checked,
        Err(fail) => return fail.into_response(),
    };
    let recordings = shared.recordings.clone();
    let done = tokio::task::spawn_blocking(move || -> Result<Vec<serde_json::Value>, Failure> {
        let mut branches = handle
            .lock()
            .map_err(|_| Failure::new(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "the outputs are unavailable"))?;
        let chosen = |branch: &crate::output_pipeline::OutputPipeline| !picked || parsed.iter().any(|(url, _)| branch.is(url));
        if action != "start" {
            for branch in branches.iter_mut().filter(|branch| chosen(branch)) {
                if branch.report().state != crate::output_pipeline::OutputState::Stopped {
                    let _ = branch.stop();
                }
            }
        }
        if action != "stop" {
            for branch in branches.iter_mut().filter(|branch| chosen(branch)) {
                branch.resume();
            }
            for (url, output) in &parsed {
                if !branches.iter().any(|branch| branch.is(url)) {
                    let output = confined(output, &recordings)?;
                    info!("output {} added by the operator", output.masked());
                    branches.push(crate::output_pipeline::OutputPipeline::new(output));
                }
            }
        }
        Ok(branches
            .iter()
            .map(|branch| {
                let report = branch.report();
                serde_json::json!({ "url": report.url, "state": report.state.as_str(), "reconnects": report.reconnects })
            })
            .collect())
    })
    .await;
    match done {
        Ok(Ok(outputs)) => ok(serde_json::json!({ "outputs": outputs })),
        Ok(Err(fail)) => fail.into_response(),
        Err(_) => fail(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "the playback change failed"),
    }
}

/// A new output asked for through the API: RTMP as it is; a file only as a bare file
/// name, written in the recordings folder, so no request can write anywhere else.
fn confined(
    output: &crate::output::Output,
    recordings: &std::path::Path,
) -> Result<crate::output::Output, Failure> {
    use crate::output::Output;
    match output {
        Output::Rtmp(_) => Ok(output.clone()),
        Output::File { path, container } => {
            let name = std::path::Path::new(path);
            let bare = name.components().count() == 1
                && matches!(name.components().next(), Some(std::path::Component::Normal(_)));
            if !bare {
                return Err(Failure::bad_field(
                    "outputs",
                    format!(
                        "{path:?}: a recording started through the API is a file name such as show-2.mkv, written in the recordings folder"
                    ),
                ));
            }
            std::fs::create_dir_all(recordings)
                .map_err(|error| Failure::internal(format!("creating {}: {error}", recordings.display())))?;
            Ok(Output::File { path: recordings.join(name).display().to_string(), container: *container })
        }
    }
}

/// Longest text a layer patch may set, in characters.
const MAX_LAYER_TEXT: usize = 2_000;

/// Largest asset an upload may carry.
const MAX_UPLOAD: usize = 10 * 1024 * 1024;

/// What an uploaded file may be, told by its extension and checked by its first bytes.
fn asset_kind(extension: &str, head: &[u8]) -> Option<(&'static str, &'static str)> {
    let (kind, folder, ok) = match extension {
        "png" => ("image", "uploads", head.starts_with(b"\x89PNG\r\n\x1a\n")),
        "jpg" | "jpeg" => ("image", "uploads", head.starts_with(&[0xFF, 0xD8, 0xFF])),
        "ttf" | "otf" => (
            "font",
            "fonts",
            head.starts_with(&[0, 1, 0, 0]) || head.starts_with(b"OTTO") || head.starts_with(b"true"),
        ),
        "wav" => ("sound", "sounds", head.starts_with(b"RIFF") && head.get(8..12) == Some(b"WAVE")),
        _ => return None,
    };
    ok.then_some((kind, folder))
}

/// A file name that is safe anywhere: lower case letters, digits, `-`, `_`, one `.`.
fn safe_name(name: &str) -> Option<(String, String)> {
    let base = name.rsplit(['/', '\\']).next()?.to_ascii_lowercase();
    let (stem, extension) = base.rsplit_once('.')?;
    let clean: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' })
        .collect();
    let clean = clean.trim_matches('-').to_owned();
    if clean.is_empty() || clean.len() > 100 || extension.is_empty() {
        return None;
    }
    Some((clean, extension.to_owned()))
}

/// `POST /api/stream/assets/upload`: one multipart file field; images (PNG, JPEG) go
/// to `assets/uploads/`, fonts (TTF, OTF) to `assets/fonts/`, sounds (WAV) to
/// `assets/sounds/`, under a cleaned name. Anything else, or a file whose content is
/// not what its name says, is refused.
async fn upload(
    State(shared): State<AppState>,
    _operator: Authorized<OperatorRole>,
    multipart: Result<axum::extract::Multipart, axum::extract::multipart::MultipartRejection>,
) -> Response {
    let Ok(mut multipart) = multipart else {
        return fail(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "the body is not multipart/form-data");
    };
    let field = match multipart.next_field().await {
        Ok(Some(field)) => field,
        Ok(None) => return fail(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "no file in the upload"),
        Err(error) => {
            let status = if error.status() == StatusCode::PAYLOAD_TOO_LARGE {
                StatusCode::PAYLOAD_TOO_LARGE
            } else {
                StatusCode::BAD_REQUEST
            };
            return fail(status, codes::BAD_REQUEST, format!("unreadable upload: {error}"));
        }
    };
    let Some((stem, extension)) = field.file_name().and_then(safe_name) else {
        return fail(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "the file needs a name such as lot-7.png");
    };
    let bytes = match field.bytes().await {
        Ok(bytes) if bytes.len() <= MAX_UPLOAD => bytes,
        Ok(_) => {
            return fail(
                StatusCode::PAYLOAD_TOO_LARGE,
                codes::PAYLOAD_TOO_LARGE,
                "assets are at most 10 MiB",
            );
        }
        Err(error) => {
            let too_large = error.status() == StatusCode::PAYLOAD_TOO_LARGE;
            return if too_large {
                fail(StatusCode::PAYLOAD_TOO_LARGE, codes::PAYLOAD_TOO_LARGE, "assets are at most 10 MiB")
            } else {
                fail(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, format!("unreadable upload: {error}"))
            };
        }
    };
    let Some((kind, folder)) = asset_kind(&extension, &bytes) else {
        return fail(
            StatusCode::BAD_REQUEST,
            codes::BAD_REQUEST,
            format!(
                "{stem}.{extension}: only PNG or JPEG images, TTF or OTF fonts and WAV sounds, with matching content"
            ),
        );
    };
    let relative = format!("{folder}/{stem}.{extension}");
    let target = shared.assets.join(&relative);
    let written = tokio::task::spawn_blocking(move || -> std::io::Result<()> {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        // Written beside, then renamed: a reader never sees half a file.
        let partial = target.with_extension(format!("{extension}.part"));
        std::fs::write(&partial, &bytes)?;
        std::fs::rename(&partial, &target)
    })
    .await;
    match written {
        Ok(Ok(())) => {
            info!("asset {relative} uploaded");
            created(serde_json::json!({ "path": relative, "kind": kind }))
        }
        _ => fail(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "the asset could not be stored"),
    }
}

#[derive(Debug, Deserialize)]
struct FrameQuery {
    format: Option<String>,
    width: Option<u32>,
}

async fn frame(
    State(shared): State<AppState>,
    query: Result<Query<FrameQuery>, axum::extract::rejection::QueryRejection>,
) -> Response {
    let Ok(Query(query)) = query else {
        return fail(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "format is png or jpeg; width is a number");
    };
    let jpeg = match query.format.as_deref() {
        None | Some("png") => false,
        Some("jpeg" | "jpg") => true,
        Some(other) => {
            return fail(
                StatusCode::BAD_REQUEST,
                codes::BAD_REQUEST,
                format!("format {other:?}: png or jpeg"),
            );
        }
    };
    if query.width == Some(0) {
        return fail(StatusCode::BAD_REQUEST, codes::BAD_REQUEST, "width must be positive");
    }
    let Some(latest) = shared.frame.lock().ok().and_then(|frame| frame.clone()) else {
        return fail(StatusCode::SERVICE_UNAVAILABLE, codes::UNAVAILABLE, "no frame rendered yet");
    };
    let number = latest.number;
    match shared.frames.get(latest, FrameFormat { jpeg, width: query.width }).await {
        Some(bytes) => (
            [
                (header::CONTENT_TYPE, if jpeg { "image/jpeg" } else { "image/png" }.to_owned()),
                (header::CACHE_CONTROL, "no-store".to_owned()),
                (header::HeaderName::from_static("x-frame-number"), number.to_string()),
            ],
            bytes.to_vec(),
        )
            .into_response(),
        None => fail(StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL, "the frame could not be encoded"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn upload_names_are_cleaned_and_cannot_leave_the_folder() {
        assert_eq!(safe_name("Lot 7 (final).PNG"), Some(("lot-7--final".into(), "png".into())));
        assert_eq!(safe_name("../../etc/passwd.png"), Some(("passwd".into(), "png".into())));
        assert_eq!(safe_name("..\\..\\x.ttf"), Some(("x".into(), "ttf".into())));
        assert_eq!(safe_name(".png"), None);
        assert_eq!(safe_name("noextension"), None);
    }

    #[test]
    fn uploads_must_be_what_their_name_says() {
        assert_eq!(asset_kind("png", b"\x89PNG\r\n\x1a\n...."), Some(("image", "uploads")));
        assert_eq!(asset_kind("png", b"GIF89a"), None, "a GIF named .png");
        assert_eq!(asset_kind("wav", b"RIFF\0\0\0\0WAVEfmt "), Some(("sound", "sounds")));
        assert_eq!(asset_kind("ttf", &[0, 1, 0, 0, 0]), Some(("font", "fonts")));
        assert_eq!(asset_kind("exe", b"MZ"), None);
        assert_eq!(asset_kind("svg", b"<svg"), None);
    }
}
