//! The MCP server: [`TotpdMcp`], an rmcp [`ServerHandler`] that lists the
//! tools and runs them over the backend of each request.

use std::borrow::Cow;
use std::sync::Arc;

use rmcp::handler::server::ServerHandler;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, ErrorData, Extensions, Implementation,
    ListToolsResult, PaginatedRequestParams, ProtocolVersion, ServerCapabilities, ServerConfig,
    Tool,
};
use rmcp::service::{RequestContext, RoleServer};

use crate::backend::TotpBackend;
use crate::tools;

/// Where a request's backend comes from. Over stdio it is one client of the
/// REST API; in `totpd serve` it is the vault as the key that authenticated
/// the HTTP request carrying the call (found in the request's extensions).
pub trait BackendSource: Send + Sync + std::fmt::Debug + 'static {
    /// The backend for a request, or `None` when it carries no
    /// authenticated caller (then the call is refused).
    fn backend(&self, extensions: &Extensions) -> Option<Arc<dyn TotpBackend>>;
}

/// One backend for every request: `totpd mcp`'s REST client.
#[derive(Debug)]
pub struct FixedBackend(pub Arc<dyn TotpBackend>);

impl BackendSource for FixedBackend {
    fn backend(&self, _: &Extensions) -> Option<Arc<dyn TotpBackend>> {
        Some(Arc::clone(&self.0))
    }
}

/// The protocol revisions served: the current one (stateless, no
/// `initialize`) and the previous one (with the `initialize` handshake).
pub const PROTOCOL_VERSIONS: &[ProtocolVersion] =
    &[ProtocolVersion::V_2026_07_28, ProtocolVersion::V_2025_11_25];

const INSTRUCTIONS: &str = "totpd holds TOTP/HOTP secrets (2FA setup keys) and hands out their one-time codes. \
To log in somewhere that asks for a 2FA code: call get_totp_code with the service's name (or list_totp_secrets, then get_totp_code with the secret_id). \
Secret keys are never returned by any tool.";

/// The totpd MCP server.
#[derive(Clone, Debug)]
pub struct TotpdMcp {
    source: Arc<dyn BackendSource>,
    allow_delete: bool,
}

impl TotpdMcp {
    /// A server over `source`; `delete_totp_secret` exists only when
    /// `allow_delete` (and then the key's role still decides).
    pub fn new(source: Arc<dyn BackendSource>, allow_delete: bool) -> TotpdMcp {
        TotpdMcp {
            source,
            allow_delete,
        }
    }

    /// The tools this server lists.
    pub fn tools(&self) -> Vec<Tool> {
        tools::definitions(self.allow_delete)
    }
}

impl ServerHandler for TotpdMcp {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(
                Implementation::new("totpd", env!("CARGO_PKG_VERSION")).with_title("totpd"),
            )
            .with_instructions(INSTRUCTIONS)
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(PROTOCOL_VERSIONS)
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        Ok(ListToolsResult::with_all_items(self.tools()))
    }

    fn get_tool(&self, name: &str) -> Option<Tool> {
        self.tools().into_iter().find(|tool| tool.name == name)
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let Some(backend) = self.source.backend(&context.extensions) else {
            return Err(ErrorData::invalid_request(
                "this request carries no authenticated API key",
                None,
            ));
        };
        let arguments = request.arguments.unwrap_or_default();
        match tools::call(
            backend.as_ref(),
            &request.name,
            &arguments,
            self.allow_delete,
        )
        .await
        {
            Some(result) => Ok(result.into()),
            None => Err(ErrorData::invalid_params(
                format!(
                    "no tool named {:?}; call tools/list for the tools of this server",
                    request.name.chars().take(64).collect::<String>()
                ),
                None,
            )),
        }
    }
}
