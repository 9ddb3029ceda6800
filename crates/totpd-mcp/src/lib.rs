//! The MCP (Model Context Protocol) interface of totpd: the tools an AI
//! agent uses to list secrets, get and verify codes, add and (when allowed)
//! delete secrets.
//!
//! The tools are written once, over a [`TotpBackend`]; each transport brings
//! its own:
//!
//! - `totpd mcp` (stdio) talks to a running server through its REST API
//!   ([`HttpBackend`], feature `stdio`) and never opens the database;
//! - `totpd serve` answers `/mcp` (streamable HTTP, in `totpd-api`) with the
//!   in-process vault as the key that authenticated the request, so roles,
//!   scopes, limits and the audit log are the REST API's own.
//!
//! This crate knows no HTTP server: it hands `totpd-api` an rmcp
//! [`ServerHandler`](rmcp::handler::server::ServerHandler), and reads the
//! caller from the request through [`BackendSource`].

mod backend;
#[cfg(feature = "stdio")]
mod http;
mod server;
#[cfg(feature = "stdio")]
mod stdio;
mod tools;

pub use backend::{
    AddOutcome, AddedSecret, BackendError, IssuedCode, NewSecretInput, SecretSummary, SkippedEntry,
    TotpBackend, error_from_status, outcome_from_create, outcome_from_import,
};
#[cfg(feature = "stdio")]
pub use http::{ClientConfig, ClientError, HttpBackend};
pub use server::{BackendSource, FixedBackend, PROTOCOL_VERSIONS, TotpdMcp};
#[cfg(feature = "stdio")]
pub use stdio::{StdioError, serve_stdio};
