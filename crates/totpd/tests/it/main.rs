//! Integration tests of the `totpd` binary: real `totpd serve` processes on
//! port 0, driven over HTTP and through the CLI, and (for tests that only
//! speak HTTP to the router) the in-process app `harness::spawn_app`,
//! against both storage backends (SQLite in a fresh data directory; a fresh
//! PostgreSQL database per test when `TOTPD_TEST_POSTGRES_URL` is set).
//!
//! Expected codes come from the independent implementation in `otp.rs`,
//! never from totpd-otp.

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

mod harness;
mod otp;

mod abuse_limits;
mod answers_and_state;
mod audit;
mod auth;
mod backup;
mod bad_input;
mod binding;
mod cli;
mod cluster;
mod codes;
mod connections;
mod console;
mod endpoints;
mod enrollment;
mod error_chain;
mod first_start;
mod hardening;
mod hotp;
mod import;
mod import_cli;
mod input_echo;
mod lifecycle;
mod lists_and_quota;
mod metrics;
mod migrate;
mod migrate_to_postgres;
mod pg_outage;
mod postgres_tls;
mod rekey;
mod roles;
mod secrets;
mod service;
mod settings;
mod storage;
mod verify;
mod wal_scrub;
