//! Auction, bid, campaign and outbox statements, written once for both databases:
//! these tables use only TEXT and BIGINT columns, and every statement is built with
//! `QueryBuilder`, which writes each database's placeholders. The one exception is
//! the group commit (`commit_group`), written for each database: one statement on
//! PostgreSQL, a transaction of three on SQLite.

use chrono::{DateTime, Utc};
use sothebais_shared::Amount;
use sothebais_shared::auction::{Bid, BidStatus, Bidder, RejectReason};
use uuid::Uuid;

use super::StorageError;
use crate::auction::rules::{AuctionCore, Phase};

/// Rows per multi-row insert (SQLite allows 32766 bound values; bids bind 15 each).
pub(super) const INSERT_CHUNK: usize = 500;

pub(super) fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Scheduled => "scheduled",
        Phase::Open => "open",
        Phase::Closed => "closed",
        Phase::Settled => "settled",
        Phase::Cancelled => "cancelled",
        Phase::PaymentFailed => "payment_failed",
    }
}

fn corrupt(what: &str, error: impl std::fmt::Display) -> StorageError {
    StorageError::Corrupt(format!("{what}: {error}"))
}

pub(super) fn encode_core(core: &AuctionCore) -> Result<String, StorageError> {
    serde_json::to_string(core).map_err(|error| StorageError::Database(format!("encoding auction: {error}")))
}

pub(super) fn decode_core(text: &str) -> Result<AuctionCore, StorageError> {
    serde_json::from_str(text).map_err(|error| corrupt("auction core", error))
}

pub(super) fn millis_to_time(millis: i64) -> Result<DateTime<Utc>, StorageError> {
    DateTime::from_timestamp_millis(millis).ok_or_else(|| corrupt("time", millis))
}

/// The columns of a bid row, as read back.
pub(super) struct BidRow {
    pub auction_id: String,
    pub seq: i64,
    pub id: String,
    pub amount_wei: String,
    pub bidder_id: String,
    pub bidder_handle: Option<String>,
    pub source: String,
    pub source_ref: Option<String>,
    pub created_at_ms: i64,
    pub received_at_ms: i64,
    pub status: String,
    pub reason: Option<String>,
    pub extended_to_ms: Option<i64>,
    pub hash: String,
    pub prev_hash: String,
}

pub(super) const BID_COLUMNS: &str = "auction_id, seq, id, amount_wei, bidder_id, bidder_handle, source, source_ref, \
     created_at_ms, received_at_ms, status, reason, extended_to_ms, hash, prev_hash";

impl BidRow {
    pub fn into_bid(self) -> Result<Bid, StorageError> {
        let reason = match self.reason {
            None => None,
            Some(code) => Some(
                serde_json::from_value::<RejectReason>(serde_json::Value::String(code))
                    .map_err(|error| corrupt("reason", error))?,
            ),
        };
        Ok(Bid {
            id: Uuid::parse_str(&self.id).map_err(|error| corrupt("bid id", error))?,
            auction_id: Uuid::parse_str(&self.auction_id).map_err(|error| corrupt("auction id", error))?,
            seq: u64::try_from(self.seq).map_err(|error| corrupt("seq", error))?,
            amount: Amount::from_wei(self.amount_wei.parse().map_err(|error| corrupt("amount", error))?),
            bidder: Bidder { id: self.bidder_id, handle: self.bidder_handle },
            source: self.source.parse().map_err(|error: String| corrupt("source", error))?,
            source_ref: self.source_ref,
            created_at: millis_to_time(self.created_at_ms)?,
            received_at: millis_to_time(self.received_at_ms)?,
            status: match self.status.as_str() {
                "accepted" => BidStatus::Accepted,
                "rejected" => BidStatus::Rejected,
                other => return Err(corrupt("status", other)),
            },
            reason,
            extended_to: self.extended_to_ms.map(millis_to_time).transpose()?,
            hash: self.hash,
            prev_hash: self.prev_hash,
        })
    }
}

/// Implements the auction part of `Storage` for a storage type with a `pool` field.
macro_rules! auction_storage {
    ($storage:ty, $database:ty, $row:ty) => {
        #[async_trait::async_trait]
        impl crate::storage::SharedStorage for $storage {
        async fn insert_campaign(
            &self,
            campaign: &sothebais_shared::auction::Campaign,
            auctions: &[crate::auction::rules::AuctionCore],
            events: &[sothebais_shared::events::Envelope],
        ) -> Result<(), StorageError> {
            let mut transaction = self.pool.begin().await?;
            let document = serde_json::to_string(campaign)
                .map_err(|error| StorageError::Database(format!("encoding campaign: {error}")))?;
            sqlx::QueryBuilder::<$database>::new("INSERT INTO campaigns (id, document, created_at_ms) VALUES (")
                .push_bind(campaign.id.to_string())
                .push(", ")
                .push_bind(document)
                .push(", ")
                .push_bind(chrono::Utc::now().timestamp_millis())
                .push(")")
                .build()
                .execute(&mut *transaction)
                .await?;
            for core in auctions {
                Self::insert_auction_row(&mut transaction, core).await?;
            }
            Self::insert_events(
                &mut transaction,
                &events.iter().map(crate::storage::EventRow::from).collect::<Vec<_>>(),
                true,
            )
            .await?;
            transaction.commit().await?;
            Ok(())
        }

        async fn insert_auction(
            &self,
            core: &crate::auction::rules::AuctionCore,
            events: &[sothebais_shared::events::Envelope],
        ) -> Result<(), StorageError> {
            let mut transaction = self.pool.begin().await?;
            Self::insert_auction_row(&mut transaction, core).await?;
            Self::insert_events(
                &mut transaction,
                &events.iter().map(crate::storage::EventRow::from).collect::<Vec<_>>(),
                true,
            )
            .await?;
            transaction.commit().await?;
            Ok(())
        }

        async fn auction(&self, id: uuid::Uuid) -> Result<Option<crate::storage::AuctionRecord>, StorageError> {
            use sqlx::Row as _;
            let row = sqlx::QueryBuilder::<$database>::new("SELECT core, version FROM auctions WHERE id = ")
                .push_bind(id.to_string())
                .build()
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row: $row| {
                Ok(crate::storage::AuctionRecord {
                    core: crate::storage::auction_sql::decode_core(&row.try_get::<String, _>("core")?)?,
                    version: row.try_get("version")?,
                })
            })
            .transpose()
        }

        async fn auctions(
            &self,
            filter: &crate::storage::AuctionFilter,
        ) -> Result<Vec<crate::storage::AuctionRecord>, StorageError> {
            use sqlx::Row as _;
            let mut sql = sqlx::QueryBuilder::<$database>::new("SELECT core, version FROM auctions WHERE 1 = 1");
            if !filter.phases.is_empty() {
                sql.push(" AND phase IN (");
                let mut separated = sql.separated(", ");
                for phase in &filter.phases {
                    separated.push_bind(crate::storage::auction_sql::phase_name(*phase));
                }
                sql.push(")");
            }
            if let Some(campaign) = filter.campaign_id {
                sql.push(" AND campaign_id = ").push_bind(campaign.to_string());
            }
            sql.push(" ORDER BY created_at_ms, id LIMIT ").push_bind(i64::from(filter.limit.max(1)));
            let rows = sql.build().fetch_all(&self.pool).await?;
            rows.iter()
                .map(|row| {
                    Ok(crate::storage::AuctionRecord {
                        core: crate::storage::auction_sql::decode_core(&row.try_get::<String, _>("core")?)?,
                        version: row.try_get("version")?,
                    })
                })
                .collect()
        }

        async fn commit_auctions(
            &self,
            commits: &[crate::storage::AuctionCommit<'_>],
        ) -> Vec<Result<crate::storage::CommitOutcome, StorageError>> {
            use crate::storage::CommitOutcome;
            debug_assert!(
                commits.iter().map(|commit| commit.core.id).collect::<std::collections::HashSet<_>>().len()
                    == commits.len(),
                "one commit per auction in a group"
            );
            let unique_violation =
                |error: &sqlx::Error| matches!(error, sqlx::Error::Database(error) if error.is_unique_violation());
            match self.commit_group(commits).await {
                Ok(outcomes) => outcomes.into_iter().map(Ok).collect(),
                // A post or idempotency key another writer stored first: the one that
                // collides is a conflict (its writer reloads and finds the earlier
                // decision). In a group, the whole statement failed, so each commit goes
                // again on its own.
                Err(error) if unique_violation(&error) && commits.len() == 1 => vec![Ok(CommitOutcome::Conflict)],
                Err(error) if unique_violation(&error) => {
                    let mut outcomes = Vec::with_capacity(commits.len());
                    for commit in commits {
                        outcomes.push(match self.commit_group(std::slice::from_ref(commit)).await {
                            Ok(outcome) => Ok(outcome.first().copied().unwrap_or(CommitOutcome::Conflict)),
                            Err(error) if unique_violation(&error) => Ok(CommitOutcome::Conflict),
                            Err(error) => Err(error.into()),
                        });
                    }
                    outcomes
                }
                Err(error) => {
                    let error = StorageError::from(error);
                    commits.iter().map(|_| Err(error.clone())).collect()
                }
            }
        }

        async fn bids(
            &self,
            auction_id: uuid::Uuid,
            after_seq: u64,
            limit: u32,
        ) -> Result<Vec<sothebais_shared::auction::Bid>, StorageError> {
            let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                "SELECT {} FROM bids WHERE auction_id = ",
                crate::storage::auction_sql::BID_COLUMNS
            ));
            sql.push_bind(auction_id.to_string())
                .push(" AND seq > ")
                .push_bind(after_seq as i64)
                .push(" ORDER BY seq LIMIT ")
                .push_bind(i64::from(limit));
            let rows = sql.build().fetch_all(&self.pool).await?;
            rows.iter().map(Self::bid_row).collect()
        }

        async fn recent_accepted(
            &self,
            auction_id: uuid::Uuid,
            since: chrono::DateTime<chrono::Utc>,
        ) -> Result<Vec<(String, chrono::DateTime<chrono::Utc>)>, StorageError> {
            use sqlx::Row as _;
            let rows = sqlx::QueryBuilder::<$database>::new(
                "SELECT bidder_id, received_at_ms FROM bids WHERE status = 'accepted' AND auction_id = ",
            )
            .push_bind(auction_id.to_string())
            .push(" AND received_at_ms >= ")
            .push_bind(since.timestamp_millis())
            .push(" ORDER BY seq")
            .build()
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    Ok((
                        row.try_get::<String, _>("bidder_id")?,
                        crate::storage::auction_sql::millis_to_time(row.try_get("received_at_ms")?)?,
                    ))
                })
                .collect()
        }

        async fn bids_by_source_ref(
            &self,
            auction_id: uuid::Uuid,
            refs: &[String],
        ) -> Result<Vec<sothebais_shared::auction::Bid>, StorageError> {
            if refs.is_empty() {
                return Ok(Vec::new());
            }
            let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                "SELECT {} FROM bids WHERE auction_id = ",
                crate::storage::auction_sql::BID_COLUMNS
            ));
            sql.push_bind(auction_id.to_string()).push(" AND source_ref IN (");
            let mut separated = sql.separated(", ");
            for reference in refs {
                separated.push_bind(reference.clone());
            }
            sql.push(")");
            let rows = sql.build().fetch_all(&self.pool).await?;
            rows.iter().map(Self::bid_row).collect()
        }

        async fn due_auctions(
            &self,
            before: chrono::DateTime<chrono::Utc>,
        ) -> Result<Vec<(uuid::Uuid, chrono::DateTime<chrono::Utc>)>, StorageError> {
            use sqlx::Row as _;
            let rows = sqlx::QueryBuilder::<$database>::new(
                "SELECT id, next_deadline_ms FROM auctions WHERE next_deadline_ms IS NOT NULL AND next_deadline_ms <= ",
            )
            .push_bind(before.timestamp_millis())
            .push(" ORDER BY next_deadline_ms LIMIT 10000")
            .build()
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let id: String = row.try_get("id")?;
                    let deadline: i64 = row.try_get("next_deadline_ms")?;
                    Ok((
                        uuid::Uuid::parse_str(&id).map_err(|error| StorageError::Corrupt(error.to_string()))?,
                        crate::storage::auction_sql::millis_to_time(deadline)?,
                    ))
                })
                .collect()
        }

        async fn campaign(
            &self,
            id: uuid::Uuid,
        ) -> Result<Option<sothebais_shared::auction::Campaign>, StorageError> {
            use sqlx::Row as _;
            let row = sqlx::QueryBuilder::<$database>::new("SELECT document FROM campaigns WHERE id = ")
                .push_bind(id.to_string())
                .build()
                .fetch_optional(&self.pool)
                .await?;
            row.map(|row: $row| {
                let document: String = row.try_get("document")?;
                serde_json::from_str(&document).map_err(|error| StorageError::Corrupt(format!("campaign: {error}")))
            })
            .transpose()
        }

        async fn campaigns(&self) -> Result<Vec<sothebais_shared::auction::Campaign>, StorageError> {
            use sqlx::Row as _;
            let rows = sqlx::QueryBuilder::<$database>::new(
                "SELECT document FROM campaigns ORDER BY created_at_ms, id LIMIT 1000",
            )
            .build()
            .fetch_all(&self.pool)
            .await?;
            rows.iter()
                .map(|row| {
                    let document: String = row.try_get("document")?;
                    serde_json::from_str(&document)
                        .map_err(|error| StorageError::Corrupt(format!("campaign: {error}")))
                })
                .collect()
        }

        async fn relay_outbox(
            &self,
            after: i64,
            limit: u32,
            bus: &dyn crate::bus::EventBus,
        ) -> Result<Result<Vec<crate::storage::RelayedEvent>, crate::bus::BusError>, StorageError> {
            use sqlx::Row as _;
            // Taking the rows off the outbox is the transaction's first statement, so it
            // holds the write lock from the start (SQLite cannot upgrade a reading
            // transaction once others have written); PostgreSQL relays in other
            // processes skip the locked rows. If publishing fails, the transaction rolls
            // back and the rows are queued again. Planned with its values each time: a
            // generic plan made while the outbox was empty scans the whole table, dead
            // rows included, every round.
            let mut transaction = self.pool.begin().await?;
            let mut sql = sqlx::QueryBuilder::<$database>::new(
                "DELETE FROM outbox WHERE seq IN (SELECT seq FROM outbox WHERE seq > ",
            );
            sql.push_bind(after)
                .push(" ORDER BY seq LIMIT ")
                .push_bind(i64::from(limit))
                .push(Self::SKIP_LOCKED)
                .push(") RETURNING seq");
            let seqs: Vec<i64> = sql
                .build()
                .persistent(false)
                .fetch_all(&mut *transaction)
                .await?
                .iter()
                .map(|row| row.try_get::<i64, _>("seq"))
                .collect::<Result<_, _>>()?;
            if seqs.is_empty() {
                transaction.commit().await?;
                return Ok(Ok(Vec::new()));
            }
            let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                "SELECT {} FROM events WHERE seq",
                Self::EVENT_COLUMNS
            ));
            Self::push_any_of(&mut sql, seqs);
            sql.push(" ORDER BY seq");
            let rows = sql.build().fetch_all(&mut *transaction).await?;
            let relayed = rows.iter().map(Self::decode_raw).collect::<Result<Vec<_>, _>>()?;
            if let Err(error) = crate::bus::publish_stored(bus, relayed.iter().map(|relayed| &relayed.event)).await {
                transaction.rollback().await?;
                return Ok(Err(error));
            }
            transaction.commit().await?;
            Ok(Ok(relayed))
        }

        async fn outbox_len(&self) -> Result<u64, StorageError> {
            use sqlx::Row as _;
            let row = sqlx::QueryBuilder::<$database>::new("SELECT count(*) AS queued FROM outbox")
                .build()
                .fetch_one(&self.pool)
                .await?;
            Ok(u64::try_from(row.try_get::<i64, _>("queued")?).unwrap_or(0))
        }
        }
    };
}

/// The private helpers the macro's statements use, for a storage type.
macro_rules! auction_storage_helpers {
    ($storage:ty, $database:ty, $row:ty) => {
        impl $storage {
            async fn insert_auction_row(
                transaction: &mut sqlx::Transaction<'_, $database>,
                core: &crate::auction::rules::AuctionCore,
            ) -> Result<(), StorageError> {
                let now = chrono::Utc::now().timestamp_millis();
                sqlx::QueryBuilder::<$database>::new(
                    "INSERT INTO auctions (id, campaign_id, phase, next_deadline_ms, version, core, created_at_ms, updated_at_ms) VALUES (",
                )
                .push_bind(core.id.to_string())
                .push(", ")
                .push_bind(core.campaign_id.map(|id| id.to_string()))
                .push(", ")
                .push_bind(crate::storage::auction_sql::phase_name(core.phase))
                .push(", ")
                .push_bind(core.next_deadline().map(|at| at.timestamp_millis()))
                .push(", 1, ")
                .push_bind(crate::storage::auction_sql::encode_core(core)?)
                .push(", ")
                .push_bind(now)
                .push(", ")
                .push_bind(now)
                .push(")")
                .build()
                .execute(&mut **transaction)
                .await?;
                Ok(())
            }

            fn bid_row(row: &$row) -> Result<sothebais_shared::auction::Bid, StorageError> {
                use sqlx::Row as _;
                crate::storage::auction_sql::BidRow {
                    auction_id: row.try_get("auction_id")?,
                    seq: row.try_get("seq")?,
                    id: row.try_get("id")?,
                    amount_wei: row.try_get("amount_wei")?,
                    bidder_id: row.try_get("bidder_id")?,
                    bidder_handle: row.try_get("bidder_handle")?,
                    source: row.try_get("source")?,
                    source_ref: row.try_get("source_ref")?,
                    created_at_ms: row.try_get("created_at_ms")?,
                    received_at_ms: row.try_get("received_at_ms")?,
                    status: row.try_get("status")?,
                    reason: row.try_get("reason")?,
                    extended_to_ms: row.try_get("extended_to_ms")?,
                    hash: row.try_get("hash")?,
                    prev_hash: row.try_get("prev_hash")?,
                }
                .into_bid()
            }
        }
    };
}
