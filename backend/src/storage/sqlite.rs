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

use super::{
    EventQuery, RelayedEvent, Storage, StorageError, StorageKind, StoredEvent, StoredRow, ensure_parent,
    like_patterns,
};

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

    const EVENT_COLUMNS: &'static str = COLUMNS;
    const SKIP_LOCKED: &'static str = "";

    /// Inserts the events not stored yet inside a transaction, queued in the outbox
    /// for the relay to publish when `publish`; returns how many were new.
    async fn insert_events(
        transaction: &mut sqlx::Transaction<'_, Sqlite>,
        events: &[&Envelope],
        publish: bool,
    ) -> Result<u64, sqlx::Error> {
        let stored_at = chrono::Utc::now().timestamp_millis();
        let mut inserted = 0;
        for chunk in events.chunks(super::auction_sql::INSERT_CHUNK) {
            let mut sql: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "INSERT INTO events (id, event_type, source, version, timestamp_ms, correlation_id, causation_id, data, stored_at_ms) ",
            );
            sql.push_values(chunk, |mut row, event| {
                row.push_bind(event.id.to_string())
                    .push_bind(event.event_type.as_str())
                    .push_bind(event.source.as_str())
                    .push_bind(event.version.clone())
                    .push_bind(event.timestamp)
                    .push_bind(event.correlation_id.clone())
                    .push_bind(event.causation_id.map(|id| id.to_string()))
                    .push_bind(event.data.to_string())
                    .push_bind(stored_at);
            });
            sql.push(" ON CONFLICT (id) DO NOTHING RETURNING seq");
            let seqs: Vec<i64> = sql.build_query_scalar().fetch_all(&mut **transaction).await?;
            inserted += seqs.len() as u64;
            if seqs.is_empty() || !publish {
                continue;
            }
            let mut outbox: QueryBuilder<'_, Sqlite> = QueryBuilder::new("INSERT INTO outbox (seq) ");
            outbox.push_values(seqs, |mut row, seq| {
                row.push_bind(seq);
            });
            outbox.build().execute(&mut **transaction).await?;
        }
        Ok(inserted)
    }

    /// ` IN (?, ?, …)`, which SQLite answers with an index probe per value.
    fn push_any_of<'args, T>(sql: &mut QueryBuilder<'args, Sqlite>, values: Vec<T>)
    where
        T: 'args + sqlx::Encode<'args, Sqlite> + sqlx::Type<Sqlite>,
    {
        sql.push(" IN (");
        let mut separated = sql.separated(", ");
        for value in values {
            separated.push_bind(value);
        }
        sql.push(")");
    }

    /// The rows of `consumer_handled`, as `VALUES (…), (…)`.
    fn push_handled_rows(sql: &mut QueryBuilder<'_, Sqlite>, consumer: &str, ids: Vec<String>, now: i64) {
        sql.push_values(ids, |mut row, id| {
            row.push_bind(consumer.to_owned()).push_bind(id).push_bind(now);
        });
    }

    fn decode(row: &sqlx::sqlite::SqliteRow) -> Result<StoredEvent, StorageError> {
        Self::read_row(row)?.into_stored()
    }

    /// A stored event with its `data` left as the stored text.
    fn decode_raw(row: &sqlx::sqlite::SqliteRow) -> Result<RelayedEvent, StorageError> {
        Self::read_row(row)?.into_relayed()
    }

    /// Ids are stored as text here.
    fn read_row(row: &sqlx::sqlite::SqliteRow) -> Result<StoredRow, StorageError> {
        let uuid =
            |what: &str, text: &str| Uuid::parse_str(text).map_err(|error| super::corrupt(what, &error));
        let id: String = row.try_get("id")?;
        let causation: Option<String> = row.try_get("causation_id")?;
        Ok(StoredRow {
            seq: row.try_get("seq")?,
            id: uuid("id", &id)?,
            timestamp: row.try_get("timestamp_ms")?,
            event_type: row.try_get("event_type")?,
            source: row.try_get("source")?,
            version: row.try_get("version")?,
            correlation_id: row.try_get("correlation_id")?,
            causation_id: causation.map(|text| uuid("causation_id", &text)).transpose()?,
            data: row.try_get("data")?,
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
        let mut transaction = self.pool.begin().await?;
        Self::insert_events(&mut transaction, &[event], true).await?;
        transaction.commit().await?;
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

auction_storage!(SqliteStorage, Sqlite, sqlx::sqlite::SqliteRow);
auction_storage_helpers!(SqliteStorage, Sqlite, sqlx::sqlite::SqliteRow);
delivery_storage!(SqliteStorage, Sqlite, sqlx::sqlite::SqliteRow);
