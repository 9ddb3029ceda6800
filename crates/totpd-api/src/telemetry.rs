//! Per-request telemetry and the request deadline: every request gets an id
//! (the client's `x-request-id` if it sent a sane one), a span that every log
//! line inside it carries, one summary line, and a timeout.
//!
//! Logged fields are method, route template, status and latency: never
//! headers, bodies or query strings, which may carry credentials or secrets.

use std::time::{Duration, Instant};

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ApiError;

const REQUEST_ID: &str = "x-request-id";

/// The telemetry and timeout middleware.
pub(crate) fn layer(
    timeout: Duration,
) -> axum::middleware::FromFnLayer<
    fn(
        State<Duration>,
        Request,
        Next,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Response> + Send>>,
    Duration,
    (State<Duration>, Request),
> {
    middleware::from_fn_with_state(timeout, |state, req, next| {
        Box::pin(track(state, req, next))
    })
}

async fn track(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(|| Uuid::new_v4().simple().to_string(), str::to_owned);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    let span = tracing::info_span!("request", id = %request_id, method = %method, route = %route);
    let started = Instant::now();
    let mut response = match tokio::time::timeout(timeout, next.run(request))
        .instrument(span.clone())
        .await
    {
        Ok(response) => response,
        Err(_) => {
            ApiError::Unavailable("the request took too long and was abandoned").into_response()
        }
    };
    span.in_scope(|| {
        tracing::info!(
            status = response.status().as_u16(),
            latency_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX),
            "request finished"
        );
    });
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
