//! The default broadcast scene: entities for every visible thing, and the systems
//! that keep them in step with the [`Show`].

use bevy::prelude::*;

use crate::show::{Show, TICKER_LEN};

/// The output size the scene is laid out for.
#[derive(Debug, Clone, Copy, Resource)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
}

impl Canvas {
    /// A length given in 1920-wide units, scaled to this canvas.
    fn px(self, units: f32) -> f32 {
        units * self.width as f32 / 1920.0
    }

    /// A position given from the top-left corner in 1920×1080 units, in world space
    /// (origin at the centre, y up).
    fn at(self, x: f32, y: f32, z: f32) -> Transform {
        Transform::from_xyz(self.px(x) - self.width as f32 / 2.0, self.height as f32 / 2.0 - self.px(y), z)
    }
}

#[derive(Component)]
pub struct CountdownText;
#[derive(Component)]
pub struct CurrentBidText;
#[derive(Component)]
pub struct TitleText;
#[derive(Component)]
pub struct TickerLine(pub usize);
#[derive(Component)]
pub struct CaptionText;
/// Pulses when a new bid is accepted.
#[derive(Component, Default)]
pub struct Pulse {
    pub left_secs: f32,
}

const GOLD: Color = Color::srgb(0.83, 0.69, 0.22);
const INK: Color = Color::srgb(0.93, 0.92, 0.90);
const MUTED: Color = Color::srgb(0.60, 0.62, 0.66);

fn panel(canvas: Canvas, color: Color, x: f32, y: f32, w: f32, h: f32, z: f32) -> (Sprite, Transform) {
    // Sprites are placed by their centre.
    (Sprite::from_color(color, Vec2::new(canvas.px(w), canvas.px(h))), canvas.at(x + w / 2.0, y + h / 2.0, z))
}

fn text(canvas: Canvas, value: &str, size: f32, color: Color) -> (Text2d, TextFont, TextColor) {
    (Text2d::new(value), TextFont::from_font_size(canvas.px(size)), TextColor(color))
}

/// Spawns the layers of the default scene.
pub fn spawn(mut commands: Commands, canvas: Res<Canvas>) {
    let canvas = *canvas;
    commands.spawn(panel(canvas, Color::srgb(0.06, 0.07, 0.09), 0.0, 0.0, 1920.0, 1080.0, 0.0));
    commands.spawn(panel(canvas, Color::srgb(0.10, 0.11, 0.14), 60.0, 60.0, 1100.0, 820.0, 1.0));
    commands.spawn(panel(canvas, GOLD, 60.0, 60.0, 1100.0, 8.0, 2.0));
    commands.spawn(panel(canvas, Color::srgb(0.10, 0.11, 0.14), 1220.0, 60.0, 640.0, 820.0, 1.0));
    commands.spawn(panel(canvas, Color::srgb(0.55, 0.10, 0.12), 0.0, 960.0, 1920.0, 120.0, 1.0));
    commands.spawn((text(canvas, "SothebAIs LIVE", 40.0, GOLD), canvas.at(610.0, 130.0, 3.0)));
    commands.spawn((text(canvas, "", 56.0, INK), canvas.at(610.0, 260.0, 3.0), TitleText));
    commands.spawn((text(canvas, "CURRENT BID", 32.0, MUTED), canvas.at(610.0, 420.0, 3.0)));
    commands.spawn((
        text(canvas, "", 84.0, GOLD),
        canvas.at(610.0, 520.0, 3.0),
        CurrentBidText,
        Pulse::default(),
    ));
    commands.spawn((text(canvas, "", 96.0, INK), canvas.at(610.0, 730.0, 3.0), CountdownText));
    commands.spawn((text(canvas, "LATEST BIDS", 32.0, MUTED), canvas.at(1540.0, 130.0, 3.0)));
    for index in 0..TICKER_LEN {
        let y = 230.0 + 110.0 * index as f32;
        commands.spawn((text(canvas, "", 40.0, INK), canvas.at(1540.0, y, 3.0), TickerLine(index)));
    }
    commands.spawn((text(canvas, "", 40.0, INK), canvas.at(960.0, 920.0, 3.0), CaptionText));
    commands.spawn((
        text(canvas, "Reply \"@SothebAIs bid 1.5\" on X to bid", 44.0, INK),
        canvas.at(960.0, 1020.0, 3.0),
    ));
}

/// Writes the show's state into the texts, every frame (the countdown moves).
#[allow(clippy::type_complexity, reason = "one query per kind of text")]
pub fn update_texts(
    show: Res<Show>,
    mut texts: ParamSet<(
        Query<&mut Text2d, With<TitleText>>,
        Query<(&mut Text2d, &mut TextColor), With<CountdownText>>,
        Query<&mut Text2d, With<CurrentBidText>>,
        Query<(&mut Text2d, &TickerLine)>,
        Query<&mut Text2d, With<CaptionText>>,
    )>,
) {
    let now = chrono::Utc::now();
    for mut title in &mut texts.p0() {
        set(&mut title, &show.title);
    }
    for (mut countdown, mut color) in &mut texts.p1() {
        set(&mut countdown, &show.countdown(now));
        color.0 = if show.final_seconds(now) { Color::srgb(0.95, 0.30, 0.25) } else { INK };
    }
    for mut bid in &mut texts.p2() {
        set(&mut bid, &show.current_bid());
    }
    let lines = show.ticker_lines();
    for (mut line, TickerLine(index)) in &mut texts.p3() {
        set(&mut line, lines.get(*index).map_or("", String::as_str));
    }
    for mut caption in &mut texts.p4() {
        set(&mut caption, show.caption.as_deref().unwrap_or(""));
    }
}

/// Changes a text only when it differs, so unchanged text is not laid out again.
fn set(text: &mut Text2d, value: &str) {
    if text.0 != value {
        value.clone_into(&mut text.0);
    }
}

/// Starts the current bid's pulse when the high bid changes.
pub fn start_pulse(show: Res<Show>, mut last: Local<Option<String>>, mut pulses: Query<&mut Pulse>) {
    let current = show.high_bid.as_ref().map(|bid| format!("{}{}", bid.amount, bid.handle));
    if current != *last {
        if current.is_some() {
            for mut pulse in &mut pulses {
                pulse.left_secs = PULSE_SECS;
            }
        }
        *last = current;
    }
}

/// How long the pulse lasts.
pub const PULSE_SECS: f32 = 0.3;

/// Scales a pulsing entity up and back (ease-out) over [`PULSE_SECS`].
pub fn animate_pulse(time: Res<Time>, mut pulses: Query<(&mut Pulse, &mut Transform)>) {
    for (mut pulse, mut transform) in &mut pulses {
        pulse.left_secs = (pulse.left_secs - time.delta_secs()).max(0.0);
        let progress = 1.0 - pulse.left_secs / PULSE_SECS;
        let scale = if pulse.left_secs > 0.0 { 1.0 + 0.25 * (1.0 - progress).powi(2) } else { 1.0 };
        transform.scale = Vec3::splat(scale);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::show::{Phase, TickerBid};

    /// A bare app with the text system and one entity per kind of text.
    fn app(show: Show) -> App {
        let mut app = App::new();
        app.insert_resource(show).add_systems(Update, (update_texts, start_pulse));
        app.world_mut().spawn((Text2d::default(), TextColor(INK), CountdownText));
        app.world_mut().spawn((Text2d::default(), CurrentBidText, Pulse::default()));
        for index in 0..TICKER_LEN {
            app.world_mut().spawn((Text2d::default(), TickerLine(index)));
        }
        app
    }

    fn text_of<C: Component>(app: &mut App) -> String {
        let mut query = app.world_mut().query_filtered::<&Text2d, With<C>>();
        query.single(app.world()).map(|text| text.0.clone()).expect("one text")
    }

    #[test]
    fn the_countdown_text_follows_ends_at_and_turns_red_at_the_end() {
        let ends_at = chrono::Utc::now() + chrono::TimeDelta::seconds(75);
        let mut app = app(Show { phase: Phase::Open, ends_at: Some(ends_at), ..Show::default() });
        app.update();
        assert!(["1:15", "1:14"].contains(&text_of::<CountdownText>(&mut app).as_str()));
        app.world_mut().resource_mut::<Show>().ends_at =
            Some(chrono::Utc::now() + chrono::TimeDelta::seconds(5));
        app.update();
        let mut colors = app.world_mut().query_filtered::<&TextColor, With<CountdownText>>();
        assert_ne!(colors.single(app.world()).expect("one").0, INK, "the last seconds change style");
    }

    #[test]
    fn an_accepted_bid_updates_the_current_bid_and_the_ticker_and_pulses() {
        let mut app = app(Show::default());
        app.update();
        assert_eq!(text_of::<CurrentBidText>(&mut app), "No bids yet");
        app.world_mut()
            .resource_mut::<Show>()
            .accept(TickerBid { handle: "alice".into(), amount: "1.5".into() });
        app.update();
        assert_eq!(text_of::<CurrentBidText>(&mut app), "1.5 ETH  @alice");
        let mut lines = app.world_mut().query::<(&Text2d, &TickerLine)>();
        let first = lines.iter(app.world()).find(|(_, line)| line.0 == 0).map(|(text, _)| text.0.clone());
        assert_eq!(first.as_deref(), Some("@alice  1.5 ETH"));
        let mut pulses = app.world_mut().query::<&Pulse>();
        assert!(pulses.iter(app.world()).all(|pulse| pulse.left_secs > 0.0), "the new bid pulses");
    }
}
