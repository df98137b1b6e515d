//! The host: the character's drawn art when the agent names it (an image per mood,
//! its open-mouth frame while a caption types, a blink overlay), else a face built
//! from a few shapes with an expression for each mood; blinking and breathing either way.

use bevy::asset::RenderAssetUsages;
use bevy::prelude::*;
use bevy::render::render_resource::{Extent3d, TextureDimension, TextureFormat};
use sothebais_shared::events::Mood;

use crate::scene::assets::AssetFiles;
use crate::show::Show;

/// The frames of an expression image, by the convention of `assets/characters/`: the
/// face (`<dir>/<mood>.png`), its talking frame (`<dir>/<mood>-talk.png`) and the blink
/// overlay beside them (`<dir>/blink.png`). `None` for a mood's name (no art).
pub fn art_frames(expression: &str) -> Option<(String, String, String)> {
    let stem = expression.strip_suffix(".png")?;
    let blink = match expression.rsplit_once('/') {
        Some((dir, _)) => format!("{dir}/blink.png"),
        None => "blink.png".to_owned(),
    };
    Some((expression.to_owned(), format!("{stem}-talk.png"), blink))
}

/// The face's shape for a mood. All lengths are fractions of the character's size.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Expression {
    /// How open the eyes are (1 is relaxed).
    pub eyes: f32,
    /// Brows up (positive) or down.
    pub brow_lift: f32,
    /// Brow angle in radians; positive raises the inner ends (worry, sadness).
    pub brow_tilt: f32,
    pub mouth_width: f32,
    /// How open the mouth is.
    pub mouth_open: f32,
    /// 1 a wide smile, 0 flat, -1 a frown.
    pub smile: f32,
    /// Blush on the cheeks, 0 to 1.
    pub blush: f32,
}

/// The expression the host wears in a mood (neutral when none is known).
pub fn expression(mood: Option<Mood>) -> Expression {
    let neutral = Expression {
        eyes: 1.0,
        brow_lift: 0.0,
        brow_tilt: 0.0,
        mouth_width: 0.16,
        mouth_open: 0.0,
        smile: 0.3,
        blush: 0.0,
    };
    match mood.unwrap_or(Mood::Neutral) {
        Mood::Neutral => neutral,
        Mood::Happy => Expression { eyes: 0.85, brow_lift: 0.3, smile: 0.8, blush: 0.3, ..neutral },
        Mood::Excited => Expression {
            eyes: 1.2,
            brow_lift: 0.8,
            mouth_width: 0.2,
            mouth_open: 0.09,
            smile: 1.0,
            blush: 0.5,
            ..neutral
        },
        Mood::Tense => Expression {
            eyes: 0.7,
            brow_lift: -0.4,
            brow_tilt: -0.3,
            mouth_width: 0.12,
            smile: 0.0,
            ..neutral
        },
        Mood::Surprised => Expression {
            eyes: 1.35,
            brow_lift: 1.0,
            mouth_width: 0.08,
            mouth_open: 0.1,
            smile: 0.0,
            ..neutral
        },
        Mood::Disappointed => Expression {
            eyes: 0.6,
            brow_lift: -0.2,
            brow_tilt: 0.35,
            mouth_width: 0.14,
            smile: -0.7,
            ..neutral
        },
        Mood::Celebrating => Expression {
            eyes: 0.35,
            brow_lift: 0.9,
            mouth_width: 0.22,
            mouth_open: 0.1,
            smile: 1.0,
            blush: 0.7,
            ..neutral
        },
    }
}

/// Speech louder than this (RMS of a 20 ms window) shows the open-mouth frame.
pub const MOUTH_OPEN_LEVEL: f32 = 0.03;
/// At this loudness the drawn mouth is open all the way.
const MOUTH_FULL_LEVEL: f32 = 0.25;

/// The host's animation state.
#[derive(Debug, Component)]
pub struct Character {
    pub expression: Expression,
    size: Vec2,
    time: f32,
    next_blink: f32,
}

impl Default for Character {
    fn default() -> Self {
        Character { expression: expression(None), size: Vec2::splat(200.0), time: 0.0, next_blink: 3.0 }
    }
}

/// A shape of the face.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Component)]
pub enum Part {
    Body,
    Tie,
    Head,
    Hair,
    Eye(Side),
    Pupil(Side),
    Brow(Side),
    Cheek(Side),
    Mouth,
    /// A skin-coloured shape over the mouth that turns an ellipse into a smile or frown.
    Lip,
    /// The character's drawn art, when it has some (the shapes above are hidden then).
    Art,
    /// The art's closed-eyes overlay.
    Blink,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Left,
    Right,
}

impl Side {
    fn sign(self) -> f32 {
        match self {
            Side::Left => -1.0,
            Side::Right => 1.0,
        }
    }
}

const SKIN: Color = Color::srgb(0.94, 0.80, 0.66);
const HAIR: Color = Color::srgb(0.20, 0.15, 0.12);
const WHITE: Color = Color::srgb(0.98, 0.98, 0.97);
const PUPIL: Color = Color::srgb(0.10, 0.10, 0.14);
const MOUTH: Color = Color::srgb(0.45, 0.10, 0.14);
const CHEEK: Color = Color::srgb(0.95, 0.50, 0.52);

/// A white disc with a soft edge; tinted and stretched it makes every round part.
fn disc(images: &mut Assets<Image>) -> Handle<Image> {
    const SIDE: u32 = 128;
    let mut data = Vec::with_capacity((SIDE * SIDE * 4) as usize);
    let centre = (SIDE as f32 - 1.0) / 2.0;
    for y in 0..SIDE {
        for x in 0..SIDE {
            let distance = ((x as f32 - centre).powi(2) + (y as f32 - centre).powi(2)).sqrt();
            let alpha = (centre - distance + 0.5).clamp(0.0, 1.0);
            data.extend_from_slice(&[255, 255, 255, (alpha * 255.0) as u8]);
        }
    }
    images.add(Image::new(
        Extent3d { width: SIDE, height: SIDE, depth_or_array_layers: 1 },
        TextureDimension::D2,
        data,
        TextureFormat::Rgba8UnormSrgb,
        RenderAssetUsages::RENDER_WORLD,
    ))
}

/// Spawns the face's shapes as children of `parent`, laid out for `size`.
pub fn spawn_face(
    commands: &mut Commands,
    parent: Entity,
    size: Vec2,
    suit: Color,
    images: &mut Assets<Image>,
) {
    let disc = disc(images);
    let round = |colour: Color| Sprite {
        image: disc.clone(),
        color: colour,
        custom_size: Some(Vec2::ONE),
        ..default()
    };
    let bar = |colour: Color| Sprite::from_color(colour, Vec2::ONE);
    let mut parts = vec![
        (round(suit), Part::Body),
        (round(Color::srgb(0.83, 0.69, 0.22)), Part::Tie),
        (round(SKIN), Part::Head),
        (round(HAIR), Part::Hair),
        (round(MOUTH), Part::Mouth),
        (round(SKIN), Part::Lip),
        (Sprite { custom_size: Some(Vec2::ONE), ..default() }, Part::Art),
        (Sprite { custom_size: Some(Vec2::ONE), ..default() }, Part::Blink),
    ];
    for side in [Side::Left, Side::Right] {
        parts.push((round(WHITE), Part::Eye(side)));
        parts.push((round(PUPIL), Part::Pupil(side)));
        parts.push((bar(HAIR), Part::Brow(side)));
        parts.push((round(CHEEK.with_alpha(0.0)), Part::Cheek(side)));
    }
    commands.entity(parent).insert(Character { size, ..Character::default() }).with_children(|face| {
        for (sprite, part) in parts {
            face.spawn((sprite, part, Transform::default()));
        }
    });
}

/// Follows the mood, blinks, breathes and talks.
pub fn animate(
    time: Res<Time>,
    show: Res<Show>,
    mut files: ResMut<AssetFiles>,
    mut characters: Query<(&mut Character, &mut Transform, &Children), Without<Part>>,
    mut parts: Query<(&Part, &mut Transform, &mut Sprite)>,
) {
    let target = expression(show.mood);
    // The art of the expression, once its files are read (a missing file is read once).
    let art = show.expression.as_deref().and_then(art_frames).and_then(|(face, talk, blink)| {
        let face = files.image(&face)?;
        Some((face, files.image(&talk), files.image(&blink)))
    });
    // A spoken line opens the mouth with its loudness, window by window; a line
    // without speech flaps it while the caption types.
    let (talking, loudness) = match show.line.as_ref() {
        Some(line) => {
            let secs = (chrono::Utc::now() - line.started).as_seconds_f32();
            match line.level_at(secs) {
                Some(level) => (true, Some(level)),
                None if line.levels.is_some() => (false, None),
                None => (secs >= 0.0 && secs < line.text.chars().count() as f32 / 40.0 + 0.3, None),
            }
        }
        None => (false, None),
    };
    let dt = time.delta_secs();
    for (mut character, mut body, children) in &mut characters {
        character.time += dt;
        character.expression = target;
        let t = character.time;
        // Blink for 0.12 s every 3 to 5 s.
        let blinking = t >= character.next_blink;
        if t >= character.next_blink + 0.12 {
            character.next_blink = t + 3.0 + (t * 7.31).sin().abs() * 2.0;
        }
        // The drawn face breathes; drawn art is not stretched (it blinks and talks).
        if art.is_none() {
            body.scale.y *= 1.0 + 0.012 * (t * 1.6).sin();
        }
        let e = character.expression;
        let s = character.size.x.min(character.size.y);
        let eyes = if blinking { 0.08 } else { e.eyes };
        let open = e.mouth_open
            + match loudness {
                Some(level) => 0.07 * (level / MOUTH_FULL_LEVEL).min(1.0),
                None if talking => 0.035 * ((t * 16.0).sin() + 1.0),
                None => 0.0,
            };
        for child in children.iter() {
            let Ok((part, mut transform, mut sprite)) = parts.get_mut(child) else { continue };
            if let Some((face, talk, blink)) = &art {
                // The drawn art fills the layer's square; the shapes are hidden.
                let (shown, image) = match *part {
                    Part::Art => {
                        let open = match loudness {
                            Some(level) => level > MOUTH_OPEN_LEVEL,
                            None => talking && (t * 8.0).sin() > 0.0,
                        };
                        (true, if open { talk.clone().unwrap_or_else(|| face.clone()) } else { face.clone() })
                    }
                    Part::Blink => (blinking && blink.is_some(), blink.clone().unwrap_or_default()),
                    _ => (false, Handle::default()),
                };
                if shown && sprite.image != image {
                    sprite.image = image;
                }
                let z = if *part == Part::Blink { 0.7 } else { 0.6 };
                transform.translation = Vec3::new(0.0, 0.0, z);
                transform.scale = if shown { Vec3::new(s, s, 1.0) } else { Vec3::ZERO };
                transform.rotation = Quat::IDENTITY;
                continue;
            }
            let (x, y, z, w, h, angle) = match *part {
                Part::Art | Part::Blink => (0.0, 0.0, 0.6, 0.0, 0.0, 0.0),
                Part::Body => (0.0, -0.40, 0.0, 0.80, 0.45, 0.0),
                Part::Tie => (0.0, -0.22, 0.1, 0.10, 0.06, 0.0),
                Part::Head => (0.0, 0.06, 0.2, 0.52, 0.60, 0.0),
                Part::Hair => (0.0, 0.30, 0.3, 0.54, 0.20, 0.0),
                Part::Eye(side) => (side.sign() * 0.10, 0.10, 0.4, 0.10, 0.10 * eyes, 0.0),
                Part::Pupil(side) => (side.sign() * 0.10, 0.10, 0.5, 0.045, 0.045 * eyes.min(1.0), 0.0),
                Part::Brow(side) => (
                    side.sign() * 0.10,
                    0.19 + 0.03 * e.brow_lift,
                    0.5,
                    0.11,
                    0.018,
                    -side.sign() * e.brow_tilt,
                ),
                Part::Cheek(side) => {
                    sprite.color = CHEEK.with_alpha(0.6 * e.blush);
                    (side.sign() * 0.16, -0.02, 0.45, 0.08, 0.05, 0.0)
                }
                Part::Mouth => {
                    let height = 0.025 + 0.06 * e.smile.abs() + open;
                    (0.0, -0.12, 0.4, e.mouth_width, height, 0.0)
                }
                Part::Lip => {
                    // Covers the top of the mouth for a smile, the bottom for a frown,
                    // nothing while it is open.
                    let height = 0.025 + 0.06 * e.smile.abs();
                    let cover = if open > 0.01 || e.smile.abs() < 0.05 { 0.0 } else { 1.0 };
                    let shift = e.smile.signum() * height * 0.45;
                    (0.0, -0.12 + shift, 0.45, e.mouth_width * 1.05 * cover, height * cover, 0.0)
                }
            };
            transform.translation = Vec3::new(x * s, y * s, z);
            transform.scale = Vec3::new((w * s).max(0.0), (h * s).max(0.0), 1.0);
            transform.rotation = Quat::from_rotation_z(angle);
        }
    }
}

/// The host's face, animated after the scene's layers: its scale multiplies the
/// one [`Stage::Layout`] set this frame.
#[derive(Debug)]
pub struct CharacterPlugin;

impl Plugin for CharacterPlugin {
    fn build(&self, app: &mut App) {
        app.add_systems(
            Update,
            animate.in_set(crate::stage::Stage::Animate).after(crate::scene::draw::animate),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::show::Snapshot;

    #[test]
    fn each_mood_has_its_own_face() {
        let moods = Mood::ALL;
        for (index, mood) in moods.iter().enumerate() {
            for other in &moods[index + 1..] {
                assert_ne!(expression(Some(*mood)), expression(Some(*other)), "{mood:?} and {other:?}");
            }
        }
        assert!(expression(Some(Mood::Surprised)).eyes > expression(None).eyes);
        assert!(expression(Some(Mood::Disappointed)).smile < 0.0);
        assert!(expression(Some(Mood::Happy)).smile > expression(None).smile);
    }

    #[test]
    fn the_face_follows_the_mood_event() {
        let mut app = App::new();
        app.add_plugins((
            MinimalPlugins,
            AssetPlugin::default(),
            crate::stage::StagesPlugin,
            CharacterPlugin,
        ))
        .init_asset::<Image>()
        .init_asset::<Font>()
        .insert_resource(Show::default())
        // The art comes from the file watcher, as in the renderer.
        .init_resource::<crate::scene::library::Library>()
        .init_resource::<crate::scene::draw::News>()
        .add_systems(Update, crate::files::apply_files.in_set(crate::stage::Stage::Ingest));
        let assets = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../assets");
        let channels = crate::files::watch(std::path::Path::new("/nonexistent/scenes"), &assets);
        app.insert_resource(AssetFiles::new(Some(channels.requests)))
            .insert_resource(crate::files::FileInbox(std::sync::Mutex::new(channels.updates)));
        let parent = app.world_mut().spawn((Transform::default(), Visibility::default())).id();
        {
            let world = app.world_mut();
            world.resource_scope(|world, mut images: Mut<Assets<Image>>| {
                let mut queue = bevy::ecs::world::CommandQueue::default();
                let mut commands = Commands::new(&mut queue, world);
                spawn_face(&mut commands, parent, Vec2::splat(300.0), Color::BLACK, &mut images);
                queue.apply(world);
            });
        }
        app.update();
        let mouth_height = |app: &mut App| {
            let mut parts = app.world_mut().query::<(&Part, &Transform)>();
            parts
                .iter(app.world())
                .find(|(part, _)| **part == Part::Mouth)
                .map(|(_, t)| t.scale.y)
                .expect("mouth")
        };
        let neutral = mouth_height(&mut app);
        assert_eq!(
            app.world_mut().query::<&Character>().single(app.world()).expect("host").expression,
            expression(None)
        );
        let mut show = Show::default();
        show.apply_snapshot(
            Snapshot { mood: Some(Mood::Celebrating), ..Snapshot::default() },
            chrono::Utc::now(),
        );
        app.insert_resource(show);
        app.update();
        let character = app.world_mut().query::<&Character>().single(app.world()).expect("host").expression;
        assert_eq!(character, expression(Some(Mood::Celebrating)));
        assert!(mouth_height(&mut app) > neutral, "the celebrating mouth is open wider");

        // A character with art: its image is shown, the shapes are hidden.
        let mut show = Show::default();
        show.apply_snapshot(
            Snapshot {
                mood: Some(Mood::Happy),
                expression: Some("characters/pixel/happy.png".into()),
                ..Snapshot::default()
            },
            chrono::Utc::now(),
        );
        app.insert_resource(show);
        // Asked for on the first frame, read on the watcher's thread, shown once there.
        for _ in 0..500 {
            app.update();
            if app.world().resource::<AssetFiles>().has_image("characters/pixel/happy.png") {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        app.update();
        let mut parts = app.world_mut().query::<(&Part, &Transform, &Sprite)>();
        let (art, mouth) = parts.iter(app.world()).fold(
            (None, None),
            |(art, mouth), (part, transform, sprite)| match part {
                Part::Art => (Some((transform.scale, sprite.image.clone())), mouth),
                Part::Mouth => (art, Some(transform.scale)),
                _ => (art, mouth),
            },
        );
        let (scale, image) = art.expect("art part");
        assert_eq!(scale, Vec3::new(300.0, 300.0, 1.0));
        assert_ne!(image, Handle::default(), "the art image is loaded");
        assert_eq!(mouth, Some(Vec3::ZERO), "the drawn face is hidden");
    }

    #[test]
    fn art_frames_follow_the_assets_convention() {
        assert_eq!(
            art_frames("characters/pixel/tense.png"),
            Some((
                "characters/pixel/tense.png".into(),
                "characters/pixel/tense-talk.png".into(),
                "characters/pixel/blink.png".into()
            ))
        );
        assert_eq!(art_frames("tense"), None);
    }
}
