//! What the host remembers: entries per subject (a bidder, a lot, a campaign) in the
//! database, bounded by folding the oldest into the subject's summary; and the
//! recent window the prompt is built from, kept in memory and, in production, in
//! Redis (so a restarted host remembers the last lines).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use redis::aio::ConnectionManager;
use uuid::Uuid;

use crate::storage::{Memory, MemorySubject, Storage, StorageError};

/// A subject holds at most this many entries; past it the oldest are folded...
pub const MAX_ENTRIES: u64 = 40;
/// ...down to this many.
pub const KEEP_ENTRIES: u64 = 30;
/// The recent window's length.
pub const RECENT: usize = 30;
/// The longest summary.
const SUMMARY_CHARS: usize = 600;

/// A subject's key: `user:<handle>` (lower case, without `@`), `lot:<id>`, `campaign:<id>`.
pub fn user(handle: &str) -> String {
    format!("user:{}", handle.trim_start_matches('@').to_lowercase())
}

/// The summary after folding `dropped` (oldest first) into `previous` (pure): what
/// was said is kept as the last words of each kind, with counts, and the oldest
/// clauses go first when it grows too long.
pub fn summarise(previous: &str, dropped: &[Memory]) -> String {
    let mut kinds: Vec<(&str, usize, &str)> = Vec::new();
    for memory in dropped {
        match kinds.iter_mut().find(|(kind, _, _)| *kind == memory.kind) {
            Some(entry) => {
                entry.1 += 1;
                entry.2 = &memory.text;
            }
            None => kinds.push((&memory.kind, 1, &memory.text)),
        }
    }
    let mut clauses: Vec<String> =
        previous.split("; ").filter(|clause| !clause.is_empty()).map(str::to_owned).collect();
    for (kind, count, last) in kinds {
        clauses.push(format!("{count} earlier {kind}, the last: {last}"));
    }
    while clauses.join("; ").chars().count() > SUMMARY_CHARS && clauses.len() > 1 {
        clauses.remove(0);
    }
    let summary = clauses.join("; ");
    summary.chars().take(SUMMARY_CHARS).collect()
}

/// The recent window: always in memory, mirrored to Redis when there is one.
#[derive(Clone)]
pub struct Recent {
    lines: Arc<Mutex<VecDeque<String>>>,
    redis: Option<(ConnectionManager, String)>,
}

impl std::fmt::Debug for Recent {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.debug_struct("Recent").field("redis", &self.redis.is_some()).finish_non_exhaustive()
    }
}

impl Recent {
    pub fn in_memory() -> Recent {
        Recent { lines: Arc::default(), redis: None }
    }

    /// The window kept under `<prefix>agent:recent`, loaded from there now.
    pub async fn redis(url: &str, prefix: &str) -> Result<Recent, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let mut connection = client.get_connection_manager().await?;
        let key = format!("{prefix}agent:recent");
        let stored: Vec<String> =
            redis::cmd("LRANGE").arg(&key).arg(0).arg(RECENT as i64 - 1).query_async(&mut connection).await?;
        // Stored newest first.
        let lines: VecDeque<String> = stored.into_iter().rev().collect();
        Ok(Recent { lines: Arc::new(Mutex::new(lines)), redis: Some((connection, key)) })
    }

    fn lines(&self) -> std::sync::MutexGuard<'_, VecDeque<String>> {
        self.lines.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    pub async fn push(&self, line: String) {
        {
            let mut lines = self.lines();
            lines.push_back(line.clone());
            while lines.len() > RECENT {
                lines.pop_front();
            }
        }
        if let Some((connection, key)) = &self.redis {
            let mut connection = connection.clone();
            let result: Result<(), redis::RedisError> = redis::pipe()
                .atomic()
                .cmd("LPUSH")
                .arg(key)
                .arg(&line)
                .ignore()
                .cmd("LTRIM")
                .arg(key)
                .arg(0)
                .arg(RECENT as i64 - 1)
                .ignore()
                .query_async(&mut connection)
                .await;
            if let Err(error) = result {
                tracing::warn!(%error, "recent memory not mirrored to Redis; kept in memory");
            }
        }
    }

    /// The last `count` lines, oldest first.
    pub fn last(&self, count: usize) -> Vec<String> {
        let lines = self.lines();
        lines.iter().skip(lines.len().saturating_sub(count)).cloned().collect()
    }
}

/// The memory of the host.
#[derive(Debug, Clone)]
pub struct MemoryBook {
    pub storage: Arc<dyn Storage>,
    pub recent: Recent,
}

impl MemoryBook {
    /// Remembers one thing about a subject (with tallies to add) and folds the
    /// subject's oldest entries when it holds too many; the new summary, if any.
    pub async fn note(
        &self,
        subject: &str,
        kind: &str,
        text: String,
        at: DateTime<Utc>,
        tallies: (u64, u64),
    ) -> Result<Option<String>, StorageError> {
        let memory = Memory {
            id: Uuid::now_v7().to_string(),
            subject: subject.to_owned(),
            at,
            kind: kind.into(),
            text,
        };
        self.storage.remember(&memory, tallies.0, tallies.1).await?;
        if self.storage.memory_count(subject).await? <= MAX_ENTRIES {
            return Ok(None);
        }
        let entries = self.storage.memories(subject, MAX_ENTRIES as u32 * 2).await?;
        let mut dropped: Vec<Memory> = entries.into_iter().skip(KEEP_ENTRIES as usize).collect();
        dropped.reverse();
        let previous =
            self.storage.memory_subject(subject).await?.map(|subject| subject.summary).unwrap_or_default();
        let summary = summarise(&previous, &dropped);
        let ids: Vec<String> = dropped.into_iter().map(|memory| memory.id).collect();
        self.storage.fold_memories(subject, &ids, &summary).await?;
        Ok(Some(summary))
    }

    /// A subject's tallies and summary, and its newest entries.
    pub async fn about(
        &self,
        subject: &str,
        limit: u32,
    ) -> Result<(Option<MemorySubject>, Vec<Memory>), StorageError> {
        Ok((self.storage.memory_subject(subject).await?, self.storage.memories(subject, limit).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn memory(kind: &str, text: &str) -> Memory {
        Memory {
            id: text.into(),
            subject: "user:a".into(),
            at: Utc::now(),
            kind: kind.into(),
            text: text.into(),
        }
    }

    #[test]
    fn a_summary_counts_what_it_folds_and_stays_short() {
        let summary =
            summarise("", &[memory("bid", "bid 1 ETH"), memory("bid", "bid 2 ETH"), memory("said", "hi")]);
        assert_eq!(summary, "2 earlier bid, the last: bid 2 ETH; 1 earlier said, the last: hi");
        let mut long = summary;
        for round in 0..200 {
            long = summarise(&long, &[memory("said", &format!("round {round} {}", "x".repeat(40)))]);
        }
        assert!(long.chars().count() <= SUMMARY_CHARS);
        assert!(long.contains("round 199"));
    }
}
