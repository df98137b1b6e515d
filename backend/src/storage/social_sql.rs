//! The social role's tables (posts read, writes to send, announced lots, cursors),
//! written once for both databases: TEXT and BIGINT columns, statements built with
//! `QueryBuilder`.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::StorageError;
use crate::storage::auction_sql::millis_to_time;

/// A post read from X that is addressed to the show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialPost {
    /// The first version's id (an edit counts as the post it edits).
    pub post_id: String,
    pub author_id: String,
    pub author_handle: Option<String>,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub received_at: DateTime<Utc>,
    pub conversation_id: Option<String>,
    /// It mentions or quotes the show: X lets the show reply to it.
    pub summons: bool,
    pub state: PostState,
    pub auction_id: Option<Uuid>,
    /// What was decided, as JSON.
    pub outcome: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostState {
    /// Stored, not decided yet (a crash here is finished at the next start).
    Received,
    Decided,
    /// Not a bid.
    Ignored,
}

impl PostState {
    pub fn as_str(self) -> &'static str {
        match self {
            PostState::Received => "received",
            PostState::Decided => "decided",
            PostState::Ignored => "ignored",
        }
    }

    fn parse(text: &str) -> Result<PostState, StorageError> {
        match text {
            "received" => Ok(PostState::Received),
            "decided" => Ok(PostState::Decided),
            "ignored" => Ok(PostState::Ignored),
            other => Err(StorageError::Corrupt(format!("post state {other:?}"))),
        }
    }
}

/// A write's `error` once a standings post has acknowledged it.
pub const ACKNOWLEDGED: &str = "acknowledged";

/// Something the show posts on X, stored before it is sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialWrite {
    /// The idempotency key: `reply:<post id>`, `announce:<auction>`, `result:<auction>`…
    pub key: String,
    pub kind: WriteKind,
    /// Lower goes first when the reply budget runs short.
    pub priority: i64,
    pub auction_id: Option<Uuid>,
    pub in_reply_to: Option<String>,
    pub text: String,
    pub state: WriteState,
    /// The id X gave the post once sent.
    pub post_id: Option<String>,
    pub attempts: i64,
    pub error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub sent_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteKind {
    Announcement,
    Accepted,
    Rejected,
    Outbid,
    Result,
    Standings,
    /// The host's answer to a viewer's question.
    Answer,
}

impl WriteKind {
    pub const ALL: [WriteKind; 7] = [
        WriteKind::Announcement,
        WriteKind::Accepted,
        WriteKind::Rejected,
        WriteKind::Outbid,
        WriteKind::Result,
        WriteKind::Standings,
        WriteKind::Answer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteKind::Announcement => "announcement",
            WriteKind::Accepted => "accepted",
            WriteKind::Rejected => "rejected",
            WriteKind::Outbid => "outbid",
            WriteKind::Result => "result",
            WriteKind::Standings => "standings",
            WriteKind::Answer => "answer",
        }
    }

    fn parse(text: &str) -> Result<WriteKind, StorageError> {
        WriteKind::ALL
            .into_iter()
            .find(|kind| kind.as_str() == text)
            .ok_or_else(|| StorageError::Corrupt(format!("write kind {text:?}")))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum WriteState {
    Pending,
    Sent,
    /// X refused the reply (the author did not summon the show): acknowledged in the
    /// lot's standings post instead, never retried.
    NotRepliable,
    /// Folded into a standings post because the reply budget ran short.
    Batched,
    /// Not sent: the spend limit, or the lot ended before it could go.
    Dropped,
}

impl WriteState {
    pub const ALL: [WriteState; 5] = [
        WriteState::Pending,
        WriteState::Sent,
        WriteState::NotRepliable,
        WriteState::Batched,
        WriteState::Dropped,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WriteState::Pending => "pending",
            WriteState::Sent => "sent",
            WriteState::NotRepliable => "not_repliable",
            WriteState::Batched => "batched",
            WriteState::Dropped => "dropped",
        }
    }

    fn parse(text: &str) -> Result<WriteState, StorageError> {
        WriteState::ALL
            .into_iter()
            .find(|state| state.as_str() == text)
            .ok_or_else(|| StorageError::Corrupt(format!("write state {text:?}")))
    }
}

/// A lot the show announced (or is about to).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocialLot {
    pub auction_id: Uuid,
    /// Its 1-based place in its campaign, which posts may name (`#lot3`).
    pub number: Option<u32>,
    pub title: String,
    /// The announcement post: the lot's conversation.
    pub post_id: Option<String>,
    /// The newest post of the conversation read.
    pub since_id: Option<String>,
    pub open: bool,
    /// The X post of the current high bid, and its bidder, for outbid notices.
    pub high_post_id: Option<String>,
    pub high_bidder: Option<String>,
    pub standings_at: DateTime<Utc>,
}

/// One column of a lot changed at a time, so the tasks that share a lot (the reader's
/// cursor, the sender's announcement id, the follower's high bid) never undo each
/// other's writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LotChange {
    /// The announcement was posted: its id is the lot's conversation.
    Post(String),
    /// The newest post of the conversation read.
    Since(String),
    /// A new high bid (its X post, when it came from X).
    High {
        post: Option<String>,
        bidder: String,
    },
    Closed,
    StandingsAt(DateTime<Utc>),
}

pub(super) const POST_COLUMNS: &str = "post_id, author_id, author_handle, text, created_at_ms, received_at_ms, \
     conversation_id, summons, state, auction_id, outcome";
pub(super) const WRITE_COLUMNS: &str = "key, kind, priority, auction_id, in_reply_to, text, state, post_id, \
     attempts, error, created_at_ms, sent_at_ms";
pub(super) const LOT_COLUMNS: &str =
    "auction_id, number, title, post_id, since_id, open, high_post_id, high_bidder, standings_at_ms";

fn uuid(text: Option<String>) -> Result<Option<Uuid>, StorageError> {
    text.map(|text| Uuid::parse_str(&text).map_err(|error| StorageError::Corrupt(format!("uuid: {error}"))))
        .transpose()
}

/// Reads rows of the social tables; generic over the database's row type.
pub(super) fn post_from<R: sqlx::Row>(row: &R) -> Result<SocialPost, StorageError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(SocialPost {
        post_id: row.try_get("post_id")?,
        author_id: row.try_get("author_id")?,
        author_handle: row.try_get("author_handle")?,
        text: row.try_get("text")?,
        created_at: millis_to_time(row.try_get("created_at_ms")?)?,
        received_at: millis_to_time(row.try_get("received_at_ms")?)?,
        conversation_id: row.try_get("conversation_id")?,
        summons: row.try_get::<i64, _>("summons")? != 0,
        state: PostState::parse(&row.try_get::<String, _>("state")?)?,
        auction_id: uuid(row.try_get("auction_id")?)?,
        outcome: row.try_get("outcome")?,
    })
}

pub(super) fn write_from<R: sqlx::Row>(row: &R) -> Result<SocialWrite, StorageError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(SocialWrite {
        key: row.try_get("key")?,
        kind: WriteKind::parse(&row.try_get::<String, _>("kind")?)?,
        priority: row.try_get("priority")?,
        auction_id: uuid(row.try_get("auction_id")?)?,
        in_reply_to: row.try_get("in_reply_to")?,
        text: row.try_get("text")?,
        state: WriteState::parse(&row.try_get::<String, _>("state")?)?,
        post_id: row.try_get("post_id")?,
        attempts: row.try_get("attempts")?,
        error: row.try_get("error")?,
        created_at: millis_to_time(row.try_get("created_at_ms")?)?,
        sent_at: row.try_get::<Option<i64>, _>("sent_at_ms")?.map(millis_to_time).transpose()?,
    })
}

pub(super) fn lot_from<R: sqlx::Row>(row: &R) -> Result<SocialLot, StorageError>
where
    for<'r> String: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> i64: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    for<'r> &'r str: sqlx::ColumnIndex<R>,
{
    Ok(SocialLot {
        auction_id: uuid(Some(row.try_get("auction_id")?))?.unwrap_or_default(),
        number: row.try_get::<Option<i64>, _>("number")?.and_then(|number| u32::try_from(number).ok()),
        title: row.try_get("title")?,
        post_id: row.try_get("post_id")?,
        since_id: row.try_get("since_id")?,
        open: row.try_get::<i64, _>("open")? != 0,
        high_post_id: row.try_get("high_post_id")?,
        high_bidder: row.try_get("high_bidder")?,
        standings_at: millis_to_time(row.try_get("standings_at_ms")?)?,
    })
}

/// Implements `SocialStorage` for a storage type with a `pool` field.
macro_rules! social_storage {
    ($storage:ty, $database:ty) => {
        #[async_trait::async_trait]
        impl crate::storage::SocialStorage for $storage {
            async fn insert_post(&self, post: &crate::storage::SocialPost) -> Result<bool, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO social_posts ({}) ",
                    crate::storage::social_sql::POST_COLUMNS
                ));
                sql.push_values([post], |mut row, post| {
                    row.push_bind(post.post_id.clone())
                        .push_bind(post.author_id.clone())
                        .push_bind(post.author_handle.clone())
                        .push_bind(post.text.clone())
                        .push_bind(post.created_at.timestamp_millis())
                        .push_bind(post.received_at.timestamp_millis())
                        .push_bind(post.conversation_id.clone())
                        .push_bind(i64::from(post.summons))
                        .push_bind(post.state.as_str())
                        .push_bind(post.auction_id.map(|id| id.to_string()))
                        .push_bind(post.outcome.clone());
                });
                sql.push(" ON CONFLICT (post_id) DO NOTHING");
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn social_post(&self, post_id: &str) -> Result<Option<crate::storage::SocialPost>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM social_posts WHERE post_id = ",
                    crate::storage::social_sql::POST_COLUMNS
                ));
                sql.push_bind(post_id.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(crate::storage::social_sql::post_from).transpose()
            }

            async fn undecided_posts(&self, limit: u32) -> Result<Vec<crate::storage::SocialPost>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM social_posts WHERE state = 'received' ORDER BY created_at_ms, post_id LIMIT ",
                    crate::storage::social_sql::POST_COLUMNS
                ));
                sql.push_bind(i64::from(limit));
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(crate::storage::social_sql::post_from).collect()
            }

            async fn finish_post(
                &self,
                post_id: &str,
                state: crate::storage::PostState,
                auction_id: Option<uuid::Uuid>,
                outcome: Option<&str>,
            ) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new("UPDATE social_posts SET state = ");
                sql.push_bind(state.as_str())
                    .push(", auction_id = ")
                    .push_bind(auction_id.map(|id| id.to_string()))
                    .push(", outcome = ")
                    .push_bind(outcome.map(str::to_owned))
                    .push(" WHERE post_id = ")
                    .push_bind(post_id.to_owned());
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn post_counts(&self) -> Result<Vec<(String, u64)>, StorageError> {
                use sqlx::Row as _;
                let rows = sqlx::QueryBuilder::<$database>::new(
                    "SELECT state, COUNT(*) AS posts FROM social_posts GROUP BY state",
                )
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| Ok((row.try_get("state")?, u64::try_from(row.try_get::<i64, _>("posts")?).unwrap_or(0))))
                    .collect()
            }

            async fn queue_write(&self, write: &crate::storage::SocialWrite) -> Result<bool, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO social_writes ({}) ",
                    crate::storage::social_sql::WRITE_COLUMNS
                ));
                sql.push_values([write], |mut row, write| {
                    row.push_bind(write.key.clone())
                        .push_bind(write.kind.as_str())
                        .push_bind(write.priority)
                        .push_bind(write.auction_id.map(|id| id.to_string()))
                        .push_bind(write.in_reply_to.clone())
                        .push_bind(write.text.clone())
                        .push_bind(write.state.as_str())
                        .push_bind(write.post_id.clone())
                        .push_bind(write.attempts)
                        .push_bind(write.error.clone())
                        .push_bind(write.created_at.timestamp_millis())
                        .push_bind(write.sent_at.map(|at| at.timestamp_millis()));
                });
                sql.push(" ON CONFLICT (key) DO NOTHING");
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn social_writes(
                &self,
                state: Option<crate::storage::WriteState>,
                auction_id: Option<uuid::Uuid>,
                limit: u32,
            ) -> Result<Vec<crate::storage::SocialWrite>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM social_writes WHERE 1 = 1",
                    crate::storage::social_sql::WRITE_COLUMNS
                ));
                if let Some(state) = state {
                    sql.push(" AND state = ").push_bind(state.as_str());
                }
                if let Some(auction_id) = auction_id {
                    sql.push(" AND auction_id = ").push_bind(auction_id.to_string());
                }
                sql.push(" ORDER BY priority, created_at_ms, key LIMIT ").push_bind(i64::from(limit));
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(crate::storage::social_sql::write_from).collect()
            }

            async fn owed_writes(&self, limit: u32) -> Result<Vec<crate::storage::SocialWrite>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM social_writes WHERE state IN (",
                    crate::storage::social_sql::WRITE_COLUMNS
                ));
                sql.push_bind(crate::storage::WriteState::NotRepliable.as_str())
                    .push(", ")
                    .push_bind(crate::storage::WriteState::Batched.as_str())
                    .push(") AND (error IS NULL OR error <> ")
                    .push_bind(crate::storage::social_sql::ACKNOWLEDGED)
                    .push(") ORDER BY created_at_ms, key LIMIT ")
                    .push_bind(i64::from(limit));
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(crate::storage::social_sql::write_from).collect()
            }

            async fn sent_keys_with_text(&self, text: &str) -> Result<Vec<String>, StorageError> {
                use sqlx::Row as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new("SELECT key FROM social_writes WHERE state = ");
                sql.push_bind(crate::storage::WriteState::Sent.as_str())
                    .push(" AND text = ")
                    .push_bind(text.to_owned())
                    .push(" LIMIT 10");
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(|row| row.try_get::<String, _>("key").map_err(StorageError::from)).collect()
            }

            async fn finish_write(&self, write: &crate::storage::SocialWrite) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new("UPDATE social_writes SET state = ");
                sql.push_bind(write.state.as_str())
                    .push(", text = ")
                    .push_bind(write.text.clone())
                    .push(", post_id = ")
                    .push_bind(write.post_id.clone())
                    .push(", attempts = ")
                    .push_bind(write.attempts)
                    .push(", error = ")
                    .push_bind(write.error.clone())
                    .push(", sent_at_ms = ")
                    .push_bind(write.sent_at.map(|at| at.timestamp_millis()))
                    .push(" WHERE key = ")
                    .push_bind(write.key.clone());
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn write_counts(&self) -> Result<Vec<(String, String, u64)>, StorageError> {
                use sqlx::Row as _;
                let rows = sqlx::QueryBuilder::<$database>::new(
                    "SELECT kind, state, COUNT(*) AS writes FROM social_writes GROUP BY kind, state",
                )
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter()
                    .map(|row| {
                        Ok((
                            row.try_get("kind")?,
                            row.try_get("state")?,
                            u64::try_from(row.try_get::<i64, _>("writes")?).unwrap_or(0),
                        ))
                    })
                    .collect()
            }

            async fn save_lot(&self, lot: &crate::storage::SocialLot) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO social_lots ({}) ",
                    crate::storage::social_sql::LOT_COLUMNS
                ));
                sql.push_values([lot], |mut row, lot| {
                    row.push_bind(lot.auction_id.to_string())
                        .push_bind(lot.number.map(i64::from))
                        .push_bind(lot.title.clone())
                        .push_bind(lot.post_id.clone())
                        .push_bind(lot.since_id.clone())
                        .push_bind(i64::from(lot.open))
                        .push_bind(lot.high_post_id.clone())
                        .push_bind(lot.high_bidder.clone())
                        .push_bind(lot.standings_at.timestamp_millis());
                });
                sql.push(
                    " ON CONFLICT (auction_id) DO UPDATE SET number = excluded.number, title = excluded.title, \
                     open = excluded.open",
                );
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn update_lot(
                &self,
                auction_id: uuid::Uuid,
                change: &crate::storage::LotChange,
            ) -> Result<(), StorageError> {
                use crate::storage::LotChange;
                let mut sql = sqlx::QueryBuilder::<$database>::new("UPDATE social_lots SET ");
                match change {
                    LotChange::Post(post_id) => {
                        sql.push("post_id = ").push_bind(post_id.clone());
                    }
                    LotChange::Since(since_id) => {
                        sql.push("since_id = ").push_bind(since_id.clone());
                    }
                    LotChange::High { post, bidder } => {
                        sql.push("high_post_id = ")
                            .push_bind(post.clone())
                            .push(", high_bidder = ")
                            .push_bind(bidder.clone());
                    }
                    LotChange::Closed => {
                        sql.push("open = 0");
                    }
                    LotChange::StandingsAt(at) => {
                        sql.push("standings_at_ms = ").push_bind(at.timestamp_millis());
                    }
                }
                sql.push(" WHERE auction_id = ").push_bind(auction_id.to_string());
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn social_lots(&self, open_only: bool) -> Result<Vec<crate::storage::SocialLot>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM social_lots",
                    crate::storage::social_sql::LOT_COLUMNS
                ));
                if open_only {
                    sql.push(" WHERE open = 1");
                }
                sql.push(" ORDER BY standings_at_ms, auction_id");
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(crate::storage::social_sql::lot_from).collect()
            }

            async fn social_lot(&self, auction_id: uuid::Uuid) -> Result<Option<crate::storage::SocialLot>, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM social_lots WHERE auction_id = ",
                    crate::storage::social_sql::LOT_COLUMNS
                ));
                sql.push_bind(auction_id.to_string());
                let row = sql.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(crate::storage::social_sql::lot_from).transpose()
            }

            async fn social_value(&self, key: &str) -> Result<Option<String>, StorageError> {
                use sqlx::Row as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new("SELECT value FROM social_state WHERE key = ");
                sql.push_bind(key.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                Ok(row.map(|row| row.try_get("value")).transpose()?)
            }

            async fn set_social_value(&self, key: &str, value: &str) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new("INSERT INTO social_state (key, value) VALUES (");
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
