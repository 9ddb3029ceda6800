//! The harness: real `totpd serve` processes bound to port 0, each with a
//! fresh data directory and a fresh database (SQLite in the data directory,
//! or a PostgreSQL database of its own), and an HTTP client for the API.
//!
//! Everything a test starts is stopped when its handle drops, also when the
//! test panics: server processes are killed, PostgreSQL databases dropped.

use std::fs::OpenOptions;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use reqwest::Method;
use reqwest::header::HeaderMap;
use serde_json::Value;
use sqlx::{AssertSqlSafe, Connection as _};
use tempfile::TempDir;
use uuid::Uuid;

pub use totpd_testkit::pg::{self, PG_URL_ENV, PgDatabase};

use crate::otp::{Alg, totp};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_totpd");
/// How long a server may take to print its "listening on" line. Generous:
/// debug builds on two busy cores, PostgreSQL migrations.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a process may take to exit once asked to (or a CLI command to run).
const EXIT_TIMEOUT: Duration = Duration::from_secs(20);
const LISTENING: &str = "totpd listening on ";
/// A storage backend the suite runs against.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Whether `test` can run on `backend`. PostgreSQL needs `TOTPD_TEST_POSTGRES_URL`:
/// without it the test is skipped loudly on a developer's machine and fails in CI.
pub fn backend_available(backend: Backend, test: &str) -> bool {
    backend == Backend::Sqlite || pg::admin_url_or_skip(test).is_some()
}

/// Generates a `#[tokio::test]` per backend for `async fn $case(backend: Backend)`.
/// The wrapper names are written out (`macro_rules!` cannot glue identifiers);
/// a compile-time check keeps them `<case>_on_sqlite` / `<case>_on_postgres`.
macro_rules! on_both_backends {
    ($($case:ident => $on_sqlite:ident, $on_postgres:ident;)+) => {$(
        const _: () = assert!(
            $crate::harness::same_str(
                stringify!($on_sqlite),
                concat!(stringify!($case), "_on_sqlite")
            ) && $crate::harness::same_str(
                stringify!($on_postgres),
                concat!(stringify!($case), "_on_postgres")
            ),
            concat!("wrappers of ", stringify!($case), " must be named <case>_on_sqlite and <case>_on_postgres")
        );

        #[tokio::test]
        async fn $on_sqlite() {
            $case($crate::harness::Backend::Sqlite).await;
        }

        #[tokio::test]
        async fn $on_postgres() {
            if $crate::harness::backend_available(
                $crate::harness::Backend::Postgres,
                stringify!($on_postgres),
            ) {
                $case($crate::harness::Backend::Postgres).await;
            }
        }
    )+};
}
pub(crate) use on_both_backends;

/// Generates the `#[tokio::test]` of a PostgreSQL-only case.
macro_rules! on_postgres_only {
    ($($case:ident => $on_postgres:ident;)+) => {$(
        const _: () = assert!(
            $crate::harness::same_str(
                stringify!($on_postgres),
                concat!(stringify!($case), "_on_postgres")
            ),
            concat!("the wrapper of ", stringify!($case), " must be named <case>_on_postgres")
        );

        #[tokio::test]
        async fn $on_postgres() {
            if $crate::harness::backend_available(
                $crate::harness::Backend::Postgres,
                stringify!($on_postgres),
            ) {
                $case().await;
            }
        }
    )+};
}
pub(crate) use on_postgres_only;

/// `a == b`, usable in constants.
pub const fn same_str(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

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

/// What a CLI command did.
#[derive(Debug)]
pub struct CliOutput {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
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

/// Runs `totpd ARGS` exactly as given (no `--data-dir` or `--database`
/// added, e.g. `totpd migrate`) with a clean environment.
pub fn run_totpd(args: &[&str]) -> CliOutput {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    clear_totpd_env(&mut command);
    run_to_completion(command, &format!("totpd {}", args.join(" ")))
}

/// `run_totpd` with `vars` set in the child's environment (after the
/// developer's `TOTPD_` variables were cleared).
pub fn run_totpd_with_env(args: &[&str], vars: &[(&str, &str)]) -> CliOutput {
    let mut command = Command::new(BIN);
    command.args(args).stdin(Stdio::null());
    clear_totpd_env(&mut command);
    command.envs(vars.iter().copied());
    run_to_completion(command, &format!("totpd {}", args.join(" ")))
}

/// Drops every `TOTPD_` variable of the developer's shell from a child's
/// environment, so a test's process sees only what the test gives it.
fn clear_totpd_env(command: &mut Command) {
    for (var, _) in std::env::vars_os() {
        if var.to_string_lossy().starts_with("TOTPD_") {
            command.env_remove(var);
        }
    }
}

fn run_to_completion(mut command: Command, what: &str) -> CliOutput {
    command.stdout(Stdio::piped()).stderr(Stdio::piped());
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("could not run {what}: {e}"));
    let pid = child.id();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(EXIT_TIMEOUT) {
        Ok(Ok(output)) => CliOutput {
            status: output.status,
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        },
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => {
            signal(pid, "KILL");
            panic!("{what} did not finish within {EXIT_TIMEOUT:?}");
        }
    }
}

/// Sends a signal to one process by its id (`kill -SIG PID`).
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

fn wait_with_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait for the server") {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How to start `totpd serve`.
#[derive(Clone, Debug, Default)]
pub struct Options {
    pub no_bootstrap: bool,
    /// Extra environment for the server process (e.g. `TOTPD_LOG`).
    pub env: Vec<(String, String)>,
    /// Without a bootstrap key, do not make one with `keys create` either
    /// (the server's `key` is then empty).
    pub no_key: bool,
    /// More flags for `serve` (TLS, limits). With a `--listen` among them,
    /// the default `--listen 127.0.0.1:0` is left out.
    pub args: Vec<String>,
}

impl Options {
    /// Default options plus the `serve` flags `args`.
    pub fn with_args(args: &[&str]) -> Options {
        Options {
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            ..Options::default()
        }
    }
}

/// The printed bootstrap key in a run's stdout, if any.
fn bootstrap_key(lines: &[String]) -> Option<ApiKey> {
    let value = |label: &str| {
        lines
            .iter()
            .find_map(|l| l.trim().strip_prefix(label).map(|v| v.trim().to_owned()))
    };
    Some(ApiKey {
        key_id: value("key id:")?,
        secret: value("key secret:")?,
    })
}

/// A `totpd serve` process that has been spawned but may not listen yet.
#[derive(Debug)]
pub struct Starting {
    env: Env,
    options: Options,
    child: Option<Child>,
    stdout: Arc<Mutex<Vec<String>>>,
    first_line: usize,
    lines: mpsc::Receiver<usize>,
    log_path: PathBuf,
}

impl Starting {
    /// Spawns `totpd serve --listen 127.0.0.1:0` for `env`, stderr appended
    /// to `<data-dir>/serve.log`.
    pub fn spawn(env: &Env, options: Options) -> Starting {
        Starting::spawn_with(env, options, Arc::new(Mutex::new(Vec::new())))
    }

    fn spawn_with(env: &Env, options: Options, stdout: Arc<Mutex<Vec<String>>>) -> Starting {
        let log_path = env.data_dir().join("serve.log");
        let log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .expect("open the server log");
        let mut args = vec!["serve"];
        if !options.args.iter().any(|a| a == "--listen") {
            args.extend(["--listen", "127.0.0.1:0"]);
        }
        if options.no_bootstrap {
            args.push("--no-bootstrap");
        }
        args.extend(options.args.iter().map(String::as_str));
        let mut command = env.command(&args);
        command.envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        command.stdout(Stdio::piped()).stderr(Stdio::from(log));
        let mut child = command.spawn().expect("spawn totpd serve");
        let pipe = child.stdout.take().expect("piped stdout");
        let first_line = stdout.lock().unwrap().len();
        let (tx, rx) = mpsc::channel();
        let sink = Arc::clone(&stdout);
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                let index = {
                    let mut all = sink.lock().unwrap();
                    all.push(line);
                    all.len() - 1
                };
                let _ = tx.send(index);
            }
        });
        Starting {
            env: env.clone(),
            options,
            child: Some(child),
            stdout,
            first_line,
            lines: rx,
            log_path,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// Waits for the "listening on" line and returns the running server,
    /// with an API key: the bootstrap key if this start printed one, else
    /// `previous`, else a new key made with `keys create --account default`.
    fn ready_with(mut self, previous: Option<ApiKey>) -> TestServer {
        let deadline = Instant::now() + READY_TIMEOUT;
        let base_url = loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(index) => {
                    let line = self.stdout.lock().unwrap()[index].clone();
                    if let Some(url) = line.trim().strip_prefix(LISTENING) {
                        break url.trim_end_matches('/').to_owned();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let mut child = self.child.take().expect("a child");
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!(
                        "totpd serve did not print \"{LISTENING}...\" within {READY_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                        self.stdout_lines().join("\n"),
                        self.log()
                    );
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    let mut child = self.child.take().expect("a child");
                    let status = wait_with_timeout(&mut child, EXIT_TIMEOUT);
                    panic!(
                        "totpd serve exited ({status:?}) before listening; stdout:\n{}\nstderr:\n{}",
                        self.stdout_lines().join("\n"),
                        self.log()
                    );
                }
            }
        };
        let printed = bootstrap_key(&self.stdout_lines());
        let key = printed.clone().or(previous).unwrap_or_else(|| {
            if self.options.no_key {
                ApiKey {
                    key_id: String::new(),
                    secret: String::new(),
                }
            } else {
                self.env.create_key("default")
            }
        });
        TestServer {
            env: self.env.clone(),
            options: self.options.clone(),
            child: self.child.take(),
            addr: base_url
                .split_once("://")
                .map_or(base_url.as_str(), |(_, rest)| rest)
                .to_owned(),
            base_url,
            stdout: Arc::clone(&self.stdout),
            run_first_line: self.first_line,
            log_path: self.log_path.clone(),
            key,
            bootstrap: printed,
            http: http_client(),
        }
    }

    /// Waits for the server to become ready.
    pub fn ready(self) -> TestServer {
        self.ready_with(None)
    }

    /// Waits for a server that must refuse to start: it exits without ever
    /// listening. Returns its exit status and everything it printed.
    pub fn refused(mut self) -> CliOutput {
        let mut child = self.child.take().expect("a child");
        let Some(status) = wait_with_timeout(&mut child, EXIT_TIMEOUT) else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "totpd serve was expected to refuse to start, but it still runs after {EXIT_TIMEOUT:?}; stdout:\n{}\nstderr:\n{}",
                self.stdout_lines().join("\n"),
                self.log()
            );
        };
        // Let the reader thread drain what was printed before the exit.
        let _ = self.lines.recv_timeout(Duration::from_millis(200));
        while self.lines.try_recv().is_ok() {}
        CliOutput {
            status,
            stdout: self.stdout_lines().join("\n"),
            stderr: self.log(),
        }
    }

    fn stdout_lines(&self) -> Vec<String> {
        self.stdout.lock().unwrap()[self.first_line..].to_vec()
    }
}

impl Drop for Starting {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(Duration::from_secs(20))
        .build()
        .expect("an HTTP client")
}

/// A running `totpd serve`.
#[derive(Debug)]
pub struct TestServer {
    pub env: Env,
    options: Options,
    child: Option<Child>,
    /// `127.0.0.1:PORT`.
    pub addr: String,
    /// The URL the server printed, e.g. `http://127.0.0.1:PORT` (`https`
    /// with TLS).
    pub base_url: String,
    stdout: Arc<Mutex<Vec<String>>>,
    run_first_line: usize,
    log_path: PathBuf,
    /// An owner key of the `default` account.
    pub key: ApiKey,
    /// The bootstrap key this server printed on its first start, if any.
    pub bootstrap: Option<ApiKey>,
    http: reqwest::Client,
}

impl TestServer {
    /// A server on a fresh data directory and database of `backend`.
    pub async fn start(backend: Backend) -> TestServer {
        TestServer::start_in(&Env::new(backend).await, Options::default())
    }

    /// A server on a fresh `backend` environment, with `vars` (settings such
    /// as `TOTPD_MAX_CONNECTIONS`) in its environment.
    pub async fn with_env<V: AsRef<str>>(backend: Backend, vars: &[(&str, V)]) -> TestServer {
        let options = Options {
            env: vars
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.as_ref().to_owned()))
                .collect(),
            ..Options::default()
        };
        TestServer::start_in(&Env::new(backend).await, options)
    }

    /// A server for an existing `env`.
    pub fn start_in(env: &Env, options: Options) -> TestServer {
        Starting::spawn(env, options).ready()
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the server runs").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(child) => child.try_wait().expect("poll the server").is_none(),
            None => false,
        }
    }

    /// Sends `signal` (e.g. "TERM", "INT") and waits for the exit.
    pub fn stop_with(&mut self, name: &str) -> ExitStatus {
        signal(self.pid(), name);
        self.wait_exit()
    }

    /// Waits for the process to exit (after a signal sent with [`signal`]).
    pub fn wait_exit(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("the server runs");
        match wait_with_timeout(&mut child, EXIT_TIMEOUT) {
            Some(status) => status,
            None => {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "totpd serve did not exit within {EXIT_TIMEOUT:?}; stderr:\n{}",
                    self.log()
                );
            }
        }
    }

    /// SIGTERM, and wait for the exit.
    pub fn kill(&mut self) -> ExitStatus {
        self.stop_with("TERM")
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("the server runs");
        child.kill().expect("kill -9 the server");
        let _ = child.wait();
    }

    /// Starts the server again on the same data directory and database (after
    /// stopping it with SIGTERM if it still runs). Keeps the same API key.
    pub fn restart(&mut self) {
        if self.child.is_some() {
            let status = self.kill();
            assert!(status.success(), "SIGTERM before restart: {status}");
        }
        self.restart_with(self.options.clone());
    }

    /// Starts the (stopped) server again with other options.
    pub fn restart_with(&mut self, options: Options) {
        assert!(self.child.is_none(), "stop the server before restarting it");
        let starting = Starting::spawn_with(&self.env, options, Arc::clone(&self.stdout));
        let mut again = starting.ready_with(Some(self.key.clone()));
        self.child = again.child.take();
        self.addr = again.addr.clone();
        self.run_first_line = again.run_first_line;
        self.options = again.options.clone();
        self.key = again.key.clone();
    }

    /// Stdout of the current run (since the last start).
    pub fn run_stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap()[self.run_first_line..].to_vec()
    }

    /// Everything the server wrote to stderr, all runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base_url)
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {}", self.addr))
    }

    /// The API as the `default` account's owner key, in the SDKs' header form.
    pub fn api(&self) -> Api {
        self.api_with(Auth::Headers(self.key.clone()))
    }

    /// The API as `key`.
    pub fn api_as(&self, key: &ApiKey) -> Api {
        self.api_with(Auth::Headers(key.clone()))
    }

    pub fn api_with(&self, auth: Auth) -> Api {
        Api {
            http: self.http.clone(),
            base: format!("http://{}", self.addr),
            auth,
        }
    }

    /// `GET path` without credentials, expecting a 200 JSON answer.
    pub async fn get_public(&self, path: &str) -> Reply {
        self.api_with(Auth::None).get(path).await
    }

    /// Asserts the server still answers `/healthz`.
    pub async fn assert_healthy(&mut self) {
        assert!(
            self.is_running(),
            "the server exited; stderr:\n{}",
            self.log()
        );
        let reply = self.get_public("/healthz").await;
        assert_eq!(reply.status, 200, "/healthz: {}", reply.text);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    /// `sb-api-key-id` and `sb-api-secret-key`, as the SDKs send them.
    Headers(ApiKey),
    /// `Authorization: Bearer <key_id>.<secret>`.
    Bearer(ApiKey),
    /// Arbitrary headers.
    Raw(Vec<(&'static str, String)>),
}

/// A request body.
#[derive(Clone, Debug)]
pub enum Body {
    None,
    Json(Value),
    Raw {
        content_type: Option<&'static str>,
        bytes: Vec<u8>,
    },
}

/// An HTTP answer, fully read.
#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or_else(|e| {
            panic!(
                "HTTP {} answer is not JSON ({e}): {}",
                self.status, self.text
            )
        })
    }

    /// A 200 whose body is a JSON object with `"status": "OK"`.
    pub fn expect_ok(&self) -> Value {
        assert_eq!(self.status, 200, "expected 200, got: {}", self.text);
        let body = self.json();
        assert_eq!(body["status"], "OK", "success body: {}", self.text);
        body
    }

    /// The JSON error body `{"status":"ERROR","error":code,"message":...}`
    /// with this HTTP status.
    pub fn expect_error(&self, status: u16, code: &str) -> Value {
        assert_eq!(
            self.status, status,
            "expected {status} {code}, got: {}",
            self.text
        );
        self.expect_error_body(code)
    }

    /// The JSON error body, whatever the status.
    pub fn expect_error_body(&self, code: &str) -> Value {
        let content_type = self
            .headers
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        assert!(
            content_type.starts_with("application/json"),
            "HTTP {} error has Content-Type {content_type:?}: {}",
            self.status,
            self.text
        );
        let body = self.json();
        let object = body
            .as_object()
            .unwrap_or_else(|| panic!("error body is not an object: {}", self.text));
        assert_eq!(
            object.get("status"),
            Some(&Value::from("ERROR")),
            "{}",
            self.text
        );
        assert_eq!(
            object.get("error"),
            Some(&Value::from(code)),
            "{}",
            self.text
        );
        let message = object
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or_else(|| panic!("error body has no message: {}", self.text));
        assert!(!message.trim().is_empty(), "empty message: {}", self.text);
        body
    }

    /// The JSON error body with one of `statuses`; the `error` code is the
    /// one DESIGN §1 names for that status, or at least snake_case.
    pub fn expect_refusal(&self, statuses: &[u16]) -> Value {
        assert!(
            statuses.contains(&self.status),
            "expected HTTP {statuses:?}, got {}: {}",
            self.status,
            self.text
        );
        let code = self.json()["error"].as_str().unwrap_or_default().to_owned();
        let named = match self.status {
            400 => Some("invalid_request"),
            401 => Some("unauthorized"),
            403 => Some("forbidden"),
            404 => Some("not_found"),
            429 => Some("rate_limited"),
            500 => Some("internal"),
            503 => Some("unavailable"),
            _ => None,
        };
        if let Some(named) = named {
            assert_eq!(
                code, named,
                "HTTP {} error code: {}",
                self.status, self.text
            );
        }
        assert!(
            !code.is_empty() && code.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "error code {code:?} is not snake_case: {}",
            self.text
        );
        self.expect_error_body(&code)
    }

    /// The `message` of an error body.
    pub fn message(&self) -> String {
        self.json()["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

/// The HTTP API of one server, as one caller.
#[derive(Clone, Debug)]
pub struct Api {
    http: reqwest::Client,
    base: String,
    auth: Auth,
}

pub const SECRETS: &str = "/api/v2/totp/secrets";

pub fn secret_path(id: &str) -> String {
    format!("{SECRETS}/{id}")
}

pub fn code_path(id: &str) -> String {
    format!("/api/v2/totp/code/{id}")
}

impl Api {
    /// The same caller with its own client that gives up after `timeout`
    /// (the default is 20 s).
    pub fn with_timeout(&self, timeout: Duration) -> Api {
        Api {
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(timeout)
                .build()
                .expect("an HTTP client"),
            ..self.clone()
        }
    }

    pub async fn request(&self, method: Method, path: &str, body: Body) -> Reply {
        self.try_request(method.clone(), path, body)
            .await
            .unwrap_or_else(|e| panic!("{method} {path}: {e}"))
    }

    /// A request that may get no answer at all (e.g. during a shutdown).
    pub async fn try_request(
        &self,
        method: Method,
        path: &str,
        body: Body,
    ) -> Result<Reply, String> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base));
        request = match &self.auth {
            Auth::None => request,
            Auth::Headers(key) => request
                .header("sb-api-key-id", &key.key_id)
                .header("sb-api-secret-key", &key.secret),
            Auth::Bearer(key) => request.header(
                "authorization",
                format!("Bearer {}.{}", key.key_id, key.secret),
            ),
            Auth::Raw(headers) => headers
                .iter()
                .fold(request, |r, (name, value)| r.header(*name, value)),
        };
        request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Raw {
                content_type,
                bytes,
            } => {
                let request = match content_type {
                    Some(ct) => request.header("content-type", ct),
                    None => request,
                };
                request.body(bytes)
            }
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("no answer: {e}"))?;
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let text = response
            .text()
            .await
            .map_err(|e| format!("unreadable body: {e}"))?;
        Ok(Reply {
            status,
            headers,
            text,
        })
    }

    pub async fn get(&self, path: &str) -> Reply {
        self.request(Method::GET, path, Body::None).await
    }

    pub async fn create(&self, body: Value) -> Reply {
        self.request(Method::POST, SECRETS, Body::Json(body)).await
    }

    /// Creates a secret that must be accepted; returns `totp_secret`.
    pub async fn create_ok(&self, body: Value) -> Value {
        let reply = self.create(body).await;
        let answer = reply.expect_ok();
        let created = answer["totp_secret"].clone();
        assert!(created.is_object(), "create answer: {}", reply.text);
        created
    }

    pub async fn list(&self) -> Reply {
        self.get(SECRETS).await
    }

    /// The account's secrets, which must be listable.
    pub async fn list_ok(&self) -> Vec<Value> {
        let reply = self.list().await;
        reply.expect_ok()["totp_secrets"]
            .as_array()
            .unwrap_or_else(|| panic!("list answer has no totp_secrets array: {}", reply.text))
            .clone()
    }

    /// The ids in the account's list.
    pub async fn listed_ids(&self) -> Vec<String> {
        self.list_ok()
            .await
            .iter()
            .map(|s| s["id"].as_str().expect("listed id").to_owned())
            .collect()
    }

    pub async fn code(&self, id: &str) -> Reply {
        self.get(&code_path(id)).await
    }

    pub async fn delete(&self, id: &str) -> Reply {
        self.request(Method::DELETE, &secret_path(id), Body::None)
            .await
    }
}

/// One HTTP/1.1 exchange over a raw TCP connection: the request is written by
/// a separate task while the answer is read, so an early answer (a 413 sent
/// before the body is complete, then a reset) is still seen. reqwest gives
/// up with "error sending request" when its body write fails, before it
/// reads such an answer.
pub async fn raw_exchange(addr: &str, head: &str, body: Vec<u8>) -> Reply {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let stream = tokio::net::TcpStream::connect(addr)
        .await
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    let (mut reader, mut writer) = stream.into_split();
    let request = [head.as_bytes(), b"\r\n", &body].concat();
    let write = tokio::spawn(async move {
        // The server may stop reading and reset: that is its right.
        let _ = writer.write_all(&request).await;
        let _ = writer.flush().await;
        writer
    });
    let mut answer = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            match reader.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => answer.extend_from_slice(&chunk[..n]),
            }
        }
    };
    tokio::time::timeout(Duration::from_secs(20), read)
        .await
        .unwrap_or_else(|_| panic!("no complete answer within 20 s"));
    write.abort();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer (got {} bytes: {text:?})", answer.len()));
    let mut lines = head.lines();
    let status_line = lines.next().unwrap_or_default();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = HeaderMap::new();
    for line in lines {
        if let Some((name, value)) = line.split_once(':')
            && let (Ok(name), Ok(value)) = (
                reqwest::header::HeaderName::from_bytes(name.trim().as_bytes()),
                reqwest::header::HeaderValue::from_str(value.trim()),
            )
        {
            headers.append(name, value);
        }
    }
    let body = match headers
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
    {
        Some(len) => body.get(..len).unwrap_or(body).to_owned(),
        None => body.to_owned(),
    };
    Reply {
        status,
        headers,
        text: body,
    }
}

/// Polls `GET path` as `api` until it is refused with the 401 body; returns
/// how long after `since` that happened. Panics if it is still accepted
/// after 5 s.
pub async fn refused_after(api: &Api, path: &str, since: Instant) -> Duration {
    loop {
        let reply = api.get(path).await;
        if reply.status == 401 {
            reply.expect_error_body("unauthorized");
            return since.elapsed();
        }
        reply.expect_ok();
        assert!(
            since.elapsed() < Duration::from_secs(5),
            "a revoked key is still accepted after 5 s"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A secret as the tests know it: its bytes and parameters.
#[derive(Clone, Debug)]
pub struct Known {
    pub key: Vec<u8>,
    pub alg: Alg,
    pub digits: u32,
    pub period: u64,
}

/// Fetches the code of `id` and checks it against the independent
/// implementation at the same instant: the answer must match the server's
/// clock at some second between just before the request and just after it
/// (so only a period boundary crossed during the request allows either
/// side). Checks `code`, `expires_in`, `expires_at`, `period` and `digits`.
/// Returns the code.
pub async fn assert_code(api: &Api, id: &str, known: &Known) -> String {
    let before = unix_ms();
    let reply = api.code(id).await;
    let after = unix_ms();
    let body = reply.expect_ok();
    check_code_body(&body, known, before, after);
    body["code"].as_str().unwrap_or_default().to_owned()
}

/// See [`assert_code`]: checks a code answer obtained between `before_ms`
/// and `after_ms`.
pub fn check_code_body(body: &Value, known: &Known, before_ms: i64, after_ms: i64) {
    let code = body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code string in {body}"));
    assert_eq!(
        code.len(),
        known.digits as usize,
        "code {code:?} is not {} digits (zero-padded)",
        known.digits
    );
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "code {code:?}");
    let expires_in = body["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("expires_in is not a whole number in {body}"));
    assert!(
        (1..=known.period).contains(&expires_in),
        "expires_in {expires_in} outside 1..={}",
        known.period
    );
    assert_eq!(body["period"], known.period, "period in {body}");
    assert_eq!(body["digits"], known.digits, "digits in {body}");
    let expires_at = body["expires_at"]
        .as_str()
        .and_then(crate::otp::parse_rfc3339)
        .unwrap_or_else(|| panic!("expires_at is not RFC 3339 in {body}"));

    let first = u64::try_from(before_ms.div_euclid(1000)).expect("after 1970");
    let last = u64::try_from(after_ms.div_euclid(1000)).expect("after 1970");
    let instants: Vec<u64> = (first..=last).collect();
    let matching = instants.iter().find(|&&t| {
        let step_end = (t / known.period + 1) * known.period;
        totp(&known.key, known.alg, known.digits, known.period, t) == code
            && known.period - t % known.period == expires_in
            && i64::try_from(step_end * 1000).ok() == Some(expires_at)
    });
    if matching.is_none() {
        let expected: Vec<String> = instants
            .iter()
            .map(|&t| {
                format!(
                    "at {t}: code {} expires_in {}",
                    totp(&known.key, known.alg, known.digits, known.period, t),
                    known.period - t % known.period
                )
            })
            .collect();
        panic!(
            "the code answer {body} ({:?}, {} digits, period {}) matches the independent implementation at no second of the request; expected one of: {}",
            known.alg,
            known.digits,
            known.period,
            expected.join("; ")
        );
    }
}

/// What `totpd serve --help` prints (it must succeed).
pub fn serve_help() -> String {
    let out = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .expect("run totpd serve --help");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).into_owned()
}
