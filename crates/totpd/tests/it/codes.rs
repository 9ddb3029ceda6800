//! `GET /api/v2/totp/code/{id}`: the codes themselves, checked against the
//! independent implementation at the instant of the request.

use serde_json::json;

use crate::harness::{
    Backend, Known, assert_code, check_code_body, code_path, on_both_backends, random_bytes,
    spawn_app, unix_ms,
};
use crate::otp::{Alg, base32_encode};

on_both_backends! {
    codes_match_an_independent_implementation_for_every_algorithm_digits_and_period
        => codes_match_an_independent_implementation_for_every_algorithm_digits_and_period_on_sqlite,
           codes_match_an_independent_implementation_for_every_algorithm_digits_and_period_on_postgres;
    defaults_are_sha1_six_digits_and_thirty_seconds
        => defaults_are_sha1_six_digits_and_thirty_seconds_on_sqlite,
           defaults_are_sha1_six_digits_and_thirty_seconds_on_postgres;
    base32_secrets_are_accepted_the_way_services_hand_them_out
        => base32_secrets_are_accepted_the_way_services_hand_them_out_on_sqlite,
           base32_secrets_are_accepted_the_way_services_hand_them_out_on_postgres;
    no_query_parameter_makes_the_code_endpoint_answer_for_another_time
        => no_query_parameter_makes_the_code_endpoint_answer_for_another_time_on_sqlite,
           no_query_parameter_makes_the_code_endpoint_answer_for_another_time_on_postgres;
}

async fn codes_match_an_independent_implementation_for_every_algorithm_digits_and_period(
    backend: Backend,
) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let mut enrolled = Vec::new();
    for alg in Alg::ALL {
        for digits in [6u32, 8] {
            for period in [15u64, 30, 60] {
                let key = random_bytes(alg.natural_key_len());
                let created = api
                    .create_ok(json!({
                        "label": format!("{}-{digits}-{period}", alg.wire_name()),
                        "secret": base32_encode(&key),
                        "algorithm": alg.wire_name(),
                        "digits": digits,
                        "period": period,
                    }))
                    .await;
                assert_eq!(created["algorithm"], alg.wire_name(), "{created}");
                assert_eq!(created["digits"], digits, "{created}");
                assert_eq!(created["period"], period, "{created}");
                let id = created["id"].as_str().expect("id").to_owned();
                enrolled.push((
                    id,
                    Known {
                        key,
                        alg,
                        digits,
                        period,
                    },
                ));
            }
        }
    }
    assert_eq!(enrolled.len(), 18);
    for (id, known) in &enrolled {
        assert_code(&api, id, known).await;
    }
}

async fn defaults_are_sha1_six_digits_and_thirty_seconds(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let key = random_bytes(20);
    let created = api
        .create_ok(json!({"label": "defaults", "secret": base32_encode(&key)}))
        .await;
    assert_eq!(created["algorithm"], "SHA1", "{created}");
    assert_eq!(created["digits"], 6, "{created}");
    assert_eq!(created["period"], 30, "{created}");
    assert!(created["issuer"].is_null(), "no issuer given: {created}");
    let listed = api.list_ok().await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["algorithm"], "SHA1");
    assert_eq!(listed[0]["digits"], 6);
    assert_eq!(listed[0]["period"], 30);
    let id = created["id"].as_str().expect("id");
    let known = Known {
        key,
        alg: Alg::Sha1,
        digits: 6,
        period: 30,
    };
    assert_code(&api, id, &known).await;
}

async fn base32_secrets_are_accepted_the_way_services_hand_them_out(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    // 11 bytes: 18 base32 characters, so the padded form ends in "======".
    // 10 bytes: the 80-bit secrets GitHub, Discord and Microsoft issue.
    for len in [11usize, 10, 20] {
        let key = random_bytes(len);
        let canonical = base32_encode(&key);
        let padding = "=".repeat((8 - canonical.len() % 8) % 8);
        let grouped: Vec<String> = canonical
            .as_bytes()
            .chunks(4)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let variants = [
            ("canonical", canonical.clone()),
            ("lower case", canonical.to_lowercase()),
            ("spaces", grouped.join(" ").to_lowercase()),
            ("hyphens", grouped.join("-")),
            ("padded", format!("{canonical}{padding}")),
            (
                "padded lower case",
                format!("{canonical}{padding}").to_lowercase(),
            ),
        ];
        let known = Known {
            key: key.clone(),
            alg: Alg::Sha1,
            digits: 6,
            period: 30,
        };
        for (what, secret) in variants {
            let created = api
                .create_ok(json!({"label": format!("{len} bytes, {what}"), "secret": secret}))
                .await;
            assert_eq!(
                created["secret"], canonical,
                "{len}-byte secret given as {what}: the answer carries the canonical form"
            );
            assert_code(&api, created["id"].as_str().unwrap(), &known).await;
        }
        // Padding percent-encoded, as some QR codes carry it.
        let encoded_padding = "%3D".repeat(padding.len());
        let created = api
            .create_ok(json!({
                "uri": format!("otpauth://totp/Example:alice?secret={canonical}{encoded_padding}&issuer=Example")
            }))
            .await;
        assert_eq!(created["secret"], canonical, "{len} bytes, %3D padding");
        assert_code(&api, created["id"].as_str().unwrap(), &known).await;
    }
}

/// DESIGN §2's security rule: no endpoint returns a code for an arbitrary
/// time, so a leaked key cannot harvest future codes.
async fn no_query_parameter_makes_the_code_endpoint_answer_for_another_time(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let key = random_bytes(20);
    let created = api
        .create_ok(json!({"label": "now only", "secret": base32_encode(&key), "digits": 8}))
        .await;
    let id = created["id"].as_str().unwrap();
    let known = Known {
        key,
        alg: Alg::Sha1,
        digits: 8,
        period: 30,
    };
    for query in [
        "time=0",
        "t=1111111109",
        "at=2000000000",
        "timestamp=0&now=0",
        "counter=0",
        "offset=30",
        "time=2000000000&period=1",
    ] {
        let before = unix_ms();
        let reply = api.get(&format!("{}?{query}", code_path(id))).await;
        let after = unix_ms();
        // Refusing the parameter is fine too; answering for another time is not.
        if reply.status == 200 {
            check_code_body(&reply.expect_ok(), &known, before, after);
        } else {
            reply.expect_error(400, "invalid_request");
        }
    }
}
