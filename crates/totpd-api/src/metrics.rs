//! Prometheus metrics, rendered by hand in the text exposition format.
//!
//! Label values are only route templates (`/api/v2/totp/code/{id}`),
//! methods and status codes: never a label, issuer, id, key or secret, so
//! nothing sensitive becomes a metric and cardinality stays bounded.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use subtle::ConstantTimeEq as _;
use totpd_vault::PoolStatus;
use zeroize::Zeroizing;

use crate::AppState;
use crate::error::ApiError;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Debug, Default)]
struct Series {
    count: AtomicU64,
    /// Sum of latencies in microseconds.
    sum_micros: AtomicU64,
    buckets: [AtomicU64; BUCKETS.len()],
}

/// One histogram of the rendering: (route, method), bucket counts, count, sum in microseconds.
type MergedSeries = ((String, String), [u64; BUCKETS.len()], u64, u64);

/// One (method, status) series of a route.
type RouteSeries = (&'static str, u16, Arc<Series>);

/// The process's counters. Cheap to update from many threads.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Keyed by (route template, method, status).
    /// By route template, then (method, status): looked up without allocating.
    requests: RwLock<HashMap<String, Vec<RouteSeries>>>,
    codes_issued: AtomicU64,
    auth_failures: AtomicU64,
    rate_limited_per_key: AtomicU64,
    rate_limited_auth_failures: AtomicU64,
    readiness_probes: AtomicU64,
}

/// Which abuse limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitKind {
    /// The key's requests-per-second budget.
    PerKey,
    /// A key id, or the client address, is locked out after failed authentications.
    AuthFailures,
}

impl Metrics {
    /// Records one answered request.
    pub(crate) fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        latency: Duration,
    ) {
        let series = self.series(route, known_method(method), status);
        series.count.fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        series.sum_micros.fetch_add(micros, Ordering::Relaxed);
        let seconds = latency.as_secs_f64();
        // Buckets are stored non-cumulatively and summed when rendered.
        if let Some(i) = BUCKETS.iter().position(|&le| seconds <= le)
            && let Some(bucket) = series.buckets.get(i)
        {
            bucket.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn series(&self, route: &str, method: &'static str, status: u16) -> Arc<Series> {
        let find = |list: &Vec<RouteSeries>| {
            list.iter()
                .find(|(m, s, _)| *m == method && *s == status)
                .map(|(_, _, series)| Arc::clone(series))
        };
        if let Ok(map) = self.requests.read()
            && let Some(series) = map.get(route).and_then(find)
        {
            return series;
        }
        match self.requests.write() {
            Ok(mut map) => {
                let list = map.entry(route.to_owned()).or_default();
                find(list).unwrap_or_else(|| {
                    let series = Arc::new(Series::default());
                    list.push((method, status, Arc::clone(&series)));
                    series
                })
            }
            Err(_) => Arc::new(Series::default()),
        }
    }

    /// Counts a code handed out.
    pub(crate) fn code_issued(&self) {
        self.codes_issued.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a rejected authentication.
    pub(crate) fn auth_failed(&self) {
        self.auth_failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a request refused with 429.
    pub(crate) fn rate_limited(&self, kind: LimitKind) {
        let counter = match kind {
            LimitKind::PerKey => &self.rate_limited_per_key,
            LimitKind::AuthFailures => &self.rate_limited_auth_failures,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a database round trip made to answer `/readyz`.
    pub(crate) fn readiness_probed(&self) {
        self.readiness_probes.fetch_add(1, Ordering::Relaxed);
    }

    /// The text exposition.
    pub(crate) fn render(&self, pool: PoolStatus) -> String {
        let mut out = String::with_capacity(4096);
        out.push_str("# HELP totpd_http_requests_total HTTP requests answered, by route template, method and status.\n");
        out.push_str("# TYPE totpd_http_requests_total counter\n");
        let mut rows: Vec<((String, String, u16), Arc<Series>)> = match self.requests.read() {
            Ok(map) => map
                .iter()
                .flat_map(|(route, list)| {
                    list.iter().map(move |(method, status, series)| {
                        (
                            (route.clone(), (*method).to_owned(), *status),
                            Arc::clone(series),
                        )
                    })
                })
                .collect(),
            Err(_) => Vec::new(),
        };
        rows.sort_by(|a, b| a.0.cmp(&b.0));
        for ((route, method, status), series) in &rows {
            let _ = writeln!(
                out,
                "totpd_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {}",
                escape(route),
                escape(method),
                series.count.load(Ordering::Relaxed)
            );
        }
        out.push_str("# HELP totpd_http_request_duration_seconds Time to answer a request, by route template and method.\n");
        out.push_str("# TYPE totpd_http_request_duration_seconds histogram\n");
        // One histogram per (route, method): merge the status series.
        let mut merged: Vec<MergedSeries> = Vec::new();
        for ((route, method, _), series) in &rows {
            let key = (route.clone(), method.clone());
            let index = match merged.iter().position(|m| m.0 == key) {
                Some(i) => i,
                None => {
                    merged.push((key, [0; BUCKETS.len()], 0, 0));
                    merged.len() - 1
                }
            };
            if let Some(entry) = merged.get_mut(index) {
                for (total, bucket) in entry.1.iter_mut().zip(series.buckets.iter()) {
                    *total += bucket.load(Ordering::Relaxed);
                }
                entry.2 += series.count.load(Ordering::Relaxed);
                entry.3 += series.sum_micros.load(Ordering::Relaxed);
            }
        }
        for ((route, method), buckets, count, sum_micros) in &merged {
            let labels = format!("route=\"{}\",method=\"{}\"", escape(route), escape(method));
            let mut cumulative = 0;
            for (le, n) in BUCKETS.iter().zip(buckets.iter()) {
                cumulative += n;
                let _ = writeln!(
                    out,
                    "totpd_http_request_duration_seconds_bucket{{{labels},le=\"{le}\"}} {cumulative}"
                );
            }
            let _ = writeln!(
                out,
                "totpd_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {count}"
            );
            // Precision loss only beyond 2^53 microseconds (285 years).
            #[allow(clippy::cast_precision_loss)]
            let sum = *sum_micros as f64 / 1e6;
            let _ = writeln!(
                out,
                "totpd_http_request_duration_seconds_sum{{{labels}}} {sum}"
            );
            let _ = writeln!(
                out,
                "totpd_http_request_duration_seconds_count{{{labels}}} {count}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP totpd_codes_issued_total TOTP codes handed out.\n# TYPE totpd_codes_issued_total counter\ntotpd_codes_issued_total {}",
            self.codes_issued.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP totpd_auth_failures_total Requests refused for missing, wrong or revoked credentials.\n# TYPE totpd_auth_failures_total counter\ntotpd_auth_failures_total {}",
            self.auth_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP totpd_rate_limited_total Requests answered 429, by the limit that refused them (per_key: the key's rate; auth_failures: a key id or the client address is locked out after failed authentications).\n# TYPE totpd_rate_limited_total counter\ntotpd_rate_limited_total{{limit=\"per_key\"}} {}\ntotpd_rate_limited_total{{limit=\"auth_failures\"}} {}",
            self.rate_limited_per_key.load(Ordering::Relaxed),
            self.rate_limited_auth_failures.load(Ordering::Relaxed)
        );
        let _ = writeln!(
            out,
            "# HELP totpd_readiness_probes_total Database round trips made to answer /readyz (one per second at most; answers in between are cached).\n# TYPE totpd_readiness_probes_total counter\ntotpd_readiness_probes_total {}",
            self.readiness_probes.load(Ordering::Relaxed)
        );
        let in_use = pool.size.saturating_sub(pool.idle);
        let _ = writeln!(
            out,
            "# HELP totpd_db_pool_connections Database connections, by state.\n# TYPE totpd_db_pool_connections gauge\ntotpd_db_pool_connections{{state=\"idle\"}} {}\ntotpd_db_pool_connections{{state=\"in_use\"}} {in_use}",
            pool.idle
        );
        let _ = writeln!(
            out,
            "# HELP totpd_db_pool_max_connections Configured size limit of the database pool.\n# TYPE totpd_db_pool_max_connections gauge\ntotpd_db_pool_max_connections {}",
            pool.max
        );
        out
    }
}

/// The method as a label value: the standard methods as they are, anything
/// a client made up as `other`, so clients cannot mint label values.
fn known_method(method: &str) -> &'static str {
    match method {
        "GET" => "GET",
        "HEAD" => "HEAD",
        "POST" => "POST",
        "PUT" => "PUT",
        "DELETE" => "DELETE",
        "PATCH" => "PATCH",
        "OPTIONS" => "OPTIONS",
        "TRACE" => "TRACE",
        "CONNECT" => "CONNECT",
        _ => "other",
    }
}

fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

pub(crate) fn router() -> Router<AppState> {
    Router::new().route("/metrics", get(get_metrics))
}

/// An app that serves only `GET /metrics` (anything else is 404 with the
/// JSON error body): for a listener of its own (`--metrics-listen`). The
/// server puts a [`MetricsAccess`] in each request's extensions, as for
/// [`crate::router`].
pub fn metrics_app(state: AppState) -> Router {
    router()
        .fallback(crate::error::not_found_fallback)
        .method_not_allowed_fallback(crate::error::method_not_allowed_fallback)
        .with_state(state)
}

/// The bearer token `/metrics` requires: 16 to 256 visible ASCII
/// characters. Wiped from memory when dropped; `Debug` never shows it.
#[derive(Clone)]
pub struct MetricsToken(Zeroizing<String>);

/// Why a metrics token was refused (never repeats the token).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum MetricsTokenError {
    /// Shorter than 16 or longer than 256 characters.
    #[error("the metrics token must be 16 to 256 characters long, got {0}")]
    Length(usize),
    /// A space, control or non-ASCII character.
    #[error("the metrics token may hold only visible ASCII characters (no spaces)")]
    Character,
}

impl MetricsToken {
    /// Shortest accepted token.
    pub const MIN_LEN: usize = 16;
    /// Longest accepted token.
    pub const MAX_LEN: usize = 256;

    /// Checks and wraps `token`.
    pub fn new(token: &str) -> Result<MetricsToken, MetricsTokenError> {
        let len = token.len();
        if !(Self::MIN_LEN..=Self::MAX_LEN).contains(&len) {
            return Err(MetricsTokenError::Length(token.chars().count()));
        }
        if !token.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(MetricsTokenError::Character);
        }
        Ok(MetricsToken(Zeroizing::new(token.to_owned())))
    }

    /// Whether `headers` carry `Authorization: Bearer <this token>`
    /// (compared in constant time).
    fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(presented) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                let (scheme, rest) = v.split_once(' ')?;
                scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
            })
        else {
            return false;
        };
        bool::from(presented.as_bytes().ct_eq(self.0.as_bytes()))
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MetricsToken([redacted])")
    }
}

/// How one listener serves `/metrics`, put by the server in each request's
/// extensions. Without one, `/metrics` is served to anyone.
#[derive(Clone, Debug)]
pub struct MetricsAccess {
    /// Whether this listener serves `/metrics` at all (404 when not: the
    /// metrics have a listener of their own).
    pub served: bool,
    /// The bearer token required, if any (401 without it).
    pub token: Option<MetricsToken>,
}

/// Prometheus scrape endpoint. Unauthenticated unless a token is set, like
/// the health checks: it carries counts only.
async fn get_metrics(
    State(state): State<AppState>,
    access: Option<Extension<MetricsAccess>>,
    headers: HeaderMap,
) -> Response {
    if let Some(Extension(access)) = access {
        if !access.served {
            return ApiError::NotFound("no such route").into_response();
        }
        if let Some(token) = &access.token
            && !token.admits(&headers)
        {
            return ApiError::Unauthorized.into_response();
        }
    }
    let body = state.metrics.render(state.vault.store().pool_status());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        body,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let m = Metrics::default();
        m.observe_request("/a", "GET", 200, Duration::from_micros(300));
        m.observe_request("/a", "GET", 200, Duration::from_millis(3));
        m.observe_request("/a", "GET", 404, Duration::from_secs(20));
        let text = m.render(PoolStatus::default());
        assert!(
            text.contains(
                "totpd_http_requests_total{route=\"/a\",method=\"GET\",status=\"200\"} 2"
            )
        );
        assert!(text.contains("totpd_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"0.0005\"} 1"));
        assert!(text.contains(
            "totpd_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"0.005\"} 2"
        ));
        assert!(text.contains(
            "totpd_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"10\"} 2"
        ));
        assert!(text.contains(
            "totpd_http_request_duration_seconds_bucket{route=\"/a\",method=\"GET\",le=\"+Inf\"} 3"
        ));
        assert!(
            text.contains(
                "totpd_http_request_duration_seconds_count{route=\"/a\",method=\"GET\"} 3"
            )
        );
    }

    #[test]
    fn rate_limited_requests_are_counted_by_limit() {
        let m = Metrics::default();
        m.rate_limited(LimitKind::PerKey);
        m.rate_limited(LimitKind::PerKey);
        m.rate_limited(LimitKind::AuthFailures);
        let text = m.render(PoolStatus::default());
        assert!(text.contains("# TYPE totpd_rate_limited_total counter"));
        assert!(text.contains("totpd_rate_limited_total{limit=\"per_key\"} 2\n"));
        assert!(text.contains("totpd_rate_limited_total{limit=\"auth_failures\"} 1\n"));
    }

    #[test]
    fn made_up_methods_share_one_label_value() {
        let m = Metrics::default();
        for method in ["FOO", "BAR", "get", "GET"] {
            m.observe_request("unmatched", method, 405, Duration::from_millis(1));
        }
        let text = m.render(PoolStatus::default());
        assert!(text.contains("method=\"other\",status=\"405\"} 3"));
        assert!(text.contains("method=\"GET\",status=\"405\"} 1"));
        assert!(!text.contains("FOO") && !text.contains("BAR"));
    }

    #[test]
    fn a_metrics_token_is_checked_and_never_shown() {
        assert!(MetricsToken::new("short").is_err());
        assert!(MetricsToken::new(&"a".repeat(257)).is_err());
        assert!(MetricsToken::new("sixteen chars ok").is_err(), "a space");
        let token = MetricsToken::new("0123456789abcdef").unwrap();
        assert!(!format!("{token:?}").contains("0123"));
        let mut headers = HeaderMap::new();
        assert!(!token.admits(&headers));
        headers.insert(
            header::AUTHORIZATION,
            "Bearer 0123456789abcdeF".parse().unwrap(),
        );
        assert!(!token.admits(&headers));
        headers.insert(
            header::AUTHORIZATION,
            "bearer 0123456789abcdef".parse().unwrap(),
        );
        assert!(token.admits(&headers));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
