//! The scenes on disk: loaded from the scenes folder, re-read when a file changes,
//! the last good version kept when a file turns invalid, and the scene for the
//! moment picked (pinned by the operator, else by the auction's state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use bevy::prelude::Resource;

use super::format::{self, Scene, SceneError};

/// The scene compiled into the binary, used when the folder has no `default.toml`.
pub const BUILT_IN: &str = include_str!("../../../scenes/default.toml");

/// The built-in default scene.
fn built_in() -> Option<Arc<Scene>> {
    format::parse(Path::new("<built-in>/default.toml"), BUILT_IN).ok().map(Arc::new)
}

/// What reading the scenes folder found for one file (made by [`SceneFolder::scan`]
/// on the file watcher's thread, applied by [`Library::apply`] in the app).
#[derive(Debug, Clone)]
pub enum SceneFile {
    /// A file read anew (or the built-in default when the folder has none); `missing`
    /// names the fonts and images it names that are neither in the assets folder nor
    /// built in (the scene goes on air without them).
    Read { name: String, scene: Result<Arc<Scene>, SceneError>, missing: Vec<SceneError> },
    /// A file gone; `replacement` is the built-in default for `default`.
    Gone { name: String, replacement: Option<Arc<Scene>> },
}

/// The scenes folder as last seen: each file's modification time and size, so a scan
/// reads only what changed.
#[derive(Debug)]
pub struct SceneFolder {
    dir: PathBuf,
    stamps: BTreeMap<String, Option<(SystemTime, u64)>>,
    /// Whether the built-in default has been handed out (on the first scan).
    built_in_sent: bool,
}

impl SceneFolder {
    pub fn new(dir: &Path) -> SceneFolder {
        SceneFolder { dir: dir.to_path_buf(), stamps: BTreeMap::new(), built_in_sent: false }
    }

    /// The files that changed since the last scan (all of them the first time), each
    /// with its text for locating errors.
    pub fn scan(&mut self) -> Vec<(SceneFile, Option<String>)> {
        let mut found = Vec::new();
        // The built-in default first, so a `default.toml` that never reads leaves it.
        if !self.built_in_sent {
            self.built_in_sent = true;
            if let Some(scene) = built_in() {
                let read =
                    SceneFile::Read { name: "default".to_owned(), scene: Ok(scene), missing: Vec::new() };
                found.push((read, Some(BUILT_IN.to_owned())));
            }
        }
        let mut present = Vec::new();
        let files = std::fs::read_dir(&self.dir).into_iter().flatten().flatten().map(|entry| entry.path());
        for path in files.filter(|path| path.extension().is_some_and(|extension| extension == "toml")) {
            let Some(name) = path.file_stem().map(|stem| stem.to_string_lossy().into_owned()) else {
                continue;
            };
            present.push(name.clone());
            let stamp = std::fs::metadata(&path)
                .ok()
                .map(|meta| (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len()));
            if stamp.is_some() && self.stamps.get(&name) == Some(&stamp) {
                continue;
            }
            self.stamps.insert(name.clone(), stamp);
            let (scene, text) = match std::fs::read_to_string(&path) {
                Ok(text) => (format::parse(&path, &text).map(Arc::new), Some(text)),
                Err(error) => (
                    Err(SceneError {
                        file: path.display().to_string(),
                        line: 1,
                        column: 1,
                        message: format!("cannot read: {error}"),
                    }),
                    None,
                ),
            };
            found.push((SceneFile::Read { name, scene, missing: Vec::new() }, text));
        }
        let gone: Vec<String> = self.stamps.keys().filter(|name| !present.contains(name)).cloned().collect();
        for name in gone {
            self.stamps.remove(&name);
            let replacement = if name == "default" { built_in() } else { None };
            found.push((SceneFile::Gone { name, replacement }, None));
        }
        found
    }
}

/// One scene and what is known of it.
#[derive(Debug, Clone)]
struct Entry {
    /// The last version that read without error (none if it never did).
    good: Option<Arc<Scene>>,
    /// Bumped whenever `good` changes.
    version: u64,
    error: Option<SceneError>,
}

/// What applying a file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    Loaded(String),
    Invalid(SceneError),
    /// A scene on air (or ready) names a font or image that is nowhere.
    MissingAsset(SceneError),
    Removed(String),
}

/// All scenes, by name, as the file watcher delivered them.
#[derive(Debug, Resource, Default)]
pub struct Library {
    entries: BTreeMap<String, Entry>,
    /// The scene the operator put on air (`--scene`, `POST /api/stream/scenes/active`).
    pinned: Option<String>,
}

impl Library {
    /// Reads every `*.toml` under `dir` at once (a missing folder means only the
    /// built-in scene): for checks at start and for tests.
    pub fn open(dir: &Path) -> (Library, Vec<Change>) {
        let mut library = Library::default();
        let files = SceneFolder::new(dir).scan().into_iter().map(|(file, _)| file).collect();
        let changes = library.apply(files);
        (library, changes)
    }

    /// An empty library with the operator's pin (`--scene`), filled by the watcher.
    pub fn pinned_to(pinned: Option<String>) -> Library {
        Library { entries: BTreeMap::new(), pinned }
    }

    /// Takes what a scan found.
    pub fn apply(&mut self, files: Vec<SceneFile>) -> Vec<Change> {
        let mut changes = Vec::new();
        for file in files {
            match file {
                SceneFile::Read { name, scene, missing } => {
                    let entry = self.entries.entry(name.clone()).or_insert(Entry {
                        good: None,
                        version: 0,
                        error: None,
                    });
                    match scene {
                        Ok(scene) => {
                            if entry.good.as_deref() != Some(&*scene) {
                                entry.good = Some(scene);
                                entry.version += 1;
                                changes.push(Change::Loaded(name));
                            }
                            entry.error = missing.first().cloned();
                            changes.extend(missing.into_iter().map(Change::MissingAsset));
                        }
                        Err(error) => {
                            entry.error = Some(error.clone());
                            changes.push(Change::Invalid(error));
                        }
                    }
                }
                SceneFile::Gone { name, replacement } => {
                    match replacement {
                        Some(scene) => {
                            let entry = self.entries.entry(name.clone()).or_insert(Entry {
                                good: None,
                                version: 0,
                                error: None,
                            });
                            entry.good = Some(scene);
                            entry.error = None;
                            entry.version += 1;
                        }
                        None => {
                            self.entries.remove(&name);
                        }
                    }
                    changes.push(Change::Removed(name));
                }
            }
        }
        changes
    }

    /// Puts a scene on air whatever the auction's state; `None` goes back to rules.
    pub fn pin(&mut self, name: Option<String>) -> Result<(), String> {
        if let Some(name) = &name
            && self.entries.get(name).is_none_or(|entry| entry.good.is_none())
        {
            return Err(format!("no usable scene {name:?}; scenes: {}", self.names().join(", ")));
        }
        self.pinned = name;
        Ok(())
    }

    pub fn pinned(&self) -> Option<&str> {
        self.pinned.as_deref()
    }

    /// The scene for an auction state, with its version: the pinned one; else the
    /// first (by name) listing the state; else `default`.
    pub fn pick(&self, state: &str) -> Option<(Arc<Scene>, u64)> {
        let usable = |name: &str| {
            self.entries.get(name).and_then(|entry| entry.good.clone().map(|scene| (scene, entry.version)))
        };
        if let Some(found) = self.pinned.as_deref().and_then(usable) {
            return Some(found);
        }
        self.entries
            .values()
            .filter_map(|entry| entry.good.clone().map(|scene| (scene, entry.version)))
            .find(|(scene, _)| scene.states.iter().any(|listed| listed.as_str() == state))
            .or_else(|| usable("default"))
    }

    /// Names of the scenes that can go on air.
    pub fn names(&self) -> Vec<String> {
        self.entries.iter().filter(|(_, entry)| entry.good.is_some()).map(|(name, _)| name.clone()).collect()
    }

    /// Every scene with its states and current error.
    pub fn list(&self) -> Vec<(String, Vec<&'static str>, Option<SceneError>)> {
        self.entries
            .iter()
            .map(|(name, entry)| {
                let states = entry
                    .good
                    .as_ref()
                    .map(|scene| scene.states.iter().map(|state| state.as_str()).collect())
                    .unwrap_or_default();
                (name.clone(), states, entry.error.clone())
            })
            .collect()
    }

    /// Errors of the files that are invalid now.
    #[cfg(test)]
    pub fn errors(&self) -> Vec<SceneError> {
        self.entries.values().filter_map(|entry| entry.error.clone()).collect()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write");
        // Make the change visible even on file systems with coarse timestamps.
        let later = SystemTime::now() + Duration::from_secs(2);
        let file = std::fs::File::options().write(true).open(&path).expect("open");
        file.set_modified(later).expect("mtime");
    }

    const SOLD: &str = "states = [\"closed\"]\n[[layer]]\nid = \"r\"\nkind = \"countdown\"\n";

    /// A library fed by a folder, as the watcher feeds it.
    fn open(dir: &Path) -> (SceneFolder, Library) {
        let mut folder = SceneFolder::new(dir);
        let mut library = Library::default();
        library.apply(scan(&mut folder));
        (folder, library)
    }

    fn scan(folder: &mut SceneFolder) -> Vec<SceneFile> {
        folder.scan().into_iter().map(|(file, _)| file).collect()
    }

    #[test]
    fn the_built_in_default_is_there_without_a_folder() {
        let (library, changes) = Library::open(Path::new("/nonexistent/scenes"));
        assert_eq!(changes, vec![Change::Loaded("default".into())]);
        let (scene, _) = library.pick("open").expect("default");
        assert_eq!(scene.name, "default");
        assert!(!scene.layers.is_empty());
    }

    #[test]
    fn scenes_are_picked_by_state_or_pinned() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "sold.toml", SOLD);
        let (mut library, changes) = Library::open(dir.path());
        assert_eq!(changes, vec![Change::Loaded("default".into()), Change::Loaded("sold".into())]);
        assert_eq!(library.pick("closed").expect("sold").0.name, "sold");
        assert_eq!(library.pick("open").expect("default").0.name, "default");
        library.pin(Some("sold".into())).expect("pin");
        assert_eq!(library.pick("open").expect("pinned").0.name, "sold");
        assert!(library.pin(Some("nope".into())).is_err());
        library.pin(None).expect("unpin");
        assert_eq!(library.pick("open").expect("rules").0.name, "default");
    }

    #[test]
    fn an_invalid_edit_keeps_the_last_good_scene_and_says_where() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "sold.toml", SOLD);
        let (mut folder, mut library) = open(dir.path());
        let (_, version) = library.pick("closed").expect("sold");
        write(dir.path(), "sold.toml", "states = [\"closed\"]\n[[layer]]\nid = \"r\"\nkind = \"countdwn\"\n");
        let changes = library.apply(scan(&mut folder));
        let [Change::Invalid(error)] = changes.as_slice() else { panic!("{changes:?}") };
        assert_eq!(error.line, 4);
        assert!(error.file.ends_with("sold.toml"));
        let (scene, same) = library.pick("closed").expect("still on air");
        assert_eq!((scene.layers[0].id.as_str(), same), ("r", version));
        assert_eq!(library.errors().len(), 1);
        write(dir.path(), "sold.toml", SOLD.replace("\"r\"", "\"result\"").as_str());
        assert_eq!(library.apply(scan(&mut folder)), vec![Change::Loaded("sold".into())]);
        assert!(library.errors().is_empty());
        assert!(library.pick("closed").expect("new").1 > version);
        assert!(scan(&mut folder).is_empty(), "nothing changed since: nothing read");
    }

    #[test]
    fn a_scene_naming_a_missing_asset_goes_on_air_with_the_error_listed() {
        let scene = Arc::new(format::parse(Path::new("sold.toml"), SOLD).expect("scene"));
        let error =
            SceneError { file: "sold.toml".into(), line: 3, column: 9, message: "image gone.png".into() };
        let mut library = Library::default();
        let changes = library.apply(vec![SceneFile::Read {
            name: "sold".into(),
            scene: Ok(scene),
            missing: vec![error.clone()],
        }]);
        assert_eq!(changes, vec![Change::Loaded("sold".into()), Change::MissingAsset(error.clone())]);
        assert_eq!(library.pick("closed").expect("on air anyway").0.name, "sold");
        assert_eq!(library.list()[0].2, Some(error), "the API lists the error");
    }

    #[test]
    fn a_removed_default_falls_back_to_the_built_in_one() {
        let dir = tempfile::tempdir().expect("dir");
        write(dir.path(), "default.toml", SOLD);
        let (mut folder, mut library) = open(dir.path());
        assert_eq!(library.pick("open").expect("file").0.layers.len(), 1);
        std::fs::remove_file(dir.path().join("default.toml")).expect("rm");
        assert_eq!(library.apply(scan(&mut folder)), vec![Change::Removed("default".into())]);
        assert!(library.pick("open").expect("built in").0.layers.len() > 1);
    }
}
