//! The fonts and images the scenes name, read from the assets folder (or the copy
//! built into the binary) and read again when their file changes.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, ImageSampler, ImageType};
use bevy::prelude::*;

/// Fonts and images read from the assets folder, reloaded when their file changes.
#[derive(Debug, Resource)]
pub struct AssetFiles {
    pub dir: PathBuf,
    images: HashMap<String, (Option<Handle<Image>>, Option<SystemTime>)>,
    fonts: HashMap<String, (Option<Handle<Font>>, Option<SystemTime>)>,
}

impl AssetFiles {
    pub fn new(dir: PathBuf) -> AssetFiles {
        AssetFiles { dir, images: HashMap::new(), fonts: HashMap::new() }
    }

    fn stamp(path: &Path) -> Option<SystemTime> {
        std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
    }

    /// The bytes of `relative` under the folder, or its built-in copy when the
    /// folder has none (said once in the log).
    fn read(dir: &Path, relative: &str) -> Option<Vec<u8>> {
        let (bytes, built_in) = crate::builtin::read(dir, relative)?;
        if built_in {
            info!("{relative} is not in {}: the built-in copy is used", dir.display());
        }
        Some(bytes.into_owned())
    }

    fn read_image(dir: &Path, relative: &str) -> Option<Image> {
        let bytes = AssetFiles::read(dir, relative)?;
        let extension = Path::new(relative).extension()?.to_str()?.to_ascii_lowercase();
        match Image::from_buffer(
            &bytes,
            ImageType::Extension(&extension),
            CompressedImageFormats::NONE,
            true,
            ImageSampler::Default,
            RenderAssetUsages::RENDER_WORLD,
        ) {
            Ok(image) => Some(image),
            Err(error) => {
                warn!("image {} cannot be read: {error}", dir.join(relative).display());
                None
            }
        }
    }

    /// The image at `relative` under the assets folder, loaded once.
    pub fn image(&mut self, relative: &str, images: &mut Assets<Image>) -> Option<Handle<Image>> {
        super::format::safe_asset_path(relative).ok()?;
        let path = self.dir.join(relative);
        let entry = self.images.entry(relative.to_owned()).or_insert_with(|| {
            let stamp = AssetFiles::stamp(&path);
            (AssetFiles::read_image(&self.dir, relative).map(|image| images.add(image)), stamp)
        });
        entry.0.clone()
    }

    /// Whether the image at `relative` is loaded.
    pub fn has_image(&self, relative: &str) -> bool {
        self.images.get(relative).is_some_and(|(handle, _)| handle.is_some())
    }

    /// The font at `relative` under the assets folder, loaded once.
    pub fn font(&mut self, relative: &str, fonts: &mut Assets<Font>) -> Option<Handle<Font>> {
        super::format::safe_asset_path(relative).ok()?;
        let path = self.dir.join(relative);
        let entry = self.fonts.entry(relative.to_owned()).or_insert_with(|| {
            let stamp = AssetFiles::stamp(&path);
            (AssetFiles::read(&self.dir, relative).map(|bytes| fonts.add(Font::from_bytes(bytes))), stamp)
        });
        entry.0.clone()
    }

    /// Reloads the assets whose files changed, in place (entities keep their handles).
    /// Returns the paths reloaded.
    pub fn refresh(&mut self, images: &mut Assets<Image>, fonts: &mut Assets<Font>) -> Vec<String> {
        let mut reloaded = Vec::new();
        for (relative, (handle, stamp)) in &mut self.images {
            let path = self.dir.join(relative.as_str());
            let now = AssetFiles::stamp(&path);
            if now != *stamp {
                *stamp = now;
                if let Some(image) = AssetFiles::read_image(&self.dir, relative) {
                    match handle {
                        Some(handle) => {
                            let _ = images.insert(handle.id(), image);
                        }
                        None => *handle = Some(images.add(image)),
                    }
                    reloaded.push(relative.clone());
                }
            }
        }
        for (relative, (handle, stamp)) in &mut self.fonts {
            let path = self.dir.join(relative.as_str());
            let now = AssetFiles::stamp(&path);
            if now != *stamp {
                *stamp = now;
                if let Some(bytes) = AssetFiles::read(&self.dir, relative) {
                    match handle {
                        Some(handle) => {
                            let _ = fonts.insert(handle.id(), Font::from_bytes(bytes));
                        }
                        None => *handle = Some(fonts.add(Font::from_bytes(bytes))),
                    }
                    reloaded.push(relative.clone());
                }
            }
        }
        reloaded
    }
}
