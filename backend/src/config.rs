//! Layered configuration. Precedence, highest first: command-line flag, environment
//! variable, `sothebais.toml`, default. Every setting has one environment name (`ADMIN_PORT`) and one file key,
//! the same name in lower case without the `SOTHEBAIS_` prefix (`admin_port`).
//! An unknown file key or a malformed value stops the start, naming the key.

use std::collections::BTreeMap;
use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use secrecy::{ExposeSecret, SecretString};
use sothebais_shared::ports::{PortBlock, defaults};

use crate::events::dispatch::RetryPolicy;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flag,
    Environment,
    File(PathBuf),
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flag => formatter.write_str("command-line flag"),
            Origin::Environment => formatter.write_str("environment"),
            Origin::File(path) => write!(formatter, "{}", path.display()),
            Origin::Default => formatter.write_str("default"),
        }
    }
}

/// A configuration problem; the message names the key at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("unknown configuration key `{key}` in {file}")]
    UnknownKey { key: String, file: PathBuf },
    #[error("invalid value for {key} (from {origin}): {reason}")]
    Invalid { key: String, origin: Origin, reason: String },
    #[error("cannot read configuration file {file}: {reason}")]
    File { file: PathBuf, reason: String },
}

/// Every setting, by environment name.
const SETTINGS: &[&str] = &[
    "SOTHEBAIS_DATA_DIR",
    "SOTHEBAIS_BIND",
    "DATABASE_URL",
    "REDIS_URL",
    "REDIS_PORT",
    "REDIS_KEY_PREFIX",
    "JWT_SECRET",
    "AUTH_JWKS_URL",
    "LOG_FORMAT",
    "RUST_LOG",
    "SOTHEBAIS_TIMEZONE",
    "SOTHEBAIS_REQUEST_TIMEOUT_SECS",
    "STREAM_MANAGER_URL",
    "BLOCKED_BIDDERS",
    "EVENT_RETRY_TRIES",
    "EVENT_RETRY_INITIAL_MS",
    "EVENT_RETRY_MAX_MS",
    "EVENT_CLAIM_IDLE_MS",
    "ADMIN_PORT",
    "ADMIN_WS_PORT",
    "ADMIN_METRICS_PORT",
    "ADMIN_HEALTH_PORT",
    "EVENT_HANDLER_PORT",
    "EVENT_HANDLER_STREAM_PORT",
    "EVENT_HANDLER_METRICS_PORT",
    "EVENT_HANDLER_HEALTH_PORT",
    "AUCTION_ENGINE_PORT",
    "AUCTION_ENGINE_WS_PORT",
    "AUCTION_ENGINE_METRICS_PORT",
    "AUCTION_ENGINE_HEALTH_PORT",
    "AGENT_SERVICE_PORT",
    "AGENT_SERVICE_WS_PORT",
    "AGENT_SERVICE_METRICS_PORT",
    "AGENT_SERVICE_HEALTH_PORT",
    "SOCIAL_PORT",
    "SOCIAL_WS_PORT",
    "SOCIAL_METRICS_PORT",
    "SOCIAL_HEALTH_PORT",
];

/// The file key of an environment name: `SOTHEBAIS_DATA_DIR` -> `data_dir`.
pub fn file_key(env_name: &str) -> String {
    env_name.strip_prefix("SOTHEBAIS_").unwrap_or(env_name).to_ascii_lowercase()
}

/// Values given on the command line, by environment name.
pub type FlagValues = BTreeMap<&'static str, String>;

/// How logs are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// The listeners of every backend role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolePorts {
    pub admin: PortBlock,
    pub events: PortBlock,
    pub auction: PortBlock,
    pub agent: PortBlock,
    pub social: PortBlock,
}

/// The backend's configuration, fully resolved.
#[derive(Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub bind: IpAddr,
    pub database_url: Option<SecretString>,
    pub redis_url: Option<SecretString>,
    /// Prefix of every Redis key, so several deployments can share one server.
    pub redis_key_prefix: String,
    pub jwt_secret: Option<SecretString>,
    pub auth_jwks_url: Option<String>,
    pub log_format: LogFormat,
    pub log_filter: String,
    pub timezone: Tz,
    pub request_timeout: Duration,
    pub stream_manager_url: String,
    /// Bidder ids or `@handles` whose bids are refused `BIDDER_BLOCKED`.
    pub blocked_bidders: Vec<String>,
    /// How event consumers retry a failing delivery before dead-lettering it.
    pub event_retry: RetryPolicy,
    /// How long an entry stays pending with a consumer before another may claim it.
    pub event_claim_idle: Duration,
    pub ports: RolePorts,
}

impl fmt::Debug for Config {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redacted = |secret: &Option<SecretString>| secret.as_ref().map(|_| "[redacted]");
        formatter
            .debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("bind", &self.bind)
            .field("database_url", &self.database_url.as_ref().map(|url| redact_url(url.expose_secret())))
            .field("redis_url", &self.redis_url.as_ref().map(|url| redact_url(url.expose_secret())))
            .field("redis_key_prefix", &self.redis_key_prefix)
            .field("jwt_secret", &redacted(&self.jwt_secret))
            .field("auth_jwks_url", &self.auth_jwks_url)
            .field("log_format", &self.log_format)
            .field("log_filter", &self.log_filter)
            .field("timezone", &self.timezone)
            .field("request_timeout", &self.request_timeout)
            .field("stream_manager_url", &self.stream_manager_url)
            .field("blocked_bidders", &self.blocked_bidders)
            .field("ports", &self.ports)
            .finish()
    }
}

/// A connection URL with its password replaced, safe to log.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            let user = credentials.split(':').next().unwrap_or("");
            if credentials.contains(':') {
                format!("{}{user}:[redacted]{}", &url[..scheme_end + 3], &url[at..])
            } else {
                url.to_owned()
            }
        }
        _ => url.to_owned(),
    }
}

/// The raw values of every layer, merged by precedence.
struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
}

impl Layers {
    fn get(&self, key: &str) -> Option<&(String, Origin)> {
        self.values.get(key)
    }

    fn parse<T>(
        &self,
        key: &str,
        default: T,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<T, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some((value, origin)) => parse(value.trim()).map_err(|reason| ConfigError::Invalid {
                key: key.to_owned(),
                origin: origin.clone(),
                reason,
            }),
        }
    }

    fn optional<T>(
        &self,
        key: &str,
        parse: impl Fn(&str) -> Result<T, String>,
    ) -> Result<Option<T>, ConfigError> {
        self.parse(key, None, |value| if value.is_empty() { Ok(None) } else { parse(value).map(Some) })
    }

    fn port(&self, key: &str) -> Result<Option<u16>, ConfigError> {
        self.optional(key, parse_port)
    }

    fn block(&self, prefix: &str, ws_suffix: &str, default_base: u16) -> Result<PortBlock, ConfigError> {
        let base_key = format!("{prefix}_PORT");
        let base = self.port(&base_key)?.unwrap_or(default_base);
        let mut block = PortBlock::from_base(base).ok_or_else(|| ConfigError::Invalid {
            key: base_key.clone(),
            origin: self.get(&base_key).map(|(_, origin)| origin.clone()).unwrap_or(Origin::Default),
            reason: format!("{base} leaves no room for the block's metrics and health ports (base + 91)"),
        })?;
        if let Some(port) = self.port(&format!("{prefix}_{ws_suffix}_PORT"))? {
            block.ws = port;
        }
        if let Some(port) = self.port(&format!("{prefix}_METRICS_PORT"))? {
            block.metrics = port;
        }
        if let Some(port) = self.port(&format!("{prefix}_HEALTH_PORT"))? {
            block.health = port;
        }
        Ok(block)
    }
}

fn parse_millis(value: &str) -> Result<Duration, String> {
    match value.parse::<u64>() {
        Ok(millis) if millis > 0 => Ok(Duration::from_millis(millis)),
        _ => Err(format!("{value:?} is not a positive number of milliseconds")),
    }
}

fn parse_port(value: &str) -> Result<u16, String> {
    value
        .parse::<u16>()
        .map_err(|_| format!("{value:?} is not a port number (0 to 65535; 0 picks a free port)"))
}

fn parse_url(schemes: &'static [&'static str]) -> impl Fn(&str) -> Result<SecretString, String> {
    move |value| {
        if schemes.iter().any(|scheme| value.starts_with(&format!("{scheme}://"))) {
            Ok(SecretString::from(value.to_owned()))
        } else {
            // Never echo the value: it may hold a password.
            Err(format!("expected a URL starting with {}", schemes.join("://, ") + "://"))
        }
    }
}

impl Config {
    /// Resolves the configuration from flags, an environment lookup and the file.
    ///
    /// `config_path` is the file named by `--config`; otherwise `SOTHEBAIS_CONFIG`,
    /// otherwise `./sothebais.toml` when it exists.
    pub fn load(
        flags: &FlagValues,
        config_path: Option<&Path>,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut values: BTreeMap<&'static str, (String, Origin)> = BTreeMap::new();

        let file = match config_path {
            Some(path) => Some((path.to_path_buf(), true)),
            None => match env("SOTHEBAIS_CONFIG") {
                Some(path) if !path.is_empty() => Some((PathBuf::from(path), true)),
                _ => Some((PathBuf::from("sothebais.toml"), false)),
            },
        };
        if let Some((path, required)) = file {
            read_file_layer(&path, required, &mut values)?;
        }
        for name in SETTINGS {
            if let Some(value) = env(name) {
                values.insert(name, (value, Origin::Environment));
            }
        }
        for (name, value) in flags {
            values.insert(name, (value.clone(), Origin::Flag));
        }
        Config::from_layers(&Layers { values })
    }

    fn from_layers(layers: &Layers) -> Result<Config, ConfigError> {
        let redis_port = layers.port("REDIS_PORT")?;
        let mut redis_url = layers.optional("REDIS_URL", parse_url(&["redis", "rediss"]))?;
        if redis_url.is_none() {
            redis_url = redis_port.map(|port| SecretString::from(format!("redis://127.0.0.1:{port}")));
        }
        Ok(Config {
            data_dir: layers.parse("SOTHEBAIS_DATA_DIR", PathBuf::from("./data"), |value| {
                if value.is_empty() { Err("must not be empty".into()) } else { Ok(PathBuf::from(value)) }
            })?,
            bind: layers.parse("SOTHEBAIS_BIND", IpAddr::from([127, 0, 0, 1]), |value| {
                value
                    .parse()
                    .map_err(|_| format!("{value:?} is not an IP address such as 127.0.0.1 or 0.0.0.0"))
            })?,
            database_url: layers
                .optional("DATABASE_URL", parse_url(&["postgres", "postgresql", "sqlite"]))?,
            redis_url,
            redis_key_prefix: layers.parse(
                "REDIS_KEY_PREFIX",
                String::new(),
                |value| Ok(value.to_owned()),
            )?,
            jwt_secret: layers.optional("JWT_SECRET", |value| {
                if value.len() < 16 {
                    Err("must be at least 16 characters".into())
                } else {
                    Ok(SecretString::from(value.to_owned()))
                }
            })?,
            auth_jwks_url: layers.optional("AUTH_JWKS_URL", |value| {
                if value.starts_with("https://") || value.starts_with("http://") {
                    Ok(value.to_owned())
                } else {
                    Err(format!("{value:?} is not an http(s) URL"))
                }
            })?,
            log_format: layers.parse("LOG_FORMAT", LogFormat::Pretty, |value| match value {
                "pretty" => Ok(LogFormat::Pretty),
                "json" => Ok(LogFormat::Json),
                other => Err(format!("{other:?} is not one of pretty, json")),
            })?,
            log_filter: layers.parse("RUST_LOG", "info".to_owned(), |value| Ok(value.to_owned()))?,
            timezone: layers.parse(
                "SOTHEBAIS_TIMEZONE",
                chrono_tz::America::New_York,
                sothebais_shared::time::parse_timezone,
            )?,
            request_timeout: layers.parse(
                "SOTHEBAIS_REQUEST_TIMEOUT_SECS",
                Duration::from_secs(15),
                |value| match value.parse::<u64>() {
                    Ok(secs) if secs > 0 => Ok(Duration::from_secs(secs)),
                    _ => Err(format!("{value:?} is not a positive number of seconds")),
                },
            )?,
            stream_manager_url: layers.parse(
                "STREAM_MANAGER_URL",
                format!("http://127.0.0.1:{}", defaults::STREAM_MANAGER),
                |value| {
                    if value.starts_with("http://") || value.starts_with("https://") {
                        Ok(value.trim_end_matches('/').to_owned())
                    } else {
                        Err(format!("{value:?} is not an http(s) URL"))
                    }
                },
            )?,
            blocked_bidders: layers.parse("BLOCKED_BIDDERS", Vec::new(), |value| {
                Ok(value
                    .split(',')
                    .map(str::trim)
                    .filter(|item| !item.is_empty())
                    .map(str::to_owned)
                    .collect())
            })?,
            event_retry: RetryPolicy {
                tries: layers.parse("EVENT_RETRY_TRIES", 5, |value| match value.parse::<u32>() {
                    Ok(tries @ 1..=100) => Ok(tries),
                    _ => Err(format!("{value:?} is not a number of tries from 1 to 100")),
                })?,
                initial: layers.parse("EVENT_RETRY_INITIAL_MS", Duration::from_millis(100), parse_millis)?,
                max: layers.parse("EVENT_RETRY_MAX_MS", Duration::from_secs(30), parse_millis)?,
            },
            event_claim_idle: layers.parse("EVENT_CLAIM_IDLE_MS", Duration::from_secs(30), parse_millis)?,
            ports: RolePorts {
                admin: layers.block("ADMIN", "WS", defaults::ADMIN)?,
                events: layers.block("EVENT_HANDLER", "STREAM", defaults::EVENT_HANDLER)?,
                auction: layers.block("AUCTION_ENGINE", "WS", defaults::AUCTION_ENGINE)?,
                agent: layers.block("AGENT_SERVICE", "WS", defaults::AGENT_SERVICE)?,
                social: layers.block("SOCIAL", "WS", defaults::SOCIAL)?,
            },
        })
    }

    /// The effective settings as the admin API shows them: secrets redacted.
    pub fn redacted_view(&self) -> serde_json::Value {
        let secret = |value: &Option<SecretString>| value.as_ref().map(|_| "[redacted]");
        let block = |block: PortBlock| serde_json::json!(block);
        serde_json::json!({
            "data_dir": self.data_dir,
            "bind": self.bind,
            "mode": if self.database_url.is_some() || self.redis_url.is_some() { "production" } else { "embedded" },
            "database_url": self.database_url.as_ref().map(|url| redact_url(url.expose_secret())),
            "redis_url": self.redis_url.as_ref().map(|url| redact_url(url.expose_secret())),
            "redis_key_prefix": self.redis_key_prefix,
            "jwt_secret": secret(&self.jwt_secret),
            "auth_jwks_url": self.auth_jwks_url,
            "timezone": self.timezone.name(),
            "request_timeout_secs": self.request_timeout.as_secs(),
            "stream_manager_url": self.stream_manager_url,
            "blocked_bidders": self.blocked_bidders,
            "event_retry_tries": self.event_retry.tries,
            "event_retry_initial_ms": self.event_retry.initial.as_millis(),
            "event_retry_max_ms": self.event_retry.max.as_millis(),
            "event_claim_idle_ms": self.event_claim_idle.as_millis(),
            "ports": {
                "admin": block(self.ports.admin),
                "events": block(self.ports.events),
                "auction": block(self.ports.auction),
                "agent": block(self.ports.agent),
                "social": block(self.ports.social),
            },
        })
    }
}

fn read_file_layer(
    path: &Path,
    required: bool,
    values: &mut BTreeMap<&'static str, (String, Origin)>,
) -> Result<(), ConfigError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if !required && error.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(error) => return Err(ConfigError::File { file: path.to_path_buf(), reason: error.to_string() }),
    };
    let table: toml::Table = text.parse().map_err(|error: toml::de::Error| ConfigError::File {
        file: path.to_path_buf(),
        reason: error.to_string(),
    })?;
    for (key, value) in table {
        let Some(name) = SETTINGS.iter().find(|name| file_key(name) == key) else {
            return Err(ConfigError::UnknownKey { key, file: path.to_path_buf() });
        };
        let text = match value {
            toml::Value::String(text) => text,
            toml::Value::Integer(number) => number.to_string(),
            toml::Value::Boolean(flag) => flag.to_string(),
            _ => {
                return Err(ConfigError::Invalid {
                    key: key.clone(),
                    origin: Origin::File(path.to_path_buf()),
                    reason: "expected a string, a number or a boolean".into(),
                });
            }
        };
        values.insert(name, (text, Origin::File(path.to_path_buf())));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: BTreeMap<String, String> =
            pairs.iter().map(|(key, value)| ((*key).to_owned(), (*value).to_owned())).collect();
        move |key| map.get(key).cloned()
    }

    fn write_file(contents: &str) -> tempfile::NamedTempFile {
        let file = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(file.path(), contents).expect("write");
        file
    }

    #[test]
    fn nothing_configured_gives_the_embedded_defaults() {
        let config = Config::load(&FlagValues::new(), None, &env_of(&[])).expect("defaults");
        assert_eq!(config.data_dir, PathBuf::from("./data"));
        assert!(config.database_url.is_none() && config.redis_url.is_none());
        assert_eq!(config.ports.admin, PortBlock { api: 3000, ws: 3001, metrics: 3090, health: 3091 });
        assert_eq!(config.ports.events.ws, 4301);
        assert_eq!(config.timezone, chrono_tz::America::New_York);
    }

    #[test]
    fn flag_beats_environment_beats_file() {
        let file = write_file("admin_port = 5000\ndata_dir = \"/from/file\"\nbind = \"0.0.0.0\"\n");
        let env = env_of(&[("ADMIN_PORT", "6000"), ("SOTHEBAIS_DATA_DIR", "/from/env")]);
        let flags = FlagValues::from([("SOTHEBAIS_DATA_DIR", "/from/flag".to_owned())]);
        let config = Config::load(&flags, Some(file.path()), &env).expect("valid");
        assert_eq!(config.data_dir, PathBuf::from("/from/flag"));
        assert_eq!(config.ports.admin.api, 6000);
        assert_eq!(config.ports.admin.health, 6091);
        assert_eq!(config.bind, IpAddr::from([0, 0, 0, 0]));
    }

    #[test]
    fn unknown_file_key_is_an_error_naming_the_key() {
        let file = write_file("admin_prot = 5000\n");
        let error =
            Config::load(&FlagValues::new(), Some(file.path()), &env_of(&[])).expect_err("unknown key");
        assert!(error.to_string().contains("`admin_prot`"), "{error}");
    }

    #[test]
    fn malformed_value_is_an_error_naming_the_key_and_its_origin() {
        let error = Config::load(&FlagValues::new(), None, &env_of(&[("AUCTION_ENGINE_PORT", "forty")]))
            .expect_err("bad port");
        let message = error.to_string();
        assert!(message.contains("AUCTION_ENGINE_PORT") && message.contains("environment"), "{message}");
    }

    #[test]
    fn malformed_secret_is_not_echoed() {
        let error = Config::load(&FlagValues::new(), None, &env_of(&[("DATABASE_URL", "hunter2-password")]))
            .expect_err("bad url");
        let message = error.to_string();
        assert!(message.contains("DATABASE_URL") && !message.contains("hunter2"), "{message}");
    }

    #[test]
    fn port_zero_picks_free_ports_for_the_whole_block() {
        let config =
            Config::load(&FlagValues::new(), None, &env_of(&[("EVENT_HANDLER_PORT", "0")])).expect("valid");
        assert_eq!(config.ports.events, PortBlock { api: 0, ws: 0, metrics: 0, health: 0 });
    }

    #[test]
    fn debug_output_redacts_secrets() {
        let env = env_of(&[
            ("DATABASE_URL", "postgres://app:hunter2@db/prod"),
            ("JWT_SECRET", "a-very-secret-signing-key"),
        ]);
        let config = Config::load(&FlagValues::new(), None, &env).expect("valid");
        let debug = format!("{config:?}");
        assert!(!debug.contains("hunter2") && !debug.contains("a-very-secret"), "{debug}");
        assert!(debug.contains("postgres://app:[redacted]@db/prod"), "{debug}");
    }

    #[test]
    fn redis_port_alone_points_at_a_local_redis() {
        let config =
            Config::load(&FlagValues::new(), None, &env_of(&[("REDIS_PORT", "6380")])).expect("valid");
        assert_eq!(
            config.redis_url.map(|url| url.expose_secret().to_owned()),
            Some("redis://127.0.0.1:6380".into())
        );
    }

    #[test]
    fn every_setting_has_a_distinct_file_key() {
        let keys: std::collections::BTreeSet<String> = SETTINGS.iter().map(|name| file_key(name)).collect();
        assert_eq!(keys.len(), SETTINGS.len());
    }
}
