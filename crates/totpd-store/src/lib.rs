//! The SQLite and PostgreSQL implementations of [`totpd_vault::Store`], with
//! their migrations.
//!
//! The backend is chosen once, from the database URL's scheme, by [`connect`];
//! nothing above this crate ever learns which one it got. SQLite runs on
//! rusqlite (reads inline on the calling task, writes group-committed by one
//! writer thread), PostgreSQL on sqlx; where their SQL is the same, both run
//! the same text (`queries.rs`) over backend-specific schemas (`migrations/`).
//!
//! This crate never decides what a row means: no cryptography, no HTTP, no
//! policy. It stores and returns rows, scoped by account, durably.

mod error;
mod inspect;
mod postgres;
mod queries;
mod schema;
mod scope_text;
mod sqlite;
mod tables;
mod verify;

use std::sync::Arc;
use std::time::Duration;

use totpd_vault::{Store, StoreError};

pub use inspect::{SqliteFile, TlsWeakness, postgres_tls_weakness, sqlite_file};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use tables::Table;

/// Connection settings shared by both backends.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// Largest number of pooled connections (for SQLite: read connections;
    /// writes have one connection of their own).
    pub max_connections: u32,
    /// How long a query waits for a free connection (and PostgreSQL for a new
    /// connection, SQLite for another process's write lock) before the
    /// request fails as unavailable.
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> ConnectOptions {
        ConnectOptions {
            max_connections: 8,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Which backend a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:` URLs.
    Sqlite,
    /// `postgres:` and `postgresql:` URLs.
    Postgres,
}

impl Backend {
    /// The backend named by a database URL's scheme.
    pub fn of_url(url: &str) -> Result<Backend, StoreError> {
        let scheme = url.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
        match scheme.as_deref() {
            Some("sqlite") => Ok(Backend::Sqlite),
            Some("postgres" | "postgresql") => Ok(Backend::Postgres),
            _ => Err(StoreError::other_msg(
                "database URL must start with sqlite:// or postgres://".to_owned(),
            )),
        }
    }
}

/// `url` adjusted so that opening it can never change the database: a SQLite
/// URL without a `mode` gets `mode=ro` (a missing file is then an error
/// instead of a new empty database). PostgreSQL URLs are returned as they
/// are; readers such as `totpd migrate` only run queries there.
pub fn read_only_url(url: &str) -> String {
    match Backend::of_url(url) {
        Ok(Backend::Sqlite) if !url.contains("mode=") => {
            let separator = if url.contains('?') { '&' } else { '?' };
            format!("{url}{separator}mode=ro")
        }
        _ => url.to_owned(),
    }
}

/// Opens the database named by `url`, applies pending migrations, and returns
/// it behind the one storage interface.
pub async fn connect(url: &str, options: &ConnectOptions) -> Result<Arc<dyn Store>, StoreError> {
    Ok(match Backend::of_url(url)? {
        Backend::Sqlite => Arc::new(SqliteStore::connect(url, options).await?),
        Backend::Postgres => Arc::new(PgStore::connect(url, options).await?),
    })
}

#[cfg(test)]
mod tests {
    use super::read_only_url;

    #[test]
    fn sqlite_urls_become_read_only_unless_a_mode_is_given() {
        assert_eq!(
            read_only_url("sqlite:///a/b.db"),
            "sqlite:///a/b.db?mode=ro"
        );
        assert_eq!(
            read_only_url("sqlite:///a/b.db?cache=shared"),
            "sqlite:///a/b.db?cache=shared&mode=ro"
        );
        assert_eq!(
            read_only_url("sqlite:///a/b.db?mode=rw"),
            "sqlite:///a/b.db?mode=rw"
        );
        assert_eq!(read_only_url("postgres://u@h/db"), "postgres://u@h/db");
    }
}
