//! The scale-out backend: PostgreSQL shared by any number of stateless nodes.

use std::str::FromStr;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use totpd_vault::StoreError;

use crate::ConnectOptions;
use crate::error::classify;
use crate::migrate::{Migration, pending};
use crate::queries::impl_store;

static MIGRATIONS: [Migration; 1] = [Migration {
    version: 1,
    sql: include_str!("../migrations/postgres/0001_init.sql"),
}];

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

impl_store!(PgStore, sqlx::Postgres);
