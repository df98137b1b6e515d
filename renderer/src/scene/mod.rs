//! Scenes: the file format designers edit, the folder of scene files with hot
//! reload, and the Bevy systems that draw the scene on air.

pub mod backdrop;
pub mod draw;
pub mod format;
pub mod library;
