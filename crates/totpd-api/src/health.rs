//! Unauthenticated health checks for load balancers.
//!
//! `/readyz` asks the database at most once per [`READINESS_CACHE`]: the
//! answer in between is the last probe's, so a flood of `/readyz` (it needs
//! no credentials) costs no database round trip per request. Concurrent
//! requests that find the cached answer stale wait for one probe together.

use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;
use crate::wire::StatusOnly;

/// How long one database probe answers `/readyz`.
pub(crate) const READINESS_CACHE: Duration = Duration::from_secs(1);

/// The last probe: when it ran and whether the database answered.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    last: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

pub(crate) fn router() -> Router<AppState> {
    Router::new()
        .route("/healthz", get(get_healthz))
        .route("/readyz", get(get_readyz))
}

/// Alive: the process answers HTTP.
#[utoipa::path(get, path = "/healthz", tag = "health",
    responses((status = 200, description = "The process is alive", body = StatusOnly)))]
pub(crate) async fn get_healthz() -> axum::Json<StatusOnly> {
    axum::Json(StatusOnly::ok())
}

/// Ready: the database answers (probed at most once a second; answers in
/// between repeat the last probe's).
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The database is reachable", body = StatusOnly),
        (status = 503, description = "The database is unreachable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn get_readyz(
    State(state): State<AppState>,
) -> Result<axum::Json<StatusOnly>, ApiError> {
    let mut last = state.readiness.last.lock().await;
    let ready = match *last {
        Some((at, ready))
            if state.clock.monotonic().saturating_duration_since(at) < READINESS_CACHE =>
        {
            ready
        }
        _ => {
            state.metrics.readiness_probed();
            let ready = match state.vault.ping().await {
                Ok(()) => true,
                Err(error) => {
                    // Logged once per probe, not once per request.
                    tracing::warn!(error = %totpd_vault::ErrorChain(&error), "readiness probe: the database is unavailable");
                    false
                }
            };
            *last = Some((state.clock.monotonic(), ready));
            ready
        }
    };
    drop(last);
    if ready {
        Ok(axum::Json(StatusOnly::ok()))
    } else {
        Err(ApiError::Unavailable(
            "the database is unavailable; retry shortly",
        ))
    }
}
