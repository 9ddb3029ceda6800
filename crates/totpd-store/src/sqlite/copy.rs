//! `copy_from` into a SQLite database.

use rusqlite::{Connection, params};
use tokio::sync::mpsc;
use totpd_vault::{AccountRow, ApiKeyRow, CopyReport, SecretRow, Store, StoreError};

use super::conn::Opener;
use super::rows;
use crate::error::classify_sqlite;
use crate::queries as q;

/// Pages of rows on their way from the source to the transaction.
enum Chunk {
    Meta(Vec<(String, Vec<u8>)>),
    Accounts(Vec<AccountRow>),
    ApiKeys(Vec<ApiKeyRow>),
    Secrets(Vec<SecretRow>),
    /// Everything was sent: commit.
    Done,
}

/// Why feeding the copy stopped early.
enum Feed {
    /// The source failed.
    Source(StoreError),
    /// The transaction side stopped taking rows (it failed; its error says why).
    Closed,
}

/// Copies every row of `source` into the (empty) database `opener` opens.
///
/// The copy streams: the source is read page by page (async, on this task)
/// while a blocking task inserts each page into one `BEGIN IMMEDIATE`
/// transaction on a connection of its own. At most [`IN_FLIGHT`] pages wait
/// between them, so memory stays at a few pages of secrets (about 1 MiB with
/// 1,000-row pages) whatever the source's size. The emptiness check runs
/// inside that transaction, and any failure, of the source or of the
/// target, rolls the whole copy back.
///
/// While the copy holds the write lock, other writes to the target (this
/// process's group commits included) wait up to the busy timeout and then
/// fail as unavailable: copy into a database that is not yet in service.
pub(crate) async fn copy(opener: &Opener, source: &dyn Store) -> Result<CopyReport, StoreError> {
    let (pages, inbox) = mpsc::channel(IN_FLIGHT);
    let opener = opener.clone();
    let apply = tokio::task::spawn_blocking(move || apply(&opener, inbox));
    let fed = feed(source, &pages).await;
    drop(pages);
    let applied = apply
        .await
        .map_err(|e| StoreError::Other(format!("the SQLite copy task failed: {e}")))?;
    match (fed, applied) {
        (_, Ok(report)) => Ok(report),
        (Err(Feed::Source(error)), Err(_)) => Err(error),
        (_, Err(error)) => Err(error),
    }
}

/// Pages in flight between the source and the transaction.
const IN_FLIGHT: usize = 2;

async fn feed(source: &dyn Store, pages: &mpsc::Sender<Chunk>) -> Result<(), Feed> {
    let send = |chunk| async { pages.send(chunk).await.map_err(|_| Feed::Closed) };
    send(Chunk::Meta(source.dump_meta().await.map_err(Feed::Source)?)).await?;
    send(Chunk::Accounts(
        source.dump_accounts().await.map_err(Feed::Source)?,
    ))
    .await?;
    send(Chunk::ApiKeys(
        source.dump_api_keys().await.map_err(Feed::Source)?,
    ))
    .await?;
    let mut after = None;
    loop {
        let page = source
            .dump_secrets(after, q::COPY_PAGE)
            .await
            .map_err(Feed::Source)?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        send(Chunk::Secrets(page)).await?;
    }
    send(Chunk::Done).await
}

fn apply(opener: &Opener, mut inbox: mpsc::Receiver<Chunk>) -> Result<CopyReport, StoreError> {
    let conn = opener.writer().map_err(classify_sqlite)?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(classify_sqlite)?;
    let outcome = insert_all(&conn, &mut inbox);
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

fn insert_all(
    conn: &Connection,
    inbox: &mut mpsc::Receiver<Chunk>,
) -> Result<CopyReport, StoreError> {
    let any: bool = conn
        .query_row(q::HAS_ANY_ROW, [], |row| row.get(0))
        .map_err(classify_sqlite)?;
    if any {
        return Err(StoreError::Conflict(
            "the target database is not empty".to_owned(),
        ));
    }
    let mut report = CopyReport::default();
    while let Some(chunk) = inbox.blocking_recv() {
        let inserted = match chunk {
            Chunk::Meta(rows) => {
                report.meta += count(&rows);
                rows.iter().try_for_each(|(name, value)| {
                    conn.prepare_cached(q::INSERT_META)?
                        .execute(params![name, value])
                        .map(drop)
                })
            }
            Chunk::Accounts(rows) => {
                report.accounts += count(&rows);
                rows.iter()
                    .try_for_each(|row| rows::insert_account(conn, row).map(drop))
            }
            Chunk::ApiKeys(rows) => {
                report.api_keys += count(&rows);
                rows.iter()
                    .try_for_each(|row| rows::insert_api_key(conn, row).map(drop))
            }
            Chunk::Secrets(rows) => {
                report.secrets += count(&rows);
                rows.iter()
                    .try_for_each(|row| rows::insert_secret(conn, row).map(drop))
            }
            Chunk::Done => {
                conn.execute_batch("COMMIT").map_err(classify_sqlite)?;
                return Ok(report);
            }
        };
        inserted.map_err(classify_sqlite)?;
    }
    Err(StoreError::Other(
        "the copy was abandoned before it finished".to_owned(),
    ))
}

fn count<T>(rows: &[T]) -> u64 {
    u64::try_from(rows.len()).unwrap_or(u64::MAX)
}
