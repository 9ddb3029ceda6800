//! Bad input: each answered 4xx with the JSON error body, nothing stored,
//! and the server keeps serving. The router's answers are checked on the
//! in-process app; the 413 of an oversized body, which depends on how the
//! real server reads and resets connections, on a `totpd serve` process.

use reqwest::Method;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{
    Backend, Body, SECRETS, TestServer, code_path, on_both_backends, random_bytes, raw_exchange,
    secret_path, spawn_app,
};
use crate::otp::base32_encode;

on_both_backends! {
    bad_create_requests_are_refused_with_the_json_error_body_and_nothing_is_stored
        => bad_create_requests_are_refused_with_the_json_error_body_and_nothing_is_stored_on_sqlite,
           bad_create_requests_are_refused_with_the_json_error_body_and_nothing_is_stored_on_postgres;
    a_five_megabyte_body_is_refused_with_413
        => a_five_megabyte_body_is_refused_with_413_on_sqlite,
           a_five_megabyte_body_is_refused_with_413_on_postgres;
    unknown_and_malformed_ids_are_not_found
        => unknown_and_malformed_ids_are_not_found_on_sqlite,
           unknown_and_malformed_ids_are_not_found_on_postgres;
    wrong_methods_are_405_and_unknown_routes_404
        => wrong_methods_are_405_and_unknown_routes_404_on_sqlite,
           wrong_methods_are_405_and_unknown_routes_404_on_postgres;
}

/// One bad request: what it is, its body, the statuses allowed, and the
/// field a 400 message must name.
struct Case {
    what: String,
    body: Body,
    statuses: &'static [u16],
    field: Option<&'static str>,
}

fn json_case(what: &str, value: Value, field: &'static str) -> Case {
    Case {
        what: what.to_owned(),
        body: Body::Json(value),
        statuses: &[400],
        field: Some(field),
    }
}

fn raw_case(
    what: &str,
    content_type: Option<&'static str>,
    bytes: &[u8],
    statuses: &'static [u16],
) -> Case {
    Case {
        what: what.to_owned(),
        body: Body::Raw {
            content_type,
            bytes: bytes.to_vec(),
        },
        statuses,
        field: None,
    }
}

fn cases() -> Vec<Case> {
    let s = base32_encode(&random_bytes(20));
    let uri = |query: &str| format!("otpauth://totp/Example:alice?secret={s}{query}");
    let with = |field: &str, value: Value| {
        let mut body = json!({"label": "bad", "secret": s});
        body[field] = value;
        body
    };
    let mut cases = vec![
        json_case(
            "invalid base32",
            with("secret", json!("not base32!")),
            "secret",
        ),
        json_case(
            "base32 with a 1",
            with("secret", json!("JBSWY3DPEHPK3PX1")),
            "secret",
        ),
        json_case(
            "base32 with an 8",
            with("secret", json!("JBSWY3DPEHPK3PX8")),
            "secret",
        ),
        json_case(
            "a secret that is a number",
            with("secret", json!(12345)),
            "secret",
        ),
        json_case("empty secret", with("secret", json!("")), "secret"),
        json_case("blank secret", with("secret", json!("   ")), "secret"),
        json_case("digits 7", with("digits", json!(7)), "digits"),
        json_case("digits \"six\"", with("digits", json!("six")), "digits"),
        json_case("digits 0", with("digits", json!(0)), "digits"),
        json_case("digits 5", with("digits", json!(5)), "digits"),
        json_case("digits 9", with("digits", json!(9)), "digits"),
        json_case("digits 256", with("digits", json!(256)), "digits"),
        json_case("digits -6", with("digits", json!(-6)), "digits"),
        json_case("digits 6.5", with("digits", json!(6.5)), "digits"),
        json_case("digits true", with("digits", json!(true)), "digits"),
        json_case("period 0", with("period", json!(0)), "period"),
        json_case("period -1", with("period", json!(-1)), "period"),
        json_case(
            "period 10^12",
            with("period", json!(1_000_000_000_000u64)),
            "period",
        ),
        json_case(
            "period 2^32 + 30",
            with("period", json!(4_294_967_326u64)),
            "period",
        ),
        json_case(
            "period 2^64",
            with("period", json!(18_446_744_073_709_551_616f64)),
            "period",
        ),
        json_case("period \"30x\"", with("period", json!("30x")), "period"),
        json_case("period 30.5", with("period", json!(30.5)), "period"),
        json_case(
            "period beyond the documented bound",
            with("period", json!(86_401)),
            "period",
        ),
        json_case(
            "algorithm MD5",
            with("algorithm", json!("MD5")),
            "algorithm",
        ),
        json_case("algorithm empty", with("algorithm", json!("")), "algorithm"),
        json_case(
            "algorithm a number",
            with("algorithm", json!(256)),
            "algorithm",
        ),
        json_case("no label and no uri", json!({"secret": s}), "label"),
        json_case("an empty object", json!({}), "label"),
        json_case("a null label", json!({"label": null, "secret": s}), "label"),
        json_case("empty label", json!({"label": "", "secret": s}), "label"),
        json_case(
            "blank label",
            json!({"label": "    ", "secret": s}),
            "label",
        ),
        json_case(
            "a label with a tab",
            json!({"label": "a\tb", "secret": s}),
            "label",
        ),
        json_case("a label that is a number", json!({"label": 42}), "label"),
        json_case("a NUL in the label", json!({"label": "a\u{0}b"}), "label"),
        json_case(
            "a newline in the issuer",
            with("issuer", json!("evil\ninjected")),
            "issuer",
        ),
        json_case(
            "an issuer that is an object",
            with("issuer", json!({"name": "x"})),
            "issuer",
        ),
        json_case("uri a number", json!({"uri": 123}), "uri"),
        json_case("uri an array", json!({"uri": [uri("")]}), "uri"),
        json_case("uri an object", json!({"uri": {"secret": s}}), "uri"),
        json_case("uri true", json!({"uri": true}), "uri"),
        json_case("uri empty", json!({"uri": ""}), "uri"),
        json_case(
            "uri of another scheme",
            json!({"uri": "https://example.com/?secret=JBSWY3DP"}),
            "uri",
        ),
        json_case(
            "uri without a secret",
            json!({"uri": "otpauth://totp/Example:alice?issuer=Example"}),
            "uri",
        ),
        json_case(
            "uri with invalid base32",
            json!({"uri": "otpauth://totp/a?secret=%21%21%21"}),
            "uri",
        ),
        json_case("uri with digits 7", json!({"uri": uri("&digits=7")}), "uri"),
        json_case(
            "uri with algorithm MD5",
            json!({"uri": uri("&algorithm=MD5")}),
            "uri",
        ),
        json_case("uri with period 0", json!({"uri": uri("&period=0")}), "uri"),
        json_case(
            "an HOTP uri without a counter",
            json!({"uri": format!("otpauth://hotp/Example:alice?secret={s}")}),
            "counter",
        ),
        json_case(
            "an HOTP uri with a counter past the largest stored",
            json!({"uri": format!("otpauth://hotp/Example:alice?secret={s}&counter=9223372036854775808")}),
            "counter",
        ),
        raw_case(
            "malformed JSON",
            Some("application/json"),
            br#"{"label": "x","#,
            &[400],
        ),
        raw_case(
            "unquoted keys",
            Some("application/json"),
            br#"{label: "x"}"#,
            &[400],
        ),
        raw_case(
            "trailing garbage",
            Some("application/json"),
            br#"{"label": "x"} {"#,
            &[400],
        ),
        raw_case("an empty body", Some("application/json"), b"", &[400]),
        raw_case("a JSON array", Some("application/json"), b"[]", &[400]),
        raw_case(
            "a JSON array of a valid object",
            Some("application/json"),
            br#"[{"label": "x"}]"#,
            &[400],
        ),
        raw_case("null", Some("application/json"), b"null", &[400]),
        raw_case(
            "a JSON string",
            Some("application/json"),
            br#""label""#,
            &[400],
        ),
        raw_case("a JSON number", Some("application/json"), b"42", &[400]),
        raw_case(
            "non-UTF-8 bytes in a string",
            Some("application/json"),
            b"{\"label\": \"\xff\xfe\xfd\"}",
            &[400],
        ),
        raw_case(
            "non-UTF-8 bytes",
            Some("application/json"),
            b"\xff\xfe\x00\x01",
            &[400],
        ),
        raw_case(
            "deeply nested JSON",
            Some("application/json"),
            &[b'['; 10_000],
            &[400],
        ),
        raw_case(
            "a body that is not JSON",
            Some("text/plain"),
            br#"{"label": "x"}"#,
            &[415],
        ),
        raw_case(
            "a form body",
            Some("application/x-www-form-urlencoded"),
            b"label=x",
            &[415],
        ),
    ];
    // 100,000 characters: beyond the 256-character limit and the 64 KiB body limit.
    cases.push(Case {
        what: "a label of 100,000 characters".to_owned(),
        body: Body::Json(json!({"label": "x".repeat(100_000)})),
        statuses: &[400, 413],
        field: None,
    });
    cases.push(Case {
        what: "a label of 100,000 characters (Ω, 2 bytes each)".to_owned(),
        body: Body::Json(json!({"label": "Ω".repeat(100_000)})),
        statuses: &[400, 413],
        field: None,
    });
    cases
}

async fn bad_create_requests_are_refused_with_the_json_error_body_and_nothing_is_stored(
    backend: Backend,
) {
    let mut server = spawn_app(backend).await;
    let api = server.api();
    let mut failures = Vec::new();
    for case in cases() {
        let reply = api.request(Method::POST, SECRETS, case.body).await;
        let outcome = std::panic::catch_unwind(|| {
            let body = reply.expect_refusal(case.statuses);
            if let (400, Some(field)) = (reply.status, case.field) {
                let message = body["message"].as_str().unwrap_or_default();
                assert!(
                    message.contains(field),
                    "the 400 message does not name \"{field}\": {message:?}"
                );
            }
        });
        if outcome.is_err() {
            failures.push(format!(
                "{}: HTTP {} {}",
                case.what,
                reply.status,
                reply.text.chars().take(300).collect::<String>()
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} bad requests were not refused properly:\n{}",
        failures.len(),
        failures.join("\n")
    );
    server.assert_healthy().await;
    assert!(
        api.list_ok().await.is_empty(),
        "a refused request stored something"
    );
    // And it still takes a good request.
    api.create_ok(json!({"label": "fine"})).await;
}

async fn a_five_megabyte_body_is_refused_with_413(backend: Backend) {
    let mut server = TestServer::start(backend).await;
    let key = server.key.clone();
    let auth = format!(
        "sb-api-key-id: {}\r\nsb-api-secret-key: {}\r\n",
        key.key_id, key.secret
    );
    let mut json = br#"{"label": "big", "issuer": ""#.to_vec();
    json.extend(std::iter::repeat_n(b'x', 5 * 1024 * 1024));
    json.extend_from_slice(br#""}"#);
    // With a Content-Length, the server can refuse up front.
    let head = format!(
        "POST {SECRETS} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        server.addr,
        json.len()
    );
    raw_exchange(&server.addr, &head, json.clone())
        .await
        .expect_refusal(&[413]);
    // Chunked, without a Content-Length: the server must count as it reads.
    let mut chunked = Vec::new();
    for piece in json.chunks(64 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST {SECRETS} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n",
        server.addr
    );
    raw_exchange(&server.addr, &head, chunked)
        .await
        .expect_refusal(&[413]);
    server.assert_healthy().await;
    assert!(server.api().list_ok().await.is_empty());
}

async fn unknown_and_malformed_ids_are_not_found(backend: Backend) {
    let mut server = spawn_app(backend).await;
    let api = server.api();
    let existing = api.create_ok(json!({"label": "exists"})).await;
    let existing = existing["id"].as_str().unwrap().to_owned();
    let unknown = Uuid::new_v4().to_string();
    // Unknown UUIDs: exactly 404.
    for id in [unknown.as_str(), "00000000-0000-0000-0000-000000000000"] {
        api.code(id).await.expect_error(404, "not_found");
        api.delete(id).await.expect_error(404, "not_found");
    }
    // Not UUIDs at all: 404 or 400, with the JSON error body.
    let long = "a".repeat(2000);
    let malformed = [
        "not-a-uuid",
        "123",
        "%20",
        "%E2%9C%93",
        "%00",
        "..%2F..%2Fetc%2Fpasswd",
        "'%20OR%201=1--",
        long.as_str(),
    ];
    for id in malformed {
        for reply in [api.code(id).await, api.delete(id).await] {
            reply.expect_refusal(&[404, 400]);
        }
    }
    server.assert_healthy().await;
    assert_eq!(api.listed_ids().await, vec![existing]);
}

async fn wrong_methods_are_405_and_unknown_routes_404(backend: Backend) {
    let mut server = spawn_app(backend).await;
    let api = server.api();
    let created = api.create_ok(json!({"label": "x"})).await;
    let id = created["id"].as_str().unwrap().to_owned();
    let wrong_methods = [
        (Method::PUT, SECRETS.to_owned()),
        (Method::DELETE, SECRETS.to_owned()),
        (Method::POST, code_path(&id)),
        (Method::PUT, code_path(&id)),
        (Method::DELETE, code_path(&id)),
        (Method::POST, secret_path(&id)),
        (Method::PUT, secret_path(&id)),
    ];
    for (method, path) in wrong_methods {
        let reply = api.request(method.clone(), &path, Body::None).await;
        reply.expect_refusal(&[405]);
        assert!(
            reply.headers.contains_key("allow"),
            "{method} {path}: a 405 must carry an Allow header (RFC 9110 §15.5.6)"
        );
    }
    let unknown_routes = [
        (Method::GET, "/api/v2/totp/nope"),
        (Method::GET, "/nope"),
        (Method::POST, "/api/v2/totp/secret"),
        (Method::GET, "/api/v2/totp/secrets/extra/segment"),
        (Method::GET, "/api/v2/totp/code"),
        (Method::GET, "/API/V2/TOTP/SECRETS"),
        (Method::GET, "/api/v3/totp/secrets"),
    ];
    for (method, path) in unknown_routes {
        let reply = api.request(method.clone(), path, Body::None).await;
        assert_eq!(reply.status, 404, "{method} {path}: {}", reply.text);
        reply.expect_error(404, "not_found");
    }
    server.assert_healthy().await;
    api.code(&id).await.expect_ok();
}
