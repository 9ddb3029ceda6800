//! The queries of the storage interface. SQLite and PostgreSQL both accept
//! this SQL (`$N` parameters, `ON CONFLICT`, `RETURNING`), so one body is
//! stamped out for each backend's pool type by [`impl_store!`]; only the
//! schemas (see `migrations/`) and the connection setup differ.

/// Implements [`totpd_vault::Store`] for `$store`, a struct whose `pool` field
/// is a `sqlx::Pool<$db>`.
macro_rules! impl_store {
    ($store:ty, $db:ty) => {
        #[async_trait::async_trait]
        impl totpd_vault::Store for $store {
            fn pool_status(&self) -> totpd_vault::PoolStatus {
                totpd_vault::PoolStatus {
                    size: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }

            async fn ping(&self) -> Result<(), totpd_vault::StoreError> {
                sqlx::query("SELECT 1")
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(crate::error::classify)
            }

            async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, totpd_vault::StoreError> {
                sqlx::query_scalar::<_, Vec<u8>>("SELECT value FROM meta WHERE name = $1")
                    .bind(name)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(crate::error::classify)
            }

            async fn insert_meta(&self, name: &str, value: &[u8]) -> Result<bool, totpd_vault::StoreError> {
                let done = sqlx::query(
                    "INSERT INTO meta (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
                )
                .bind(name)
                .bind(value)
                .execute(&self.pool)
                .await
                .map_err(crate::error::classify)?;
                Ok(done.rows_affected() == 1)
            }

            async fn account_by_name(
                &self,
                name: &str,
            ) -> Result<Option<totpd_vault::AccountRow>, totpd_vault::StoreError> {
                sqlx::query_as::<_, (uuid::Uuid, String, i64)>(
                    "SELECT id, name, created_at FROM accounts WHERE name = $1",
                )
                .bind(name)
                .fetch_optional(&self.pool)
                .await
                .map(|row| row.map(|(id, name, created_at)| totpd_vault::AccountRow { id, name, created_at }))
                .map_err(crate::error::classify)
            }

            async fn insert_account(
                &self,
                row: &totpd_vault::AccountRow,
            ) -> Result<totpd_vault::AccountRow, totpd_vault::StoreError> {
                sqlx::query(
                    "INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (name) DO NOTHING",
                )
                .bind(row.id)
                .bind(&row.name)
                .bind(row.created_at)
                .execute(&self.pool)
                .await
                .map_err(crate::error::classify)?;
                // Whoever won a concurrent insert, the stored row is the answer.
                self.account_by_name(&row.name).await?.ok_or_else(|| {
                    totpd_vault::StoreError::Corrupt("account vanished after insert".to_owned())
                })
            }

            async fn count_accounts(&self) -> Result<u64, totpd_vault::StoreError> {
                let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
                    .fetch_one(&self.pool)
                    .await
                    .map_err(crate::error::classify)?;
                Ok(u64::try_from(count).unwrap_or(0))
            }

            async fn insert_api_key(&self, row: &totpd_vault::ApiKeyRow) -> Result<(), totpd_vault::StoreError> {
                Self::insert_api_key_query(row)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(crate::error::classify)
            }

            async fn api_key(
                &self,
                key_id: &str,
            ) -> Result<Option<totpd_vault::ApiKeyRow>, totpd_vault::StoreError> {
                sqlx::query_as::<_, (String, uuid::Uuid, Vec<u8>, String, i64, Option<i64>)>(
                    "SELECT key_id, account_id, secret_hash, role, created_at, revoked_at \
                     FROM api_keys WHERE key_id = $1",
                )
                .bind(key_id)
                .fetch_optional(&self.pool)
                .await
                .map(|row| row.map(crate::queries::api_key_row))
                .map_err(crate::error::classify)
            }

            async fn list_api_keys(
                &self,
            ) -> Result<Vec<(totpd_vault::ApiKeyRow, String)>, totpd_vault::StoreError> {
                let rows = sqlx::query_as::<_, (String, uuid::Uuid, Vec<u8>, String, i64, Option<i64>, String)>(
                    "SELECT k.key_id, k.account_id, k.secret_hash, k.role, k.created_at, k.revoked_at, a.name \
                     FROM api_keys k JOIN accounts a ON a.id = k.account_id \
                     ORDER BY k.created_at, k.key_id",
                )
                .fetch_all(&self.pool)
                .await
                .map_err(crate::error::classify)?;
                Ok(rows
                    .into_iter()
                    .map(|(key_id, account_id, hash, role, created_at, revoked_at, name)| {
                        (crate::queries::api_key_row((key_id, account_id, hash, role, created_at, revoked_at)), name)
                    })
                    .collect())
            }

            async fn revoke_api_key(&self, key_id: &str, revoked_at: i64) -> Result<bool, totpd_vault::StoreError> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE key_id = $2 AND revoked_at IS NULL",
                )
                .bind(revoked_at)
                .bind(key_id)
                .execute(&self.pool)
                .await
                .map_err(crate::error::classify)?;
                Ok(done.rows_affected() == 1)
            }

            async fn insert_secret(&self, row: &totpd_vault::SecretRow) -> Result<(), totpd_vault::StoreError> {
                Self::insert_secret_query(row)
                    .execute(&self.pool)
                    .await
                    .map(|_| ())
                    .map_err(crate::error::classify)
            }

            async fn secret(
                &self,
                account_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> Result<Option<totpd_vault::SecretRow>, totpd_vault::StoreError> {
                sqlx::query_as::<_, crate::queries::SecretTuple>(
                    "SELECT id, account_id, label, issuer, algorithm, digits, period, created_at, \
                     key_id, nonce, ciphertext FROM secrets WHERE id = $1 AND account_id = $2",
                )
                .bind(id)
                .bind(account_id)
                .fetch_optional(&self.pool)
                .await
                .map(|row| row.map(crate::queries::secret_row))
                .map_err(crate::error::classify)
            }

            async fn list_secrets(
                &self,
                account_id: uuid::Uuid,
            ) -> Result<Vec<totpd_vault::SecretRow>, totpd_vault::StoreError> {
                sqlx::query_as::<_, crate::queries::SecretTuple>(
                    "SELECT id, account_id, label, issuer, algorithm, digits, period, created_at, \
                     key_id, nonce, ciphertext FROM secrets WHERE account_id = $1 \
                     ORDER BY created_at, id",
                )
                .bind(account_id)
                .fetch_all(&self.pool)
                .await
                .map(|rows| rows.into_iter().map(crate::queries::secret_row).collect())
                .map_err(crate::error::classify)
            }

            async fn delete_secret(
                &self,
                account_id: uuid::Uuid,
                id: uuid::Uuid,
            ) -> Result<bool, totpd_vault::StoreError> {
                let done = sqlx::query("DELETE FROM secrets WHERE id = $1 AND account_id = $2")
                    .bind(id)
                    .bind(account_id)
                    .execute(&self.pool)
                    .await
                    .map_err(crate::error::classify)?;
                Ok(done.rows_affected() == 1)
            }

            async fn is_empty(&self) -> Result<bool, totpd_vault::StoreError> {
                let rows: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM meta) + (SELECT COUNT(*) FROM accounts) \
                     + (SELECT COUNT(*) FROM api_keys) + (SELECT COUNT(*) FROM secrets)",
                )
                .fetch_one(&self.pool)
                .await
                .map_err(crate::error::classify)?;
                Ok(rows == 0)
            }

            async fn dump_meta(&self) -> Result<Vec<(String, Vec<u8>)>, totpd_vault::StoreError> {
                sqlx::query_as("SELECT name, value FROM meta ORDER BY name")
                    .fetch_all(&self.pool)
                    .await
                    .map_err(crate::error::classify)
            }

            async fn dump_accounts(&self) -> Result<Vec<totpd_vault::AccountRow>, totpd_vault::StoreError> {
                sqlx::query_as::<_, (uuid::Uuid, String, i64)>(
                    "SELECT id, name, created_at FROM accounts ORDER BY id",
                )
                .fetch_all(&self.pool)
                .await
                .map(|rows| {
                    rows.into_iter()
                        .map(|(id, name, created_at)| totpd_vault::AccountRow { id, name, created_at })
                        .collect()
                })
                .map_err(crate::error::classify)
            }

            async fn dump_api_keys(&self) -> Result<Vec<totpd_vault::ApiKeyRow>, totpd_vault::StoreError> {
                sqlx::query_as::<_, (String, uuid::Uuid, Vec<u8>, String, i64, Option<i64>)>(
                    "SELECT key_id, account_id, secret_hash, role, created_at, revoked_at \
                     FROM api_keys ORDER BY key_id",
                )
                .fetch_all(&self.pool)
                .await
                .map(|rows| rows.into_iter().map(crate::queries::api_key_row).collect())
                .map_err(crate::error::classify)
            }

            async fn dump_secrets(
                &self,
                after: Option<uuid::Uuid>,
                limit: u32,
            ) -> Result<Vec<totpd_vault::SecretRow>, totpd_vault::StoreError> {
                sqlx::query_as::<_, crate::queries::SecretTuple>(
                    "SELECT id, account_id, label, issuer, algorithm, digits, period, created_at, \
                     key_id, nonce, ciphertext FROM secrets WHERE ($1 IS NULL OR id > $1) \
                     ORDER BY id LIMIT $2",
                )
                .bind(after)
                .bind(i64::from(limit))
                .fetch_all(&self.pool)
                .await
                .map(|rows| rows.into_iter().map(crate::queries::secret_row).collect())
                .map_err(crate::error::classify)
            }

            async fn copy_from(
                &self,
                source: &dyn totpd_vault::Store,
            ) -> Result<totpd_vault::CopyReport, totpd_vault::StoreError> {
                use crate::error::classify;
                let mut report = totpd_vault::CopyReport::default();
                let mut tx = self.pool.begin().await.map_err(classify)?;
                // Checked inside the transaction, so a concurrent writer cannot
                // slip rows in between the check and the copy unnoticed.
                let existing: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM meta) + (SELECT COUNT(*) FROM accounts) \
                     + (SELECT COUNT(*) FROM api_keys) + (SELECT COUNT(*) FROM secrets)",
                )
                .fetch_one(&mut *tx)
                .await
                .map_err(classify)?;
                if existing != 0 {
                    return Err(totpd_vault::StoreError::Conflict(
                        "the target database is not empty".to_owned(),
                    ));
                }
                for (name, value) in source.dump_meta().await? {
                    sqlx::query("INSERT INTO meta (name, value) VALUES ($1, $2)")
                        .bind(&name)
                        .bind(&value)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                    report.meta += 1;
                }
                for account in source.dump_accounts().await? {
                    Self::insert_account_query(&account)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                    report.accounts += 1;
                }
                for key in source.dump_api_keys().await? {
                    Self::insert_api_key_query(&key)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                    report.api_keys += 1;
                }
                let mut after = None;
                loop {
                    let page = source.dump_secrets(after, crate::queries::COPY_PAGE).await?;
                    let Some(last) = page.last() else { break };
                    after = Some(last.id);
                    for secret in &page {
                        Self::insert_secret_query(secret)
                            .execute(&mut *tx)
                            .await
                            .map_err(classify)?;
                        report.secrets += 1;
                    }
                }
                tx.commit().await.map_err(classify)?;
                Ok(report)
            }
        }

        impl $store {
            fn insert_account_query(
                row: &totpd_vault::AccountRow,
            ) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments> {
                sqlx::query("INSERT INTO accounts (id, name, created_at) VALUES ($1, $2, $3)")
                    .bind(row.id)
                    .bind(row.name.as_str())
                    .bind(row.created_at)
            }

            fn insert_api_key_query(
                row: &totpd_vault::ApiKeyRow,
            ) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments> {
                sqlx::query(
                    "INSERT INTO api_keys (key_id, account_id, secret_hash, role, created_at, revoked_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(row.key_id.as_str())
                .bind(row.account_id)
                .bind(row.secret_hash.as_slice())
                .bind(row.role.as_str())
                .bind(row.created_at)
                .bind(row.revoked_at)
            }

            fn insert_secret_query(
                row: &totpd_vault::SecretRow,
            ) -> sqlx::query::Query<'_, $db, <$db as sqlx::Database>::Arguments> {
                sqlx::query(
                    "INSERT INTO secrets (id, account_id, label, issuer, algorithm, digits, period, \
                     created_at, key_id, nonce, ciphertext) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                )
                .bind(row.id)
                .bind(row.account_id)
                .bind(row.label.as_str())
                .bind(row.issuer.as_deref())
                .bind(row.algorithm.as_str())
                .bind(row.digits)
                .bind(row.period)
                .bind(row.created_at)
                .bind(row.key_id.as_str())
                .bind(row.nonce.as_slice())
                .bind(row.ciphertext.as_slice())
            }
        }
    };
}

pub(crate) use impl_store;

/// Rows per page when copying secrets between databases.
pub(crate) const COPY_PAGE: u32 = 1000;

/// The columns of a `secrets` row, in query order.
pub(crate) type SecretTuple = (
    uuid::Uuid,
    uuid::Uuid,
    String,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    String,
    Vec<u8>,
    Vec<u8>,
);

pub(crate) fn secret_row(t: SecretTuple) -> totpd_vault::SecretRow {
    let (
        id,
        account_id,
        label,
        issuer,
        algorithm,
        digits,
        period,
        created_at,
        key_id,
        nonce,
        ciphertext,
    ) = t;
    totpd_vault::SecretRow {
        id,
        account_id,
        label,
        issuer,
        algorithm,
        digits,
        period,
        created_at,
        key_id,
        nonce,
        ciphertext,
    }
}

pub(crate) fn api_key_row(
    t: (String, uuid::Uuid, Vec<u8>, String, i64, Option<i64>),
) -> totpd_vault::ApiKeyRow {
    let (key_id, account_id, secret_hash, role, created_at, revoked_at) = t;
    totpd_vault::ApiKeyRow {
        key_id,
        account_id,
        secret_hash,
        role,
        created_at,
        revoked_at,
    }
}
