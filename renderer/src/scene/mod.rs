//! Scenes: the file format designers edit, the folder of scene files with hot
//! reload, and the Bevy systems that draw the scene on air.

pub mod assets;
pub mod backdrop;
pub mod draw;
pub mod fit;
pub mod format;
pub mod library;

use std::path::PathBuf;

use bevy::prelude::*;

use crate::stage::Stage;

/// The scene on air: the library's files looked at in [`Stage::Ingest`], the scene
/// for the moment switched in [`Stage::Scene`], the layers laid out in
/// [`Stage::Layout`] and animated in [`Stage::Animate`], the still panels baked into
/// the backdrop in [`Stage::Capture`]. The [`library::Library`] and the
/// [`draw::Canvas`] come from the caller (opened and checked at start).
#[derive(Debug)]
pub struct ScenePlugin {
    /// The assets folder the scenes' images and fonts are read from.
    pub assets: PathBuf,
}

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        app.insert_resource(assets::AssetFiles::new(self.assets.clone()))
            .init_resource::<draw::OnAir>()
            .init_resource::<draw::Overrides>()
            .init_resource::<draw::News>()
            .add_systems(Startup, backdrop::setup)
            .add_systems(
                Update,
                (
                    draw::poll_files.in_set(Stage::Ingest),
                    draw::switch_scene.in_set(Stage::Scene),
                    (fit::fit_texts, draw::update_nodes).chain().in_set(Stage::Layout),
                    (draw::start_animations, draw::animate).chain().in_set(Stage::Animate),
                    backdrop::bake.in_set(Stage::Capture),
                ),
            );
    }
}
