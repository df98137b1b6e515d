//! SQLite storage for the embedded mode.

use std::path::Path;
use std::str::FromStr;
use std::time::Duration;

use async_trait::async_trait;
use sothebais_shared::events::Envelope;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use uuid::Uuid;

use super::{EventQuery, Storage, StorageError, StorageKind, StoredEvent, ensure_parent, like_patterns};

/// SQLite in WAL mode with full synchronous commits: a committed decision survives a
/// crash of the process and of the machine.
#[derive(Debug, Clone)]
pub struct SqliteStorage {
    pool: SqlitePool,
}

impl SqliteStorage {
    /// Opens (creating if needed) the database file at `path` and migrates it.
    pub async fn open(path: &Path) -> Result<SqliteStorage, StorageError> {
        ensure_parent(path)?;
        SqliteStorage::with_options(SqliteConnectOptions::new().filename(path)).await
    }

    /// Opens a `sqlite://` URL and migrates it.
    pub async fn open_url(url: &str) -> Result<SqliteStorage, StorageError> {
        let options = SqliteConnectOptions::from_str(url)
            .map_err(|error| StorageError::Unavailable(format!("bad sqlite URL: {error}")))?;
        if let Some(path) = options.get_filename().to_str().filter(|path| *path != ":memory:") {
            ensure_parent(Path::new(path))?;
        }
        SqliteStorage::with_options(options).await
    }

    async fn with_options(options: SqliteConnectOptions) -> Result<SqliteStorage, StorageError> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(5));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options)
            .await?;
        sqlx::migrate!("../migrations/sqlite")
            .run(&pool)
            .await
            .map_err(|error| StorageError::Migration(error.to_string()))?;
        Ok(SqliteStorage { pool })
    }

    fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<StoredEvent, StorageError> {
        let corrupt =
            |what: &str, error: &dyn std::fmt::Display| StorageError::Corrupt(format!("{what}: {error}"));
        let id: String = row.try_get("id")?;
        let event_type: String = row.try_get("event_type")?;
        let source: String = row.try_get("source")?;
        let causation: Option<String> = row.try_get("causation_id")?;
        let data: String = row.try_get("data")?;
        Ok(StoredEvent {
            seq: row.try_get("seq")?,
            event: Envelope {
                id: Uuid::parse_str(&id).map_err(|error| corrupt("id", &error))?,
                timestamp: row.try_get("timestamp_ms")?,
                event_type: event_type.parse().map_err(|error| corrupt("event_type", &error))?,
                source: serde_json::from_value(serde_json::Value::String(source))
                    .map_err(|error| corrupt("source", &error))?,
                version: row.try_get("version")?,
                correlation_id: row.try_get("correlation_id")?,
                causation_id: causation
                    .map(|text| Uuid::parse_str(&text))
                    .transpose()
                    .map_err(|error| corrupt("causation_id", &error))?,
                data: serde_json::from_str(&data).map_err(|error| corrupt("data", &error))?,
            },
        })
    }
}

const COLUMNS: &str =
    "seq, id, event_type, source, version, timestamp_ms, correlation_id, causation_id, data";

#[async_trait]
impl Storage for SqliteStorage {
    fn kind(&self) -> StorageKind {
        StorageKind::Sqlite
    }

    async fn ping(&self) -> Result<(), StorageError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    #[tracing::instrument(skip_all, fields(event_id = %event.id, event_type = %event.event_type))]
    async fn append_event(&self, event: &Envelope) -> Result<StoredEvent, StorageError> {
        let source = serde_json::to_value(event.source)
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        sqlx::query(
            "INSERT INTO events (id, event_type, source, version, timestamp_ms, correlation_id, causation_id, data, stored_at_ms)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(event.id.to_string())
        .bind(event.event_type.as_str())
        .bind(source)
        .bind(&event.version)
        .bind(event.timestamp)
        .bind(&event.correlation_id)
        .bind(event.causation_id.map(|id| id.to_string()))
        .bind(event.data.to_string())
        .bind(chrono::Utc::now().timestamp_millis())
        .execute(&self.pool)
        .await?;
        self.event(event.id).await?.ok_or_else(|| StorageError::Database("stored event vanished".into()))
    }

    async fn events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>, StorageError> {
        let mut sql: QueryBuilder<'_, Sqlite> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM events WHERE 1 = 1"));
        if let Some(patterns) = like_patterns(&query.patterns) {
            sql.push(" AND (");
            for (index, pattern) in patterns.into_iter().enumerate() {
                if index > 0 {
                    sql.push(" OR ");
                }
                sql.push("event_type LIKE ").push_bind(pattern);
            }
            sql.push(")");
        }
        if let Some(before) = query.before {
            sql.push(" AND timestamp_ms < ").push_bind(before.timestamp_millis());
        }
        if let Some(after) = query.after {
            sql.push(" AND timestamp_ms > ").push_bind(after.timestamp_millis());
        }
        if let Some(correlation) = &query.correlation_id {
            sql.push(" AND correlation_id = ").push_bind(correlation.clone());
        }
        match query.after_seq {
            Some(after_seq) => sql.push(" AND seq > ").push_bind(after_seq).push(" ORDER BY seq ASC"),
            None => sql.push(" ORDER BY seq DESC"),
        };
        sql.push(" LIMIT ").push_bind(i64::from(query.limit));
        let rows = sql.build().fetch_all(&self.pool).await?;
        rows.iter().map(SqliteStorage::decode).collect()
    }

    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM events WHERE id = ?"))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(SqliteStorage::decode).transpose()
    }
}
