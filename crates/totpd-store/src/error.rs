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
        sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::WorkerCrashed => StoreError::Unavailable(error.to_string()),
        sqlx::Error::Database(db) => {
            if db.is_unique_violation() {
                StoreError::Conflict(db.message().to_owned())
            } else if is_connection_loss(db.code().as_deref()) {
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
/// retry may cure: 08 connection exception, 53 insufficient resources (too
/// many connections, out of memory or disk), 57P operator intervention
/// (shutdown, starting up), 55000 and 3D000 as raised while connecting (the
/// database refuses connections, or has been dropped or not yet created).
fn is_connection_loss(code: Option<&str>) -> bool {
    match code {
        Some(code) => {
            code.starts_with("08")
                || code.starts_with("53")
                || code.starts_with("57P")
                || code == "55000"
                || code == "3D000"
        }
        None => false,
    }
}

/// Maps a SQLite error to what the vault should do about it.
///
/// `SQLITE_BUSY` reaches here only once the busy timeout has run out (another
/// process held the write lock that long), so it is `Unavailable` like a
/// connection-pool timeout; I/O failures and a full disk likewise.
pub(crate) fn classify_sqlite(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(code, _) => {
            let message = error.to_string();
            match code.code {
                ErrorCode::DatabaseBusy
                | ErrorCode::DatabaseLocked
                | ErrorCode::SystemIoFailure
                | ErrorCode::CannotOpen
                | ErrorCode::DiskFull
                | ErrorCode::OutOfMemory
                | ErrorCode::FileLockingProtocolFailed
                | ErrorCode::PermissionDenied => StoreError::Unavailable(message),
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
    use super::is_connection_loss;

    #[test]
    fn refused_and_vanished_databases_count_as_unavailable() {
        for code in ["08006", "53300", "57P01", "57P03", "55000", "3D000"] {
            assert!(is_connection_loss(Some(code)), "{code}");
        }
        for code in ["23505", "42P01", "22P02"] {
            assert!(!is_connection_loss(Some(code)), "{code}");
        }
        assert!(!is_connection_loss(None));
    }
}
