//! The backdrop: the still panels at the back of a scene (cards, header, banner)
//! drawn once into an image, which every frame then starts from instead of the
//! background colour. On a CPU rasterizer the panels' blended pixels were the largest
//! part of a frame; a copy of a finished image costs about as much as a clear.
//!
//! A panel is still when nothing moves or hides it: no `show_when`, no animation, no
//! operator patch. Only still panels below every other layer are baked, so the
//! order of what is drawn never changes. The backdrop camera draws them (render
//! layer 1) when something about them changed (a scene went on air, a patch, a
//! background colour), twice over as counted by the render world, and is idle
//! otherwise; the main camera draws
//! everything else (render layer 0) over the copy (`convert.rs`).

use bevy::camera::visibility::RenderLayers;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bevy::camera::{CompositingSpace, RenderTarget};
use bevy::prelude::*;
use bevy::render::extract_component::ExtractComponent;
use bevy::render::extract_resource::ExtractResource;
use bevy::render::render_resource::{TextureFormat, TextureUsages};

use super::draw::{Canvas, Node, OnAir, Overrides};
use super::format::{Layer, LayerKind, Scene};

/// The render layer of baked panels.
const BAKED: usize = 1;

/// The backdrop image and whether the frame starts from it (there are baked layers).
#[derive(Resource, ExtractResource, Clone)]
pub struct Backdrop {
    pub image: Handle<Image>,
    pub used: bool,
    /// How many times the backdrop camera has drawn, counted by the render world.
    pub drawn: Arc<AtomicU64>,
    /// The count `drawn` must reach before the backdrop camera rests again.
    until: u64,
}

/// How many draws a change gets (`convert.rs` counts only draws made with every
/// pipeline ready; two leave a margin for a resource prepared a frame late).
const DRAWS_PER_CHANGE: u64 = 2;

/// Marks the camera that draws the backdrop.
#[derive(Component, ExtractComponent, Clone, Copy, Default)]
pub struct BackdropCamera;

/// Which layers of a scene are baked into the backdrop: still panels below the lowest
/// layer that is not one.
pub fn baked_layers(scene: &Scene, patched: impl Fn(&str) -> bool) -> Vec<bool> {
    let still = |layer: &Layer| {
        layer.kind == LayerKind::Panel
            && layer.show_when.is_none()
            && layer.on.is_empty()
            && !patched(&layer.id)
    };
    let lowest_live =
        scene.layers.iter().filter(|layer| !still(layer)).map(|layer| layer.z).fold(f32::INFINITY, f32::min);
    scene.layers.iter().map(|layer| still(layer) && layer.z < lowest_live).collect()
}

/// Creates the backdrop image and its camera (idle until there is something to bake).
pub fn setup(mut commands: Commands, mut images: ResMut<Assets<Image>>, canvas: Res<Canvas>) {
    let mut image =
        Image::new_target_texture(canvas.width, canvas.height, TextureFormat::Rgba8UnormSrgb, None);
    image.texture_descriptor.usage |= TextureUsages::COPY_SRC;
    let image = images.add(image);
    commands.insert_resource(Backdrop { image: image.clone(), used: false, drawn: Arc::default(), until: 0 });
    commands.spawn((
        Camera2d,
        Camera { order: -1, is_active: false, ..default() },
        Msaa::Off,
        CompositingSpace::Srgb,
        RenderTarget::Image(image.into()),
        RenderLayers::layer(BAKED),
        BackdropCamera,
    ));
}

/// Moves layers in and out of the backdrop and redraws it when what it holds changed.
#[allow(clippy::type_complexity, reason = "a Bevy query names what it reads")]
pub fn bake(
    mut commands: Commands,
    on_air: Res<OnAir>,
    overrides: Res<Overrides>,
    background: Res<ClearColor>,
    mut backdrop: ResMut<Backdrop>,
    nodes: Query<(Entity, &Node, Has<RenderLayers>, Ref<Transform>, Ref<Visibility>, Option<Ref<Sprite>>)>,
    mut cameras: Query<&mut Camera, With<BackdropCamera>>,
) {
    let baked = match on_air.scene.as_ref() {
        Some(scene) => baked_layers(scene, |id| overrides.0.contains_key(id)),
        None => Vec::new(),
    };
    let mut redraw = on_air.is_changed() || background.is_changed() || overrides.is_changed();
    for (entity, node, in_backdrop, transform, visibility, sprite) in &nodes {
        let wanted = baked.get(node.layer).copied().unwrap_or(false);
        if wanted != in_backdrop {
            if wanted {
                commands.entity(entity).insert(RenderLayers::layer(BAKED));
            } else {
                commands.entity(entity).remove::<RenderLayers>();
            }
            redraw = true;
        } else if wanted
            && (transform.is_changed()
                || visibility.is_changed()
                || sprite.is_some_and(|sprite| sprite.is_changed()))
        {
            redraw = true;
        }
    }
    let used = baked.contains(&true);
    if backdrop.used != used {
        backdrop.used = used;
    }
    let drawn = backdrop.drawn.load(Ordering::Acquire);
    if redraw && used {
        backdrop.until = drawn + DRAWS_PER_CHANGE;
    }
    for mut camera in &mut cameras {
        let active = used && drawn < backdrop.until;
        if camera.is_active != active {
            camera.is_active = active;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scene::format::parse;

    fn scene(text: &str) -> Scene {
        parse(std::path::Path::new("test.toml"), text).expect("a valid scene")
    }

    #[test]
    fn still_panels_below_everything_else_are_baked() {
        let scene = scene(
            "[[layer]]\nid = \"card\"\nkind = \"panel\"\nsize = [10, 10]\nz = 1\n\n\
             [[layer]]\nid = \"live\"\nkind = \"panel\"\nsize = [10, 10]\nz = 1\non = { enter = \"fade-in 600ms\" }\n\n\
             [[layer]]\nid = \"title\"\nkind = \"text\"\ntext = \"Lot\"\nz = 2\n\n\
             [[layer]]\nid = \"above\"\nkind = \"panel\"\nsize = [10, 10]\nz = 3\n",
        );
        // The animated panel is live at z 1, so nothing at z 1 or above is baked.
        assert_eq!(baked_layers(&scene, |_| false), [false, false, false, false]);
        let scene = self::scene(
            "[[layer]]\nid = \"card\"\nkind = \"panel\"\nsize = [10, 10]\nz = 1\n\n\
             [[layer]]\nid = \"banner\"\nkind = \"panel\"\nsize = [10, 10]\nz = 1\n\n\
             [[layer]]\nid = \"title\"\nkind = \"text\"\ntext = \"Lot\"\nz = 2\n\n\
             [[layer]]\nid = \"above\"\nkind = \"panel\"\nsize = [10, 10]\nz = 3\n",
        );
        assert_eq!(baked_layers(&scene, |_| false), [true, true, false, false]);
    }

    #[test]
    fn a_patched_or_conditional_panel_stays_live() {
        let scene = scene(
            "[[layer]]\nid = \"card\"\nkind = \"panel\"\nsize = [10, 10]\nz = 1\n\n\
             [[layer]]\nid = \"closing\"\nkind = \"panel\"\nsize = [10, 10]\nz = 1\nshow_when = \"auction.state == closing\"\n\n\
             [[layer]]\nid = \"title\"\nkind = \"text\"\ntext = \"Lot\"\nz = 2\n",
        );
        assert_eq!(
            baked_layers(&scene, |_| false),
            [false, false, false],
            "the conditional panel shares z 1"
        );
        let scene = self::scene(
            "[[layer]]\nid = \"card\"\nkind = \"panel\"\nsize = [10, 10]\nz = 0\n\n\
             [[layer]]\nid = \"header\"\nkind = \"panel\"\nsize = [10, 10]\nz = 1\n\n\
             [[layer]]\nid = \"title\"\nkind = \"text\"\ntext = \"Lot\"\nz = 2\n",
        );
        assert_eq!(baked_layers(&scene, |_| false), [true, true, false]);
        assert_eq!(baked_layers(&scene, |id| id == "header"), [true, false, false], "a patch makes it live");
    }
}
