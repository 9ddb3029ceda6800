//! The embedded default: SQLite in WAL mode, on rusqlite.
//!
//! - Hot-path reads (`secret`, `api_key`, `get_meta`, ...) run inline on the
//!   calling task with a pooled read connection and a cached statement; no
//!   thread hop (see `pool`).
//! - Larger reads (pages of a list, dumps) run on tokio's blocking pool.
//! - Writes go to one writer thread that group-commits them (see `writer`):
//!   each write is acknowledged only after the fsync of the transaction that
//!   holds it.
//!
//! Durability: `synchronous = FULL`. Tenancy: every secret query names the
//! account, which leads the `secrets` primary key. Deletion: `secure_delete`
//! zeroes deleted rows, and the writer checkpoints and truncates the WAL
//! after a delete, so a deleted secret's ciphertext does not linger in the
//! database files.
//!
//! Memory: a few MiB of page cache per connection in use, no mmap (see
//! `conn`); a million secrets do not make the process grow.

mod conn;
mod copy;
mod pool;
mod rows;
mod snapshot;
pub(crate) mod url;
mod writer;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{OptionalExtension, params};
use totpd_vault::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, AuditQuery, AuditRecord, AuditRow, CopyReport,
    ListCursor, PoolStatus, SealCensus, SecretReseal, SecretRow, SecretUpdate, Snapshot, Store,
    StoreError,
};
use uuid::Uuid;

use self::conn::Opener;
use self::pool::ReadPool;
use self::writer::Writer;
use crate::ConnectOptions;
use crate::error::{classify_sqlite, is_busy};
use crate::queries as q;
use crate::tables::HAS_ANY_ROW;

/// The SQLite backend. Clones share the connections and the writer thread.
#[derive(Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

struct Inner {
    reads: Arc<ReadPool>,
    writer: Writer,
    opener: Opener,
}

impl fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteStore")
            .field("opener", &self.inner.opener)
            .field("reads", &self.inner.reads.status())
            .field("writes", &self.inner.writer.stats())
            .finish()
    }
}

impl SqliteStore {
    /// Runs a compare-and-set statement on one secret (`$1` the new value,
    /// `$2` the id, `$3` the account) as one job of the writer thread, with
    /// `record` appended in the same savepoint when it changed the row:
    /// whether this call changed the row.
    async fn compare_and_set(
        &self,
        statement: &'static str,
        value: i64,
        account_id: Uuid,
        id: Uuid,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        let record = record.clone();
        self.writer()
            .run(move |conn| {
                let changed = conn.prepare_cached(statement)?.execute(params![
                    value,
                    id.as_bytes().as_slice(),
                    account_id.as_bytes().as_slice()
                ])?;
                if changed == 1 {
                    rows::insert_audit(conn, &record)?;
                }
                Ok(changed == 1)
            })
            .await
    }

    /// Opens (creating if missing, unless `?mode=rw` or `?mode=ro`) the
    /// database at a `sqlite://PATH`, `sqlite:///abs/path` or `sqlite:PATH`
    /// URL and migrates it.
    ///
    /// `options.max_connections` bounds the read connections;
    /// `options.acquire_timeout` is both how long a read waits for one and
    /// SQLite's busy timeout (how long a write waits for another process's
    /// write lock).
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<SqliteStore, StoreError> {
        let location = url::parse(url)?;
        let opener = Opener::new(location, options.acquire_timeout);
        let max = options.max_connections;
        let timeout = options.acquire_timeout;
        // Opening and migrating touch the disk and may wait on another
        // process's lock: not on the runtime's threads.
        tokio::task::spawn_blocking(move || {
            // Several processes opening one new file at once (nodes starting
            // together on one data directory) can meet a lock that SQLite
            // reports at once as busy instead of waiting on it (setting up
            // WAL on a new file is one): such an open is tried again, with
            // backoff, for as long as any other lock may be waited for.
            let started = totpd_vault::clock::monotonic_now();
            let mut pause = Duration::from_millis(2);
            let (writer, reads) = loop {
                match open_and_migrate(&opener, max, timeout) {
                    Err(e)
                        if is_busy(&e)
                            && totpd_vault::clock::monotonic_now()
                                .saturating_duration_since(started)
                                < timeout =>
                    {
                        std::thread::sleep(pause);
                        pause = (pause * 2).min(Duration::from_millis(100));
                    }
                    other => break other?,
                }
            };
            let writer = Writer::start(writer, timeout)?;
            Ok(SqliteStore {
                inner: Arc::new(Inner {
                    reads,
                    writer,
                    opener,
                }),
            })
        })
        .await
        .map_err(|e| StoreError::other("opening the SQLite database failed", e))?
    }

    /// Copies `source` into the SQLite database file at `path`, which must
    /// exist and be empty (a backup: the caller creates it, private, under a
    /// name of its own), through the same verified copy as
    /// [`Store::copy_from`]. Leaves a self-contained file: the schema is
    /// migrated first, and once the copy has committed the file is taken
    /// out of WAL mode (so it has no `-wal` or `-shm` companions and can be
    /// moved alone) and every connection to it is closed.
    pub async fn write_file(
        path: &std::path::Path,
        source: &mut dyn Snapshot,
    ) -> Result<CopyReport, StoreError> {
        let location = url::Location {
            path: path.to_path_buf(),
            mode: url::Mode::Existing,
        };
        let opener = Opener::new(location, ConnectOptions::default().acquire_timeout);
        let migrating = opener.clone();
        blocking(move || {
            let writer = migrating.writer().map_err(classify_sqlite)?;
            conn::migrate(&writer, url::Mode::Existing)
        })
        .await?;
        let report = copy::copy(&opener, source).await?;
        blocking(move || {
            let writer = opener.writer().map_err(classify_sqlite)?;
            let journal: String = writer
                .query_row("PRAGMA journal_mode = DELETE", [], |row| row.get(0))
                .map_err(classify_sqlite)?;
            if !journal.eq_ignore_ascii_case("delete") {
                return Err(StoreError::other_msg(format!(
                    "the SQLite file could not leave WAL mode (journal mode {journal})"
                )));
            }
            writer.close().map_err(|(_, e)| classify_sqlite(e))
        })
        .await?;
        Ok(report)
    }

    fn reads(&self) -> &Arc<ReadPool> {
        &self.inner.reads
    }

    fn writer(&self) -> &Writer {
        &self.inner.writer
    }
}

/// `sql` with its trailing `LIMIT $N` replaced by the literal `limit` (the
/// statement then binds one parameter fewer). SQLite's planner uses a bound
/// LIMIT's value, so it prepares such a statement again on every run, which
/// halved list throughput; with the page size in the text, each size is one
/// cached statement, prepared once per connection.
fn with_literal_limit(sql: &str, limit: u32) -> String {
    let base = sql.rsplit_once(" LIMIT ").map_or(sql, |(base, _)| base);
    format!("{base} LIMIT {limit}")
}

impl SqliteStore {
    /// A page of audit events, of one account or of all.
    async fn audit_page(
        &self,
        account_id: Option<Uuid>,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let (sql, params) = q::audit_query(account_id, query);
        self.reads()
            .run_blocking(move |conn| {
                let values = params.into_iter().map(|param| match param {
                    q::AuditParam::Uuid(id) => rusqlite::types::Value::Blob(id.as_bytes().to_vec()),
                    q::AuditParam::Text(text) => rusqlite::types::Value::Text(text),
                    q::AuditParam::Int(n) => rusqlite::types::Value::Integer(n),
                });
                let mut statement = conn.prepare_cached(&sql)?;
                let rows = statement.query_map(rusqlite::params_from_iter(values), rows::audit)?;
                rows.collect()
            })
            .await
    }
}

/// Runs `work` on the blocking pool.
async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(work)
        .await
        .map_err(|e| StoreError::other("a SQLite task failed", e))?
}

/// A `COUNT(*)`, which is never negative.
fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

#[async_trait]
impl Store for SqliteStore {
    fn pool_status(&self) -> PoolStatus {
        self.reads().status()
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.reads()
            .run(|conn| conn.prepare_cached(q::PING)?.query_row([], |_| Ok(())))
            .await
    }

    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.reads()
            .run(|conn| {
                conn.prepare_cached(q::GET_META)?
                    .query_row([name], |row| row.get(0))
                    .optional()
            })
            .await
    }

    async fn insert_meta(&self, name: &str, value: &[u8]) -> Result<bool, StoreError> {
        let (name, value) = (name.to_owned(), value.to_vec());
        self.writer()
            .run(move |conn| {
                let inserted = conn
                    .prepare_cached(q::INSERT_META_IF_ABSENT)?
                    .execute(params![name, value])?;
                Ok(inserted == 1)
            })
            .await
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<AccountRow>, StoreError> {
        self.reads()
            .run(|conn| {
                conn.prepare_cached(q::ACCOUNT_BY_NAME)?
                    .query_row([name], rows::account)
                    .optional()
            })
            .await
    }

    async fn insert_account(&self, row: &AccountRow) -> Result<AccountRow, StoreError> {
        let row = row.clone();
        let stored = self
            .writer()
            .run(move |conn| {
                conn.prepare_cached(q::INSERT_ACCOUNT_IF_ABSENT)?
                    .execute(params![
                        row.id.as_bytes().as_slice(),
                        row.name,
                        row.created_at
                    ])?;
                // Whoever won a concurrent insert, the stored row is the
                // answer; read in the same transaction, so it is there.
                conn.prepare_cached(q::ACCOUNT_BY_NAME)?
                    .query_row([&row.name], rows::account)
                    .optional()
            })
            .await?;
        stored.ok_or_else(|| StoreError::corrupt_msg("account vanished after insert".to_owned()))
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        let count: i64 = self
            .reads()
            .run(|conn| {
                conn.prepare_cached(q::COUNT_ACCOUNTS)?
                    .query_row([], |row| row.get(0))
            })
            .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        let row = row.clone();
        self.writer()
            .run(move |conn| rows::insert_api_key(conn, &row).map(drop))
            .await
    }

    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        self.reads()
            .run(|conn| {
                conn.prepare_cached(q::API_KEY)?
                    .query_row([key_id], rows::api_key)
                    .optional()
            })
            .await
    }

    async fn list_api_keys(&self) -> Result<Vec<(ApiKeyRow, String)>, StoreError> {
        self.reads()
            .run_blocking(|conn| {
                let mut statement = conn.prepare_cached(q::LIST_API_KEYS)?;
                let keys =
                    statement.query_map([], |row| Ok((rows::api_key(row)?, row.get(11)?)))?;
                keys.collect()
            })
            .await
    }

    async fn revoke_api_key(&self, key_id: &str, revoked_at: i64) -> Result<bool, StoreError> {
        let key_id = key_id.to_owned();
        self.writer()
            .run(move |conn| {
                let revoked = conn
                    .prepare_cached(q::REVOKE_API_KEY)?
                    .execute(params![revoked_at, key_id])?;
                Ok(revoked == 1)
            })
            .await
    }

    async fn upgrade_api_key_hash(&self, upgrade: &ApiKeyHashUpgrade) -> Result<bool, StoreError> {
        let u = upgrade.clone();
        self.writer()
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(q::UPGRADE_API_KEY_HASH)?
                    .execute(params![
                        u.new_hash,
                        u.new_version,
                        u.key_id,
                        u.old_hash,
                        u.old_version,
                        u.account_id.as_bytes().as_slice(),
                        u.role
                    ])?;
                Ok(changed == 1)
            })
            .await
    }

    async fn record_api_key_uses(&self, uses: &[(String, i64)]) -> Result<u64, StoreError> {
        if uses.is_empty() {
            return Ok(0);
        }
        let uses = uses.to_vec();
        self.writer()
            .run(move |conn| {
                // One job: every update commits in the same transaction.
                let mut statement = conn.prepare_cached(q::RECORD_API_KEY_USE)?;
                let mut changed = 0u64;
                for (key_id, used_at) in &uses {
                    changed +=
                        u64::try_from(statement.execute(params![used_at, key_id])?).unwrap_or(0);
                }
                Ok(changed)
            })
            .await
    }

    async fn insert_secret(&self, row: &SecretRow) -> Result<(), StoreError> {
        let row = row.clone();
        self.writer()
            .run(move |conn| rows::insert_secret(conn, &row).map(drop))
            .await
    }

    async fn secret(&self, account_id: Uuid, id: Uuid) -> Result<Option<SecretRow>, StoreError> {
        self.reads()
            .run(|conn| {
                conn.prepare_cached(q::SECRET)?
                    .query_row(
                        params![id.as_bytes().as_slice(), account_id.as_bytes().as_slice()],
                        rows::secret,
                    )
                    .optional()
            })
            .await
    }

    async fn insert_secret_within_quota(
        &self,
        row: &SecretRow,
        max: u64,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        let (row, record) = (row.clone(), record.clone());
        // One writer thread runs every write of this process, and other
        // processes wait for the file's write lock: between the count and
        // the insert nothing else can add a secret.
        let stored = self
            .writer()
            .run(move |conn| {
                let held: Option<i64> = conn
                    .prepare_cached(q::SECRET_COUNT)?
                    .query_row([row.account_id.as_bytes().as_slice()], |r| r.get(0))
                    .optional()?;
                if held.is_some_and(|n| u64::try_from(n).unwrap_or(0) >= max) {
                    return Ok(false);
                }
                rows::insert_secret(conn, &row)?;
                rows::insert_audit(conn, &record)?;
                Ok(true)
            })
            .await?;
        if stored {
            Ok(())
        } else {
            Err(StoreError::QuotaExceeded { limit: max })
        }
    }

    async fn secrets_by_fingerprint(
        &self,
        account_id: Uuid,
        fingerprints: &[Vec<u8>],
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        let fingerprints = fingerprints.to_vec();
        self.reads()
            .run_blocking(move |conn| {
                let mut statement = conn.prepare_cached(q::SECRET_BY_FINGERPRINT)?;
                fingerprints
                    .iter()
                    .map(|fingerprint| {
                        statement
                            .query_row(
                                params![account_id.as_bytes().as_slice(), fingerprint],
                                |r| rows::uuid(r, 0),
                            )
                            .optional()
                    })
                    .collect()
            })
            .await
    }

    async fn import_secrets(
        &self,
        account_id: Uuid,
        rows: &[(SecretRow, AuditRecord)],
        max: u64,
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        let rows = rows.to_vec();
        // One job of the one writer thread (and the file's write lock for
        // other processes): nothing else adds a secret between the checks
        // and the inserts.
        let stored = self
            .writer()
            .run(move |conn| {
                let account = account_id.as_bytes().as_slice();
                let mut by_fingerprint = conn.prepare_cached(q::SECRET_BY_FINGERPRINT)?;
                let mut existing = Vec::with_capacity(rows.len());
                for (row, _) in &rows {
                    existing.push(match &row.fingerprint {
                        Some(fingerprint) => by_fingerprint
                            .query_row(params![account, fingerprint], |r| rows::uuid(r, 0))
                            .optional()?,
                        None => None,
                    });
                }
                let held: Option<i64> = conn
                    .prepare_cached(q::SECRET_COUNT)?
                    .query_row([account], |r| r.get(0))
                    .optional()?;
                let new = existing.iter().filter(|id| id.is_none()).count();
                let after = u64::try_from(held.unwrap_or(0))
                    .unwrap_or(0)
                    .saturating_add(u64::try_from(new).unwrap_or(u64::MAX));
                if new > 0 && after > max {
                    return Ok(None);
                }
                for ((row, record), found) in rows.iter().zip(&existing) {
                    if found.is_none() {
                        rows::insert_secret(conn, row)?;
                        rows::insert_audit(conn, record)?;
                    }
                }
                Ok(Some(existing))
            })
            .await?;
        stored.ok_or(StoreError::QuotaExceeded { limit: max })
    }

    async fn set_fingerprints(
        &self,
        account_id: Uuid,
        fingerprints: &[(Uuid, Vec<u8>)],
    ) -> Result<u64, StoreError> {
        if fingerprints.is_empty() {
            return Ok(0);
        }
        let fingerprints = fingerprints.to_vec();
        self.writer()
            .run(move |conn| {
                let mut statement = conn.prepare_cached(q::SET_FINGERPRINT)?;
                let mut changed = 0u64;
                for (id, fingerprint) in &fingerprints {
                    changed += u64::try_from(statement.execute(params![
                        fingerprint,
                        id.as_bytes().as_slice(),
                        account_id.as_bytes().as_slice()
                    ])?)
                    .unwrap_or(0);
                }
                Ok(changed)
            })
            .await
    }

    async fn list_secrets_page(
        &self,
        account_id: Uuid,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        self.reads()
            .run_blocking(move |conn| {
                let account = account_id.as_bytes().as_slice();
                match after {
                    None => {
                        let sql = with_literal_limit(q::LIST_SECRETS_FIRST, limit);
                        let mut statement = conn.prepare_cached(&sql)?;
                        let secrets = statement.query_map(params![account], rows::secret)?;
                        secrets.collect()
                    }
                    Some(after) => {
                        let sql = with_literal_limit(q::LIST_SECRETS_AFTER, limit);
                        let mut statement = conn.prepare_cached(&sql)?;
                        let secrets = statement.query_map(
                            params![account, after.created_at, after.id.as_bytes().as_slice()],
                            rows::secret,
                        )?;
                        secrets.collect()
                    }
                }
            })
            .await
    }

    async fn update_secret(
        &self,
        account_id: Uuid,
        id: Uuid,
        update: &SecretUpdate,
    ) -> Result<Option<SecretRow>, StoreError> {
        let update = update.clone();
        self.writer()
            .run(move |conn| {
                conn.prepare_cached(q::UPDATE_SECRET_LABELS)?
                    .query_row(
                        params![
                            update.label,
                            update.issuer.is_some(),
                            update.issuer.flatten(),
                            update.skew,
                            id.as_bytes().as_slice(),
                            account_id.as_bytes().as_slice(),
                        ],
                        rows::secret,
                    )
                    .optional()
            })
            .await
    }

    async fn delete_secret(&self, account_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let delete = move |conn: &rusqlite::Connection| {
            let deleted = conn.prepare_cached(q::DELETE_SECRET)?.execute(params![
                id.as_bytes().as_slice(),
                account_id.as_bytes().as_slice()
            ])?;
            Ok(deleted == 1)
        };
        // A deleted secret's ciphertext must not linger in the WAL either.
        self.writer()
            .run_and_scrub(delete, |deleted| *deleted)
            .await
    }

    async fn take_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        record: &AuditRecord,
    ) -> Result<Option<i64>, StoreError> {
        let record = record.clone();
        // The writer thread is the only writer: the statement's read and
        // write of the counter cannot interleave with another's.
        self.writer()
            .run(move |conn| {
                let taken: Option<i64> = conn
                    .prepare_cached(q::TAKE_HOTP_COUNTER)?
                    .query_row(
                        params![id.as_bytes().as_slice(), account_id.as_bytes().as_slice()],
                        |r| r.get(0),
                    )
                    .optional()?;
                if taken.is_some() {
                    rows::insert_audit(conn, &record)?;
                }
                Ok(taken)
            })
            .await
    }

    async fn accept_totp_step(
        &self,
        account_id: Uuid,
        id: Uuid,
        step: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.compare_and_set(q::ACCEPT_TOTP_STEP, step, account_id, id, record)
            .await
    }

    async fn accept_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        matched: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.compare_and_set(q::ACCEPT_HOTP_COUNTER, matched, account_id, id, record)
            .await
    }

    async fn record_verify_failure(
        &self,
        account_id: Uuid,
        id: Uuid,
        now: i64,
        window_ms: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        self.writer()
            .run(move |conn| {
                conn.prepare_cached(q::RECORD_VERIFY_FAILURE)?
                    .query_row(
                        params![
                            now,
                            window_ms,
                            id.as_bytes().as_slice(),
                            account_id.as_bytes().as_slice()
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .optional()
            })
            .await
    }

    /// One job of the writer thread, so the events share the commit (and
    /// its fsync) of whatever else is queued.
    async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        if records.is_empty() {
            return Ok(());
        }
        let records = records.to_vec();
        self.writer()
            .run(move |conn| {
                records
                    .iter()
                    .try_for_each(|record| rows::insert_audit(conn, record).map(drop))
            })
            .await
    }

    async fn reseal_secrets(&self, reseals: &[SecretReseal]) -> Result<u64, StoreError> {
        let reseals = reseals.to_vec();
        // One write of the group commit: its savepoint holds every UPDATE
        // of the batch, so they commit (and fsync) together. The replaced
        // ciphertexts, sealed by a key being retired, must not linger in
        // the WAL: scrubbed as after a delete.
        let reseal = move |conn: &rusqlite::Connection| {
            let mut statement = conn.prepare_cached(q::RESEAL_SECRET)?;
            let mut changed = 0_u64;
            for r in &reseals {
                let n = statement.execute(params![
                    r.sealed_by,
                    r.nonce,
                    r.ciphertext,
                    r.aad_version,
                    r.id.as_bytes().as_slice(),
                    r.account_id.as_bytes().as_slice(),
                    r.old_sealed_by,
                    r.old_nonce,
                    r.old_ciphertext,
                    r.old_aad_version,
                    r.algorithm,
                    r.digits,
                    r.period
                ])?;
                changed += u64::try_from(n).unwrap_or(0);
            }
            Ok(changed)
        };
        self.writer()
            .run_and_scrub(reseal, |changed| *changed > 0)
            .await
    }

    async fn replace_meta(&self, name: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        let (name, old, new) = (name.to_owned(), old.to_vec(), new.to_vec());
        self.writer()
            .run(move |conn| {
                let changed = conn
                    .prepare_cached(q::REPLACE_META)?
                    .execute(params![new, name, old])?;
                Ok(changed == 1)
            })
            .await
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
        // Nothing old is the common case: one read of the time index, no
        // write transaction at all.
        let any: bool = self
            .reads()
            .run(|conn| {
                conn.prepare_cached(PRUNE_AUDIT_DUE)?
                    .query_row([before], |row| row.get(0))
            })
            .await?;
        if !any {
            return Ok(0);
        }
        let deleted = self
            .writer()
            .run(move |conn| {
                conn.prepare_cached(q::PRUNE_AUDIT)?
                    .execute(params![before, i64::from(limit)])
            })
            .await?;
        Ok(u64::try_from(deleted).unwrap_or(0))
    }

    async fn seal_census(&self) -> Result<SealCensus, StoreError> {
        self.reads()
            .run_blocking(|conn| {
                let mut statement = conn.prepare_cached(q::COUNT_SECRETS_BY_SEAL)?;
                let secrets = statement
                    .query_map([], |row| Ok((row.get(0)?, row.get(1)?, count(row.get(2)?))))?
                    .collect::<rusqlite::Result<_>>()?;
                let mut statement = conn.prepare_cached(q::COUNT_API_KEYS_BY_HASH)?;
                let api_keys = statement
                    .query_map([], |row| Ok((row.get(0)?, count(row.get(1)?))))?
                    .collect::<rusqlite::Result<_>>()?;
                Ok(SealCensus { secrets, api_keys })
            })
            .await
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        let any: bool = self
            .reads()
            .run(|conn| {
                conn.prepare_cached(HAS_ANY_ROW.as_str())?
                    .query_row([], |row| row.get(0))
            })
            .await?;
        Ok(!any)
    }

    /// See `snapshot::SqliteSnapshot`: one read transaction on a
    /// connection of its own (not one of the read pool's).
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, StoreError> {
        Ok(Box::new(
            snapshot::SqliteSnapshot::open(&self.inner.opener).await?,
        ))
    }

    /// See `copy::copy`: streamed page by page into one transaction and
    /// verified before it commits, so memory stays at a few pages of rows
    /// whatever the source's size.
    async fn copy_from(&self, source: &mut dyn Snapshot) -> Result<CopyReport, StoreError> {
        copy::copy(&self.inner.opener, source).await
    }
}

/// Opens the writer connection, applies pending migrations and opens the
/// read pool: the part of opening a database that may meet another
/// process's lock.
fn open_and_migrate(
    opener: &Opener,
    max: u32,
    timeout: Duration,
) -> Result<(rusqlite::Connection, Arc<ReadPool>), StoreError> {
    let writer = opener.writer().map_err(classify_sqlite)?;
    conn::migrate(&writer, opener.mode())?;
    let reads = Arc::new(ReadPool::new(opener.clone(), max, timeout)?);
    Ok((writer, reads))
}

/// Whether any audit event is older than `$1` (a probe of the time index).
const PRUNE_AUDIT_DUE: &str = "SELECT EXISTS (SELECT 1 FROM audit_events WHERE at < ?1)";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_database_is_recognised_and_nothing_else_is() {
        let busy = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_BUSY),
            None,
        );
        assert!(is_busy(&classify_sqlite(busy)));
        let read_only = rusqlite::Error::SqliteFailure(
            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_READONLY),
            None,
        );
        assert!(!is_busy(&classify_sqlite(read_only)));
    }

    /// SQLite binds `$N` parameters by order of first appearance, so the
    /// shared statements must introduce `$1`, `$2`, ... in order.
    #[test]
    fn shared_statements_number_their_parameters_in_order() {
        let conn = conn::scratch();
        for sql in q::WITH_PARAMETERS {
            let statement = conn.prepare(sql).unwrap();
            let count = statement.parameter_count();
            assert!(count > 0, "{sql}");
            for index in 1..=count {
                let name = statement.parameter_name(index);
                let numbered = format!("${index}");
                let question = format!("?{index}");
                assert!(
                    name == Some(numbered.as_str()) || name == Some(question.as_str()),
                    "parameter {index} of {sql} is {name:?}"
                );
            }
        }
    }

    /// The query plan of `sql`, one line per step (parameters left unbound).
    fn plan(sql: &str) -> Vec<String> {
        let conn = conn::scratch();
        let mut statement = conn.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let mut rows = statement.raw_query();
        let mut steps = Vec::new();
        while let Some(row) = rows.next().unwrap() {
            steps.push(row.get(3).unwrap());
        }
        steps
    }

    /// A list page's statement is prepared once per connection, not on
    /// every run: with the LIMIT bound, SQLite prepares it again each time
    /// (the first half shows the cost that `with_literal_limit` removes).
    #[test]
    fn a_list_page_statement_is_not_prepared_again_on_each_run() {
        let conn = conn::scratch();
        let runs = |sql: &str, bind_limit: bool| {
            let mut statement = conn.prepare(sql).unwrap();
            for round in 0..20_u8 {
                let account = [round % 2; 16];
                let found = if bind_limit {
                    let rows = statement.query_map(params![&account[..], 500_i64], |_| Ok(()));
                    rows.unwrap().count()
                } else {
                    let rows = statement.query_map(params![&account[..]], |_| Ok(()));
                    rows.unwrap().count()
                };
                assert_eq!(found, 0);
            }
            statement.get_status(rusqlite::StatementStatus::RePrepare)
        };
        assert!(
            runs(q::LIST_SECRETS_FIRST, true) > 0,
            "a bound LIMIT no longer costs a prepare per run"
        );
        assert_eq!(
            runs(&with_literal_limit(q::LIST_SECRETS_FIRST, 500), false),
            0
        );
        assert_eq!(
            with_literal_limit(q::LIST_SECRETS_AFTER, 7)
                .matches("LIMIT 7")
                .count(),
            1
        );
    }

    /// One descent of the clustered primary key per lookup; see the note
    /// on `secrets` in the migration for why this needs checking.
    #[test]
    fn lookups_and_deletes_by_account_and_id_use_the_primary_key() {
        for sql in [q::SECRET, q::DELETE_SECRET] {
            let plan = plan(sql);
            assert_eq!(plan.len(), 1, "{plan:?}");
            assert!(plan[0].contains("USING PRIMARY KEY"), "{sql}: {plan:?}");
        }
    }

    /// Every page of the audit log, with any one filter, reads an index in
    /// id order: no sorter, and the account's own range only.
    #[test]
    fn audit_pages_read_an_index_in_id_order() {
        use totpd_vault::{AuditPage, AuditQuery};
        let account = Some(Uuid::from_u128(1));
        let base = AuditQuery {
            limit: 100,
            ..AuditQuery::default()
        };
        let cases = [
            (base.clone(), "audit_events_by_account"),
            (
                AuditQuery {
                    action: Some("code.read".to_owned()),
                    page: AuditPage::Before(10),
                    ..base.clone()
                },
                "audit_events_by_action",
            ),
            (
                AuditQuery {
                    secret_id: Some(Uuid::from_u128(2)),
                    ..base.clone()
                },
                "audit_events_by_secret",
            ),
            (
                AuditQuery {
                    key_id: Some("tk_1".to_owned()),
                    page: AuditPage::After(10),
                    ..base.clone()
                },
                "audit_events_by_key",
            ),
        ];
        for (query, index) in cases {
            let (sql, _) = q::audit_query(account, &query);
            let plan = plan(&sql);
            assert_eq!(plan.len(), 1, "{sql}: {plan:?}");
            assert!(plan[0].contains(index), "{sql}: {plan:?}");
            assert!(!plan[0].contains("TEMP B-TREE"), "{sql}: {plan:?}");
        }
        let (sql, _) = q::audit_query(None, &base);
        assert!(!plan(&sql).iter().any(|step| step.contains("TEMP B-TREE")));
    }

    /// No full scans and no sorter (`USE TEMP B-TREE`).
    #[test]
    fn listing_and_paging_read_ranges_in_key_order() {
        for (sql, expected) in [
            (
                q::LIST_SECRETS_FIRST,
                "SEARCH secrets USING INDEX secrets_in_list_order (account_id=?)",
            ),
            (
                q::LIST_SECRETS_AFTER,
                "SEARCH secrets USING INDEX secrets_in_list_order (account_id=? AND (created_at,id)>(?,?))",
            ),
            (
                q::DUMP_SECRETS_FIRST,
                "SCAN secrets USING INDEX sqlite_autoindex_secrets_1",
            ),
            (
                q::DUMP_SECRETS_AFTER,
                "SEARCH secrets USING INDEX sqlite_autoindex_secrets_1 (id>?)",
            ),
        ] {
            assert_eq!(plan(sql), [expected], "{sql}");
        }
    }
}
