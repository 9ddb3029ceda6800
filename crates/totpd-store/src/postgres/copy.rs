//! Whole-database reads and copies on PostgreSQL: the [`Snapshot`] of a
//! database, and `copy_from` into one.

use std::fmt;

use async_trait::async_trait;
use sqlx::postgres::PgPool;
use sqlx::{PgConnection, Postgres, Transaction};
use totpd_vault::{AccountRow, ApiKeyRow, AuditRow, CopyReport, SecretRow, Snapshot, StoreError};
use uuid::Uuid;

use super::{
    ApiKeyTuple, AuditTuple, SecretTuple, api_key_row, audit_row, copy_audit_query,
    insert_account_query, insert_api_key_query, insert_secret_query, secret_row,
};
use crate::error::classify;
use crate::queries as q;
use crate::tables::{HAS_ANY_ROW, Table};
use crate::verify::{count, mismatch, same_page};

/// One `REPEATABLE READ READ ONLY` transaction on a pooled connection, held
/// until the snapshot is dropped (which rolls it back and returns the
/// connection).
///
/// PostgreSQL takes a repeatable-read transaction's snapshot at its first
/// statement, and every later statement sees exactly that state: rows
/// committed afterwards are invisible, rows deleted afterwards still there.
/// Read-only, it never conflicts with writers and never fails to serialize;
/// it holds back vacuum for as long as it stays open.
pub(crate) struct PgSnapshot {
    tx: Transaction<'static, Postgres>,
}

impl fmt::Debug for PgSnapshot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSnapshot").finish_non_exhaustive()
    }
}

impl PgSnapshot {
    /// Starts the transaction and takes its snapshot now.
    pub(crate) async fn open(pool: &PgPool) -> Result<PgSnapshot, StoreError> {
        let mut tx = pool
            .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            .await
            .map_err(classify)?;
        // The snapshot is taken by the first statement: run one at once, so
        // it is of this moment and not of whenever the first table is read.
        sqlx::query(q::PING)
            .execute(&mut *tx)
            .await
            .map_err(classify)?;
        Ok(PgSnapshot { tx })
    }
}

#[async_trait]
impl Snapshot for PgSnapshot {
    async fn meta(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        meta(&mut self.tx).await
    }

    async fn accounts(&mut self) -> Result<Vec<AccountRow>, StoreError> {
        accounts(&mut self.tx).await
    }

    async fn api_keys(&mut self) -> Result<Vec<ApiKeyRow>, StoreError> {
        api_keys(&mut self.tx).await
    }

    async fn secrets(
        &mut self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        secrets(&mut self.tx, after, limit).await
    }

    async fn audit_events(
        &mut self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        audit_events(&mut self.tx, after, limit).await
    }
}

/// Up to `limit` audit events with ids above `after`, by id.
async fn audit_events(
    conn: &mut PgConnection,
    after: Option<i64>,
    limit: u32,
) -> Result<Vec<AuditRow>, StoreError> {
    let query = match after {
        None => sqlx::query_as::<_, AuditTuple>(q::DUMP_AUDIT_FIRST),
        Some(after) => sqlx::query_as::<_, AuditTuple>(q::DUMP_AUDIT_AFTER).bind(after),
    };
    query
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await
        .map(|rows| rows.into_iter().map(audit_row).collect())
        .map_err(classify)
}

/// Every `meta` row, by name.
async fn meta(conn: &mut PgConnection) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
    sqlx::query_as(q::DUMP_META)
        .fetch_all(conn)
        .await
        .map_err(classify)
}

/// Every account, by id.
async fn accounts(conn: &mut PgConnection) -> Result<Vec<AccountRow>, StoreError> {
    sqlx::query_as::<_, (Uuid, String, i64)>(q::DUMP_ACCOUNTS)
        .fetch_all(conn)
        .await
        .map(|rows| {
            rows.into_iter()
                .map(|(id, name, created_at)| AccountRow {
                    id,
                    name,
                    created_at,
                })
                .collect()
        })
        .map_err(classify)
}

/// Every API key, by key id.
async fn api_keys(conn: &mut PgConnection) -> Result<Vec<ApiKeyRow>, StoreError> {
    sqlx::query_as::<_, ApiKeyTuple>(q::DUMP_API_KEYS)
        .fetch_all(conn)
        .await
        .map_err(classify)?
        .into_iter()
        .map(api_key_row)
        .collect()
}

/// Up to `limit` secrets with ids above `after`, by id.
async fn secrets(
    conn: &mut PgConnection,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<SecretRow>, StoreError> {
    let query = match after {
        None => sqlx::query_as::<_, SecretTuple>(q::DUMP_SECRETS_FIRST),
        Some(after) => sqlx::query_as::<_, SecretTuple>(q::DUMP_SECRETS_AFTER).bind(after),
    };
    query
        .bind(i64::from(limit))
        .fetch_all(conn)
        .await
        .map(|rows| rows.into_iter().map(secret_row).collect())
        .map_err(classify)
}

/// Copies `source` into the (empty) database of `pool` in one transaction,
/// verified before it commits (see `crate::verify`).
///
/// The snapshot is read page by page, so memory stays at one page of
/// secrets whatever the source's size. On any failure the transaction is
/// rolled back before returning.
pub(crate) async fn copy(
    pool: &PgPool,
    source: &mut dyn Snapshot,
) -> Result<CopyReport, StoreError> {
    let mut tx = pool.begin().await.map_err(classify)?;
    match copy_in(&mut tx, source).await {
        Ok(report) => {
            tx.commit().await.map_err(classify)?;
            Ok(report)
        }
        Err(error) => {
            // Dropping the transaction would roll it back too, but only
            // once the connection is next used; say so now.
            let _ = tx.rollback().await;
            Err(error)
        }
    }
}

async fn copy_in(
    tx: &mut PgConnection,
    source: &mut dyn Snapshot,
) -> Result<CopyReport, StoreError> {
    // Checked inside the transaction, so a concurrent writer cannot slip
    // rows in between the check and the copy unnoticed.
    let any: bool = sqlx::query_scalar(HAS_ANY_ROW.as_str())
        .fetch_one(&mut *tx)
        .await
        .map_err(classify)?;
    if any {
        return Err(StoreError::conflict_msg(
            "the target database is not empty".to_owned(),
        ));
    }
    let mut report = CopyReport::default();
    for table in Table::ALL {
        let rows = match table {
            Table::Meta => {
                let rows = source.meta().await?;
                for (name, value) in &rows {
                    sqlx::query(q::INSERT_META)
                        .bind(name)
                        .bind(value)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                }
                count(&rows)
            }
            Table::Accounts => {
                let rows = source.accounts().await?;
                for account in &rows {
                    insert_account_query(account)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                }
                count(&rows)
            }
            Table::ApiKeys => {
                let rows = source.api_keys().await?;
                for key in &rows {
                    insert_api_key_query(key)
                        .execute(&mut *tx)
                        .await
                        .map_err(classify)?;
                }
                count(&rows)
            }
            Table::Secrets => copy_secrets(tx, source).await?,
            Table::AuditEvents => copy_audit_events(tx, source).await?,
        };
        table.count(&mut report, rows);
    }
    verify(tx, source).await?;
    Ok(report)
}

/// Copies every secret, page by page; returns how many.
async fn copy_secrets(tx: &mut PgConnection, source: &mut dyn Snapshot) -> Result<u64, StoreError> {
    // One insert per row: the counting trigger would update an account row
    // once per secret within this one transaction (each update slower than
    // the last). Off for the copy, one count at the end; ALTER TABLE locks
    // the (empty) target table until the commit.
    sqlx::raw_sql(COPY_WITHOUT_COUNTING)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    let mut copied = 0;
    let mut after = None;
    loop {
        let page = source.secrets(after, q::COPY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for secret in &page {
            insert_secret_query(secret)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        copied += count(&page);
    }
    sqlx::raw_sql(COUNT_AFTER_COPY)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    Ok(copied)
}

/// Copies every audit event, page by page; returns how many.
async fn copy_audit_events(
    tx: &mut PgConnection,
    source: &mut dyn Snapshot,
) -> Result<u64, StoreError> {
    let mut copied = 0;
    let mut after = None;
    loop {
        let page = source.audit_events(after, q::COPY_PAGE).await?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for event in &page {
            copy_audit_query(event)
                .execute(&mut *tx)
                .await
                .map_err(classify)?;
        }
        copied += count(&page);
    }
    // The copied ids were given, not drawn: new events must come after them.
    sqlx::raw_sql(AUDIT_IDS_AFTER_COPY)
        .execute(&mut *tx)
        .await
        .map_err(classify)?;
    Ok(copied)
}

/// See `copy_secrets`.
const COPY_WITHOUT_COUNTING: &str = "ALTER TABLE secrets DISABLE TRIGGER secrets_count_insert";

/// See `copy_secrets`.
const COUNT_AFTER_COPY: &str = "UPDATE accounts a SET secret_count = \
     (SELECT COUNT(*) FROM secrets s WHERE s.account_id = a.id); \
     ALTER TABLE secrets ENABLE TRIGGER secrets_count_insert";

/// See `copy_audit_events`.
const AUDIT_IDS_AFTER_COPY: &str = "SELECT setval(pg_get_serial_sequence('audit_events', 'id'), \
     COALESCE((SELECT MAX(id) FROM audit_events), 0) + 1, false)";

/// Reads the snapshot a second time and the target inside the copy's
/// transaction, and requires them to be equal.
async fn verify(tx: &mut PgConnection, source: &mut dyn Snapshot) -> Result<(), StoreError> {
    for table in Table::ALL {
        let same = match table {
            Table::Meta => source.meta().await? == meta(tx).await?,
            Table::Accounts => source.accounts().await? == accounts(tx).await?,
            Table::ApiKeys => source.api_keys().await? == api_keys(tx).await?,
            Table::Secrets => {
                let mut after = None;
                loop {
                    let page = source.secrets(after, q::COPY_PAGE).await?;
                    // As many rows as the source's page (at least one, so
                    // that the source's last, empty page finds the target's
                    // end too).
                    let limit = u32::try_from(page.len().max(1)).unwrap_or(u32::MAX);
                    same_page(table, &page, &secrets(tx, after, limit).await?, |row| {
                        row.id
                    })?;
                    match page.last() {
                        Some(last) => after = Some(last.id),
                        None => break true,
                    }
                }
            }
            Table::AuditEvents => {
                let mut after = None;
                loop {
                    let page = source.audit_events(after, q::COPY_PAGE).await?;
                    let limit = u32::try_from(page.len().max(1)).unwrap_or(u32::MAX);
                    let mine = audit_events(tx, after, limit).await?;
                    same_page(table, &page, &mine, |row| row.id)?;
                    match page.last() {
                        Some(last) => after = Some(last.id),
                        None => break true,
                    }
                }
            }
        };
        if !same {
            return Err(mismatch(table.rows()));
        }
    }
    Ok(())
}
