//! The latest frame encoded for the API: as PNG for `GET /api/stream/frame`, as JPEG
//! previews for the dashboard and the WebSocket. Each frame is encoded at most once
//! per format and width, however many callers ask at once: the first encodes, the
//! others wait for it and share the bytes. Encodes happen one at a time on a blocking
//! thread, so a crowd of clients costs the render box one encoder's worth of CPU.

use std::io::Cursor;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::api::Frame;

/// How a frame is wanted: JPEG or PNG, and at most how wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FrameFormat {
    pub jpeg: bool,
    /// `None` or a width at least the frame's: full size.
    pub width: Option<u32>,
}

/// One frame's encodes so far.
#[derive(Debug, Default)]
struct Encodes {
    number: u64,
    done: Vec<(FrameFormat, Arc<Vec<u8>>)>,
}

/// The encodes of the newest frame asked for.
#[derive(Debug, Default)]
pub struct FrameCache {
    latest: tokio::sync::Mutex<Encodes>,
    encodes: AtomicU64,
}

impl FrameCache {
    /// `frame` encoded as asked, from the cache when this frame was encoded so before.
    pub async fn get(&self, frame: Frame, format: FrameFormat) -> Option<Arc<Vec<u8>>> {
        let format = FrameFormat { width: format.width.filter(|width| *width < frame.width), ..format };
        // Held across the encode: callers for the same frame wait and share it.
        let mut latest = self.latest.lock().await;
        if latest.number != frame.number {
            *latest = Encodes { number: frame.number, done: Vec::new() };
        }
        if let Some((_, bytes)) = latest.done.iter().find(|(known, _)| *known == format) {
            metrics::counter!("stream_frame_encodes_total", "cached" => "true").increment(1);
            return Some(bytes.clone());
        }
        let number = frame.number;
        let bytes = tokio::task::spawn_blocking(move || encode(&frame, format)).await.ok().flatten()?;
        self.encodes.fetch_add(1, Ordering::Relaxed);
        metrics::counter!("stream_frame_encodes_total", "cached" => "false").increment(1);
        let bytes = Arc::new(bytes);
        if latest.number == number {
            latest.done.push((format, bytes.clone()));
        }
        Some(bytes)
    }

    /// Encodes done so far (cache misses).
    #[cfg(test)]
    pub fn encodes(&self) -> u64 {
        self.encodes.load(Ordering::Relaxed)
    }
}

/// Encodes a frame as PNG, or JPEG (quality 80), scaled down to `width`.
fn encode(frame: &Frame, format: FrameFormat) -> Option<Vec<u8>> {
    let mut image = frame.image()?;
    if let Some(width) = format.width.filter(|width| *width < frame.width) {
        let height = (u64::from(frame.height) * u64::from(width) / u64::from(frame.width)).max(1) as u32;
        image = image::imageops::thumbnail(&image, width, height);
    }
    let mut bytes = Cursor::new(Vec::new());
    if format.jpeg {
        let rgb = image::DynamicImage::ImageRgba8(image).to_rgb8();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 80).encode_image(&rgb).ok()?;
    } else {
        image.write_to(&mut bytes, image::ImageFormat::Png).ok()?;
    }
    Some(bytes.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(number: u64) -> Frame {
        let (width, height) = (64, 32);
        let mut data = vec![128u8; crate::convert::i420_len(width, height)];
        data[0] = (number % 200) as u8 + 16;
        Frame { data: Arc::new(data), width, height, number }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_frame_is_encoded_once_per_format_and_width_whatever_the_callers() {
        let cache = Arc::new(FrameCache::default());
        let png = FrameFormat { jpeg: false, width: None };
        let callers: Vec<_> = (0..16)
            .map(|_| {
                let cache = cache.clone();
                tokio::spawn(async move { cache.get(frame(1), png).await })
            })
            .collect();
        let mut answers = Vec::new();
        for caller in callers {
            answers.push(caller.await.expect("caller").expect("encoded"));
        }
        assert_eq!(cache.encodes(), 1, "sixteen callers, one encode");
        assert!(answers.iter().all(|bytes| Arc::ptr_eq(bytes, &answers[0])), "the same bytes shared");
        assert!(answers[0].starts_with(b"\x89PNG"));
        // A JPEG preview is another encode, once; a width past the frame's is full size.
        let jpeg = cache.get(frame(1), FrameFormat { jpeg: true, width: Some(32) }).await.expect("jpeg");
        assert!(jpeg.starts_with(&[0xFF, 0xD8]));
        cache.get(frame(1), FrameFormat { jpeg: true, width: Some(32) }).await.expect("jpeg");
        cache.get(frame(1), FrameFormat { jpeg: false, width: Some(640) }).await.expect("png");
        assert_eq!(cache.encodes(), 2);
        // The next frame is encoded again.
        cache.get(frame(2), png).await.expect("png");
        assert_eq!(cache.encodes(), 3);
    }
}
