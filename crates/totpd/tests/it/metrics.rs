//! `/metrics` scraped and read as Prometheus text: requests, codes and
//! failures counted, nothing sensitive in a label.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::json;
use uuid::Uuid;

use crate::harness::{
    ApiKey, Backend, Body, Known, SECRETS, TestServer, assert_code, code_path, on_both_backends,
    random_bytes,
};
use crate::otp::{Alg, base32_encode};

on_both_backends! {
    metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels
        => metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels_on_sqlite,
           metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels_on_postgres;
}

const CODE_ROUTE: &str = "/api/v2/totp/code/{id}";

async fn metrics_are_prometheus_text_counting_requests_codes_and_failures_without_sensitive_labels(
    backend: Backend,
) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    // Everything the test sends that must never become a metric, by kind
    // (failures name the kind, never the value).
    let mut sensitive: Vec<(&str, String)> = vec![
        ("key id", server.key.key_id.clone()),
        ("key secret", server.key.secret.clone()),
    ];
    let canary = Uuid::new_v4().simple().to_string();
    let mut secrets = Vec::new();
    for (i, alg) in Alg::ALL.into_iter().enumerate() {
        let key = random_bytes(20);
        let label = format!("metrics canary {i} {canary}");
        let issuer = format!("Issuer{i}{canary}");
        let created = api
            .create_ok(json!({
                "label": label,
                "issuer": issuer,
                "secret": base32_encode(&key),
                "algorithm": alg.wire_name(),
            }))
            .await;
        let id = created["id"].as_str().unwrap().to_owned();
        sensitive.extend([
            ("secret id", id.clone()),
            ("label", label),
            ("issuer", issuer),
            ("secret", base32_encode(&key)),
            (
                "secret as answered",
                created["secret"].as_str().unwrap_or_default().to_owned(),
            ),
        ]);
        secrets.push((
            id,
            Known {
                key,
                alg,
                digits: 6,
                period: 30,
            },
        ));
    }
    let mut codes = 0u64;
    for round in 0..2 {
        for (id, known) in &secrets[..=round] {
            assert_code(&api, id, known).await;
            codes += 1;
        }
    }
    // A wrong secret for a real key id, and a key that does not exist: 401.
    let wrong = ApiKey {
        key_id: server.key.key_id.clone(),
        secret: format!("wrong{canary}"),
    };
    let stranger = ApiKey {
        key_id: format!("tk_{canary}"),
        secret: format!("stranger{canary}"),
    };
    sensitive.extend([
        ("wrong key secret", wrong.secret.clone()),
        ("unknown key id", stranger.key_id.clone()),
        ("unknown key secret", stranger.secret.clone()),
    ]);
    let mut unauthorized = 0u64;
    for key in [&wrong, &stranger] {
        server
            .api_as(key)
            .code(&secrets[0].0)
            .await
            .expect_error(401, "unauthorized");
        unauthorized += 1;
    }
    // Not found: on the code route, on the delete route, and a path no route matches.
    let nobody = Uuid::new_v4().to_string();
    sensitive.push(("unknown secret id", nobody.clone()));
    api.code(&nobody).await.expect_error(404, "not_found");
    let not_found = 1u64;
    api.delete(&nobody).await.expect_error(404, "not_found");
    let unmatched = format!("{}/{}", code_path(&secrets[1].0), canary);
    assert_eq!(api.get(&unmatched).await.status, 404, "GET {unmatched}");
    api.list_ok().await;

    let reply = server.get_public("/metrics").await;
    assert_eq!(reply.status, 200, "/metrics: {}", reply.text);
    let content_type = reply
        .headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "/metrics Content-Type: {content_type:?}"
    );
    let metrics = exposition::parse(&reply.text)
        .unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}\n{}", reply.text));
    exposition::check_histograms(&metrics)
        .unwrap_or_else(|e| panic!("/metrics: {e}\n{}", reply.text));

    let requests = |status: &str| {
        metrics.value(
            "totpd_http_requests_total",
            &[("route", CODE_ROUTE), ("method", "GET"), ("status", status)],
        )
    };
    // The server is this test's alone: the counts are exactly what it did.
    assert_eq!(requests("200"), Some(codes as f64), "codes answered 200");
    assert_eq!(
        requests("401"),
        Some(unauthorized as f64),
        "codes answered 401"
    );
    assert_eq!(
        requests("404"),
        Some(not_found as f64),
        "codes answered 404"
    );
    assert_eq!(
        metrics.value(
            "totpd_http_requests_total",
            &[("route", SECRETS), ("method", "POST"), ("status", "200")],
        ),
        Some(secrets.len() as f64),
        "creates answered 200"
    );
    assert_eq!(
        metrics.value("totpd_codes_issued_total", &[]),
        Some(codes as f64)
    );
    assert_eq!(
        metrics.value("totpd_auth_failures_total", &[]),
        Some(unauthorized as f64)
    );
    for family in [
        "totpd_http_requests_total",
        "totpd_codes_issued_total",
        "totpd_auth_failures_total",
    ] {
        assert_eq!(metrics.kind(family), Some("counter"), "TYPE of {family}");
    }

    // The latency histogram of the code route: cumulative, ending in +Inf = _count.
    assert_eq!(
        metrics.kind("totpd_http_request_duration_seconds"),
        Some("histogram")
    );
    let route = [("route", CODE_ROUTE), ("method", "GET")];
    let buckets = metrics.buckets("totpd_http_request_duration_seconds", &route);
    assert!(
        buckets.len() >= 2,
        "the code route has no latency buckets: {buckets:?}"
    );
    assert!(
        buckets
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1),
        "buckets are not cumulative: {buckets:?}"
    );
    let (last_le, last_count) = buckets[buckets.len() - 1];
    assert!(last_le.is_infinite(), "the last bucket is not +Inf");
    let count = metrics
        .value("totpd_http_request_duration_seconds_count", &route)
        .expect("_count of the code route");
    assert_eq!(last_count, count, "+Inf bucket and _count");
    assert_eq!(
        count,
        (codes + unauthorized + not_found) as f64,
        "_count of the code route"
    );
    let sum = metrics
        .value("totpd_http_request_duration_seconds_sum", &route)
        .expect("_sum of the code route");
    assert!(sum > 0.0 && sum.is_finite(), "_sum {sum}");

    // The database pool.
    for state in ["idle", "in_use"] {
        let n = metrics.value("totpd_db_pool_connections", &[("state", state)]);
        assert!(
            matches!(n, Some(v) if v >= 0.0),
            "totpd_db_pool_connections{{state={state:?}}}: {n:?}"
        );
    }
    assert_eq!(metrics.kind("totpd_db_pool_connections"), Some("gauge"));
    let max = metrics.value("totpd_db_pool_max_connections", &[]);
    assert!(
        matches!(max, Some(v) if v >= 1.0),
        "totpd_db_pool_max_connections: {max:?}"
    );

    // Labels are route templates, methods, statuses and fixed enumerations.
    for (kind, secret) in &sensitive {
        assert!(!secret.is_empty(), "no {kind} to look for");
    }
    let templates = [
        SECRETS,
        CODE_ROUTE,
        "/api/v2/totp/secrets/{id}",
        "/metrics",
        "unmatched",
    ];
    for sample in &metrics.samples {
        for (name, value) in &sample.labels {
            for (kind, secret) in &sensitive {
                assert!(
                    !value.contains(secret.as_str()),
                    "label {name} of {} carries a {kind} the test sent",
                    sample.name
                );
            }
            let fine = match name.as_str() {
                "route" => templates.contains(&value.as_str()),
                "method" => ["GET", "POST", "DELETE"].contains(&value.as_str()),
                "status" => value.len() == 3 && value.bytes().all(|b| b.is_ascii_digit()),
                "le" => exposition::number(value).is_some(),
                _ => {
                    !value.is_empty() && value.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                }
            };
            assert!(
                fine,
                "{}: label {name}={value:?} is not a route template, method, status or enumeration",
                sample.name
            );
        }
    }
    for (kind, secret) in &sensitive {
        assert!(
            !reply.text.contains(secret.as_str()),
            "/metrics carries a {kind} the test sent"
        );
    }
    // Counters never go backwards: the next scrape is no lower.
    let again = exposition::parse(&server.get_public("/metrics").await.text).unwrap();
    assert!(
        again.value("totpd_codes_issued_total", &[]) >= Some(codes as f64)
            && again.value(
                "totpd_http_requests_total",
                &[("route", "/metrics"), ("method", "GET"), ("status", "200")]
            ) == Some(1.0),
        "the second scrape does not count the first"
    );
}

/// A client chooses the request method: a made-up one must not become a
/// label value, or anyone without a key can grow the metrics (and the
/// server's memory) without bound, one series per method.
#[tokio::test]
async fn made_up_http_methods_do_not_become_metric_labels() {
    let server = TestServer::start(Backend::Sqlite).await;
    let api = server.api();
    let made_up: Vec<String> = (0..20)
        .map(|_| format!("X{}", Uuid::new_v4().simple()).to_uppercase())
        .collect();
    for (i, method) in made_up.iter().enumerate() {
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let path = if i % 2 == 0 { SECRETS } else { "/nowhere" };
        let reply = api.request(method, path, Body::None).await;
        assert!(
            (400..500).contains(&reply.status),
            "a made-up method got HTTP {}",
            reply.status
        );
    }
    let text = server.get_public("/metrics").await.text;
    let metrics =
        exposition::parse(&text).unwrap_or_else(|e| panic!("/metrics is not Prometheus text: {e}"));
    let leaked: BTreeSet<&str> = metrics
        .samples
        .iter()
        .flat_map(|s| s.labels.values())
        .filter(|v| made_up.iter().any(|m| v.contains(m.as_str())))
        .map(String::as_str)
        .collect();
    assert!(
        leaked.is_empty(),
        "{} made-up methods became label values (one new series each), e.g. {:?}",
        leaked.len(),
        leaked.iter().next()
    );
}

/// A strict reader of the Prometheus text exposition format, version 0.0.4
/// (prometheus.io/docs/instrumenting/exposition_formats): every line is a
/// sample, a HELP or TYPE line, another comment or empty, and anything else
/// is an error. Written here rather than taken from the `prometheus-parse`
/// crate, which skips lines it cannot match and cuts label values at the
/// first `}`, so the `{id}` in a route template would lose the whole line.
mod exposition {
    use std::collections::{BTreeMap, BTreeSet};

    pub type Labels = BTreeMap<String, String>;

    #[derive(Clone, Debug, PartialEq)]
    pub struct Sample {
        pub name: String,
        pub labels: Labels,
        pub value: f64,
    }

    #[derive(Debug, Default)]
    pub struct Family {
        pub help: Option<String>,
        pub kind: Option<String>,
    }

    #[derive(Debug, Default)]
    pub struct Exposition {
        pub families: BTreeMap<String, Family>,
        pub samples: Vec<Sample>,
    }

    const KINDS: [&str; 5] = ["counter", "gauge", "histogram", "summary", "untyped"];

    impl Exposition {
        /// The value of the one sample `name` whose labels are exactly `labels`.
        pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
            let wanted: BTreeMap<String, String> = labels
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect();
            self.samples
                .iter()
                .find(|s| s.name == name && s.labels == wanted)
                .map(|s| s.value)
        }

        pub fn kind(&self, family: &str) -> Option<&str> {
            self.families.get(family)?.kind.as_deref()
        }

        /// `(le, count)` of histogram `family` for `labels` (without `le`), by `le`.
        pub fn buckets(&self, family: &str, labels: &[(&str, &str)]) -> Vec<(f64, f64)> {
            let name = format!("{family}_bucket");
            let mut out: Vec<(f64, f64)> = self
                .samples
                .iter()
                .filter(|s| s.name == name)
                .filter(|s| {
                    s.labels.len() == labels.len() + 1
                        && labels
                            .iter()
                            .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
                })
                .filter_map(|s| Some((number(s.labels.get("le")?)?, s.value)))
                .collect();
            out.sort_by(|a, b| a.0.total_cmp(&b.0));
            out
        }
    }

    /// A sample value or `le` bound: a Go float, `+Inf`, `-Inf` or `NaN`.
    pub fn number(text: &str) -> Option<f64> {
        match text {
            "+Inf" => Some(f64::INFINITY),
            "-Inf" => Some(f64::NEG_INFINITY),
            "NaN" => Some(f64::NAN),
            _ if text
                .bytes()
                .all(|b| b.is_ascii_digit() || b"+-.eE".contains(&b))
                && text.bytes().any(|b| b.is_ascii_digit()) =>
            {
                text.parse().ok()
            }
            _ => None,
        }
    }

    fn is_metric_name(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    fn is_label_name(name: &str) -> bool {
        let mut chars = name.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
    }

    fn is_blank(c: char) -> bool {
        c == ' ' || c == '\t'
    }

    /// The first blank-separated token and the rest after its blanks.
    fn token(text: &str) -> (&str, &str) {
        let text = text.trim_start_matches(is_blank);
        match text.find(is_blank) {
            Some(end) => (&text[..end], text[end..].trim_start_matches(is_blank)),
            None => (text, ""),
        }
    }

    /// HELP text: `\\` and `\n` are its only escapes.
    fn unescape_help(text: &str) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = text.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('\\') => out.push('\\'),
                Some('n') => out.push('\n'),
                other => return Err(format!("invalid escape \\{other:?} in HELP text")),
            }
        }
        Ok(out)
    }

    /// The family a sample belongs to: its own name, or a histogram's or
    /// summary's name for the `_bucket`, `_sum` and `_count` series.
    fn family_of(name: &str, families: &BTreeMap<String, Family>) -> String {
        if families.contains_key(name) {
            return name.to_owned();
        }
        for (suffix, kinds) in [
            ("_bucket", &["histogram"][..]),
            ("_sum", &["histogram", "summary"][..]),
            ("_count", &["histogram", "summary"][..]),
        ] {
            if let Some(base) = name.strip_suffix(suffix)
                && let Some(kind) = families.get(base).and_then(|f| f.kind.as_deref())
                && kinds.contains(&kind)
            {
                return base.to_owned();
            }
        }
        name.to_owned()
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(line.len());
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(format!("invalid metric name {name:?}"));
        }
        let mut rest = line[name_end..].trim_start_matches(is_blank);
        let mut labels = BTreeMap::new();
        if let Some(inside) = rest.strip_prefix('{') {
            let mut chars = inside.char_indices().peekable();
            let skip_blanks = |chars: &mut std::iter::Peekable<std::str::CharIndices>| {
                while chars.next_if(|&(_, c)| is_blank(c)).is_some() {}
            };
            let end = loop {
                skip_blanks(&mut chars);
                let Some(&(start, c)) = chars.peek() else {
                    return Err("labels are not closed".to_owned());
                };
                if c == '}' {
                    break start + 1;
                }
                let mut label = String::new();
                while let Some((_, c)) =
                    chars.next_if(|&(_, c)| c.is_ascii_alphanumeric() || c == '_')
                {
                    label.push(c);
                }
                if !is_label_name(&label) || label.starts_with("__") {
                    return Err(format!("invalid label name {label:?}"));
                }
                skip_blanks(&mut chars);
                if chars.next().map(|(_, c)| c) != Some('=') {
                    return Err(format!("no = after label {label}"));
                }
                skip_blanks(&mut chars);
                if chars.next().map(|(_, c)| c) != Some('"') {
                    return Err(format!("the value of label {label} is not quoted"));
                }
                let mut value = String::new();
                loop {
                    match chars.next().map(|(_, c)| c) {
                        None => return Err(format!("the value of label {label} is not closed")),
                        Some('"') => break,
                        Some('\\') => match chars.next().map(|(_, c)| c) {
                            Some('\\') => value.push('\\'),
                            Some('"') => value.push('"'),
                            Some('n') => value.push('\n'),
                            other => {
                                return Err(format!(
                                    "invalid escape \\{other:?} in the value of label {label}"
                                ));
                            }
                        },
                        Some(c) => value.push(c),
                    }
                }
                if labels.insert(label.clone(), value).is_some() {
                    return Err(format!("label {label} appears twice"));
                }
                skip_blanks(&mut chars);
                match chars.next() {
                    Some((_, ',')) => {}
                    Some((i, '}')) => break i + 1,
                    _ => return Err(format!("no , or }} after label {label}")),
                }
            };
            rest = &inside[end..];
            if !rest.starts_with(is_blank) {
                return Err("no blank between labels and value".to_owned());
            }
        } else if !line[name_end..].starts_with(is_blank) {
            return Err("no blank between name and value".to_owned());
        }
        let (value, rest) = token(rest);
        let value = number(value).ok_or_else(|| format!("invalid value {value:?}"))?;
        let (timestamp, rest) = token(rest);
        if !timestamp.is_empty() && timestamp.parse::<i64>().is_err() {
            return Err(format!("invalid timestamp {timestamp:?}"));
        }
        if !rest.is_empty() {
            return Err(format!("unexpected {rest:?} after the value"));
        }
        Ok(Sample {
            name: name.to_owned(),
            labels,
            value,
        })
    }

    pub fn parse(text: &str) -> Result<Exposition, String> {
        if !text.is_empty() && !text.ends_with('\n') {
            return Err("the last line does not end with a line feed".to_owned());
        }
        let mut out = Exposition::default();
        // Families whose samples have started; the one being read now.
        let mut started: BTreeSet<String> = BTreeSet::new();
        let mut current: Option<String> = None;
        let mut series: BTreeSet<(String, Labels)> = BTreeSet::new();
        for (n, raw) in text.split_terminator('\n').enumerate() {
            let fail = |why: String| format!("line {}: {why}: {raw:?}", n + 1);
            if raw.contains('\r') {
                return Err(fail("carriage return".to_owned()));
            }
            let line = raw.trim_start_matches(is_blank);
            if line.is_empty() {
                continue;
            }
            if let Some(comment) = line.strip_prefix('#') {
                let (keyword, rest) = token(comment);
                if keyword != "HELP" && keyword != "TYPE" {
                    continue;
                }
                let (name, rest) = token(rest);
                if !is_metric_name(name) {
                    return Err(fail(format!("invalid metric name {name:?}")));
                }
                if started.contains(name) {
                    return Err(fail(format!("{keyword} of {name} after its samples")));
                }
                let family = out.families.entry(name.to_owned()).or_default();
                if keyword == "HELP" {
                    if family.help.is_some() {
                        return Err(fail(format!("second HELP of {name}")));
                    }
                    family.help = Some(unescape_help(rest).map_err(fail)?);
                } else {
                    let (kind, extra) = token(rest);
                    if !KINDS.contains(&kind) || !extra.is_empty() {
                        return Err(fail(format!("invalid type {rest:?}")));
                    }
                    if family.kind.is_some() {
                        return Err(fail(format!("second TYPE of {name}")));
                    }
                    family.kind = Some(kind.to_owned());
                }
                continue;
            }
            let sample = parse_sample(line).map_err(fail)?;
            let family = family_of(&sample.name, &out.families);
            let kind = out.families.get(&family).and_then(|f| f.kind.as_deref());
            match kind {
                Some("histogram") if sample.name == family => {
                    return Err(fail(
                        "a histogram sample without _bucket, _sum or _count".to_owned(),
                    ));
                }
                Some("histogram")
                    if sample.name.ends_with("_bucket")
                        && sample.labels.get("le").and_then(|le| number(le)).is_none() =>
                {
                    return Err(fail("a bucket without a numeric le label".to_owned()));
                }
                Some("summary")
                    if sample.name == family
                        && sample
                            .labels
                            .get("quantile")
                            .and_then(|q| number(q))
                            .is_none() =>
                {
                    return Err(fail("a summary sample without a quantile label".to_owned()));
                }
                _ => {}
            }
            if current.as_deref() != Some(family.as_str()) {
                if started.contains(&family) {
                    return Err(fail(format!("the samples of {family} are not together")));
                }
                started.insert(family.clone());
                current = Some(family);
            }
            let key = (sample.name.clone(), sample.labels.clone());
            if !series.insert(key) {
                return Err(fail("the same series twice".to_owned()));
            }
            out.samples.push(sample);
        }
        Ok(out)
    }

    /// Every histogram: per label set, buckets cumulative by `le`, a `+Inf`
    /// bucket equal to `_count`, and a `_sum`.
    pub fn check_histograms(exposition: &Exposition) -> Result<(), String> {
        for (family, _) in exposition
            .families
            .iter()
            .filter(|(_, f)| f.kind.as_deref() == Some("histogram"))
        {
            let bucket_name = format!("{family}_bucket");
            let mut groups: BTreeMap<Labels, Vec<(f64, f64)>> = BTreeMap::new();
            for sample in exposition.samples.iter().filter(|s| s.name == bucket_name) {
                let mut labels = sample.labels.clone();
                let le = labels
                    .remove("le")
                    .and_then(|le| number(&le))
                    .unwrap_or(f64::NAN);
                groups.entry(labels).or_default().push((le, sample.value));
            }
            for (labels, mut buckets) in groups {
                buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
                if buckets
                    .windows(2)
                    .any(|w| w[0].0 == w[1].0 || w[0].1 > w[1].1)
                {
                    return Err(format!(
                        "{family}{labels:?}: buckets are not cumulative: {buckets:?}"
                    ));
                }
                let Some(&(last_le, last)) = buckets.last() else {
                    continue;
                };
                if last_le != f64::INFINITY {
                    return Err(format!("{family}{labels:?}: no +Inf bucket"));
                }
                let with = |suffix: &str| {
                    let name = format!("{family}{suffix}");
                    exposition
                        .samples
                        .iter()
                        .find(|s| s.name == name && s.labels == labels)
                        .map(|s| s.value)
                };
                if with("_count") != Some(last) {
                    return Err(format!(
                        "{family}{labels:?}: _count {:?} is not the +Inf bucket {last}",
                        with("_count")
                    ));
                }
                if with("_sum").is_none() {
                    return Err(format!("{family}{labels:?}: no _sum"));
                }
            }
        }
        Ok(())
    }

    /// The reader itself: what it must accept, and what it must refuse.
    #[test]
    fn the_exposition_reader_accepts_the_format_and_refuses_malformed_lines() {
        let good = "# HELP a_total Things, with \\\\ and \\n escaped.\n\
                    # TYPE a_total counter\n\
                    a_total{route=\"/x/{id}\",q=\"a \\\"b\\\" c\\\\d\\ne,f}\"} 3\n\
                    a_total{route=\"/y\",} 4 1700000000000\n\
                    \n\
                    # a comment\n\
                    # TYPE h histogram\n\
                    h_bucket{le=\"0.5\"} 1\n\
                    h_bucket{le=\"+Inf\"} 2\n\
                    h_sum 0.7\n\
                    h_count 2\n\
                    plain NaN\n";
        let parsed = parse(good).unwrap();
        check_histograms(&parsed).unwrap();
        assert_eq!(parsed.kind("a_total"), Some("counter"));
        assert_eq!(
            parsed.families["a_total"].help.as_deref(),
            Some("Things, with \\ and \n escaped.")
        );
        assert_eq!(
            parsed.value(
                "a_total",
                &[("route", "/x/{id}"), ("q", "a \"b\" c\\d\ne,f}")]
            ),
            Some(3.0)
        );
        assert_eq!(parsed.value("a_total", &[("route", "/y")]), Some(4.0));
        assert_eq!(
            parsed.buckets("h", &[]),
            vec![(0.5, 1.0), (f64::INFINITY, 2.0)]
        );

        for bad in [
            "a 1",                                // no final line feed
            "a 1\r\n",                            // CR
            "1a 1\n",                             // name
            "a{b=\"c\" 1\n",                      // labels not closed
            "a{b=c} 1\n",                         // unquoted value
            "a{b=\"c\\t\"} 1\n",                  // bad escape
            "a{b=\"c\"}1\n",                      // no blank before the value
            "a{b=\"c\",b=\"d\"} 1\n",             // label twice
            "a{2b=\"c\"} 1\n",                    // label name
            "a{b=\"c\" d=\"e\"} 1\n",             // no comma
            "a\n",                                // no value
            "a one\n",                            // value
            "a 1 2 3\n",                          // trailing junk
            "a 1 1.5\n",                          // timestamp
            "# TYPE a countr\n",                  // type
            "# TYPE a counter\n# TYPE a gauge\n", // second TYPE
            "# HELP a x\n# HELP a y\n",           // second HELP
            "# HELP a bad \\t escape\n",          // HELP escape
            "a 1\n# TYPE a counter\n",            // TYPE after samples
            "a 1\nb 1\na{x=\"y\"} 2\n",           // not together
            "a 1\na 2\n",                         // same series twice
            "# TYPE h histogram\nh 1\n",          // bare histogram sample
            "# TYPE h histogram\nh_bucket 1\n",   // bucket without le
        ] {
            assert!(parse(bad).is_err(), "accepted {bad:?}");
        }
        for bad in [
            // not cumulative
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_sum 1\nh_count 1\n",
            // no +Inf
            "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_sum 1\nh_count 2\n",
            // +Inf is not _count
            "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 2\nh_sum 1\nh_count 3\n",
        ] {
            let parsed = parse(bad).unwrap();
            assert!(check_histograms(&parsed).is_err(), "accepted {bad:?}");
        }
    }
}
