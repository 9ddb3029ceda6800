//! `/api/v2/totp/secrets`: create, list and delete, the `uri` rules, text
//! round trips, and tenancy.

use serde_json::{Value, json};
use uuid::Uuid;

use crate::harness::{
    Backend, Known, TestServer, assert_code, on_both_backends, random_bytes, spawn_app, unix_ms,
};
use crate::otp::{Alg, base32_decode, base32_encode, parse_rfc3339};

on_both_backends! {
    created_secrets_are_listed_with_their_fields_and_never_their_secret
        => created_secrets_are_listed_with_their_fields_and_never_their_secret_on_sqlite,
           created_secrets_are_listed_with_their_fields_and_never_their_secret_on_postgres;
    a_generated_secret_has_160_bits_and_is_returned_only_once
        => a_generated_secret_has_160_bits_and_is_returned_only_once_on_sqlite,
           a_generated_secret_has_160_bits_and_is_returned_only_once_on_postgres;
    a_deleted_secret_is_gone_for_good
        => a_deleted_secret_is_gone_for_good_on_sqlite,
           a_deleted_secret_is_gone_for_good_on_postgres;
    another_accounts_secret_is_not_found_for_code_and_delete_and_absent_from_its_list
        => another_accounts_secret_is_not_found_for_code_and_delete_and_absent_from_its_list_on_sqlite,
           another_accounts_secret_is_not_found_for_code_and_delete_and_absent_from_its_list_on_postgres;
    unicode_labels_and_issuers_round_trip_exactly
        => unicode_labels_and_issuers_round_trip_exactly_on_sqlite,
           unicode_labels_and_issuers_round_trip_exactly_on_postgres;
    labels_and_issuers_of_256_characters_are_accepted_and_257_refused
        => labels_and_issuers_of_256_characters_are_accepted_and_257_refused_on_sqlite,
           labels_and_issuers_of_256_characters_are_accepted_and_257_refused_on_postgres;
    otpauth_uris_set_label_issuer_and_parameters_as_documented
        => otpauth_uris_set_label_issuer_and_parameters_as_documented_on_sqlite,
           otpauth_uris_set_label_issuer_and_parameters_as_documented_on_postgres;
}

fn id_of(created: &Value) -> String {
    let id = created["id"].as_str().expect("an id").to_owned();
    Uuid::parse_str(&id).unwrap_or_else(|_| panic!("id {id:?} is not a UUID"));
    id
}

async fn created_secrets_are_listed_with_their_fields_and_never_their_secret(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    assert!(
        api.list_ok().await.is_empty(),
        "a new account has no secrets"
    );

    let given = random_bytes(20);
    let uri_secret = random_bytes(32);
    let before = unix_ms();
    let a = api
        .create_ok(json!({
            "label": "alice@example.com",
            "issuer": "Example",
            "secret": base32_encode(&given),
            "algorithm": "SHA256",
            "digits": 8,
            "period": 60,
        }))
        .await;
    // Fields the API does not know are ignored (newer SDKs may send more).
    let b = api
        .create_ok(json!({"label": "generated", "metadata": {"team": "ops"}, "note": 1}))
        .await;
    let c = api
        .create_ok(json!({
            "uri": format!("otpauth://totp/GitHub:octocat?secret={}&issuer=GitHub", base32_encode(&uri_secret))
        }))
        .await;
    let after = unix_ms();

    // The create answer: every field, the secret this once.
    let expected_keys = [
        "id",
        "label",
        "issuer",
        "algorithm",
        "digits",
        "period",
        "created_at",
        "secret",
    ];
    for created in [&a, &b, &c] {
        for key in expected_keys {
            assert!(
                created.get(key).is_some(),
                "create answer lacks {key}: {created}"
            );
        }
        let created_at = created["created_at"]
            .as_str()
            .and_then(parse_rfc3339)
            .unwrap_or_else(|| panic!("created_at is not RFC 3339: {created}"));
        assert!(
            created["created_at"].as_str().unwrap().ends_with('Z'),
            "created_at is UTC: {created}"
        );
        assert!(
            (before - 1000..=after + 1000).contains(&created_at),
            "created_at {created_at} is not the time of the request ({before}..{after})"
        );
    }
    assert_eq!(a["secret"], base32_encode(&given));
    assert_eq!(a["issuer"], "Example");
    assert_eq!(c["secret"], base32_encode(&uri_secret));

    let listed = api.list_ok().await;
    let mut listed_ids: Vec<String> = listed.iter().map(id_of).collect();
    let mut created_ids = vec![id_of(&a), id_of(&b), id_of(&c)];
    listed_ids.sort();
    created_ids.sort();
    assert_eq!(listed_ids, created_ids);
    for item in &listed {
        assert!(
            item.get("secret").is_none(),
            "a listed secret carries its secret"
        );
        let created = [&a, &b, &c]
            .into_iter()
            .find(|s| s["id"] == item["id"])
            .unwrap();
        for key in expected_keys.iter().filter(|k| **k != "secret") {
            assert_eq!(
                item.get(*key),
                created.get(*key),
                "listed {key} differs from the create answer"
            );
        }
    }
    let raw = api.list().await.text;
    for created in [&a, &b, &c] {
        let secret = created["secret"].as_str().unwrap();
        assert!(
            !raw.contains(secret) && !raw.contains(&secret.to_lowercase()),
            "the list answer contains a secret"
        );
    }
}

async fn a_generated_secret_has_160_bits_and_is_returned_only_once(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let one = api
        .create_ok(json!({"label": "generated one", "issuer": "Vault"}))
        .await;
    let two = api
        .create_ok(json!({"label": "generated two", "digits": 8}))
        .await;
    let mut secrets = Vec::new();
    for (created, digits) in [(&one, 6), (&two, 8)] {
        let secret = created["secret"]
            .as_str()
            .unwrap_or_else(|| panic!("a generated secret is returned at creation: {created}"))
            .to_owned();
        assert_eq!(secret.len(), 32, "160 bits are 32 base32 characters");
        let key = base32_decode(&secret)
            .unwrap_or_else(|| panic!("the generated secret is not upper-case base32"));
        assert_eq!(key.len(), 20, "160 bits (RFC 4226 §4 R6)");
        let id = id_of(created);
        let code = assert_code(
            &api,
            &id,
            &Known {
                key,
                alg: Alg::Sha1,
                digits,
                period: 30,
            },
        )
        .await;
        assert!(!code.is_empty());
        // Never again: not in the list, not in a code answer.
        let code_answer = api.code(&id).await.text;
        assert!(
            !code_answer.contains(&secret),
            "a code answer carries the secret"
        );
        secrets.push(secret);
    }
    assert_ne!(secrets[0], secrets[1], "two generated secrets are equal");
    let list = api.list().await;
    list.expect_ok();
    for secret in &secrets {
        assert!(
            !list.text.contains(secret),
            "the list carries a generated secret"
        );
    }
}

async fn a_deleted_secret_is_gone_for_good(backend: Backend) {
    let server = TestServer::start(backend).await;
    let api = server.api();
    let keep = api.create_ok(json!({"label": "keep"})).await;
    let doomed = api.create_ok(json!({"label": "doomed"})).await;
    let (keep, doomed) = (id_of(&keep), id_of(&doomed));
    api.code(&doomed).await.expect_ok();

    let deleted = api.delete(&doomed).await;
    assert_eq!(deleted.expect_ok(), json!({"status": "OK"}));

    api.code(&doomed).await.expect_error(404, "not_found");
    api.delete(&doomed).await.expect_error(404, "not_found");
    assert_eq!(api.listed_ids().await, vec![keep.clone()]);
    api.code(&keep).await.expect_ok();

    // Still gone after a restart (the delete was durable, not cached).
    let mut server = server;
    server.restart();
    let api = server.api();
    api.code(&doomed).await.expect_error(404, "not_found");
    assert_eq!(api.listed_ids().await, vec![keep]);
}

async fn another_accounts_secret_is_not_found_for_code_and_delete_and_absent_from_its_list(
    backend: Backend,
) {
    let server = spawn_app(backend).await;
    let owner = server.api();
    let intruder_key = server.create_key("intruder").await;
    let intruder = server.api_as(&intruder_key);

    let key = random_bytes(20);
    let secret = owner
        .create_ok(json!({"label": "owner's", "secret": base32_encode(&key)}))
        .await;
    let id = id_of(&secret);
    let intruders_own = intruder.create_ok(json!({"label": "intruder's"})).await;

    // For the intruder the owner's secret is exactly like one that does not exist.
    let unknown = Uuid::new_v4().to_string();
    let code_other = intruder.code(&id).await;
    let code_unknown = intruder.code(&unknown).await;
    code_other.expect_error(404, "not_found");
    assert_eq!(
        code_other.text, code_unknown.text,
        "another account's secret must be indistinguishable from a missing one"
    );
    let delete_other = intruder.delete(&id).await;
    let delete_unknown = intruder.delete(&unknown).await;
    delete_other.expect_error(404, "not_found");
    assert_eq!(delete_other.text, delete_unknown.text);
    assert_eq!(intruder.listed_ids().await, vec![id_of(&intruders_own)]);

    // The owner's secret survived the intruder's delete, and the owner does not
    // see the intruder's secret either.
    assert_eq!(owner.listed_ids().await, vec![id.clone()]);
    assert_code(
        &owner,
        &id,
        &Known {
            key,
            alg: Alg::Sha1,
            digits: 6,
            period: 30,
        },
    )
    .await;
    owner
        .code(&id_of(&intruders_own))
        .await
        .expect_error(404, "not_found");
}

async fn unicode_labels_and_issuers_round_trip_exactly(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    // (label, issuer): scripts, emoji with joiners and modifiers, combining
    // marks in decomposed form (must not be normalised), right-to-left text,
    // characters outside the BMP, and URL/JSON/SQL metacharacters.
    let table = [
        ("Алиса@Пример.РФ", "Яндекс"),
        ("İSTANBUL Straße ΣΊΣΥΦΟΣ", "ǅemal DŽ"),
        ("Alice.Smith@Example.COM", "GitHub"),
        ("李雷 <li.lei@例子.中国>", "微信"),
        ("👩‍👩‍👧‍👦 family 👍🏽", "🔐 Vault™"),
        ("e\u{301}le\u{300}ve", "Cafe\u{301}"),
        ("élève", "Café"),
        ("مرحبا@example.com", "שלום"),
        ("𝔘𝔫𝔦𝔠𝔬𝔡𝔢 𝟙𝟚𝟛", "🀄 Mahjong"),
        (
            "a\"b'c\\d/e?f#g%h&i=j+k:l",
            "O'Reilly; DROP TABLE secrets;--",
        ),
        (
            "tab\u{a0}nbsp and\u{200b}zero-width",
            "Ünïcödé GmbH & Co. KG",
        ),
        ("  surrounding spaces  ", " kept as sent "),
    ];
    let mut ids = Vec::new();
    for (label, issuer) in table {
        let created = api
            .create_ok(json!({"label": label, "issuer": issuer}))
            .await;
        assert_eq!(
            created["label"].as_str(),
            Some(label),
            "create answer label"
        );
        assert_eq!(
            created["issuer"].as_str(),
            Some(issuer),
            "create answer issuer"
        );
        ids.push((id_of(&created), label, issuer));
    }
    // Also through a URI, percent-encoded UTF-8.
    let created = api
        .create_ok(json!({
            "uri": format!(
                "otpauth://totp/%C3%9Cnic%C3%B6de%20AG%3A%E6%9D%8E%E9%9B%B7%F0%9F%94%90?secret={}",
                base32_encode(&random_bytes(20))
            )
        }))
        .await;
    assert_eq!(created["label"], "李雷🔐");
    assert_eq!(created["issuer"], "Ünicöde AG");
    ids.push((id_of(&created), "李雷🔐", "Ünicöde AG"));

    let listed = api.list_ok().await;
    assert_eq!(listed.len(), ids.len());
    for (id, label, issuer) in ids {
        let item = listed
            .iter()
            .find(|s| s["id"] == id.as_str())
            .unwrap_or_else(|| panic!("{label:?} is not listed"));
        assert_eq!(item["label"].as_str(), Some(label), "listed label");
        assert_eq!(item["issuer"].as_str(), Some(issuer), "listed issuer");
    }
}

async fn labels_and_issuers_of_256_characters_are_accepted_and_257_refused(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    // Characters, not bytes: "é" is two bytes in UTF-8, "🔐" four.
    for unit in ["a", "é", "🔐"] {
        let longest = unit.repeat(256);
        let created = api
            .create_ok(json!({"label": longest, "issuer": longest}))
            .await;
        assert_eq!(created["label"].as_str(), Some(longest.as_str()));
        assert_eq!(created["issuer"].as_str(), Some(longest.as_str()));
        let too_long = unit.repeat(257);
        let reply = api.create(json!({"label": too_long})).await;
        reply.expect_error(400, "invalid_request");
        assert!(reply.message().contains("label"), "{}", reply.text);
        let reply = api
            .create(json!({"label": "fine", "issuer": too_long}))
            .await;
        reply.expect_error(400, "invalid_request");
        assert!(reply.message().contains("issuer"), "{}", reply.text);
    }
    assert_eq!(
        api.list_ok().await.len(),
        3,
        "only the valid ones were stored"
    );
}

/// One row of the `uri` rules (DESIGN §1).
struct UriCase {
    what: &'static str,
    /// The URI with `{S}` where the secret goes.
    uri: &'static str,
    /// Other fields sent beside the URI.
    beside: Value,
    label: &'static str,
    issuer: Option<&'static str>,
    alg: Alg,
    digits: u32,
    period: u64,
}

fn uri_cases() -> Vec<UriCase> {
    let row = |what, uri, label, issuer| UriCase {
        what,
        uri,
        beside: json!({}),
        label,
        issuer,
        alg: Alg::Sha1,
        digits: 6,
        period: 30,
    };
    vec![
        row(
            "issuer parameter and label prefix agree",
            "otpauth://totp/ACME%20Co:John.Doe@Email.com?secret={S}&issuer=ACME%20Co",
            "John.Doe@Email.com",
            Some("ACME Co"),
        ),
        row(
            "the issuer parameter wins over the label prefix",
            "otpauth://totp/Old%20Name:alice?secret={S}&issuer=New%20Name",
            "alice",
            Some("New Name"),
        ),
        row(
            "the label prefix gives the issuer when there is no parameter",
            "otpauth://totp/GitHub:octocat?secret={S}",
            "octocat",
            Some("GitHub"),
        ),
        row(
            "%3A separates issuer and account",
            "otpauth://totp/GitHub%3Aoctocat?secret={S}",
            "octocat",
            Some("GitHub"),
        ),
        row(
            "%3A followed by an encoded space",
            "otpauth://totp/Example%3A%20bob@example.com?secret={S}&issuer=Example",
            "bob@example.com",
            Some("Example"),
        ),
        row(
            "no issuer anywhere",
            "otpauth://totp/alice@example.com?secret={S}",
            "alice@example.com",
            None,
        ),
        row(
            "issuer parameter only",
            "otpauth://totp/alice?secret={S}&issuer=Example",
            "alice",
            Some("Example"),
        ),
        row(
            "the account is percent-decoded",
            "otpauth://totp/Shop:bob%2Bwork%40example.com?secret={S}",
            "bob+work@example.com",
            Some("Shop"),
        ),
        UriCase {
            beside: json!({"label": "bob"}),
            ..row(
                "a label beside a URI that has one is ignored",
                "otpauth://totp/Svc:alice?secret={S}",
                "alice",
                Some("Svc"),
            )
        },
        UriCase {
            beside: json!({"label": "bob"}),
            ..row(
                "a label beside a URI without one is used",
                "otpauth://totp/?secret={S}&issuer=Svc",
                "bob",
                Some("Svc"),
            )
        },
        UriCase {
            beside: json!({"label": "carol"}),
            ..row(
                "a label beside a URI with only an issuer prefix is used",
                "otpauth://totp/Svc:?secret={S}",
                "carol",
                Some("Svc"),
            )
        },
        UriCase {
            alg: Alg::Sha512,
            digits: 8,
            period: 60,
            ..row(
                "algorithm, digits and period come from the URI",
                "otpauth://totp/X:y?secret={S}&algorithm=SHA512&digits=8&period=60",
                "y",
                Some("X"),
            )
        },
        UriCase {
            alg: Alg::Sha256,
            digits: 8,
            period: 15,
            ..row(
                "SHA256, 8 digits, 15 seconds",
                "otpauth://totp/X:z?secret={S}&algorithm=SHA256&digits=8&period=15&issuer=X",
                "z",
                Some("X"),
            )
        },
        UriCase {
            beside: json!({"algorithm": "SHA512", "digits": 8, "period": 60}),
            ..row(
                "the URI overrides parameters sent beside it",
                "otpauth://totp/X:w?secret={S}",
                "w",
                Some("X"),
            )
        },
    ]
}

async fn otpauth_uris_set_label_issuer_and_parameters_as_documented(backend: Backend) {
    let server = spawn_app(backend).await;
    let api = server.api();
    let mut failures = Vec::new();
    for case in uri_cases() {
        let key = random_bytes(case.alg.natural_key_len());
        let mut body = case.beside.clone();
        body["uri"] = json!(case.uri.replace("{S}", &base32_encode(&key)));
        let reply = api.create(body).await;
        if reply.status != 200 {
            failures.push(format!(
                "{}: HTTP {} {}",
                case.what, reply.status, reply.text
            ));
            continue;
        }
        let created = reply.expect_ok()["totp_secret"].clone();
        let got = (
            created["label"].as_str(),
            created["issuer"].as_str(),
            created["algorithm"].as_str(),
            created["digits"].as_u64(),
            created["period"].as_u64(),
        );
        let want = (
            Some(case.label),
            case.issuer,
            Some(case.alg.wire_name()),
            Some(u64::from(case.digits)),
            Some(case.period),
        );
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", case.what));
            continue;
        }
        assert_code(
            &api,
            &id_of(&created),
            &Known {
                key,
                alg: case.alg,
                digits: case.digits,
                period: case.period,
            },
        )
        .await;
    }
    assert!(
        failures.is_empty(),
        "URI rules broken:\n{}",
        failures.join("\n")
    );
}
