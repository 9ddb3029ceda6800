//! The harness: real `totpd serve` processes bound to port 0, each with a
//! fresh data directory and a fresh database (SQLite in the data directory,
//! or a PostgreSQL database of its own), an in-process app on the real
//! router for API tests that need no process, and an HTTP client for the API.
//!
//! Everything a test starts is stopped when its handle drops, also when the
//! test panics: server processes are killed, PostgreSQL databases dropped.
//!
//! By subject: `env` (vaults: data directory, database, master key, raw
//! rows), `cli` (one-shot commands, signals), `server` (`totpd serve`
//! processes), `app` (the in-process app), `http` (the API client and its
//! replies), `codes` (code answers checked against the independent
//! implementation in `otp.rs`).

mod app;
mod cli;
mod codes;
mod env;
mod http;
mod raw;
mod server;

pub use app::{TestApp, spawn_app, spawn_app_on};
pub use cli::{CliOutput, run_totpd, run_totpd_with_env, serve_help, signal};
pub use codes::{Known, assert_code, check_code_body};
pub use env::{ApiKey, Env, random_bytes, random_master_key, unix_ms};
pub use http::{
    Api, Auth, Body, Reply, SECRETS, assert_refused_by_every_node_within_a_second, client_from,
    code_path, raw_exchange, refused_after, secret_path, send, with_key,
};
pub use raw::{Answer, closed_within, read_answer};
pub use server::{Options, Starting, TestServer, start_together, the_one_bootstrap_key};
pub use totpd_testkit::pg::{self, PG_URL_ENV, PgDatabase};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_totpd");

/// What serves the API to a test: a `totpd serve` process ([`TestServer`])
/// or the in-process app ([`TestApp`]). For helpers that work with either.
pub trait Serves {
    /// The API with these credentials.
    fn api_with(&self, auth: Auth) -> Api;
    /// An owner key of the `default` account.
    fn key(&self) -> &ApiKey;
    /// The API as the owner key.
    fn api(&self) -> Api {
        self.api_with(Auth::Headers(self.key().clone()))
    }
    /// The API as `key`.
    fn api_as(&self, key: &ApiKey) -> Api {
        self.api_with(Auth::Headers(key.clone()))
    }
}

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
