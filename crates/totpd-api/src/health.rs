//! Unauthenticated health checks for load balancers.

use axum::Router;
use axum::extract::State;
use axum::routing::get;

use crate::AppState;
use crate::error::ApiError;
use crate::wire::StatusOnly;

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

/// Ready: the database answers.
#[utoipa::path(get, path = "/readyz", tag = "health",
    responses(
        (status = 200, description = "The database is reachable", body = StatusOnly),
        (status = 503, description = "The database is unreachable", body = crate::wire::ErrorBody),
    ))]
pub(crate) async fn get_readyz(
    State(state): State<AppState>,
) -> Result<axum::Json<StatusOnly>, ApiError> {
    state
        .vault
        .store()
        .ping()
        .await
        .map_err(totpd_vault::VaultError::from)?;
    Ok(axum::Json(StatusOnly::ok()))
}
