//! `/mcp`: the MCP tools (totpd-mcp) over streamable HTTP, served by the
//! in-process vault as the API key that authenticated each HTTP request.
//!
//! The route sits behind the same [`Auth`] extractor as the REST routes (so
//! the same headers, failed-authentication lockout and per-key rate limit),
//! inside the same telemetry and timeout middleware (so the same metrics and
//! request deadline), and every tool calls the vault as the REST handler of
//! the same operation does (so the same roles, scopes and audit records: a
//! code read is `code.read` under the key id).
//!
//! The transport is stateless (no `Mcp-Session-Id`): each POST carries its
//! own key and is answered as one JSON body, which is what the request
//! timeout and the per-request principal need. Clients of the previous
//! protocol revision still get their `initialize` handshake.

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::Response;
use rmcp::model::Extensions;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use serde_json::{Map, Value};
use totpd_import::{Entry, Format};
use totpd_mcp::{
    AddOutcome, BackendError, BackendSource, IssuedCode as McpCode, NewSecretInput, SecretSummary,
    TotpBackend, TotpdMcp, error_from_status, outcome_from_import,
};
use totpd_vault::{ImportEntry, ImportOptions, IssuedCode, Principal, SecretFilter, Verification};
use uuid::Uuid;

use crate::AppState;
use crate::auth::Auth;
use crate::error::ApiError;
use crate::telemetry::WaitAllowance;
use crate::wire::{CodeAnswer, CodeResponse, HotpCodeResponse, ImportResponse, TotpSecret};

/// How `/mcp` is served.
#[derive(Clone, Debug)]
pub struct McpSettings {
    /// Answer `/mcp` at all.
    pub enabled: bool,
    /// `Host` values accepted (names or `host:port`); empty accepts any
    /// (for a proxy that checks the host itself). Guards against DNS
    /// rebinding.
    pub allowed_hosts: Vec<String>,
    /// `Origin` values accepted (`scheme://host[:port]`, `:*` for any
    /// port). A request without `Origin` (any non-browser client) passes;
    /// with the default empty list, every request that has one is refused.
    pub allowed_origins: Vec<String>,
    /// List and run `delete_totp_secret` (the key's role still decides).
    pub allow_delete: bool,
}

impl Default for McpSettings {
    fn default() -> McpSettings {
        McpSettings {
            enabled: true,
            allowed_hosts: DEFAULT_ALLOWED_HOSTS
                .iter()
                .map(|h| (*h).to_owned())
                .collect(),
            allowed_origins: Vec::new(),
            allow_delete: false,
        }
    }
}

/// `Host` values accepted by default: the loopback names.
pub const DEFAULT_ALLOWED_HOSTS: &[&str] = &["localhost", "127.0.0.1", "::1"];

/// Largest MCP request body: a QR screenshot as base64 in JSON, the REST
/// import's 10 MiB and its base64 growth.
const MAX_MCP_BODY_BYTES: usize = crate::MAX_IMPORT_BODY_BYTES / 3 * 4 + 64 * 1024;

/// The authenticated caller, put in the request by [`authenticate`] for
/// the tools to read back.
#[derive(Clone, Debug)]
struct McpCaller(Principal);

pub(crate) fn router(state: &AppState) -> Router<AppState> {
    let settings = &state.mcp;
    if !settings.enabled {
        return Router::new();
    }
    let mut config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_sse_keep_alive(None)
        .with_max_request_body_bytes(MAX_MCP_BODY_BYTES)
        .with_allowed_origins(settings.allowed_origins.clone())
        .enforce_origin_validation();
    config = if settings.allowed_hosts.is_empty() {
        config.disable_allowed_hosts()
    } else {
        config.with_allowed_hosts(settings.allowed_hosts.clone())
    };
    let source: Arc<dyn BackendSource> = Arc::new(VaultSource {
        state: state.clone(),
    });
    let allow_delete = settings.allow_delete;
    let service = StreamableHttpService::new(
        move || Ok(TotpdMcp::new(Arc::clone(&source), allow_delete)),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            authenticate,
        ))
}

/// Every `/mcp` request authenticates as a REST request does.
async fn authenticate(Auth(principal): Auth, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(McpCaller(principal));
    next.run(request).await
}

/// The vault as the caller of each MCP request.
#[derive(Debug)]
struct VaultSource {
    state: AppState,
}

impl BackendSource for VaultSource {
    fn backend(&self, extensions: &Extensions) -> Option<Arc<dyn TotpBackend>> {
        let parts = extensions.get::<Parts>()?;
        let McpCaller(principal) = parts.extensions.get::<McpCaller>()?.clone();
        Some(Arc::new(VaultBackend {
            state: self.state.clone(),
            principal,
            allowance: parts.extensions.get::<Arc<WaitAllowance>>().cloned(),
        }))
    }
}

#[derive(Debug)]
struct VaultBackend {
    state: AppState,
    principal: Principal,
    allowance: Option<Arc<WaitAllowance>>,
}

/// A vault refusal as the REST API would answer it, then as the tools see
/// a REST error: one mapping for both transports.
fn refused(error: impl Into<ApiError>) -> BackendError {
    let error: ApiError = error.into();
    let (status, _) = error.status_and_code();
    error_from_status(status.as_u16(), Some(error.to_string()))
}

/// A wire value read back as the tools' type (the same JSON the REST
/// client reads).
fn reread<T: serde::de::DeserializeOwned>(
    value: &impl serde::Serialize,
) -> Result<T, BackendError> {
    serde_json::to_value(value)
        .and_then(serde_json::from_value)
        .map_err(|e| BackendError::Other(e.to_string()))
}

#[async_trait::async_trait]
impl TotpBackend for VaultBackend {
    async fn list(
        &self,
        query: Option<&str>,
        limit: u32,
    ) -> Result<(Vec<SecretSummary>, bool), BackendError> {
        let filter = SecretFilter::new(None, query);
        let (secrets, next) = self
            .state
            .vault
            .list_secrets_matching(&self.principal, &filter, None, limit.clamp(1, 1000))
            .await
            .map_err(refused)?;
        let secrets = secrets
            .iter()
            .map(|info| reread(&TotpSecret::from(info)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok((secrets, next.is_some()))
    }

    async fn code(&self, id: Uuid, min_remaining: Option<u64>) -> Result<McpCode, BackendError> {
        let state = &self.state;
        let code = match min_remaining {
            None => {
                state
                    .vault
                    .code(&self.principal, id, state.clock.now())
                    .await
            }
            Some(seconds) => {
                // As on the REST route: the wait asked for is not work, so
                // the request timeout grows by it.
                if let Some(allowance) = &self.allowance {
                    allowance.allow(std::time::Duration::from_secs(seconds));
                }
                state
                    .vault
                    .code_with_min_remaining(&self.principal, id, seconds, state.clock.as_ref())
                    .await
            }
        }
        .map_err(refused)?;
        state.metrics.code_issued();
        reread(&match &code {
            IssuedCode::Totp(code) => CodeAnswer::Totp(CodeResponse::from(code)),
            IssuedCode::Hotp(code) => CodeAnswer::Hotp(HotpCodeResponse::from(code)),
        })
    }

    async fn add(&self, input: NewSecretInput) -> Result<AddOutcome, BackendError> {
        let state = &self.state;
        let mut body = Map::new();
        match input {
            NewSecretInput::Uri(uri) => {
                body.insert("uri".into(), Value::String(uri.to_string()));
            }
            NewSecretInput::Fields {
                secret,
                label,
                issuer,
            } => {
                body.insert("secret".into(), Value::String(secret.to_string()));
                body.insert("label".into(), Value::String(label));
                if let Some(issuer) = issuer {
                    body.insert("issuer".into(), Value::String(issuer));
                }
            }
            NewSecretInput::QrImage { bytes, .. } => {
                let entries = crate::import::read_file(state, Format::Qr, bytes, None)
                    .await
                    .map_err(refused)?
                    .into_iter()
                    .map(|entry| match entry {
                        Entry::Otp(params) => ImportEntry::from_params(params),
                        Entry::Invalid(invalid) => ImportEntry::Invalid {
                            label: invalid.label,
                            issuer: invalid.issuer,
                            reason: invalid.reason,
                        },
                    })
                    .collect();
                let report = state
                    .vault
                    .import_secrets(
                        &self.principal,
                        entries,
                        ImportOptions::default(),
                        state.clock.now(),
                    )
                    .await
                    .map_err(refused)?;
                let answer = serde_json::to_value(ImportResponse::new(&report))
                    .map_err(|e| BackendError::Other(e.to_string()))?;
                return Ok(outcome_from_import(&answer));
            }
        }
        // The REST create's own parsing, so both transports take the same
        // input; the body (and so the secret) is dropped right after.
        let (new, _) = crate::secrets::parse_create(&body).map_err(refused)?;
        drop(body);
        let created = state
            .vault
            .create_secret(&self.principal, new, state.clock.now())
            .await
            .map_err(refused)?;
        let secret: SecretSummary = reread(&TotpSecret::from(&created.info))?;
        Ok(AddOutcome {
            secrets: vec![totpd_mcp::AddedSecret {
                id: secret.id,
                label: secret.label,
                issuer: secret.issuer,
                outcome: "created".to_owned(),
            }],
            skipped: Vec::new(),
        })
    }

    async fn verify(&self, id: Uuid, code: &str) -> Result<bool, BackendError> {
        let verified = self
            .state
            .vault
            .verify(&self.principal, id, code, self.state.clock.now())
            .await
            .map_err(refused)?;
        Ok(verified == Verification::Valid)
    }

    async fn delete(&self, id: Uuid) -> Result<(), BackendError> {
        self.state
            .vault
            .delete_secret(&self.principal, id, self.state.clock.now())
            .await
            .map_err(refused)
    }
}
