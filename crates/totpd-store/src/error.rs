//! Classification of database errors.
//!
//! Messages come from the drivers (SQLite's `sqlite3_errmsg`, PostgreSQL's
//! server message) or from this crate, and never contain bound values, which
//! may be ciphertext or key hashes.

use rusqlite::ErrorCode;
use rusqlite::ffi;
use totpd_vault::StoreError;

/// Maps a PostgreSQL driver error to what the vault should do about it.
pub(crate) fn classify(error: sqlx::Error) -> StoreError {
    match &error {
        // A protocol error is a connection that is out of step with the
        // server (or a server that is not PostgreSQL): the connection is
        // closed and a retry gets a fresh one.
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                StoreError::Conflict(db.message().to_owned())
            } else if is_unavailable(db.code().as_deref()) {
                StoreError::Unavailable(db.message().to_owned())
            } else {
                StoreError::Other(db.message().to_owned())
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Other(error.to_string()),
    }
}

/// SQLSTATEs that mean "the database cannot serve us right now", which a
/// retry may cure (answered 503 with `Retry-After`; Sendblue's SDKs retry
/// those):
/// - 08 connection exception; 53 insufficient resources (too many
///   connections, out of memory or disk); 57P operator intervention
///   (shutdown, starting up); 55000 and 3D000 as raised while connecting
///   (the database refuses connections, or has been dropped or not yet
///   created);
/// - 40001 serialization failure and 40P01 deadlock detected: the
///   transaction was rolled back as a whole, so nothing of it is stored and
///   running it again is safe;
/// - 57014 query canceled (`statement_timeout`, an operator's
///   `pg_cancel_backend`), 25006 read-only transaction (a standby after a
///   failover, `default_transaction_read_only`), 25P03 idle in transaction
///   timeout.
fn is_unavailable(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || matches!(
                    code,
                    "55000" | "3D000" | "40001" | "40P01" | "57014" | "25006" | "25P03"
                )
        }
        None => false,
    }
}

/// How the message of SQLite's `SQLITE_BUSY` (another connection holds a
/// lock) begins, so that [`is_busy`] can tell it from other unavailability.
const BUSY: &str = "the database is busy: ";

/// Whether `error` came from SQLite's `SQLITE_BUSY`.
pub(crate) fn is_busy(error: &StoreError) -> bool {
    matches!(error, StoreError::Unavailable(message) if message.starts_with(BUSY))
}

/// Maps a SQLite error to what the vault should do about it.
///
/// `SQLITE_BUSY` reaches here only once the busy timeout has run out (another
/// process held the write lock that long), so it is `Unavailable` like a
/// connection-pool timeout; I/O failures, a full disk and a database that
/// cannot be written (`SQLITE_READONLY`: opened `mode=ro`, a read-only file
/// or file system) likewise.
pub(crate) fn classify_sqlite(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(code, _) => {
            let message = error.to_string();
            match code.code {
                ErrorCode::DatabaseBusy => StoreError::Unavailable(format!("{BUSY}{message}")),
                ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::PermissionDenied
                | ErrorCode::ReadOnly => StoreError::Unavailable(message),
                ErrorCode::ConstraintViolation
                    if code.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                        || code.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
                {
                    StoreError::Conflict(message)
                }
                ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                    StoreError::Corrupt(message)
                }
                _ => StoreError::Other(message),
            }
        }
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnIndex(_)
        | rusqlite::Error::InvalidColumnName(_)
        | rusqlite::Error::InvalidColumnType(..) => StoreError::Corrupt(error.to_string()),
        _ => StoreError::Other(error.to_string()),
    }
}

/// A copy of `error` for each of several callers that share one failure (a
/// group commit that failed fails every write in it).
pub(crate) fn duplicate(error: &StoreError) -> StoreError {
    match error {
        StoreError::Unavailable(m) => StoreError::Unavailable(m.clone()),
        StoreError::Conflict(m) => StoreError::Conflict(m.clone()),
        StoreError::Corrupt(m) => StoreError::Corrupt(m.clone()),
        StoreError::Other(m) => StoreError::Other(m.clone()),
        StoreError::QuotaExceeded { limit } => StoreError::QuotaExceeded { limit: *limit },
        other => StoreError::Other(other.to_string()),
    }
}

/// A decoding failure this crate detects itself (a value SQLite returned
/// fine but that cannot be what it claims), as the driver would report it.
pub(crate) fn bad_column(
    index: usize,
    kind: rusqlite::types::Type,
    what: &'static str,
) -> rusqlite::Error {
    rusqlite::Error::FromSqlConversionFailure(index, kind, what.into())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refused_and_vanished_databases_count_as_unavailable() {
        for code in ["08006", "53300", "57P01", "57P03", "55000", "3D000"] {
            assert!(is_unavailable(Some(code)), "{code}");
        }
        for code in ["23505", "42P01", "22P02", "23503", "42501"] {
            assert!(!is_unavailable(Some(code)), "{code}");
        }
        assert!(!is_unavailable(None));
    }

    #[test]
    fn rolled_back_cancelled_and_read_only_transactions_count_as_unavailable() {
        for code in ["40001", "40P01", "57014", "25006", "25P03"] {
            assert!(is_unavailable(Some(code)), "{code}");
        }
    }

    #[test]
    fn a_protocol_error_counts_as_unavailable() {
        let error = classify(sqlx::Error::Protocol("unexpected message".to_owned()));
        assert!(matches!(error, StoreError::Unavailable(_)), "{error:?}");
    }

    fn sqlite(code: std::ffi::c_int) -> StoreError {
        classify_sqlite(rusqlite::Error::SqliteFailure(
            ffi::Error::new(code),
            Some("driver message".to_owned()),
        ))
    }

    #[test]
    fn a_sqlite_database_that_cannot_be_written_counts_as_unavailable() {
        for code in [
            ffi::SQLITE_READONLY,
            ffi::SQLITE_READONLY_DBMOVED,
            ffi::SQLITE_BUSY,
            ffi::SQLITE_FULL,
            ffi::SQLITE_IOERR,
        ] {
            assert!(matches!(sqlite(code), StoreError::Unavailable(_)), "{code}");
        }
        assert!(matches!(
            sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE),
            StoreError::Conflict(_)
        ));
        assert!(matches!(
            sqlite(ffi::SQLITE_CORRUPT),
            StoreError::Corrupt(_)
        ));
        assert!(matches!(sqlite(ffi::SQLITE_MISMATCH), StoreError::Other(_)));
    }
}
