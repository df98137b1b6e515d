//! PostgreSQL storage for the production mode.

use std::time::Duration;

use async_trait::async_trait;
use sothebais_shared::events::Envelope;
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use super::{
    EventQuery, RelayedEvent, Storage, StorageError, StorageKind, StoredEvent, StoredRow, like_patterns,
};

/// PostgreSQL through a connection pool; several backend processes may share it.
#[derive(Debug, Clone)]
pub struct PostgresStorage {
    pool: PgPool,
}

impl PostgresStorage {
    /// Connects to `url` and applies the migrations.
    pub async fn connect(url: &str) -> Result<PostgresStorage, StorageError> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            // A request waits this long for a connection while the database is down,
            // then gets 503 instead of hanging.
            .acquire_timeout(Duration::from_secs(3))
            .connect(url)
            .await?;
        sqlx::migrate!("../migrations/postgres")
            .run(&pool)
            .await
            .map_err(|error| StorageError::Migration(error.to_string()))?;
        Ok(PostgresStorage { pool })
    }

    const EVENT_COLUMNS: &'static str = COLUMNS;
    /// Relays in other processes skip the outbox rows this one is publishing.
    const SKIP_LOCKED: &'static str = " FOR UPDATE SKIP LOCKED";

    /// Inserts the events not stored yet inside a transaction, queued in the outbox
    /// for the relay to publish when `publish`; returns how many were new.
    async fn insert_events(
        transaction: &mut sqlx::Transaction<'_, Postgres>,
        events: &[&Envelope],
        publish: bool,
    ) -> Result<u64, sqlx::Error> {
        if events.is_empty() {
            return Ok(0);
        }
        // One statement whatever the number of events: each column is one array bind,
        // unnested in order (so store sequence numbers follow the order given), and the
        // new rows are queued in the outbox by the same statement.
        let insert = "INSERT INTO events (id, event_type, source, version, timestamp_ms, correlation_id, \
             causation_id, data, stored_at_ms) \
             SELECT u.*, $9 FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::bigint[], \
             $6::text[], $7::uuid[], $8::text[]) AS u ON CONFLICT (id) DO NOTHING";
        let sql = if publish {
            format!(
                "WITH inserted AS ({insert} RETURNING seq) INSERT INTO outbox (seq) SELECT seq FROM inserted"
            )
        } else {
            insert.to_owned()
        };
        let done = sqlx::query(&sql)
            .bind(events.iter().map(|event| event.id).collect::<Vec<Uuid>>())
            .bind(events.iter().map(|event| event.event_type.as_str()).collect::<Vec<&str>>())
            .bind(events.iter().map(|event| event.source.as_str()).collect::<Vec<&str>>())
            .bind(events.iter().map(|event| event.version.as_str()).collect::<Vec<&str>>())
            .bind(events.iter().map(|event| event.timestamp).collect::<Vec<i64>>())
            .bind(events.iter().map(|event| event.correlation_id.as_deref()).collect::<Vec<Option<&str>>>())
            .bind(events.iter().map(|event| event.causation_id).collect::<Vec<Option<Uuid>>>())
            .bind(events.iter().map(|event| event.data.to_string()).collect::<Vec<String>>())
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut **transaction)
            .await?;
        Ok(done.rows_affected())
    }

    /// ` = ANY($n)` with the values as one array: one bind whatever their number, and
    /// an index probe per value even without table statistics (a long `IN` list of
    /// binds is planned as a filter over every row of the consumer).
    fn push_any_of<'args, T>(sql: &mut QueryBuilder<'args, Postgres>, values: Vec<T>)
    where
        Vec<T>: 'args + sqlx::Encode<'args, Postgres> + sqlx::Type<Postgres>,
    {
        sql.push(" = ANY(").push_bind(values).push(")");
    }

    /// The rows of `consumer_handled`, as `SELECT … unnest(array)`: three binds.
    fn push_handled_rows(sql: &mut QueryBuilder<'_, Postgres>, consumer: &str, ids: Vec<String>, now: i64) {
        sql.push("SELECT ")
            .push_bind(consumer.to_owned())
            .push(", unnest(")
            .push_bind(ids)
            .push("::text[]), ")
            .push_bind(now);
    }

    fn decode(row: &sqlx::postgres::PgRow) -> Result<StoredEvent, StorageError> {
        Self::read_row(row)?.into_stored()
    }

    /// A stored event with its `data` left as the stored text.
    fn decode_raw(row: &sqlx::postgres::PgRow) -> Result<RelayedEvent, StorageError> {
        Self::read_row(row)?.into_relayed()
    }

    fn read_row(row: &sqlx::postgres::PgRow) -> Result<StoredRow, StorageError> {
        Ok(StoredRow {
            seq: row.try_get("seq")?,
            id: row.try_get("id")?,
            timestamp: row.try_get("timestamp_ms")?,
            event_type: row.try_get("event_type")?,
            source: row.try_get("source")?,
            version: row.try_get("version")?,
            correlation_id: row.try_get("correlation_id")?,
            causation_id: row.try_get("causation_id")?,
            data: row.try_get("data")?,
        })
    }
}

const COLUMNS: &str =
    "seq, id, event_type, source, version, timestamp_ms, correlation_id, causation_id, data";

#[async_trait]
impl Storage for PostgresStorage {
    fn kind(&self) -> StorageKind {
        StorageKind::Postgres
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
        let mut sql: QueryBuilder<'_, Postgres> =
            QueryBuilder::new(format!("SELECT {COLUMNS} FROM events WHERE TRUE"));
        if let Some(patterns) = like_patterns(&query.patterns) {
            sql.push(" AND event_type LIKE ANY(").push_bind(patterns).push(")");
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
        rows.iter().map(PostgresStorage::decode).collect()
    }

    async fn event(&self, id: Uuid) -> Result<Option<StoredEvent>, StorageError> {
        let row = sqlx::query(&format!("SELECT {COLUMNS} FROM events WHERE id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(PostgresStorage::decode).transpose()
    }
}

auction_storage!(PostgresStorage, Postgres, sqlx::postgres::PgRow);
auction_storage_helpers!(PostgresStorage, Postgres, sqlx::postgres::PgRow);
delivery_storage!(PostgresStorage, Postgres, sqlx::postgres::PgRow);
