//! Vaults: a data directory, a database and the master key; commands run
//! on them; every row of every table, for schema-blind checks.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection as _};
use tempfile::TempDir;
use uuid::Uuid;

use super::cli::{CliOutput, clear_totpd_env, run_to_completion};
use super::{BIN, Backend, PG_URL_ENV, PgDatabase, pg};

/// Now, in Unix milliseconds.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_millis() as i64
}

/// `bytes` random bytes (UUIDv4s carry 122 random bits each; ample for test secrets).
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(Uuid::new_v4().as_bytes());
    }
    out.truncate(len);
    out
}

/// A fresh random master key, as `TOTPD_MASTER_KEY` takes it.
pub fn random_master_key() -> String {
    base64::engine::general_purpose::STANDARD.encode(random_bytes(32))
}

/// An API key: its public id and its secret.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub key_id: String,
    pub secret: String,
}

impl std::fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ApiKey({}, [redacted])", self.key_id)
    }
}

/// Where a vault lives: a data directory, a database and how the master key
/// is supplied. Cheap to clone; the directory and database live as long as
/// the last clone.
#[derive(Clone, Debug)]
pub struct Env {
    pub backend: Backend,
    data_dir: Arc<TempDir>,
    pg: Option<Arc<PgDatabase>>,
    /// A database URL given explicitly (a database this harness did not
    /// create and will not drop); wins over `pg`.
    database: Option<String>,
    master_key: Option<String>,
}

impl Env {
    /// A fresh data directory and a fresh, empty database.
    pub async fn new(backend: Backend) -> Env {
        let pg = match backend {
            Backend::Sqlite => None,
            Backend::Postgres => {
                let admin = pg::admin_url()
                    .unwrap_or_else(|| panic!("{PG_URL_ENV} must be set for a PostgreSQL test"));
                Some(Arc::new(PgDatabase::create(&admin, "totpd_it").await))
            }
        };
        Env {
            backend,
            data_dir: Arc::new(tempfile::tempdir().expect("a temporary directory")),
            pg,
            database: None,
            master_key: None,
        }
    }

    /// A fresh data directory on the database at `url`, which the test
    /// manages itself (e.g. a throwaway PostgreSQL cluster).
    pub fn with_database_url(backend: Backend, url: &str) -> Env {
        Env {
            backend,
            data_dir: Arc::new(tempfile::tempdir().expect("a temporary directory")),
            pg: None,
            database: Some(url.to_owned()),
            master_key: None,
        }
    }

    /// This data directory (and master key file) and `TOTPD_MASTER_KEY`,
    /// on `other`'s database: e.g. an installation after `totpd migrate`.
    pub fn on_database_of(&self, other: &Env) -> Env {
        Env {
            backend: other.backend,
            pg: other.pg.clone(),
            database: other.database.clone(),
            ..self.clone()
        }
    }

    /// The same vault with `TOTPD_MASTER_KEY` set to `key` (None: unset).
    pub fn with_master_key(&self, key: Option<String>) -> Env {
        Env {
            master_key: key,
            ..self.clone()
        }
    }

    /// Another node of the same deployment: same database and master key,
    /// its own (empty) data directory.
    pub fn other_node(&self) -> Env {
        Env {
            data_dir: Arc::new(tempfile::tempdir().expect("a temporary directory")),
            ..self.clone()
        }
    }

    pub fn data_dir(&self) -> &Path {
        self.data_dir.path()
    }

    /// The `--database` URL passed to every command (None: the SQLite default).
    pub fn database_url(&self) -> Option<&str> {
        self.database
            .as_deref()
            .or_else(|| self.pg.as_ref().map(|pg| pg.url()))
    }

    /// The SQLite database file (only meaningful for the SQLite backend).
    pub fn sqlite_file(&self) -> PathBuf {
        self.data_dir().join("totpd.db")
    }

    /// `totpd ARGS --data-dir DIR [--database URL]` with a clean environment.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(BIN);
        command.args(args).arg("--data-dir").arg(self.data_dir());
        if let Some(url) = self.database_url() {
            command.arg("--database").arg(url);
        }
        clear_totpd_env(&mut command);
        if let Some(key) = &self.master_key {
            command.env("TOTPD_MASTER_KEY", key);
        }
        command.stdin(Stdio::null());
        command
    }

    /// Runs `totpd serve ARGS` (on `127.0.0.1:0`, with `vars` in its
    /// environment), which must exit without ever listening.
    pub fn serve_refused(&self, args: &[&str], vars: &[(&str, &str)]) -> CliOutput {
        let mut full = vec!["serve", "--listen", "127.0.0.1:0"];
        full.extend_from_slice(args);
        let mut command = self.command(&full);
        command.envs(vars.iter().copied());
        run_to_completion(
            command,
            &format!("totpd {} (which must refuse to start)", full.join(" ")),
        )
    }

    /// Runs a CLI command to completion (killing it after a timeout).
    pub fn run(&self, args: &[&str]) -> CliOutput {
        run_to_completion(self.command(args), &format!("totpd {}", args.join(" ")))
    }

    /// Runs a CLI command that must succeed; returns its stdout.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "totpd {} failed with {}; stderr:\n{}",
            args.join(" "),
            out.status,
            out.stderr
        );
        out.stdout
    }

    /// `totpd keys create --account NAME --json`, parsed.
    pub fn create_key(&self, account: &str) -> ApiKey {
        let stdout = self.run_ok(&["keys", "create", "--account", account, "--json"]);
        let object: Value = serde_json::from_str(stdout.trim())
            .unwrap_or_else(|e| panic!("keys create --json printed no JSON object ({e})"));
        ApiKey {
            key_id: object["key_id"]
                .as_str()
                .expect("keys create --json has key_id")
                .to_owned(),
            secret: object["secret"]
                .as_str()
                .expect("keys create --json has secret")
                .to_owned(),
        }
    }

    /// Runs `sql` on the PostgreSQL admin connection, `{db}` replaced by
    /// this test's database name (PostgreSQL only).
    pub async fn pg_admin(&self, sql: &str) {
        let pg = self.pg.as_ref().expect("a PostgreSQL test");
        pg::execute(pg.admin_url(), &sql.replace("{db}", pg.name())).await;
    }

    /// Every row of every table, one text line per row (SQLite: `quote()` of
    /// each column, blobs as X'hex'; PostgreSQL: the row as JSON, bytea as
    /// "\\xhex"). For checks that must not depend on the schema.
    pub async fn dump_rows(&self) -> Vec<String> {
        match (self.backend, self.database_url()) {
            (Backend::Postgres, Some(url)) => dump_postgres(url).await,
            _ => dump_sqlite(&self.sqlite_file()),
        }
    }
}

fn dump_sqlite(path: &Path) -> Vec<String> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .expect("open the SQLite database");
    let strings = |sql: &str, param: Option<&str>| -> Vec<String> {
        let mut statement = conn
            .prepare(sql)
            .unwrap_or_else(|e| panic!("prepare {sql}: {e}"));
        let params: Vec<&str> = param.into_iter().collect();
        let rows = statement
            .query_map(rusqlite::params_from_iter(params), |row| {
                row.get::<_, String>(0)
            })
            .unwrap_or_else(|e| panic!("run {sql}: {e}"));
        rows.collect::<Result<_, _>>()
            .unwrap_or_else(|e| panic!("read {sql}: {e}"))
    };
    let tables = strings(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
        None,
    );
    let mut rows = Vec::new();
    for table in tables {
        let columns = strings("SELECT name FROM pragma_table_info(?1)", Some(&table));
        let select = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || '|' || ");
        rows.extend(strings(
            &format!("SELECT '{table}|' || {select} FROM \"{table}\""),
            None,
        ));
    }
    rows
}

async fn dump_postgres(url: &str) -> Vec<String> {
    let mut conn = pg::connect(url).await;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables \
         WHERE table_schema = 'public' AND table_type = 'BASE TABLE'",
    )
    .fetch_all(&mut conn)
    .await
    .expect("list PostgreSQL tables");
    let mut rows = Vec::new();
    for table in tables {
        let found: Vec<String> = sqlx::query_scalar(AssertSqlSafe(format!(
            "SELECT '{table}|' || to_jsonb(t)::text FROM \"{table}\" t"
        )))
        .fetch_all(&mut conn)
        .await
        .expect("dump a PostgreSQL table");
        rows.extend(found);
    }
    let _ = conn.close().await;
    rows
}
