//! Prometheus metrics (the `prometheus` crate, text exposition format 0.0.4).
//!
//! Label values are only route templates (`/api/v2/totp/code/{id}`),
//! methods and status codes: never a label, issuer, id, key or secret, so
//! nothing sensitive becomes a metric and cardinality stays bounded.

use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Extension, Router};
use prometheus::{
    Encoder as _, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec,
    Opts, Registry, TextEncoder,
};
use subtle::ConstantTimeEq as _;
use totpd_vault::PoolStatus;
use zeroize::Zeroizing;

use crate::AppState;
use crate::error::ApiError;

/// Upper bounds of the latency histogram buckets, in seconds.
const BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The process's metrics, in a registry of their own (several servers in
/// one process, as in tests, do not share counts). Cheap to update from
/// many threads.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// By route template, method and status.
    requests: IntCounterVec,
    /// By route template and method.
    latency: HistogramVec,
    codes_issued: IntCounter,
    auth_failures: IntCounter,
    /// By limit (`per_key`, `auth_failures`).
    rate_limited: IntCounterVec,
    readiness_probes: IntCounter,
    /// By state (`idle`, `in_use`), set when scraped.
    pool_connections: IntGaugeVec,
    pool_max: IntGauge,
}

/// Which abuse limit refused a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LimitKind {
    /// The key's requests-per-second budget.
    PerKey,
    /// A key id, or the client address, is locked out after failed authentications.
    AuthFailures,
}

impl LimitKind {
    fn label(self) -> &'static str {
        match self {
            LimitKind::PerKey => "per_key",
            LimitKind::AuthFailures => "auth_failures",
        }
    }
}

impl Default for Metrics {
    fn default() -> Metrics {
        Metrics::new()
    }
}

impl Metrics {
    /// Every metric, registered and at zero.
    ///
    /// # Panics
    ///
    /// Never: the names, labels and buckets are constants that the tests
    /// of this module register.
    #[allow(clippy::expect_used)]
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "totpd_http_requests_total",
                "HTTP requests answered, by route template, method and status.",
            ),
            &["route", "method", "status"],
        )
        .expect("a valid counter");
        let latency = HistogramVec::new(
            HistogramOpts::new(
                "totpd_http_request_duration_seconds",
                "Time to answer a request, by route template and method.",
            )
            .buckets(BUCKETS.to_vec()),
            &["route", "method"],
        )
        .expect("a valid histogram");
        let codes_issued = IntCounter::new("totpd_codes_issued_total", "TOTP codes handed out.")
            .expect("a valid counter");
        let auth_failures = IntCounter::new(
            "totpd_auth_failures_total",
            "Requests refused for missing, wrong or revoked credentials.",
        )
        .expect("a valid counter");
        let rate_limited = IntCounterVec::new(
            Opts::new(
                "totpd_rate_limited_total",
                "Requests answered 429, by the limit that refused them (per_key: the key's \
                 rate; auth_failures: a key id or the client address is locked out after \
                 failed authentications).",
            ),
            &["limit"],
        )
        .expect("a valid counter");
        // Both limits are shown from the start, at zero.
        for kind in [LimitKind::PerKey, LimitKind::AuthFailures] {
            rate_limited.with_label_values(&[kind.label()]);
        }
        let readiness_probes = IntCounter::new(
            "totpd_readiness_probes_total",
            "Database round trips made to answer /readyz (one per second at most; answers \
             in between are cached).",
        )
        .expect("a valid counter");
        let pool_connections = IntGaugeVec::new(
            Opts::new(
                "totpd_db_pool_connections",
                "Database connections, by state.",
            ),
            &["state"],
        )
        .expect("a valid gauge");
        let pool_max = IntGauge::new(
            "totpd_db_pool_max_connections",
            "Configured size limit of the database pool.",
        )
        .expect("a valid gauge");
        let collectors: [Box<dyn prometheus::core::Collector>; 8] = [
            Box::new(requests.clone()),
            Box::new(latency.clone()),
            Box::new(codes_issued.clone()),
            Box::new(auth_failures.clone()),
            Box::new(rate_limited.clone()),
            Box::new(readiness_probes.clone()),
            Box::new(pool_connections.clone()),
            Box::new(pool_max.clone()),
        ];
        for collector in collectors {
            registry.register(collector).expect("distinct metric names");
        }
        Metrics {
            registry,
            requests,
            latency,
            codes_issued,
            auth_failures,
            rate_limited,
            readiness_probes,
            pool_connections,
            pool_max,
        }
    }

    /// Records one answered request.
    pub(crate) fn observe_request(
        &self,
        route: &str,
        method: &str,
        status: u16,
        latency: Duration,
    ) {
        let method = known_method(method);
        let mut digits = [0u8; 5];
        self.requests
            .with_label_values(&[route, method, status_text(status, &mut digits)])
            .inc();
        self.latency
            .with_label_values(&[route, method])
            .observe(latency.as_secs_f64());
    }

    /// Counts a code handed out.
    pub(crate) fn code_issued(&self) {
        self.codes_issued.inc();
    }

    /// Counts a rejected authentication.
    pub(crate) fn auth_failed(&self) {
        self.auth_failures.inc();
    }

    /// Counts a request refused with 429.
    pub(crate) fn rate_limited(&self, kind: LimitKind) {
        self.rate_limited.with_label_values(&[kind.label()]).inc();
    }

    /// Counts a database round trip made to answer `/readyz`.
    pub(crate) fn readiness_probed(&self) {
        self.readiness_probes.inc();
    }

    /// The text exposition (format 0.0.4), with the pool's occupancy now.
    pub(crate) fn render(&self, pool: PoolStatus) -> String {
        let in_use = pool.size.saturating_sub(pool.idle);
        self.pool_connections
            .with_label_values(&["idle"])
            .set(i64::from(pool.idle));
        self.pool_connections
            .with_label_values(&["in_use"])
            .set(i64::from(in_use));
        self.pool_max.set(i64::from(pool.max));
        let mut out = Vec::with_capacity(4096);
        // Encoding our own registry into memory fails only on a bug (an
        // invalid family); the scrape then shows what was encoded.
        if let Err(error) = TextEncoder::new().encode(&self.registry.gather(), &mut out) {
            tracing::error!(%error, "the metrics could not be encoded");
        }
        String::from_utf8(out).unwrap_or_default()
    }
}

/// `status` as decimal text in `buf`, without allocating.
fn status_text(status: u16, buf: &mut [u8; 5]) -> &str {
    let mut n = status;
    let mut start = buf.len();
    loop {
        start -= 1;
        if let Some(digit) = buf.get_mut(start) {
            // n % 10 < 10: the cast cannot truncate.
            #[allow(clippy::cast_possible_truncation)]
            {
                *digit = b'0' + (n % 10) as u8;
            }
        }
        n /= 10;
        if n == 0 || start == 0 {
            break;
        }
    }
    std::str::from_utf8(buf.get(start..).unwrap_or_default()).unwrap_or_default()
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
    let body = state.metrics.render(state.vault.pool_status());
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

    /// The sample line of `name` whose labels are exactly `labels` (in the
    /// encoder's order, sorted by label name), and its value.
    fn sample(text: &str, name: &str, labels: &str) -> Option<String> {
        let prefix = if labels.is_empty() {
            format!("{name} ")
        } else {
            format!("{name}{{{labels}}} ")
        };
        text.lines()
            .find_map(|line| line.strip_prefix(prefix.as_str()))
            .map(str::to_owned)
    }

    #[test]
    fn histogram_buckets_are_cumulative_and_count_matches() {
        let m = Metrics::new();
        m.observe_request("/a", "GET", 200, Duration::from_micros(300));
        m.observe_request("/a", "GET", 200, Duration::from_millis(3));
        m.observe_request("/a", "GET", 404, Duration::from_secs(20));
        let text = m.render(PoolStatus::default());
        let requests = |status: &str| {
            sample(
                &text,
                "totpd_http_requests_total",
                &format!("method=\"GET\",route=\"/a\",status=\"{status}\""),
            )
        };
        assert_eq!(requests("200").as_deref(), Some("2"));
        assert_eq!(requests("404").as_deref(), Some("1"));
        let bucket = |le: &str| {
            sample(
                &text,
                "totpd_http_request_duration_seconds_bucket",
                &format!("method=\"GET\",route=\"/a\",le=\"{le}\""),
            )
        };
        assert_eq!(bucket("0.0005").as_deref(), Some("1"));
        assert_eq!(bucket("0.005").as_deref(), Some("2"));
        assert_eq!(bucket("10").as_deref(), Some("2"));
        assert_eq!(bucket("+Inf").as_deref(), Some("3"));
        assert_eq!(
            sample(
                &text,
                "totpd_http_request_duration_seconds_count",
                "method=\"GET\",route=\"/a\""
            )
            .as_deref(),
            Some("3")
        );
    }

    #[test]
    fn rate_limited_requests_are_counted_by_limit() {
        let m = Metrics::new();
        let text = m.render(PoolStatus::default());
        assert_eq!(
            sample(&text, "totpd_rate_limited_total", "limit=\"per_key\"").as_deref(),
            Some("0"),
            "both limits are shown before any request: {text}"
        );
        m.rate_limited(LimitKind::PerKey);
        m.rate_limited(LimitKind::PerKey);
        m.rate_limited(LimitKind::AuthFailures);
        let text = m.render(PoolStatus::default());
        assert!(text.contains("# TYPE totpd_rate_limited_total counter"));
        assert_eq!(
            sample(&text, "totpd_rate_limited_total", "limit=\"per_key\"").as_deref(),
            Some("2")
        );
        assert_eq!(
            sample(&text, "totpd_rate_limited_total", "limit=\"auth_failures\"").as_deref(),
            Some("1")
        );
    }

    #[test]
    fn every_family_is_shown_with_its_type_and_the_pool_as_scraped() {
        let m = Metrics::new();
        m.code_issued();
        m.auth_failed();
        m.readiness_probed();
        let text = m.render(PoolStatus {
            size: 5,
            idle: 2,
            max: 8,
        });
        for (family, kind) in [
            ("totpd_codes_issued_total", "counter"),
            ("totpd_auth_failures_total", "counter"),
            ("totpd_readiness_probes_total", "counter"),
            ("totpd_db_pool_connections", "gauge"),
            ("totpd_db_pool_max_connections", "gauge"),
        ] {
            assert!(
                text.contains(&format!("# TYPE {family} {kind}\n")),
                "{family}: {text}"
            );
        }
        assert_eq!(
            sample(&text, "totpd_codes_issued_total", "").as_deref(),
            Some("1")
        );
        assert_eq!(
            sample(&text, "totpd_db_pool_connections", "state=\"in_use\"").as_deref(),
            Some("3")
        );
        assert_eq!(
            sample(&text, "totpd_db_pool_max_connections", "").as_deref(),
            Some("8")
        );
    }

    #[test]
    fn statuses_are_written_as_decimal_text() {
        let mut buf = [0u8; 5];
        assert_eq!(status_text(200, &mut buf), "200");
        assert_eq!(status_text(0, &mut buf), "0");
        assert_eq!(status_text(65535, &mut buf), "65535");
        assert_eq!(status_text(7, &mut buf), "7");
    }

    #[test]
    fn made_up_methods_share_one_label_value() {
        let m = Metrics::new();
        for method in ["FOO", "BAR", "get", "GET"] {
            m.observe_request("unmatched", method, 405, Duration::from_millis(1));
        }
        let text = m.render(PoolStatus::default());
        assert!(text.contains("method=\"other\",route=\"unmatched\",status=\"405\"} 3"));
        assert!(text.contains("method=\"GET\",route=\"unmatched\",status=\"405\"} 1"));
        assert!(!text.contains("FOO") && !text.contains("BAR"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.observe_request("a\"b\\c\nd", "GET", 200, Duration::from_millis(1));
        let text = m.render(PoolStatus::default());
        assert!(text.contains("route=\"a\\\"b\\\\c\\nd\""), "{text}");
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
}
