//! Winning-moment clips (`spec/stream.md`): the last `STREAM_CLIP_SECS` of the
//! encoded stream kept in memory; when a lot is sold, the stretch from a keyframe to
//! a few seconds after the hammer is written without encoding again to
//! `<data dir>/clips/<auction id>.mp4`, beside a small JSON file that describes it.
//!
//! The encode's `appsink` callbacks hand every buffer to [`Clips::push`] (the same
//! buffers the outputs get, no copy); a sold lot marks its hammer with
//! [`Clips::sold`]; once the ring holds the clip's end, the clip's buffers go to a
//! writer thread, which muxes them with an output of its own (`branch.rs`), renames
//! the finished file into place, prunes the oldest clips past the limits and
//! announces the clip. Nothing here runs on the render thread.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::mpsc::{Receiver, Sender};
use std::time::Duration;

use bevy::log::{info, warn};
use gstreamer as gst;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::output::{Container, Output};
use crate::output_pipeline::{OutputPipeline, Track};

/// The most encoded bytes the ring holds, whatever the bitrate.
pub const RING_MAX_BYTES: u64 = 96 * 1024 * 1024;
/// The most clips kept on disk, and their most bytes in all: past either, the
/// oldest go.
pub const KEEP_CLIPS: usize = 200;
pub const KEEP_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// How long after the hammer a clip goes on at least.
pub const AFTER_HAMMER: Duration = Duration::from_secs(2);

/// The shape of every clip: how long, and how far past the hammer it may end.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cut {
    /// `STREAM_CLIP_SECS`.
    pub length: Duration,
    /// The latest end after the hammer: a keyframe interval more than
    /// [`AFTER_HAMMER`], so a clip that starts at a keyframe and lasts `length`
    /// always ends between `AFTER_HAMMER` and `tail` after the hammer (or half the
    /// length, for clips shorter than that).
    pub tail: Duration,
}

impl Cut {
    pub fn new(length: Duration, keyframe_interval: Duration) -> Cut {
        Cut { length, tail: (keyframe_interval + AFTER_HAMMER).min(length / 2) }
    }
}

/// The clip's `[start, end)` on the stream's running time (pure). It starts at the
/// latest keyframe from which `length` ends after the hammer and no later than
/// `hammer + tail`, and lasts `length`. When there is none (the stream began less
/// than a clip ago, or the clip is shorter than the keyframe interval), it starts at
/// the earliest keyframe before the hammer from which `length` reaches past it, and
/// ends at `hammer + tail` at the latest. `None` when no keyframe before the hammer
/// is kept.
pub fn bounds(keyframes: &[Duration], hammer: Duration, cut: Cut) -> Option<(Duration, Duration)> {
    let wanted_end = hammer + cut.tail;
    let before = || keyframes.iter().copied().filter(|keyframe| *keyframe <= hammer);
    let start = before()
        .rfind(|keyframe| *keyframe + cut.length > hammer && *keyframe + cut.length <= wanted_end)
        .or_else(|| before().find(|keyframe| *keyframe + cut.length > hammer))?;
    Some((start, (start + cut.length).min(wanted_end)))
}

/// One encoded buffer of the ring, stamped on the encode's running time.
#[derive(Debug, Clone)]
struct Kept {
    track: Track,
    at: Duration,
    buffer: gst::Buffer,
}

fn time(buffer: &gst::Buffer) -> Option<Duration> {
    buffer.pts().or_else(|| buffer.dts()).map(|at| Duration::from_nanos(at.nseconds()))
}

fn is_keyframe(track: Track, buffer: &gst::Buffer) -> bool {
    track == Track::Video && !buffer.flags().contains(gst::BufferFlags::DELTA_UNIT)
}

/// The last `span` of encoded buffers, never more than `max_bytes`.
#[derive(Debug)]
pub struct Ring {
    span: Duration,
    max_bytes: u64,
    kept: VecDeque<Kept>,
    bytes: u64,
    caps: [Option<gst::Caps>; 2],
}

impl Ring {
    pub fn new(span: Duration, max_bytes: u64) -> Ring {
        Ring { span, max_bytes, kept: VecDeque::new(), bytes: 0, caps: [None, None] }
    }

    /// Keeps a buffer, dropping the oldest past the span or the byte limit.
    pub fn push(&mut self, track: Track, buffer: &gst::Buffer, caps: Option<&gst::Caps>) {
        if let Some(caps) = caps {
            self.caps[track as usize] = Some(caps.clone());
        }
        let Some(at) = time(buffer) else { return };
        self.bytes += buffer.size() as u64;
        self.kept.push_back(Kept { track, at, buffer: buffer.clone() });
        let newest = self.newest_video().unwrap_or(at);
        while let Some(front) = self.kept.front()
            && (front.at + self.span < newest || self.bytes > self.max_bytes)
        {
            self.bytes -= front.buffer.size() as u64;
            self.kept.pop_front();
        }
    }

    /// The running time of the newest video buffer.
    pub fn newest_video(&self) -> Option<Duration> {
        self.kept.iter().rev().find(|kept| kept.track == Track::Video).map(|kept| kept.at)
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// How much stream the ring holds, oldest to newest buffer.
    #[cfg(test)]
    pub fn held(&self) -> Duration {
        match (self.kept.front(), self.kept.back()) {
            (Some(first), Some(last)) => last.at.saturating_sub(first.at),
            _ => Duration::ZERO,
        }
    }

    fn keyframes(&self) -> Vec<Duration> {
        self.kept.iter().filter(|kept| is_keyframe(kept.track, &kept.buffer)).map(|kept| kept.at).collect()
    }

    /// The buffers of `[start, end)` in stream order, stamped from zero.
    fn take(&self, start: Duration, end: Duration) -> Vec<(Track, gst::Buffer)> {
        let offset = gst::ClockTime::from_nseconds(start.as_nanos() as u64);
        let mut kept: Vec<&Kept> =
            self.kept.iter().filter(|kept| kept.at >= start && kept.at < end).collect();
        // In time order, the keyframe first: an output starts at a keyframe and drops
        // what comes before it.
        kept.sort_by_key(|kept| (kept.at, kept.track != Track::Video));
        kept.into_iter()
            .map(|kept| {
                let mut buffer = kept.buffer.copy();
                if let Some(buffer) = buffer.get_mut() {
                    let pts = buffer.pts().map(|pts| pts.saturating_sub(offset));
                    let dts = buffer.dts().map(|dts| dts.saturating_sub(offset));
                    buffer.set_pts(pts);
                    buffer.set_dts(dts);
                }
                (kept.track, buffer)
            })
            .collect()
    }
}

/// A written clip, as listed and announced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipInfo {
    pub auction_id: Uuid,
    /// The clip file.
    pub path: String,
    pub duration_ms: u64,
    pub bytes: u64,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The clips folder and how clips are made.
pub struct Clips {
    folder: PathBuf,
    cut: Cut,
    state: Mutex<State>,
    writer: Mutex<Sender<Job>>,
}

impl std::fmt::Debug for Clips {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Clips").field("folder", &self.folder).field("cut", &self.cut).finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    ring: Ring,
    /// Hammers whose clip's end has not been encoded yet: (auction, hammer).
    waiting: Vec<(Uuid, Duration)>,
    /// The lots whose hammer was marked lately: each gets one clip.
    taken: VecDeque<Uuid>,
}

/// How many lots [`State::taken`] remembers.
const TAKEN_KEPT: usize = 64;

struct Job {
    auction_id: Uuid,
    caps: [gst::Caps; 2],
    buffers: Vec<(Track, gst::Buffer)>,
    duration: Duration,
}

impl Clips {
    /// Clips of `cut` under `folder`, each announced through `announce` once written.
    pub fn start(
        folder: PathBuf,
        cut: Cut,
        announce: impl Fn(&ClipInfo) + Send + 'static,
    ) -> anyhow::Result<Clips> {
        std::fs::create_dir_all(&folder)
            .map_err(|error| anyhow::anyhow!("cannot create {}: {error}", folder.display()))?;
        let (sender, jobs) = std::sync::mpsc::channel();
        let writer_folder = folder.clone();
        std::thread::Builder::new()
            .name("sothebais-clips".into())
            .spawn(move || write_clips(&writer_folder, &jobs, &announce))?;
        // The ring holds a clip, the tail and a keyframe interval to start it on.
        let span = cut.length + cut.tail * 2;
        Ok(Clips {
            folder,
            cut,
            state: Mutex::new(State {
                ring: Ring::new(span, RING_MAX_BYTES),
                waiting: Vec::new(),
                taken: VecDeque::new(),
            }),
            writer: Mutex::new(sender),
        })
    }

    /// A lot was sold now: its hammer is the newest encoded frame (the frame that
    /// shows the sale follows within the encoder's few frames of latency).
    pub fn sold(&self, auction_id: Uuid) {
        if let Ok(mut state) = self.state.lock() {
            if state.taken.contains(&auction_id) {
                return;
            }
            if state.taken.len() == TAKEN_KEPT {
                state.taken.pop_front();
            }
            state.taken.push_back(auction_id);
            let hammer = state.ring.newest_video().unwrap_or_default();
            info!("lot {auction_id} sold at {:.1} s of the stream: its clip follows", hammer.as_secs_f64());
            state.waiting.push((auction_id, hammer));
        }
    }

    /// One encoded buffer (called from the encode's streaming threads).
    pub fn push(&self, track: Track, buffer: &gst::Buffer, caps: Option<&gst::Caps>) {
        let Ok(mut state) = self.state.lock() else { return };
        state.ring.push(track, buffer, caps);
        metrics::gauge!("stream_clip_ring_bytes").set(state.ring.bytes() as f64);
        if state.waiting.is_empty() {
            return;
        }
        let Some(newest) = state.ring.newest_video() else { return };
        let cut = self.cut;
        let due: Vec<(Uuid, Duration)> =
            state.waiting.iter().copied().filter(|(_, hammer)| newest >= *hammer + cut.tail).collect();
        state.waiting.retain(|(_, hammer)| newest < *hammer + cut.tail);
        for (auction_id, hammer) in due {
            let Some((start, end)) = bounds(&state.ring.keyframes(), hammer, cut) else {
                warn!("no clip of lot {auction_id}: the stream kept holds no keyframe before its hammer");
                continue;
            };
            let [Some(video), Some(audio)] = state.ring.caps.clone() else {
                warn!("no clip of lot {auction_id}: the stream's formats are not known yet");
                continue;
            };
            let job = Job {
                auction_id,
                caps: [video, audio],
                buffers: state.ring.take(start, end),
                duration: end - start,
            };
            if let Ok(writer) = self.writer.lock() {
                let _ = writer.send(job);
            }
        }
    }
}

/// The clip file of an auction, and its description beside it.
fn clip_paths(folder: &Path, auction_id: Uuid) -> (PathBuf, PathBuf) {
    (folder.join(format!("{auction_id}.mp4")), folder.join(format!("{auction_id}.json")))
}

/// The clips described in `folder` whose file is there, newest first.
pub fn list(folder: &Path) -> Vec<ClipInfo> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut clips: Vec<ClipInfo> = entries
        .flatten()
        .filter(|entry| entry.path().extension().is_some_and(|extension| extension == "json"))
        .filter_map(|entry| serde_json::from_slice::<ClipInfo>(&std::fs::read(entry.path()).ok()?).ok())
        .filter(|clip| clip_paths(folder, clip.auction_id).0.is_file())
        .collect();
    clips.sort_by_key(|clip| std::cmp::Reverse(clip.created_at));
    clips
}

/// Removes the oldest clips past [`KEEP_CLIPS`] or [`KEEP_BYTES`] (pure choice in
/// [`to_prune`]).
fn prune(folder: &Path) {
    for clip in to_prune(&list(folder), KEEP_CLIPS, KEEP_BYTES) {
        let (file, description) = clip_paths(folder, clip.auction_id);
        let _ = std::fs::remove_file(description);
        let _ = std::fs::remove_file(file);
        info!(
            "clip of lot {} pruned (keeping {KEEP_CLIPS} clips, {} GiB)",
            clip.auction_id,
            KEEP_BYTES >> 30
        );
    }
}

/// Of clips listed newest first, those past `count` or past `bytes` in all.
pub fn to_prune(clips: &[ClipInfo], count: usize, bytes: u64) -> Vec<ClipInfo> {
    let mut total = 0u64;
    clips
        .iter()
        .enumerate()
        .filter(|(index, clip)| {
            total += clip.bytes;
            *index >= count || total > bytes
        })
        .map(|(_, clip)| clip.clone())
        .collect()
}

/// The writer thread: one clip at a time, until the clips are dropped.
fn write_clips(folder: &Path, jobs: &Receiver<Job>, announce: &dyn Fn(&ClipInfo)) {
    while let Ok(job) = jobs.recv() {
        let auction_id = job.auction_id;
        match write_clip(folder, job) {
            Ok(clip) => {
                info!(
                    "clip of lot {auction_id} written: {} ({} ms, {} KiB)",
                    clip.path,
                    clip.duration_ms,
                    clip.bytes / 1024
                );
                metrics::counter!("stream_clips_total", "outcome" => "written").increment(1);
                prune(folder);
                announce(&clip);
            }
            Err(error) => {
                metrics::counter!("stream_clips_total", "outcome" => "failed").increment(1);
                warn!("clip of lot {auction_id} failed: {error:#}");
            }
        }
    }
}

fn write_clip(folder: &Path, job: Job) -> anyhow::Result<ClipInfo> {
    let (file, description) = clip_paths(folder, job.auction_id);
    // Written aside and renamed when finished: a listed clip is always whole.
    let part = folder.join(format!("{}.mp4.part", job.auction_id));
    let mut branch =
        OutputPipeline::new(Output::File { path: part.display().to_string(), container: Container::Mp4 });
    let [video, audio] = job.caps;
    branch.set_caps(Track::Video, video);
    branch.set_caps(Track::Audio, audio);
    for (track, buffer) in &job.buffers {
        branch.push(*track, buffer, None);
    }
    let finished = branch.finish(Duration::from_secs(15));
    if let Err(error) = finished {
        let _ = std::fs::remove_file(&part);
        return Err(error);
    }
    std::fs::rename(&part, &file)?;
    let clip = ClipInfo {
        auction_id: job.auction_id,
        path: file.display().to_string(),
        duration_ms: job.duration.as_millis() as u64,
        bytes: std::fs::metadata(&file)?.len(),
        created_at: chrono::Utc::now(),
    };
    std::fs::write(&description, serde_json::to_vec_pretty(&clip)?)?;
    Ok(clip)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    /// Keyframes every 3 s from 0 to `until`.
    fn keyframes(until: u64) -> Vec<Duration> {
        (0..=until).step_by(3).map(Duration::from_secs).collect()
    }

    #[test]
    fn a_clip_starts_at_a_keyframe_lasts_its_length_and_ends_a_little_after_the_hammer() {
        let cut = Cut::new(secs(20.0), secs(3.0));
        assert_eq!(cut.tail, secs(5.0));
        for hammer in [40.0, 41.0, 42.5, 43.9] {
            let (start, end) = bounds(&keyframes(60), secs(hammer), cut).expect("a clip");
            assert_eq!(start.as_secs() % 3, 0, "at a keyframe");
            assert_eq!(end - start, cut.length);
            assert!(
                end >= secs(hammer) + AFTER_HAMMER && end <= secs(hammer) + cut.tail,
                "{hammer}: {end:?}"
            );
        }
    }

    #[test]
    fn a_clip_soon_after_the_start_is_shorter_and_none_without_a_keyframe_before_the_hammer() {
        let cut = Cut::new(secs(20.0), secs(3.0));
        assert_eq!(bounds(&keyframes(30), secs(7.0), cut), Some((secs(0.0), secs(12.0))));
        assert_eq!(bounds(&[secs(9.0)], secs(7.0), cut), None);
        assert_eq!(bounds(&[], secs(7.0), cut), None);
        // A clip shorter than the tail keeps the hammer inside it.
        let short = Cut::new(secs(4.0), secs(3.0));
        assert_eq!(bounds(&keyframes(30), secs(10.0), short), Some((secs(9.0), secs(12.0))));
    }

    #[test]
    fn the_oldest_clips_go_past_the_count_or_the_bytes() {
        let clip = |minutes: i64, bytes: u64| ClipInfo {
            auction_id: Uuid::new_v4(),
            path: String::new(),
            duration_ms: 20_000,
            bytes,
            created_at: chrono::DateTime::UNIX_EPOCH + chrono::TimeDelta::minutes(minutes),
        };
        let newest_first = vec![clip(3, 10), clip(2, 10), clip(1, 10)];
        assert_eq!(to_prune(&newest_first, 2, 100), vec![newest_first[2].clone()]);
        assert_eq!(to_prune(&newest_first, 5, 15), newest_first[1..].to_vec());
        assert!(to_prune(&newest_first, 5, 100).is_empty());
    }

    #[test]
    fn the_ring_stays_bounded_over_an_hour_of_frames() {
        gst::init().expect("GStreamer");
        let mut ring = Ring::new(secs(30.0), 4 * 1024 * 1024);
        let frame = Duration::from_nanos(1_000_000_000 / 30);
        let mut most = 0u64;
        // An hour at 30 fps of 1.5 KiB frames, a keyframe every 90.
        for slot in 0..30 * 3600u64 {
            let mut buffer = gst::Buffer::with_size(1536).expect("buffer");
            if let Some(buffer) = buffer.get_mut() {
                buffer.set_pts(gst::ClockTime::from_nseconds((frame * slot as u32).as_nanos() as u64));
                if slot % 90 != 0 {
                    buffer.set_flags(gst::BufferFlags::DELTA_UNIT);
                }
            }
            ring.push(Track::Video, &buffer, None);
            most = most.max(ring.bytes());
        }
        assert!(ring.held() <= secs(30.0), "{:?}", ring.held());
        assert!(ring.held() >= secs(29.0), "{:?}", ring.held());
        assert!(most <= 30 * 31 * 1536, "{most} bytes at most");
        // Past the byte limit, the oldest buffers go whatever their age.
        let mut small = Ring::new(secs(30.0), 100 * 1536);
        for slot in 0..300u64 {
            let mut buffer = gst::Buffer::with_size(1536).expect("buffer");
            if let Some(buffer) = buffer.get_mut() {
                buffer.set_pts(gst::ClockTime::from_nseconds(slot * 33_333_333));
            }
            small.push(Track::Video, &buffer, None);
        }
        assert_eq!(small.bytes(), 100 * 1536);
    }
}
