//! A fresh, empty database of either backend for one test: a SQLite file in
//! a temporary directory, or a PostgreSQL database of its own. Both are
//! removed when the value drops.

use std::path::PathBuf;

use tempfile::TempDir;

use crate::pg::PgDatabase;

/// The file name of the SQLite database inside its temporary directory.
const SQLITE_FILE: &str = "totpd.db";

/// An empty database (no schema yet) and its URL.
#[derive(Debug)]
pub struct FreshDatabase {
    url: String,
    dir: Option<TempDir>,
    _pg: Option<PgDatabase>,
}

impl FreshDatabase {
    /// `sqlite://<temporary directory>/totpd.db` (the file is created on
    /// first connect).
    pub fn sqlite() -> FreshDatabase {
        let dir = tempfile::tempdir().unwrap_or_else(|e| {
            // A test-support crate: the panic is the test's failure.
            #[allow(clippy::panic)]
            {
                panic!("create a temporary directory: {e}")
            }
        });
        FreshDatabase {
            url: format!("sqlite://{}", dir.path().join(SQLITE_FILE).display()),
            dir: Some(dir),
            _pg: None,
        }
    }

    /// A new database `<prefix>_<random>` on the PostgreSQL server at
    /// `admin_url`.
    pub async fn postgres(admin_url: &str, prefix: &str) -> FreshDatabase {
        let database = PgDatabase::create(admin_url, prefix).await;
        FreshDatabase {
            url: database.url().to_owned(),
            dir: None,
            _pg: Some(database),
        }
    }

    /// The database's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The SQLite database file (`None` for PostgreSQL).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.path().join(SQLITE_FILE))
    }
}
