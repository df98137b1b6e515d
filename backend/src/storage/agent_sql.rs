//! The agent's tables (memory by subject, the host's own state), written once for
//! both databases: TEXT and BIGINT columns, statements built with `QueryBuilder`.

use chrono::{DateTime, Utc};

use super::StorageError;
use crate::storage::auction_sql::millis_to_time;

/// One thing the host remembers about a subject.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    pub id: String,
    /// `user:<handle>`, `lot:<auction id>` or `campaign:<id>`.
    pub subject: String,
    pub at: DateTime<Utc>,
    /// `bid`, `win`, `said`, `answered`, `lot`, `result`.
    pub kind: String,
    pub text: String,
}

/// A subject's tallies and the summary of what was folded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct MemorySubject {
    pub subject: String,
    pub summary: String,
    /// How many entries the summary stands for.
    pub folded: u64,
    pub bids: u64,
    pub wins: u64,
    pub updated_at: DateTime<Utc>,
}

pub(crate) const MEMORY_COLUMNS: &str = "id, subject, at_ms, kind, text";
pub(crate) const SUBJECT_COLUMNS: &str = "subject, summary, folded, bids, wins, updated_at_ms";

pub(crate) fn memory_from<R: sqlx::Row>(row: &R) -> Result<Memory, StorageError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    Ok(Memory {
        id: row.try_get("id")?,
        subject: row.try_get("subject")?,
        at: millis_to_time(row.try_get("at_ms")?)?,
        kind: row.try_get("kind")?,
        text: row.try_get("text")?,
    })
}

pub(crate) fn subject_from<R: sqlx::Row>(row: &R) -> Result<MemorySubject, StorageError>
where
    for<'r> &'r str: sqlx::ColumnIndex<R>,
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    let count = |value: i64| u64::try_from(value).unwrap_or(0);
    Ok(MemorySubject {
        subject: row.try_get("subject")?,
        summary: row.try_get("summary")?,
        folded: count(row.try_get("folded")?),
        bids: count(row.try_get("bids")?),
        wins: count(row.try_get("wins")?),
        updated_at: millis_to_time(row.try_get("updated_at_ms")?)?,
    })
}

/// Implements `AgentStorage` for a storage type with a `pool` field.
macro_rules! agent_storage {
    ($storage:ty, $database:ty) => {
        #[async_trait::async_trait]
        impl crate::storage::AgentStorage for $storage {
            async fn remember(
                &self,
                memory: &crate::storage::Memory,
                bids: u64,
                wins: u64,
            ) -> Result<(), StorageError> {
                let mut tx = self.pool.begin().await?;
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO agent_memories ({}) ",
                    crate::storage::agent_sql::MEMORY_COLUMNS
                ));
                sql.push_values([memory], |mut row, memory| {
                    row.push_bind(memory.id.clone())
                        .push_bind(memory.subject.clone())
                        .push_bind(memory.at.timestamp_millis())
                        .push_bind(memory.kind.clone())
                        .push_bind(memory.text.clone());
                });
                sql.push(" ON CONFLICT (id) DO NOTHING");
                sql.build().execute(&mut *tx).await?;
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO agent_subjects ({}) ",
                    crate::storage::agent_sql::SUBJECT_COLUMNS
                ));
                let (bids, wins) = (i64::try_from(bids).unwrap_or(0), i64::try_from(wins).unwrap_or(0));
                sql.push_values([memory], |mut row, memory| {
                    row.push_bind(memory.subject.clone())
                        .push_bind(String::new())
                        .push_bind(0_i64)
                        .push_bind(bids)
                        .push_bind(wins)
                        .push_bind(memory.at.timestamp_millis());
                });
                sql.push(
                    " ON CONFLICT (subject) DO UPDATE SET bids = agent_subjects.bids + excluded.bids, \
                     wins = agent_subjects.wins + excluded.wins, updated_at_ms = excluded.updated_at_ms",
                );
                sql.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn memory_subject(
                &self,
                subject: &str,
            ) -> Result<Option<crate::storage::MemorySubject>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM agent_subjects WHERE subject = ",
                    crate::storage::agent_sql::SUBJECT_COLUMNS
                ));
                sql.push_bind(subject.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(crate::storage::agent_sql::subject_from).transpose()
            }

            async fn memories(
                &self,
                subject: &str,
                limit: u32,
            ) -> Result<Vec<crate::storage::Memory>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM agent_memories WHERE subject = ",
                    crate::storage::agent_sql::MEMORY_COLUMNS
                ));
                sql.push_bind(subject.to_owned())
                    .push(" ORDER BY at_ms DESC, id DESC LIMIT ")
                    .push_bind(i64::from(limit));
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(crate::storage::agent_sql::memory_from).collect()
            }

            async fn memory_count(&self, subject: &str) -> Result<u64, StorageError> {
                use sqlx::Row as _;
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("SELECT COUNT(*) AS entries FROM agent_memories WHERE subject = ");
                sql.push_bind(subject.to_owned());
                let row = sql.build().fetch_one(&self.pool).await?;
                Ok(u64::try_from(row.try_get::<i64, _>("entries")?).unwrap_or(0))
            }

            async fn fold_memories(&self, subject: &str, ids: &[String], summary: &str) -> Result<(), StorageError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut tx = self.pool.begin().await?;
                let mut sql = sqlx::QueryBuilder::<$database>::new("DELETE FROM agent_memories WHERE id IN (");
                let mut list = sql.separated(", ");
                for id in ids {
                    list.push_bind(id.clone());
                }
                sql.push(")");
                let removed = sql.build().execute(&mut *tx).await?.rows_affected();
                let mut sql = sqlx::QueryBuilder::<$database>::new("UPDATE agent_subjects SET summary = ");
                sql.push_bind(summary.to_owned())
                    .push(", folded = folded + ")
                    .push_bind(i64::try_from(removed).unwrap_or(0))
                    .push(" WHERE subject = ")
                    .push_bind(subject.to_owned());
                sql.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn memory_totals(&self) -> Result<(u64, u64), StorageError> {
                use sqlx::Row as _;
                let row = sqlx::QueryBuilder::<$database>::new(
                    "SELECT (SELECT COUNT(*) FROM agent_subjects) AS subjects, \
                     (SELECT COUNT(*) FROM agent_memories) AS entries",
                )
                .build()
                .fetch_one(&self.pool)
                .await?;
                let count = |value: i64| u64::try_from(value).unwrap_or(0);
                Ok((count(row.try_get("subjects")?), count(row.try_get("entries")?)))
            }

            async fn agent_value(&self, key: &str) -> Result<Option<String>, StorageError> {
                use sqlx::Row as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new("SELECT value FROM agent_state WHERE key = ");
                sql.push_bind(key.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                Ok(row.map(|row| row.try_get("value")).transpose()?)
            }

            async fn set_agent_value(&self, key: &str, value: &str) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new("INSERT INTO agent_state (key, value) VALUES (");
                sql.push_bind(key.to_owned())
                    .push(", ")
                    .push_bind(value.to_owned())
                    .push(") ON CONFLICT (key) DO UPDATE SET value = excluded.value");
                sql.build().execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}
