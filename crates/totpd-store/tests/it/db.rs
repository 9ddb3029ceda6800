//! Fresh databases for tests: SQLite in a temporary directory, PostgreSQL as
//! a uniquely named database on the server `TOTPD_TEST_POSTGRES_URL` names.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{AssertSqlSafe, Connection as _};
use totpd_store::ConnectOptions;
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
    dir: Option<tempfile::TempDir>,
    // Dropped after the store, so the database is no longer in use.
    _pg: Option<PgDatabase>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!("sqlite://{}", dir.path().join("totpd.db").display());
        let store = totpd_store::connect(&url, &options())
            .await
            .expect("open a fresh SQLite database");
        TestDb {
            store,
            url,
            dir: Some(dir),
            _pg: None,
        }
    }

    /// `None` (after saying so) when PostgreSQL is not configured, except
    /// under CI, where a missing server fails the test.
    pub async fn postgres(test: &str) -> Option<TestDb> {
        let server = postgres_server(test)?;
        let database = PgDatabase::create(&server).await;
        let store = totpd_store::connect(&database.url, &options())
            .await
            .expect("open a fresh PostgreSQL database");
        Some(TestDb {
            store,
            url: database.url.clone(),
            dir: None,
            _pg: Some(database),
        })
    }

    /// The SQLite database file (`None` for PostgreSQL).
    pub fn sqlite_file(&self) -> Option<PathBuf> {
        self.dir.as_ref().map(|dir| dir.path().join("totpd.db"))
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
    let url = match std::env::var("TOTPD_TEST_POSTGRES_URL") {
        Ok(url) if !url.trim().is_empty() => Ok(url.trim().to_owned()),
        _ => Err("needs PostgreSQL: TOTPD_TEST_POSTGRES_URL is not set \
                  (e.g. postgres://postgres@127.0.0.1:5432/postgres)"
            .to_owned()),
    };
    totpd_testkit::or_skip(test, url)
}

/// A database created for one test and dropped after it, even if it fails.
pub struct PgDatabase {
    server: String,
    name: String,
    pub url: String,
}

impl PgDatabase {
    /// An empty database (no schema) on `server`.
    pub async fn create(server: &str) -> PgDatabase {
        let name = format!("totpd_store_{}", uuid::Uuid::new_v4().simple());
        let mut admin = admin_connection(server).await;
        sqlx::raw_sql(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut admin)
            .await
            .expect("create a test database");
        let _ = admin.close().await;
        PgDatabase {
            server: server.to_owned(),
            url: with_database(server, &name),
            name,
        }
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs inside the test's runtime, which cannot block on itself.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime to drop the test database");
            runtime.block_on(async {
                let mut admin = admin_connection(&server).await;
                let _ = sqlx::raw_sql(AssertSqlSafe(format!(
                    "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                )))
                .execute(&mut admin)
                .await;
                let _ = admin.close().await;
            });
        });
        let _ = dropped.join();
    }
}

async fn admin_connection(server: &str) -> sqlx::PgConnection {
    match tokio::time::timeout(Duration::from_secs(10), sqlx::PgConnection::connect(server)).await {
        Ok(Ok(conn)) => conn,
        Ok(Err(e)) => panic!("TOTPD_TEST_POSTGRES_URL is set but PostgreSQL refused: {e}"),
        Err(_) => panic!("TOTPD_TEST_POSTGRES_URL is set but PostgreSQL did not answer in 10 s"),
    }
}

/// `server` with its database name replaced by `name`, parameters kept.
fn with_database(server: &str, name: &str) -> String {
    let (base, query) = match server.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (server, String::new()),
    };
    let after_scheme = base.find("://").map_or(0, |i| i + 3);
    let host_end = base[after_scheme..]
        .find('/')
        .map_or(base.len(), |i| after_scheme + i);
    format!("{}/{name}{query}", &base[..host_end])
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

#[test]
fn test_database_urls_keep_the_server_and_parameters() {
    assert_eq!(
        with_database("postgres://postgres@127.0.0.1:5432/postgres", "t"),
        "postgres://postgres@127.0.0.1:5432/t"
    );
    assert_eq!(
        with_database("postgres://u@h/db?sslmode=disable", "t"),
        "postgres://u@h/t?sslmode=disable"
    );
    assert_eq!(with_database("postgres://u@h:1", "t"), "postgres://u@h:1/t");
}
