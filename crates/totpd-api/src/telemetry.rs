//! Per-request telemetry and the request deadline: every request gets an id
//! (the client's `x-request-id` if it sent a sane one), one summary line with
//! its id, method and route, and a timeout. A warning or error logged inside
//! a request names its id; at debug level and below every line inside it
//! also carries a request span with those fields.
//!
//! The timeout and the database agree (see `totpd_vault::deadline`): when it
//! fires before any write of the request has begun to commit, the request is
//! dropped, answered 503, and none of its writes is committed afterwards;
//! when a write is already committing, the request runs to its end (a
//! commit takes milliseconds) and the client gets its real answer, late.
//!
//! Logged fields are method, route template, status and latency: never
//! headers, bodies or query strings, which may carry credentials or secrets.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::extract::{MatchedPath, Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use totpd_vault::deadline::{self, Deadline};
use tracing::Instrument;
use uuid::Uuid;

use crate::AppState;
use crate::error::ApiError;

const REQUEST_ID: &str = "x-request-id";

/// A fresh request id: 64 random bits drawn once per process, then a
/// counter. Unique within a process and across processes (with overwhelming
/// probability), and free of a system call per request.
fn next_request_id() -> String {
    static PREFIX: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let prefix = PREFIX.get_or_init(|| Uuid::new_v4().as_u64_pair().0);
    let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{prefix:016x}{n:016x}")
}

tokio::task_local! {
    /// The id of the request whose handler is running, for log lines.
    static CURRENT: Arc<str>;
}

/// The id of the request being handled on this task, for a warning or an
/// error logged inside it (at the default level there is no request span
/// to carry it); `-` outside a request.
pub(crate) struct CurrentRequestId;

impl std::fmt::Display for CurrentRequestId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        CURRENT
            .try_with(|id| f.write_str(id))
            .unwrap_or_else(|_| f.write_str("-"))
    }
}

/// The id of the request being handled (a request extension), as answered
/// in `x-request-id` and recorded in the audit log.
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub Arc<str>);

/// Time a handler may take beyond the request timeout for a wait the
/// client asked for (`min_remaining` on a code), as opposed to work: the
/// timeout guards against a stuck database, not against a requested wait.
/// Set by the handler before it waits; the timeout then runs out that much
/// later (once).
#[derive(Debug, Default)]
pub(crate) struct WaitAllowance(AtomicU64);

impl WaitAllowance {
    /// Allows `wait` more (the longest allowance set wins).
    pub(crate) fn allow(&self, wait: Duration) {
        let millis = u64::try_from(wait.as_millis()).unwrap_or(u64::MAX);
        self.0.fetch_max(millis, Ordering::AcqRel);
    }

    fn take(&self) -> Duration {
        Duration::from_millis(self.0.swap(0, Ordering::AcqRel))
    }
}

/// The telemetry and timeout middleware, for `middleware::from_fn_with_state`.
pub(crate) async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64 && v.bytes().all(|b| b.is_ascii_graphic()))
        .map_or_else(next_request_id, str::to_owned);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| p.as_str())
        .to_owned();
    let method = request.method().clone();
    // Made only at debug level and below: a span per request, entered on
    // every poll, cost the code endpoint 3-11% of its throughput in
    // interleaved runs (BENCHMARKS.md). At the default level the summary
    // line carries the same fields, and a warning or error inside the
    // request names the request id itself (`CurrentRequestId`).
    let span = tracing::debug_span!("request", id = %request_id, method = %method, route = %route);
    let started = totpd_vault::clock::monotonic_now();
    let fate = Arc::new(Deadline::new());
    let allowance = Arc::new(WaitAllowance::default());
    let mut request = request;
    let id: Arc<str> = Arc::from(request_id.as_str());
    request.extensions_mut().insert(RequestId(Arc::clone(&id)));
    request.extensions_mut().insert(Arc::clone(&allowance));
    let handled = CURRENT
        .scope(id, deadline::scope(Arc::clone(&fate), next.run(request)))
        .instrument(span.clone());
    tokio::pin!(handled);
    let mut timeout = state.limits.request_timeout;
    let mut response = loop {
        tokio::select! {
            response = &mut handled => break response,
            () = tokio::time::sleep(timeout) => {
                let extra = allowance.take();
                if !extra.is_zero() {
                    timeout = extra;
                    continue;
                }
                if fate.expire() {
                    break ApiError::Unavailable("the request took too long and was abandoned; nothing was stored")
                        .into_response();
                }
                span.in_scope(|| {
                    tracing::debug!("past the request timeout with a write committing; waiting for it");
                });
                break handled.await;
            }
        }
    };
    let latency = totpd_vault::clock::monotonic_now().saturating_duration_since(started);
    let status = response.status().as_u16();
    state
        .metrics
        .observe_request(&route, method.as_str(), status, latency);
    let latency_us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
    if span.is_disabled() {
        tracing::info!(id = %request_id, method = %method, route = %route, status, latency_us, "request finished");
    } else {
        span.in_scope(|| tracing::info!(status, latency_us, "request finished"));
    }
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
