//! Settings that may change while the show runs (`POST /api/admin/config`) and the
//! block list (`/api/admin/blocklist`). Both are stored in the database, so a change
//! survives a restart and reaches every process: each process reads them back at
//! start, right after a change it made, and every few seconds
//! ([`Runtime::follow`]). The engine, the social role and the voice read their
//! values here, never from the start-up configuration.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::config::{self, Config, TtsChoice};
use crate::storage::{BlockEntry, RuntimeSetting, Storage, StorageError};

/// The settings that may change while running, by environment name; every other
/// name is refused.
pub const CHANGEABLE: &[&str] = &[
    "BLOCKED_BIDDERS",
    "X_REPLY_BUDGET_PER_15MIN",
    "X_SPEND_LIMIT_USD",
    "X_POLL_INTERVAL_MS",
    "TTS_PROVIDER",
];

/// How often a process reads changes made by others.
pub const FOLLOW_EVERY: Duration = Duration::from_secs(3);

/// The values in force.
#[derive(Debug, Clone, PartialEq)]
pub struct Values {
    /// `BLOCKED_BIDDERS` (as configured or as changed) and the block list's entries.
    pub blocked: Vec<String>,
    pub reply_budget_per_15min: u32,
    pub spend_limit_usd: Option<f64>,
    pub poll_interval: Duration,
    pub tts_provider: TtsChoice,
    /// The changed settings, by name, as given.
    pub changed: BTreeMap<String, String>,
}

/// Checks a value for a changeable setting with the parser the configuration uses.
pub fn check(name: &str, value: &str) -> Result<(), String> {
    let value = value.trim();
    match name {
        "BLOCKED_BIDDERS" => config::parse_blocked_bidders(value).map(drop),
        "X_REPLY_BUDGET_PER_15MIN" => config::parse_reply_budget(value).map(drop),
        "X_SPEND_LIMIT_USD" if value.is_empty() || value == "unset" => Ok(()),
        "X_SPEND_LIMIT_USD" => config::parse_spend_limit(value).map(drop),
        "X_POLL_INTERVAL_MS" => config::parse_millis(value).map(drop),
        "TTS_PROVIDER" => config::parse_tts_choice(value).map(drop),
        _ => Err(format!("{name} cannot change while running (it can: {})", CHANGEABLE.join(", "))),
    }
}

/// The values of `config` with `changes` and the block list applied (pure).
pub fn resolve(config: &Config, changes: &[RuntimeSetting], blocked: &[BlockEntry]) -> Values {
    let mut values = Values {
        blocked: config.blocked_bidders.clone(),
        reply_budget_per_15min: config.x.reply_budget_per_15min,
        spend_limit_usd: config.x.spend_limit_usd,
        poll_interval: config.x.poll_interval,
        tts_provider: config.agent.voice.provider,
        changed: BTreeMap::new(),
    };
    for change in changes {
        let value = change.value.trim();
        // A value stored by an older version that no longer parses is ignored (and
        // shown as changed, so an admin sees it).
        match change.name.as_str() {
            "BLOCKED_BIDDERS" => {
                if let Ok(list) = config::parse_blocked_bidders(value) {
                    values.blocked = list;
                }
            }
            "X_REPLY_BUDGET_PER_15MIN" => {
                if let Ok(budget) = config::parse_reply_budget(value) {
                    values.reply_budget_per_15min = budget;
                }
            }
            "X_SPEND_LIMIT_USD" if value.is_empty() || value == "unset" => values.spend_limit_usd = None,
            "X_SPEND_LIMIT_USD" => {
                if let Ok(limit) = config::parse_spend_limit(value) {
                    values.spend_limit_usd = Some(limit);
                }
            }
            "X_POLL_INTERVAL_MS" => {
                if let Ok(interval) = config::parse_millis(value) {
                    values.poll_interval = interval;
                }
            }
            "TTS_PROVIDER" => {
                if let Ok(choice) = config::parse_tts_choice(value) {
                    values.tts_provider = choice;
                }
            }
            _ => {}
        }
        values.changed.insert(change.name.clone(), change.value.clone());
    }
    values.blocked.extend(blocked.iter().map(|entry| entry.entry.clone()));
    values
}

/// Whether `entry` of a block list names the bidder `id` or `handle`.
pub fn names_bidder(entry: &str, id: &str, handle: Option<&str>) -> bool {
    entry.eq_ignore_ascii_case(id)
        || handle.is_some_and(|handle| {
            entry.trim_start_matches('@').eq_ignore_ascii_case(handle.trim_start_matches('@'))
        })
}

/// This process's copy of the values in force.
#[derive(Debug)]
pub struct Runtime {
    config: Arc<Config>,
    values: RwLock<Values>,
    /// Held from reading the database to applying what was read, so a refresh
    /// that read older values never lands after one that read newer.
    refreshing: tokio::sync::Mutex<()>,
}

impl Runtime {
    /// The start-up configuration's values, before anything stored is read.
    pub fn new(config: Arc<Config>) -> Runtime {
        let values = resolve(&config, &[], &[]);
        Runtime { config, values: RwLock::new(values), refreshing: tokio::sync::Mutex::new(()) }
    }

    pub fn values(&self) -> Values {
        self.values
            .read()
            .map(|values| values.clone())
            .unwrap_or_else(|poisoned| poisoned.into_inner().clone())
    }

    pub fn is_blocked(&self, id: &str, handle: Option<&str>) -> bool {
        self.read(|values| values.blocked.iter().any(|entry| names_bidder(entry, id, handle)))
    }

    pub fn reply_budget_per_15min(&self) -> u32 {
        self.read(|values| values.reply_budget_per_15min)
    }

    pub fn spend_limit_usd(&self) -> Option<f64> {
        self.read(|values| values.spend_limit_usd)
    }

    pub fn poll_interval(&self) -> Duration {
        self.read(|values| values.poll_interval)
    }

    pub fn tts_provider(&self) -> TtsChoice {
        self.read(|values| values.tts_provider)
    }

    /// `TTS_PROVIDER` when it was changed while running (it then wins over the
    /// character's provider); `None` when it is as configured.
    pub fn tts_override(&self) -> Option<TtsChoice> {
        self.read(|values| values.changed.contains_key("TTS_PROVIDER").then_some(values.tts_provider))
    }

    fn read<T>(&self, read: impl FnOnce(&Values) -> T) -> T {
        match self.values.read() {
            Ok(values) => read(&values),
            Err(poisoned) => read(&poisoned.into_inner()),
        }
    }

    /// Reads the stored changes and block list again.
    pub async fn refresh(&self, storage: &dyn Storage) -> Result<(), StorageError> {
        let _one_at_a_time = self.refreshing.lock().await;
        let changes = storage.runtime_settings().await?;
        let blocked = storage.blocked_bidders().await?;
        let values = resolve(&self.config, &changes, &blocked);
        let mut current = self.values.write().unwrap_or_else(|poisoned| poisoned.into_inner());
        if *current != values {
            tracing::info!(changed = ?values.changed, blocked = values.blocked.len(), "runtime settings in force");
            *current = values;
        }
        Ok(())
    }

    /// Reads changes made by other processes every [`FOLLOW_EVERY`] until `stop`.
    pub async fn follow(
        self: Arc<Self>,
        storage: Arc<dyn Storage>,
        stop: CancellationToken,
    ) -> anyhow::Result<()> {
        loop {
            if let Err(error) = self.refresh(storage.as_ref()).await {
                tracing::warn!(%error, "could not read the runtime settings; the last ones stay in force");
            }
            tokio::select! {
                () = stop.cancelled() => return Ok(()),
                () = tokio::time::sleep(FOLLOW_EVERY) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;

    fn config() -> Config {
        let env = |key: &str| (key == "BLOCKED_BIDDERS").then(|| "@mallory".to_owned());
        Config::load(&config::FlagValues::new(), None, &env).expect("config")
    }

    fn change(name: &str, value: &str) -> RuntimeSetting {
        RuntimeSetting {
            name: name.into(),
            value: value.into(),
            changed_by: "ada".into(),
            changed_at: Utc::now(),
        }
    }

    #[test]
    fn changes_win_over_the_configuration_and_the_block_list_adds_to_it() {
        let blocked = [BlockEntry {
            entry: "x:42".into(),
            reason: "spam".into(),
            added_by: "ada".into(),
            added_at: Utc::now(),
        }];
        let values = resolve(
            &config(),
            &[
                change("X_REPLY_BUDGET_PER_15MIN", "40"),
                change("X_SPEND_LIMIT_USD", "2.5"),
                change("TTS_PROVIDER", "espeak"),
            ],
            &blocked,
        );
        assert_eq!(values.reply_budget_per_15min, 40);
        assert_eq!(values.spend_limit_usd, Some(2.5));
        assert_eq!(values.tts_provider, TtsChoice::Espeak);
        assert_eq!(values.blocked, vec!["@mallory".to_owned(), "x:42".to_owned()]);
        let cleared =
            resolve(&config(), &[change("X_SPEND_LIMIT_USD", ""), change("BLOCKED_BIDDERS", "")], &[]);
        assert_eq!((cleared.spend_limit_usd, cleared.blocked.len()), (None, 0));
    }

    #[test]
    fn only_changeable_settings_with_valid_values_are_accepted() {
        assert_eq!(check("X_REPLY_BUDGET_PER_15MIN", "60"), Ok(()));
        assert!(check("X_REPLY_BUDGET_PER_15MIN", "500").expect_err("too many").contains("1 to 100"));
        assert!(
            check("DATABASE_URL", "postgres://x")
                .expect_err("fixed")
                .starts_with("DATABASE_URL cannot change")
        );
        assert!(check("TTS_PROVIDER", "loud").is_err());
        assert_eq!(check("X_SPEND_LIMIT_USD", "unset"), Ok(()));
    }

    #[test]
    fn block_list_entries_match_ids_and_handles_without_case() {
        assert!(names_bidder("@Mallory", "x:1", Some("@mallory")));
        assert!(names_bidder("mallory", "x:1", Some("@mallory")));
        assert!(names_bidder("x:1", "X:1", None));
        assert!(!names_bidder("@mall", "x:1", Some("@mallory")));
    }
}
