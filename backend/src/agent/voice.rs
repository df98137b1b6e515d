//! The host's voice: stream lines synthesised to mono WAV by one of the providers of
//! `agent.md` (piper, an OpenAI-compatible speech server, espeak-ng), each with a
//! deadline, falling back down that list; kept for a bounded time and size and served
//! at `GET /api/agent/speech/{id}.wav`.
//!
//! Piper runs as one long-lived Python process (`piper_voice.py`, the model loaded
//! once) from the virtual environment the scripts create; espeak-ng is a process per
//! line (it starts in milliseconds); nothing is downloaded at run time.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use bytes::Bytes;
use secrecy::ExposeSecret as _;
use serde_json::json;
use sothebais_shared::events::Speech;
use sothebais_shared::wav::{self, Mono};
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use uuid::Uuid;

use super::character::VoiceSettings;
use crate::config::{TtsChoice, VoiceConfig};

/// How long a spoken line's audio is kept, and the most kept at once.
pub const KEEP: Duration = Duration::from_secs(600);
pub const KEEP_BYTES: usize = 64 * 1024 * 1024;
/// The script piper runs in, written into the data folder at start.
const PIPER_SCRIPT: &str = include_str!("piper_voice.py");

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoiceError {
    #[error("{0} is not installed")]
    Missing(String),
    #[error("no audio within {0} ms")]
    Timeout(u128),
    #[error("{0}")]
    Failed(String),
    #[error("not audio: {0}")]
    Audio(String),
}

/// One way to turn text into speech.
#[async_trait]
pub trait Synthesizer: Send + Sync + std::fmt::Debug {
    fn name(&self) -> &'static str;
    async fn synthesize(&self, text: &str, settings: &VoiceSettings) -> Result<Mono, VoiceError>;
}

fn audio(bytes: &[u8]) -> Result<Mono, VoiceError> {
    let audio = wav::read(bytes).map_err(|error| VoiceError::Audio(error.to_string()))?;
    if audio.samples.is_empty() {
        return Err(VoiceError::Audio("no samples".into()));
    }
    Ok(audio)
}

/// espeak-ng: robotic, always there (Debian `espeak-ng`), a process per line.
#[derive(Debug)]
pub struct Espeak {
    pub binary: PathBuf,
}

#[async_trait]
impl Synthesizer for Espeak {
    fn name(&self) -> &'static str {
        "espeak"
    }

    async fn synthesize(&self, text: &str, settings: &VoiceSettings) -> Result<Mono, VoiceError> {
        let words_per_minute = (175.0 * settings.rate.unwrap_or(1.0)).clamp(80.0, 450.0) as u32;
        let pitch = (50.0 + 50.0 * settings.pitch.unwrap_or(0.0)).clamp(0.0, 99.0) as u32;
        let voice = settings.voice.as_deref().filter(|voice| !voice.contains("-medium")).unwrap_or("en-us");
        let output = tokio::process::Command::new(&self.binary)
            .args([
                "--stdout",
                "-v",
                voice,
                "-s",
                &words_per_minute.to_string(),
                "-p",
                &pitch.to_string(),
                "--",
            ])
            .arg(text)
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output()
            .await
            .map_err(|error| VoiceError::Failed(format!("espeak-ng: {error}")))?;
        if !output.status.success() {
            return Err(VoiceError::Failed(format!(
                "espeak-ng exited {}: {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        audio(&output.stdout)
    }
}

/// Any server with OpenAI's `POST /v1/audio/speech`.
#[derive(Debug)]
pub struct OpenAiSpeech {
    pub http: reqwest::Client,
    pub config: VoiceConfig,
}

#[async_trait]
impl Synthesizer for OpenAiSpeech {
    fn name(&self) -> &'static str {
        "openai"
    }

    async fn synthesize(&self, text: &str, settings: &VoiceSettings) -> Result<Mono, VoiceError> {
        let Some(base) = &self.config.base_url else {
            return Err(VoiceError::Missing("TTS_BASE_URL".into()));
        };
        let voice = settings.voice.clone().unwrap_or_else(|| self.config.voice.clone());
        let body = json!({
            "model": self.config.model,
            "voice": voice,
            "input": text,
            "response_format": "wav",
            "speed": settings.rate.unwrap_or(1.0),
        });
        let mut request = self.http.post(format!("{base}/audio/speech")).json(&body);
        if let Some(key) = &self.config.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let response =
            request.send().await.map_err(|error| VoiceError::Failed(error.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(VoiceError::Failed(format!("the speech server answered HTTP {}", response.status())));
        }
        let bytes =
            response.bytes().await.map_err(|error| VoiceError::Failed(error.without_url().to_string()))?;
        audio(&bytes)
    }
}

#[derive(Debug)]
struct PiperProcess {
    child: tokio::process::Child,
    stdin: tokio::process::ChildStdin,
    stdout: tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
}

/// Piper in one long-lived process: the model is loaded once, lines go one at a time.
#[derive(Debug)]
pub struct Piper {
    pub python: PathBuf,
    pub model: Option<PathBuf>,
    pub script: PathBuf,
    process: tokio::sync::Mutex<Option<PiperProcess>>,
}

impl Piper {
    pub fn new(python: PathBuf, model: Option<PathBuf>, data_dir: &std::path::Path) -> Piper {
        Piper {
            python,
            model,
            script: data_dir.join("piper_voice.py"),
            process: tokio::sync::Mutex::new(None),
        }
    }

    async fn start(&self) -> Result<PiperProcess, VoiceError> {
        if !self.python.exists() {
            return Err(VoiceError::Missing(format!("piper ({} not found)", self.python.display())));
        }
        if let Some(parent) = self.script.parent() {
            tokio::fs::create_dir_all(parent).await.map_err(|error| VoiceError::Failed(error.to_string()))?;
        }
        tokio::fs::write(&self.script, PIPER_SCRIPT)
            .await
            .map_err(|error| VoiceError::Failed(error.to_string()))?;
        let mut command = tokio::process::Command::new(&self.python);
        command.arg(&self.script);
        if let Some(model) = &self.model {
            command.arg(model);
        }
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .map_err(|error| VoiceError::Failed(format!("piper: {error}")))?;
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return Err(VoiceError::Failed("piper: no pipes".into()));
        };
        let mut stdout = BufReader::new(stdout).lines();
        // Loading the model takes a second or two; a broken install says so here.
        let ready = tokio::time::timeout(Duration::from_secs(60), stdout.next_line()).await;
        match ready {
            Ok(Ok(Some(line))) if line.contains("\"ready\"") => {
                tracing::info!(python = %self.python.display(), "piper voice loaded");
                Ok(PiperProcess { child, stdin, stdout })
            }
            Ok(Ok(_)) => Err(VoiceError::Missing(
                "piper (the voice did not load: is piper-tts with a voice installed?)".into(),
            )),
            Ok(Err(error)) => Err(VoiceError::Failed(format!("piper: {error}"))),
            Err(_) => Err(VoiceError::Failed("piper did not load its model within 60 s".into())),
        }
    }

    /// The process id of the running voice, if it runs.
    pub async fn pid(&self) -> Option<u32> {
        self.process.lock().await.as_ref().and_then(|process| process.child.id())
    }

    /// Starts the process now, so the first line does not wait for the model.
    pub async fn warm(&self) -> Result<(), VoiceError> {
        let mut process = self.process.lock().await;
        if process.is_none() {
            *process = Some(self.start().await?);
        }
        Ok(())
    }
}

#[async_trait]
impl Synthesizer for Piper {
    fn name(&self) -> &'static str {
        "piper"
    }

    async fn synthesize(&self, text: &str, settings: &VoiceSettings) -> Result<Mono, VoiceError> {
        let mut guard = self.process.lock().await;
        if guard.is_none() {
            *guard = Some(self.start().await?);
        }
        let Some(process) = guard.as_mut() else {
            return Err(VoiceError::Failed("piper: not started".into()));
        };
        let id = Uuid::now_v7().to_string();
        // Piper's length scale is the inverse of a speaking rate.
        let length_scale = settings.rate.filter(|rate| *rate > 0.1).map(|rate| 1.0 / rate);
        let request = json!({ "id": id, "text": text, "length_scale": length_scale }).to_string() + "\n";
        let answer = async {
            process.stdin.write_all(request.as_bytes()).await?;
            process.stdin.flush().await?;
            loop {
                match process.stdout.next_line().await? {
                    Some(line) if line.contains(&id) => return Ok(Some(line)),
                    Some(_) => continue,
                    None => return Ok(None),
                }
            }
        };
        let line: std::io::Result<Option<String>> = answer.await;
        let line = match line {
            Ok(Some(line)) => line,
            Ok(None) | Err(_) => {
                // The process died: started again for the next line.
                if let Some(mut dead) = guard.take() {
                    let _ = dead.child.start_kill();
                }
                return Err(VoiceError::Failed("piper stopped".into()));
            }
        };
        let value: serde_json::Value =
            serde_json::from_str(&line).map_err(|error| VoiceError::Failed(format!("piper: {error}")))?;
        if let Some(error) = value["error"].as_str() {
            return Err(VoiceError::Failed(format!("piper: {error}")));
        }
        let encoded = value["wav"].as_str().ok_or_else(|| VoiceError::Failed("piper: no audio".into()))?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|error| VoiceError::Failed(format!("piper: {error}")))?;
        audio(&bytes)
    }
}

/// Kept audio by id, ids oldest first, and the bytes kept.
type Kept = (HashMap<String, (Bytes, Instant)>, VecDeque<String>, usize);

/// Spoken lines' audio, by id, for a bounded time and size.
#[derive(Debug, Default)]
pub struct SpeechStore {
    inner: Mutex<Kept>,
}

impl SpeechStore {
    pub fn put(&self, id: &str, wav: Bytes) {
        let mut inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let (map, order, bytes) = &mut *inner;
        *bytes += wav.len();
        map.insert(id.to_owned(), (wav, Instant::now()));
        order.push_back(id.to_owned());
        while let Some(oldest) = order.front().cloned() {
            let expired = map.get(&oldest).is_none_or(|(_, at)| at.elapsed() > KEEP);
            if !(expired || *bytes > KEEP_BYTES) || order.len() == 1 {
                break;
            }
            order.pop_front();
            if let Some((wav, _)) = map.remove(&oldest) {
                *bytes -= wav.len();
            }
        }
    }

    pub fn get(&self, id: &str) -> Option<Bytes> {
        let inner = self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        inner.0.get(id).filter(|(_, at)| at.elapsed() <= KEEP).map(|(wav, _)| wav.clone())
    }
}

/// The voice: the providers in fallback order and the store.
#[derive(Debug)]
pub struct Voice {
    pub chain: Vec<Arc<dyn Synthesizer>>,
    pub timeout: Duration,
    pub store: SpeechStore,
}

/// What a spoken line gave.
#[derive(Debug, Clone)]
pub struct Spoken {
    pub speech: Speech,
    pub provider: &'static str,
    pub audio: Mono,
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| PathBuf::from(dir).join(name))
        .find(|path| path.is_file())
}

impl Voice {
    /// The providers of the configuration, in `agent.md`'s order from the chosen one:
    /// piper, openai, espeak (`none`: no voice). `auto` starts with piper where it is
    /// installed. Providers that are not installed or not configured are left out.
    pub fn from_config(
        config: &VoiceConfig,
        http: reqwest::Client,
        data_dir: &std::path::Path,
    ) -> Option<Voice> {
        let order: &[&str] = match config.provider {
            TtsChoice::None => return None,
            TtsChoice::Auto | TtsChoice::Piper => &["piper", "openai", "espeak"],
            TtsChoice::OpenAi => &["openai", "espeak"],
            TtsChoice::Espeak => &["espeak"],
        };
        let mut chain: Vec<Arc<dyn Synthesizer>> = Vec::new();
        for name in order {
            match *name {
                "piper" if config.piper_python.exists() => chain.push(Arc::new(Piper::new(
                    config.piper_python.clone(),
                    config.piper_model.clone(),
                    data_dir,
                ))),
                "openai" if config.base_url.is_some() => {
                    chain.push(Arc::new(OpenAiSpeech { http: http.clone(), config: config.clone() }));
                }
                "espeak" => {
                    if let Some(binary) = on_path("espeak-ng") {
                        chain.push(Arc::new(Espeak { binary }));
                    }
                }
                _ => {}
            }
        }
        if chain.is_empty() {
            tracing::warn!(wanted = ?config.provider, "no speech provider is installed: captions only (install espeak-ng, or piper with scripts/run)");
            return None;
        }
        let names: Vec<&str> = chain.iter().map(|synthesizer| synthesizer.name()).collect();
        tracing::info!(providers = %names.join(" > "), "host voice");
        Some(Voice { chain, timeout: config.timeout, store: SpeechStore::default() })
    }

    pub fn providers(&self) -> Vec<&'static str> {
        self.chain.iter().map(|synthesizer| synthesizer.name()).collect()
    }

    /// Loads piper's model now, if piper is in the chain.
    pub async fn warm(&self) {
        for synthesizer in &self.chain {
            if synthesizer.name() == "piper" {
                let started = Instant::now();
                let result = synthesizer.synthesize("Hello.", &VoiceSettings::default()).await;
                match result {
                    Ok(_) => tracing::info!(millis = started.elapsed().as_millis() as u64, "piper warmed up"),
                    Err(error) => tracing::warn!(%error, "piper did not start; the next provider speaks"),
                }
            }
        }
    }

    /// Speaks a line: the character's provider first when it names one in the chain,
    /// then down the chain, each within the deadline. `None` when none could.
    pub async fn speak(&self, text: &str, settings: &VoiceSettings) -> Option<Spoken> {
        let mut order: Vec<&Arc<dyn Synthesizer>> = self.chain.iter().collect();
        if let Some(wanted) = settings.provider.as_deref()
            && let Some(at) = order.iter().position(|synthesizer| synthesizer.name() == wanted)
        {
            let first = order.remove(at);
            order.insert(0, first);
        }
        for (tried, synthesizer) in order.into_iter().enumerate() {
            let started = Instant::now();
            let result =
                match tokio::time::timeout(self.timeout, synthesizer.synthesize(text, settings)).await {
                    Ok(result) => result,
                    Err(_) => Err(VoiceError::Timeout(self.timeout.as_millis())),
                };
            let name = synthesizer.name();
            match result {
                Ok(audio) => {
                    metrics::counter!("agent_speech_lines_total", "provider" => name).increment(1);
                    metrics::histogram!("agent_speech_synthesis_seconds", "provider" => name)
                        .record(started.elapsed().as_secs_f64());
                    let id = Uuid::now_v7().simple().to_string();
                    let speech = Speech {
                        url: format!("/api/agent/speech/{id}.wav"),
                        duration_ms: audio.duration_ms(),
                        id: id.clone(),
                    };
                    self.store.put(&id, Bytes::from(wav::write(&audio)));
                    if tried > 0 {
                        tracing::info!(provider = name, "line spoken by a fallback voice");
                    }
                    return Some(Spoken { speech, provider: name, audio });
                }
                Err(error) => {
                    metrics::counter!("agent_speech_fallbacks_total", "provider" => name).increment(1);
                    tracing::warn!(provider = name, %error, "voice failed; trying the next");
                }
            }
        }
        None
    }
}
