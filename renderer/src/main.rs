//! `sothebais-renderer`: draws the show offscreen with Bevy and streams it with
//! GStreamer. This binary is a placeholder until the renderer work lands: it parses
//! the documented options and says plainly that rendering is not available yet.

use std::process::ExitCode;

use clap::Parser;

/// The SothebAIs renderer (not built yet: see the renderer issue).
#[derive(Debug, Parser)]
#[command(name = "sothebais-renderer", version, about)]
struct Cli {
    /// Scene folder to draw, such as scenes/default
    #[arg(long, value_name = "DIR")]
    scene: Option<String>,
    /// Output: rtmp://, rtmps:// or a .mp4/.mkv/.flv file (repeatable)
    #[arg(long, value_name = "URL")]
    output: Vec<String>,
}

fn main() -> ExitCode {
    let _cli = Cli::parse();
    #[expect(clippy::print_stderr, reason = "the binary's one-line reason for exiting")]
    {
        eprintln!("sothebais-renderer: rendering is not implemented in this build yet");
    }
    ExitCode::from(2)
}
