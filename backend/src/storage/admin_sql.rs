//! The console's tables (accounts, sessions, audit trail, block list, settings
//! changed while running), written once for both databases: TEXT and BIGINT
//! columns, statements built with `QueryBuilder`.

use chrono::{DateTime, Utc};

use super::StorageError;
use crate::storage::auction_sql::millis_to_time;

/// A local console account. The hash is an Argon2id PHC string, never the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    pub username: String,
    /// `admin`, `operator` or `viewer`.
    pub role: String,
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter
            .debug_struct("Account")
            .field("username", &self.username)
            .field("role", &self.role)
            .finish_non_exhaustive()
    }
}

/// A signed-in browser, found by the SHA-256 of its cookie's secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    pub id_hash: String,
    pub username: String,
    pub role: String,
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub revoked_at: Option<DateTime<Utc>>,
}

/// One write through an API.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: DateTime<Utc>,
    /// The account or token subject; `None` for an anonymous caller.
    pub account: Option<String>,
    pub role: Option<String>,
    /// `session`, `token` or `anonymous`.
    pub via: String,
    pub method: String,
    pub path: String,
    pub status: u16,
    /// What changed, when the handler said (never a secret).
    pub note: String,
}

/// A bidder refused `BIDDER_BLOCKED`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BlockEntry {
    /// A bidder id or an `@handle`, lower case.
    pub entry: String,
    pub reason: String,
    pub added_by: String,
    pub added_at: DateTime<Utc>,
}

/// A setting changed while running.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RuntimeSetting {
    pub name: String,
    pub value: String,
    pub changed_by: String,
    pub changed_at: DateTime<Utc>,
}

pub(crate) const ACCOUNT_COLUMNS: &str = "username, role, password_hash, created_at_ms";
pub(crate) const SESSION_COLUMNS: &str =
    "id_hash, username, role, csrf, created_at_ms, last_seen_at_ms, revoked_at_ms";
pub(crate) const AUDIT_COLUMNS: &str = "id, at_ms, account, role, via, method, path, status, note";
pub(crate) const BLOCK_COLUMNS: &str = "entry, reason, added_by, added_at_ms";
pub(crate) const SETTING_COLUMNS: &str = "name, value, changed_by, changed_at_ms";

/// The bounds every row reader here needs.
pub(crate) trait AdminRow: sqlx::Row
where
    for<'r> &'r str: sqlx::ColumnIndex<Self>,
    for<'r> String: sqlx::Decode<'r, Self::Database> + sqlx::Type<Self::Database>,
    for<'r> Option<String>: sqlx::Decode<'r, Self::Database> + sqlx::Type<Self::Database>,
    for<'r> i64: sqlx::Decode<'r, Self::Database> + sqlx::Type<Self::Database>,
    for<'r> Option<i64>: sqlx::Decode<'r, Self::Database> + sqlx::Type<Self::Database>,
{
    fn account(&self) -> Result<Account, StorageError> {
        Ok(Account {
            username: self.try_get("username")?,
            role: self.try_get("role")?,
            password_hash: self.try_get("password_hash")?,
            created_at: millis_to_time(self.try_get("created_at_ms")?)?,
        })
    }

    fn session(&self) -> Result<SessionRow, StorageError> {
        Ok(SessionRow {
            id_hash: self.try_get("id_hash")?,
            username: self.try_get("username")?,
            role: self.try_get("role")?,
            csrf: self.try_get("csrf")?,
            created_at: millis_to_time(self.try_get("created_at_ms")?)?,
            last_seen_at: millis_to_time(self.try_get("last_seen_at_ms")?)?,
            revoked_at: self.try_get::<Option<i64>, _>("revoked_at_ms")?.map(millis_to_time).transpose()?,
        })
    }

    fn audit(&self) -> Result<AuditEntry, StorageError> {
        Ok(AuditEntry {
            id: self.try_get("id")?,
            at: millis_to_time(self.try_get("at_ms")?)?,
            account: self.try_get("account")?,
            role: self.try_get("role")?,
            via: self.try_get("via")?,
            method: self.try_get("method")?,
            path: self.try_get("path")?,
            status: u16::try_from(self.try_get::<i64, _>("status")?).unwrap_or(0),
            note: self.try_get("note")?,
        })
    }

    fn block(&self) -> Result<BlockEntry, StorageError> {
        Ok(BlockEntry {
            entry: self.try_get("entry")?,
            reason: self.try_get("reason")?,
            added_by: self.try_get("added_by")?,
            added_at: millis_to_time(self.try_get("added_at_ms")?)?,
        })
    }

    fn setting(&self) -> Result<RuntimeSetting, StorageError> {
        Ok(RuntimeSetting {
            name: self.try_get("name")?,
            value: self.try_get("value")?,
            changed_by: self.try_get("changed_by")?,
            changed_at: millis_to_time(self.try_get("changed_at_ms")?)?,
        })
    }
}

impl AdminRow for sqlx::sqlite::SqliteRow {}
impl AdminRow for sqlx::postgres::PgRow {}

/// Implements `AdminStorage` for a storage type with a `pool` field.
macro_rules! admin_storage {
    ($storage:ty, $database:ty) => {
        #[async_trait::async_trait]
        impl crate::storage::AdminStorage for $storage {
            async fn add_account(&self, account: &crate::storage::Account) -> Result<bool, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO admin_accounts ({}) ",
                    crate::storage::admin_sql::ACCOUNT_COLUMNS
                ));
                sql.push_values([account], |mut row, account| {
                    row.push_bind(account.username.clone())
                        .push_bind(account.role.clone())
                        .push_bind(account.password_hash.clone())
                        .push_bind(account.created_at.timestamp_millis());
                });
                sql.push(" ON CONFLICT (username) DO NOTHING");
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn account(&self, username: &str) -> Result<Option<crate::storage::Account>, StorageError> {
                use crate::storage::admin_sql::AdminRow as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM admin_accounts WHERE username = ",
                    crate::storage::admin_sql::ACCOUNT_COLUMNS
                ));
                sql.push_bind(username.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(|row| row.account()).transpose()
            }

            async fn accounts(&self) -> Result<Vec<crate::storage::Account>, StorageError> {
                use crate::storage::admin_sql::AdminRow as _;
                let rows = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM admin_accounts ORDER BY username",
                    crate::storage::admin_sql::ACCOUNT_COLUMNS
                ))
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| row.account()).collect()
            }

            async fn remove_account(
                &self,
                username: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StorageError> {
                let mut tx = self.pool.begin().await?;
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("DELETE FROM admin_accounts WHERE username = ");
                sql.push_bind(username.to_owned());
                let removed = sql.build().execute(&mut *tx).await?.rows_affected() == 1;
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("UPDATE admin_sessions SET revoked_at_ms = ");
                sql.push_bind(at.timestamp_millis())
                    .push(" WHERE revoked_at_ms IS NULL AND username = ")
                    .push_bind(username.to_owned());
                sql.build().execute(&mut *tx).await?;
                tx.commit().await?;
                Ok(removed)
            }

            async fn set_password(&self, username: &str, password_hash: &str) -> Result<bool, StorageError> {
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("UPDATE admin_accounts SET password_hash = ");
                sql.push_bind(password_hash.to_owned())
                    .push(" WHERE username = ")
                    .push_bind(username.to_owned());
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn add_session(&self, session: &crate::storage::SessionRow) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO admin_sessions ({}) ",
                    crate::storage::admin_sql::SESSION_COLUMNS
                ));
                sql.push_values([session], |mut row, session| {
                    row.push_bind(session.id_hash.clone())
                        .push_bind(session.username.clone())
                        .push_bind(session.role.clone())
                        .push_bind(session.csrf.clone())
                        .push_bind(session.created_at.timestamp_millis())
                        .push_bind(session.last_seen_at.timestamp_millis())
                        .push_bind(session.revoked_at.map(|at| at.timestamp_millis()));
                });
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn session(
                &self,
                id_hash: &str,
            ) -> Result<Option<crate::storage::SessionRow>, StorageError> {
                use crate::storage::admin_sql::AdminRow as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM admin_sessions WHERE id_hash = ",
                    crate::storage::admin_sql::SESSION_COLUMNS
                ));
                sql.push_bind(id_hash.to_owned());
                let row = sql.build().fetch_optional(&self.pool).await?;
                row.as_ref().map(|row| row.session()).transpose()
            }

            async fn touch_session(
                &self,
                id_hash: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StorageError> {
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("UPDATE admin_sessions SET last_seen_at_ms = ");
                sql.push_bind(at.timestamp_millis()).push(" WHERE id_hash = ").push_bind(id_hash.to_owned());
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn revoke_session(
                &self,
                id_hash: &str,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<bool, StorageError> {
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("UPDATE admin_sessions SET revoked_at_ms = ");
                sql.push_bind(at.timestamp_millis())
                    .push(" WHERE revoked_at_ms IS NULL AND id_hash = ")
                    .push_bind(id_hash.to_owned());
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn revoke_sessions_of(
                &self,
                username: &str,
                except: Option<&str>,
                at: chrono::DateTime<chrono::Utc>,
            ) -> Result<u64, StorageError> {
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("UPDATE admin_sessions SET revoked_at_ms = ");
                sql.push_bind(at.timestamp_millis())
                    .push(" WHERE revoked_at_ms IS NULL AND username = ")
                    .push_bind(username.to_owned());
                if let Some(except) = except {
                    sql.push(" AND id_hash <> ").push_bind(except.to_owned());
                }
                Ok(sql.build().execute(&self.pool).await?.rows_affected())
            }

            async fn add_audit(&self, entry: &crate::storage::AuditEntry) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO admin_audit ({}) ",
                    crate::storage::admin_sql::AUDIT_COLUMNS
                ));
                sql.push_values([entry], |mut row, entry| {
                    row.push_bind(entry.id.clone())
                        .push_bind(entry.at.timestamp_millis())
                        .push_bind(entry.account.clone())
                        .push_bind(entry.role.clone())
                        .push_bind(entry.via.clone())
                        .push_bind(entry.method.clone())
                        .push_bind(entry.path.clone())
                        .push_bind(i64::from(entry.status))
                        .push_bind(entry.note.clone());
                });
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn audit(
                &self,
                before: Option<chrono::DateTime<chrono::Utc>>,
                limit: u32,
            ) -> Result<Vec<crate::storage::AuditEntry>, StorageError> {
                use crate::storage::admin_sql::AdminRow as _;
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM admin_audit",
                    crate::storage::admin_sql::AUDIT_COLUMNS
                ));
                if let Some(before) = before {
                    sql.push(" WHERE at_ms < ").push_bind(before.timestamp_millis());
                }
                sql.push(" ORDER BY at_ms DESC, id DESC LIMIT ").push_bind(i64::from(limit));
                let rows = sql.build().fetch_all(&self.pool).await?;
                rows.iter().map(|row| row.audit()).collect()
            }

            async fn block_bidder(&self, entry: &crate::storage::BlockEntry) -> Result<bool, StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO blocked_bidders ({}) ",
                    crate::storage::admin_sql::BLOCK_COLUMNS
                ));
                sql.push_values([entry], |mut row, entry| {
                    row.push_bind(entry.entry.clone())
                        .push_bind(entry.reason.clone())
                        .push_bind(entry.added_by.clone())
                        .push_bind(entry.added_at.timestamp_millis());
                });
                sql.push(" ON CONFLICT (entry) DO NOTHING");
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn unblock_bidder(&self, entry: &str) -> Result<bool, StorageError> {
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("DELETE FROM blocked_bidders WHERE entry = ");
                sql.push_bind(entry.to_owned());
                Ok(sql.build().execute(&self.pool).await?.rows_affected() == 1)
            }

            async fn blocked_bidders(&self) -> Result<Vec<crate::storage::BlockEntry>, StorageError> {
                use crate::storage::admin_sql::AdminRow as _;
                let rows = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM blocked_bidders ORDER BY entry",
                    crate::storage::admin_sql::BLOCK_COLUMNS
                ))
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| row.block()).collect()
            }

            async fn set_runtime_setting(
                &self,
                setting: &crate::storage::RuntimeSetting,
            ) -> Result<(), StorageError> {
                let mut sql = sqlx::QueryBuilder::<$database>::new(format!(
                    "INSERT INTO runtime_settings ({}) ",
                    crate::storage::admin_sql::SETTING_COLUMNS
                ));
                sql.push_values([setting], |mut row, setting| {
                    row.push_bind(setting.name.clone())
                        .push_bind(setting.value.clone())
                        .push_bind(setting.changed_by.clone())
                        .push_bind(setting.changed_at.timestamp_millis());
                });
                sql.push(
                    " ON CONFLICT (name) DO UPDATE SET value = excluded.value, \
                     changed_by = excluded.changed_by, changed_at_ms = excluded.changed_at_ms",
                );
                sql.build().execute(&self.pool).await?;
                Ok(())
            }

            async fn runtime_settings(&self) -> Result<Vec<crate::storage::RuntimeSetting>, StorageError> {
                use crate::storage::admin_sql::AdminRow as _;
                let rows = sqlx::QueryBuilder::<$database>::new(format!(
                    "SELECT {} FROM runtime_settings ORDER BY name",
                    crate::storage::admin_sql::SETTING_COLUMNS
                ))
                .build()
                .fetch_all(&self.pool)
                .await?;
                rows.iter().map(|row| row.setting()).collect()
            }

            async fn prune_events(&self, before: chrono::DateTime<chrono::Utc>) -> Result<u64, StorageError> {
                let mut sql =
                    sqlx::QueryBuilder::<$database>::new("DELETE FROM events WHERE timestamp_ms < ");
                sql.push_bind(before.timestamp_millis()).push(" AND seq NOT IN (SELECT seq FROM outbox)");
                Ok(sql.build().execute(&self.pool).await?.rows_affected())
            }
        }
    };
}
