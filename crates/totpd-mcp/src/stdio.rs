//! `totpd mcp`: the server over stdin/stdout. stdout carries only the
//! protocol; everything else goes to stderr.

use std::sync::Arc;

use rmcp::ServiceExt as _;

use crate::backend::TotpBackend;
use crate::server::{FixedBackend, TotpdMcp};

/// Why the stdio server stopped abnormally.
#[derive(Debug, thiserror::Error)]
#[error("the MCP session over stdio failed: {0}")]
pub struct StdioError(String);

/// Serves MCP on stdin/stdout over `backend` until the client closes stdin.
pub async fn serve_stdio(
    backend: Arc<dyn TotpBackend>,
    allow_delete: bool,
) -> Result<(), StdioError> {
    let server = TotpdMcp::new(Arc::new(FixedBackend(backend)), allow_delete);
    let running = server
        .serve(rmcp::transport::stdio())
        .await
        .map_err(|e| StdioError(e.to_string()))?;
    running
        .waiting()
        .await
        .map_err(|e| StdioError(e.to_string()))?;
    Ok(())
}
