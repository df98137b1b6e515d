//! Delivery bookkeeping (consumers, handled ids, dead letters) and the ingest of events
//! from the bus, written once for both databases: the tables use only TEXT and BIGINT
//! columns and every statement is built with `QueryBuilder`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::{ConsumerRecord, DeadLetter, StorageError};
use crate::storage::auction_sql::millis_to_time;

fn corrupt(what: &str, error: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {error}"))
}

pub(super) const DEAD_LETTER_COLUMNS: &str =
    "id, consumer, event_id, event_type, payload, error, attempts, failed_at_ms";

/// The columns of a dead letter row, as read back.
pub(super) struct DeadLetterRow {
    pub id: String,
    pub consumer: String,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub payload: String,
    pub error: String,
    pub attempts: i64,
    pub failed_at_ms: i64,
}

impl DeadLetterRow {
    pub fn into_letter(self) -> Result<DeadLetter, StorageError> {
        let event = serde_json::from_str(&self.payload)
            .unwrap_or_else(|_| serde_json::Value::String(self.payload.clone()));
        Ok(DeadLetter {
            id: Uuid::parse_str(&self.id).map_err(|error| corrupt("dead letter id", error))?,
            consumer: self.consumer,
            event,
            error: self.error,
            attempts: u32::try_from(self.attempts).map_err(|error| corrupt("attempts", error))?,
            failed_at: millis_to_time(self.failed_at_ms)?,
            event_id: self.event_id,
            event_type: self.event_type,
            payload: self.payload,
        })
    }
}

pub(super) fn consumer_record(
    name: String,
    patterns: &str,
    seen_at_ms: i64,
) -> Result<ConsumerRecord, StorageError> {
    Ok(ConsumerRecord {
        name,
        patterns: serde_json::from_str(patterns).map_err(|error| corrupt("consumer patterns", error))?,
        seen_at: millis_to_time(seen_at_ms)?,
    })
}

pub(super) fn encode_patterns(patterns: &[String]) -> Result<String, StorageError> {
    serde_json::to_string(patterns)
        .map_err(|error| StorageError::Database(format!("encoding patterns: {error}")))
}

pub(super) fn millis(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

/// Implements `DeliveryStorage` for a storage type with a `pool` field and the
/// dialect helpers `insert_events(transaction, events, publish)`, `push_any_of` and
/// `push_handled_rows`.
macro_rules! delivery_storage {
    ($storage:ty, $database:ty, $row:ty) => {
        impl $storage {
            fn dead_letter_row(row: &$row) -> Result<crate::storage::DeadLetter, StorageError> {
                use sqlx::Row as _;
                crate::storage::delivery_sql::DeadLetterRow {
                    id: row.try_get("id")?,
                    consumer: row.try_get("consumer")?,
                    event_id: row.try_get("event_id")?,
                    event_type: row.try_get("event_type")?,
                    payload: row.try_get("payload")?,
                    error: row.try_get("error")?,
                    attempts: row.try_get("attempts")?,
                    failed_at_ms: row.try_get("failed_at_ms")?,
                }
                .into_letter()
            }
        }

        #[async_trait::async_trait]
        impl crate::storage::DeliveryStorage for $storage {
            async fn ingest_events(
                &self,
                events: &[sothebais_shared::events::Envelope],
            ) -> Result<u64, StorageError> {
                let mut transaction = self.pool.begin().await?;
                let inserted = Self::insert_events(
                    &mut transaction,
                    &events.iter().map(crate::storage::EventRow::from).collect::<Vec<_>>(),
                    false,
                )
                .await?;
                transaction.commit().await?;
                Ok(inserted)
            }

            async fn register_consumer(&self, name: &str, patterns: &[String]) -> Result<(), StorageError> {
                sqlx::QueryBuilder::<$database>::new(
                    "INSERT INTO consumers (name, patterns, seen_at_ms) VALUES (",
                )
                .push_bind(name.to_owned())
                .push(", ")
                .push_bind(crate::storage::delivery_sql::encode_patterns(patterns)?)
                .push(", ")
                .push_bind(chrono::Utc::now().timestamp_millis())
                .push(
                    ") ON CONFLICT (name) DO UPDATE SET patterns = excluded.patterns, \
                         seen_at_ms = excluded.seen_at_ms",
                )
                .build()
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn consumers(&self) -> Result<Vec<crate::storage::ConsumerRecord>, StorageError> {
                use sqlx::Row as _;
                let rows = sqlx::QueryBuilder::<$database>::new(
                    "SELECT name, patterns, seen_at_ms FROM consumers ORDER BY name",
                )
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        crate::storage::delivery_sql::consumer_record(
                            row.try_get("name")?,
                            &row.try_get::<String, _>("patterns")?,
                            row.try_get("seen_at_ms")?,
                        )
                    })
                    .collect()
            }

            async fn handled_among(
                &self,
                consumer: &str,
                ids: &[uuid::Uuid],
            ) -> Result<Vec<uuid::Uuid>, StorageError> {
                use sqlx::Row as _;
                let mut handled = Vec::new();
                for chunk in ids.chunks(crate::storage::auction_sql::INSERT_CHUNK) {
                    let mut sql = sqlx::QueryBuilder::<$database>::new(
                        "SELECT event_id FROM consumer_handled WHERE event_id",
                    );
                    Self::push_any_of(&mut sql, chunk.iter().map(|id| id.to_string()).collect());
                    sql.push(" AND consumer = ").push_bind(consumer.to_owned());
                    // Planned with its values each time: a generic plan cached while the
                    // table was empty would scan every row once it has grown.
                    for row in sql.build().persistent(false).fetch_all(&self.pool).await? {
                        let id: String = row.try_get("event_id")?;
                        handled.push(
                            uuid::Uuid::parse_str(&id)
                                .map_err(|error| StorageError::Corrupt(format!("handled id: {error}")))?,
                        );
                    }
                }
                Ok(handled)
            }

            async fn mark_handled(&self, consumer: &str, ids: &[uuid::Uuid]) -> Result<(), StorageError> {
                let now = chrono::Utc::now().timestamp_millis();
                for chunk in ids.chunks(crate::storage::auction_sql::INSERT_CHUNK) {
                    let mut sql = sqlx::QueryBuilder::<$database>::new(
                        "INSERT INTO consumer_handled (consumer, event_id, handled_at_ms) ",
                    );
                    Self::push_handled_rows(
                        &mut sql,
                        consumer,
                        chunk.iter().map(|id| id.to_string()).collect(),
                        now,
                    );
                    sql.push(" ON CONFLICT (event_id, consumer) DO NOTHING");
                    sql.build().execute(&self.pool).await?;
                }
                Ok(())
            }

            async fn prune_handled(
                &self,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StorageError> {
                let done = sqlx::QueryBuilder::<$database>::new(
                    "DELETE FROM consumer_handled WHERE handled_at_ms < ",
                )
                .push_bind(crate::storage::delivery_sql::millis(before))
                .build()
                .execute(&self.pool)
                .await?;
                Ok(done.rows_affected())
            }

            async fn add_dead_letter(&self, letter: &crate::storage::DeadLetter) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO dead_letters ({}) ",
                    crate::storage::delivery_sql::DEAD_LETTER_COLUMNS
                ));
                sql.push_values([letter], |mut row, letter| {
                    row.push_bind(letter.id.to_string())
                        .push_bind(letter.consumer.clone())
                        .push_bind(letter.event_id.clone())
                        .push_bind(letter.event_type.clone())
                        .push_bind(letter.payload.clone())
                        .push_bind(letter.error.clone())
                        .push_bind(i64::from(letter.attempts))
                        .push_bind(crate::storage::delivery_sql::millis(letter.failed_at));
                });
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn dead_letters(
                &self,
                consumer: Option<&str>,
                limit: u32,
            ) -> Result<Vec<crate::storage::DeadLetter>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM dead_letters WHERE 1 = 1",
                    crate::storage::delivery_sql::DEAD_LETTER_COLUMNS
                ));
                if let Some(consumer) = consumer {
                    sql.push(" AND consumer = ").push_bind(consumer.to_owned());
                }
                sql.push(" ORDER BY failed_at_ms DESC, id DESC LIMIT ").push_bind(i64::from(limit));
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::dead_letter_row).collect()
            }

            async fn dead_letter_counts(&self) -> Result<Vec<(String, u64)>, StorageError> {
                use sqlx::Row as _;
                let rows = sqlx::QueryBuilder::<$database>::new(
                    "SELECT consumer, COUNT(*) AS letters FROM dead_letters GROUP BY consumer",
                )
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        let letters: i64 = row.try_get("letters")?;
                        Ok((row.try_get("consumer")?, u64::try_from(letters).unwrap_or(0)))
                    })
                    .collect()
            }

            async fn dead_letters_matching(
                &self,
                key: &str,
            ) -> Result<Vec<crate::storage::DeadLetter>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM dead_letters WHERE id = ",
                    crate::storage::delivery_sql::DEAD_LETTER_COLUMNS
                ));
                sql.push_bind(key.to_owned()).push(" OR event_id = ").push_bind(key.to_owned());
                sql.push(" ORDER BY failed_at_ms, id");
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(Self::dead_letter_row).collect()
            }

            async fn remove_dead_letters(&self, ids: &[uuid::Uuid]) -> Result<(), StorageError> {
                if ids.is_empty() {
                    return Ok(());
                }
                let mut sql = sqlx::QueryBuilder::<$database>::new("DELETE FROM dead_letters WHERE id IN (");
                let mut separated = sql.separated(", ");
                for id in ids {
                    separated.push_bind(id.to_string());
                }
                sql.push(")");
                sql.build().execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}
