//! Group commit: one thread owns the write connection.
//!
//! Writes arrive over a channel, each with its own reply. The thread takes
//! whatever is queued (at most [`MAX_BATCH`]), runs it in one `BEGIN
//! IMMEDIATE` transaction with every write inside its own `SAVEPOINT` (a
//! write that fails, say on a unique constraint, is rolled back alone and
//! gets its own error), commits (one fsync of the WAL for the whole batch,
//! `synchronous = FULL`), and only then answers each write. Every
//! acknowledged write is therefore durable, and concurrent writers share
//! the cost of an fsync instead of queueing for one each.
//!
//! Other processes (`totpd keys create` while `serve` runs) take the same
//! file lock; `BEGIN IMMEDIATE` waits for them up to the busy timeout and
//! then fails the batch as unavailable.
//!
//! Deleting scrubs: `secure_delete` zeroes a deleted row in the database
//! file, but the WAL still holds earlier images of its page until they are
//! overwritten. After a batch that deleted a secret (and after answering
//! it), the thread checkpoints the WAL into the database file and
//! truncates it, so the ciphertext leaves the files promptly.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use totpd_vault::StoreError;

use crate::error::{classify_sqlite, duplicate};

/// Most writes in one transaction: bounds how long a batch holds the write
/// lock (and so how long the CLI may wait) and how much work one failed
/// commit undoes.
pub(crate) const MAX_BATCH: usize = 256;

/// Writes that may wait for the thread before senders wait too.
const QUEUE: usize = 4 * MAX_BATCH;

/// How long a scrubbing checkpoint waits for readers (this process's are
/// done in microseconds). If they take longer it gives up; the next scrub,
/// or SQLite's own checkpoints, finish the job.
const SCRUB_WAIT: Duration = Duration::from_millis(100);

/// The handle that queues writes for the writer thread. Dropping every
/// handle lets the thread finish what is queued and exit.
#[derive(Debug)]
pub(crate) struct Writer {
    jobs: mpsc::Sender<Box<dyn Job>>,
    stats: Arc<Stats>,
}

/// What the thread has done, for debugging (and the tests that check that
/// writes share commits).
#[derive(Debug, Default)]
pub(crate) struct Stats {
    /// Transactions committed.
    pub commits: AtomicU64,
    /// Writes that ran in them (including ones rolled back to a savepoint).
    pub writes: AtomicU64,
    /// Scrubbing checkpoints that emptied the WAL.
    pub scrubs: AtomicU64,
}

impl Writer {
    /// Starts the thread that owns `conn`, whose busy timeout is
    /// `busy_timeout`.
    pub(crate) fn start(conn: Connection, busy_timeout: Duration) -> Result<Writer, StoreError> {
        let (jobs, queue) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        let thread_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("totpd-sqlite-writer".to_owned())
            .spawn(move || run(&conn, busy_timeout, queue, &thread_stats))
            .map_err(|e| StoreError::Other(format!("cannot start the SQLite writer: {e}")))?;
        Ok(Writer { jobs, stats })
    }

    /// Runs `write` in the next group commit and returns its result once the
    /// commit is durable.
    pub(crate) async fn run<T, F>(&self, write: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(write, |_| false).await
    }

    /// Like [`Writer::run`], for a write that may remove data that must not
    /// linger: if `removed` says it did, then once the batch is answered the
    /// WAL is checkpointed and truncated.
    pub(crate) async fn run_and_scrub<T, F>(
        &self,
        write: F,
        removed: fn(&T) -> bool,
    ) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.submit(write, removed).await
    }

    async fn submit<T, F>(&self, write: F, scrub: fn(&T) -> bool) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel();
        let job = Box::new(Write {
            write: Some(write),
            result: None,
            scrub,
            reply,
        });
        self.jobs.send(job).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }

    pub(crate) fn stats(&self) -> &Stats {
        &self.stats
    }
}

fn stopped() -> StoreError {
    StoreError::Unavailable("the SQLite writer has stopped".to_owned())
}

/// One queued write, type-erased so one channel carries them all.
trait Job: Send {
    /// Runs the write inside the open transaction; returns whether it
    /// succeeded (so its savepoint is kept).
    fn run(&mut self, conn: &Connection) -> bool;
    /// Whether the WAL should be scrubbed after this write.
    fn scrubs(&self) -> bool;
    /// Answers the caller once the transaction's fate is known.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

struct Write<T, F> {
    write: Option<F>,
    result: Option<Result<T, StoreError>>,
    scrub: fn(&T) -> bool,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn run(&mut self, conn: &Connection) -> bool {
        let Some(write) = self.write.take() else {
            return false;
        };
        let result = write(conn).map_err(classify_sqlite);
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn scrubs(&self) -> bool {
        matches!(&self.result, Some(Ok(value)) if (self.scrub)(value))
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let answer = match (commit, self.result) {
            (Err(e), _) => Err(e),
            (Ok(()), Some(result)) => result,
            (Ok(()), None) => Err(StoreError::Other("the write never ran".to_owned())),
        };
        // The caller may have given up waiting; the write stands regardless.
        let _ = self.reply.send(answer);
    }
}

fn run(
    conn: &Connection,
    busy_timeout: Duration,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    stats: &Stats,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match queue.try_recv() {
                Ok(job) => batch.push(job),
                Err(_) => break,
            }
        }
        let committed = commit(conn, &mut batch);
        if committed.is_ok() {
            stats.commits.fetch_add(1, Ordering::Relaxed);
            stats
                .writes
                .fetch_add(u64::try_from(batch.len()).unwrap_or(0), Ordering::Relaxed);
        } else if !conn.is_autocommit() {
            // Whatever failed, leave no transaction open for the next batch.
            let _ = conn.execute_batch("ROLLBACK");
        }
        let scrub = committed.is_ok() && batch.iter().any(|job| job.scrubs());
        for job in batch.drain(..) {
            job.finish(committed.as_ref().map(|_| ()).map_err(duplicate));
        }
        if scrub && scrub_wal(conn, busy_timeout) {
            stats.scrubs.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Copies the WAL into the database file and truncates it to zero bytes;
/// returns whether it got that far.
fn scrub_wal(conn: &Connection, busy_timeout: Duration) -> bool {
    let waited = conn.busy_timeout(SCRUB_WAIT);
    let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    let restored = conn.busy_timeout(busy_timeout);
    match (waited.and(restored), checkpoint) {
        (Ok(()), Ok(0)) => true,
        (Ok(()), Ok(_)) => {
            tracing::debug!("readers kept the WAL busy; it will be emptied later");
            false
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(%error, "checkpointing the SQLite WAL failed");
            false
        }
    }
}

/// Runs `batch` in one transaction. An error here fails the whole batch.
fn commit(conn: &Connection, batch: &mut [Box<dyn Job>]) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        exec(conn, "SAVEPOINT write")?;
        if job.run(conn) {
            exec(conn, "RELEASE write")?;
        } else {
            exec(conn, "ROLLBACK TO write")?;
            exec(conn, "RELEASE write")?;
        }
    }
    exec(conn, "COMMIT")
}

fn exec(conn: &Connection, sql: &str) -> Result<(), StoreError> {
    conn.prepare_cached(sql)
        .and_then(|mut statement| statement.execute([]))
        .map(|_| ())
        .map_err(classify_sqlite)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    type BoxedWrite = Box<dyn FnOnce(&Connection) -> rusqlite::Result<()> + Send>;

    fn insert(name: &'static str) -> impl FnOnce(&Connection) -> rusqlite::Result<()> {
        move |conn| {
            conn.execute("INSERT INTO meta (name) VALUES (?1)", [name])
                .map(|_| ())
        }
    }

    #[tokio::test]
    async fn a_failing_write_rolls_back_alone_and_the_batch_commits_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE meta (name TEXT PRIMARY KEY)")
            .unwrap();
        conn.busy_timeout(Duration::from_secs(10)).unwrap();
        let writer = Arc::new(Writer::start(conn, Duration::from_secs(10)).unwrap());
        // Another connection holds the write lock, so the first batch waits
        // in BEGIN IMMEDIATE and the later writes queue up behind it.
        let blocker = Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let spawn = |write: BoxedWrite| {
            let writer = Arc::clone(&writer);
            tokio::spawn(async move { writer.run(write).await })
        };
        let first = spawn(Box::new(insert("first")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let b = spawn(Box::new(insert("b")));
        // Two statements; the second fails, and its savepoint must take the
        // first one back too.
        let failing = spawn(Box::new(|conn: &Connection| {
            insert("x")(conn)?;
            insert("b")(conn)
        }));
        let c = spawn(Box::new(insert("c")));
        tokio::time::sleep(Duration::from_millis(100)).await;
        blocker.execute_batch("COMMIT").unwrap();

        assert!(first.await.unwrap().is_ok());
        assert!(b.await.unwrap().is_ok());
        let failed = failing.await.unwrap();
        assert!(matches!(failed, Err(StoreError::Conflict(_))), "{failed:?}");
        assert!(c.await.unwrap().is_ok());
        let stats = writer.stats();
        assert_eq!(stats.writes.load(Ordering::Relaxed), 4);
        assert!(
            stats.commits.load(Ordering::Relaxed) <= 2,
            "writes did not share commits"
        );
        let names: Vec<String> = blocker
            .prepare("SELECT name FROM meta ORDER BY name")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(names, ["b", "c", "first"]);
    }

    #[tokio::test]
    async fn a_batch_that_cannot_take_the_lock_fails_as_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.db");
        let conn = Connection::open(&path).unwrap();
        conn.execute_batch("PRAGMA journal_mode = WAL; CREATE TABLE meta (name TEXT PRIMARY KEY)")
            .unwrap();
        conn.busy_timeout(Duration::from_millis(50)).unwrap();
        let writer = Writer::start(conn, Duration::from_millis(50)).unwrap();
        let blocker = Connection::open(&path).unwrap();
        blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
        let busy = writer.run(insert("a")).await;
        assert!(matches!(busy, Err(StoreError::Unavailable(_))), "{busy:?}");
        blocker.execute_batch("COMMIT").unwrap();
        // The writer recovers once the lock is free.
        writer.run(insert("a")).await.unwrap();
    }
}
