//! The benchmarks' reference point, compiled only with the `bench-bare`
//! feature: the same router, middleware and runtime answering a fixed JSON
//! body of a code response's size, with no authentication, database or
//! cryptography. The code endpoint's cost is measured as a ratio to this.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

use crate::AppState;

/// Same length and shape as a typical `GET /api/v2/totp/code/{id}` answer.
const BARE_BODY: &str = r#"{"status":"OK","code":"000000","expires_in":14,"expires_at":"2026-01-01T00:00:30Z","period":30,"digits":6}"#;

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/bench/bare", get(get_bare))
}

async fn get_bare() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], BARE_BODY)
}
