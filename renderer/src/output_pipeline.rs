//! One output as its own small pipeline (`appsrc` video + audio → muxer → sink), fed
//! with the shared encode's H.264 and AAC buffers. An output that fails is torn down
//! and, for RTMP(S), started again with backoff (1 s doubling to 30 s) while the
//! others and the render loop go on. A restarted output begins at a keyframe.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use bevy::log::{info, warn};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::output::{Container, Output};

/// Which encoded stream a buffer belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Video,
    Audio,
}

/// Where an output stands (`state` in `GET /api/stream/status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OutputState {
    /// Taking the stream.
    Live,
    /// Lost (or not reached yet): trying again after a backoff.
    Reconnecting,
    /// Given up on (a file that cannot be written); the others go on.
    Error,
    /// Stopped by the operator or at the end of the show.
    Stopped,
}

impl OutputState {
    pub fn as_str(self) -> &'static str {
        match self {
            OutputState::Live => "live",
            OutputState::Reconnecting => "reconnecting",
            OutputState::Error => "error",
            OutputState::Stopped => "stopped",
        }
    }
}

/// What an output reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The URL or path, key masked.
    pub url: String,
    pub state: OutputState,
    pub reconnects: u64,
    /// Encoded bytes handed to this output so far.
    pub bytes: u64,
    pub error: Option<String>,
}

/// The first and longest wait before reconnecting.
pub const BACKOFF_START: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Connected this long, an output's backoff starts over.
const STABLE: Duration = Duration::from_secs(30);

/// The wait after `failures` failures in a row: 1, 2, 4 … 30 s.
pub fn backoff(failures: u32) -> Duration {
    BACKOFF_START.saturating_mul(1u32 << failures.saturating_sub(1).min(5)).min(BACKOFF_MAX)
}

struct Running {
    pipeline: gst::Pipeline,
    video: gst_app::AppSrc,
    audio: gst_app::AppSrc,
    started: Instant,
    keyframe_seen: bool,
}

/// One output and its pipeline, if running.
pub struct OutputPipeline {
    output: Output,
    masked: String,
    running: Option<Running>,
    caps: [Option<gst::Caps>; 2],
    failures: u32,
    retry_at: Option<Instant>,
    report: Report,
    /// A recording keeps every buffer; a stream drops when its connection stalls.
    keep_everything: bool,
    /// Buffers that came before the output could start (the other track's caps not
    /// known yet), so the first keyframe is not lost.
    pending: Vec<(Track, gst::Buffer)>,
    /// Stopped by the operator (`POST /api/stream/playback`).
    stopped: bool,
    /// How many times a stopped file output was started again (each time a new file).
    restarts: u32,
}

impl std::fmt::Debug for OutputPipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OutputPipeline").field("output", &self.masked).field("report", &self.report).finish()
    }
}

impl OutputPipeline {
    pub fn new(output: Output) -> OutputPipeline {
        let masked = output.masked();
        let keep_everything = matches!(output, Output::File { .. });
        OutputPipeline {
            report: Report {
                url: masked.clone(),
                state: OutputState::Reconnecting,
                reconnects: 0,
                bytes: 0,
                error: None,
            },
            output,
            masked,
            running: None,
            caps: [None, None],
            failures: 0,
            retry_at: None,
            keep_everything,
            pending: Vec::new(),
            stopped: false,
            restarts: 0,
        }
    }

    pub fn report(&self) -> &Report {
        &self.report
    }

    /// Whether `url` names this output (as given, or masked as reported).
    pub fn is(&self, url: &str) -> bool {
        self.masked == url
            || matches!(&self.output, Output::Rtmp(own) | Output::File { path: own, .. } if own == url)
    }

    /// Stops the output for good (until [`OutputPipeline::resume`]), finalising it.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        let result = self.finish(Duration::from_secs(15));
        self.stopped = true;
        self.pending.clear();
        self.report.state = OutputState::Stopped;
        info!("output {} stopped by the operator", self.masked);
        result
    }

    /// Starts a stopped output again at the next keyframe; a file output starts a
    /// new file (`show-1.mkv`, `show-2.mkv`, …) rather than overwrite the last one.
    pub fn resume(&mut self) {
        if !self.stopped && self.report.state != OutputState::Error {
            return;
        }
        if let Output::File { path, .. } = &mut self.output {
            self.restarts += 1;
            let (stem, extension) =
                path.rsplit_once('.').map_or((path.as_str(), ""), |(stem, ext)| (stem, ext));
            let base = stem
                .rsplit_once('-')
                .filter(|(_, n)| n.parse::<u32>().is_ok())
                .map_or(stem, |(base, _)| base);
            *path = format!("{base}-{}.{extension}", self.restarts);
            self.masked = self.output.masked();
            self.report.url = self.masked.clone();
        }
        self.stopped = false;
        self.retry_at = None;
        self.failures = 0;
        self.report.state = OutputState::Reconnecting;
        self.report.error = None;
        info!("output {} started by the operator", self.masked);
    }

    fn description(&self) -> String {
        let (mux, sink) = match &self.output {
            Output::Rtmp(url) => (
                "flvmux streamable=true".to_owned(),
                format!("rtmp2sink async-connect=false location=\"{}\"", url.replace('"', "\\\"")),
            ),
            Output::File { path, container } => {
                let mux = match container {
                    Container::Mp4 => "mp4mux",
                    Container::Mkv => "matroskamux",
                    Container::Flv => "flvmux",
                };
                (mux.to_owned(), format!("filesink location=\"{}\"", path.replace('"', "\\\"")))
            }
        };
        format!(
            "appsrc name=video format=time ! queue ! video/x-h264 ! {mux} name=mux ! {sink} \
             appsrc name=audio format=time ! queue ! audio/mpeg ! mux."
        )
    }

    fn start(&mut self) -> anyhow::Result<()> {
        let [Some(video_caps), Some(audio_caps)] = self.caps.clone() else {
            anyhow::bail!("no caps yet");
        };
        let pipeline = gst::parse::launch(&self.description())
            .context("building the output pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("not a pipeline"))?;
        let appsrc = |name: &str, caps: &gst::Caps| -> anyhow::Result<gst_app::AppSrc> {
            let source = pipeline
                .by_name(name)
                .and_then(|element| element.dynamic_cast::<gst_app::AppSrc>().ok())
                .with_context(|| format!("no appsrc {name}"))?;
            source.set_caps(Some(caps));
            source.set_max_bytes(64 * 1024 * 1024);
            if self.keep_everything {
                source.set_block(true);
            } else {
                source.set_block(false);
                source.set_leaky_type(gst_app::AppLeakyType::Downstream);
            }
            Ok(source)
        };
        let video = appsrc("video", &video_caps)?;
        let audio = appsrc("audio", &audio_caps)?;
        if let Err(error) = pipeline.set_state(gst::State::Playing) {
            let _ = pipeline.set_state(gst::State::Null);
            anyhow::bail!("{error}");
        }
        self.running =
            Some(Running { pipeline, video, audio, started: Instant::now(), keyframe_seen: false });
        self.report.state = OutputState::Live;
        self.report.error = None;
        info!("output {} started", self.masked);
        Ok(())
    }

    /// Tears the pipeline down after a failure and schedules the next attempt (for
    /// streams; a file that fails stays failed).
    fn fail(&mut self, why: String) {
        if let Some(running) = self.running.take() {
            let _ = running.pipeline.set_state(gst::State::Null);
            if running.started.elapsed() > STABLE {
                self.failures = 0;
            }
        }
        self.report.error = Some(why.clone());
        if self.keep_everything {
            self.report.state = OutputState::Error;
            warn!("output {} failed: {why}", self.masked);
            return;
        }
        self.failures += 1;
        let wait = backoff(self.failures);
        self.retry_at = Some(Instant::now() + wait);
        self.report.state = OutputState::Reconnecting;
        warn!("output {} failed: {why}; reconnecting in {} s", self.masked, wait.as_secs());
    }

    /// Errors the output's pipeline reported since the last look.
    fn check(&mut self) {
        let Some(running) = &self.running else { return };
        let Some(bus) = running.pipeline.bus() else { return };
        while let Some(message) = bus.pop_filtered(&[gst::MessageType::Error]) {
            if let gst::MessageView::Error(error) = message.view() {
                self.fail(error.error().to_string());
                return;
            }
        }
    }

    /// The format of a track's buffers, before any is pushed.
    pub fn set_caps(&mut self, track: Track, caps: gst::Caps) {
        self.caps[track as usize] = Some(caps);
    }

    /// Hands one encoded buffer to the output, starting or restarting it when due.
    pub fn push(&mut self, track: Track, buffer: &gst::Buffer, caps: Option<&gst::Caps>) {
        let index = track as usize;
        if let Some(caps) = caps
            && self.caps[index].as_ref() != Some(caps)
        {
            self.caps[index] = Some(caps.clone());
        }
        if self.stopped {
            return;
        }
        self.check();
        if self.running.is_none() && self.report.state != OutputState::Error {
            let first = self.retry_at.is_none();
            if first && !self.caps.iter().all(Option::is_some) {
                if self.pending.len() < 1000 {
                    self.pending.push((track, buffer.clone()));
                }
                return;
            }
            let due = self.retry_at.is_none_or(|at| Instant::now() >= at);
            if due && self.caps.iter().all(Option::is_some) {
                if let Err(error) = self.start() {
                    self.fail(format!("{error:#}"));
                    return;
                }
                if !first {
                    self.report.reconnects += 1;
                    metrics::counter!("stream_output_reconnects_total", "output" => self.masked.clone())
                        .increment(1);
                }
                for (track, buffer) in std::mem::take(&mut self.pending) {
                    self.forward(track, &buffer);
                }
            }
        }
        self.forward(track, buffer);
    }

    /// Hands a buffer to the running pipeline.
    fn forward(&mut self, track: Track, buffer: &gst::Buffer) {
        let Some(running) = &mut self.running else { return };
        // A (re)started output begins with a keyframe, the audio with it.
        if !running.keyframe_seen {
            if track == Track::Video && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT) {
                running.keyframe_seen = true;
            } else {
                return;
            }
        }
        let source = match track {
            Track::Video => &running.video,
            Track::Audio => &running.audio,
        };
        let size = buffer.size() as u64;
        if let Err(error) = source.push_buffer(buffer.clone()) {
            self.fail(format!("pushing: {error:?}"));
            return;
        }
        self.report.bytes += size;
        metrics::counter!("stream_output_bytes_total", "output" => self.masked.clone()).increment(size);
    }

    /// Ends the output's streams and waits (up to `timeout`) until it is finalised.
    pub fn finish(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let Some(running) = self.running.take() else {
            return match (&self.report.error, self.keep_everything) {
                (Some(error), true) => Err(anyhow::anyhow!("output {}: {error}", self.masked)),
                _ => Ok(()),
            };
        };
        let _ = running.video.end_of_stream();
        let _ = running.audio.end_of_stream();
        let result = match running.pipeline.bus().and_then(|bus| {
            bus.timed_pop_filtered(
                gst::ClockTime::from_nseconds(timeout.as_nanos() as u64),
                &[gst::MessageType::Eos, gst::MessageType::Error],
            )
        }) {
            Some(message) => match message.view() {
                gst::MessageView::Error(error) => {
                    Err(anyhow::anyhow!("output {}: {}", self.masked, error.error()))
                }
                _ => Ok(()),
            },
            None => {
                Err(anyhow::anyhow!("output {} did not finish within {} s", self.masked, timeout.as_secs()))
            }
        };
        let _ = running.pipeline.set_state(gst::State::Null);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_from_one_second_to_thirty() {
        let waits: Vec<u64> = (1..=8).map(|failures| backoff(failures).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 30, 30, 30]);
    }
}
