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

/// The scene on air: what the file watcher (`files.rs`, started here, on its own
/// thread) read applied in [`Stage::Ingest`], the scene for the moment switched in
/// [`Stage::Scene`], the layers laid out in [`Stage::Layout`] and animated in
/// [`Stage::Animate`], the still panels baked into the backdrop in
/// [`Stage::Capture`]. The [`draw::Canvas`] comes from the caller; so may the
/// [`library::Library`] (with the operator's pin), else it starts empty.
#[derive(Debug)]
pub struct ScenePlugin {
    /// The folder of scene files.
    pub scenes: PathBuf,
    /// The assets folder the scenes' images and fonts are read from.
    pub assets: PathBuf,
}

impl Plugin for ScenePlugin {
    fn build(&self, app: &mut App) {
        let channels = crate::files::watch(&self.scenes, &self.assets);
        if !app.world().contains_resource::<library::Library>() {
            app.init_resource::<library::Library>();
        }
        app.insert_resource(assets::AssetFiles::new(Some(channels.requests)))
            .insert_resource(crate::files::FileInbox(std::sync::Mutex::new(channels.updates)))
            .init_resource::<draw::OnAir>()
            .init_resource::<draw::Overrides>()
            .init_resource::<draw::News>()
            .add_systems(Startup, backdrop::setup)
            .add_systems(
                Update,
                (
                    crate::files::apply_files.in_set(Stage::Ingest),
                    draw::switch_scene.in_set(Stage::Scene),
                    (fit::fit_texts, draw::update_nodes).chain().in_set(Stage::Layout),
                    (draw::start_animations, draw::animate).chain().in_set(Stage::Animate),
                    backdrop::bake.in_set(Stage::Capture),
                ),
            );
    }
}
