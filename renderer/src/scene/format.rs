//! The scene file format: TOML that designers edit, read into a checked [`Scene`].
//! Every value is checked while it is read, so a mistake is reported at the line and
//! column of the value that is wrong. `scenes/README.md` documents the format.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

use crate::show::{FIELDS, ROW_FIELDS};

/// A scene as read from its file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scene {
    /// The scene's name: its file name without `.toml`.
    #[serde(skip)]
    pub name: String,
    /// A label for people (the API lists it).
    #[serde(default)]
    pub title: String,
    /// The logical canvas the layers are laid out on, scaled to the output.
    #[serde(default = "default_canvas")]
    pub canvas: [f32; 2],
    /// The colour behind every layer. Much cheaper than a full-canvas panel: the
    /// frame is cleared to it instead of drawn over.
    #[serde(default = "default_background")]
    pub background: Colour,
    /// Auction states in which this scene goes on air by itself.
    #[serde(default)]
    pub states: Vec<StateName>,
    /// The layers, drawn in `z` order.
    #[serde(default, rename = "layer")]
    pub layers: Vec<Layer>,
}

fn default_canvas() -> [f32; 2] {
    [1920.0, 1080.0]
}

fn default_background() -> Colour {
    Colour([0, 0, 0, 255])
}

/// The auction states a scene can be bound to (`waiting` means no lot is on air).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StateName {
    Waiting,
    Scheduled,
    Open,
    Closing,
    Closed,
    Cancelled,
}

impl StateName {
    pub fn as_str(self) -> &'static str {
        match self {
            StateName::Waiting => "waiting",
            StateName::Scheduled => "scheduled",
            StateName::Open => "open",
            StateName::Closing => "closing",
            StateName::Closed => "closed",
            StateName::Cancelled => "cancelled",
        }
    }
}

/// What a layer draws.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayerKind {
    /// A filled rectangle.
    Panel,
    /// A line (or block) of text from a template.
    Text,
    /// A picture from `assets/`, or the lot's image.
    Image,
    /// The last accepted bids, newest first, one row each.
    Ticker,
    /// The time left, then the result.
    Countdown,
    /// The host, with an expression for the mood.
    Character,
    /// The host's lines, typed out, then fading.
    Captions,
}

impl LayerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            LayerKind::Panel => "panel",
            LayerKind::Text => "text",
            LayerKind::Image => "image",
            LayerKind::Ticker => "ticker",
            LayerKind::Countdown => "countdown",
            LayerKind::Character => "character",
            LayerKind::Captions => "captions",
        }
    }
}

/// One layer of a scene. Which fields apply depends on `kind`; `check` says which
/// are required.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Layer {
    pub id: String,
    pub kind: LayerKind,
    /// Where the layer's anchor point goes: `[x, y]` from the canvas's top-left, or
    /// a named anchor of the canvas (`top-left`, `center`, `bottom-right`, …).
    #[serde(default)]
    pub at: Position,
    /// Moves the layer from `at`, in canvas units (handy with named anchors).
    #[serde(default)]
    pub offset: [f32; 2],
    /// Which point of the layer sits at `at`.
    #[serde(default)]
    pub anchor: Anchor,
    /// Width and height (panels, images, the character; the wrap width of text).
    #[serde(default)]
    pub size: Option<[f32; 2]>,
    /// Higher is in front.
    #[serde(default)]
    pub z: f32,
    #[serde(default)]
    pub color: Option<Colour>,
    /// The countdown's colour in the last ten seconds.
    #[serde(default)]
    pub final_color: Option<Colour>,
    #[serde(default = "one")]
    pub opacity: f32,
    /// A font file under `assets/` (the built-in font when absent).
    #[serde(default)]
    pub font: Option<String>,
    #[serde(default = "default_font_size")]
    pub font_size: f32,
    /// `left`, `center` or `right`: how lines of a text block line up.
    #[serde(default)]
    pub justify: Justify,
    /// How a text keeps inside its `size`: `wrap` (lines broken at the width; the
    /// default), `shrink` (one line, scaled down to fit the box) or `ellipsis` (one
    /// line, cut with "…" at the width).
    #[serde(default)]
    pub fit: TextFit,
    /// Text with `{field}` placeholders bound to the show's state.
    #[serde(default)]
    pub text: Option<Template>,
    /// What the layer shows when a placeholder of `text` or `image` has no value
    /// (itself a template; nothing when that has none either).
    #[serde(default, rename = "else")]
    pub fallback: Option<Template>,
    /// An image under `assets/`, or a template such as `{auction.lot.image}`.
    #[serde(default)]
    pub image: Option<Template>,
    /// Ticker rows.
    #[serde(default = "default_rows")]
    pub rows: usize,
    /// Distance between ticker rows.
    #[serde(default = "default_row_height")]
    pub row_height: f32,
    /// Captions: characters typed per second, then seconds held, then seconds fading.
    #[serde(default = "default_type_rate")]
    pub chars_per_sec: f32,
    #[serde(default = "default_hold")]
    pub hold_secs: f32,
    #[serde(default = "one")]
    pub fade_secs: f32,
    /// Shown only while this holds (`auction.state == closing`).
    #[serde(default)]
    pub show_when: Option<Condition>,
    /// Animations started by show events: `on = { bid_accepted = "pulse 300ms ease-out" }`.
    #[serde(default)]
    pub on: BTreeMap<Trigger, Animation>,
}

fn one() -> f32 {
    1.0
}
fn default_font_size() -> f32 {
    40.0
}
fn default_rows() -> usize {
    5
}
fn default_row_height() -> f32 {
    60.0
}
fn default_type_rate() -> f32 {
    40.0
}
fn default_hold() -> f32 {
    6.0
}

/// A point on the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "toml::Value")]
pub enum Position {
    Point(f32, f32),
    Named(Anchor),
}

impl Default for Position {
    fn default() -> Self {
        Position::Point(0.0, 0.0)
    }
}

impl TryFrom<toml::Value> for Position {
    type Error = String;

    fn try_from(value: toml::Value) -> Result<Self, Self::Error> {
        let number = |value: &toml::Value| match value {
            toml::Value::Integer(n) => Some(*n as f32),
            toml::Value::Float(n) => Some(*n as f32),
            _ => None,
        };
        match &value {
            toml::Value::Array(items) if items.len() == 2 => match (number(&items[0]), number(&items[1])) {
                (Some(x), Some(y)) => Ok(Position::Point(x, y)),
                _ => Err("`at` is [x, y] in numbers".to_owned()),
            },
            toml::Value::String(name) => Anchor::from_name(name).map(Position::Named),
            _ => Err(format!("`at` is [x, y] or one of {}", Anchor::NAMES.join(", "))),
        }
    }
}

/// A point of a box: where `at` is on the layer, or a named point of the canvas.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(try_from = "String")]
pub enum Anchor {
    #[default]
    TopLeft,
    Top,
    TopRight,
    Left,
    Center,
    Right,
    BottomLeft,
    Bottom,
    BottomRight,
}

impl Anchor {
    const NAMES: [&'static str; 9] =
        ["top-left", "top", "top-right", "left", "center", "right", "bottom-left", "bottom", "bottom-right"];
    const ALL: [Anchor; 9] = [
        Anchor::TopLeft,
        Anchor::Top,
        Anchor::TopRight,
        Anchor::Left,
        Anchor::Center,
        Anchor::Right,
        Anchor::BottomLeft,
        Anchor::Bottom,
        Anchor::BottomRight,
    ];

    fn from_name(name: &str) -> Result<Anchor, String> {
        Anchor::NAMES
            .iter()
            .position(|known| *known == name)
            .map(|index| Anchor::ALL[index])
            .ok_or_else(|| format!("unknown anchor {name:?}: one of {}", Anchor::NAMES.join(", ")))
    }

    /// The anchor as fractions of a box, from its top-left: (0, 0) to (1, 1).
    pub fn fraction(self) -> (f32, f32) {
        let index = Anchor::ALL.iter().position(|anchor| *anchor == self).unwrap_or(0);
        ((index % 3) as f32 / 2.0, (index / 3) as f32 / 2.0)
    }
}

impl TryFrom<String> for Anchor {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        Anchor::from_name(&name)
    }
}

/// How a text layer keeps inside its box.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TextFit {
    #[default]
    Wrap,
    Shrink,
    Ellipsis,
}

/// How the lines of a text block line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Justify {
    #[default]
    Left,
    Center,
    Right,
}

/// An sRGB colour written `#rrggbb` or `#rrggbbaa`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Colour(pub [u8; 4]);

impl TryFrom<String> for Colour {
    type Error = String;

    fn try_from(text: String) -> Result<Self, Self::Error> {
        let bad = || format!("colour {text:?} is not #rrggbb or #rrggbbaa");
        let hex = text.strip_prefix('#').ok_or_else(bad)?;
        if !(hex.len() == 6 || hex.len() == 8) || !hex.bytes().all(|byte| byte.is_ascii_hexdigit()) {
            return Err(bad());
        }
        let mut rgba = [255u8; 4];
        for (index, channel) in rgba.iter_mut().enumerate().take(hex.len() / 2) {
            *channel = u8::from_str_radix(&hex[index * 2..index * 2 + 2], 16).map_err(|_| bad())?;
        }
        Ok(Colour(rgba))
    }
}

/// Text with `{field}` placeholders, checked against the fields the show has.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Template {
    pub source: String,
    pub parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Part {
    Literal(String),
    Field(String),
}

impl Template {
    /// The fields the template names.
    pub fn fields(&self) -> impl Iterator<Item = &str> {
        self.parts.iter().filter_map(|part| match part {
            Part::Field(name) => Some(name.as_str()),
            Part::Literal(_) => None,
        })
    }

    /// Fills the placeholders; `None` when a field has no value.
    pub fn render(&self, lookup: impl Fn(&str) -> Option<String>) -> Option<String> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Literal(text) => out.push_str(text),
                Part::Field(name) => out.push_str(&lookup(name)?),
            }
        }
        Some(out)
    }
}

impl TryFrom<String> for Template {
    type Error = String;

    fn try_from(source: String) -> Result<Self, Self::Error> {
        let mut parts = Vec::new();
        let mut rest = source.as_str();
        while let Some(open) = rest.find('{') {
            if open > 0 {
                parts.push(Part::Literal(rest[..open].to_owned()));
            }
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| format!("`{{` without `}}` in {source:?}"))?;
            let name = after[..close].trim();
            if !FIELDS.contains(&name) && !ROW_FIELDS.contains(&name) {
                return Err(format!("unknown field {{{name}}}; the show has {}", FIELDS.join(", ")));
            }
            parts.push(Part::Field(name.to_owned()));
            rest = &after[close + 1..];
        }
        if !rest.is_empty() {
            parts.push(Part::Literal(rest.to_owned()));
        }
        Ok(Template { source, parts })
    }
}

/// When a layer is shown: `field == value`, `field != value`, `field in [a, b]`, or
/// just `field` (set, and not `false`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Condition {
    pub field: String,
    pub test: Test,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Test {
    Set,
    Is(String),
    IsNot(String),
    OneOf(Vec<String>),
}

impl Condition {
    pub fn holds(&self, lookup: impl Fn(&str) -> Option<String>) -> bool {
        let value = lookup(&self.field);
        match &self.test {
            Test::Set => value.is_some_and(|value| !value.is_empty() && value != "false"),
            Test::Is(expected) => value.as_deref() == Some(expected),
            Test::IsNot(expected) => value.as_deref() != Some(expected),
            Test::OneOf(options) => value.is_some_and(|value| options.contains(&value)),
        }
    }
}

impl TryFrom<String> for Condition {
    type Error = String;

    fn try_from(source: String) -> Result<Self, Self::Error> {
        let unquote = |text: &str| text.trim().trim_matches(|c| c == '"' || c == '\'').to_owned();
        let (field, test) = if let Some((field, value)) = source.split_once("!=") {
            (field, Test::IsNot(unquote(value)))
        } else if let Some((field, value)) = source.split_once("==") {
            (field, Test::Is(unquote(value)))
        } else if let Some((field, list)) = source.split_once(" in ") {
            let list = list.trim();
            let inner = list
                .strip_prefix('[')
                .and_then(|list| list.strip_suffix(']'))
                .ok_or_else(|| format!("`in` takes a list such as [open, closing], not {list:?}"))?;
            (field, Test::OneOf(inner.split(',').map(unquote).filter(|value| !value.is_empty()).collect()))
        } else {
            (source.as_str(), Test::Set)
        };
        let field = field.trim();
        if !FIELDS.contains(&field) {
            return Err(format!("unknown field {field:?} in condition; the show has {}", FIELDS.join(", ")));
        }
        Ok(Condition { field: field.to_owned(), test })
    }
}

/// Show events a layer can react to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Trigger {
    /// A bid was accepted on the lot on air.
    BidAccepted,
    /// Anti-snipe moved the end.
    Extended,
    /// The lot closed (sold or not).
    Closed,
    /// The host said something.
    Message,
    /// The host's mood changed.
    Mood,
    /// The scene went on air.
    Enter,
}

/// `pulse 300ms ease-out`: a kind, a duration and an optional easing.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize)]
#[serde(try_from = "String")]
pub struct Animation {
    pub effect: Effect,
    pub secs: f32,
    pub easing: Easing,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    /// Grows and settles back.
    Pulse,
    /// Brightens and settles back.
    Flash,
    /// Fades in from transparent.
    FadeIn,
    /// Slides in from the left.
    SlideIn,
    /// Shakes sideways.
    Shake,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Easing {
    Linear,
    EaseIn,
    EaseOut,
    EaseInOut,
}

impl Easing {
    /// Maps progress 0..=1 through the curve.
    pub fn apply(self, t: f32) -> f32 {
        let t = t.clamp(0.0, 1.0);
        match self {
            Easing::Linear => t,
            Easing::EaseIn => t * t,
            Easing::EaseOut => 1.0 - (1.0 - t) * (1.0 - t),
            Easing::EaseInOut => {
                if t < 0.5 {
                    2.0 * t * t
                } else {
                    1.0 - (-2.0 * t + 2.0).powi(2) / 2.0
                }
            }
        }
    }
}

impl TryFrom<String> for Animation {
    type Error = String;

    fn try_from(source: String) -> Result<Self, Self::Error> {
        let mut words = source.split_whitespace();
        let effect = match words.next() {
            Some("pulse") => Effect::Pulse,
            Some("flash") => Effect::Flash,
            Some("fade-in") => Effect::FadeIn,
            Some("slide-in") => Effect::SlideIn,
            Some("shake") => Effect::Shake,
            other => {
                return Err(format!(
                    "unknown animation {:?}: pulse, flash, fade-in, slide-in or shake",
                    other.unwrap_or("")
                ));
            }
        };
        let duration = words.next().ok_or("an animation needs a duration such as 300ms or 1.5s")?;
        let secs = if let Some(ms) = duration.strip_suffix("ms") {
            ms.parse::<f32>().map(|ms| ms / 1000.0)
        } else if let Some(secs) = duration.strip_suffix('s') {
            secs.parse::<f32>()
        } else {
            "x".parse::<f32>()
        }
        .ok()
        .filter(|secs| *secs > 0.0 && secs.is_finite())
        .ok_or_else(|| format!("duration {duration:?} is not like 300ms or 1.5s"))?;
        let easing = match words.next() {
            None | Some("ease-out") => Easing::EaseOut,
            Some("linear") => Easing::Linear,
            Some("ease-in") => Easing::EaseIn,
            Some("ease-in-out") => Easing::EaseInOut,
            Some(other) => {
                return Err(format!("unknown easing {other:?}: linear, ease-in, ease-out or ease-in-out"));
            }
        };
        if let Some(extra) = words.next() {
            return Err(format!("unexpected {extra:?} after the easing"));
        }
        Ok(Animation { effect, secs, easing })
    }
}

/// A scene file that cannot be used, and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneError {
    pub file: String,
    pub line: u32,
    pub column: u32,
    pub message: String,
}

impl fmt::Display for SceneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}: {}", self.file, self.line, self.column, self.message)
    }
}

impl std::error::Error for SceneError {}

/// 1-based line and column (in characters) of a byte offset.
fn line_column(text: &str, offset: usize) -> (u32, u32) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |last| last.chars().count()) + 1;
    (line as u32, column as u32)
}

/// The raw file: layers kept with their spans so checks across fields can say where.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScene {
    #[serde(default)]
    title: String,
    #[serde(default = "default_canvas")]
    canvas: [f32; 2],
    #[serde(default = "default_background")]
    background: Colour,
    #[serde(default)]
    states: Vec<StateName>,
    #[serde(default)]
    layer: Vec<Spanned<Layer>>,
}

/// Reads and checks a scene file's text. `path` names the file in errors and gives
/// the scene its name.
pub fn parse(path: &Path, text: &str) -> Result<Scene, SceneError> {
    let file = path.display().to_string();
    let at = |offset: usize, message: String| {
        let (line, column) = line_column(text, offset);
        SceneError { file: file.clone(), line, column, message }
    };
    let raw: RawScene = toml::from_str(text).map_err(|error| {
        let offset = error.span().map_or(0, |span| span.start);
        at(offset, error.message().trim().to_owned())
    })?;
    if raw.canvas.iter().any(|side| !(*side >= 16.0 && *side <= 16_384.0)) {
        return Err(at(0, "canvas sides are between 16 and 16384".to_owned()));
    }
    let mut layers = Vec::with_capacity(raw.layer.len());
    let mut seen = std::collections::HashSet::new();
    for spanned in raw.layer {
        let start = spanned.span().start;
        let layer = spanned.into_inner();
        check_layer(&layer).map_err(|message| at(start, format!("layer {:?}: {message}", layer.id)))?;
        if !seen.insert(layer.id.clone()) {
            return Err(at(start, format!("layer id {:?} is used twice", layer.id)));
        }
        layers.push(layer);
    }
    let name = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    Ok(Scene {
        name,
        title: raw.title,
        canvas: raw.canvas,
        background: raw.background,
        states: raw.states,
        layers,
    })
}

/// Checks that concern several fields of a layer.
fn check_layer(layer: &Layer) -> Result<(), String> {
    if layer.id.is_empty() {
        return Err("`id` is empty".to_owned());
    }
    let needs_size = matches!(layer.kind, LayerKind::Panel | LayerKind::Image | LayerKind::Character);
    if needs_size && layer.size.is_none() {
        return Err(format!("a {} layer needs `size = [width, height]`", layer.kind.as_str()));
    }
    if layer.fit != TextFit::Wrap && layer.size.is_none() {
        return Err(
            "`fit = \"shrink\"` or `\"ellipsis\"` needs `size = [width, height]`, the box to fit".to_owned()
        );
    }
    if layer.fit != TextFit::Wrap
        && !matches!(layer.kind, LayerKind::Text | LayerKind::Countdown | LayerKind::Ticker)
    {
        return Err(format!("`fit` is for text layers, not a {} layer", layer.kind.as_str()));
    }
    if layer.size.is_some_and(|[w, h]| !(w > 0.0 && h > 0.0)) {
        return Err("`size` must be positive".to_owned());
    }
    match layer.kind {
        LayerKind::Text if layer.text.is_none() => return Err("a text layer needs `text`".to_owned()),
        LayerKind::Image if layer.image.is_none() => return Err("an image layer needs `image`".to_owned()),
        _ => {}
    }
    if layer.kind != LayerKind::Ticker
        && let Some(field) = layer.text.iter().flat_map(Template::fields).find(|f| ROW_FIELDS.contains(f))
    {
        return Err(format!("{{{field}}} is only known in a ticker's rows"));
    }
    if !(layer.font_size > 0.0 && layer.font_size <= 1000.0) {
        return Err("`font_size` is between 0 and 1000".to_owned());
    }
    if !(0.0..=1.0).contains(&layer.opacity) {
        return Err("`opacity` is between 0 and 1".to_owned());
    }
    if layer.rows == 0 || layer.rows > 50 {
        return Err("`rows` is between 1 and 50".to_owned());
    }
    if let Some(font) = &layer.font {
        safe_asset_path(font)?;
    }
    for image in layer.image.iter().chain(layer.fallback.iter().filter(|_| layer.kind == LayerKind::Image)) {
        if image.fields().next().is_none() {
            safe_asset_path(&image.source)?;
        }
    }
    Ok(())
}

/// An asset path must stay inside the assets folder.
pub fn safe_asset_path(path: &str) -> Result<(), String> {
    let escapes = Path::new(path)
        .components()
        .any(|part| !matches!(part, std::path::Component::Normal(_) | std::path::Component::CurDir));
    if path.is_empty() || escapes {
        Err(format!("{path:?} must be a relative path inside assets/"))
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(text: &str) -> Result<Scene, SceneError> {
        parse(Path::new("scenes/test.toml"), text)
    }

    #[test]
    fn a_scene_reads_with_its_layers_and_defaults() {
        let scene = parse_text(
            r##"
states = ["open", "closing"]

[[layer]]
id = "bid"
kind = "text"
at = "center"
offset = [0, -40]
text = "{auction.high_bid.amount} ETH"
else = "No bids yet"
color = "#d4b038"
show_when = "auction.state in [open, closing]"
on = { bid_accepted = "pulse 300ms ease-out" }
"##,
        )
        .expect("valid");
        assert_eq!(scene.name, "test");
        assert_eq!(scene.canvas, [1920.0, 1080.0]);
        assert_eq!(scene.states, vec![StateName::Open, StateName::Closing]);
        let layer = &scene.layers[0];
        assert_eq!(layer.at, Position::Named(Anchor::Center));
        assert_eq!(layer.color, Some(Colour([0xd4, 0xb0, 0x38, 0xff])));
        assert_eq!(layer.on[&Trigger::BidAccepted].effect, Effect::Pulse);
        assert!((layer.on[&Trigger::BidAccepted].secs - 0.3).abs() < 1e-6);
        let text = layer.text.as_ref().expect("text");
        assert_eq!(text.render(|_| Some("1.5".into())).as_deref(), Some("1.5 ETH"));
        assert_eq!(text.render(|_| None), None);
    }

    #[test]
    fn a_bad_value_is_reported_at_its_line_and_column() {
        let error =
            parse_text("[[layer]]\nid = \"a\"\nkind = \"panel\"\nsize = [1, 1]\ncolor = \"#12345\"\n")
                .expect_err("bad colour");
        assert_eq!((error.line, error.column), (5, 9), "{error}");
        assert!(error.message.contains("#12345"), "{error}");
        assert!(error.to_string().starts_with("scenes/test.toml:5:9: "), "{error}");
    }

    #[test]
    fn unknown_fields_kinds_and_placeholders_are_named() {
        let typo = parse_text("[[layer]]\nid = \"a\"\nkind = \"text\"\ntext = \"x\"\ncolour = \"#fff\"\n")
            .expect_err("typo");
        assert_eq!(typo.line, 5, "{typo}");
        assert!(typo.message.contains("colour"), "{typo}");
        let kind = parse_text("[[layer]]\nid = \"a\"\nkind = \"hologram\"\n").expect_err("kind");
        assert_eq!(kind.line, 3, "{kind}");
        let field = parse_text("[[layer]]\nid = \"a\"\nkind = \"text\"\ntext = \"{auction.hihg_bid}\"\n")
            .expect_err("field");
        assert_eq!((field.line, field.column), (4, 8), "{field}");
        assert!(field.message.contains("auction.hihg_bid"), "{field}");
        let syntax = parse_text("[[layer]]\nid = \"a\nkind = \"text\"\n").expect_err("syntax");
        assert_eq!(syntax.line, 2, "{syntax}");
    }

    #[test]
    fn checks_across_fields_point_at_the_layer() {
        let error =
            parse_text("title = \"x\"\n\n[[layer]]\nid = \"card\"\nkind = \"panel\"\n").expect_err("size");
        assert!(error.message.contains("needs `size"), "{error}");
        assert!((3..=4).contains(&error.line), "{error}");
        let unboxed = parse_text("[[layer]]\nid = \"t\"\nkind = \"text\"\ntext = \"x\"\nfit = \"shrink\"\n")
            .expect_err("fit without a box");
        assert!(unboxed.message.contains("the box to fit"), "{unboxed}");
        let panel =
            parse_text("[[layer]]\nid = \"p\"\nkind = \"panel\"\nsize = [1, 1]\nfit = \"ellipsis\"\n")
                .expect_err("fit on a panel");
        assert!(panel.message.contains("for text layers"), "{panel}");
        let unknown =
            parse_text("[[layer]]\nid = \"t\"\nkind = \"text\"\nsize = [1, 1]\nfit = \"squeeze\"\n")
                .expect_err("unknown fit");
        assert_eq!(unknown.line, 5, "{unknown}");
        let twice = parse_text(
            "[[layer]]\nid = \"a\"\nkind = \"countdown\"\n[[layer]]\nid = \"a\"\nkind = \"countdown\"\n",
        )
        .expect_err("twice");
        assert!(twice.message.contains("twice"), "{twice}");
        let escape =
            parse_text("[[layer]]\nid = \"a\"\nkind = \"image\"\nsize = [1, 1]\nimage = \"../x.png\"\n")
                .expect_err("escape");
        assert!(escape.message.contains("inside assets"), "{escape}");
    }

    #[test]
    fn conditions_compare_show_fields() {
        let condition = Condition::try_from("auction.state in [open, closing]".to_owned()).expect("in");
        assert!(condition.holds(|_| Some("closing".into())));
        assert!(!condition.holds(|_| Some("closed".into())));
        let set = Condition::try_from("auction.extended".to_owned()).expect("set");
        assert!(set.holds(|_| Some("true".into())));
        assert!(!set.holds(|_| Some("false".into())));
        assert!(!set.holds(|_| None));
        let not = Condition::try_from("auction.state != 'open'".to_owned()).expect("not");
        assert!(not.holds(|_| Some("closed".into())));
        assert!(Condition::try_from("auction.colour == red".to_owned()).is_err());
    }

    #[test]
    fn animations_read_effect_duration_and_easing() {
        let animation = Animation::try_from("slide-in 1.5s linear".to_owned()).expect("valid");
        assert_eq!((animation.effect, animation.easing), (Effect::SlideIn, Easing::Linear));
        assert!((animation.secs - 1.5).abs() < 1e-6);
        assert!(Animation::try_from("pulse".to_owned()).is_err());
        assert!(Animation::try_from("pulse -3ms".to_owned()).is_err());
        assert!(Animation::try_from("wobble 1s".to_owned()).is_err());
        assert!((Easing::EaseOut.apply(0.5) - 0.75).abs() < 1e-6);
    }

    #[test]
    fn anchors_are_fractions_of_a_box() {
        assert_eq!(Anchor::TopLeft.fraction(), (0.0, 0.0));
        assert_eq!(Anchor::Center.fraction(), (0.5, 0.5));
        assert_eq!(Anchor::BottomRight.fraction(), (1.0, 1.0));
        assert_eq!(Anchor::Top.fraction(), (0.5, 0.0));
    }
}
