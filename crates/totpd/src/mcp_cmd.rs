//! `totpd mcp`: the MCP tools on stdin/stdout, over the REST API of a
//! running server (see `totpd_mcp`). stdout is the protocol: every message
//! of this command goes to stderr.

use std::process::ExitCode;
use std::sync::Arc;

use totpd_mcp::{ClientConfig, HttpBackend};
use zeroize::Zeroizing;

use crate::cli::McpArgs;

const NO_URL: &str = "no server URL: pass --url or set TOTPD_URL (e.g. http://127.0.0.1:8080)";
const NO_KEY: &str =
    "no API key: set TOTPD_KEY_ID and TOTPD_KEY_SECRET, or TOTPD_API_KEY=<key_id>.<secret>";
const BAD_API_KEY: &str = "TOTPD_API_KEY must be <key_id>.<secret>";

fn env_text(name: &str) -> Option<Zeroizing<String>> {
    std::env::var(name)
        .ok()
        .map(Zeroizing::new)
        .filter(|v| !v.trim().is_empty())
}

/// The key from --key-id/TOTPD_KEY_ID + TOTPD_KEY_SECRET, else from
/// TOTPD_API_KEY. The secret is read from the environment only: a command
/// line is visible to every user of the machine.
fn key(args: &McpArgs) -> anyhow::Result<(String, Zeroizing<String>)> {
    let id = args
        .key_id
        .as_deref()
        .map(str::trim)
        .filter(|id| !id.is_empty());
    if let (Some(id), Some(secret)) = (id, env_text("TOTPD_KEY_SECRET")) {
        return Ok((id.to_owned(), secret));
    }
    if let Some(combined) = env_text("TOTPD_API_KEY") {
        let (id, secret) = combined
            .trim()
            .split_once('.')
            .filter(|(id, secret)| !id.is_empty() && !secret.is_empty())
            .ok_or_else(|| anyhow::anyhow!(BAD_API_KEY))?;
        return Ok((id.to_owned(), Zeroizing::new(secret.to_owned())));
    }
    Err(anyhow::anyhow!(NO_KEY))
}

/// Logs go to stderr, warnings and worse unless TOTPD_LOG says otherwise:
/// MCP clients show a server's stderr to their user.
fn init_logging() {
    let mut filter = tracing_subscriber::EnvFilter::try_from_env("TOTPD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    // rmcp logs whole protocol messages (secrets in, codes out) at trace.
    if let Ok(directive) = "rmcp=warn".parse() {
        filter = filter.add_directive(directive);
    }
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(false)
        .with_writer(std::io::stderr)
        .init();
}

pub(crate) async fn run(args: McpArgs) -> anyhow::Result<ExitCode> {
    init_logging();
    let url = args
        .url
        .clone()
        .filter(|u| !u.trim().is_empty())
        .ok_or_else(|| anyhow::anyhow!(NO_URL))?;
    let (key_id, secret) = key(&args)?;
    let backend = HttpBackend::new(&ClientConfig {
        url,
        key_id,
        secret,
    })?;
    backend.probe().await?;
    tracing::info!("MCP server on stdio ready");
    totpd_mcp::serve_stdio(Arc::new(backend), args.allow_delete).await?;
    Ok(ExitCode::SUCCESS)
}
