//! Opening connections (with the pragmas each role needs) and migrating.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};
use totpd_vault::StoreError;

use super::url::{Location, Mode};
use crate::error::classify_sqlite;
use crate::schema::{self, Executor, Migration, pending};

/// Page cache of each read connection, in KiB. Connections do not share
/// caches, so the total is this times the connections in use (a handful: hot
/// path reads run inline on the runtime's few worker threads). The interior
/// B-tree pages of a million secrets take about 1.5 MiB, so a code lookup
/// misses only on its leaf, which the kernel's page cache serves.
const READ_CACHE_KIB: i64 = 2 * 1024;

/// Page cache of the writer (and of a copy), in KiB: inserts touch the
/// leaves of two B-trees at random places.
const WRITE_CACHE_KIB: i64 = 8 * 1024;

/// Statements kept prepared per connection: every statement this crate runs
/// fits, so none is ever parsed twice.
const STATEMENT_CACHE: usize = 32;

/// Everything needed to open another connection to the same database.
#[derive(Clone, Debug)]
pub(crate) struct Opener {
    path: PathBuf,
    mode: Mode,
    busy_timeout: Duration,
}

impl Opener {
    pub(crate) fn new(location: Location, busy_timeout: Duration) -> Opener {
        Opener {
            path: location.path,
            mode: location.mode,
            busy_timeout,
        }
    }

    pub(crate) fn mode(&self) -> Mode {
        self.mode
    }

    /// A connection for writing: group commits, migrations, copies.
    ///
    /// Durability: `synchronous = FULL` fsyncs the WAL at every commit, so a
    /// write acknowledged after its commit survives `kill -9` and power loss.
    /// `secure_delete` overwrites deleted rows with zeros, so a deleted
    /// secret's ciphertext does not linger in free space.
    ///
    /// `temp_store = MEMORY`: every write of a group commit runs in its own
    /// savepoint, whose sub-journal (the prior images of the pages it
    /// changes) SQLite otherwise spills to a temporary file past 64 KiB,
    /// which an audited batch reaches: a file created, unlinked and closed
    /// in the temporary directory per commit, with page images of the
    /// database (ciphertexts included) left in that filesystem's free
    /// space. In memory it is a copy per changed page, bounded by what one
    /// write changes (an import: at most its entry limit of rows).
    pub(crate) fn writer(&self) -> rusqlite::Result<Connection> {
        let flags = match self.mode {
            Mode::Create => OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE,
            Mode::Existing => OpenFlags::SQLITE_OPEN_READ_WRITE,
            Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        let conn = self.open(flags, WRITE_CACHE_KIB)?;
        conn.execute_batch("PRAGMA temp_store = MEMORY")?;
        if self.mode != Mode::ReadOnly {
            // Persistent in the file; readers never wait for the writer. On a
            // filesystem without shared memory SQLite keeps its old mode,
            // which is still correct, only slower.
            let journal: String =
                conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
            if !journal.eq_ignore_ascii_case("wal") {
                tracing::warn!(journal, "SQLite could not switch to WAL mode");
            }
        }
        Ok(conn)
    }

    /// A connection for the read pool. `query_only` makes a stray write on
    /// it fail instead of bypassing the writer.
    pub(crate) fn reader(&self) -> rusqlite::Result<Connection> {
        let flags = match self.mode {
            Mode::ReadOnly => OpenFlags::SQLITE_OPEN_READ_ONLY,
            Mode::Create | Mode::Existing => OpenFlags::SQLITE_OPEN_READ_WRITE,
        };
        let conn = self.open(flags, READ_CACHE_KIB)?;
        conn.execute_batch("PRAGMA query_only = ON")?;
        Ok(conn)
    }

    fn open(&self, flags: OpenFlags, cache_kib: i64) -> rusqlite::Result<Connection> {
        // No SQLITE_OPEN_URI: the path is a plain file name. NO_MUTEX: a
        // connection is only ever used by one thread at a time.
        let conn =
            Connection::open_with_flags(&self.path, flags | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        conn.busy_timeout(self.busy_timeout)?;
        conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE);
        // mmap stays off: mapped pages of the file count in the process's
        // RSS, and random lookups over a million secrets would map most of
        // the file. Reads copy a 4 KiB page from the kernel's cache instead.
        conn.execute_batch(&format!(
            "PRAGMA synchronous = FULL;
             PRAGMA foreign_keys = ON;
             PRAGMA secure_delete = ON;
             PRAGMA mmap_size = 0;
             PRAGMA cache_size = -{cache_kib};"
        ))?;
        Ok(conn)
    }
}

/// Applies pending migrations on `conn` (a writer).
///
/// `BEGIN IMMEDIATE` takes the write lock before reading the recorded
/// versions, so two processes opening a fresh database at once apply each
/// step exactly once: the second waits (busy timeout) and finds nothing to
/// do. A read-only database is only checked.
pub(crate) fn migrate(conn: &Connection, mode: Mode) -> Result<(), StoreError> {
    if mode == Mode::ReadOnly {
        let applied = applied_versions(conn, false).map_err(classify_sqlite)?;
        if applied.is_empty() || !pending(&applied, schema::SQLITE)?.is_empty() {
            return Err(StoreError::other_msg(
                "the SQLite database needs migrating but was opened read-only (mode=ro)".to_owned(),
            ));
        }
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")
        .map_err(classify_sqlite)?;
    let outcome = apply_pending(conn);
    let end = if outcome.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    let ended = conn.execute_batch(end).map_err(classify_sqlite);
    if ended.is_err() && !conn.is_autocommit() {
        let _ = conn.execute_batch("ROLLBACK");
    }
    outcome.and(ended)
}

/// Runs the schema runner on `conn`. Every call on a rusqlite connection
/// blocks and none waits on anything else, so the runner's future is ready
/// at its first poll: polled once, here, on the calling (blocking) thread.
fn apply_pending(conn: &Connection) -> Result<(), StoreError> {
    let mut executor = SqliteMigrations(conn);
    let running = schema::run(&mut executor, schema::SQLITE);
    let mut running = std::pin::pin!(running);
    let mut context = std::task::Context::from_waker(std::task::Waker::noop());
    match running.as_mut().poll(&mut context) {
        std::task::Poll::Ready(outcome) => outcome,
        std::task::Poll::Pending => Err(StoreError::other_msg(
            "the SQLite schema runner did not finish at once".to_owned(),
        )),
    }
}

/// The schema runner's executor: the writer, inside `BEGIN IMMEDIATE`.
struct SqliteMigrations<'a>(&'a Connection);

impl Executor for SqliteMigrations<'_> {
    async fn applied(&mut self) -> Result<Vec<i64>, StoreError> {
        applied_versions(self.0, true).map_err(classify_sqlite)
    }

    async fn apply(&mut self, step: &Migration) -> Result<(), StoreError> {
        self.0.execute_batch(step.sql).map_err(classify_sqlite)?;
        self.0
            .execute(
                "INSERT INTO schema_migrations (version, applied_at) \
                 VALUES (?1, CAST(strftime('%s', 'now') AS INTEGER))",
                [step.version],
            )
            .map_err(classify_sqlite)
            .map(drop)
    }
}

fn applied_versions(conn: &Connection, create: bool) -> rusqlite::Result<Vec<i64>> {
    if create {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS schema_migrations \
             (version INTEGER PRIMARY KEY, applied_at INTEGER NOT NULL)",
        )?;
    } else {
        let exists: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_schema \
             WHERE type = 'table' AND name = 'schema_migrations')",
            [],
            |row| row.get(0),
        )?;
        if !exists {
            return Ok(Vec::new());
        }
    }
    let mut statement = conn.prepare("SELECT version FROM schema_migrations")?;
    let versions = statement.query_map([], |row| row.get(0))?;
    versions.collect()
}

/// A migrated in-memory database, for checking statements against the schema.
#[cfg(test)]
pub(crate) fn scratch() -> Connection {
    let conn = Connection::open_in_memory().unwrap();
    migrate(&conn, Mode::Create).unwrap();
    conn
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pragma(conn: &Connection, name: &str) -> i64 {
        conn.query_row(&format!("PRAGMA {name}"), [], |row| row.get(0))
            .unwrap()
    }

    #[test]
    fn the_writer_keeps_its_sub_journals_in_memory_and_fsyncs_every_commit() {
        let dir = tempfile::tempdir().unwrap();
        let opener = Opener::new(
            Location {
                path: dir.path().join("totpd.db"),
                mode: Mode::Create,
            },
            Duration::from_secs(1),
        );
        let writer = opener.writer().unwrap();
        // 2 = MEMORY: no temporary file per group commit.
        assert_eq!(pragma(&writer, "temp_store"), 2);
        // 2 = FULL.
        assert_eq!(pragma(&writer, "synchronous"), 2);
        let reader = opener.reader().unwrap();
        assert_eq!(pragma(&reader, "query_only"), 1);
    }
}
