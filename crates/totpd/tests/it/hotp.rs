//! HOTP secrets (DESIGN §2.2): created from a body or an `otpauth://hotp/`
//! URI, codes handed out for the stored counter, which advances atomically
//! (one counter per request on any number of nodes), and verification by
//! look-ahead.

use std::collections::BTreeSet;

use reqwest::Method;
use serde_json::{Value, json};

use crate::harness::{
    Backend, Body, Serves, code_path, on_both_backends, on_postgres_only, spawn_app,
};
use crate::otp::{Alg, base32_encode, hotp};

on_both_backends! {
    an_hotp_uri_with_the_rfc_4226_seed_yields_the_appendix_d_codes_in_order
        => an_hotp_uri_with_the_rfc_4226_seed_yields_the_appendix_d_codes_in_order_on_sqlite,
           an_hotp_uri_with_the_rfc_4226_seed_yields_the_appendix_d_codes_in_order_on_postgres;
    hotp_create_fields_are_checked_and_every_secret_shows_its_type
        => hotp_create_fields_are_checked_and_every_secret_shows_its_type_on_sqlite,
           hotp_create_fields_are_checked_and_every_secret_shows_its_type_on_postgres;
    hotp_verification_looks_ahead_and_moves_the_counter_past_the_match
        => hotp_verification_looks_ahead_and_moves_the_counter_past_the_match_on_sqlite,
           hotp_verification_looks_ahead_and_moves_the_counter_past_the_match_on_postgres;
}

on_postgres_only! {
    a_thousand_parallel_code_requests_on_two_nodes_get_a_thousand_consecutive_counters
        => a_thousand_parallel_code_requests_on_two_nodes_get_a_thousand_consecutive_counters_on_postgres;
}

/// RFC 4226's test secret, "12345678901234567890".
const RFC_SEED: &[u8] = b"12345678901234567890";

/// RFC 4226 Appendix D: HOTP-SHA1, six digits, counters 0 to 9.
const APPENDIX_D: [&str; 10] = [
    "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
    "520489",
];

fn rfc_uri(counter: u64) -> String {
    format!(
        "otpauth://hotp/Example:alice@example.com?secret={}&issuer=Example&counter={counter}",
        base32_encode(RFC_SEED)
    )
}

fn verify_path(id: &str) -> String {
    format!("/api/v2/totp/secrets/{id}/verify")
}

async fn listed(server: &impl Serves, id: &str) -> Value {
    let list = server.api().list_ok().await;
    list.into_iter()
        .find(|s| s["id"] == id)
        .unwrap_or_else(|| panic!("secret {id} is listed"))
}

async fn an_hotp_uri_with_the_rfc_4226_seed_yields_the_appendix_d_codes_in_order(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let created = api.create_ok(json!({ "uri": rfc_uri(0) })).await;
    assert_eq!(created["type"], "hotp", "{created}");
    assert_eq!(created["counter"], 0, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    for (counter, expected) in APPENDIX_D.iter().enumerate() {
        let answer = api.code(&id).await.expect_ok();
        assert_eq!(answer["code"], *expected, "counter {counter}: {answer}");
        assert_eq!(answer["counter"], counter, "{answer}");
        assert_eq!(answer["digits"], 6, "{answer}");
        assert!(answer.get("expires_in").is_none(), "{answer}");
    }
    let shown = listed(&server, &id).await;
    assert_eq!(shown["type"], "hotp", "{shown}");
    assert_eq!(shown["counter"], 10, "the next counter is shown: {shown}");
}

async fn hotp_create_fields_are_checked_and_every_secret_shows_its_type(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let secret = base32_encode(RFC_SEED);
    let refused = [
        (
            json!({"label": "a", "type": "hotp", "counter": -1}),
            "\"counter\"",
        ),
        (
            json!({"label": "a", "type": "hotp", "counter": 1.5}),
            "\"counter\"",
        ),
        (
            json!({"label": "a", "type": "hotp", "counter": "1"}),
            "\"counter\"",
        ),
        (
            json!({"label": "a", "type": "hotp", "counter": 9_223_372_036_854_775_808u64}),
            "\"counter\"",
        ),
        (
            json!({"label": "a", "type": "hotp", "period": 30}),
            "\"period\"",
        ),
        (json!({"label": "a", "type": "hotp", "skew": 1}), "\"skew\""),
        (json!({"label": "a", "counter": 3}), "\"counter\""),
        (json!({"label": "a", "type": "motp"}), "\"type\""),
        (json!({"label": "a", "type": 1}), "\"type\""),
        (json!({"label": "a", "skew": 3}), "\"skew\""),
        (json!({"label": "a", "skew": -1}), "\"skew\""),
        (
            json!({"uri": format!("otpauth://hotp/x?secret={secret}")}),
            "counter",
        ),
        (json!({"uri": rfc_uri(0), "type": "totp"}), "\"type\""),
    ];
    for (body, field) in refused {
        let reply = api.create(body.clone()).await;
        reply.expect_error(400, "invalid_request");
        assert!(reply.message().contains(field), "{body}: {}", reply.text);
    }
    let big = api
        .create_ok(json!({"label": "big", "type": "hotp", "counter": 9_223_372_036_854_775_806u64, "secret": secret}))
        .await;
    assert_eq!(big["counter"], 9_223_372_036_854_775_806u64, "{big}");
    let hotp_id = big["id"].as_str().unwrap();
    let code = api.code(hotp_id).await.expect_ok();
    assert_eq!(code["counter"], 9_223_372_036_854_775_806u64, "{code}");
    let totp = api.create_ok(json!({"label": "t", "skew": 2})).await;
    assert_eq!(totp["type"], "totp", "{totp}");
    assert_eq!(totp["skew"], 2, "{totp}");
    assert!(totp.get("counter").is_none(), "{totp}");
    let default = api.create_ok(json!({"label": "d"})).await;
    assert_eq!(default["skew"], 1, "{default}");
    for shown in api.list_ok().await {
        assert!(
            shown["type"] == "totp" || shown["type"] == "hotp",
            "{shown}"
        );
    }
}

async fn hotp_verification_looks_ahead_and_moves_the_counter_past_the_match(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let created = api
        .create_ok(json!({"label": "h", "type": "hotp", "secret": base32_encode(RFC_SEED)}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let verify = |code: String| {
        let api = api.clone();
        let path = verify_path(&id);
        async move {
            api.request(Method::POST, &path, Body::Json(json!({ "code": code })))
                .await
                .expect_ok()["valid"]
                .clone()
        }
    };
    let code = |counter: u64| hotp(RFC_SEED, Alg::Sha1, 6, counter);
    assert_eq!(verify(code(5)).await, true, "counter 5 is within 0..10");
    assert_eq!(listed(&server, &id).await["counter"], 6);
    assert_eq!(verify(code(5)).await, false, "a used counter is refused");
    assert_eq!(
        verify(code(3)).await,
        false,
        "an earlier counter is refused"
    );
    assert_eq!(
        verify(code(16)).await,
        false,
        "counter 16 is outside the window 6..16"
    );
    assert_eq!(listed(&server, &id).await["counter"], 6);
    assert_eq!(
        verify(code(15)).await,
        true,
        "counter 15 is the window's last"
    );
    assert_eq!(listed(&server, &id).await["counter"], 16);
    // A code handed out moves the counter past it too.
    let handed = api.code(&id).await.expect_ok();
    assert_eq!(handed["counter"], 16);
    assert_eq!(verify(code(16)).await, false, "a code handed out is used");
}

async fn a_thousand_parallel_code_requests_on_two_nodes_get_a_thousand_consecutive_counters() {
    let first = spawn_app(Backend::Postgres).await;
    let second = first.sibling().await;
    let created = first
        .api()
        .create_ok(json!({"label": "race", "type": "hotp", "counter": 7}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let counters = take_in_parallel(&[first.api(), second.api()], &id, 1000).await;
    assert_eq!(counters, (7..1007).collect::<BTreeSet<u64>>());
    assert_eq!(listed(&first, &id).await["counter"], 1007);
}

/// `n` code requests at once, spread over `nodes`; the distinct counters
/// they got (a repeated counter fails the test).
async fn take_in_parallel(nodes: &[crate::harness::Api], id: &str, n: usize) -> BTreeSet<u64> {
    let path = code_path(id);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        let api = nodes[i % nodes.len()].clone();
        let path = path.clone();
        tasks.spawn(async move {
            api.get(&path).await.expect_ok()["counter"]
                .as_u64()
                .unwrap()
        });
    }
    let mut seen = BTreeSet::new();
    while let Some(counter) = tasks.join_next().await {
        let counter = counter.expect("a code request");
        assert!(
            seen.insert(counter),
            "counter {counter} was handed out twice"
        );
    }
    seen
}

#[tokio::test]
async fn a_thousand_parallel_code_requests_get_a_thousand_consecutive_counters_on_sqlite() {
    let server = spawn_app(Backend::Sqlite).await;
    let created = server
        .api()
        .create_ok(json!({"label": "race", "type": "hotp"}))
        .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let counters = take_in_parallel(&[server.api()], &id, 1000).await;
    assert_eq!(counters, (0..1000).collect::<BTreeSet<u64>>());
}
