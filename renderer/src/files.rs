//! The file watcher: every file the renderer reads while it runs (the scene files,
//! the fonts and images they and the character name, the sound effects) is looked
//! at, read and decoded on this thread, four times a second, and handed to the app
//! through a channel as ready values ([`Update`]). The render loop only applies them
//! (`apply_files`, below, in `Stage::Ingest`): a slow disk, a huge image or a folder of thousands
//! of scenes never costs it a frame.
//!
//! A scene's own fonts and images are sent before the scene, so it goes on air with
//! them; images asked for while the show runs (a lot's downloaded picture, the
//! character's art) come on request. The thread ends when the app drops its side.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant, SystemTime};

use bevy::asset::RenderAssetUsages;
use bevy::image::{CompressedImageFormats, ImageSampler, ImageType};
use bevy::log::{info, warn};
use bevy::prelude::*;

use crate::scene::assets::AssetFiles;
use crate::scene::draw::{News, SceneNews};
use crate::scene::format::{LayerKind, Scene, SceneError, Trigger};
use crate::scene::library::{Change, Library, SceneFile, SceneFolder};
use crate::sound::{Clip, SOUNDS};

/// How often the folders are looked at.
pub const POLL: Duration = Duration::from_millis(250);

/// What the watcher hands the app.
#[derive(Debug)]
pub enum Update {
    /// Scene files read (after the fonts and images they name).
    Scenes(Vec<SceneFile>),
    /// An image decoded (`None`: missing or unreadable).
    Image { path: String, image: Option<Image> },
    /// A font's bytes (`None`: missing or unreadable).
    Font { path: String, bytes: Option<Vec<u8>> },
    /// A sound effect (an error: it cannot be played; its event is silent).
    Sound { trigger: Trigger, file: &'static str, clip: Result<Clip, String>, first: bool },
}

/// The app's ends of the watcher's channels.
#[derive(Debug)]
pub struct Channels {
    pub updates: Receiver<Update>,
    pub requests: Sender<String>,
}

/// Starts watching: the first look happens before this returns (at start, not in
/// the render loop), so the first frame has the scenes and their assets.
pub fn watch(scenes: &Path, assets: &Path) -> Channels {
    let (updates, app_updates) = std::sync::mpsc::channel();
    let (app_requests, requests) = std::sync::mpsc::channel();
    let mut watcher = Watcher::new(scenes, assets, updates);
    watcher.look();
    let spawned =
        std::thread::Builder::new().name("renderer-files".to_owned()).spawn(move || watcher.run(requests));
    if let Err(error) = spawned {
        warn!("the file watcher cannot start ({error}): scene and asset edits are not seen");
    }
    Channels { updates: app_updates, requests: app_requests }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Image,
    Font,
}

/// Whether an asset path names a font (else an image).
pub fn is_font(relative: &str) -> bool {
    kind(relative) == Kind::Font
}

fn kind(relative: &str) -> Kind {
    let lower = relative.to_ascii_lowercase();
    if lower.ends_with(".ttf") || lower.ends_with(".otf") { Kind::Font } else { Kind::Image }
}

/// A file's modification time, `None` when it is not there.
fn stamp(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|meta| meta.modified()).ok()
}

struct Watcher {
    folder: SceneFolder,
    scenes: PathBuf,
    assets: PathBuf,
    /// Each watched asset's stamp when last read (`None` inside: it was missing);
    /// not yet read: absent from the map.
    seen: BTreeMap<String, Option<SystemTime>>,
    watched: BTreeSet<String>,
    sounds: BTreeMap<&'static str, Option<SystemTime>>,
    updates: Sender<Update>,
    /// False once the app is gone.
    open: bool,
}

impl Watcher {
    fn new(scenes: &Path, assets: &Path, updates: Sender<Update>) -> Watcher {
        Watcher {
            folder: SceneFolder::new(scenes),
            scenes: scenes.to_path_buf(),
            assets: assets.to_path_buf(),
            seen: BTreeMap::new(),
            watched: BTreeSet::new(),
            sounds: BTreeMap::new(),
            updates,
            open: true,
        }
    }

    fn send(&mut self, update: Update) {
        self.open &= self.updates.send(update).is_ok();
    }

    /// Looks every [`POLL`], and at once when the app asks for an asset.
    fn run(mut self, requests: Receiver<String>) {
        let mut next = Instant::now() + POLL;
        while self.open {
            match requests.recv_timeout(next.saturating_duration_since(Instant::now())) {
                Ok(path) => {
                    self.watched.insert(path);
                    while let Ok(path) = requests.try_recv() {
                        self.watched.insert(path);
                    }
                    self.read_assets();
                }
                Err(RecvTimeoutError::Timeout) => {
                    self.look();
                    next = Instant::now() + POLL;
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
        }
    }

    /// One look at everything: the scene files (their assets first), the assets,
    /// the sounds.
    fn look(&mut self) {
        let mut files = Vec::new();
        for (file, text) in self.folder.scan() {
            files.push(match file {
                SceneFile::Read { name, scene: Ok(scene), .. } => {
                    let missing = self.scene_assets(&scene, text.as_deref());
                    SceneFile::Read { name, scene: Ok(scene), missing }
                }
                SceneFile::Gone { name, replacement: Some(scene) } => {
                    self.scene_assets(&scene, None);
                    SceneFile::Gone { name, replacement: Some(scene) }
                }
                other => other,
            });
        }
        self.read_assets();
        self.read_sounds();
        if !files.is_empty() {
            self.send(Update::Scenes(files));
        }
    }

    /// Watches the fonts and images a scene names (those without template fields),
    /// and names those that are nowhere, at the line of the scene file that names them.
    fn scene_assets(&mut self, scene: &Arc<Scene>, text: Option<&str>) -> Vec<SceneError> {
        let mut missing = Vec::new();
        for path in fixed_assets(scene) {
            if crate::scene::format::safe_asset_path(&path).is_err() {
                continue;
            }
            let there = self.assets.join(&path).exists() || crate::builtin::file(&path).is_some();
            if !there {
                let (line, column) = text.map_or((1, 1), |text| locate(text, &path));
                let what = if kind(&path) == Kind::Font { "font" } else { "image" };
                missing.push(SceneError {
                    file: self.scenes.join(format!("{}.toml", scene.name)).display().to_string(),
                    line,
                    column,
                    message: format!(
                        "{what} {path} is not in {} (nor built in): drawn without it",
                        self.assets.display()
                    ),
                });
            }
            self.watched.insert(path);
        }
        missing
    }

    /// Reads the watched assets that are new or whose file changed.
    fn read_assets(&mut self) {
        let watched: Vec<String> = self.watched.iter().cloned().collect();
        for relative in watched {
            let now = stamp(&self.assets.join(&relative));
            if self.seen.get(&relative) == Some(&now) {
                continue;
            }
            let first = !self.seen.contains_key(&relative);
            self.seen.insert(relative.clone(), now);
            let bytes = crate::builtin::read(&self.assets, &relative);
            if let Some((_, true)) = &bytes
                && first
            {
                info!("{relative} is not in {}: the built-in copy is used", self.assets.display());
            }
            let bytes = bytes.map(|(bytes, _)| bytes.into_owned());
            let update = match kind(&relative) {
                Kind::Font => Update::Font { path: relative, bytes },
                Kind::Image => {
                    let image = bytes.and_then(|bytes| decode(&self.assets, &relative, &bytes));
                    Update::Image { path: relative, image }
                }
            };
            self.send(update);
        }
    }

    /// Reads the sound effects that are new or whose file changed.
    fn read_sounds(&mut self) {
        for (trigger, file) in SOUNDS {
            let now = stamp(&self.assets.join(file));
            if self.sounds.get(file) == Some(&now) {
                continue;
            }
            let first = !self.sounds.contains_key(file);
            self.sounds.insert(file, now);
            let bytes =
                crate::builtin::read(&self.assets, file).ok_or_else(|| "it cannot be read".to_owned());
            let clip = bytes.and_then(|(bytes, _)| crate::sound::read_wav(&bytes)).map(Arc::new);
            self.send(Update::Sound { trigger, file, clip, first });
        }
    }
}

/// The fonts and images a scene names outright (not through a template field): an
/// image layer's image and fallback (a text layer's fallback is text).
pub fn fixed_assets(scene: &Scene) -> Vec<String> {
    let mut paths = Vec::new();
    for layer in &scene.layers {
        paths.extend(layer.font.clone());
        if layer.kind != LayerKind::Image {
            continue;
        }
        for template in [&layer.image, &layer.fallback].into_iter().flatten() {
            if template.fields().next().is_none() {
                paths.push(template.source.clone());
            }
        }
    }
    paths.sort();
    paths.dedup();
    paths
}

/// The line and column (1-based) where `needle` first appears in `text`.
fn locate(text: &str, needle: &str) -> (u32, u32) {
    for (index, line) in text.lines().enumerate() {
        if let Some(column) = line.find(needle) {
            return (index as u32 + 1, column as u32 + 1);
        }
    }
    (1, 1)
}

fn decode(dir: &Path, relative: &str, bytes: &[u8]) -> Option<Image> {
    let extension = Path::new(relative).extension()?.to_str()?.to_ascii_lowercase();
    match Image::from_buffer(
        bytes,
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

// ---- The app's side: applying what arrives, in `Stage::Ingest`. ----

/// The app's end of the watcher's channel: what it read and decoded.
#[derive(Debug, Resource)]
pub struct FileInbox(pub std::sync::Mutex<Receiver<Update>>);

/// Applies what the file watcher sent since the last frame: scene files, images,
/// fonts, sounds (no file is read here).
pub fn apply_files(
    inbox: Res<FileInbox>,
    mut library: ResMut<Library>,
    mut files: ResMut<AssetFiles>,
    mut images: ResMut<Assets<Image>>,
    mut fonts: ResMut<Assets<Font>>,
    mut sounds: Option<ResMut<crate::sound::Sounds>>,
    mut news: ResMut<News>,
) {
    let Ok(updates) = inbox.0.lock() else { return };
    while let Ok(update) = updates.try_recv() {
        match update {
            Update::Scenes(scene_files) => {
                for change in library.apply(scene_files) {
                    match &change {
                        Change::Loaded(name) => info!("scene {name} loaded"),
                        Change::Invalid(error) => {
                            warn!("scene error, the last good version stays on air: {error}")
                        }
                        Change::MissingAsset(error) => warn!("scene asset missing: {error}"),
                        Change::Removed(name) => info!("scene {name} removed"),
                    }
                    news.0.push(SceneNews::Changed(change));
                }
            }
            Update::Image { path, image } => {
                let reload = files.has_image(&path);
                if files.put_image(path.clone(), image, &mut images) && reload {
                    info!("asset {path} reloaded");
                    news.0.push(SceneNews::AssetLoaded(path));
                }
            }
            Update::Font { path, bytes } => {
                let reload = files.font_loaded(&path);
                if files.put_font(path.clone(), bytes, &mut fonts) && reload {
                    info!("asset {path} reloaded");
                    news.0.push(SceneNews::AssetLoaded(path));
                }
            }
            Update::Sound { trigger, file, clip, first } => {
                let Some(sounds) = sounds.as_mut() else { continue };
                match sounds.bank.put(trigger, clip) {
                    Ok(()) if !first => {
                        info!("sound {file} reloaded");
                        news.0.push(SceneNews::AssetLoaded(file.to_owned()));
                    }
                    Ok(()) => {}
                    Err(error) => warn!("sound {file} not used: {error}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(channels: &Channels) -> Vec<Update> {
        channels.updates.try_iter().collect()
    }

    fn wait_for(channels: &Channels, mut wanted: impl FnMut(&Update) -> bool) -> Vec<Update> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(update) = channels.updates.recv_timeout(Duration::from_millis(100)) {
                let done = wanted(&update);
                seen.push(update);
                if done {
                    return seen;
                }
            }
        }
        panic!("the watcher never sent it; it sent {seen:?}");
    }

    #[test]
    fn a_scene_arrives_after_its_fonts_and_images_and_a_missing_one_is_named_at_its_line() {
        let dir = tempfile::tempdir().expect("dir");
        let scenes = dir.path().join("scenes");
        std::fs::create_dir(&scenes).expect("mkdir");
        std::fs::write(
            scenes.join("lot.toml"),
            "[[layer]]\nid = \"t\"\nkind = \"text\"\ntext = \"Hi\"\nfont = \"fonts/DejaVuSans.ttf\"\n[[layer]]\nid = \"p\"\nkind = \"image\"\nimage = \"lots/nowhere.png\"\nsize = [10, 10]\n",
        )
        .expect("write");
        let channels = watch(&scenes, &dir.path().join("assets"));
        let updates = drain(&channels);
        let font_at = updates
            .iter()
            .position(|update| matches!(update, Update::Font { path, bytes: Some(_) } if path == "fonts/DejaVuSans.ttf"))
            .expect("the built-in font is sent");
        let scenes_at = updates
            .iter()
            .position(|update| matches!(update, Update::Scenes(_)))
            .expect("the scenes are sent");
        assert!(font_at < scenes_at, "the font comes before the scene that names it");
        let Some(Update::Scenes(files)) = updates.get(scenes_at) else { unreachable!() };
        let missing: Vec<&SceneError> = files
            .iter()
            .filter_map(|file| match file {
                SceneFile::Read { name, missing, .. } if name == "lot" => Some(missing),
                _ => None,
            })
            .flatten()
            .collect();
        let [error] = missing.as_slice() else { panic!("one missing image: {missing:?}") };
        assert_eq!(error.line, 9);
        assert!(error.file.ends_with("scenes/lot.toml"), "{error}");
        assert!(error.message.contains("image lots/nowhere.png"), "{error}");
    }

    #[test]
    fn an_asset_asked_for_arrives_and_arrives_again_when_its_file_changes() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("lots")).expect("mkdir");
        let png = crate::builtin::file("lots/placeholder.png").expect("built in");
        std::fs::write(dir.path().join("lots/a.png"), png).expect("write");
        let channels = watch(&dir.path().join("scenes"), dir.path());
        drain(&channels);
        channels.requests.send("lots/a.png".to_owned()).expect("ask");
        wait_for(
            &channels,
            |update| matches!(update, Update::Image { path, image: Some(_) } if path == "lots/a.png"),
        );
        let file = std::fs::File::options().write(true).open(dir.path().join("lots/a.png")).expect("open");
        file.set_modified(SystemTime::now() + Duration::from_secs(5)).expect("touch");
        wait_for(
            &channels,
            |update| matches!(update, Update::Image { path, image: Some(_) } if path == "lots/a.png"),
        );
        channels.requests.send("lots/none.png".to_owned()).expect("ask");
        wait_for(
            &channels,
            |update| matches!(update, Update::Image { path, image: None } if path == "lots/none.png"),
        );
    }

    #[test]
    fn sounds_arrive_at_start_and_again_when_edited_and_a_broken_one_says_why() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::create_dir(dir.path().join("sounds")).expect("mkdir");
        let channels = watch(&dir.path().join("scenes"), dir.path());
        let first: Vec<&'static str> = drain(&channels)
            .into_iter()
            .filter_map(|update| match update {
                Update::Sound { file, clip: Ok(_), first: true, .. } => Some(file),
                _ => None,
            })
            .collect();
        assert_eq!(first.len(), SOUNDS.len(), "every sound, built in: {first:?}");
        std::fs::write(dir.path().join("sounds/closed.wav"), b"not a wav").expect("break it");
        let updates =
            wait_for(&channels, |update| matches!(update, Update::Sound { file: "sounds/closed.wav", .. }));
        let Some(Update::Sound { clip: Err(error), first: false, .. }) = updates.last() else {
            panic!("{updates:?}")
        };
        assert!(!error.is_empty());
    }
}
