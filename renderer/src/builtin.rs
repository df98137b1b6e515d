//! The assets the default scenes need, built into the binary: the fonts, the lot
//! placeholder and the sound effects. A file under the assets folder always wins;
//! when it is missing the built-in copy is used, so a renderer started from any
//! folder still draws its text, its lot card and plays its sounds.

use std::path::{Path, PathBuf};

/// Built-in copies, by their path under the assets folder.
const FILES: [(&str, &[u8]); 6] = [
    ("fonts/DejaVuSans.ttf", include_bytes!("../../assets/fonts/DejaVuSans.ttf")),
    ("fonts/DejaVuSans-Bold.ttf", include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf")),
    ("lots/placeholder.png", include_bytes!("../../assets/lots/placeholder.png")),
    ("sounds/bid_accepted.wav", include_bytes!("../../assets/sounds/bid_accepted.wav")),
    ("sounds/extended.wav", include_bytes!("../../assets/sounds/extended.wav")),
    ("sounds/closed.wav", include_bytes!("../../assets/sounds/closed.wav")),
];

/// The built-in copy of `relative` (`fonts/DejaVuSans.ttf`), if there is one.
pub fn file(relative: &str) -> Option<&'static [u8]> {
    FILES.iter().find(|(path, _)| *path == relative).map(|(_, bytes)| *bytes)
}

/// Where the file's bytes come from: the assets folder, or the built-in copy when
/// the folder has no such file. `None` when neither has it (or the file cannot be
/// read, which is reported by the caller).
pub fn read(dir: &Path, relative: &str) -> Option<(std::borrow::Cow<'static, [u8]>, bool)> {
    match std::fs::read(dir.join(relative)) {
        Ok(bytes) => Some((bytes.into(), false)),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => {
            file(relative).map(|bytes| (bytes.into(), true))
        }
        Err(_) => None,
    }
}

/// The assets folder (pure but for looking at folders): the one given
/// (`--assets`, `STREAM_ASSETS_DIR`), else `assets` beside the binary, else
/// `assets` in the working directory; the second item says whether it exists.
pub fn find_folder(given: Option<PathBuf>, binary: Option<&Path>, cwd: &Path) -> (PathBuf, bool) {
    if let Some(given) = given {
        let exists = given.is_dir();
        return (given, exists);
    }
    let beside = binary.and_then(Path::parent).map(|dir| dir.join("assets"));
    let candidates = beside.into_iter().chain([cwd.join("assets")]);
    let mut last = cwd.join("assets");
    for candidate in candidates {
        if candidate.is_dir() {
            return (candidate, true);
        }
        last = candidate;
    }
    (last, false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_scenes_assets_are_built_in_and_a_file_wins() {
        assert!(file("fonts/DejaVuSans.ttf").is_some_and(|bytes| bytes.len() > 100_000));
        assert!(file("lots/placeholder.png").is_some_and(|bytes| bytes.starts_with(b"\x89PNG")));
        assert!(file("uploads/mine.png").is_none());
        let dir = tempfile::tempdir().expect("dir");
        let (bytes, built_in) = read(dir.path(), "sounds/closed.wav").expect("the built-in copy");
        assert!(built_in && bytes.starts_with(b"RIFF"));
        std::fs::create_dir(dir.path().join("sounds")).expect("mkdir");
        std::fs::write(dir.path().join("sounds/closed.wav"), b"RIFF mine").expect("write");
        let (bytes, built_in) = read(dir.path(), "sounds/closed.wav").expect("the file");
        assert!(!built_in && bytes.as_ref() == b"RIFF mine");
        assert!(read(dir.path(), "uploads/none.png").is_none());
    }

    #[test]
    fn the_assets_folder_is_the_given_one_then_beside_the_binary_then_here() {
        let here = tempfile::tempdir().expect("dir");
        let install = tempfile::tempdir().expect("dir");
        let binary = install.path().join("sothebais-renderer");
        assert_eq!(find_folder(None, Some(&binary), here.path()), (here.path().join("assets"), false));
        std::fs::create_dir(here.path().join("assets")).expect("mkdir");
        assert_eq!(find_folder(None, Some(&binary), here.path()), (here.path().join("assets"), true));
        std::fs::create_dir(install.path().join("assets")).expect("mkdir");
        assert_eq!(find_folder(None, Some(&binary), here.path()), (install.path().join("assets"), true));
        let given = here.path().join("mine");
        assert_eq!(find_folder(Some(given.clone()), Some(&binary), here.path()), (given, false));
    }
}
