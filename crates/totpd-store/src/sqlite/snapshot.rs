//! Whole-database reads: the [`Snapshot`] of a SQLite database, and the dump
//! queries it and the copy's verification run on a connection.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use rusqlite::{Connection, params};
use totpd_vault::{AccountRow, ApiKeyRow, AuditRow, SecretRow, Snapshot, StoreError};
use uuid::Uuid;

use super::conn::Opener;
use super::rows;
use crate::error::classify_sqlite;
use crate::queries as q;

/// One read transaction on a connection of its own, held open until the
/// snapshot is dropped.
///
/// In WAL mode the transaction pins the database as it was at its first
/// read: writers (this process's writer thread, other processes) go on
/// committing, and none of it shows here. In rollback-journal mode (a
/// filesystem without shared memory) the transaction holds a shared lock
/// instead, so writers wait for the snapshot to end (and fail after their
/// busy timeout): the same consistency, bought with availability.
pub(crate) struct SqliteSnapshot {
    conn: Arc<Mutex<Connection>>,
}

impl fmt::Debug for SqliteSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqliteSnapshot").finish_non_exhaustive()
    }
}

impl SqliteSnapshot {
    /// Opens a read connection and starts its transaction now.
    pub(crate) async fn open(opener: &Opener) -> Result<SqliteSnapshot, StoreError> {
        let opener = opener.clone();
        let conn = tokio::task::spawn_blocking(move || {
            let conn = opener.reader()?;
            // A deferred transaction takes its snapshot at its first read;
            // read at once, so the snapshot is of this moment and not of
            // whenever the first table happens to be read.
            conn.execute_batch("BEGIN DEFERRED")?;
            conn.query_row("SELECT COUNT(*) FROM sqlite_schema", [], |_| Ok(()))?;
            Ok::<_, rusqlite::Error>(conn)
        })
        .await
        .map_err(task_failed)?
        .map_err(classify_sqlite)?;
        Ok(SqliteSnapshot {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `read` on the snapshot's connection, off the runtime's threads.
    async fn read<T: Send + 'static>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let conn = Arc::clone(&self.conn);
        tokio::task::spawn_blocking(move || {
            // A panic while holding the lock leaves the connection usable.
            let conn = conn.lock().unwrap_or_else(PoisonError::into_inner);
            read(&conn)
        })
        .await
        .map_err(task_failed)?
        .map_err(classify_sqlite)
    }
}

#[async_trait]
impl Snapshot for SqliteSnapshot {
    async fn meta(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.read(meta).await
    }

    async fn accounts(&mut self) -> Result<Vec<AccountRow>, StoreError> {
        self.read(accounts).await
    }

    async fn api_keys(&mut self) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.read(api_keys).await
    }

    async fn secrets(
        &mut self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        self.read(move |conn| secrets(conn, after, limit)).await
    }

    async fn audit_events(
        &mut self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.read(move |conn| audit_events(conn, after, limit))
            .await
    }
}

fn task_failed(error: tokio::task::JoinError) -> StoreError {
    StoreError::other("a SQLite snapshot read failed", error)
}

/// Every `meta` row, by name.
pub(crate) fn meta(conn: &Connection) -> rusqlite::Result<Vec<(String, Vec<u8>)>> {
    let mut statement = conn.prepare_cached(q::DUMP_META)?;
    let meta = statement.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?;
    meta.collect()
}

/// Every account, by id.
pub(crate) fn accounts(conn: &Connection) -> rusqlite::Result<Vec<AccountRow>> {
    let mut statement = conn.prepare_cached(q::DUMP_ACCOUNTS)?;
    let accounts = statement.query_map([], rows::account)?;
    accounts.collect()
}

/// Every API key, by key id.
pub(crate) fn api_keys(conn: &Connection) -> rusqlite::Result<Vec<ApiKeyRow>> {
    let mut statement = conn.prepare_cached(q::DUMP_API_KEYS)?;
    let keys = statement.query_map([], rows::api_key)?;
    keys.collect()
}

/// Up to `limit` secrets with ids above `after`, by id.
pub(crate) fn secrets(
    conn: &Connection,
    after: Option<Uuid>,
    limit: u32,
) -> rusqlite::Result<Vec<SecretRow>> {
    let limit = i64::from(limit);
    match after {
        None => {
            let mut statement = conn.prepare_cached(q::DUMP_SECRETS_FIRST)?;
            let secrets = statement.query_map([limit], rows::secret)?;
            secrets.collect()
        }
        Some(after) => {
            let mut statement = conn.prepare_cached(q::DUMP_SECRETS_AFTER)?;
            let secrets =
                statement.query_map(params![after.as_bytes().as_slice(), limit], rows::secret)?;
            secrets.collect()
        }
    }
}

/// Up to `limit` audit events with ids above `after`, by id.
pub(crate) fn audit_events(
    conn: &Connection,
    after: Option<i64>,
    limit: u32,
) -> rusqlite::Result<Vec<AuditRow>> {
    let limit = i64::from(limit);
    match after {
        None => {
            let mut statement = conn.prepare_cached(q::DUMP_AUDIT_FIRST)?;
            let rows = statement.query_map([limit], rows::audit)?;
            rows.collect()
        }
        Some(after) => {
            let mut statement = conn.prepare_cached(q::DUMP_AUDIT_AFTER)?;
            let rows = statement.query_map(params![after, limit], rows::audit)?;
            rows.collect()
        }
    }
}
