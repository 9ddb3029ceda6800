//! Classification of database errors.

use totpd_vault::StoreError;

/// Maps a driver error to what the vault should do about it. Messages come
/// from the driver and never contain bound values (which may be ciphertext).
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

/// SQLSTATE classes that mean "the server went away or is starting/stopping"
/// (08: connection exception, 57P: operator intervention), and SQLite's
/// SQLITE_BUSY (5) when the busy timeout ran out.
fn is_connection_loss(code: Option<&str>) -> bool {
    match code {
        Some(code) => code.starts_with("08") || code.starts_with("57P") || code == "5",
        None => false,
    }
}
