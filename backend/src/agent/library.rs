//! The characters the host can be: the shipped ones (built into the binary, so the
//! host has a face wherever it is started), files in `AGENT_CHARACTERS_DIR`, and
//! uploads kept in `<data>/characters`. A later source replaces an earlier one of
//! the same id; a file that does not load is listed with its error, never fatal.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use super::character::{Character, CharacterError};

/// Where a character came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    Shipped,
    File,
    Upload,
}

/// The characters that ship with the show, by id.
pub const SHIPPED: &[(&str, &str)] = &[
    ("auctioneer", include_str!("../../../assets/characters/auctioneer.json")),
    ("pixel", include_str!("../../../assets/characters/pixel.json")),
];

#[derive(Debug, Clone)]
pub struct Library {
    pub characters: BTreeMap<String, (Arc<Character>, Origin)>,
    /// Files that did not load.
    pub invalid: Vec<CharacterError>,
}

impl Library {
    pub fn load(dir: &Path, uploads: &Path) -> Library {
        let mut library = Library { characters: BTreeMap::new(), invalid: Vec::new() };
        for (id, text) in SHIPPED {
            match Character::parse(&format!("{id}.json (shipped)"), id, text) {
                Ok(character) => library.add(character, Origin::Shipped),
                Err(error) => library.invalid.push(error),
            }
        }
        for (folder, origin) in [(dir, Origin::File), (uploads, Origin::Upload)] {
            for path in json_files(folder) {
                match Character::load(&path) {
                    Ok(character) => library.add(character, origin),
                    Err(error) => {
                        tracing::warn!(%error, "character file not loaded");
                        library.invalid.push(error);
                    }
                }
            }
        }
        library
    }

    pub fn add(&mut self, character: Character, origin: Origin) {
        // A file beside the shipped one of the same id is the same character.
        let origin = match self.characters.get(&character.id) {
            Some((_, Origin::Shipped)) if origin == Origin::File => Origin::Shipped,
            _ => origin,
        };
        self.characters.insert(character.id.clone(), (Arc::new(character), origin));
    }

    pub fn get(&self, id: &str) -> Option<Arc<Character>> {
        self.characters.get(id).map(|(character, _)| character.clone())
    }
}

fn json_files(folder: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(folder) else { return Vec::new() };
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .collect();
    files.sort();
    files
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_characters_load_with_art_for_every_mood() {
        let library = Library::load(Path::new("/nonexistent"), Path::new("/nonexistent"));
        assert!(library.invalid.is_empty(), "{:?}", library.invalid);
        for (id, _) in SHIPPED {
            let character = library.get(id).expect("shipped");
            for mood in sothebais_shared::events::Mood::ALL {
                let art = character.show.expressions.get(&mood).expect("art for every mood");
                assert!(art.talk().is_some(), "{id} has a talking frame for {mood:?}");
            }
            assert!(character.show.blink.is_some(), "{id} blinks");
            assert!(!character.bio.is_empty() && !character.message_examples.is_empty());
        }
    }
}
