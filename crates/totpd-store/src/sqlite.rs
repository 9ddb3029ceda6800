//! The embedded default: SQLite in WAL mode.
//!
//! Durability: `synchronous = FULL` makes every commit fsync the WAL before
//! the write is acknowledged, so an answered create survives `kill -9` and
//! power loss alike. `secure_delete` overwrites deleted rows, so a deleted
//! secret's ciphertext does not linger in free pages.

use std::str::FromStr;

use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use totpd_vault::StoreError;

use crate::ConnectOptions;
use crate::error::classify;
use crate::migrate::{Migration, pending};
use crate::queries::impl_store;

static MIGRATIONS: [Migration; 1] = [Migration {
    version: 1,
    sql: include_str!("../migrations/sqlite/0001_init.sql"),
}];

/// The SQLite backend.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    pool: SqlitePool,
}

impl SqliteStore {
    /// Opens (creating if missing) the database at a `sqlite://PATH` URL and
    /// migrates it.
    pub async fn connect(url: &str, options: &ConnectOptions) -> Result<SqliteStore, StoreError> {
        let connect = SqliteConnectOptions::from_str(url)
            .map_err(|e| StoreError::Other(format!("invalid SQLite URL: {e}")))?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            .busy_timeout(options.acquire_timeout)
            .pragma("secure_delete", "ON");
        let pool = SqlitePoolOptions::new()
            .max_connections(options.max_connections.max(1))
            .acquire_timeout(options.acquire_timeout)
            .connect_with(connect)
            .await
            .map_err(classify)?;
        let store = SqliteStore { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        // BEGIN IMMEDIATE takes the write lock first, so two processes opening
        // a fresh database at once apply each step exactly once.
        let mut conn = self.pool.acquire().await.map_err(classify)?;
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        let result = async {
            sqlx::raw_sql(
                "CREATE TABLE IF NOT EXISTS schema_migrations \
                 (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
            )
            .execute(&mut *conn)
            .await?;
            let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM schema_migrations")
                .fetch_all(&mut *conn)
                .await?;
            Ok::<_, sqlx::Error>(applied)
        }
        .await;
        let outcome = match result
            .map_err(classify)
            .and_then(|applied| pending(&applied, &MIGRATIONS))
        {
            Ok(todo) => {
                let mut failed = None;
                for step in todo {
                    let applied = async {
                        sqlx::raw_sql(step.sql).execute(&mut *conn).await?;
                        sqlx::query(
                            "INSERT INTO schema_migrations (version, applied_at) \
                             VALUES ($1, CAST(strftime('%s','now') AS INTEGER))",
                        )
                        .bind(step.version)
                        .execute(&mut *conn)
                        .await
                    }
                    .await;
                    if let Err(e) = applied {
                        failed = Some(classify(e));
                        break;
                    }
                }
                failed.map_or(Ok(()), Err)
            }
            Err(e) => Err(e),
        };
        let end = if outcome.is_ok() {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        sqlx::raw_sql(end)
            .execute(&mut *conn)
            .await
            .map_err(classify)?;
        outcome
    }
}

impl_store!(SqliteStore, sqlx::Sqlite);
