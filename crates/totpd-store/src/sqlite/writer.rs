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
//! Request deadlines: a write submitted from a request carries the request's
//! [`Deadline`]. Once the batch holds the write lock, each write claims its
//! deadline before it runs; a write whose request has already timed out
//! (and been answered 503) is skipped, and a claimed write makes the server
//! wait for its answer past the deadline. So a write commits if and only if
//! its request is answered with its outcome.
//!
//! Deleting scrubs: `secure_delete` zeroes a deleted row in the database
//! file, but the WAL still holds earlier images of its page until they are
//! overwritten. After a batch that deleted a secret (and after answering
//! it), the thread checkpoints the WAL into the database file and
//! truncates it, so the ciphertext leaves the files promptly. A reader
//! (another process's, say a backup) can hold the WAL busy; then the thread
//! retries, with a backoff capped at [`SCRUB_RETRY_MAX`], whenever it is
//! idle, until a checkpoint succeeds. `journal_size_limit` also caps what a
//! checkpoint that cannot truncate leaves behind.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rusqlite::Connection;
use tokio::sync::{mpsc, oneshot};
use totpd_vault::StoreError;
use totpd_vault::deadline::{self, Deadline};

use crate::error::{classify_sqlite, duplicate};

/// Most writes in one transaction: bounds how long a batch holds the write
/// lock (and so how long the CLI may wait) and how much work one failed
/// commit undoes.
pub(crate) const MAX_BATCH: usize = 256;

/// Writes that may wait for the thread before senders wait too.
const QUEUE: usize = 4 * MAX_BATCH;

/// How long a scrubbing checkpoint waits for readers (this process's are
/// done in microseconds). If they take longer it gives up and retries later.
const SCRUB_WAIT: Duration = Duration::from_millis(100);

/// How long a retried checkpoint waits for readers: short, as the writer
/// thread serves no write meanwhile.
const SCRUB_RETRY_WAIT: Duration = Duration::from_millis(10);

/// First pause before a failed scrub is retried; it doubles up to
/// [`SCRUB_RETRY_MAX`] and stays there until a checkpoint succeeds.
const SCRUB_RETRY_FIRST: Duration = Duration::from_millis(20);

/// Longest pause between two scrub attempts.
const SCRUB_RETRY_MAX: Duration = Duration::from_millis(500);

/// Bytes of WAL kept on disk after a checkpoint resets it
/// (`journal_size_limit`): a burst of writes does not leave a large WAL
/// behind, with old page images in it, when a checkpoint cannot truncate.
pub(crate) const JOURNAL_SIZE_LIMIT: i64 = 4 * 1024 * 1024;

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
    /// Scrubbing checkpoints that readers kept from emptying the WAL (each
    /// is retried).
    pub scrub_failures: AtomicU64,
    /// Writes skipped because their request had timed out.
    pub abandoned: AtomicU64,
}

impl Writer {
    /// Starts the thread that owns `conn`, whose busy timeout is
    /// `busy_timeout`.
    pub(crate) fn start(conn: Connection, busy_timeout: Duration) -> Result<Writer, StoreError> {
        // Persistent for the connection; read back so a build that ignores
        // it is noticed.
        let limit: i64 = conn
            .query_row(
                &format!("PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT}"),
                [],
                |row| row.get(0),
            )
            .map_err(classify_sqlite)?;
        if limit != JOURNAL_SIZE_LIMIT {
            tracing::warn!(limit, "SQLite did not take journal_size_limit");
        }
        let (jobs, queue) = mpsc::channel(QUEUE);
        let stats = Arc::new(Stats::default());
        let thread_stats = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("totpd-sqlite-writer".to_owned())
            .spawn(move || run(&conn, busy_timeout, queue, &thread_stats))
            .map_err(|e| StoreError::other("cannot start the SQLite writer", e))?;
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
            deadline: deadline::current(),
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
    StoreError::unavailable_msg("the SQLite writer has stopped".to_owned())
}

fn abandoned() -> StoreError {
    StoreError::unavailable_msg(
        "the request timed out before its write was committed; nothing was stored".to_owned(),
    )
}

/// One queued write, type-erased so one channel carries them all.
trait Job: Send {
    /// Claims the write's request deadline (see the module doc): false if
    /// the request has timed out, and the write is then answered as
    /// abandoned without running.
    fn claim(&mut self) -> bool;
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
    deadline: Option<Arc<Deadline>>,
    reply: oneshot::Sender<Result<T, StoreError>>,
}

impl<T, F> Job for Write<T, F>
where
    T: Send,
    F: FnOnce(&Connection) -> rusqlite::Result<T> + Send,
{
    fn claim(&mut self) -> bool {
        if self.deadline.as_ref().is_none_or(|d| d.claim()) {
            return true;
        }
        self.write = None;
        self.result = Some(Err(abandoned()));
        false
    }

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
            (Ok(()), None) => Err(StoreError::other_msg("the write never ran")),
        };
        // A caller that has gone away had its deadline claimed (so the
        // server still waits for it) or the write never ran.
        let _ = self.reply.send(answer);
    }
}

fn run(
    conn: &Connection,
    busy_timeout: Duration,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    stats: &Stats,
) {
    // Only to wait for the next write with a timeout while a scrub is due.
    let waiter = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build();
    let waiter = match waiter {
        Ok(waiter) => waiter,
        Err(error) => {
            tracing::error!(%error, "the SQLite writer cannot wait with a timeout; scrubs are not retried");
            return run_without_retries(conn, busy_timeout, queue, stats);
        }
    };
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    // While a scrub is due: when to try next, and the pause that led there.
    let mut due: Option<(Instant, Duration)> = None;
    loop {
        if let Some((at, pause)) = due
            && totpd_vault::clock::monotonic_now() >= at
        {
            due = scrub_or_retry(conn, busy_timeout, SCRUB_RETRY_WAIT, stats, pause);
            continue;
        }
        let first = match due {
            None => queue.blocking_recv(),
            Some((at, _)) => {
                let at = tokio::time::Instant::from_std(at);
                // The timer is made inside the runtime, which it needs.
                let next =
                    waiter.block_on(async { tokio::time::timeout_at(at, queue.recv()).await });
                match next {
                    Ok(job) => job,
                    // Idle until the attempt is due.
                    Err(_) => continue,
                }
            }
        };
        let Some(first) = first else { break };
        if run_batch(conn, &mut queue, &mut batch, first, stats) {
            due = scrub_or_retry(conn, busy_timeout, SCRUB_WAIT, stats, SCRUB_RETRY_FIRST / 2);
        }
    }
    if due.is_some() {
        // Shutting down: one last, patient attempt.
        let _ = scrub_wal(conn, busy_timeout, busy_timeout);
    }
}

/// The loop of [`run`] for when no timer can be had: scrubs are tried once.
fn run_without_retries(
    conn: &Connection,
    busy_timeout: Duration,
    mut queue: mpsc::Receiver<Box<dyn Job>>,
    stats: &Stats,
) {
    let mut batch: Vec<Box<dyn Job>> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        if run_batch(conn, &mut queue, &mut batch, first, stats) {
            let _ = scrub_or_retry(conn, busy_timeout, SCRUB_WAIT, stats, SCRUB_RETRY_FIRST);
        }
    }
}

/// Takes what is queued after `first`, commits it and answers every write;
/// returns whether a write asks for the WAL to be scrubbed.
fn run_batch(
    conn: &Connection,
    queue: &mut mpsc::Receiver<Box<dyn Job>>,
    batch: &mut Vec<Box<dyn Job>>,
    first: Box<dyn Job>,
    stats: &Stats,
) -> bool {
    batch.push(first);
    while batch.len() < MAX_BATCH {
        match queue.try_recv() {
            Ok(job) => batch.push(job),
            Err(_) => break,
        }
    }
    // Shared: every write in the batch gets the one failure as its cause.
    let committed = commit(conn, batch, stats).map_err(std::sync::Arc::new);
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
    scrub
}

/// Tries to scrub the WAL, waiting up to `wait` for readers. Returns `None`
/// once done, else when to try again and the pause until then: double
/// `previous`, at most [`SCRUB_RETRY_MAX`].
fn scrub_or_retry(
    conn: &Connection,
    busy_timeout: Duration,
    wait: Duration,
    stats: &Stats,
    previous: Duration,
) -> Option<(Instant, Duration)> {
    if scrub_wal(conn, busy_timeout, wait) {
        stats.scrubs.fetch_add(1, Ordering::Relaxed);
        None
    } else {
        stats.scrub_failures.fetch_add(1, Ordering::Relaxed);
        let pause = (previous * 2).min(SCRUB_RETRY_MAX);
        Some((totpd_vault::clock::monotonic_now() + pause, pause))
    }
}

/// Copies the WAL into the database file and truncates it to zero bytes,
/// waiting up to `wait` for readers; returns whether it got that far.
fn scrub_wal(conn: &Connection, busy_timeout: Duration, wait: Duration) -> bool {
    let waited = conn.busy_timeout(wait);
    let checkpoint = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
        row.get::<_, i64>(0)
    });
    let restored = conn.busy_timeout(busy_timeout);
    match (waited.and(restored), checkpoint) {
        (Ok(()), Ok(0)) => true,
        (Ok(()), Ok(_)) => {
            tracing::debug!("readers kept the WAL busy; the scrub will be retried");
            false
        }
        (Err(error), _) | (_, Err(error)) => {
            tracing::warn!(error = %totpd_vault::ErrorChain(&error), "checkpointing the SQLite WAL failed; it will be retried");
            false
        }
    }
}

/// Runs `batch` in one transaction. An error here fails the whole batch.
/// Writes are claimed only once the write lock is held, so a write that
/// waited for the lock past its request's deadline is skipped.
fn commit(conn: &Connection, batch: &mut [Box<dyn Job>], stats: &Stats) -> Result<(), StoreError> {
    exec(conn, "BEGIN IMMEDIATE")?;
    for job in batch.iter_mut() {
        if !job.claim() {
            stats.abandoned.fetch_add(1, Ordering::Relaxed);
            continue;
        }
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
        assert!(
            matches!(failed, Err(StoreError::Conflict { .. })),
            "{failed:?}"
        );
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
        assert!(
            matches!(busy, Err(StoreError::Unavailable { .. })),
            "{busy:?}"
        );
        blocker.execute_batch("COMMIT").unwrap();
        // The writer recovers once the lock is free.
        writer.run(insert("a")).await.unwrap();
    }
}
