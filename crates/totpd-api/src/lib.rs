//! The totpd HTTP API: the Sendblue-compatible `/api/v2/totp` routes, their
//! authentication, the JSON error body, health checks and the OpenAPI
//! document.
//!
//! Only this crate knows about HTTP and JSON. It never touches storage except
//! through [`totpd_vault::Vault`], and it reads the clock only through
//! [`Clock`].

mod auth;
#[cfg(feature = "bench-bare")]
mod bench;
mod clock;
mod error;
mod health;
mod json;
mod metrics;
mod openapi;
mod secrets;
mod telemetry;
mod wire;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use totpd_vault::Vault;

pub use clock::{Clock, SystemClock};
pub use error::ApiError;
pub use metrics::Metrics;
pub use openapi::openapi_json;
pub use secrets::parse_create_secret_body;

/// Largest accepted request body.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// Limits applied to every request.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Largest request body in bytes (413 beyond).
    pub max_body_bytes: usize,
    /// Longest time a request may take before it is answered 503.
    pub request_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_body_bytes: MAX_BODY_BYTES,
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// What every handler can reach.
#[derive(Clone, Debug)]
pub struct AppState {
    /// The vault.
    pub vault: Arc<Vault>,
    /// The one source of the current time.
    pub clock: Arc<dyn Clock>,
    /// Counters for `/metrics`.
    pub metrics: Arc<Metrics>,
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
pub fn router(state: AppState, limits: &Limits) -> Router {
    Router::new()
        .merge(secrets::router())
        .merge(health::router())
        .merge(openapi::router())
        .merge(metrics::router())
        .merge(bench_router())
        .fallback(error::not_found_fallback)
        .method_not_allowed_fallback(error::method_not_allowed_fallback)
        .layer(DefaultBodyLimit::max(limits.max_body_bytes))
        .layer(telemetry::layer(
            limits.request_timeout,
            Arc::clone(&state.metrics),
        ))
        .with_state(state)
}
