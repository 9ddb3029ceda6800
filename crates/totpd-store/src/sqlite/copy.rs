//! `copy_from` into a SQLite database.

use rusqlite::{Connection, params};
use tokio::sync::mpsc;
use totpd_vault::{AccountRow, ApiKeyRow, AuditRow, CopyReport, SecretRow, Snapshot, StoreError};
use uuid::Uuid;

use super::conn::Opener;
use super::{rows, snapshot};
use crate::error::classify_sqlite;
use crate::queries as q;
use crate::tables::{HAS_ANY_ROW, Table, all_in};
use crate::verify::{count, mismatch, same_page};

/// A page of rows of one table, as read from the source.
enum Rows {
    Meta(Vec<(String, Vec<u8>)>),
    Accounts(Vec<AccountRow>),
    ApiKeys(Vec<ApiKeyRow>),
    /// One page of secrets; an empty page ends the table.
    Secrets(Vec<SecretRow>),
    /// One page of audit events; an empty page ends the table.
    Audit(Vec<AuditRow>),
}

impl Rows {
    fn table(&self) -> Table {
        match self {
            Rows::Meta(_) => Table::Meta,
            Rows::Accounts(_) => Table::Accounts,
            Rows::ApiKeys(_) => Table::ApiKeys,
            Rows::Secrets(_) => Table::Secrets,
            Rows::Audit(_) => Table::AuditEvents,
        }
    }

    fn len(&self) -> u64 {
        match self {
            Rows::Meta(rows) => count(rows),
            Rows::Accounts(rows) => count(rows),
            Rows::ApiKeys(rows) => count(rows),
            Rows::Secrets(rows) => count(rows),
            Rows::Audit(rows) => count(rows),
        }
    }
}

/// What the transaction side is asked to do next.
enum Step {
    /// Insert these rows.
    Insert(Rows),
    /// Compare these rows (the source read a second time) with the target's.
    Check(Rows),
    /// Everything was sent and checked: commit.
    Commit,
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
/// The copy streams: the snapshot is read page by page (async, on this task)
/// while a blocking task inserts each page into one `BEGIN IMMEDIATE`
/// transaction on a connection of its own. At most [`IN_FLIGHT`] pages wait
/// between them, so memory stays at a few pages of secrets (about 1 MiB with
/// 1,000-row pages) whatever the source's size. The emptiness check runs
/// inside that transaction; so does the verification (see `crate::verify`),
/// which reads the snapshot a second time and compares each page with the
/// target's. Any failure, of the source, of the target or of the
/// comparison, rolls the whole copy back.
///
/// While the copy holds the write lock, other writes to the target (this
/// process's group commits included) wait up to the busy timeout and then
/// fail as unavailable: copy into a database that is not yet in service.
pub(crate) async fn copy(
    opener: &Opener,
    source: &mut dyn Snapshot,
) -> Result<CopyReport, StoreError> {
    let (steps, inbox) = mpsc::channel(IN_FLIGHT);
    let opener = opener.clone();
    let apply = tokio::task::spawn_blocking(move || apply(&opener, inbox));
    let fed = feed(source, &steps).await;
    drop(steps);
    let applied = apply
        .await
        .map_err(|e| StoreError::other("the SQLite copy task failed", e))?;
    match (fed, applied) {
        (_, Ok(report)) => Ok(report),
        (Err(Feed::Source(error)), Err(_)) => Err(error),
        (_, Err(error)) => Err(error),
    }
}

/// Pages in flight between the source and the transaction.
const IN_FLIGHT: usize = 2;

async fn feed(source: &mut dyn Snapshot, steps: &mpsc::Sender<Step>) -> Result<(), Feed> {
    send_all(source, steps, Step::Insert).await?;
    send_all(source, steps, Step::Check).await?;
    steps.send(Step::Commit).await.map_err(|_| Feed::Closed)
}

/// Reads every table of `source` and sends it, each page wrapped by `step`.
async fn send_all(
    source: &mut dyn Snapshot,
    steps: &mpsc::Sender<Step>,
    step: fn(Rows) -> Step,
) -> Result<(), Feed> {
    let send = |rows| async move { steps.send(step(rows)).await.map_err(|_| Feed::Closed) };
    for table in Table::ALL {
        match table {
            Table::Meta => send(Rows::Meta(source.meta().await.map_err(Feed::Source)?)).await?,
            Table::Accounts => {
                send(Rows::Accounts(
                    source.accounts().await.map_err(Feed::Source)?,
                ))
                .await?;
            }
            Table::ApiKeys => {
                send(Rows::ApiKeys(
                    source.api_keys().await.map_err(Feed::Source)?,
                ))
                .await?;
            }
            Table::Secrets => {
                let mut after = None;
                loop {
                    let page = source
                        .secrets(after, q::COPY_PAGE)
                        .await
                        .map_err(Feed::Source)?;
                    let last = page.last().map(|row| row.id);
                    send(Rows::Secrets(page)).await?;
                    match last {
                        Some(id) => after = Some(id),
                        None => break,
                    }
                }
            }
            Table::AuditEvents => {
                let mut after = None;
                loop {
                    let page = source
                        .audit_events(after, q::COPY_PAGE)
                        .await
                        .map_err(Feed::Source)?;
                    let last = page.last().map(|row| row.id);
                    send(Rows::Audit(page)).await?;
                    match last {
                        Some(id) => after = Some(id),
                        None => break,
                    }
                }
            }
        }
    }
    Ok(())
}

fn apply(opener: &Opener, mut inbox: mpsc::Receiver<Step>) -> Result<CopyReport, StoreError> {
    let conn = opener.writer().map_err(classify_sqlite)?;
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(classify_sqlite)?;
    let outcome = copy_all(&conn, &mut inbox);
    if outcome.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome
}

/// How far the verification got.
#[derive(Default)]
struct Checked {
    /// The tables compared to their end (for a paged table: its source's
    /// last, empty page was compared too).
    done: Vec<Table>,
    /// The last secret compared so far.
    secrets_after: Option<Uuid>,
    /// The last audit event compared so far.
    audit_after: Option<i64>,
}

fn copy_all(conn: &Connection, inbox: &mut mpsc::Receiver<Step>) -> Result<CopyReport, StoreError> {
    let any: bool = conn
        .query_row(HAS_ANY_ROW.as_str(), [], |row| row.get(0))
        .map_err(classify_sqlite)?;
    if any {
        return Err(StoreError::conflict_msg(
            "the target database is not empty".to_owned(),
        ));
    }
    let mut report = CopyReport::default();
    let mut checked = Checked::default();
    while let Some(step) = inbox.blocking_recv() {
        match step {
            Step::Insert(rows) => insert(conn, &rows, &mut report).map_err(classify_sqlite)?,
            Step::Check(rows) => check(conn, &rows, &mut checked)?,
            Step::Commit => {
                if !all_in(&checked.done) {
                    return Err(StoreError::other_msg(
                        "the copy was about to commit unverified".to_owned(),
                    ));
                }
                conn.execute_batch("COMMIT").map_err(classify_sqlite)?;
                return Ok(report);
            }
        }
    }
    Err(StoreError::other_msg(
        "the copy was abandoned before it finished".to_owned(),
    ))
}

fn insert(conn: &Connection, rows: &Rows, report: &mut CopyReport) -> rusqlite::Result<()> {
    rows.table().count(report, rows.len());
    match rows {
        Rows::Meta(rows) => rows.iter().try_for_each(|(name, value)| {
            conn.prepare_cached(q::INSERT_META)?
                .execute(params![name, value])
                .map(drop)
        }),
        Rows::Accounts(rows) => rows
            .iter()
            .try_for_each(|row| rows::insert_account(conn, row).map(drop)),
        Rows::ApiKeys(rows) => rows
            .iter()
            .try_for_each(|row| rows::insert_api_key(conn, row).map(drop)),
        Rows::Secrets(rows) => rows
            .iter()
            .try_for_each(|row| rows::insert_secret(conn, row).map(drop)),
        Rows::Audit(rows) => rows
            .iter()
            .try_for_each(|row| rows::copy_audit(conn, row).map(drop)),
    }
}

/// Compares rows of the source with the target's, read in the copy's own
/// transaction (so they are exactly what the commit would make durable).
fn check(conn: &Connection, rows: &Rows, checked: &mut Checked) -> Result<(), StoreError> {
    let table = rows.table();
    let whole = |same: bool| {
        if same {
            Ok(true)
        } else {
            Err(mismatch(table.rows()))
        }
    };
    let finished = match rows {
        Rows::Meta(rows) => whole(*rows == snapshot::meta(conn).map_err(classify_sqlite)?)?,
        Rows::Accounts(rows) => whole(*rows == snapshot::accounts(conn).map_err(classify_sqlite)?)?,
        Rows::ApiKeys(rows) => whole(*rows == snapshot::api_keys(conn).map_err(classify_sqlite)?)?,
        Rows::Secrets(page) => {
            // As many rows as the source's page (at least one, so that the
            // source's last, empty page finds the target's end too).
            let limit = u32::try_from(page.len().max(1)).unwrap_or(u32::MAX);
            let mine =
                snapshot::secrets(conn, checked.secrets_after, limit).map_err(classify_sqlite)?;
            same_page(table, page, &mine, |row| row.id)?;
            checked.secrets_after = page.last().map(|last| last.id);
            page.is_empty()
        }
        Rows::Audit(page) => {
            let limit = u32::try_from(page.len().max(1)).unwrap_or(u32::MAX);
            let mine = snapshot::audit_events(conn, checked.audit_after, limit)
                .map_err(classify_sqlite)?;
            same_page(table, page, &mine, |row| row.id)?;
            checked.audit_after = page.last().map(|last| last.id);
            page.is_empty()
        }
    };
    if finished {
        checked.done.push(table);
    }
    Ok(())
}
