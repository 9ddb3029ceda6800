//! Code answers checked against the independent implementation in `otp.rs`.

use serde_json::Value;

use super::env::unix_ms;
use super::http::Api;
use crate::otp::{Alg, totp};

/// A secret as the tests know it: its bytes and parameters.
#[derive(Clone, Debug)]
pub struct Known {
    pub key: Vec<u8>,
    pub alg: Alg,
    pub digits: u32,
    pub period: u64,
}

/// Fetches the code of `id` and checks it against the independent
/// implementation at the same instant: the answer must match the server's
/// clock at some second between just before the request and just after it
/// (so only a period boundary crossed during the request allows either
/// side). Checks `code`, `expires_in`, `expires_at`, `period` and `digits`.
/// Returns the code.
pub async fn assert_code(api: &Api, id: &str, known: &Known) -> String {
    let before = unix_ms();
    let reply = api.code(id).await;
    let after = unix_ms();
    let body = reply.expect_ok();
    check_code_body(&body, known, before, after);
    body["code"].as_str().unwrap_or_default().to_owned()
}

/// See [`assert_code`]: checks a code answer obtained between `before_ms`
/// and `after_ms`.
pub fn check_code_body(body: &Value, known: &Known, before_ms: i64, after_ms: i64) {
    let code = body["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code string in {body}"));
    assert_eq!(
        code.len(),
        known.digits as usize,
        "code {code:?} is not {} digits (zero-padded)",
        known.digits
    );
    assert!(code.bytes().all(|b| b.is_ascii_digit()), "code {code:?}");
    let expires_in = body["expires_in"]
        .as_u64()
        .unwrap_or_else(|| panic!("expires_in is not a whole number in {body}"));
    assert!(
        (1..=known.period).contains(&expires_in),
        "expires_in {expires_in} outside 1..={}",
        known.period
    );
    assert_eq!(body["period"], known.period, "period in {body}");
    assert_eq!(body["digits"], known.digits, "digits in {body}");
    let expires_at = body["expires_at"]
        .as_str()
        .and_then(crate::otp::parse_rfc3339)
        .unwrap_or_else(|| panic!("expires_at is not RFC 3339 in {body}"));

    let first = u64::try_from(before_ms.div_euclid(1000)).expect("after 1970");
    let last = u64::try_from(after_ms.div_euclid(1000)).expect("after 1970");
    let instants: Vec<u64> = (first..=last).collect();
    let matching = instants.iter().find(|&&t| {
        let step_end = (t / known.period + 1) * known.period;
        totp(&known.key, known.alg, known.digits, known.period, t) == code
            && known.period - t % known.period == expires_in
            && i64::try_from(step_end * 1000).ok() == Some(expires_at)
    });
    if matching.is_none() {
        let expected: Vec<String> = instants
            .iter()
            .map(|&t| {
                format!(
                    "at {t}: code {} expires_in {}",
                    totp(&known.key, known.alg, known.digits, known.period, t),
                    known.period - t % known.period
                )
            })
            .collect();
        panic!(
            "the code answer {body} ({:?}, {} digits, period {}) matches the independent implementation at no second of the request; expected one of: {}",
            known.alg,
            known.digits,
            known.period,
            expected.join("; ")
        );
    }
}
