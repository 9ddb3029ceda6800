//! The totpd HTTP API: the Sendblue-compatible `/api/v2/totp` routes, their
//! authentication, the JSON error body, health checks, the OpenAPI
//! document and the web console (`/`).
//!
//! Only this crate knows about HTTP and JSON. It never touches storage except
//! through [`totpd_vault::Vault`], and it reads the clock only through
//! [`Clock`].

mod audit;
mod auth;
#[cfg(feature = "bench-bare")]
mod bench;
mod console;
mod error;
mod health;
mod import;
mod json;
mod keys;
mod limits;
mod mcp;
mod metrics;
mod openapi;
mod qr;
mod secrets;
mod telemetry;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use totpd_vault::Vault;

use crate::limits::AbuseLimits;

pub use console::{CONTENT_SECURITY_POLICY, console_asset_paths};
pub use error::ApiError;
pub use import::{IMPORT_READERS, MAX_IMPORT_BODY_BYTES};
pub use mcp::{DEFAULT_ALLOWED_HOSTS, McpSettings};
pub use metrics::Metrics;
pub use metrics::{MetricsAccess, MetricsToken, MetricsTokenError, metrics_app};
pub use openapi::openapi_json;
pub use secrets::{parse_create_secret_body, parse_update_secret_body, parse_verify_body};
pub use totpd_vault::{Clock, SystemClock};

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Default requests per second (and burst) of one API key on one node: 0, no
/// limit, so one key can use a whole node (a batch job, a fleet of agents
/// behind one key). Operators who hand keys to agents they do not fully trust
/// set a few times the busiest key's peak rate (the documentation suggests
/// 1000 as a start).
pub const RATE_LIMIT_PER_KEY: u32 = 0;
/// Default failed authentications of one key id from one client address
/// before that key id is locked out for that address. The address as a whole
/// may fail ten times as often.
pub const AUTH_FAILURE_LIMIT: u32 = 100;
/// Default window of [`AUTH_FAILURE_LIMIT`], and how long the lockout lasts.
pub const AUTH_FAILURE_WINDOW: Duration = Duration::from_secs(60);

/// Limits applied to every request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout: Duration,
    /// Requests per second of one API key, with bursts of as many; beyond,
    /// 429 `rate_limited`. Counted per node. 0 turns the limit off.
    pub rate_limit_per_key: u32,
    /// Failed authentications (credentials sent but wrong, unknown or
    /// revoked) of one key id from one client address (IPv6: its /64) within
    /// `auth_failure_window` after which that key id from that address is
    /// answered 429 for `auth_failure_window`, before its secret is checked.
    /// Other key ids from the address are unaffected until the address as a
    /// whole has failed ten times this limit; then only the key ids that
    /// authenticated from it since its failures started being counted are
    /// still checked, the others get 429 for the window. Counted per node.
    /// 0 turns the lockout off.
    pub auth_failure_limit: u32,
    /// See `auth_failure_limit`.
    pub auth_failure_window: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(10),
            rate_limit_per_key: RATE_LIMIT_PER_KEY,
            auth_failure_limit: AUTH_FAILURE_LIMIT,
            auth_failure_window: AUTH_FAILURE_WINDOW,
        }
    }
}

/// Everything the handlers and the middleware reach: the one state of the
/// router (`State<AppState>`), built by [`AppState::new`]. Per-node state
/// (the abuse limits' counters, the last readiness probe) is shared by every
/// clone, so an app and its metrics-only app (see [`metrics_app`]) count
/// together.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The vault.
    pub vault: Arc<Vault>,
    /// The one source of the current time.
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
    /// The limits every request is held to.
    pub(crate) limits: Arc<Limits>,
    /// The per-key rate limit and the failed-authentication lockout.
    pub(crate) abuse: Arc<AbuseLimits>,
    /// The last `/readyz` probe.
    pub(crate) readiness: Arc<health::Readiness>,
    /// The node's permits to read an import file.
    pub(crate) import_readers: Arc<import::ImportReaders>,
    /// How `/mcp` is served.
    pub(crate) mcp: Arc<McpSettings>,
}

impl AppState {
    /// The state of an app on `vault`, held to `limits`.
    pub fn new(
        vault: Arc<Vault>,
        clock: Arc<dyn Clock>,
        metrics: Arc<Metrics>,
        limits: Limits,
    ) -> AppState {
        AppState {
            vault,
            clock,
            metrics,
            abuse: Arc::new(AbuseLimits::new(&limits)),
            limits: Arc::new(limits),
            readiness: Arc::default(),
            import_readers: Arc::default(),
            mcp: Arc::default(),
        }
    }

    /// The same state, serving `/mcp` as `settings` say (by default: on,
    /// loopback hosts only, no browser origin, no delete tool).
    pub fn with_mcp(mut self, settings: McpSettings) -> AppState {
        self.mcp = Arc::new(settings);
        self
    }
}

#[cfg(feature = "bench-bare")]
fn bench_router() -> Router<AppState> {
    bench::router()
}

#[cfg(not(feature = "bench-bare"))]
fn bench_router() -> Router<AppState> {
    Router::new()
}

/// The whole HTTP application.
///
/// The failed-authentication lockout needs the client's address: the server
/// must put an [`axum::extract::ConnectInfo`]`<SocketAddr>` in each request's
/// extensions (without one, that lockout does not apply).
pub fn router(state: AppState) -> Router {
    Router::new()
        .merge(secrets::router())
        .merge(import::router())
        .merge(audit::router())
        .merge(keys::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(metrics::router())
        .merge(console::router())
        .merge(bench_router())
        .merge(mcp::router(&state))
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(state.limits.max_body_bytes))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            telemetry::track,
        ))
        .with_state(state)
}
