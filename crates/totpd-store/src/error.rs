//! Classification of database errors.
//!
//! Messages come from the drivers (SQLite's `sqlite3_errmsg`, PostgreSQL's
//! server message) or from this crate, and never contain bound values, which
//! may be ciphertext or key hashes.

use rusqlite::ErrorCode;
use rusqlite::ffi;
use totpd_vault::StoreError;

/// Maps a PostgreSQL driver error to what the vault should do about it,
/// keeping the driver's error as the source.
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
        | sqlx::Error::WorkerCrashed => {
            StoreError::unavailable("PostgreSQL cannot be reached", error)
        }
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                StoreError::conflict("PostgreSQL refused a duplicate", error)
            } else if is_unavailable(db.code().as_deref()) {
                StoreError::unavailable("PostgreSQL cannot serve the statement now", error)
            } else {
                StoreError::other("PostgreSQL refused the statement", error)
            }
        }
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::Decode(_)
        | sqlx::Error::ColumnNotFound(_) => {
            StoreError::corrupt("a PostgreSQL value cannot be decoded", error)
        }
        _ => StoreError::other("the PostgreSQL statement failed", error),
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

/// Whether `error` came from SQLite's `SQLITE_BUSY`: it is unavailability
/// with the driver's busy error among its sources.
pub(crate) fn is_busy(error: &StoreError) -> bool {
    if !matches!(error, StoreError::Unavailable { .. }) {
        return false;
    }
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(rusqlite::Error::SqliteFailure(code, _)) =
            cause.downcast_ref::<rusqlite::Error>()
        {
            return code.code == ErrorCode::DatabaseBusy;
        }
        source = cause.source();
    }
    false
}

/// Maps a SQLite error to what the vault should do about it, keeping the
/// driver's error as the source.
///
/// `SQLITE_BUSY` reaches here only once the busy timeout has run out (another
/// process held the write lock that long), so it is `Unavailable` like a
/// connection-pool timeout; I/O failures, a full disk and a database that
/// cannot be written (`SQLITE_READONLY`: opened `mode=ro`, a read-only file
/// or file system) likewise.
pub(crate) fn classify_sqlite(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(code, _) => match code.code {
            ErrorCode::DatabaseBusy => StoreError::unavailable("the database is busy", error),
            ErrorCode::DatabaseLocked
            | ErrorCode::SystemIoFailure
            | ErrorCode::CannotOpen
            | ErrorCode::DiskFull
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed
            | ErrorCode::PermissionDenied
            | ErrorCode::ReadOnly => {
                StoreError::unavailable("SQLite cannot serve the statement", error)
            }
            ErrorCode::ConstraintViolation
                if code.extended_code == ffi::SQLITE_CONSTRAINT_UNIQUE
                    || code.extended_code == ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                StoreError::conflict("SQLite refused a duplicate", error)
            }
            ErrorCode::DatabaseCorrupt | ErrorCode::NotADatabase => {
                StoreError::corrupt("the SQLite file is damaged", error)
            }
            _ => StoreError::other("SQLite refused the statement", error),
        },
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::Utf8Error(..)
        | rusqlite::Error::InvalidColumnIndex(_)
        | rusqlite::Error::InvalidColumnName(_)
        | rusqlite::Error::InvalidColumnType(..) => {
            StoreError::corrupt("a SQLite value cannot be decoded", error)
        }
        _ => StoreError::other("the SQLite statement failed", error),
    }
}

/// A copy of `error` for each of several callers that share one failure (a
/// group commit that failed fails every write in it): the same class, and
/// the one failure, shared, as the source.
pub(crate) fn duplicate(error: &std::sync::Arc<StoreError>) -> StoreError {
    const CONTEXT: &str = "the group commit failed";
    let shared = std::sync::Arc::clone(error);
    match error.as_ref() {
        StoreError::Unavailable { .. } => StoreError::unavailable(CONTEXT, shared),
        StoreError::Conflict { .. } => StoreError::conflict(CONTEXT, shared),
        StoreError::Corrupt { .. } => StoreError::corrupt(CONTEXT, shared),
        StoreError::QuotaExceeded { limit } => StoreError::QuotaExceeded { limit: *limit },
        _ => StoreError::other(CONTEXT, shared),
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
        assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
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
            assert!(
                matches!(sqlite(code), StoreError::Unavailable { .. }),
                "{code}"
            );
        }
        assert!(matches!(
            sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE),
            StoreError::Conflict { .. }
        ));
        assert!(matches!(
            sqlite(ffi::SQLITE_CORRUPT),
            StoreError::Corrupt { .. }
        ));
        assert!(matches!(
            sqlite(ffi::SQLITE_MISMATCH),
            StoreError::Other { .. }
        ));
    }

    #[test]
    fn a_classified_driver_error_is_kept_as_the_source() {
        let error = sqlite(ffi::SQLITE_MISMATCH);
        let chain = totpd_vault::ErrorChain(&error).to_string();
        assert!(
            chain.starts_with("database error: SQLite refused the statement: "),
            "{chain}"
        );
        assert!(chain.contains(": driver message"), "{chain}");
        let source = std::error::Error::source(&error).expect("a source");
        assert!(source.downcast_ref::<rusqlite::Error>().is_some());
        let busy = sqlite(ffi::SQLITE_BUSY);
        assert!(is_busy(&busy));
        assert!(!is_busy(&sqlite(ffi::SQLITE_IOERR)));
        assert!(!is_busy(&StoreError::unavailable_msg(
            "the database is busy"
        )));
    }

    #[test]
    fn a_shared_failure_keeps_its_class_and_cause_for_every_caller() {
        let shared = std::sync::Arc::new(sqlite(ffi::SQLITE_CONSTRAINT_UNIQUE));
        let copy = duplicate(&shared);
        assert!(matches!(copy, StoreError::Conflict { .. }), "{copy:?}");
        assert!(is_busy(&duplicate(&std::sync::Arc::new(sqlite(
            ffi::SQLITE_BUSY
        )))));
        let chain = totpd_vault::ErrorChain(&copy).to_string();
        assert!(
            chain.starts_with(
                "conflict: the group commit failed: conflict: SQLite refused a duplicate: \
                 driver message"
            ),
            "{chain}"
        );
    }
}
