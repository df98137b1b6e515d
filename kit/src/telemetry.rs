//! Logs: human-readable by default, JSON lines with `LOG_FORMAT=json`, filtered by
//! `RUST_LOG`. Both binaries log this way. The latest lines are also kept in memory
//! ([`recent`]) for the console.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::io::IsTerminal as _;
use std::sync::{LazyLock, Mutex};

use chrono::{DateTime, Utc};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Lines kept in memory.
pub const KEPT_LINES: usize = 2000;

/// One log line kept in memory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LogLine {
    pub at: DateTime<Utc>,
    /// `error`, `warn`, `info`, `debug` or `trace`.
    pub level: &'static str,
    pub target: String,
    /// The message and its fields, `key=value`.
    pub text: String,
}

static RECENT: LazyLock<Mutex<VecDeque<LogLine>>> =
    LazyLock::new(|| Mutex::new(VecDeque::with_capacity(KEPT_LINES)));

/// The latest log lines, oldest first (at most [`KEPT_LINES`]).
pub fn recent() -> Vec<LogLine> {
    RECENT.lock().map(|lines| lines.iter().cloned().collect()).unwrap_or_default()
}

/// Keeps every event that passes the filter in [`RECENT`].
struct Keep;

struct Fields(String);

impl tracing::field::Visit for Fields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{}{value:?}", if self.0.is_empty() { "" } else { " " });
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, "{}{value}", if self.0.is_empty() { "" } else { " " });
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Keep {
    fn on_event(&self, event: &tracing::Event<'_>, _context: tracing_subscriber::layer::Context<'_, S>) {
        let mut fields = Fields(String::new());
        event.record(&mut fields);
        let metadata = event.metadata();
        let line = LogLine {
            at: Utc::now(),
            level: match *metadata.level() {
                tracing::Level::ERROR => "error",
                tracing::Level::WARN => "warn",
                tracing::Level::INFO => "info",
                tracing::Level::DEBUG => "debug",
                tracing::Level::TRACE => "trace",
            },
            target: metadata.target().to_owned(),
            text: fields.0.trim_start().to_owned(),
        };
        if let Ok(mut lines) = RECENT.lock() {
            if lines.len() == KEPT_LINES {
                lines.pop_front();
            }
            lines.push_back(line);
        }
    }
}

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl std::str::FromStr for LogFormat {
    type Err = String;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "pretty" => Ok(LogFormat::Pretty),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("{other:?} is not one of pretty, json")),
        }
    }
}

/// Installs the global log subscriber. Logs go to standard error; colours only on a
/// terminal, so lines such as `listening role=… addr=…` stay parseable.
pub fn init(format: LogFormat, filter: &str) {
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let registry = tracing_subscriber::registry().with(filter).with(Keep);
    let output = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => registry.with(output.json().flatten_event(true)).try_init(),
        LogFormat::Pretty => registry.with(output.with_ansi(std::io::stderr().is_terminal())).try_init(),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_kept_with_their_fields() {
        let subscriber = tracing_subscriber::registry().with(Keep);
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(lot = 7, "the hammer fell");
        });
        let line = recent().into_iter().rev().find(|line| line.text.contains("hammer")).expect("kept");
        assert_eq!((line.level, line.text.as_str()), ("warn", "the hammer fell lot=7"));
    }
}
