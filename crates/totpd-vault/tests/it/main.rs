//! The one integration-test binary of totpd-vault.

// The workspace denies these in library code; clippy.toml lifts them inside
// `#[test]` functions only, and this whole binary is test code (helpers and
// the in-memory store included), where a panic is how a check fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod audit;
mod binding;
mod memory_store;
mod redaction;
mod ring;
mod roles;
mod support;
