//! The order of the app's work each frame: one [`Stage`] after another, each
//! module's systems placed in their stage by its plugin.

use bevy::prelude::*;

/// What each frame does, in this order.
#[derive(SystemSet, Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// What the Tokio side sent: events, snapshots, the operator's commands, files.
    Ingest,
    /// The scene for the moment, and the sounds of this frame's show events.
    Scene,
    /// Every layer's text, visibility and place (scales reset here).
    Layout,
    /// Animations over the layout: pulses, captions, the host's face.
    Animate,
    /// What the cameras draw this frame (the backdrop's bake).
    Capture,
    /// What the app tells the rest: events, the API's view, timing, stopping.
    Report,
}

/// Chains the stages once, for every schedule's `Update`.
#[derive(Debug)]
pub struct StagesPlugin;

impl Plugin for StagesPlugin {
    fn build(&self, app: &mut App) {
        app.configure_sets(
            Update,
            (Stage::Ingest, Stage::Scene, Stage::Layout, Stage::Animate, Stage::Capture, Stage::Report)
                .chain(),
        );
    }
}
