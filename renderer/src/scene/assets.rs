//! The fonts and images the scenes and the character use, as the app holds them:
//! handles to what the file watcher (`files.rs`) read and decoded on its own thread.
//! Asking for one the app does not have yet sends the watcher a request and answers
//! `None` until it arrives; the render loop never reads a file.

use std::collections::HashMap;
use std::sync::mpsc::Sender;

use bevy::prelude::*;

/// Where one asset stands.
#[derive(Debug, Clone)]
enum Slot<T: Asset> {
    /// Asked for; the watcher has not answered yet.
    Waiting,
    Loaded(Handle<T>),
    /// Neither in the assets folder nor built in (yet: a file that appears is loaded).
    Missing,
}

/// Fonts and images by their path under the assets folder.
#[derive(Debug, Resource)]
pub struct AssetFiles {
    /// Requests to the watcher (`None`: no watcher, nothing arrives).
    requests: Option<Sender<String>>,
    images: HashMap<String, Slot<Image>>,
    fonts: HashMap<String, Slot<Font>>,
}

impl AssetFiles {
    pub fn new(requests: Option<Sender<String>>) -> AssetFiles {
        AssetFiles { requests, images: HashMap::new(), fonts: HashMap::new() }
    }

    /// The handle in `slots` for `relative` once loaded; asks the watcher the first time.
    fn get<T: Asset>(
        requests: Option<&Sender<String>>,
        slots: &mut HashMap<String, Slot<T>>,
        relative: &str,
    ) -> Option<Handle<T>> {
        super::format::safe_asset_path(relative).ok()?;
        match slots.get(relative) {
            Some(Slot::Loaded(handle)) => Some(handle.clone()),
            Some(Slot::Waiting | Slot::Missing) => None,
            None => {
                if let Some(requests) = requests {
                    let _ = requests.send(relative.to_owned());
                }
                slots.insert(relative.to_owned(), Slot::Waiting);
                None
            }
        }
    }

    /// Takes what the watcher read (`None`: it cannot be read); a reload replaces the
    /// asset in place, so entities keep their handles. True when it is now loaded.
    fn put<T: Asset>(
        slots: &mut HashMap<String, Slot<T>>,
        relative: String,
        value: Option<T>,
        assets: &mut Assets<T>,
    ) -> bool {
        let slot = slots.entry(relative).or_insert(Slot::Waiting);
        match (value, &*slot) {
            (Some(value), Slot::Loaded(handle)) => {
                let _ = assets.insert(handle.id(), value);
                true
            }
            (Some(value), _) => {
                *slot = Slot::Loaded(assets.add(value));
                true
            }
            // An unreadable new version leaves the last good one on air.
            (None, Slot::Loaded(_)) => false,
            (None, _) => {
                *slot = Slot::Missing;
                false
            }
        }
    }

    /// The image at `relative` under the assets folder, once it is loaded.
    pub fn image(&mut self, relative: &str) -> Option<Handle<Image>> {
        AssetFiles::get(self.requests.as_ref(), &mut self.images, relative)
    }

    /// Whether the image at `relative` is loaded.
    pub fn has_image(&self, relative: &str) -> bool {
        matches!(self.images.get(relative), Some(Slot::Loaded(_)))
    }

    /// Whether the font at `relative` is loaded.
    pub fn font_loaded(&self, relative: &str) -> bool {
        matches!(self.fonts.get(relative), Some(Slot::Loaded(_)))
    }

    /// The font at `relative` under the assets folder, once it is loaded (a scene's
    /// fonts arrive before the scene itself).
    pub fn font(&mut self, relative: &str) -> Option<Handle<Font>> {
        AssetFiles::get(self.requests.as_ref(), &mut self.fonts, relative)
    }

    /// Takes an image the watcher decoded.
    pub fn put_image(&mut self, relative: String, image: Option<Image>, images: &mut Assets<Image>) -> bool {
        AssetFiles::put(&mut self.images, relative, image, images)
    }

    /// Takes a font's bytes as the watcher read them.
    pub fn put_font(&mut self, relative: String, bytes: Option<Vec<u8>>, fonts: &mut Assets<Font>) -> bool {
        AssetFiles::put(&mut self.fonts, relative, bytes.map(Font::from_bytes), fonts)
    }
}
