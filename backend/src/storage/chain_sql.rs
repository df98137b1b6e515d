//! The chain's tables (wallet-link nonces and links), written once for both
//! databases: TEXT and BIGINT columns, statements built with `QueryBuilder`.
//! Addresses are stored in EIP-55 form, handles as `@name` in lower case.

use chrono::{DateTime, Utc};

use super::StorageError;
use crate::storage::auction_sql::millis_to_time;

/// A nonce given with a link message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NonceRow {
    pub nonce: String,
    pub handle: String,
    pub address: String,
    pub issued_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
}

/// An X handle's wallet, with the signed message that proved it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct WalletLink {
    pub handle: String,
    pub address: String,
    #[serde(skip)]
    pub nonce: String,
    pub message: String,
    pub signature: String,
    pub linked_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

pub(crate) const NONCE_COLUMNS: &str = "nonce, handle, address, issued_at_ms, used_at_ms";
pub(crate) const LINK_COLUMNS: &str =
    "handle, address, nonce, message, signature, linked_at_ms, revoked_at_ms";

pub(crate) trait ChainRow: sqlx::Row
where
    for<'r> &'r str: sqlx::ColumnIndex<Self>,
    for<'r> String: sqlx::Decode<'r, Self::Database> + sqlx::Type<Self::Database>,
    for<'r> i64: sqlx::Decode<'r, Self::Database> + sqlx::Type<Self::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, Self::Database> + sqlx::Type<Self::Database>,
{
    fn nonce(&self) -> Result<NonceRow, StorageError> {
        Ok(NonceRow {
            nonce: self.try_get("nonce")?,
            handle: self.try_get("handle")?,
            address: self.try_get("address")?,
            issued_at: millis_to_time(self.try_get("issued_at_ms")?)?,
            used_at: self.try_get::<Option<i64>, _>("used_at_ms")?.map(millis_to_time).transpose()?,
        })
    }

    fn link(&self) -> Result<WalletLink, StorageError> {
        Ok(WalletLink {
            handle: self.try_get("handle")?,
            address: self.try_get("address")?,
            nonce: self.try_get("nonce")?,
            message: self.try_get("message")?,
            signature: self.try_get("signature")?,
            linked_at: millis_to_time(self.try_get("linked_at_ms")?)?,
            revoked_at: self.try_get::<Option<i64>, _>("revoked_at_ms")?.map(millis_to_time).transpose()?,
        })
    }
}

impl ChainRow for sqlx::sqlite::SqliteRow {}
impl ChainRow for sqlx::postgres::PgRow {}

/// Implements `ChainStorage` for a storage type with a `pool` field.
macro_rules! chain_storage {
    ($storage:ty, $database:ty) => {
        #[async_trait::async_trait]
        impl crate::storage::ChainStorage for $storage {
            async fn add_nonce(&self, nonce: &crate::storage::NonceRow) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO chain_nonces ({}) ",
                    crate::storage::chain_sql::NONCE_COLUMNS
                ));
                sql.push_values([nonce], |mut row, nonce| {
                    row.push_bind(nonce.nonce.clone())
                        .push_bind(nonce.handle.clone())
                        .push_bind(nonce.address.clone())
                        .push_bind(nonce.issued_at.timestamp_millis())
                        .push_bind(nonce.used_at.map(|at| at.timestamp_millis()));
                });
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn nonce(&self, nonce: &str) -> Result<Option<crate::storage::NonceRow>, StorageError> {
                use crate::storage::chain_sql::ChainRow as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM chain_nonces WHERE nonce = ",
                    crate::storage::chain_sql::NONCE_COLUMNS
                ));
                sql.push_bind(nonce.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(|row| row.nonce()).transpose()
            }

            async fn link_wallet(
                &self,
                link: &crate::storage::WalletLink,
                before: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StorageError> {
                let mut tx = self.pool.begin().await?;
                let mut used = sqlx::QueryBuilder::<$database>::new("UPDATE chain_nonces SET used_at_ms = ");
                used.push_bind(link.linked_at.timestamp_millis())
                    .push(" WHERE nonce = ")
                    .push_bind(link.nonce.clone())
                    .push(" AND used_at_ms IS NULL AND issued_at_ms >= ")
                    .push_bind(before.timestamp_millis());
                if used.build().execute(&mut *tx).await?.rows_affected() != 1 {
                    return Ok(false);
                }
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO chain_links ({}) ",
                    crate::storage::chain_sql::LINK_COLUMNS
                ));
                sql.push_values([link], |mut row, link| {
                    row.push_bind(link.handle.clone())
                        .push_bind(link.address.clone())
                        .push_bind(link.nonce.clone())
                        .push_bind(link.message.clone())
                        .push_bind(link.signature.clone())
                        .push_bind(link.linked_at.timestamp_millis())
                        .push_bind(None::<i64>);
                });
                sql.push(
                    " ON CONFLICT (handle) DO UPDATE SET address = excluded.address, nonce = excluded.nonce, \
                     message = excluded.message, signature = excluded.signature, \
                     linked_at_ms = excluded.linked_at_ms, revoked_at_ms = NULL",
                );
                sql.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn wallet_link(
                &self,
                handle: &str,
            ) -> Result<Option<crate::storage::WalletLink>, StorageError> {
                use crate::storage::chain_sql::ChainRow as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM chain_links WHERE handle = ",
                    crate::storage::chain_sql::LINK_COLUMNS
                ));
                sql.push_bind(handle.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(|row| row.link()).transpose()
            }

            async fn revoke_wallet_link(
                &self,
                handle: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new("UPDATE chain_links SET revoked_at_ms = ");
                sql.push_bind(at.timestamp_millis())
                    .push(" WHERE handle = ")
                    .push_bind(handle.to_owned())
                    .push(" AND revoked_at_ms IS NULL");
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn prune_nonces(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StorageError> {
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("DELETE FROM chain_nonces WHERE issued_at_ms < ");
                sql.push_bind(before.timestamp_millis());
                Ok(sql.build().execute(&self.pool).await?.rows_affected())
            }
        }
    };
}
