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

use sothebais_shared::auction::Bid;

use super::{
    AuctionCommit, CommitOutcome, EventQuery, EventRow, RelayedEvent, Storage, StorageError, StorageKind,
    StoredEvent, StoredRow, auction_sql, ensure_parent, like_patterns,
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

    /// Auctions' commits in one transaction: a conditional update of the auctions (on
    /// the version each writer read), an insert of the applied auctions' bids and one
    /// of their events, each a multi-row statement per 500 rows. SQLite runs in this
    /// process: a statement is a hop to the connection's thread, not over a socket to
    /// another process. At most one commit per auction.
    async fn commit_group(&self, commits: &[AuctionCommit<'_>]) -> Result<Vec<CommitOutcome>, sqlx::Error> {
        let now = chrono::Utc::now().timestamp_millis();
        let mut transaction = self.pool.begin().await?;
        let mut applied = std::collections::HashSet::new();
        for chunk in commits.chunks(auction_sql::INSERT_CHUNK) {
            let mut sql = QueryBuilder::<Sqlite>::new(
                "UPDATE auctions SET core = v.column3, version = auctions.version + 1, phase = v.column4, \
                 next_deadline_ms = v.column5, updated_at_ms = v.column6 FROM (",
            );
            let cores = chunk
                .iter()
                .map(|commit| auction_sql::encode_core(commit.core))
                .collect::<Result<Vec<String>, StorageError>>()
                .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
            sql.push_values(chunk.iter().zip(cores), |mut row, (commit, core)| {
                row.push_bind(commit.core.id.to_string())
                    .push_bind(commit.expected_version)
                    .push_bind(core)
                    .push_bind(auction_sql::phase_name(commit.core.phase))
                    .push_bind(commit.core.next_deadline().map(|at| at.timestamp_millis()))
                    .push_bind(now);
            });
            sql.push(
                ") AS v WHERE auctions.id = v.column1 AND auctions.version = v.column2 RETURNING auctions.id",
            );
            for row in sql.build().fetch_all(&mut *transaction).await? {
                applied.insert(row.try_get::<String, _>(0)?);
            }
        }
        let is_applied = |commit: &&AuctionCommit<'_>| applied.contains(&commit.core.id.to_string());
        let bids: Vec<&Bid> =
            commits.iter().filter(is_applied).flat_map(|commit| commit.bids.iter()).collect();
        for chunk in bids.chunks(auction_sql::INSERT_CHUNK) {
            let mut sql =
                QueryBuilder::<Sqlite>::new(format!("INSERT INTO bids ({}) ", auction_sql::BID_COLUMNS));
            sql.push_values(chunk, |mut row, bid| {
                row.push_bind(bid.auction_id.to_string())
                    .push_bind(bid.seq as i64)
                    .push_bind(bid.id.to_string())
                    .push_bind(bid.amount.wei().to_string())
                    .push_bind(bid.bidder.id.clone())
                    .push_bind(bid.bidder.handle.clone())
                    .push_bind(bid.source.as_str())
                    .push_bind(bid.source_ref.clone())
                    .push_bind(bid.created_at.timestamp_millis())
                    .push_bind(bid.received_at.timestamp_millis())
                    .push_bind(bid.status.as_str())
                    .push_bind(bid.reason.map(|reason| reason.code()))
                    .push_bind(bid.extended_to.map(|at| at.timestamp_millis()))
                    .push_bind(bid.hash.clone())
                    .push_bind(bid.prev_hash.clone());
            });
            sql.build().execute(&mut *transaction).await?;
        }
        let events: Vec<EventRow<'_>> = commits
            .iter()
            .filter(is_applied)
            .flat_map(|commit| commit.events.iter())
            .map(EventRow::from)
            .collect();
        Self::insert_events(&mut transaction, &events, true).await?;
        transaction.commit().await?;
        Ok(commits
            .iter()
            .map(|commit| match applied.contains(&commit.core.id.to_string()) {
                true => CommitOutcome::Committed,
                false => CommitOutcome::Conflict,
            })
            .collect())
    }

    /// Inserts the events not stored yet inside a transaction, queued in the outbox
    /// for the relay to publish when `publish`; returns how many were new.
    async fn insert_events(
        transaction: &mut sqlx::Transaction<'_, Sqlite>,
        events: &[EventRow<'_>],
        publish: bool,
    ) -> Result<u64, sqlx::Error> {
        let stored_at = chrono::Utc::now().timestamp_millis();
        let mut inserted = 0;
        for chunk in events.chunks(auction_sql::INSERT_CHUNK) {
            let mut sql: QueryBuilder<'_, Sqlite> = QueryBuilder::new(
                "INSERT INTO events (id, event_type, source, version, timestamp_ms, correlation_id, causation_id, data, stored_at_ms) ",
            );
            sql.push_values(chunk, |mut row, event| {
                row.push_bind(event.id.to_string())
                    .push_bind(event.event_type.as_str())
                    .push_bind(event.source.as_str())
                    .push_bind(event.version)
                    .push_bind(event.timestamp)
                    .push_bind(event.correlation_id)
                    .push_bind(event.causation_id.map(|id| id.to_string()))
                    .push_bind(event.data.as_ref())
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
        Self::insert_events(&mut transaction, &[EventRow::from(event)], true).await?;
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

    async fn backup(&self, file: &Path) -> Result<bool, StorageError> {
        sqlx::query("VACUUM INTO ?").bind(file.to_string_lossy().into_owned()).execute(&self.pool).await?;
        Ok(true)
    }
}

auction_storage!(SqliteStorage, Sqlite, sqlx::sqlite::SqliteRow);
auction_storage_helpers!(SqliteStorage, Sqlite, sqlx::sqlite::SqliteRow);
delivery_storage!(SqliteStorage, Sqlite, sqlx::sqlite::SqliteRow);

social_storage!(SqliteStorage, Sqlite);
agent_storage!(SqliteStorage, Sqlite);
admin_storage!(SqliteStorage, Sqlite);
chain_storage!(SqliteStorage, Sqlite);
