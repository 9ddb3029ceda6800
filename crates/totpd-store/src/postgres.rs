//! The scale-out backend: PostgreSQL shared by any number of stateless nodes.

mod copy;

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::LazyLock;

use async_trait::async_trait;
use sqlx::postgres::{PgArguments, PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::{FromRow as _, Postgres, Row as _};
use totpd_vault::deadline;
use totpd_vault::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, AuditQuery, AuditRecord, AuditRow, CopyReport,
    ListCursor, PoolStatus, SealCensus, SecretReseal, SecretRow, SecretUpdate, Snapshot, Store,
    StoreError,
};
use uuid::Uuid;

use crate::ConnectOptions;
use crate::error::classify;
use crate::queries as q;
use crate::schema::{self, Executor, Migration};
use crate::scope_text;
use crate::tables::HAS_ANY_ROW;

/// Moves many keys' `last_used_at` forward in one statement (never back).
const RECORD_API_KEY_USES: &str = "UPDATE api_keys k SET last_used_at = u.used_at \
     FROM UNNEST($1::text[], $2::bigint[]) AS u (key_id, used_at) \
     WHERE k.key_id = u.key_id AND (k.last_used_at IS NULL OR k.last_used_at < u.used_at)";

/// Advisory lock key that serialises migrations of nodes starting together
/// (the ASCII bytes of "totpdmig").
const MIGRATION_LOCK: i64 = 0x746f_7470_646d_6967;

/// The PostgreSQL backend.
#[derive(Debug, Clone)]
pub struct PgStore {
    pool: PgPool,
}

/// `change` (a statement that changes at most one row and returns `v`)
/// followed, only when it changed a row, by the insert of an audit event
/// whose fields are bound from `$first` on: one statement, so one round
/// trip and one commit for the change and its record, and neither without
/// the other.
fn audited(change: &str, first: usize) -> String {
    const TYPES: [&str; 10] = [
        "BIGINT", "UUID", "TEXT", "TEXT", "TEXT", "TEXT", "UUID", "TEXT", "TEXT", "TEXT",
    ];
    let values: Vec<String> = TYPES
        .iter()
        .enumerate()
        .map(|(i, ty)| format!("${}::{ty}", first + i))
        .collect();
    format!(
        "WITH changed AS ({change}), recorded AS (INSERT INTO audit_events \
         (at, account_id, action, outcome, key_id, role, secret_id, remote_addr, user_agent, \
         request_id) SELECT {} FROM changed) SELECT v FROM changed",
        values.join(", ")
    )
}

static AUDITED_INSERT_SECRET: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{} RETURNING 1 AS v", q::INSERT_SECRET), 21));
static AUDITED_TAKE_HOTP_COUNTER: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{} AS v", q::TAKE_HOTP_COUNTER), 3));
static AUDITED_ACCEPT_TOTP_STEP: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{} RETURNING 1 AS v", q::ACCEPT_TOTP_STEP), 4));
static AUDITED_ACCEPT_HOTP_COUNTER: LazyLock<String> =
    LazyLock::new(|| audited(&format!("{} RETURNING 1 AS v", q::ACCEPT_HOTP_COUNTER), 4));

/// Binds an audit event's fields, in [`audited`]'s order.
fn bind_record<'q>(query: PgQuery<'q>, r: &'q AuditRecord) -> PgQuery<'q> {
    query
        .bind(r.at)
        .bind(r.account_id)
        .bind(r.action.as_str())
        .bind(r.outcome.as_str())
        .bind(r.key_id.as_deref())
        .bind(r.role.as_deref())
        .bind(r.secret_id)
        .bind(r.remote_addr.as_deref())
        .bind(r.user_agent.as_deref())
        .bind(r.request_id.as_deref())
}

impl PgStore {
    /// Runs a compare-and-set statement on one secret (`$1` the new value,
    /// `$2` the id, `$3` the account, an [`audited`] statement) with
    /// `record` written along when it changed the row: whether it did.
    async fn compare_and_set(
        &self,
        statement: &'static LazyLock<String>,
        value: i64,
        account_id: Uuid,
        id: Uuid,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let query = sqlx::query(statement.as_str())
            .bind(value)
            .bind(id)
            .bind(account_id);
        let changed = bind_record(query, record)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?;
        Ok(changed.is_some())
    }

    /// Connects to a `postgres://` URL (TLS through its `sslmode` parameter)
    /// and migrates the database.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<PgStore, StoreError> {
        let connect = PgConnectOptions::from_str(url)
            .map_err(|e| StoreError::other("invalid PostgreSQL URL", e))?
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
        schema::run(&mut PgMigrations(&mut tx), schema::POSTGRES).await?;
        tx.commit().await.map_err(classify)
    }
}

/// The schema runner's executor: the migrating transaction.
struct PgMigrations<'a>(&'a mut sqlx::PgConnection);

impl Executor for PgMigrations<'_> {
    async fn applied(&mut self) -> Result<Vec<i64>, StoreError> {
        sqlx::raw_sql(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL)",
        )
        .execute(&mut *self.0)
        .await
        .map_err(classify)?;
        sqlx::query_scalar("SELECT version FROM schema_migrations")
            .fetch_all(&mut *self.0)
            .await
            .map_err(classify)
    }

    async fn apply(&mut self, step: &Migration) -> Result<(), StoreError> {
        sqlx::raw_sql(step.sql)
            .execute(&mut *self.0)
            .await
            .map_err(classify)?;
        sqlx::query(
            "INSERT INTO schema_migrations (version, applied_at) \
             VALUES ($1, CAST(EXTRACT(EPOCH FROM now()) AS BIGINT))",
        )
        .bind(step.version)
        .execute(&mut *self.0)
        .await
        .map_err(classify)
        .map(drop)
    }
}

/// A `secrets` row read in query order (more columns than sqlx's tuples
/// take).
pub(crate) struct SecretTuple(SecretRow);

impl sqlx::FromRow<'_, sqlx::postgres::PgRow> for SecretTuple {
    fn from_row(r: &sqlx::postgres::PgRow) -> Result<Self, sqlx::Error> {
        Ok(SecretTuple(SecretRow {
            id: r.try_get(0)?,
            account_id: r.try_get(1)?,
            label: r.try_get(2)?,
            issuer: r.try_get(3)?,
            algorithm: r.try_get(4)?,
            digits: r.try_get(5)?,
            period: r.try_get(6)?,
            created_at: r.try_get(7)?,
            sealed_by: r.try_get(8)?,
            nonce: r.try_get(9)?,
            ciphertext: r.try_get(10)?,
            aad_version: r.try_get(11)?,
            otp_type: r.try_get(12)?,
            counter: r.try_get(13)?,
            skew: r.try_get(14)?,
            hotp_window: r.try_get(15)?,
            last_step: r.try_get(16)?,
            failed_verifies: r.try_get(17)?,
            failed_since: r.try_get(18)?,
            fingerprint: r.try_get(19)?,
        }))
    }
}

/// The columns of an `api_keys` row, in query order.
pub(crate) type ApiKeyTuple = (
    String,
    Uuid,
    Vec<u8>,
    String,
    i64,
    Option<i64>,
    i64,
    String,
    Option<String>,
    Option<i64>,
    Option<i64>,
);

fn secret_row(t: SecretTuple) -> SecretRow {
    t.0
}

fn api_key_row(t: ApiKeyTuple) -> Result<ApiKeyRow, StoreError> {
    let (
        key_id,
        account_id,
        secret_hash,
        role,
        created_at,
        revoked_at,
        hash_version,
        name,
        secret_ids,
        expires_at,
        last_used_at,
    ) = t;
    Ok(ApiKeyRow {
        secret_ids: scope_text::decode(secret_ids.as_deref())
            .map_err(|why| StoreError::corrupt_msg(why.to_owned()))?,
        key_id,
        account_id,
        secret_hash,
        hash_version,
        role,
        created_at,
        revoked_at,
        name,
        expires_at,
        last_used_at,
    })
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
        .bind(row.name.as_str())
        .bind(scope_text::encode(row.secret_ids.as_deref()))
        .bind(row.expires_at)
        .bind(row.last_used_at)
}

fn insert_secret_query(row: &SecretRow) -> PgQuery<'_> {
    insert_secret_with(q::INSERT_SECRET, row)
}

/// `statement` (an insert of one secret, `$1` to `$20`) bound to `row`.
fn insert_secret_with<'q>(statement: &'static str, row: &'q SecretRow) -> PgQuery<'q> {
    sqlx::query(statement)
        .bind(row.id)
        .bind(row.account_id)
        .bind(row.label.as_str())
        .bind(row.issuer.as_deref())
        .bind(row.algorithm.as_str())
        .bind(row.digits)
        .bind(row.period)
        .bind(row.created_at)
        .bind(row.sealed_by.as_str())
        .bind(row.nonce.as_slice())
        .bind(row.ciphertext.as_slice())
        .bind(row.aad_version)
        .bind(row.otp_type.as_str())
        .bind(row.counter)
        .bind(row.skew)
        .bind(row.hotp_window)
        .bind(row.last_step)
        .bind(row.failed_verifies)
        .bind(row.failed_since)
        .bind(row.fingerprint.as_deref())
}

/// The columns of an `audit_events` row, in query order.
type AuditTuple = (
    i64,
    i64,
    Option<Uuid>,
    String,
    String,
    Option<String>,
    Option<String>,
    Option<Uuid>,
    Option<String>,
    Option<String>,
    Option<String>,
);

fn audit_row(t: AuditTuple) -> AuditRow {
    let (
        id,
        at,
        account_id,
        action,
        outcome,
        key_id,
        role,
        secret_id,
        remote_addr,
        user_agent,
        request_id,
    ) = t;
    AuditRow {
        id,
        record: AuditRecord {
            at,
            account_id,
            action,
            outcome,
            key_id,
            role,
            secret_id,
            remote_addr,
            user_agent,
            request_id,
        },
    }
}

fn copy_audit_query(row: &AuditRow) -> PgQuery<'_> {
    bind_record(sqlx::query(q::COPY_AUDIT).bind(row.id), &row.record)
}

/// Appends a batch of audit events with one statement (so one round trip
/// and one commit whatever the batch's size), in order.
const APPEND_AUDIT: &str = "INSERT INTO audit_events \
     (at, account_id, action, outcome, key_id, role, secret_id, remote_addr, user_agent, \
     request_id) \
     SELECT at, account_id, action, outcome, key_id, role, secret_id, remote_addr, \
     user_agent, request_id FROM UNNEST($1::BIGINT[], $2::UUID[], $3::TEXT[], $4::TEXT[], $5::TEXT[], \
     $6::TEXT[], $7::UUID[], $8::TEXT[], $9::TEXT[], $10::TEXT[]) WITH ORDINALITY AS e \
     (at, account_id, action, outcome, key_id, role, secret_id, remote_addr, user_agent, \
     request_id, n) ORDER BY n";

impl PgStore {
    /// A page of audit events, of one account or of all.
    async fn audit_page(
        &self,
        account_id: Option<Uuid>,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let (sql, params) = q::audit_query(account_id, query);
        // Built only from fixed fragments and `$N` placeholders: no input is
        // ever part of the text.
        let mut statement = sqlx::query_as::<_, AuditTuple>(sqlx::AssertSqlSafe(sql));
        for param in params {
            statement = match param {
                q::AuditParam::Uuid(id) => statement.bind(id),
                q::AuditParam::Text(text) => statement.bind(text),
                q::AuditParam::Int(n) => statement.bind(n),
            };
        }
        statement
            .fetch_all(&self.pool)
            .await
            .map(|rows| rows.into_iter().map(audit_row).collect())
            .map_err(classify)
    }
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
            .ok_or_else(|| StoreError::corrupt_msg("account vanished after insert".to_owned()))
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
            .map_err(classify)?
            .map(api_key_row)
            .transpose()
    }

    async fn list_api_keys(&self) -> Result<Vec<(ApiKeyRow, String)>, StoreError> {
        let rows = sqlx::query(q::LIST_API_KEYS)
            .fetch_all(&self.pool)
            .await
            .map_err(classify)?;
        rows.iter()
            .map(|row| {
                let key = ApiKeyTuple::from_row(row).map_err(classify)?;
                let name: String = row.try_get(11).map_err(classify)?;
                Ok((api_key_row(key)?, name))
            })
            .collect()
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

    async fn record_api_key_uses(&self, uses: &[(String, i64)]) -> Result<u64, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        let (key_ids, times): (Vec<&str>, Vec<i64>) =
            uses.iter().map(|(k, t)| (k.as_str(), *t)).unzip();
        let done = sqlx::query(RECORD_API_KEY_USES)
            .bind(key_ids)
            .bind(times)
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
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
        record: &AuditRecord,
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
        bind_record(
            insert_secret_with(AUDITED_INSERT_SECRET.as_str(), row),
            record,
        )
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
        commit_unless_abandoned(tx).await
    }

    async fn secrets_by_fingerprint(
        &self,
        account_id: Uuid,
        fingerprints: &[Vec<u8>],
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        let found = secrets_by_fingerprint(&self.pool, account_id, fingerprints).await?;
        Ok(fingerprints
            .iter()
            .map(|fingerprint| found.get(fingerprint).copied())
            .collect())
    }

    async fn import_secrets(
        &self,
        account_id: Uuid,
        rows: &[(SecretRow, AuditRecord)],
        max: u64,
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        // The account's row lock serialises every create and import into
        // the account, on every node, until the commit: no other insert can
        // slip between the duplicate check, the quota check and ours.
        let held: Option<i64> = sqlx::query_scalar(LOCK_SECRET_COUNT)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        let fingerprints: Vec<Vec<u8>> = rows
            .iter()
            .filter_map(|(row, _)| row.fingerprint.clone())
            .collect();
        let found = secrets_by_fingerprint(&mut *tx, account_id, &fingerprints).await?;
        let existing: Vec<Option<Uuid>> = rows
            .iter()
            .map(|(row, _)| {
                row.fingerprint
                    .as_ref()
                    .and_then(|fingerprint| found.get(fingerprint).copied())
            })
            .collect();
        let new = existing.iter().filter(|id| id.is_none()).count();
        let after = u64::try_from(held.unwrap_or(0))
            .unwrap_or(0)
            .saturating_add(u64::try_from(new).unwrap_or(u64::MAX));
        if new > 0 && after > max {
            tx.rollback().await.map_err(classify)?;
            return Err(StoreError::QuotaExceeded { limit: max });
        }
        for ((row, record), found) in rows.iter().zip(&existing) {
            if found.is_none() {
                bind_record(
                    insert_secret_with(AUDITED_INSERT_SECRET.as_str(), row),
                    record,
                )
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
            }
        }
        commit_unless_abandoned(tx).await?;
        Ok(existing)
    }

    async fn set_fingerprints(
        &self,
        account_id: Uuid,
        fingerprints: &[(Uuid, Vec<u8>)],
    ) -> Result<u64, StoreError> {
        if fingerprints.is_empty() {
            return Ok(0);
        }
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut changed = 0;
        for (id, fingerprint) in fingerprints {
            changed += sqlx::query(q::SET_FINGERPRINT)
                .bind(fingerprint.as_slice())
                .bind(id)
                .bind(account_id)
                .execute(&mut *tx)
                .await
                .map_err(classify)?
                .rows_affected();
        }
        commit_unless_abandoned(tx).await?;
        Ok(changed)
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

    async fn update_secret(
        &self,
        account_id: Uuid,
        id: Uuid,
        update: &SecretUpdate,
    ) -> Result<Option<SecretRow>, StoreError> {
        // In a transaction of its own, like a delete: a change still waiting
        // when its request times out is rolled back, not committed behind
        // the 503.
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let row = sqlx::query_as::<_, SecretTuple>(q::UPDATE_SECRET_LABELS)
            .bind(update.label.as_deref())
            .bind(update.issuer.is_some())
            .bind(update.issuer.clone().flatten())
            .bind(update.skew)
            .bind(id)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await
            .map_err(classify)?;
        commit_unless_abandoned(tx).await?;
        Ok(row.map(secret_row))
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

    async fn take_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        record: &AuditRecord,
    ) -> Result<Option<i64>, StoreError> {
        // One statement: the row lock PostgreSQL takes for the UPDATE makes
        // concurrent callers on every node queue, each seeing the counter
        // the previous one left.
        let query = sqlx::query(AUDITED_TAKE_HOTP_COUNTER.as_str())
            .bind(id)
            .bind(account_id);
        bind_record(query, record)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)?
            .map(|row| row.try_get::<i64, _>(0))
            .transpose()
            .map_err(classify)
    }

    async fn accept_totp_step(
        &self,
        account_id: Uuid,
        id: Uuid,
        step: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.compare_and_set(&AUDITED_ACCEPT_TOTP_STEP, step, account_id, id, record)
            .await
    }

    async fn accept_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        matched: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.compare_and_set(
            &AUDITED_ACCEPT_HOTP_COUNTER,
            matched,
            account_id,
            id,
            record,
        )
        .await
    }

    async fn record_verify_failure(
        &self,
        account_id: Uuid,
        id: Uuid,
        now: i64,
        window_ms: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        sqlx::query_as::<_, (i64, i64)>(q::RECORD_VERIFY_FAILURE)
            .bind(now)
            .bind(window_ms)
            .bind(id)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await
            .map_err(classify)
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let column = |f: fn(&AuditRecord) -> Option<String>| -> Vec<Option<String>> {
            records.iter().map(f).collect()
        };
        sqlx::query(APPEND_AUDIT)
            .bind(records.iter().map(|r| r.at).collect::<Vec<i64>>())
            .bind(
                records
                    .iter()
                    .map(|r| r.account_id)
                    .collect::<Vec<Option<Uuid>>>(),
            )
            .bind(
                records
                    .iter()
                    .map(|r| r.action.clone())
                    .collect::<Vec<String>>(),
            )
            .bind(
                records
                    .iter()
                    .map(|r| r.outcome.clone())
                    .collect::<Vec<String>>(),
            )
            .bind(column(|r| r.key_id.clone()))
            .bind(column(|r| r.role.clone()))
            .bind(
                records
                    .iter()
                    .map(|r| r.secret_id)
                    .collect::<Vec<Option<Uuid>>>(),
            )
            .bind(column(|r| r.remote_addr.clone()))
            .bind(column(|r| r.user_agent.clone()))
            .bind(column(|r| r.request_id.clone()))
            .execute(&self.pool)
            .await
            .map(|_| ())
            .map_err(classify)
    }

    async fn list_audit(
        &self,
        account_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_page(Some(account_id), query).await
    }

    async fn list_audit_all(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        self.audit_page(None, query).await
    }

    async fn prune_audit(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        let done = sqlx::query(q::PRUNE_AUDIT)
            .bind(before)
            .bind(i64::from(limit))
            .execute(&self.pool)
            .await
            .map_err(classify)?;
        Ok(done.rows_affected())
    }

    async fn reseal_secrets(&self, reseals: &[SecretReseal]) -> Result<u64, StoreError> {
        let mut tx = self.pool.begin().await.map_err(classify)?;
        let mut changed = 0_u64;
        for r in reseals {
            let done = sqlx::query(q::RESEAL_SECRET)
                .bind(r.sealed_by.as_str())
                .bind(r.nonce.as_slice())
                .bind(r.ciphertext.as_slice())
                .bind(r.aad_version)
                .bind(r.id)
                .bind(r.account_id)
                .bind(r.old_sealed_by.as_str())
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
        let any: bool = sqlx::query_scalar(HAS_ANY_ROW.as_str())
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
/// The secrets of account `$1` whose fingerprint is one of `$2`, in one
/// statement (one round trip for a whole import).
const SECRETS_BY_FINGERPRINTS: &str =
    "SELECT fingerprint, id FROM secrets WHERE account_id = $1 AND fingerprint = ANY($2)";

/// Fingerprint → secret id for those of `fingerprints` the account holds.
async fn secrets_by_fingerprint<'c>(
    executor: impl sqlx::PgExecutor<'c>,
    account_id: Uuid,
    fingerprints: &[Vec<u8>],
) -> Result<HashMap<Vec<u8>, Uuid>, StoreError> {
    if fingerprints.is_empty() {
        return Ok(HashMap::new());
    }
    let found: Vec<(Vec<u8>, Uuid)> = sqlx::query_as(SECRETS_BY_FINGERPRINTS)
        .bind(account_id)
        .bind(fingerprints)
        .fetch_all(executor)
        .await
        .map_err(classify)?;
    Ok(found.into_iter().collect())
}

const LOCK_SECRET_COUNT: &str = "SELECT secret_count FROM accounts WHERE id = $1 FOR UPDATE";

/// Commits `tx` if its request (if any) may still commit, else rolls it
/// back: see `totpd_vault::deadline`. Until the claim, dropping the request
/// (its timeout) drops `tx`, and an uncommitted transaction never commits.
async fn commit_unless_abandoned(tx: sqlx::Transaction<'_, Postgres>) -> Result<(), StoreError> {
    if deadline::claim_commit() {
        tx.commit().await.map_err(classify)
    } else {
        tx.rollback().await.map_err(classify)?;
        Err(StoreError::unavailable_msg(
            "the request timed out before its write was committed; nothing was stored".to_owned(),
        ))
    }
}
