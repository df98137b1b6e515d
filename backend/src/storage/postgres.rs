//! PostgreSQL storage for the production mode.

use std::collections::HashSet;
use std::sync::LazyLock;
use std::time::Duration;

use async_trait::async_trait;
use sothebais_shared::events::Envelope;
use sqlx::postgres::{PgArguments, PgPool, PgPoolOptions};
use sqlx::query::Query;
use sqlx::{Postgres, QueryBuilder, Row};
use uuid::Uuid;

use sothebais_shared::auction::Bid;

use super::{
    AuctionCommit, CommitOutcome, EventQuery, EventRow, RelayedEvent, Storage, StorageError, StorageKind,
    StoredEvent, StoredRow, auction_sql, like_patterns,
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
            // No ping before each use: it is a round trip per statement. A connection
            // the server dropped fails its next statement as unavailable (503, nothing
            // acknowledged), and the ping on its return to the pool then discards it.
            .test_before_acquire(false)
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

    /// Auctions' commits as one statement, so one round trip and one implicit
    /// transaction whatever their number (each round trip to the database is a
    /// scheduling hop on a busy machine: the five of an explicit transaction cost more
    /// than the statements themselves). Every column goes as one array bind; the
    /// conditional update of the auctions (on the version each writer read) says
    /// which commits apply, and only their bids and events are inserted, the events in
    /// the order given and queued in the outbox. At most one commit per auction.
    async fn commit_group(&self, commits: &[AuctionCommit<'_>]) -> Result<Vec<CommitOutcome>, sqlx::Error> {
        static STATEMENT: LazyLock<String> = LazyLock::new(|| {
            let bid_columns = auction_sql::BID_COLUMNS;
            format!(
                "WITH v AS ( \
                    SELECT * FROM UNNEST($1::text[], $2::bigint[], $3::text[], $4::text[], $5::bigint[]) \
                        AS v (id, expected_version, core, phase, next_deadline_ms) \
                ), updated AS ( \
                    UPDATE auctions SET core = v.core, version = auctions.version + 1, phase = v.phase, \
                        next_deadline_ms = v.next_deadline_ms, updated_at_ms = $6 \
                    FROM v WHERE auctions.id = v.id AND auctions.version = v.expected_version \
                    RETURNING auctions.id \
                ), new_bids AS ( \
                    INSERT INTO bids ({bid_columns}) \
                    SELECT * FROM UNNEST($7::text[], $8::bigint[], $9::text[], $10::text[], $11::text[], \
                        $12::text[], $13::text[], $14::text[], $15::bigint[], $16::bigint[], $17::text[], \
                        $18::text[], $19::bigint[], $20::text[], $21::text[]) AS b ({bid_columns}) \
                    WHERE b.auction_id IN (SELECT id FROM updated) \
                ), new_events AS ( \
                    INSERT INTO events (id, event_type, source, version, timestamp_ms, correlation_id, \
                        causation_id, data, stored_at_ms) \
                    SELECT e.id, e.event_type, e.source, e.version, e.timestamp_ms, e.correlation_id, \
                        e.causation_id, e.data, $6 \
                    FROM UNNEST($22::text[], $23::uuid[], $24::text[], $25::text[], $26::text[], \
                        $27::bigint[], $28::text[], $29::uuid[], $30::text[]) WITH ORDINALITY \
                        AS e (auction_id, id, event_type, source, version, timestamp_ms, correlation_id, \
                            causation_id, data, n) \
                    WHERE e.auction_id IN (SELECT id FROM updated) \
                    ORDER BY e.n \
                    ON CONFLICT (id) DO NOTHING \
                    RETURNING seq \
                ), queued AS ( \
                    INSERT INTO outbox (seq) SELECT seq FROM new_events \
                ) \
                SELECT id FROM updated"
            )
        });
        let cores = commits
            .iter()
            .map(|commit| auction_sql::encode_core(commit.core))
            .collect::<Result<Vec<String>, StorageError>>()
            .map_err(|error| sqlx::Error::Encode(Box::new(error)))?;
        let ids: Vec<String> = commits.iter().map(|commit| commit.core.id.to_string()).collect();
        let bids: Vec<&Bid> = commits.iter().flat_map(|commit| commit.bids.iter()).collect();
        let (event_auctions, events): (Vec<&str>, Vec<EventRow<'_>>) = commits
            .iter()
            .zip(&ids)
            .flat_map(|(commit, id)| {
                commit.events.iter().map(move |event| (id.as_str(), EventRow::from(event)))
            })
            .unzip();
        let query = sqlx::query(&STATEMENT)
            .bind(&ids)
            .bind(commits.iter().map(|commit| commit.expected_version).collect::<Vec<i64>>())
            .bind(cores)
            .bind(
                commits
                    .iter()
                    .map(|commit| auction_sql::phase_name(commit.core.phase))
                    .collect::<Vec<&str>>(),
            )
            .bind(
                commits
                    .iter()
                    .map(|commit| commit.core.next_deadline().map(|at| at.timestamp_millis()))
                    .collect::<Vec<Option<i64>>>(),
            )
            .bind(chrono::Utc::now().timestamp_millis())
            .bind(bids.iter().map(|bid| bid.auction_id.to_string()).collect::<Vec<String>>())
            .bind(bids.iter().map(|bid| bid.seq as i64).collect::<Vec<i64>>())
            .bind(bids.iter().map(|bid| bid.id.to_string()).collect::<Vec<String>>())
            .bind(bids.iter().map(|bid| bid.amount.wei().to_string()).collect::<Vec<String>>())
            .bind(bids.iter().map(|bid| bid.bidder.id.as_str()).collect::<Vec<&str>>())
            .bind(bids.iter().map(|bid| bid.bidder.handle.as_deref()).collect::<Vec<Option<&str>>>())
            .bind(bids.iter().map(|bid| bid.source.as_str()).collect::<Vec<&str>>())
            .bind(bids.iter().map(|bid| bid.source_ref.as_deref()).collect::<Vec<Option<&str>>>())
            .bind(bids.iter().map(|bid| bid.created_at.timestamp_millis()).collect::<Vec<i64>>())
            .bind(bids.iter().map(|bid| bid.received_at.timestamp_millis()).collect::<Vec<i64>>())
            .bind(bids.iter().map(|bid| bid.status.as_str()).collect::<Vec<&str>>())
            .bind(
                bids.iter().map(|bid| bid.reason.map(|reason| reason.code())).collect::<Vec<Option<&str>>>(),
            )
            .bind(
                bids.iter()
                    .map(|bid| bid.extended_to.map(|at| at.timestamp_millis()))
                    .collect::<Vec<Option<i64>>>(),
            )
            .bind(bids.iter().map(|bid| bid.hash.as_str()).collect::<Vec<&str>>())
            .bind(bids.iter().map(|bid| bid.prev_hash.as_str()).collect::<Vec<&str>>())
            .bind(event_auctions);
        let updated: HashSet<String> = Self::bind_events(query, &events)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(|row| row.try_get(0))
            .collect::<Result<_, _>>()?;
        Ok(ids
            .iter()
            .map(|id| match updated.contains(id) {
                true => CommitOutcome::Committed,
                false => CommitOutcome::Conflict,
            })
            .collect())
    }

    /// Inserts the events not stored yet inside a transaction, queued in the outbox
    /// for the relay to publish when `publish`; returns how many were new.
    async fn insert_events(
        transaction: &mut sqlx::Transaction<'_, Postgres>,
        events: &[EventRow<'_>],
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
        let done = Self::bind_events(sqlx::query(&sql), events)
            .bind(chrono::Utc::now().timestamp_millis())
            .execute(&mut **transaction)
            .await?;
        Ok(done.rows_affected())
    }

    /// Binds the events' columns, one array each, in the order `id, event_type, source,
    /// version, timestamp_ms, correlation_id, causation_id, data`.
    fn bind_events<'q>(
        query: Query<'q, Postgres, PgArguments>,
        events: &'q [EventRow<'q>],
    ) -> Query<'q, Postgres, PgArguments> {
        query
            .bind(events.iter().map(|event| event.id).collect::<Vec<Uuid>>())
            .bind(events.iter().map(|event| event.event_type.as_str()).collect::<Vec<&str>>())
            .bind(events.iter().map(|event| event.source.as_str()).collect::<Vec<&str>>())
            .bind(events.iter().map(|event| event.version).collect::<Vec<&str>>())
            .bind(events.iter().map(|event| event.timestamp).collect::<Vec<i64>>())
            .bind(events.iter().map(|event| event.correlation_id).collect::<Vec<Option<&str>>>())
            .bind(events.iter().map(|event| event.causation_id).collect::<Vec<Option<Uuid>>>())
            .bind(events.iter().map(|event| event.data.as_ref()).collect::<Vec<&str>>())
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
        Self::insert_events(&mut transaction, &[EventRow::from(event)], true).await?;
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

    async fn backup(&self, _file: &std::path::Path) -> Result<bool, StorageError> {
        Ok(false)
    }
}

auction_storage!(PostgresStorage, Postgres, sqlx::postgres::PgRow);
auction_storage_helpers!(PostgresStorage, Postgres, sqlx::postgres::PgRow);
delivery_storage!(PostgresStorage, Postgres, sqlx::postgres::PgRow);

social_storage!(PostgresStorage, Postgres);
agent_storage!(PostgresStorage, Postgres);
admin_storage!(PostgresStorage, Postgres);
chain_storage!(PostgresStorage, Postgres);
