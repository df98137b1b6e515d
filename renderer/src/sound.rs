//! Sound effects on the audio track: WAV files under `assets/sounds/` played on show
//! events (a bid accepted, the end extended, the lot closed), mixed into each
//! frame's share of the track by the output thread.

use std::collections::HashMap;
use std::sync::Arc;

use bevy::prelude::*;

use crate::output::AUDIO_RATE;
use crate::scene::format::Trigger;
use crate::show::Show;
use crate::stage::Stage;

/// The file played for each event, under `assets/`.
pub const SOUNDS: [(Trigger, &str); 3] = [
    (Trigger::BidAccepted, "sounds/bid_accepted.wav"),
    (Trigger::Extended, "sounds/extended.wav"),
    (Trigger::Closed, "sounds/closed.wav"),
];

/// Interleaved stereo samples.
pub type Clip = Arc<Vec<i16>>;

/// What the output thread is asked to play.
#[derive(Debug, Clone)]
pub enum Play {
    /// A sound effect.
    Effect(Clip),
    /// The host's voice: sound effects are ducked under it. `published_ms` is when
    /// its `agent:message` was published (the envelope's timestamp), so the delay to
    /// its first audible sample on the track can be measured.
    Voice { clip: Clip, published_ms: Option<i64> },
}

/// A sample at least this loud (about -40 dBFS) is audible.
pub const AUDIBLE: i16 = 328;

/// How loud sound effects play while the host speaks.
pub const DUCKED: f32 = 0.3;

/// The host's speech at the track's rate, as interleaved stereo.
pub fn voice_clip(audio: &sothebais_shared::wav::Mono) -> Clip {
    Arc::new(stereo(audio))
}

/// Reads a 16-bit PCM WAV (mono or stereo, at any rate) into interleaved stereo at
/// the track's rate. Stereo files are mixed down: effects and the voice are centred.
pub fn read_wav(bytes: &[u8]) -> Result<Vec<i16>, String> {
    let audio = sothebais_shared::wav::read(bytes).map_err(|error| error.to_string())?;
    Ok(stereo(&audio))
}

fn stereo(audio: &sothebais_shared::wav::Mono) -> Vec<i16> {
    let audio = sothebais_shared::wav::resample(audio, AUDIO_RATE as u32);
    audio.samples.iter().flat_map(|sample| [*sample, *sample]).collect()
}

/// The sound effects, by event, as the file watcher (`files.rs`) read them from the
/// assets folder (or the built-in copies): a changed file replaces its sound, a
/// broken one silences its event until a good file is there.
#[derive(Debug, Clone, Default)]
pub struct Bank {
    clips: HashMap<Trigger, Clip>,
}

impl Bank {
    /// Takes what the watcher read for `trigger`'s file.
    pub fn put(&mut self, trigger: Trigger, clip: Result<Clip, String>) -> Result<(), String> {
        match clip {
            Ok(clip) => {
                self.clips.insert(trigger, clip);
                Ok(())
            }
            Err(error) => {
                // A bad file silences its event rather than playing what was there.
                self.clips.remove(&trigger);
                Err(error)
            }
        }
    }

    pub fn get(&self, trigger: Trigger) -> Option<Clip> {
        self.clips.get(&trigger).cloned()
    }
}

/// Sounds being played, mixed into the track one frame's share at a time: effects,
/// and the host's voice, one line after the other (the backend sends them in turn).
#[derive(Debug, Default)]
pub struct Mixer {
    playing: Vec<(Clip, usize)>,
    voice: Option<(Clip, usize)>,
    /// The playing line's publication time, until its first audible sample.
    unheard: Option<i64>,
}

fn mix(out: &mut [u8], clip: &[i16], position: &mut usize, gain: f32) {
    let take = (out.len() / 2).min(clip.len().saturating_sub(*position));
    for (index, value) in clip[*position..*position + take].iter().enumerate() {
        let at = index * 2;
        let current = i16::from_le_bytes([out[at], out[at + 1]]);
        let value = if gain < 1.0 { (f32::from(*value) * gain) as i16 } else { *value };
        out[at..at + 2].copy_from_slice(&current.saturating_add(value).to_le_bytes());
    }
    *position += take;
}

impl Mixer {
    pub fn play(&mut self, clip: Clip) {
        // A handful at once is plenty; the oldest makes way.
        if self.playing.len() >= 8 {
            self.playing.remove(0);
        }
        self.playing.push((clip, 0));
    }

    pub fn take(&mut self, play: Play) {
        match play {
            Play::Effect(clip) => self.play(clip),
            // A new line replaces one still playing (it never plays over it).
            Play::Voice { clip, published_ms } => {
                self.voice = Some((clip, 0));
                self.unheard = published_ms;
            }
        }
    }

    /// Mixes the next `frames` stereo frames into `out` (little-endian i16 pairs),
    /// saturating instead of wrapping; effects are ducked while the voice speaks.
    /// Returns the playing line's publication time when its first audible sample
    /// is in this share of the track.
    pub fn mix_into(&mut self, out: &mut [u8]) -> Option<i64> {
        let gain = if self.voice.is_some() { DUCKED } else { 1.0 };
        let mut heard = None;
        if let Some((clip, position)) = &mut self.voice {
            let start = *position;
            mix(out, clip, position, 1.0);
            if self.unheard.is_some()
                && clip[start..*position].iter().any(|sample| sample.unsigned_abs() >= AUDIBLE.unsigned_abs())
            {
                heard = self.unheard.take();
            }
            if *position >= clip.len() {
                self.voice = None;
                self.unheard = None;
            }
        }
        for (clip, position) in &mut self.playing {
            mix(out, clip, position, gain);
        }
        self.playing.retain(|(clip, position)| *position < clip.len());
        heard
    }
}

/// The sound effects and the way to the output thread's mixer.
#[derive(Resource)]
pub struct Sounds {
    pub bank: Bank,
    pub sender: std::sync::mpsc::Sender<Play>,
}

/// Plays the sound of each show event of this frame.
pub fn play_sounds(show: Res<Show>, sounds: Res<Sounds>) {
    for trigger in &show.triggers {
        if let Some(clip) = sounds.bank.get(*trigger) {
            let _ = sounds.sender.send(Play::Effect(clip));
        }
    }
}

/// Plays each show event's sound, before the scene's animations take the events.
#[derive(Debug)]
pub struct SoundPlugin;

impl Plugin for SoundPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(Update, play_sounds.in_set(Stage::Scene).before(crate::scene::draw::switch_scene));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wav(channels: u16, samples: &[i16]) -> Vec<u8> {
        let data: Vec<u8> = samples.iter().flat_map(|sample| sample.to_le_bytes()).collect();
        let mut bytes = b"RIFF".to_vec();
        bytes.extend_from_slice(&(36 + data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(b"WAVEfmt ");
        bytes.extend_from_slice(&16u32.to_le_bytes());
        bytes.extend_from_slice(&1u16.to_le_bytes());
        bytes.extend_from_slice(&channels.to_le_bytes());
        bytes.extend_from_slice(&44_100u32.to_le_bytes());
        bytes.extend_from_slice(&(44_100u32 * 2 * u32::from(channels)).to_le_bytes());
        bytes.extend_from_slice(&(2 * channels).to_le_bytes());
        bytes.extend_from_slice(&16u16.to_le_bytes());
        bytes.extend_from_slice(b"data");
        bytes.extend_from_slice(&(data.len() as u32).to_le_bytes());
        bytes.extend_from_slice(&data);
        bytes
    }

    #[test]
    fn wav_files_are_read_as_centred_stereo() {
        assert_eq!(read_wav(&wav(2, &[4, 2, 6, -2])), Ok(vec![3, 3, 2, 2]));
        assert_eq!(read_wav(&wav(1, &[5, 6])), Ok(vec![5, 5, 6, 6]));
        assert!(read_wav(b"RIFF....WAVE").is_err());
        assert!(read_wav(b"not a wav").is_err());
    }

    #[test]
    fn a_new_sound_replaces_the_old_and_a_broken_one_silences_its_event() {
        let mut bank = Bank::default();
        assert!(bank.put(Trigger::BidAccepted, Ok(Arc::new(vec![1, 1, 2, 2]))).is_ok());
        assert_eq!(bank.get(Trigger::BidAccepted).map(|clip| clip.len()), Some(4));
        assert!(bank.put(Trigger::BidAccepted, Ok(Arc::new(vec![3; 6]))).is_ok());
        assert_eq!(bank.get(Trigger::BidAccepted).map(|clip| clip.len()), Some(6));
        assert!(bank.put(Trigger::BidAccepted, Err("not a wav".into())).is_err());
        assert!(bank.get(Trigger::BidAccepted).is_none(), "a broken file silences its event");
    }

    #[test]
    fn the_sounds_that_come_with_the_project_are_readable() {
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
        for (_, file) in SOUNDS {
            let bytes = std::fs::read(assets.join(file)).expect("sound file");
            assert!(read_wav(&bytes).is_ok_and(|samples| samples.len() > 1000), "{file}");
        }
    }

    #[test]
    fn a_sound_is_mixed_across_frames_and_saturates() {
        let mut mixer = Mixer::default();
        mixer.play(Arc::new(vec![1000; 6]));
        mixer.play(Arc::new(vec![i16::MAX; 2]));
        let mut first = vec![0u8; 8];
        mixer.mix_into(&mut first);
        let values: Vec<i16> = first.chunks(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect();
        assert_eq!(values, [i16::MAX, i16::MAX, 1000, 1000]);
        let mut second = vec![0u8; 8];
        mixer.mix_into(&mut second);
        let values: Vec<i16> = second.chunks(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect();
        assert_eq!(values, [1000, 1000, 0, 0], "the rest of the first sound, then silence");
        assert!(mixer.playing.is_empty());
    }

    #[test]
    fn effects_are_ducked_under_the_voice_and_a_new_line_replaces_the_old() {
        let mut mixer = Mixer::default();
        mixer.take(Play::Voice { clip: Arc::new(vec![100; 4]), published_ms: None });
        mixer.take(Play::Effect(Arc::new(vec![1000; 8])));
        let mut out = vec![0u8; 8];
        mixer.mix_into(&mut out);
        let values: Vec<i16> = out.chunks(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]])).collect();
        assert_eq!(values, [400, 400, 400, 400], "voice 100 + effect 1000 ducked to 300");
        assert!(mixer.voice.is_none(), "the voice ended");
        let mut out = vec![0u8; 8];
        mixer.mix_into(&mut out);
        assert_eq!(i16::from_le_bytes([out[0], out[1]]), 1000, "full again after the voice");
        mixer.take(Play::Voice { clip: Arc::new(vec![1; 100]), published_ms: None });
        mixer.take(Play::Voice { clip: Arc::new(vec![2; 100]), published_ms: None });
        let mut out = vec![0u8; 4];
        mixer.mix_into(&mut out);
        assert_eq!(i16::from_le_bytes([out[0], out[1]]), 2, "the newer line only");
    }

    #[test]
    fn a_line_is_heard_at_its_first_audible_sample_once() {
        let mut mixer = Mixer::default();
        let mut line = vec![0i16; 8];
        line.extend([2000i16; 8]);
        mixer.take(Play::Voice { clip: Arc::new(line), published_ms: Some(42) });
        let mut out = vec![0u8; 16];
        assert_eq!(mixer.mix_into(&mut out), None, "silence first");
        assert_eq!(mixer.mix_into(&mut out), Some(42), "the first loud share");
        assert_eq!(mixer.mix_into(&mut out), None, "heard once");
    }

    #[test]
    fn speech_is_resampled_to_the_track_as_stereo() {
        let speech = sothebais_shared::wav::Mono { rate: 22_050, samples: vec![1000; 22_050] };
        let clip = voice_clip(&speech);
        assert_eq!(clip.len(), 2 * AUDIO_RATE as usize, "one second of stereo at the track's rate");
    }
}
