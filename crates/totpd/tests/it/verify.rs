//! `POST /api/v2/totp/secrets/{id}/verify` (DESIGN §2.2): TOTP with skew,
//! replay refused on every node, and the throttling of failed attempts,
//! with the time set by a `ManualClock` shared by the nodes (no sleeps).

use std::sync::Arc;

use reqwest::Method;
use serde_json::{Value, json};
use totpd_api::Limits;
use totpd_vault::{ManualClock, UnixTime};

use crate::harness::{
    ApiKey, Backend, Body, Reply, Serves, on_both_backends, spawn_app_with_clock, unix_ms,
};
use crate::otp::{Alg, base32_encode, totp};

on_both_backends! {
    a_code_is_accepted_once_however_it_is_typed_and_earlier_steps_never
        => a_code_is_accepted_once_however_it_is_typed_and_earlier_steps_never_on_sqlite,
           a_code_is_accepted_once_however_it_is_typed_and_earlier_steps_never_on_postgres;
    skew_decides_how_many_steps_either_side_are_accepted
        => skew_decides_how_many_steps_either_side_are_accepted_on_sqlite,
           skew_decides_how_many_steps_either_side_are_accepted_on_postgres;
    patch_changes_a_totp_secrets_skew_and_refuses_it_for_hotp
        => patch_changes_a_totp_secrets_skew_and_refuses_it_for_hotp_on_sqlite,
           patch_changes_a_totp_secrets_skew_and_refuses_it_for_hotp_on_postgres;
    a_hundred_parallel_verifications_of_one_code_accept_exactly_one
        => a_hundred_parallel_verifications_of_one_code_accept_exactly_one_on_sqlite,
           a_hundred_parallel_verifications_of_one_code_accept_exactly_one_on_postgres;
    a_code_accepted_by_one_node_is_refused_by_another
        => a_code_accepted_by_one_node_is_refused_by_another_on_sqlite,
           a_code_accepted_by_one_node_is_refused_by_another_on_postgres;
    the_eleventh_failure_within_five_minutes_is_429_on_every_node_until_the_window_passes
        => the_eleventh_failure_within_five_minutes_is_429_on_every_node_until_the_window_passes_on_sqlite,
           the_eleventh_failure_within_five_minutes_is_429_on_every_node_until_the_window_passes_on_postgres;
    bad_verify_bodies_are_400_and_malformed_codes_are_not_valid
        => bad_verify_bodies_are_400_and_malformed_codes_are_not_valid_on_sqlite,
           bad_verify_bodies_are_400_and_malformed_codes_are_not_valid_on_postgres;
    only_verifier_admin_and_owner_keys_verify_and_each_verification_is_audited
        => only_verifier_admin_and_owner_keys_verify_and_each_verification_is_audited_on_sqlite,
           only_verifier_admin_and_owner_keys_verify_and_each_verification_is_audited_on_postgres;
}

const KEY: &[u8] = b"verification-test-key";
const PERIOD: i64 = 30_000;

/// A clock 10 s into a 30 s step, so a step is never crossed by accident.
fn pinned_clock() -> Arc<ManualClock> {
    let now = unix_ms();
    Arc::new(ManualClock::new(UnixTime(now - now % PERIOD + 10_000)))
}

/// The code of the step `offset` steps from the clock's.
fn code_at(clock: &ManualClock, offset: i64) -> String {
    use totpd_vault::Clock as _;
    let seconds = u64::try_from(clock.now().0 / 1000 + offset * 30).unwrap();
    totp(KEY, Alg::Sha1, 6, 30, seconds)
}

async fn app(backend: Backend, clock: &Arc<ManualClock>) -> crate::harness::TestApp {
    spawn_app_with_clock(backend, Limits::default(), Arc::clone(clock) as _).await
}

async fn new_secret(server: &impl Serves, body: Value) -> String {
    let mut body = body;
    body["secret"] = json!(base32_encode(KEY));
    server.api().create_ok(body).await["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn verify_as(server: &impl Serves, key: &ApiKey, id: &str, code: &str) -> Reply {
    server
        .api_as(key)
        .request(
            Method::POST,
            &format!("/api/v2/totp/secrets/{id}/verify"),
            Body::Json(json!({ "code": code })),
        )
        .await
}

async fn valid(server: &impl Serves, id: &str, code: &str) -> bool {
    let answer = verify_as(server, server.key(), id, code).await.expect_ok();
    answer["valid"]
        .as_bool()
        .unwrap_or_else(|| panic!("valid is a boolean: {answer}"))
}

async fn a_code_is_accepted_once_however_it_is_typed_and_earlier_steps_never(backend: Backend) {
    let clock = pinned_clock();
    let server = app(backend, &clock).await;
    let id = new_secret(&server, json!({"label": "a"})).await;
    let now = code_at(&clock, 0);
    let spaced = format!(" {}", now);
    assert!(valid(&server, &id, &spaced).await, "the current code");
    let split = format!("{} {}", &now[..3], &now[3..]);
    assert!(!valid(&server, &id, &split).await, "the same code, spaced");
    assert!(
        !valid(&server, &id, &format!("{now}\n")).await,
        "with a newline"
    );
    assert!(!valid(&server, &id, &now).await, "as typed first");
    assert!(
        !valid(&server, &id, &code_at(&clock, -1)).await,
        "an earlier step than the accepted one"
    );
    // The next step's code is accepted (skew 1), then the current step is
    // earlier than the last accepted one.
    let other = new_secret(&server, json!({"label": "b"})).await;
    assert!(valid(&server, &other, &code_at(&clock, 1)).await);
    if code_at(&clock, 0) != code_at(&clock, 1) {
        assert!(!valid(&server, &other, &code_at(&clock, 0)).await);
    }
    clock.advance(PERIOD);
    let third = new_secret(&server, json!({"label": "c"})).await;
    assert!(valid(&server, &third, &format!("{}\n", code_at(&clock, 0))).await);
}

async fn skew_decides_how_many_steps_either_side_are_accepted(backend: Backend) {
    let clock = pinned_clock();
    let server = app(backend, &clock).await;
    for (skew, offset, accepted) in [
        (0, 0, true),
        (0, -1, false),
        (0, 1, false),
        (1, -1, true),
        (1, -2, false),
        (2, -2, true),
        (2, 2, true),
        (2, 3, false),
    ] {
        let id = new_secret(&server, json!({"label": "s", "skew": skew})).await;
        let code = code_at(&clock, offset);
        let collides = (-(skew as i64)..=skew as i64).any(|o| code_at(&clock, o) == code);
        assert_eq!(
            valid(&server, &id, &code).await,
            accepted || collides,
            "skew {skew}, step offset {offset}"
        );
    }
}

async fn patch_skew(server: &impl Serves, id: &str, body: Value) -> Reply {
    server
        .api()
        .request(
            Method::PATCH,
            &format!("/api/v2/totp/secrets/{id}"),
            Body::Json(body),
        )
        .await
}

async fn patch_changes_a_totp_secrets_skew_and_refuses_it_for_hotp(backend: Backend) {
    let clock = pinned_clock();
    let server = app(backend, &clock).await;
    let id = new_secret(&server, json!({"label": "p"})).await;
    let answer = patch_skew(&server, &id, json!({"skew": 0}))
        .await
        .expect_ok();
    assert_eq!(answer["totp_secret"]["skew"], 0, "{answer}");
    assert_eq!(answer["totp_secret"]["label"], "p", "the label is kept");
    let previous = code_at(&clock, -1);
    if previous != code_at(&clock, 0) {
        assert!(
            !valid(&server, &id, &previous).await,
            "skew 0 refuses the step before"
        );
    }
    patch_skew(&server, &id, json!({"skew": 2}))
        .await
        .expect_ok();
    assert!(
        valid(&server, &id, &code_at(&clock, -2)).await,
        "skew 2 accepts two steps back"
    );
    for bad in [json!(3), json!(-1), json!("1"), json!(1.5)] {
        let refused = patch_skew(&server, &id, json!({ "skew": bad })).await;
        let body = refused.expect_error(400, "invalid_request");
        assert!(
            body["message"].as_str().unwrap().contains("\"skew\""),
            "{body}"
        );
    }
    let hotp = server
        .api()
        .create_ok(json!({"label": "h", "type": "hotp", "secret": base32_encode(KEY)}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let body = patch_skew(&server, &hotp, json!({"skew": 1}))
        .await
        .expect_error(400, "invalid_request");
    assert!(body["message"].as_str().unwrap().contains("TOTP"), "{body}");
    let kept = server
        .api()
        .get(&format!("/api/v2/totp/secrets/{hotp}"))
        .await
        .expect_ok();
    assert_eq!(
        kept["totp_secret"]["label"], "h",
        "a refused patch changes nothing"
    );
}

async fn a_hundred_parallel_verifications_of_one_code_accept_exactly_one(backend: Backend) {
    let clock = pinned_clock();
    let server = app(backend, &clock).await;
    let id = new_secret(&server, json!({"label": "race"})).await;
    let code = code_at(&clock, 0);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..100 {
        let api = server.api();
        let path = format!("/api/v2/totp/secrets/{id}/verify");
        let code = code.clone();
        tasks.spawn(async move {
            api.request(Method::POST, &path, Body::Json(json!({ "code": code })))
                .await
        });
    }
    let mut accepted = 0;
    while let Some(reply) = tasks.join_next().await {
        let reply = reply.unwrap();
        match reply.status {
            200 if reply.json()["valid"] == true => accepted += 1,
            200 => assert_eq!(reply.json()["valid"], false, "{}", reply.text),
            // Every refused replay counts as a failure, so most get 429.
            429 => {
                reply.expect_error(429, "rate_limited");
            }
            other => panic!("{other}: {}", reply.text),
        }
    }
    assert_eq!(accepted, 1, "exactly one verification accepts the code");
}

async fn a_code_accepted_by_one_node_is_refused_by_another(backend: Backend) {
    let clock = pinned_clock();
    let first = app(backend, &clock).await;
    let second = first.sibling().await;
    let id = new_secret(&first, json!({"label": "nodes"})).await;
    let code = code_at(&clock, 0);
    assert!(valid(&first, &id, &code).await);
    assert!(
        !valid(&second, &id, &code).await,
        "replayed on the other node"
    );
    assert!(!valid(&second, &id, &code_at(&clock, -1)).await);
    let other = new_secret(&first, json!({"label": "nodes 2"})).await;
    assert!(valid(&second, &other, &code_at(&clock, 1)).await);
    assert!(!valid(&first, &other, &code_at(&clock, 1)).await);
}

async fn the_eleventh_failure_within_five_minutes_is_429_on_every_node_until_the_window_passes(
    backend: Backend,
) {
    let clock = pinned_clock();
    let first = app(backend, &clock).await;
    let second = first.sibling().await;
    let id = new_secret(&first, json!({"label": "guess"})).await;
    let wrong = if code_at(&clock, 0) == "000000" {
        "111111"
    } else {
        "000000"
    };
    let wrong_anywhere = (-1..=1).all(|o| code_at(&clock, o) != wrong)
        && (-1..=1).all(|o| code_at(&clock, o + 10) != wrong);
    assert!(
        wrong_anywhere,
        "the guess is wrong at every step the test uses"
    );
    for attempt in 0..10 {
        let node: &dyn Fn() -> crate::harness::Api = if attempt % 2 == 0 {
            &|| first.api()
        } else {
            &|| second.api()
        };
        let reply = node()
            .request(
                Method::POST,
                &format!("/api/v2/totp/secrets/{id}/verify"),
                Body::Json(json!({ "code": wrong })),
            )
            .await;
        assert_eq!(reply.expect_ok()["valid"], false, "attempt {attempt}");
    }
    clock.advance(60_000);
    for (name, reply) in [
        ("first", verify_as(&first, first.key(), &id, wrong).await),
        ("second", verify_as(&second, second.key(), &id, wrong).await),
        (
            "first, right code",
            verify_as(&first, first.key(), &id, &code_at(&clock, 0)).await,
        ),
    ] {
        reply.expect_error(429, "rate_limited");
        let retry = reply
            .headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or_else(|| panic!("{name}: a numeric Retry-After: {:?}", reply.headers));
        assert!((239..=241).contains(&retry), "{name}: Retry-After {retry}");
    }
    // One millisecond before the window passes it still holds; then the
    // right code is accepted again.
    clock.advance(240_000 - 1);
    verify_as(&second, second.key(), &id, &code_at(&clock, 0))
        .await
        .expect_error(429, "rate_limited");
    clock.advance(1);
    assert!(valid(&second, &id, &code_at(&clock, 0)).await);
}

async fn bad_verify_bodies_are_400_and_malformed_codes_are_not_valid(backend: Backend) {
    let clock = pinned_clock();
    let server = app(backend, &clock).await;
    let id = new_secret(&server, json!({"label": "bad"})).await;
    let path = format!("/api/v2/totp/secrets/{id}/verify");
    for body in [
        json!({}),
        json!({"code": null}),
        json!({"code": 123456}),
        json!({"code": ["1"]}),
    ] {
        let reply = server
            .api()
            .request(Method::POST, &path, Body::Json(body.clone()))
            .await;
        reply.expect_error(400, "invalid_request");
        assert!(
            reply.message().contains("\"code\""),
            "{body}: {}",
            reply.text
        );
    }
    let now = code_at(&clock, 0);
    for code in [
        "".to_owned(),
        "12345".to_owned(),
        "1234567".to_owned(),
        "12345a".to_owned(),
        format!("{now}\n\n"),
        format!("{now}\t"),
        format!("\n{now}"),
        "١٢٣٤٥٦".to_owned(),
    ] {
        assert!(!valid(&server, &id, &code).await, "{code:?}");
    }
    let reply = server
        .api()
        .request(
            Method::POST,
            "/api/v2/totp/secrets/00000000-0000-0000-0000-000000000000/verify",
            Body::Json(json!({"code": now})),
        )
        .await;
    reply.expect_error(404, "not_found");
}

async fn only_verifier_admin_and_owner_keys_verify_and_each_verification_is_audited(
    backend: Backend,
) {
    let clock = pinned_clock();
    let server = app(backend, &clock).await;
    let id = new_secret(&server, json!({"label": "roles"})).await;
    let mut keys = Vec::new();
    for role in ["admin", "agent", "verifier"] {
        let created = server
            .api()
            .request(
                Method::POST,
                "/api/v2/keys",
                Body::Json(json!({"name": role, "role": role})),
            )
            .await
            .expect_ok();
        keys.push(ApiKey {
            key_id: created["api_key"]["key_id"].as_str().unwrap().to_owned(),
            secret: created["secret"].as_str().unwrap().to_owned(),
        });
    }
    let (admin, agent, verifier) = (&keys[0], &keys[1], &keys[2]);
    verify_as(&server, agent, &id, "000000")
        .await
        .expect_error(403, "forbidden");
    server
        .api_as(verifier)
        .code(&id)
        .await
        .expect_error(403, "forbidden");
    let code = code_at(&clock, 0);
    assert_eq!(
        verify_as(&server, verifier, &id, &code).await.expect_ok()["valid"],
        true
    );
    assert_eq!(
        verify_as(&server, admin, &id, &code).await.expect_ok()["valid"],
        false
    );
    let mut outcomes = Vec::new();
    for _ in 0..50 {
        let events = server
            .api()
            .get(&format!("/api/v2/audit?action=code.verify&secret_id={id}"))
            .await
            .expect_ok();
        outcomes = events["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["role"].as_str().unwrap_or("").to_owned(),
                    e["outcome"].as_str().unwrap().to_owned(),
                )
            })
            .collect::<Vec<_>>();
        if outcomes.len() == 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    outcomes.sort();
    assert_eq!(
        outcomes,
        [
            ("admin".to_owned(), "invalid".to_owned()),
            ("agent".to_owned(), "denied".to_owned()),
            ("verifier".to_owned(), "ok".to_owned()),
        ]
    );
    let text = server
        .api()
        .get(&format!("/api/v2/audit?secret_id={id}"))
        .await
        .text;
    assert!(!text.contains(&code), "the audit log never holds a code");
}

/// `/openapi.json` documents the verify route, its body and answers, the
/// HOTP code answer and the `type` every secret carries (schemathesis reads
/// the document to fuzz the route).
#[tokio::test]
async fn openapi_documents_verification_hotp_codes_and_the_secret_type() {
    let server = crate::harness::spawn_app(Backend::Sqlite).await;
    let reply = server.get_public("/openapi.json").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let document = reply.json();
    let verify = &document["paths"]["/api/v2/totp/secrets/{id}/verify"]["post"];
    for status in ["200", "400", "401", "403", "404", "429"] {
        assert!(verify["responses"].get(status).is_some(), "verify {status}");
    }
    let schemas = &document["components"]["schemas"];
    assert_eq!(schemas["VerifyRequest"]["required"], json!(["code"]));
    assert!(schemas["VerifyResponse"]["properties"]["valid"].is_object());
    assert!(schemas["HotpCodeResponse"]["properties"]["counter"].is_object());
    for schema in ["TotpSecret", "CreatedTotpSecret"] {
        assert!(
            schemas[schema]["properties"]["type"].is_object(),
            "{schema}: {}",
            schemas[schema]
        );
    }
    for field in ["type", "counter", "skew"] {
        assert!(
            schemas["CreateSecretRequest"]["properties"][field].is_object(),
            "CreateSecretRequest.{field}"
        );
    }
    let code = &document["paths"]["/api/v2/totp/code/{id}"]["get"]["responses"]["200"];
    assert!(code.to_string().contains("CodeAnswer"), "{code}");
    let forms = schemas["CodeAnswer"]["oneOf"].to_string();
    assert!(
        forms.contains("#/components/schemas/CodeResponse")
            && forms.contains("#/components/schemas/HotpCodeResponse"),
        "{forms}"
    );
}
