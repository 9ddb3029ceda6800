//! The Store contract, run against SQLite and (when `TOTPD_TEST_POSTGRES_URL`
//! is set) PostgreSQL, plus what only SQLite promises: group commit,
//! `secure_delete`, URL forms, sharing the file with other processes.

// All of this crate is test code: a failed expectation panics by design.
// clippy.toml allows these in `#[test]` functions only; the helpers those
// tests call are test code just the same.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod audit;
mod contract;
mod copy;
mod db;
mod reseal;
mod rows;
mod schema;
mod snapshot;
mod sqlite;
mod tables;
