//! The output pipeline: rendered frames into a GStreamer `appsrc`, encoded once
//! (H.264 + an AAC track) and written to the outputs.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bevy::log::info;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::output_pipeline::{OutputPipeline, Track};

/// Encoding settings of a preset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encoding {
    pub width: u32,
    pub height: u32,
    pub fps: u32,
    pub bitrate_kbps: u32,
    pub keyframe_secs: u32,
    pub audio_kbps: u32,
}

impl Encoding {
    /// `x`, `youtube`, `twitch` or `1080p60`, as `spec/stream.md` defines them.
    pub fn preset(name: &str) -> Option<Encoding> {
        let hd = Encoding {
            width: 1280,
            height: 720,
            fps: 30,
            bitrate_kbps: 4000,
            keyframe_secs: 3,
            audio_kbps: 128,
        };
        match name {
            "x" => Some(hd),
            "youtube" | "twitch" => Some(Encoding { keyframe_secs: 2, ..hd }),
            "1080p60" => Some(Encoding {
                width: 1920,
                height: 1080,
                fps: 60,
                bitrate_kbps: 6000,
                keyframe_secs: 2,
                ..hd
            }),
            _ => None,
        }
    }
}

/// An output the pipeline writes, told apart by its scheme or extension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    Rtmp(String),
    File { path: String, container: Container },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Container {
    Mp4,
    Mkv,
    Flv,
}

impl Output {
    pub fn parse(text: &str) -> Result<Output, String> {
        if text.starts_with("rtmp://") || text.starts_with("rtmps://") {
            return Ok(Output::Rtmp(text.to_owned()));
        }
        let container = match text.rsplit_once('.').map(|(_, extension)| extension.to_ascii_lowercase()) {
            Some(extension) if extension == "mp4" => Container::Mp4,
            Some(extension) if extension == "mkv" => Container::Mkv,
            Some(extension) if extension == "flv" => Container::Flv,
            _ => return Err(format!("{text:?} is neither an rtmp(s):// URL nor a .mp4, .mkv or .flv file")),
        };
        Ok(Output::File { path: text.to_owned(), container })
    }

    /// The URL or path with a stream key masked (the last path segment of an RTMP URL).
    pub fn masked(&self) -> String {
        match self {
            Output::Rtmp(url) => match url.rsplit_once('/') {
                Some((base, key)) if !key.is_empty() => format!("{base}/{}", "*".repeat(key.len().min(8))),
                _ => url.clone(),
            },
            Output::File { path, .. } => path.clone(),
        }
    }
}

/// Audio sample rate of the AAC track (X's recommended 44.1 kHz, stereo).
pub const AUDIO_RATE: u64 = 44_100;

/// The launch description of the encode: video and audio pushed by the renderer
/// (`appsrc` named `frames` and `sound`, stamped from the frame counter so they stay
/// in step), encoded once each and taken out at the `appsink`s `video` and `audio`,
/// from where every output (`branch.rs`) gets the same buffers.
pub fn launch_description(encoding: &Encoding, encoder: &str) -> String {
    let Encoding { width, height, fps, bitrate_kbps, keyframe_secs, audio_kbps } = *encoding;
    let encode = match encoder {
        "nvh264enc" => nvenc(bitrate_kbps, fps * keyframe_secs),
        _ => format!(
            "x264enc tune=zerolatency speed-preset=ultrafast pass=cbr bitrate={bitrate_kbps} key-int-max={}",
            fps * keyframe_secs
        ),
    };
    format!(
        "appsrc name=frames format=time caps=video/x-raw,format=I420,colorimetry=bt709,width={width},height={height},framerate={fps}/1 \
         ! queue max-size-buffers=8 leaky=no ! {encode} \
         ! video/x-h264,profile=main ! h264parse config-interval=-1 ! video/x-h264,stream-format=avc,alignment=au \
         ! appsink name=video sync=false \
         appsrc name=sound format=time caps=audio/x-raw,format=S16LE,layout=interleaved,rate={AUDIO_RATE},channels=2 \
         ! audioconvert ! voaacenc bitrate={} ! aacparse ! appsink name=audio sync=false",
        audio_kbps * 1000
    )
}

/// NVENC's encode for live streaming: constant bitrate, no B-frames, no look-ahead,
/// the low-latency preset.
fn nvenc(bitrate_kbps: u32, gop: u32) -> String {
    format!(
        "nvh264enc preset=low-latency-hq zerolatency=true bframes=0 rc-mode=cbr bitrate={bitrate_kbps} gop-size={gop}"
    )
}

/// The H.264 encoder to use (pure): `nvh264enc` when asked for, or for `auto` when an
/// NVENC session really opens (the element exists on GPUs without NVENC too, such as
/// Hopper's), else `x264enc`.
pub fn choose_encoder(
    wanted: &str,
    has_x264: bool,
    has_nvenc: bool,
    nvenc_opens: impl FnOnce() -> Result<(), String>,
) -> anyhow::Result<&'static str> {
    match wanted {
        "nvenc" if !has_nvenc => bail!(
            "STREAM_ENCODER=nvenc but the nvh264enc element is missing (gstreamer1.0-plugins-bad and an NVIDIA driver)"
        ),
        "nvenc" => match nvenc_opens() {
            Ok(()) => Ok("nvh264enc"),
            Err(why) => bail!("STREAM_ENCODER=nvenc but NVENC does not open: {why}"),
        },
        "auto" if has_nvenc => match nvenc_opens() {
            Ok(()) => Ok("nvh264enc"),
            Err(why) if has_x264 => {
                info!("NVENC does not open ({why}); encoding with x264");
                Ok("x264enc")
            }
            Err(why) => bail!(
                "no H.264 encoder: NVENC does not open ({why}) and x264enc is missing (gstreamer1.0-plugins-ugly)"
            ),
        },
        "x264" | "auto" if has_x264 => Ok("x264enc"),
        "x264" | "auto" => bail!("no H.264 encoder: install gstreamer1.0-plugins-ugly (x264enc)"),
        other => bail!("STREAM_ENCODER={other:?}: auto, nvenc or x264"),
    }
}

/// Opens an NVENC session for real: eight frames through `nvh264enc` with the
/// stream's settings, within five seconds.
fn nvenc_opens() -> Result<(), String> {
    let description = format!(
        "videotestsrc num-buffers=8 ! video/x-raw,format=I420,width=640,height=360,framerate=30/1 ! {} ! fakesink",
        nvenc(2000, 60)
    );
    let pipeline = gst::parse::launch(&description).map_err(|error| error.to_string())?;
    pipeline.set_state(gst::State::Playing).map_err(|error| format!("{error:?}"))?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let outcome = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(5),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(message) => match message.view() {
            gst::MessageView::Eos(_) => Ok(()),
            gst::MessageView::Error(error) => Err(error.error().to_string()),
            _ => Err("unexpected message".to_owned()),
        },
        None => Err("no frame encoded within 5 s".to_owned()),
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// The H.264 encoder for `STREAM_ENCODER` on this machine.
pub fn pick_encoder(wanted: &str) -> anyhow::Result<&'static str> {
    let has = |name: &str| gst::ElementFactory::find(name).is_some();
    choose_encoder(wanted, has("x264enc"), has("nvh264enc"), nvenc_opens)
}

/// The GStreamer elements the pipeline needs, with the Debian package of each.
const ELEMENTS: &[(&str, &str)] = &[
    ("appsrc", "gstreamer1.0-plugins-base"),
    ("audioconvert", "gstreamer1.0-plugins-base"),
    ("h264parse", "gstreamer1.0-plugins-bad"),
    ("voaacenc", "gstreamer1.0-plugins-bad"),
    ("aacparse", "gstreamer1.0-plugins-good"),
    ("mp4mux", "gstreamer1.0-plugins-good"),
    ("matroskamux", "gstreamer1.0-plugins-good"),
    ("flvmux", "gstreamer1.0-plugins-good"),
    ("appsink", "gstreamer1.0-plugins-base"),
    ("rtmp2sink", "gstreamer1.0-plugins-bad"),
];

/// Initialises GStreamer and names every missing element with its package.
pub fn check_system() -> anyhow::Result<()> {
    gst::init().context("GStreamer cannot start: install libgstreamer1.0-0 and gstreamer1.0-plugins-base")?;
    let missing: Vec<String> = ELEMENTS
        .iter()
        .filter(|(element, _)| gst::ElementFactory::find(element).is_none())
        .map(|(element, package)| format!("{element} (Debian package {package})"))
        .collect();
    if !missing.is_empty() {
        bail!("missing GStreamer elements: {}", missing.join(", "));
    }
    Ok(())
}

/// The audio samples `[first, end)` that go with video frame `slot` at `fps`:
/// consecutive, so the track never drifts from the video.
pub fn audio_span(slot: u64, fps: u32) -> (u64, u64) {
    let fps = u64::from(fps.max(1));
    (slot * AUDIO_RATE / fps, (slot + 1) * AUDIO_RATE / fps)
}

/// One frame's slot at `fps`: the render loop and the live output share this grid.
pub fn slot(fps: u32) -> Duration {
    Duration::from_nanos(1_000_000_000 / u64::from(fps.max(1)))
}

/// Keeps the output's slots in step with when frames arrive. A frame is taken in the
/// slot it arrives before (or up to half a slot after): the best place for the
/// frames is a quarter slot before their slot is due, where they may come three
/// quarters of a slot later or earlier than usual before a repeat or a skip. The
/// two grids tick at the same rate but start apart (the first frame is slower), so
/// the output's grid is moved towards that place by at most a millisecond a second,
/// and never more than one slot from where it started: the output clock stays true.
#[derive(Debug)]
struct Phase {
    slot: f64,
    sum: f64,
    count: u32,
    /// How far the grid has moved in all (seconds, later when positive).
    moved: f64,
}

impl Phase {
    /// The most the grid moves per adjustment.
    const STEP: f64 = 0.001;

    fn new(slot: Duration) -> Phase {
        Phase { slot: slot.as_secs_f64(), sum: 0.0, count: 0, moved: 0.0 }
    }

    /// A new frame went out in a slot: when it arrived against the slot's due time
    /// (seconds, positive when late).
    fn record(&mut self, arrival_minus_due: f64) {
        self.sum += arrival_minus_due;
        self.count += 1;
    }

    /// How far to move the grid now (seconds, later when positive), from the frames
    /// recorded since the last call.
    fn shift(&mut self) -> f64 {
        let (sum, count) = (self.sum, self.count);
        (self.sum, self.count) = (0.0, 0);
        if count < 10 {
            return 0.0;
        }
        let wanted = (sum / f64::from(count) + self.slot / 4.0).clamp(-Self::STEP, Self::STEP);
        let moved = (self.moved + wanted).clamp(-self.slot, self.slot);
        let shift = moved - self.moved;
        self.moved = moved;
        shift
    }
}

/// Feeds a live output at a constant `fps`: at each slot (1/fps on the wall clock)
/// the newest rendered frame goes out; a frame up to half a slot late still takes
/// its slot; when none came the last one is repeated, and when several came all but
/// the newest are skipped. Both count as dropped frames. The slots keep in step with
/// the frames' arrival (`Phase`). Returns when the channel closes.
pub fn pace<T>(
    frames: &Receiver<T>,
    fps: u32,
    stats: &OutputStats,
    mut emit: impl FnMut(&T, u64) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let interval = slot(fps);
    // Wait for the first frame before the clock starts.
    let Ok(mut latest) = frames.recv() else { return Ok(()) };
    let mut start = Instant::now();
    let mut arrived = start;
    let mut fresh = true;
    let mut phase = Phase::new(interval);
    for slot in 0u64.. {
        let due = start + interval * u32::try_from(slot).unwrap_or(u32::MAX);
        loop {
            match frames.recv_timeout(due.saturating_duration_since(Instant::now())) {
                Ok(frame) => {
                    if fresh && slot > 0 {
                        // The previous new frame never went out.
                        stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
                        metrics::counter!("stream_frames_dropped_total").increment(1);
                    }
                    latest = frame;
                    arrived = Instant::now();
                    fresh = true;
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        if !fresh {
            // A frame a little late (the render loop's jitter) still makes its slot:
            // better than a repeat now and a skip next time.
            match frames.recv_timeout(interval / 2) {
                Ok(frame) => {
                    latest = frame;
                    arrived = Instant::now();
                    fresh = true;
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
        }
        if fresh {
            let late = arrived.saturating_duration_since(due).as_secs_f64();
            let early = due.saturating_duration_since(arrived).as_secs_f64();
            phase.record(late - early);
        } else {
            stats.frames_repeated.fetch_add(1, Ordering::Relaxed);
            stats.frames_dropped.fetch_add(1, Ordering::Relaxed);
            metrics::counter!("stream_frames_dropped_total").increment(1);
        }
        emit(&latest, slot)?;
        fresh = false;
        if (slot + 1) % u64::from(fps.max(1)) == 0 {
            let shift = phase.shift();
            if shift > 0.0 {
                start += Duration::from_secs_f64(shift);
            } else if shift < 0.0 {
                start = start.checked_sub(Duration::from_secs_f64(-shift)).unwrap_or(start);
            }
        }
    }
    Ok(())
}

/// Counters shared with the rest of the renderer.
#[derive(Debug, Default)]
pub struct OutputStats {
    pub frames_pushed: AtomicU64,
    pub frames_dropped: AtomicU64,
    /// Slots that repeated the last frame because no new one was rendered in time.
    pub frames_repeated: AtomicU64,
    pub finished: AtomicBool,
    /// Frames waiting in the encoder's input queue.
    pub queued: AtomicU64,
    /// When the first frame was read back, and the CPU seconds used by then.
    pub first_frame: Mutex<Option<(Instant, f64)>>,
    /// Why the output stopped, when it failed.
    pub failed: Mutex<Option<String>>,
    /// The latest delays, in ms, from a spoken line's `agent:message` to its first
    /// audible sample on the track.
    pub speech_delays_ms: Mutex<std::collections::VecDeque<f64>>,
}

/// Speech delays kept for the status.
pub const SPEECH_DELAYS_KEPT: usize = 200;

/// A frame shared with the stream manager's preview, handed to GStreamer without a copy.
struct Shared(Arc<Vec<u8>>);

impl AsRef<[u8]> for Shared {
    fn as_ref(&self) -> &[u8] {
        self.0.as_slice()
    }
}

/// A running pipeline fed from a channel of I420 frames (`convert.rs`).
pub struct Pipeline {
    pipeline: gst::Pipeline,
    source: gst_app::AppSrc,
    sound: gst_app::AppSrc,
    encoding: Encoding,
    branches: Outputs,
}

/// The outputs of a running pipeline, for the operator's playback commands.
pub type Outputs = Arc<Mutex<Vec<OutputPipeline>>>;

impl Pipeline {
    pub fn start(
        encoding: Encoding,
        encoder: &str,
        outputs: &[Output],
        frames: Option<u64>,
        clips: Option<Arc<crate::clips::Clips>>,
    ) -> anyhow::Result<Pipeline> {
        let description = launch_description(&encoding, encoder);
        let pipeline = gst::parse::launch(&description)
            .context("building the GStreamer pipeline")?
            .downcast::<gst::Pipeline>()
            .map_err(|_| anyhow::anyhow!("the launch description is not a pipeline"))?;
        let appsrc = |name: &str| {
            pipeline
                .by_name(name)
                .and_then(|element| element.dynamic_cast::<gst_app::AppSrc>().ok())
                .with_context(|| format!("the pipeline has no appsrc {name}"))
        };
        let (source, sound) = (appsrc("frames")?, appsrc("sound")?);
        source.set_max_bytes(crate::convert::i420_len(encoding.width, encoding.height) as u64 * 4);
        for source in [&source, &sound] {
            if frames.is_some() {
                // A recording waits for the encoder: every frame is kept.
                source.set_block(true);
            } else {
                // Live: a stalled output drops the oldest queued buffers and never
                // blocks the pacing thread, so stopping always finishes.
                source.set_block(false);
                source.set_leaky_type(gst_app::AppLeakyType::Downstream);
            }
        }
        let branches: Outputs =
            Arc::new(Mutex::new(outputs.iter().cloned().map(OutputPipeline::new).collect()));
        for (name, track) in [("video", Track::Video), ("audio", Track::Audio)] {
            let sink = pipeline
                .by_name(name)
                .and_then(|element| element.dynamic_cast::<gst_app::AppSink>().ok())
                .with_context(|| format!("the pipeline has no appsink {name}"))?;
            let branches = branches.clone();
            let clips = clips.clone();
            sink.set_callbacks(
                gst_app::AppSinkCallbacks::builder()
                    .new_sample(move |sink| {
                        let sample = sink.pull_sample().map_err(|_| gst::FlowError::Eos)?;
                        let Some(mut buffer) = sample.buffer_owned() else { return Ok(gst::FlowSuccess::Ok) };
                        // Outputs are pipelines of their own: stamp the buffers with the
                        // encode's running time (x264enc, for one, shifts its segment).
                        if let Some(segment) =
                            sample.segment().and_then(|segment| segment.downcast_ref::<gst::ClockTime>())
                        {
                            let buffer = buffer.make_mut();
                            let pts = buffer.pts().and_then(|pts| segment.to_running_time(pts));
                            let dts = buffer.dts().and_then(|dts| segment.to_running_time(dts));
                            buffer.set_pts(pts);
                            buffer.set_dts(dts);
                        }
                        let caps = sample.caps_owned();
                        if let Ok(mut branches) = branches.lock() {
                            for branch in branches.iter_mut() {
                                branch.push(track, &buffer, caps.as_ref());
                            }
                        }
                        if let Some(clips) = &clips {
                            clips.push(track, &buffer, caps.as_ref());
                        }
                        Ok(gst::FlowSuccess::Ok)
                    })
                    .build(),
            );
        }
        pipeline.set_state(gst::State::Playing).context("starting the GStreamer pipeline")?;
        Ok(Pipeline { pipeline, source, sound, encoding, branches })
    }

    /// The outputs, shared with the stream manager API.
    pub fn outputs(&self) -> Outputs {
        self.branches.clone()
    }

    /// Pushes frames until the channel closes or `limit` frames went out, then ends
    /// the streams and waits until every output is finalised.
    pub fn run(
        self,
        frames: Receiver<Arc<Vec<u8>>>,
        sounds: Receiver<crate::sound::Play>,
        limit: Option<u64>,
        stats: Arc<OutputStats>,
    ) -> anyhow::Result<()> {
        let mut mixer = crate::sound::Mixer::default();
        let Encoding { width, height, fps, .. } = self.encoding;
        let frame_len = crate::convert::i420_len(width, height);
        let frame_ns = 1_000_000_000 / u64::from(fps);
        let mut push = |data: &Arc<Vec<u8>>, slot: u64| -> anyhow::Result<()> {
            if data.len() < frame_len {
                anyhow::bail!("a frame of {} bytes, not {frame_len}", data.len());
            }
            let mut buffer = gst::Buffer::from_slice(Shared(data.clone()));
            if let Some(buffer) = buffer.get_mut() {
                buffer.set_pts(gst::ClockTime::from_nseconds(slot * frame_ns));
                buffer.set_duration(gst::ClockTime::from_nseconds(frame_ns));
            }
            self.source.push_buffer(buffer).map_err(|error| anyhow::anyhow!("pushing a frame: {error:?}"))?;
            // The frame's share of the audio track, sample-exact over time.
            let (first, end) = audio_span(slot, fps);
            let mut samples = vec![0u8; ((end - first) * 4) as usize];
            while let Ok(play) = sounds.try_recv() {
                mixer.take(play);
            }
            if let Some(published_ms) = mixer.mix_into(&mut samples) {
                let delay_ms = (chrono::Utc::now().timestamp_millis() - published_ms).max(0) as f64;
                metrics::histogram!("stream_speech_delay_seconds").record(delay_ms / 1000.0);
                if let Ok(mut delays) = stats.speech_delays_ms.lock() {
                    if delays.len() == SPEECH_DELAYS_KEPT {
                        delays.pop_front();
                    }
                    delays.push_back(delay_ms);
                }
            }
            let mut audio = gst::Buffer::from_mut_slice(samples);
            if let Some(audio) = audio.get_mut() {
                audio.set_pts(gst::ClockTime::from_nseconds(first * 1_000_000_000 / AUDIO_RATE));
                audio.set_duration(gst::ClockTime::from_nseconds((end - first) * 1_000_000_000 / AUDIO_RATE));
            }
            self.sound.push_buffer(audio).map_err(|error| anyhow::anyhow!("pushing audio: {error:?}"))?;
            stats.frames_pushed.store(slot + 1, Ordering::Relaxed);
            let queued = self.source.current_level_bytes() / (frame_len as u64).max(1);
            stats.queued.store(queued, Ordering::Relaxed);
            Ok(())
        };
        match limit {
            // A recording of a fixed length: every rendered frame, however long it took.
            Some(limit) => {
                for slot in 0..limit {
                    let Ok(data) = frames.recv() else { break };
                    push(&data, slot)?;
                }
            }
            // Live: one frame per slot on the wall clock, whatever the renderer manages.
            None => pace(&frames, fps, &stats, &mut push)?,
        }
        // End of stream through the sources' own queues: it never waits on a lock a
        // blocked streaming thread holds.
        let _ = self.source.end_of_stream();
        let _ = self.sound.end_of_stream();
        let bus = self.pipeline.bus().context("the pipeline has no bus")?;
        let encoded = match bus.timed_pop_filtered(
            gst::ClockTime::from_seconds(30),
            &[gst::MessageType::Eos, gst::MessageType::Error],
        ) {
            Some(message) => match message.view() {
                gst::MessageView::Error(error) => Err(anyhow::anyhow!(
                    "GStreamer: {} ({})",
                    error.error(),
                    error.debug().map(|debug| debug.to_string()).unwrap_or_default()
                )),
                _ => Ok(()),
            },
            None => Err(anyhow::anyhow!("the encoder did not finish within 30 s")),
        };
        // Every output ends its streams and finalises its file or connection.
        let mut result = encoded;
        if let Ok(mut branches) = self.branches.lock() {
            for branch in branches
                .iter_mut()
                .filter(|branch| branch.report().state != crate::output_pipeline::OutputState::Stopped)
            {
                let finished = branch.finish(Duration::from_secs(15));
                if result.is_ok() {
                    result = finished;
                }
            }
        }
        let _ = self.pipeline.set_state(gst::State::Null);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_live_output_repeats_the_last_frame_when_rendering_falls_behind() {
        let (sender, frames) = std::sync::mpsc::sync_channel(4);
        let stats = OutputStats::default();
        let producer = std::thread::spawn(move || {
            sender.send(1u32).expect("send");
            // Nothing new for twenty slots at 100 fps, then two frames at once.
            std::thread::sleep(Duration::from_millis(200));
            sender.send(2).expect("send");
            sender.send(3).expect("send");
            std::thread::sleep(Duration::from_millis(30));
        });
        let mut sent = Vec::new();
        pace(&frames, 100, &stats, |frame, slot| {
            sent.push((slot, *frame));
            Ok(())
        })
        .expect("pace");
        producer.join().expect("producer");
        let slots: Vec<u64> = sent.iter().map(|(slot, _)| *slot).collect();
        assert_eq!(slots, (0..sent.len() as u64).collect::<Vec<_>>(), "one frame per slot, none skipped");
        assert!(sent.iter().filter(|(_, frame)| *frame == 1).count() >= 5, "frame 1 repeated: {sent:?}");
        assert!(sent.iter().any(|(_, frame)| *frame == 3), "the newest frame goes out: {sent:?}");
        let repeated = stats.frames_repeated.load(Ordering::Relaxed);
        assert!(repeated >= 5, "{repeated}");
        // Frame 2 is skipped when 3 arrives within the same slot (the usual case).
        let skipped =
            [1, 2, 3].iter().filter(|frame| !sent.iter().any(|(_, sent)| sent == *frame)).count() as u64;
        assert_eq!(
            stats.frames_dropped.load(Ordering::Relaxed),
            repeated + skipped,
            "repeats and skipped frames"
        );
    }

    #[test]
    fn the_output_grid_moves_to_a_quarter_slot_after_the_frames_arrive_and_no_further() {
        let slot = Duration::from_millis(40);
        let mut phase = Phase::new(slot);
        // Frames come 5 ms before their slot is due: the grid moves 5 ms later, a
        // millisecond at a time, so they come a quarter slot (10 ms) before.
        let mut moved = 0.0;
        for _ in 0..10 {
            for _ in 0..30 {
                phase.record(-0.005 - moved);
            }
            let shift = phase.shift();
            assert!(shift.abs() <= Phase::STEP + 1e-12, "{shift}");
            moved += shift;
        }
        assert!((moved - 0.005).abs() < 1e-9, "settles 5 ms later: {moved}");
        // Too few frames say nothing.
        phase.record(0.02);
        assert_eq!(phase.shift(), 0.0);
        // Frames ever later (rendering too slow) never drag the grid past one slot.
        let mut phase = Phase::new(slot);
        for _ in 0..200 {
            for _ in 0..30 {
                phase.record(0.5);
            }
            phase.shift();
        }
        assert!((phase.moved - 0.040).abs() < 1e-9, "{}", phase.moved);
    }

    #[test]
    fn presets_match_the_spec() {
        let x = Encoding::preset("x").expect("x");
        assert_eq!((x.width, x.height, x.fps, x.bitrate_kbps, x.keyframe_secs), (1280, 720, 30, 4000, 3));
        assert_eq!(Encoding::preset("twitch").map(|preset| preset.keyframe_secs), Some(2));
        assert_eq!(Encoding::preset("1080p60").map(|preset| (preset.width, preset.fps)), Some((1920, 60)));
        assert!(Encoding::preset("8k").is_none());
    }

    #[test]
    fn outputs_are_told_apart_and_keys_masked() {
        let ingest = Output::parse("rtmps://va.pscp.tv:443/x/abcd1234secret").expect("rtmps");
        assert_eq!(ingest.masked(), "rtmps://va.pscp.tv:443/x/********");
        assert!(!ingest.masked().contains("secret"));
        assert_eq!(Output::parse("show.MKV").map(|output| output.masked()), Ok("show.MKV".into()));
        assert!(Output::parse("show.avi").is_err());
    }

    #[test]
    fn the_pipeline_encodes_once_for_every_output() {
        let nvenc = launch_description(&Encoding::preset("x").expect("x"), "nvh264enc");
        assert!(
            nvenc.contains("nvh264enc preset=low-latency-hq zerolatency=true bframes=0 rc-mode=cbr bitrate=4000 gop-size=90"),
            "{nvenc}"
        );
        let description = launch_description(&Encoding::preset("x").expect("x"), "x264enc");
        assert_eq!(description.matches("x264enc").count(), 1, "{description}");
        assert!(description.contains("key-int-max=90"));
        assert!(description.contains("voaacenc bitrate=128000"));
        assert_eq!(description.matches("voaacenc").count(), 1, "one audio encode");
        assert!(description.contains("appsink name=video") && description.contains("appsink name=audio"));
    }

    #[test]
    fn auto_prefers_nvenc_only_when_a_session_opens() {
        let opens = || Ok(());
        let refuses = || Err("no CUDA device".to_owned());
        assert_eq!(choose_encoder("auto", true, true, opens).expect("auto"), "nvh264enc");
        assert_eq!(
            choose_encoder("auto", true, true, refuses).expect("auto"),
            "x264enc",
            "Hopper: the element, no NVENC"
        );
        assert_eq!(choose_encoder("auto", true, false, opens).expect("auto"), "x264enc");
        assert!(choose_encoder("auto", false, true, refuses).is_err());
        assert!(
            choose_encoder("nvenc", true, true, refuses)
                .expect_err("refused")
                .to_string()
                .contains("no CUDA device")
        );
        assert!(choose_encoder("nvenc", true, false, opens).is_err());
        assert_eq!(choose_encoder("x264", true, true, opens).expect("x264"), "x264enc");
        assert!(choose_encoder("vp9", true, true, opens).is_err());
    }

    #[test]
    fn the_audio_track_follows_the_frames_sample_exactly() {
        assert_eq!(audio_span(0, 30), (0, 1470));
        // 24 fps does not divide 44 100: spans differ by a sample but never drift.
        let spans: Vec<(u64, u64)> = (0..48).map(|slot| audio_span(slot, 24)).collect();
        assert!(spans.windows(2).all(|pair| pair[0].1 == pair[1].0));
        assert_eq!(spans[47].1, 2 * AUDIO_RATE);
    }
}
