//! The scale-out backend: PostgreSQL shared by any number of stateless nodes.

mod copy;

use std::str::FromStr;

use async_trait::async_trait;
use sqlx::Postgres;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};
use totpd_vault::deadline;
use totpd_vault::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, CopyReport, ListCursor, PoolStatus, SealCensus,
    SecretReseal, SecretRow, Snapshot, Store, StoreError,
};
use uuid::Uuid;

use crate::ConnectOptions;
use crate::error::classify;
use crate::migrate::{Migration, pending};
use crate::queries as q;

static MIGRATIONS: [Migration; 3] = [
    Migration {
        version: 1,
        sql: include_str!("../migrations/postgres/0001_init.sql"),
    },
    Migration {
        version: 2,
        sql: include_str!("../migrations/postgres/0002_binding_versions.sql"),
    },
    Migration {
        version: 3,
        sql: include_str!("../migrations/postgres/0003_secret_count.sql"),
    },
];

/// Advisory lock key that serialises migrations of nodes starting together
/// (the ASCII bytes of "totpdmig").
const MIGRATION_LOCK: i64 = 0x746f_7470_646d_6967;

/// The PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

impl PgStore {
    /// Connects to a `postgres://` URL (TLS through its `sslmode` parameter)
    /// and migrates the database.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<PgStore, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid PostgreSQL URL: {e}")))?
            .application_name("totpd");
        let pool = PgPoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(classify)?;
        let store = PgStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // Nodes starting at the same moment queue here; the first applies the
        // steps and the others then find nothing pending.
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *tx)
            .await
            .map_err(classify)?;
        for step in pending(&applied, &MIGRATIONS)? {
            sqlx::raw_sql(step.sql)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            sqlx::query(
                "INSERT INTO schema_migrations (version, applied_at) \
                 VALUES ($1, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT))",
            )
            .bind(step.version)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        }
        tx.commit().await.map_err(classify)
    }
}

/// The columns of a `secrets` row, in query order.
type SecretTuple = (
    Uuid,
    Uuid,
    String,
    Option<String>,
    String,
    i64,
    i64,
    i64,
    String,
    Vec<u8>,
    Vec<u8>,
    i64,
);

/// The columns of an `api_keys` row, in query order.
type ApiKeyTuple = (String, Uuid, Vec<u8>, String, i64, Option<i64>, i64);

fn secret_row(t: SecretTuple) -> SecretRow {
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
        aad_version,
    ) = t;
    SecretRow {
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
        aad_version,
    }
}

fn api_key_row(t: ApiKeyTuple) -> ApiKeyRow {
    let (key_id, account_id, secret_hash, role, created_at, revoked_at, hash_version) = t;
    ApiKeyRow {
        key_id,
        account_id,
        secret_hash,
        hash_version,
        role,
        created_at,
        revoked_at,
    }
}

fn insert_account_query(row: &AccountRow) -> PgQuery<'_> {
    sqlx::query(q::INSERT_ACCOUNT)
        .bind(row.id)
        .bind(row.name.as_str())
        .bind(row.created_at)
}

fn insert_api_key_query(row: &ApiKeyRow) -> PgQuery<'_> {
    sqlx::query(q::INSERT_API_KEY)
        .bind(row.key_id.as_str())
        .bind(row.account_id)
        .bind(row.secret_hash.as_slice())
        .bind(row.role.as_str())
        .bind(row.created_at)
        .bind(row.revoked_at)
        .bind(row.hash_version)
}

fn insert_secret_query(row: &SecretRow) -> PgQuery<'_> {
    sqlx::query(q::INSERT_SECRET)
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
        .bind(row.aad_version)
}

type PgQuery<'q> = sqlx::query::Query<'q, Postgres, PgArguments>;

#[async_trait]
impl Store for PgStore {
    fn pool_status(&self) -> PoolStatus {
        PoolStatus {
            size: self.pool.size(),
            idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
            max: self.pool.options().get_max_connections(),
        }
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query(q::PING)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        sqlx::query_scalar::<_, Vec<u8>>(q::GET_META)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn insert_meta(&self, name: &str, value: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query(q::INSERT_META_IF_ABSENT)
            .bind(name)
            .bind(value)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<AccountRow>, StoreError> {
        sqlx::query_as::<_, (Uuid, String, i64)>(q::ACCOUNT_BY_NAME)
            .bind(name)
            .fetch_optional(&self.pool)
            .await
            .map(|row| {
                row.map(|(id, name, created_at)| AccountRow {
                    id,
                    name,
                    created_at,
                })
            })
            .map_err(classify)
    }

    async fn insert_account(&self, row: &AccountRow) -> Result<AccountRow, StoreError> {
        sqlx::query(q::INSERT_ACCOUNT_IF_ABSENT)
            .bind(row.id)
            .bind(&row.name)
            .bind(row.created_at)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        // Whoever won a concurrent insert, the stored row is the answer.
        self.account_by_name(&row.name)
            .await?
            .ok_or_else(|| StoreError::Corrupt("account vanished after insert".to_owned()))
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        let count: i64 = sqlx::query_scalar(q::COUNT_ACCOUNTS)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        insert_api_key_query(row)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        sqlx::query_as::<_, ApiKeyTuple>(q::API_KEY)
            .bind(key_id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(api_key_row))
            .map_err(classify)
    }

    async fn list_api_keys(&self) -> Result<Vec<(ApiKeyRow, String)>, StoreError> {
        type Listed = (String, Uuid, Vec<u8>, String, i64, Option<i64>, i64, String);
        let rows = sqlx::query_as::<_, Listed>(q::LIST_API_KEYS)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(rows
            .into_iter()
            .map(
                |(key_id, account_id, hash, role, created_at, revoked_at, version, name)| {
                    let key = (
                        key_id, account_id, hash, role, created_at, revoked_at, version,
                    );
                    (api_key_row(key), name)
                },
            )
            .collect())
    }

    async fn revoke_api_key(&self, key_id: &str, revoked_at: i64) -> Result<bool, StoreError> {
        let done = sqlx::query(q::REVOKE_API_KEY)
            .bind(revoked_at)
            .bind(key_id)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn upgrade_api_key_hash(&self, upgrade: &ApiKeyHashUpgrade) -> Result<bool, StoreError> {
        let done = sqlx::query(q::UPGRADE_API_KEY_HASH)
            .bind(upgrade.new_hash.as_slice())
            .bind(upgrade.new_version)
            .bind(upgrade.key_id.as_str())
            .bind(upgrade.old_hash.as_slice())
            .bind(upgrade.old_version)
            .bind(upgrade.account_id)
            .bind(upgrade.role.as_str())
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn insert_secret(&self, row: &SecretRow) -> Result<(), StoreError> {
        insert_secret_query(row)
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn secret(&self, account_id: Uuid, id: Uuid) -> Result<Option<SecretRow>, StoreError> {
        sqlx::query_as::<_, SecretTuple>(q::SECRET)
            .bind(id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await
            .map(|row| row.map(secret_row))
            .map_err(classify)
    }

    async fn insert_secret_within_quota(
        &self,
        row: &SecretRow,
        max: u64,
    ) -> Result<(), StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // The account's row lock serialises creates into one account (on
        // every node) from here to the commit, so the count cannot change
        // between the check and the insert; the trigger counts the insert.
        let held: Option<i64> = sqlx::query_scalar(LOCK_SECRET_COUNT)
            .bind(row.account_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        if held.is_some_and(|n| u64::try_from(n).unwrap_or(0) >= max) {
            tx.rollback().await.map_err(classify)?;
            return Err(StoreError::QuotaExceeded { limit: max });
        }
        insert_secret_query(row)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        commit_unless_abandoned(tx).await
    }

    async fn list_secrets_page(
        &self,
        account_id: Uuid,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        let query = match after {
            None => sqlx::query_as::<_, SecretTuple>(q::LIST_SECRETS_FIRST).bind(account_id),
            Some(after) => sqlx::query_as::<_, SecretTuple>(q::LIST_SECRETS_AFTER)
                .bind(account_id)
                .bind(after.created_at)
                .bind(after.id),
        };
        query
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(secret_row).collect())
            .map_err(classify)
    }

    async fn delete_secret(&self, account_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        // In a transaction of its own, so that a delete still waiting (on a
        // lock, say) when its request times out is rolled back, not
        // committed behind the 503.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let done = sqlx::query(q::DELETE_SECRET)
            .bind(id)
            .bind(account_id)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        commit_unless_abandoned(tx).await?;
        Ok(done.rows_affected() == 1)
    }

    async fn reseal_secrets(&self, reseals: &[SecretReseal]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut changed = 0_u64;
        for r in reseals {
            let done = sqlx::query(q::RESEAL_SECRET)
                .bind(r.key_id.as_str())
                .bind(r.nonce.as_slice())
                .bind(r.ciphertext.as_slice())
                .bind(r.aad_version)
                .bind(r.id)
                .bind(r.account_id)
                .bind(r.old_key_id.as_str())
                .bind(r.old_nonce.as_slice())
                .bind(r.old_ciphertext.as_slice())
                .bind(r.old_aad_version)
                .bind(r.algorithm.as_str())
                .bind(r.digits)
                .bind(r.period)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            changed += done.rows_affected();
        }
        tx.commit().await.map_err(classify)?;
        Ok(changed)
    }

    async fn replace_meta(&self, name: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        let done = sqlx::query(q::REPLACE_META)
            .bind(new)
            .bind(name)
            .bind(old)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected() == 1)
    }

    async fn seal_census(&self) -> Result<SealCensus, StoreError> {
        let count = |n: i64| u64::try_from(n).unwrap_or(0);
        let secrets: Vec<(String, i64, i64)> = sqlx::query_as(q::COUNT_SECRETS_BY_SEAL)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        let api_keys: Vec<(i64, i64)> = sqlx::query_as(q::COUNT_API_KEYS_BY_HASH)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        Ok(SealCensus {
            secrets: secrets
                .into_iter()
                .map(|(key, version, n)| (key, version, count(n)))
                .collect(),
            api_keys: api_keys.into_iter().map(|(v, n)| (v, count(n))).collect(),
        })
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let any: bool = sqlx::query_scalar(q::HAS_ANY_ROW)
            .fetch_one(&self.pool)
            .await
            .map_err(classify)?;
        Ok(!any)
    }

    /// See `copy::PgSnapshot`: one `REPEATABLE READ READ ONLY`
    /// transaction on a pooled connection.
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, StoreError> {
        Ok(Box::new(copy::PgSnapshot::open(&self.pool).await?))
    }

    /// See `copy::copy`: streamed page by page into one transaction and
    /// verified before it commits, so memory stays at one page of secrets
    /// whatever the source's size.
    async fn copy_from(&self, source: &mut dyn Snapshot) -> Result<CopyReport, StoreError> {
        copy::copy(&self.pool, source).await
    }
}

/// The account's secret count, locking its row until the transaction ends.
const LOCK_SECRET_COUNT: &str = "SELECT secret_count FROM accounts WHERE id = $1 FOR UPDATE";

/// Commits `tx` if its request (if any) may still commit, else rolls it
/// back: see `totpd_vault::deadline`. Until the claim, dropping the request
/// (its timeout) drops `tx`, and an uncommitted transaction never commits.
async fn commit_unless_abandoned(tx: sqlx::Transaction<'_, Postgres>) -> Result<(), StoreError> {
    if deadline::claim_commit() {
        tx.commit().await.map_err(classify)
    } else {
        tx.rollback().await.map_err(classify)?;
        Err(StoreError::Unavailable(
            "the request timed out before its write was committed; nothing was stored".to_owned(),
        ))
    }
}
