//! The read connections.
//!
//! Point lookups run *inline* on the calling task: take a connection, run a
//! cached statement, put it back. Reading a row from the page cache takes a
//! few microseconds, less than handing the query to another thread and
//! waking the task again. Reads never hold a connection across an `.await`,
//! so the connections in use at once are about the runtime's worker threads
//! plus the larger reads that run on the blocking pool.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rusqlite::Connection;
use tokio::sync::{Semaphore, TryAcquireError};
use totpd_vault::{PoolStatus, StoreError};

use super::conn::Opener;
use crate::error::classify_sqlite;

/// A bounded pool of read connections, opened on first need.
#[derive(Debug)]
pub(crate) struct ReadPool {
    idle: Mutex<Vec<Counted>>,
    permits: Arc<Semaphore>,
    open: Arc<AtomicU32>,
    max: u32,
    opener: Opener,
    acquire_timeout: Duration,
}

/// A connection that keeps the pool's count of open connections right
/// however it is dropped.
#[derive(Debug)]
struct Counted {
    conn: Connection,
    open: Arc<AtomicU32>,
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::Relaxed);
    }
}

impl ReadPool {
    /// A pool of at most `max` connections; opens one now, so a database
    /// that cannot be read fails at start rather than on the first request.
    pub(crate) fn new(
        opener: Opener,
        max: u32,
        acquire_timeout: Duration,
    ) -> Result<ReadPool, StoreError> {
        let max = max.max(1);
        let pool = ReadPool {
            idle: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(usize::try_from(max).unwrap_or(1))),
            open: Arc::new(AtomicU32::new(0)),
            max,
            opener,
            acquire_timeout,
        };
        let first = pool.open()?;
        pool.idle().push(first);
        Ok(pool)
    }

    pub(crate) fn status(&self) -> PoolStatus {
        let idle = u32::try_from(self.idle().len()).unwrap_or(u32::MAX);
        PoolStatus {
            size: self.open.load(Ordering::Relaxed).max(idle),
            idle,
            max: self.max,
        }
    }

    /// Runs a short read inline on the calling task.
    pub(crate) async fn run<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // The uncontended path takes a permit without yielding.
        let permit = match self.permits.try_acquire() {
            Ok(permit) => permit,
            Err(TryAcquireError::NoPermits) => {
                tokio::time::timeout(self.acquire_timeout, self.permits.acquire())
                    .await
                    .map_err(|_| timed_out())?
                    .map_err(|_| closed())?
            }
            Err(TryAcquireError::Closed) => return Err(closed()),
        };
        let result = self.with_connection(read);
        drop(permit);
        result
    }

    /// Runs a larger read (many rows) on the blocking thread pool, so it
    /// does not stall the tasks sharing this worker thread.
    pub(crate) async fn run_blocking<T: Send + 'static>(
        self: &Arc<Self>,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> Result<T, StoreError> {
        let permit = tokio::time::timeout(
            self.acquire_timeout,
            Arc::clone(&self.permits).acquire_owned(),
        )
        .await
        .map_err(|_| timed_out())?
        .map_err(|_| closed())?;
        let pool = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let result = pool.with_connection(read);
            drop(permit);
            result
        })
        .await
        .map_err(|e| StoreError::other("a SQLite read task failed", e))?
    }

    /// Must be called holding a permit, which bounds the connections.
    fn with_connection<T>(
        &self,
        read: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StoreError> {
        // Last in, first out: the most recently used connection has the
        // warmest page and statement caches.
        let taken = self.idle().pop();
        let conn = match taken {
            Some(conn) => conn,
            None => self.open()?,
        };
        let result = read(&conn.conn).map_err(classify_sqlite);
        self.idle().push(conn);
        result
    }

    fn open(&self) -> Result<Counted, StoreError> {
        let conn = self.opener.reader().map_err(classify_sqlite)?;
        self.open.fetch_add(1, Ordering::Relaxed);
        Ok(Counted {
            conn,
            open: Arc::clone(&self.open),
        })
    }

    fn idle(&self) -> std::sync::MutexGuard<'_, Vec<Counted>> {
        // A panic while holding the lock cannot leave the Vec half-changed.
        self.idle.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn timed_out() -> StoreError {
    StoreError::unavailable_msg("timed out waiting for a SQLite read connection".to_owned())
}

fn closed() -> StoreError {
    StoreError::unavailable_msg("the SQLite read pool is closed".to_owned())
}
