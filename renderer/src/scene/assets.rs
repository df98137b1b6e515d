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

    fn request<T: Asset>(
        requests: Option<&Sender<String>>,
        slots: &mut HashMap<String, Slot<T>>,
        relative: &str,
    ) {
        if let Some(requests) = requests {
            let _ = requests.send(relative.to_owned());
        }
        slots.insert(relative.to_owned(), Slot::Waiting);
    }

    /// The image at `relative` under the assets folder, once it is loaded.
    pub fn image(&mut self, relative: &str) -> Option<Handle<Image>> {
        super::format::safe_asset_path(relative).ok()?;
        match self.images.get(relative) {
            Some(Slot::Loaded(handle)) => Some(handle.clone()),
            Some(Slot::Waiting | Slot::Missing) => None,
            None => {
                AssetFiles::request(self.requests.as_ref(), &mut self.images, relative);
                None
            }
        }
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
        super::format::safe_asset_path(relative).ok()?;
        match self.fonts.get(relative) {
            Some(Slot::Loaded(handle)) => Some(handle.clone()),
            Some(Slot::Waiting | Slot::Missing) => None,
            None => {
                AssetFiles::request(self.requests.as_ref(), &mut self.fonts, relative);
                None
            }
        }
    }

    /// Takes an image the watcher decoded (`None`: it cannot be read); a reload
    /// replaces the asset in place, so entities keep their handles. True when an
    /// image is now loaded.
    pub fn put_image(&mut self, relative: String, image: Option<Image>, images: &mut Assets<Image>) -> bool {
        let slot = self.images.entry(relative).or_insert(Slot::Waiting);
        match (image, &*slot) {
            (Some(image), Slot::Loaded(handle)) => {
                let _ = images.insert(handle.id(), image);
                true
            }
            (Some(image), _) => {
                *slot = Slot::Loaded(images.add(image));
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

    /// Takes a font's bytes as the watcher read them; as [`AssetFiles::put_image`].
    pub fn put_font(&mut self, relative: String, bytes: Option<Vec<u8>>, fonts: &mut Assets<Font>) -> bool {
        let slot = self.fonts.entry(relative).or_insert(Slot::Waiting);
        match (bytes, &*slot) {
            (Some(bytes), Slot::Loaded(handle)) => {
                let _ = fonts.insert(handle.id(), Font::from_bytes(bytes));
                true
            }
            (Some(bytes), _) => {
                *slot = Slot::Loaded(fonts.add(Font::from_bytes(bytes)));
                true
            }
            (None, Slot::Loaded(_)) => false,
            (None, _) => {
                *slot = Slot::Missing;
                false
            }
        }
    }
}
