//! Text that keeps inside its box (`fit = "shrink"` or `"ellipsis"`): what the last
//! layout measured decides this frame's scale or cut, which `draw::update_nodes`
//! applies.

use bevy::prelude::*;
use bevy::text::TextLayoutInfo;

use super::format::TextFit;

/// How a `shrink` or `ellipsis` text keeps inside its box: what the last layout
/// measured decides this frame's scale or cut (see [`fit_texts`]).
#[derive(Debug, Component)]
pub struct TextFitting {
    pub fit: TextFit,
    /// The box, in pixels.
    pub bounds: Vec2,
    /// `shrink`: the scale that fits the text as last laid out.
    pub scale: f32,
    /// `ellipsis`: how many characters of `full` are shown before the "…".
    pub keep: Option<usize>,
    /// `ellipsis`: the whole text the layer has now.
    pub full: String,
}

impl TextFitting {
    pub fn new(fit: TextFit, bounds: Vec2) -> TextFitting {
        TextFitting { fit, bounds, scale: 1.0, keep: None, full: String::new() }
    }
}

/// The scale that fits a text laid out at `measured` into `bounds`, never above 1
/// (pure).
pub fn fit_scale(measured: Vec2, bounds: Vec2) -> f32 {
    if measured.x <= 0.0 || measured.y <= 0.0 {
        return 1.0;
    }
    (bounds.x / measured.x).min(bounds.y / measured.y).min(1.0)
}

/// How many characters to keep before the "…" when `shown` characters measured
/// `measured` wide in a box `width` wide; `None` when they fit (pure).
pub fn ellipsis_keep(shown: usize, measured: f32, width: f32) -> Option<usize> {
    if measured <= width || measured <= 0.0 {
        return None;
    }
    let fitting = (shown as f32 * width / measured).floor() as usize;
    Some(fitting.saturating_sub(1))
}

/// `text` cut to `keep` characters and "…" (as it is when it is no longer).
pub fn cut(text: &str, keep: usize) -> String {
    if text.chars().count() <= keep {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(keep).collect();
    cut.push('…');
    cut
}

/// Reads each fitted text's last layout: a `shrink` text's scale, an `ellipsis`
/// text's cut for this frame (before `draw::update_nodes` applies them).
pub fn fit_texts(mut texts: Query<(&TextLayoutInfo, &Text2d, &mut TextFitting)>) {
    for (layout, text, mut fitting) in &mut texts {
        let measured = layout.size / layout.scale_factor.max(f32::EPSILON);
        match fitting.fit {
            TextFit::Shrink => {
                let scale = fit_scale(measured, fitting.bounds);
                if (fitting.scale - scale).abs() > 1e-4 {
                    fitting.scale = scale;
                }
            }
            TextFit::Ellipsis => {
                if let Some(keep) = ellipsis_keep(text.0.chars().count(), measured.x, fitting.bounds.x) {
                    fitting.keep = Some(keep);
                }
            }
            TextFit::Wrap => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fitting_is_pure_arithmetic() {
        assert_eq!(fit_scale(Vec2::new(400.0, 40.0), Vec2::new(200.0, 50.0)), 0.5);
        assert_eq!(fit_scale(Vec2::new(100.0, 100.0), Vec2::new(200.0, 50.0)), 0.5, "the height too");
        assert_eq!(fit_scale(Vec2::new(100.0, 40.0), Vec2::new(200.0, 50.0)), 1.0, "never grows");
        assert_eq!(fit_scale(Vec2::ZERO, Vec2::new(200.0, 50.0)), 1.0, "not laid out yet");
        assert_eq!(ellipsis_keep(10, 400.0, 200.0), Some(4));
        assert_eq!(ellipsis_keep(10, 150.0, 200.0), None);
        assert_eq!(cut("abcdefghij", 4), "abcd…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
