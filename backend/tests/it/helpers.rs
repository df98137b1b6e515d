//! The shared test helpers (`sothebais-testkit`), under the name the modules use.

pub use sothebais_testkit::*;
