//! The scene on air as Bevy entities: spawned from the active [`Scene`], kept in
//! step with the [`Show`] every frame, animated on show events, and rebuilt when the
//! scene changes (a saved file, a state change, an operator's pick) while the
//! output keeps running.

use std::collections::HashMap;
use std::sync::Arc;

use bevy::prelude::*;
use bevy::sprite::Anchor as SpriteAnchor;
use bevy::text::{FontSource, Justify as TextJustify, TextBounds};

use super::assets::AssetFiles;
use super::fit::{TextFitting, cut};
use super::format::{Anchor, Colour, Effect, Justify, Layer, LayerKind, Position, Scene, TextFit, Trigger};
use super::library::{Change, Library};
use crate::character::{self, Character};
use crate::show::Show;

/// The output size the scene is scaled to.
#[derive(Debug, Clone, Copy, Resource)]
pub struct Canvas {
    pub width: u32,
    pub height: u32,
}

/// Maps a scene's logical canvas onto the output (uniform scale, centred).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fit {
    pub scale: f32,
    origin: Vec2,
    logical: Vec2,
}

impl Fit {
    pub fn new(canvas: Canvas, logical: [f32; 2]) -> Fit {
        let output = Vec2::new(canvas.width as f32, canvas.height as f32);
        let logical = Vec2::from(logical);
        let scale = (output.x / logical.x).min(output.y / logical.y);
        // World space has its origin at the centre of the output, y up.
        let origin = Vec2::new(-logical.x * scale / 2.0, logical.y * scale / 2.0);
        Fit { scale, origin, logical }
    }

    /// A logical point (from the top-left, y down) in world space.
    pub fn point(self, x: f32, y: f32) -> Vec2 {
        Vec2::new(self.origin.x + x * self.scale, self.origin.y - y * self.scale)
    }

    /// Where a layer's `at` and `offset` put its anchor point, in world space.
    pub fn place(self, at: Position, offset: [f32; 2]) -> Vec2 {
        let (x, y) = match at {
            Position::Point(x, y) => (x, y),
            Position::Named(anchor) => {
                let (fx, fy) = anchor.fraction();
                (fx * self.logical.x, fy * self.logical.y)
            }
        };
        self.point(x + offset[0], y + offset[1])
    }
}

/// Bevy's anchor (centre-relative, y up) for one of ours (top-left-relative, y down).
fn sprite_anchor(anchor: Anchor) -> SpriteAnchor {
    let (fx, fy) = anchor.fraction();
    SpriteAnchor(Vec2::new(fx - 0.5, 0.5 - fy))
}

pub fn colour(colour: Colour) -> Color {
    let [r, g, b, a] = colour.0;
    Color::srgba_u8(r, g, b, a)
}

const INK: Colour = Colour([0xee, 0xeb, 0xe6, 0xff]);

/// An entity drawn for a layer of the scene on air.
#[derive(Debug, Component)]
pub struct Node {
    /// Index of the layer in the scene.
    pub layer: usize,
    /// The ticker row this entity shows.
    pub row: Option<usize>,
    base: Vec3,
    base_colour: Color,
}

/// An animation running on a node.
#[derive(Debug, Component)]
pub struct Playing {
    pub effect: Effect,
    pub easing: super::format::Easing,
    pub secs: f32,
    pub elapsed: f32,
}

/// The scene on air.
#[derive(Debug, Resource, Default)]
pub struct OnAir {
    pub scene: Option<Arc<Scene>>,
    pub version: u64,
    pub fit: Option<Fit>,
}

/// Operator changes to layers (`POST /api/stream/layers/{id}`), kept until the
/// scene's file changes them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Patch {
    pub visible: Option<bool>,
    pub text: Option<String>,
    pub position: Option<[f32; 2]>,
    pub opacity: Option<f32>,
    pub z: Option<f32>,
}

#[derive(Debug, Resource, Default)]
pub struct Overrides(pub HashMap<String, Patch>);

/// What the scene systems report to the rest of the renderer (logs, API, events).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SceneNews {
    /// The scene on air changed (name).
    OnAir(String),
    Changed(Change),
    AssetLoaded(String),
}

/// Scene news not yet handed on.
#[derive(Debug, Resource, Default)]
pub struct News(pub Vec<SceneNews>);

/// Puts the right scene on air: rebuilt when another scene is picked or the one on
/// air was saved with changes.
#[allow(clippy::too_many_arguments, reason = "a Bevy system takes what it touches")]
pub fn switch_scene(
    mut commands: Commands,
    library: Res<Library>,
    mut show: ResMut<Show>,
    canvas: Res<Canvas>,
    mut on_air: ResMut<OnAir>,
    mut overrides: ResMut<Overrides>,
    nodes: Query<Entity, With<Node>>,
    mut files: ResMut<AssetFiles>,
    mut images: ResMut<Assets<Image>>,
    mut news: ResMut<News>,
) {
    let state = show.state(chrono::Utc::now());
    let Some((scene, version)) = library.pick(state) else { return };
    let same =
        on_air.scene.as_ref().is_some_and(|current| current.name == scene.name) && on_air.version == version;
    if same {
        return;
    }
    let renamed = on_air.scene.as_ref().is_none_or(|current| current.name != scene.name);
    if !renamed {
        // The file changed: its values win over the operator's patches.
        overrides.0.clear();
    }
    for entity in &nodes {
        commands.entity(entity).despawn();
    }
    let fit = Fit::new(*canvas, scene.canvas);
    for (index, layer) in scene.layers.iter().enumerate() {
        spawn_layer(&mut commands, index, layer, fit, &mut files, &mut images);
    }
    commands.insert_resource(ClearColor(colour(scene.background)));
    info!("scene {} on air ({} layers)", scene.name, scene.layers.len());
    news.0.push(SceneNews::OnAir(scene.name.clone()));
    on_air.scene = Some(scene);
    on_air.version = version;
    on_air.fit = Some(fit);
    show.triggers.push(Trigger::Enter);
}

fn text_font(layer: &Layer, fit: Fit, files: &mut AssetFiles) -> TextFont {
    let font = TextFont::from_font_size(layer.font_size * fit.scale);
    match layer.font.as_deref().and_then(|path| files.font(path)) {
        Some(handle) => TextFont { font: FontSource::Handle(handle), ..font },
        None => font,
    }
}

fn spawn_layer(
    commands: &mut Commands,
    index: usize,
    layer: &Layer,
    fit: Fit,
    files: &mut AssetFiles,
    images: &mut Assets<Image>,
) {
    let place = fit.place(layer.at, layer.offset);
    let base = place.extend(layer.z);
    let base_colour = colour(layer.color.unwrap_or(INK));
    let size = layer.size.map(|[w, h]| Vec2::new(w, h) * fit.scale);
    let node = |row: Option<usize>, base: Vec3| Node { layer: index, row, base, base_colour };
    let anchor = sprite_anchor(layer.anchor);
    match layer.kind {
        LayerKind::Panel => {
            commands.spawn((
                Sprite::from_color(base_colour, size.unwrap_or(Vec2::ONE)),
                anchor,
                Transform::from_translation(base),
                node(None, base),
            ));
        }
        LayerKind::Image => {
            let mut sprite = Sprite::from_color(Color::NONE, size.unwrap_or(Vec2::ONE));
            let fixed = layer.image.as_ref().filter(|image| image.fields().next().is_none());
            if let Some(handle) = fixed.and_then(|image| files.image(&image.source)) {
                sprite.image = handle;
                sprite.color = Color::WHITE;
            }
            commands.spawn((sprite, anchor, Transform::from_translation(base), node(None, base)));
        }
        LayerKind::Text | LayerKind::Countdown | LayerKind::Captions => {
            let justify = match layer.justify {
                Justify::Left => TextJustify::Left,
                Justify::Center => TextJustify::Center,
                Justify::Right => TextJustify::Right,
            };
            // Wrapped at the box's width, or one line fitted into the box.
            let wraps = layer.fit == TextFit::Wrap;
            let mut entity = commands.spawn((
                Text2d::default(),
                text_font(layer, fit, files),
                TextColor(base_colour),
                TextLayout::justify(justify),
                TextBounds { width: size.filter(|_| wraps).map(|size| size.x), height: None },
                anchor,
                Transform::from_translation(base),
                node(None, base),
            ));
            if let Some(size) = size.filter(|_| !wraps) {
                entity.insert(TextFitting::new(layer.fit, size));
            }
        }
        LayerKind::Ticker => {
            for row in 0..layer.rows {
                let base = (place - Vec2::Y * layer.row_height * fit.scale * row as f32).extend(layer.z);
                let mut entity = commands.spawn((
                    Text2d::default(),
                    text_font(layer, fit, files),
                    TextColor(base_colour),
                    anchor,
                    Transform::from_translation(base),
                    node(Some(row), base),
                ));
                if let Some(size) = size.filter(|_| layer.fit != TextFit::Wrap) {
                    entity.insert(TextFitting::new(layer.fit, size));
                }
            }
        }
        LayerKind::Character => {
            let size = size.unwrap_or(Vec2::splat(200.0));
            // The character is drawn around its centre; move the anchor point there.
            let (fx, fy) = layer.anchor.fraction();
            let centre = place + Vec2::new((0.5 - fx) * size.x, (fy - 0.5) * size.y);
            let base = centre.extend(layer.z);
            let entity = commands
                .spawn((
                    Transform::from_translation(base),
                    Visibility::default(),
                    node(None, base),
                    Character::default(),
                ))
                .id();
            character::spawn_face(commands, entity, size, base_colour, images);
        }
    }
}

/// Writes the show into the layers: texts, visibility, colours, positions.
#[allow(clippy::type_complexity, reason = "one query for every kind of node")]
pub fn update_nodes(
    show: Res<Show>,
    on_air: Res<OnAir>,
    overrides: Res<Overrides>,
    mut files: ResMut<AssetFiles>,
    mut nodes: Query<(
        &Node,
        &mut Transform,
        &mut Visibility,
        Option<&mut Text2d>,
        Option<&mut TextColor>,
        Option<&mut Sprite>,
        Option<&mut TextFitting>,
    )>,
) {
    let Some(scene) = on_air.scene.as_ref() else { return };
    let Some(fit) = on_air.fit else { return };
    let now = chrono::Utc::now();
    let lookup = |name: &str| show.field(name, now);
    let rows: Vec<_> = show.ticker().collect();
    for (node, mut transform, mut visibility, text, text_colour, sprite, fitting) in &mut nodes {
        let Some(layer) = scene.layers.get(node.layer) else { continue };
        let patch = overrides.0.get(&layer.id);
        let mut shown = layer.show_when.as_ref().is_none_or(|condition| condition.holds(lookup));
        let mut opacity = layer.opacity;
        let mut colour = node.base_colour;
        let mut content: Option<String> = None;
        let mut image: Option<Option<Handle<Image>>> = None;
        match layer.kind {
            LayerKind::Text => {
                content = Some(
                    layer
                        .text
                        .as_ref()
                        .and_then(|template| template.render(lookup))
                        .or_else(|| layer.fallback.as_ref().and_then(|template| template.render(lookup)))
                        .unwrap_or_default(),
                );
            }
            LayerKind::Countdown => {
                content = Some(show.countdown(now));
                if show.final_seconds(now)
                    && let Some(final_colour) = layer.final_color
                {
                    colour = self::colour(final_colour);
                }
            }
            LayerKind::Ticker => {
                let row = node.row.and_then(|row| rows.get(row));
                content = Some(match (row, &layer.text) {
                    (Some(bid), Some(template)) => {
                        template.render(|name| bid.field(name).or_else(|| lookup(name))).unwrap_or_default()
                    }
                    (Some(bid), None) => format!("@{}  {} ETH", bid.handle, bid.amount),
                    (None, _) => String::new(),
                });
            }
            LayerKind::Captions => {
                let (typed, alpha) = match &show.line {
                    Some(line) => {
                        caption(&line.text, (now - line.started).as_seconds_f32(), layer, line.speech_secs)
                    }
                    None => (String::new(), 0.0),
                };
                content = Some(typed);
                opacity *= alpha;
            }
            LayerKind::Image => {
                if layer.image.as_ref().is_some_and(|image| image.fields().next().is_some()) {
                    let (first, fallback) = image_sources(layer, lookup);
                    image =
                        Some(first.and_then(|path| files.image(&path)).or_else(|| files.image(&fallback?)));
                }
            }
            LayerKind::Panel | LayerKind::Character => {}
        }
        let mut base = node.base;
        if let Some(patch) = patch {
            shown = patch.visible.unwrap_or(shown);
            opacity = patch.opacity.unwrap_or(opacity);
            if let Some(text) = &patch.text {
                content = Some(text.clone());
            }
            if let Some([x, y]) = patch.position {
                let moved = fit.point(x, y);
                let row_shift = node.base.truncate() - fit.place(layer.at, layer.offset);
                base = (moved + row_shift).extend(base.z);
            }
            if let Some(z) = patch.z {
                base.z = z;
            }
        }
        // Only what changed is written: an unchanged component is not re-extracted,
        // re-laid out or propagated on the next frame.
        // A fitted text: the scale that fits its box, or its cut.
        let mut scale = Vec3::ONE;
        if let Some(mut fitting) = fitting {
            scale = Vec3::new(fitting.scale, fitting.scale, 1.0);
            if let Some(full) = content.take() {
                if fitting.full != full {
                    fitting.full.clone_from(&full);
                    fitting.keep = None;
                }
                content = Some(match fitting.keep {
                    Some(keep) => cut(&full, keep),
                    None => full,
                });
            }
        }
        if transform.translation != base || transform.scale != scale {
            transform.translation = base;
            transform.scale = scale;
        }
        visibility.set_if_neq(if shown { Visibility::Inherited } else { Visibility::Hidden });
        let colour = colour.with_alpha(colour.alpha() * opacity);
        if let Some(mut text) = text
            && let Some(content) = content
            && text.0 != content
        {
            text.0 = content;
        }
        if let Some(mut text_colour) = text_colour {
            text_colour.set_if_neq(TextColor(colour));
        }
        if let Some(mut sprite) = sprite {
            match layer.kind {
                LayerKind::Panel if sprite.color != colour => sprite.color = colour,
                LayerKind::Image => {
                    if let Some(handle) = image {
                        match handle {
                            Some(handle) if sprite.image != handle => sprite.image = handle,
                            Some(_) => {}
                            None => *visibility = Visibility::Hidden,
                        }
                    }
                    // An image keeps its own colours; only the opacity applies.
                    if sprite.image != Handle::default() && sprite.color != Color::WHITE.with_alpha(opacity) {
                        sprite.color = Color::WHITE.with_alpha(opacity);
                    }
                }
                _ => {}
            }
        }
    }
}

/// The picture an image layer asks for now, and its `else` picture (paths under
/// the assets folder; a remote URL is never a path).
pub fn image_sources(
    layer: &Layer,
    lookup: impl Fn(&str) -> Option<String>,
) -> (Option<String>, Option<String>) {
    let render = |template: Option<&super::format::Template>| {
        template.and_then(|template| template.render(&lookup)).filter(|path| !path.contains("://"))
    };
    (render(layer.image.as_ref()), render(layer.fallback.as_ref()))
}

/// A caption `secs` after its line started: the characters typed so far and the
/// opacity (fading after the hold). A spoken line is revealed over its speech's
/// `speech_secs`, in step with the voice; others at the layer's `chars_per_sec`.
pub fn caption(text: &str, secs: f32, layer: &Layer, speech_secs: Option<f32>) -> (String, f32) {
    let secs = secs.max(0.0);
    let count = text.chars().count();
    let typing_secs = speech_secs.filter(|secs| *secs > 0.1).unwrap_or(count as f32 / layer.chars_per_sec);
    let typed = ((secs / typing_secs * count as f32) as usize).min(count);
    let fading = secs - typing_secs - layer.hold_secs;
    let alpha = if fading <= 0.0 { 1.0 } else { (1.0 - fading / layer.fade_secs.max(0.001)).max(0.0) };
    (text.chars().take(typed).collect(), alpha)
}

/// Starts the animations the scene binds to the show events of this frame.
pub fn start_animations(
    mut commands: Commands,
    mut show: ResMut<Show>,
    on_air: Res<OnAir>,
    nodes: Query<(Entity, &Node)>,
) {
    if show.triggers.is_empty() {
        return;
    }
    let triggers = std::mem::take(&mut show.triggers);
    let Some(scene) = on_air.scene.as_ref() else { return };
    for (entity, node) in &nodes {
        let Some(layer) = scene.layers.get(node.layer) else { continue };
        // A ticker animates its newest row only.
        if node.row.is_some_and(|row| row > 0) {
            continue;
        }
        for trigger in &triggers {
            if let Some(animation) = layer.on.get(trigger) {
                commands.entity(entity).insert(Playing {
                    effect: animation.effect,
                    easing: animation.easing,
                    secs: animation.secs,
                    elapsed: 0.0,
                });
            }
        }
    }
}

/// Moves the animations on, over what `update_nodes` set this frame.
#[allow(clippy::type_complexity, reason = "one query for every kind of animated node")]
pub fn animate(
    mut commands: Commands,
    time: Res<Time>,
    on_air: Res<OnAir>,
    mut playing: Query<(Entity, &mut Playing, &mut Transform, Option<&mut TextColor>, Option<&mut Sprite>)>,
) {
    let scale = on_air.fit.map_or(1.0, |fit| fit.scale);
    for (entity, mut play, mut transform, text_colour, sprite) in &mut playing {
        play.elapsed += time.delta_secs();
        let progress = play.easing.apply(play.elapsed / play.secs);
        let left = 1.0 - progress;
        match play.effect {
            Effect::Pulse => transform.scale *= 1.0 + 0.25 * left,
            Effect::SlideIn => transform.translation.x -= 240.0 * scale * left,
            Effect::Shake => transform.translation.x += (play.elapsed * 60.0).sin() * 12.0 * scale * left,
            Effect::Flash | Effect::FadeIn => {
                let change = |colour: Color| match play.effect {
                    Effect::Flash => colour.mix(&Color::WHITE, left),
                    _ => colour.with_alpha(colour.alpha() * progress),
                };
                if let Some(mut text_colour) = text_colour {
                    text_colour.0 = change(text_colour.0);
                }
                if let Some(mut sprite) = sprite {
                    sprite.color = change(sprite.color);
                }
            }
        }
        if play.elapsed >= play.secs {
            commands.entity(entity).remove::<Playing>();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    use crate::show::Snapshot;
    use crate::show::tests::{accepted, at, auction};
    use bevy::text::TextLayoutInfo;

    fn scene(text: &str) -> Scene {
        super::super::format::parse(Path::new("t.toml"), text).expect("scene")
    }

    #[test]
    fn the_canvas_is_scaled_and_centred() {
        let fit = Fit::new(Canvas { width: 1280, height: 720 }, [1920.0, 1080.0]);
        assert!((fit.scale - 2.0 / 3.0).abs() < 1e-6);
        assert_eq!(fit.point(0.0, 0.0), Vec2::new(-640.0, 360.0));
        assert_eq!(fit.point(1920.0, 1080.0), Vec2::new(640.0, -360.0));
        assert_eq!(fit.place(Position::Named(Anchor::Center), [0.0, 0.0]), Vec2::ZERO);
        assert_eq!(fit.place(Position::Named(Anchor::BottomRight), [-30.0, 0.0]), Vec2::new(620.0, -360.0));
    }

    #[test]
    fn captions_type_out_then_fade() {
        let layer = &scene("[[layer]]\nid = \"c\"\nkind = \"captions\"\nchars_per_sec = 10\nhold_secs = 2\n")
            .layers[0];
        assert_eq!(caption("hello world", 0.5, layer, None), ("hello".to_owned(), 1.0));
        assert_eq!(caption("hello world", 3.0, layer, None).0, "hello world");
        // Spoken over 5.5 s: half of it at 2.75 s.
        assert_eq!(caption("hello world", 2.75, layer, Some(5.5)).0, "hello");
        let (_, fading) = caption("hello world", 1.1 + 2.0 + 0.5, layer, None);
        assert!((fading - 0.5).abs() < 0.01, "{fading}");
        assert_eq!(caption("hello world", 10.0, layer, None).1, 0.0);
    }

    /// A bare app with the scene plugin in its stages and no renderer.
    fn app(scene_text: &str) -> App {
        let dir = tempfile::tempdir().expect("dir");
        let app = app_in(dir.path(), scene_text);
        // Keep the folder alive as long as the app.
        std::mem::forget(dir);
        app
    }

    /// The app with its scenes and assets in `dir`.
    fn app_in(dir: &Path, scene_text: &str) -> App {
        std::fs::write(dir.join("default.toml"), scene_text).expect("write");
        let mut app = App::new();
        app.add_plugins((
            MinimalPlugins,
            AssetPlugin::default(),
            crate::stage::StagesPlugin,
            crate::scene::ScenePlugin { scenes: dir.to_path_buf(), assets: dir.to_path_buf() },
        ))
        .init_asset::<Image>()
        .init_asset::<Font>()
        .insert_resource(Canvas { width: 960, height: 540 })
        .insert_resource(Show::default());
        app
    }

    fn mkfifo(path: &Path) {
        let made = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
        assert!(made.success(), "mkfifo {}", path.display());
    }

    /// Updates the app until `done` (the watcher works on its own thread meanwhile).
    fn update_until(app: &mut App, what: &str, done: impl Fn(&mut App) -> bool) -> usize {
        for frames in 1..=2000 {
            app.update();
            if done(app) {
                return frames;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        panic!("never: {what}");
    }

    #[test]
    fn frames_go_on_while_a_scene_file_and_an_image_take_as_long_as_they_take_to_read() {
        // A FIFO blocks its reader until a writer comes: were a file read on the
        // render thread, the frames would stop at it.
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("lots")).expect("mkdir");
        let mut app = app_in(dir.path(), "[[layer]]\nid = \"t\"\nkind = \"text\"\ntext = \"Hello\"\n");
        app.update();
        assert_eq!(texts(&mut app), ["Hello"]);
        mkfifo(&dir.path().join("slow.toml"));
        mkfifo(&dir.path().join("lots/slow.png"));
        // Well past the watcher's next look (it now waits on slow.toml), frames go on.
        let mut frames = 0;
        while frames < 100 {
            app.update();
            frames += 1;
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(texts(&mut app), ["Hello"], "the scene on air stays");
        // The scene arrives and names the image, which the watcher then waits on too.
        let scene = dir.path().join("slow.toml");
        let image = dir.path().join("lots/slow.png");
        let writer = std::thread::spawn(move || {
            std::fs::write(
                &scene,
                "states = [\"closed\"]\n[[layer]]\nid = \"p\"\nkind = \"image\"\nimage = \"lots/slow.png\"\nsize = [10, 10]\n",
            )
            .expect("write the scene");
            let png = crate::builtin::file("lots/placeholder.png").expect("a PNG");
            std::fs::write(&image, png).expect("write the image");
        });
        let waited = update_until(&mut app, "the slow scene and its image arrive", |app| {
            app.world().resource::<Library>().names().contains(&"slow".to_owned())
        });
        assert!(waited > 0);
        assert!(app.world().resource::<AssetFiles>().has_image("lots/slow.png"), "its image came before it");
        writer.join().expect("the writer");
    }

    fn texts(app: &mut App) -> Vec<String> {
        let mut query = app.world_mut().query::<(&Node, &Text2d)>();
        let mut found: Vec<_> =
            query.iter(app.world()).map(|(node, text)| (node.layer, node.row, text.0.clone())).collect();
        found.sort();
        found.into_iter().map(|(_, _, text)| text).collect()
    }

    const BID_SCENE: &str = r#"
[[layer]]
id = "bid"
kind = "text"
text = "{auction.high_bid.amount} ETH"
else = "No bids yet"
on = { bid_accepted = "pulse 300ms" }

[[layer]]
id = "ticker"
kind = "ticker"
rows = 2
text = "@{bid.handle} {bid.amount}"

[[layer]]
id = "closing"
kind = "text"
text = "Going, going..."
show_when = "auction.state == closing"
"#;

    #[test]
    fn an_accepted_bid_reaches_the_text_the_ticker_and_pulses() {
        let mut app = app(BID_SCENE);
        app.world_mut().resource_mut::<Show>().apply_snapshot(
            Snapshot {
                now: Some(chrono::Utc::now()),
                auctions: vec![auction(0, 4_000_000_000)],
                ..Snapshot::default()
            },
            chrono::Utc::now(),
        );
        app.update();
        assert_eq!(texts(&mut app), ["No bids yet", "", "", "Going, going..."]);
        app.world_mut().resource_mut::<Show>().apply(&accepted(1, "alice", "1.5"), at(1));
        app.update();
        assert_eq!(texts(&mut app)[..3], ["1.5 ETH", "@alice 1.5", ""]);
        let mut playing = app.world_mut().query::<(&Node, &Playing)>();
        assert_eq!(playing.iter(app.world()).map(|(node, _)| node.layer).collect::<Vec<_>>(), [0]);
        let mut visible = app.world_mut().query::<(&Node, &Visibility)>();
        let closing = visible.iter(app.world()).find(|(node, _)| node.layer == 2).map(|(_, v)| *v);
        assert_eq!(closing, Some(Visibility::Hidden), "shown only while closing");
    }

    #[test]
    fn a_patch_changes_a_layer_until_the_file_changes() {
        let mut app = app(BID_SCENE);
        app.update();
        app.world_mut()
            .resource_mut::<Overrides>()
            .0
            .insert("bid".into(), Patch { text: Some("Hold on".into()), ..Patch::default() });
        app.update();
        assert_eq!(texts(&mut app)[0], "Hold on");
    }

    const FITTED_SCENE: &str = r#"
[[layer]]
id = "result"
kind = "text"
text = "SOLD to @curie for 1.8 ETH"
size = [200, 50]
fit = "shrink"

[[layer]]
id = "title"
kind = "text"
text = "abcdefghij"
size = [200, 50]
fit = "ellipsis"
"#;

    /// Lays the texts out as the text pipeline would have: each fitted text as wide
    /// as `width_per_char` times its characters.
    fn lay_out(app: &mut App, width_per_char: f32) {
        let world = app.world_mut();
        let mut texts = world.query_filtered::<(Entity, &Text2d), With<TextFitting>>();
        let laid: Vec<(Entity, usize)> =
            texts.iter(world).map(|(entity, text)| (entity, text.0.chars().count())).collect();
        for (entity, chars) in laid {
            world.entity_mut(entity).insert(TextLayoutInfo {
                size: Vec2::new(width_per_char * chars as f32, 40.0),
                scale_factor: 1.0,
                ..TextLayoutInfo::default()
            });
        }
    }

    #[test]
    fn a_long_text_shrinks_or_is_cut_to_stay_in_its_box() {
        let mut app = app(FITTED_SCENE);
        app.update();
        assert_eq!(texts(&mut app), ["SOLD to @curie for 1.8 ETH", "abcdefghij"], "full until laid out");
        // Laid out 40 px a character: far wider than the 200 px boxes (at 960x540,
        // half of the 1920 canvas: 100 px).
        for _ in 0..4 {
            lay_out(&mut app, 40.0);
            app.update();
        }
        let mut query = app.world_mut().query::<(&Node, &Transform, &Text2d)>();
        let mut found: Vec<(usize, f32, String)> = query
            .iter(app.world())
            .map(|(node, transform, text)| (node.layer, transform.scale.x, text.0.clone()))
            .collect();
        found.sort_by_key(|(layer, _, _)| *layer);
        let (_, shrunk, result) = &found[0];
        assert_eq!(result, "SOLD to @curie for 1.8 ETH", "shrink keeps every character");
        let wide = 40.0 * result.chars().count() as f32;
        assert!((shrunk * wide - 100.0).abs() < 0.5, "scaled to the box's 100 px: {shrunk}");
        let (_, scale, title) = &found[1];
        assert_eq!(*scale, 1.0);
        assert!(title.ends_with('…') && title.chars().count() * 40 <= 100, "cut to the box: {title:?}");
        // A shorter title is shown whole again.
        let patch = Patch { text: Some("ab".into()), ..Patch::default() };
        app.world_mut().resource_mut::<Overrides>().0.insert("title".into(), patch);
        app.update();
        assert_eq!(texts(&mut app)[1], "ab");
    }
}
