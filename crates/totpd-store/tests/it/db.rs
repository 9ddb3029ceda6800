//! Fresh databases for tests: SQLite in a temporary directory, PostgreSQL as
//! a uniquely named database on the server `TOTPD_TEST_POSTGRES_URL` names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use totpd_store::ConnectOptions;
use totpd_testkit::db::FreshDatabase;
pub use totpd_testkit::pg::{self, PgDatabase};
use totpd_vault::Store;

/// Runs each listed contract test (an `async fn(&TestDb)` in the enclosing
/// module) once per backend, as `sqlite::NAME` and `postgres::NAME`.
macro_rules! for_each_backend {
    ($($name:ident),+ $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = $crate::db::TestDb::sqlite().await;
                    super::$name(&db).await;
                }
            )+
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = $crate::db::TestDb::postgres(stringify!($name)).await else {
                        return;
                    };
                    super::$name(&db).await;
                }
            )+
        }
    };
}
pub(crate) use for_each_backend;

pub fn options() -> ConnectOptions {
    ConnectOptions {
        max_connections: 4,
        acquire_timeout: Duration::from_secs(5),
    }
}

/// A fresh, migrated database and the store open on it.
pub struct TestDb {
    pub store: Arc<dyn Store>,
    pub url: String,
    // Dropped after the store, so the database is no longer in use.
    database: FreshDatabase,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        TestDb::open(FreshDatabase::sqlite()).await
    }

    /// `None` (after saying so) when PostgreSQL is not configured, except
    /// under CI, where a missing server fails the test.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let server = postgres_server(test)?;
        Some(TestDb::open(FreshDatabase::postgres(&server, "totpd_store").await).await)
    }

    async fn open(database: FreshDatabase) -> TestDb {
        let store = totpd_store::connect(database.url(), &options())
            .await
            .unwrap_or_else(|e| panic!("open a fresh database: {e}"));
        TestDb {
            store,
            url: database.url().to_owned(),
            database,
        }
    }

    /// The SQLite database file (`None` for PostgreSQL).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self.database.sqlite_file()
    }

    /// Another store on the same database, as a second process would open.
    pub async fn reopen(&self) -> Arc<dyn Store> {
        totpd_store::connect(&self.url, &options())
            .await
            .expect("reopen the database")
    }
}

/// The PostgreSQL server to test against, or `None` if there is none.
pub fn postgres_server(test: &str) -> Option<String> {
    pg::admin_url_or_skip(test)
}

/// The bytes of the database file and its WAL, for looking for leftovers.
pub fn file_bytes(db: &Path) -> Vec<u8> {
    let mut bytes = std::fs::read(db).expect("read the database file");
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    if let Ok(more) = std::fs::read(PathBuf::from(wal)) {
        bytes.extend(more);
    }
    bytes
}
