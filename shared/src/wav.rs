//! WAV audio as the voice makes it and the renderer plays it (pure): reading 16-bit
//! PCM (mono or stereo, any rate, including the streamed kind whose header gives no
//! length) into mono samples, writing mono WAV, resampling, and loudness per window.

/// Mono 16-bit audio.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mono {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl Mono {
    pub fn duration_ms(&self) -> u64 {
        if self.rate == 0 { 0 } else { self.samples.len() as u64 * 1000 / u64::from(self.rate) }
    }
}

/// Why bytes are not a WAV this module reads.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WavError {
    #[error("not a RIFF/WAVE file")]
    NotWav,
    #[error("no fmt or data chunk")]
    Incomplete,
    #[error("{0}")]
    Unsupported(String),
}

/// Reads 16-bit PCM WAV, mono or stereo (downmixed), at any rate. A chunk size past
/// the end (a streamed WAV's `0xFFFFFFFF`) means "to the end".
pub fn read(bytes: &[u8]) -> Result<Mono, WavError> {
    let word = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
    let half = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
    if bytes.get(0..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
        return Err(WavError::NotWav);
    }
    let (mut at, mut format, mut data) = (12usize, None, None);
    while let Some(size) = word(at + 4) {
        let body = at + 8;
        let end = body.saturating_add(size as usize).min(bytes.len());
        match bytes.get(at..at + 4) {
            Some(b"fmt ") => {
                let short = || WavError::Unsupported("short fmt chunk".into());
                let kind = half(body).ok_or_else(short)?;
                let channels = half(body + 2).ok_or_else(short)?;
                let rate = word(body + 4).ok_or_else(short)?;
                let bits = half(body + 14).ok_or_else(short)?;
                // 0xFFFE is WAVE_FORMAT_EXTENSIBLE, PCM inside for 16-bit audio.
                if !(kind == 1 || kind == 0xFFFE) || bits != 16 || !(1..=2).contains(&channels) || rate == 0 {
                    return Err(WavError::Unsupported(format!(
                        "{channels} channels of {bits}-bit format {kind} at {rate} Hz: needs 16-bit PCM, mono or stereo"
                    )));
                }
                format = Some((channels, rate));
            }
            Some(b"data") => data = Some(&bytes[body.min(bytes.len())..end]),
            _ => {}
        }
        if end >= bytes.len() {
            break;
        }
        at = end + (size as usize & 1);
    }
    let (Some((channels, rate)), Some(data)) = (format, data) else { return Err(WavError::Incomplete) };
    let samples = data.chunks_exact(2).map(|pair| i16::from_le_bytes([pair[0], pair[1]]));
    let samples = if channels == 2 {
        let all: Vec<i16> = samples.collect();
        all.chunks_exact(2).map(|pair| ((i32::from(pair[0]) + i32::from(pair[1])) / 2) as i16).collect()
    } else {
        samples.collect()
    };
    Ok(Mono { rate, samples })
}

/// A mono 16-bit PCM WAV file.
pub fn write(audio: &Mono) -> Vec<u8> {
    let data_len = (audio.samples.len() * 2) as u32;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&audio.rate.to_le_bytes());
    out.extend_from_slice(&(audio.rate * 2).to_le_bytes());
    out.extend_from_slice(&2u16.to_le_bytes());
    out.extend_from_slice(&16u16.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for sample in &audio.samples {
        out.extend_from_slice(&sample.to_le_bytes());
    }
    out
}

/// The audio at another rate, by linear interpolation (speech is band-limited well
/// below either rate, so this is transparent for it).
pub fn resample(audio: &Mono, rate: u32) -> Mono {
    if audio.rate == rate || audio.samples.is_empty() {
        return Mono { rate, samples: audio.samples.clone() };
    }
    let count = (audio.samples.len() as u64 * u64::from(rate) / u64::from(audio.rate)) as usize;
    let step = f64::from(audio.rate) / f64::from(rate);
    let last = audio.samples.len() - 1;
    let samples = (0..count)
        .map(|index| {
            let at = index as f64 * step;
            let left = (at as usize).min(last);
            let right = (left + 1).min(last);
            let fraction = at - left as f64;
            let value = f64::from(audio.samples[left]) * (1.0 - fraction)
                + f64::from(audio.samples[right]) * fraction;
            value.round() as i16
        })
        .collect();
    Mono { rate, samples }
}

/// Loudness (RMS, 0 to 1) of each `window_ms` of the audio.
pub fn levels(audio: &Mono, window_ms: u32) -> Vec<f32> {
    let window = (audio.rate as usize * window_ms as usize / 1000).max(1);
    audio
        .samples
        .chunks(window)
        .map(|chunk| {
            let sum: f64 = chunk.iter().map(|sample| (f64::from(*sample) / 32768.0).powi(2)).sum();
            (sum / chunk.len() as f64).sqrt() as f32
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(rate: u32, millis: u32) -> Mono {
        let count = rate * millis / 1000;
        let samples = (0..count)
            .map(|index| {
                ((index as f64 * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 16000.0) as i16
            })
            .collect();
        Mono { rate, samples }
    }

    #[test]
    fn a_written_wav_reads_back_the_same() {
        let audio = tone(22_050, 200);
        let back = read(&write(&audio)).expect("reads");
        assert_eq!(back, audio);
        assert_eq!(back.duration_ms(), 200);
    }

    #[test]
    fn a_streamed_header_without_length_reads_to_the_end() {
        let audio = tone(24_000, 100);
        let mut bytes = write(&audio);
        bytes[40..44].copy_from_slice(&u32::MAX.to_le_bytes());
        bytes[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(read(&bytes).expect("reads"), audio);
        assert_eq!(read(b"RIFF0000WAVEjunk"), Err(WavError::Incomplete));
        assert_eq!(read(b"not audio"), Err(WavError::NotWav));
    }

    #[test]
    fn resampling_keeps_the_duration_and_levels_find_the_sound() {
        let audio = tone(22_050, 500);
        let up = resample(&audio, 44_100);
        assert_eq!(up.rate, 44_100);
        assert!((up.duration_ms() as i64 - 500).abs() <= 1);
        let mut speech = tone(22_050, 200);
        speech.samples.extend(std::iter::repeat_n(0, 22_050 / 5));
        let levels = levels(&speech, 20);
        assert_eq!(levels.len(), 20);
        assert!(levels[..10].iter().all(|level| *level > 0.2), "{levels:?}");
        assert!(levels[10..].iter().all(|level| *level < 0.01), "{levels:?}");
    }
}
