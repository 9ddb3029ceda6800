//! `POST /api/v2/totp/secrets/import` (DESIGN §2.5) end to end: every
//! fixture of `totpd-import` (written by independent Python tools, with
//! codes computed by Python's `hmac` at fixed unix times) imported through
//! the API, its secrets read back with their parameters and their codes
//! read at those times through a `ManualClock`; format detection;
//! duplicates; dry runs; atomic imports; refused input; roles and the
//! audit log; the raw body form. No answer may hold a secret.

use std::sync::Arc;
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::Method;
use serde_json::{Value, json};
use totpd_api::Limits;
use totpd_vault::{ManualClock, UnixTime};

use crate::harness::{
    Api, ApiKey, Backend, Body, Known, Reply, Serves, assert_code, on_both_backends, raw_exchange,
    secret_path, spawn_app, spawn_app_with_clock,
};
use crate::otp::{Alg, base32_encode, hex, hotp};

on_both_backends! {
    aegis_exports_import_every_entry_with_its_parameters_and_codes
        => aegis_exports_import_every_entry_with_its_parameters_and_codes_on_sqlite,
           aegis_exports_import_every_entry_with_its_parameters_and_codes_on_postgres;
    twofas_exports_import_every_entry_with_its_parameters_and_codes
        => twofas_exports_import_every_entry_with_its_parameters_and_codes_on_sqlite,
           twofas_exports_import_every_entry_with_its_parameters_and_codes_on_postgres;
    andotp_backups_import_every_entry_with_its_parameters_and_codes
        => andotp_backups_import_every_entry_with_its_parameters_and_codes_on_sqlite,
           andotp_backups_import_every_entry_with_its_parameters_and_codes_on_postgres;
    bitwarden_plain_and_light_pbkdf2_exports_import_every_entry_with_its_parameters_and_codes
        => bitwarden_plain_and_light_pbkdf2_exports_import_every_entry_with_its_parameters_and_codes_on_sqlite,
           bitwarden_plain_and_light_pbkdf2_exports_import_every_entry_with_its_parameters_and_codes_on_postgres;
    a_1password_export_imports_every_entry_with_its_parameters_and_codes
        => a_1password_export_imports_every_entry_with_its_parameters_and_codes_on_sqlite,
           a_1password_export_imports_every_entry_with_its_parameters_and_codes_on_postgres;
    an_ente_plain_export_imports_every_entry_with_its_parameters_and_codes
        => an_ente_plain_export_imports_every_entry_with_its_parameters_and_codes_on_sqlite,
           an_ente_plain_export_imports_every_entry_with_its_parameters_and_codes_on_postgres;
    proton_exports_import_every_entry_with_its_parameters_and_codes
        => proton_exports_import_every_entry_with_its_parameters_and_codes_on_sqlite,
           proton_exports_import_every_entry_with_its_parameters_and_codes_on_postgres;
    every_format_is_detected_when_the_request_names_none
        => every_format_is_detected_when_the_request_names_none_on_sqlite,
           every_format_is_detected_when_the_request_names_none_on_postgres;
    importing_the_same_file_twice_stores_nothing_the_second_time
        => importing_the_same_file_twice_stores_nothing_the_second_time_on_sqlite,
           importing_the_same_file_twice_stores_nothing_the_second_time_on_postgres;
    a_secret_created_through_the_api_is_a_duplicate_on_import
        => a_secret_created_through_the_api_is_a_duplicate_on_import_on_sqlite,
           a_secret_created_through_the_api_is_a_duplicate_on_import_on_postgres;
    two_entries_with_the_same_key_bytes_in_one_file_store_one_secret
        => two_entries_with_the_same_key_bytes_in_one_file_store_one_secret_on_sqlite,
           two_entries_with_the_same_key_bytes_in_one_file_store_one_secret_on_postgres;
    a_dry_run_stores_nothing_and_answers_what_an_import_would_do
        => a_dry_run_stores_nothing_and_answers_what_an_import_would_do_on_sqlite,
           a_dry_run_stores_nothing_and_answers_what_an_import_would_do_on_postgres;
    an_atomic_import_with_one_bad_entry_stores_nothing_and_a_plain_one_stores_the_rest
        => an_atomic_import_with_one_bad_entry_stores_nothing_and_a_plain_one_stores_the_rest_on_sqlite,
           an_atomic_import_with_one_bad_entry_stores_nothing_and_a_plain_one_stores_the_rest_on_postgres;
    requests_the_import_cannot_read_are_400_with_a_json_error_and_store_nothing
        => requests_the_import_cannot_read_are_400_with_a_json_error_and_store_nothing_on_sqlite,
           requests_the_import_cannot_read_are_400_with_a_json_error_and_store_nothing_on_postgres;
    a_text_file_with_no_uri_is_refused_whether_its_format_is_detected_or_named
        => a_text_file_with_no_uri_is_refused_whether_its_format_is_detected_or_named_on_sqlite,
           a_text_file_with_no_uri_is_refused_whether_its_format_is_detected_or_named_on_postgres;
    encrypted_exports_without_their_password_are_refused_and_store_nothing
        => encrypted_exports_without_their_password_are_refused_and_store_nothing_on_sqlite,
           encrypted_exports_without_their_password_are_refused_and_store_nothing_on_postgres;
    a_body_over_ten_mebibytes_is_413_and_one_of_another_type_415
        => a_body_over_ten_mebibytes_is_413_and_one_of_another_type_415_on_sqlite,
           a_body_over_ten_mebibytes_is_413_and_one_of_another_type_415_on_postgres;
    an_aegis_file_claiming_a_huge_scrypt_cost_is_refused_at_once
        => an_aegis_file_claiming_a_huge_scrypt_cost_is_refused_at_once_on_sqlite,
           an_aegis_file_claiming_a_huge_scrypt_cost_is_refused_at_once_on_postgres;
    agents_may_import_verifiers_and_scoped_keys_may_not_and_imports_are_audited
        => agents_may_import_verifiers_and_scoped_keys_may_not_and_imports_are_audited_on_sqlite,
           agents_may_import_verifiers_and_scoped_keys_may_not_and_imports_are_audited_on_postgres;
    a_raw_text_body_with_format_otpauth_imports_the_list
        => a_raw_text_body_with_format_otpauth_imports_the_list_on_sqlite,
           a_raw_text_body_with_format_otpauth_imports_the_list_on_postgres;
}

const IMPORT: &str = "/api/v2/totp/secrets/import";

/// One file of `crates/totpd-import/tests/data`, and what importing it
/// must give.
struct Fixture {
    /// Its path under `tests/data`, for failure messages.
    name: &'static str,
    /// Its format's name in the API.
    format: &'static str,
    bytes: &'static [u8],
    /// Sent with `encoding: base64` (zip archives, andOTP's `.json.aes`).
    binary: bool,
    /// From the fixture's generator script.
    password: Option<&'static str>,
    /// The generator's `.expected.json`.
    expected: &'static str,
    /// `(entry, earlier entry)`: entries whose key bytes an earlier entry
    /// of the same file has (the generator scripts give the HOTP entry the
    /// first entry's RFC 6238 seed), so the import answers `duplicate`.
    same_key: &'static [(usize, usize)],
}

macro_rules! data {
    ($path:literal) => {
        include_bytes!(concat!("../../../totpd-import/tests/data/", $path))
    };
}

macro_rules! expected {
    ($path:literal) => {
        include_str!(concat!("../../../totpd-import/tests/data/", $path))
    };
}

// Passwords: the PASSWORD of each `make_<format>.py`.
const AEGIS_PASSWORD: &str = "aegis test password ✓";
const TWOFAS_PASSWORD: &str = "2fas test password ✓";
const ANDOTP_PASSWORD: &str = "andotp test password ✓";
const BITWARDEN_PASSWORD: &str = "correct horse battery staple";
const ENTE_PASSWORD: &str = "ente export pass";
const PROTON_PASSWORD: &str = "Proton-export-pässword";

const AEGIS_PLAIN: Fixture = Fixture {
    name: "aegis/aegis_plain.json",
    format: "aegis",
    bytes: data!("aegis/aegis_plain.json"),
    binary: false,
    password: None,
    expected: expected!("aegis/aegis.expected.json"),
    same_key: &[(3, 0)],
};
const AEGIS_ENCRYPTED: Fixture = Fixture {
    name: "aegis/aegis_encrypted.json",
    bytes: data!("aegis/aegis_encrypted.json"),
    password: Some(AEGIS_PASSWORD),
    ..AEGIS_PLAIN
};
const TWOFAS_PLAIN: Fixture = Fixture {
    name: "2fas/2fas_plain.2fas",
    format: "2fas",
    bytes: data!("2fas/2fas_plain.2fas"),
    binary: false,
    password: None,
    expected: expected!("2fas/2fas.expected.json"),
    same_key: &[(3, 0)],
};
const TWOFAS_ENCRYPTED: Fixture = Fixture {
    name: "2fas/2fas_encrypted.2fas",
    bytes: data!("2fas/2fas_encrypted.2fas"),
    password: Some(TWOFAS_PASSWORD),
    ..TWOFAS_PLAIN
};
const ANDOTP_PLAIN: Fixture = Fixture {
    name: "andotp/andotp_plain.json",
    format: "andotp",
    bytes: data!("andotp/andotp_plain.json"),
    binary: false,
    password: None,
    expected: expected!("andotp/andotp.expected.json"),
    same_key: &[(3, 0)],
};
const ANDOTP_ENCRYPTED: Fixture = Fixture {
    name: "andotp/andotp_encrypted.json.aes",
    bytes: data!("andotp/andotp_encrypted.json.aes"),
    binary: true,
    password: Some(ANDOTP_PASSWORD),
    ..ANDOTP_PLAIN
};
const BITWARDEN_PLAIN: Fixture = Fixture {
    name: "bitwarden/plain.json",
    format: "bitwarden",
    bytes: data!("bitwarden/plain.json"),
    binary: false,
    password: None,
    expected: expected!("bitwarden/plain.expected.json"),
    same_key: &[],
};
/// 5,000 PBKDF2 iterations.
const BITWARDEN_PBKDF2_MIN: Fixture = Fixture {
    name: "bitwarden/pbkdf2_min.json",
    bytes: data!("bitwarden/pbkdf2_min.json"),
    password: Some(BITWARDEN_PASSWORD),
    expected: expected!("bitwarden/pbkdf2_min.expected.json"),
    ..BITWARDEN_PLAIN
};
/// Bitwarden's default 600,000 PBKDF2 iterations.
const BITWARDEN_PBKDF2: Fixture = Fixture {
    name: "bitwarden/pbkdf2.json",
    bytes: data!("bitwarden/pbkdf2.json"),
    password: Some(BITWARDEN_PASSWORD),
    expected: expected!("bitwarden/pbkdf2.expected.json"),
    ..BITWARDEN_PLAIN
};
/// Argon2id, 64 MiB, 3 passes.
const BITWARDEN_ARGON2ID: Fixture = Fixture {
    name: "bitwarden/argon2id.json",
    bytes: data!("bitwarden/argon2id.json"),
    password: Some(BITWARDEN_PASSWORD),
    expected: expected!("bitwarden/argon2id.expected.json"),
    ..BITWARDEN_PLAIN
};
const ONEPUX: Fixture = Fixture {
    name: "onepux/export.1pux",
    format: "1pux",
    bytes: data!("onepux/export.1pux"),
    binary: true,
    password: None,
    expected: expected!("onepux/export.expected.json"),
    same_key: &[],
};
const ENTE_PLAIN: Fixture = Fixture {
    name: "ente/plain.txt",
    format: "ente",
    bytes: data!("ente/plain.txt"),
    binary: false,
    password: None,
    expected: expected!("ente/plain.expected.json"),
    same_key: &[(2, 0)],
};
/// libsodium Argon2id, 64 MiB.
const ENTE_ENCRYPTED: Fixture = Fixture {
    name: "ente/encrypted.json",
    bytes: data!("ente/encrypted.json"),
    password: Some(ENTE_PASSWORD),
    expected: expected!("ente/encrypted.expected.json"),
    ..ENTE_PLAIN
};
const PROTON_PLAIN: Fixture = Fixture {
    name: "proton/plain.json",
    format: "proton",
    bytes: data!("proton/plain.json"),
    binary: false,
    password: None,
    expected: expected!("proton/plain.expected.json"),
    same_key: &[],
};
/// Argon2id, 19 MiB, 2 passes.
const PROTON_ENCRYPTED: Fixture = Fixture {
    name: "proton/encrypted.json",
    bytes: data!("proton/encrypted.json"),
    password: Some(PROTON_PASSWORD),
    expected: expected!("proton/encrypted.expected.json"),
    ..PROTON_PLAIN
};

/// Keys of the otpauth lists written here.
const KEY_A: &[u8] = b"import test key A...";
const KEY_B: &[u8] = b"import test key B, SHA512 sized?";
const KEY_C: &[u8] = b"import test key C...";
const KEY_D: &[u8] = b"import test key D...";

/// Every key an import here reads: the fixtures' (from the generator
/// scripts and `otp_reference.py`) and the lists'. No answer may hold one.
const SECRETS: [&[u8]; 10] = [
    b"12345678901234567890",
    b"12345678901234567890123456789012",
    b"1234567890123456789012345678901234567890123456789012345678901234",
    b"Hello!\xde\xad\xbe\xef",
    b"steam test secret!!!",
    b"yandex test secret 1",
    KEY_A,
    KEY_B,
    KEY_C,
    KEY_D,
];

/// Panics if `text` holds any of [`SECRETS`] in base32 (either case), hex
/// or base64.
fn assert_no_secret(text: &str, context: &str) {
    for key in SECRETS {
        let b32 = base32_encode(key);
        for form in [
            b32.clone(),
            b32.to_lowercase(),
            hex(key),
            STANDARD.encode(key),
        ] {
            assert!(
                !text.contains(&form),
                "{context}: the answer holds a secret ({form}): {text}"
            );
        }
    }
}

/// `POST /import` in the JSON form; the answer must hold no secret.
async fn import(api: &Api, body: Value) -> Reply {
    let reply = api.request(Method::POST, IMPORT, Body::Json(body)).await;
    assert_no_secret(&reply.text, "import");
    reply
}

/// `POST /import?query` with the raw file as the body.
async fn import_raw(
    api: &Api,
    query: &str,
    content_type: &'static str,
    bytes: impl Into<Vec<u8>>,
) -> Reply {
    let path = if query.is_empty() {
        IMPORT.to_owned()
    } else {
        format!("{IMPORT}?{query}")
    };
    let reply = api
        .request(
            Method::POST,
            &path,
            Body::Raw {
                content_type: Some(content_type),
                bytes: bytes.into(),
            },
        )
        .await;
    assert_no_secret(&reply.text, "raw import");
    reply
}

/// The JSON form of `fixture`, with `format` if given and its password.
fn body_of(fixture: &Fixture, format: Option<&str>) -> Value {
    let mut body = if fixture.binary {
        json!({"data": STANDARD.encode(fixture.bytes), "encoding": "base64"})
    } else {
        json!({"data": std::str::from_utf8(fixture.bytes).unwrap()})
    };
    if let Some(format) = format {
        body["format"] = json!(format);
    }
    if let Some(password) = fixture.password {
        body["password"] = json!(password);
    }
    body
}

fn expected_entries(fixture: &Fixture) -> Vec<Value> {
    serde_json::from_str::<Value>(fixture.expected)
        .unwrap()
        .as_array()
        .unwrap_or_else(|| panic!("{}: the expected JSON is an array", fixture.name))
        .clone()
}

fn results(answer: &Value) -> &Vec<Value> {
    answer["results"]
        .as_array()
        .unwrap_or_else(|| panic!("no results array in {answer}"))
}

fn outcomes(answer: &Value) -> Vec<&str> {
    results(answer)
        .iter()
        .map(|r| r["outcome"].as_str().unwrap())
        .collect()
}

/// Checks an import answer of `fixture` entry by entry against its
/// expected JSON; `stored`: whether created entries were stored (not a dry
/// run). Returns each entry's id.
fn check_results(answer: &Value, fixture: &Fixture, stored: bool) -> Vec<Option<String>> {
    let name = fixture.name;
    let expected = expected_entries(fixture);
    let results = results(answer);
    assert_eq!(
        results.len(),
        expected.len(),
        "{name}: one result per entry: {answer}"
    );
    assert_eq!(answer["dry_run"], !stored, "{name}: {answer}");
    let mut ids: Vec<Option<String>> = Vec::new();
    let mut counts = [0usize; 3];
    for (index, (result, want)) in results.iter().zip(&expected).enumerate() {
        let at = format!("{name} entry {index}: {result}");
        assert_eq!(result["index"], index, "{at}");
        assert_eq!(result["label"], want["label"], "{at}: label");
        assert_eq!(result["issuer"], want["issuer"], "{at}: issuer");
        let earlier = fixture
            .same_key
            .iter()
            .find(|(entry, _)| *entry == index)
            .map(|(_, earlier)| *earlier);
        let id = result["id"].as_str().map(str::to_owned);
        if want["invalid"] == true {
            counts[2] += 1;
            assert_eq!(result["outcome"], "invalid", "{at}");
            assert!(id.is_none(), "{at}: an invalid entry has no id");
            let message = result["message"].as_str().unwrap_or_default();
            assert!(!message.trim().is_empty(), "{at}: a reason");
        } else if let Some(earlier) = earlier {
            counts[1] += 1;
            assert_eq!(result["outcome"], "duplicate", "{at}");
            assert_eq!(id, ids[earlier], "{at}: the earlier entry's id");
            assert!(result["message"].is_null(), "{at}");
        } else {
            counts[0] += 1;
            assert_eq!(result["outcome"], "created", "{at}");
            assert!(result["message"].is_null(), "{at}");
            match &id {
                Some(id) if stored => {
                    uuid::Uuid::parse_str(id).unwrap_or_else(|_| panic!("{at}: a UUID"));
                }
                None if !stored => {}
                _ => panic!("{at}: id (null in a dry run only)"),
            }
        }
        ids.push(id);
    }
    assert_eq!(answer["created"], counts[0], "{name}: {answer}");
    assert_eq!(answer["duplicates"], counts[1], "{name}: {answer}");
    assert_eq!(answer["invalid"], counts[2], "{name}: {answer}");
    ids
}

/// Reads back every secret `fixture`'s import created: its parameters, and
/// its codes at the expected JSON's times (set on `clock`) or counters.
async fn check_stored(api: &Api, clock: &ManualClock, fixture: &Fixture, ids: &[Option<String>]) {
    let name = fixture.name;
    for (index, want) in expected_entries(fixture).iter().enumerate() {
        if want["invalid"] == true || fixture.same_key.iter().any(|(e, _)| *e == index) {
            continue;
        }
        let id = ids[index].as_deref().unwrap();
        let at = format!("{name} entry {index}");
        let reply = api.get(&secret_path(id)).await;
        assert_no_secret(&reply.text, &at);
        let shown = reply.expect_ok()["totp_secret"].clone();
        assert_eq!(shown["id"], id, "{at}: {shown}");
        assert_eq!(shown["label"], want["label"], "{at}: {shown}");
        assert_eq!(shown["issuer"], want["issuer"], "{at}: {shown}");
        assert_eq!(shown["type"], want["type"], "{at}: {shown}");
        assert_eq!(shown["algorithm"], want["algorithm"], "{at}: {shown}");
        assert_eq!(shown["digits"], want["digits"], "{at}: {shown}");
        let codes = want["codes"].as_object().unwrap();
        let mut codes: Vec<(u64, &str)> = codes
            .iter()
            .map(|(at, code)| (at.parse().unwrap(), code.as_str().unwrap()))
            .collect();
        codes.sort_unstable();
        assert!(!codes.is_empty(), "{at}: codes to compare");
        if want["type"] == "hotp" {
            assert_eq!(shown["counter"], want["counter"], "{at}: {shown}");
            for (counter, code) in codes {
                let answer = api.code(id).await.expect_ok();
                assert_eq!(answer["counter"], counter, "{at}: {answer}");
                assert_eq!(answer["code"], code, "{at}: counter {counter}: {answer}");
            }
        } else {
            assert_eq!(shown["period"], want["period"], "{at}: {shown}");
            let period = want["period"].as_u64().unwrap();
            for (time, code) in codes {
                clock.set(UnixTime(i64::try_from(time).unwrap() * 1000));
                let answer = api.code(id).await.expect_ok();
                assert_eq!(answer["code"], code, "{at}: code at {time}: {answer}");
                assert_eq!(
                    answer["expires_in"],
                    period - time % period,
                    "{at}: at {time}: {answer}"
                );
            }
        }
    }
}

/// Imports `fixture` into a fresh app (whose clock the test sets) with its
/// format named, checks every result, the list, and every created
/// secret's parameters and codes.
async fn imports_as_expected(backend: Backend, fixture: &Fixture) {
    let clock = Arc::new(ManualClock::new(UnixTime(59_000)));
    let app = spawn_app_with_clock(backend, Limits::default(), Arc::clone(&clock) as _).await;
    let api = app.api();
    let reply = import(&api, body_of(fixture, Some(fixture.format))).await;
    assert_eq!(reply.status, 200, "{}: {}", fixture.name, reply.text);
    let answer = reply.expect_ok();
    let ids = check_results(&answer, fixture, true);
    let mut listed = api.listed_ids().await;
    let mut created: Vec<String> = results(&answer)
        .iter()
        .filter(|r| r["outcome"] == "created")
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    listed.sort();
    created.sort();
    assert_eq!(
        listed, created,
        "{}: the list is what was created",
        fixture.name
    );
    check_stored(&api, &clock, fixture, &ids).await;
}

async fn aegis_exports_import_every_entry_with_its_parameters_and_codes(backend: Backend) {
    imports_as_expected(backend, &AEGIS_PLAIN).await;
    imports_as_expected(backend, &AEGIS_ENCRYPTED).await;
}

async fn twofas_exports_import_every_entry_with_its_parameters_and_codes(backend: Backend) {
    imports_as_expected(backend, &TWOFAS_PLAIN).await;
    imports_as_expected(backend, &TWOFAS_ENCRYPTED).await;
}

async fn andotp_backups_import_every_entry_with_its_parameters_and_codes(backend: Backend) {
    imports_as_expected(backend, &ANDOTP_PLAIN).await;
    imports_as_expected(backend, &ANDOTP_ENCRYPTED).await;
}

async fn bitwarden_plain_and_light_pbkdf2_exports_import_every_entry_with_its_parameters_and_codes(
    backend: Backend,
) {
    imports_as_expected(backend, &BITWARDEN_PLAIN).await;
    imports_as_expected(backend, &BITWARDEN_PBKDF2_MIN).await;
}

async fn a_1password_export_imports_every_entry_with_its_parameters_and_codes(backend: Backend) {
    imports_as_expected(backend, &ONEPUX).await;
}

async fn an_ente_plain_export_imports_every_entry_with_its_parameters_and_codes(backend: Backend) {
    imports_as_expected(backend, &ENTE_PLAIN).await;
}

async fn proton_exports_import_every_entry_with_its_parameters_and_codes(backend: Backend) {
    imports_as_expected(backend, &PROTON_PLAIN).await;
    imports_as_expected(backend, &PROTON_ENCRYPTED).await;
}

// The costly key derivations, once each, on SQLite only.

#[tokio::test]
async fn bitwarden_exports_under_600000_pbkdf2_iterations_and_argon2id_import_on_sqlite() {
    imports_as_expected(Backend::Sqlite, &BITWARDEN_PBKDF2).await;
    imports_as_expected(Backend::Sqlite, &BITWARDEN_ARGON2ID).await;
}

#[tokio::test]
async fn an_encrypted_ente_export_imports_every_entry_with_its_parameters_and_codes_on_sqlite() {
    imports_as_expected(Backend::Sqlite, &ENTE_ENCRYPTED).await;
}

async fn every_format_is_detected_when_the_request_names_none(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    for fixture in [
        &AEGIS_PLAIN,
        &AEGIS_ENCRYPTED,
        &TWOFAS_PLAIN,
        &TWOFAS_ENCRYPTED,
        &ANDOTP_PLAIN,
        &ANDOTP_ENCRYPTED,
        &BITWARDEN_PLAIN,
        &BITWARDEN_PBKDF2_MIN,
        &ONEPUX,
        &ENTE_PLAIN,
        &PROTON_PLAIN,
        &PROTON_ENCRYPTED,
    ] {
        let mut body = body_of(fixture, None);
        body["dry_run"] = json!(true);
        let reply = import(&api, body).await;
        assert_eq!(reply.status, 200, "{}: {}", fixture.name, reply.text);
        check_results(&reply.expect_ok(), fixture, false);
        // `auto` named is the same as no format.
        let mut body = body_of(fixture, Some("auto"));
        body["dry_run"] = json!(true);
        check_results(&import(&api, body).await.expect_ok(), fixture, false);
    }
    assert!(api.list_ok().await.is_empty(), "dry runs stored nothing");
    // And for real: the 1Password archive without a format.
    let answer = import(&api, body_of(&ONEPUX, None)).await.expect_ok();
    check_results(&answer, &ONEPUX, true);
    assert_eq!(api.list_ok().await.len(), 4);
}

async fn importing_the_same_file_twice_stores_nothing_the_second_time(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let first = import(&api, body_of(&AEGIS_PLAIN, Some("aegis")))
        .await
        .expect_ok();
    let ids = check_results(&first, &AEGIS_PLAIN, true);
    let mut listed = api.listed_ids().await;
    listed.sort();
    assert_eq!(listed.len(), 4);

    let second = import(&api, body_of(&AEGIS_PLAIN, Some("aegis")))
        .await
        .expect_ok();
    assert_eq!(second["created"], 0, "{second}");
    assert_eq!(second["duplicates"], 5, "{second}");
    assert_eq!(second["invalid"], 2, "{second}");
    for (index, result) in results(&second).iter().enumerate() {
        assert_eq!(result["label"], results(&first)[index]["label"]);
        if ids[index].is_some() {
            assert_eq!(result["outcome"], "duplicate", "entry {index}: {second}");
            assert_eq!(
                result["id"].as_str(),
                ids[index].as_deref(),
                "entry {index}: the first import's id"
            );
        } else {
            assert_eq!(result["outcome"], "invalid", "entry {index}: {second}");
        }
    }
    let mut again = api.listed_ids().await;
    again.sort();
    assert_eq!(again, listed, "the second import stored nothing");

    // The same keys exported by another app (the 2FAS fixture holds the
    // Aegis fixture's keys) are the same secrets.
    let by_label = |label: &str| {
        results(&first)
            .iter()
            .find(|r| r["label"] == label)
            .and_then(|r| r["id"].as_str())
            .unwrap()
            .to_owned()
    };
    let other = import(&api, body_of(&TWOFAS_PLAIN, Some("2fas")))
        .await
        .expect_ok();
    assert_eq!(other["created"], 0, "{other}");
    for result in results(&other) {
        if result["outcome"] != "invalid" {
            assert_eq!(result["outcome"], "duplicate", "{other}");
            assert_eq!(
                result["id"].as_str().unwrap(),
                by_label(result["label"].as_str().unwrap()),
                "{result}"
            );
        }
    }
    let mut after = api.listed_ids().await;
    after.sort();
    assert_eq!(after, listed);
}

fn uri(issuer: &str, account: &str, key: &[u8], params: &str) -> String {
    format!(
        "otpauth://totp/{issuer}:{account}?secret={}&issuer={issuer}{params}",
        base32_encode(key)
    )
}

async fn a_secret_created_through_the_api_is_a_duplicate_on_import(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let existing = api
        .create_ok(json!({"label": "existing", "issuer": "Acme", "secret": base32_encode(KEY_A)}))
        .await;
    let existing = existing["id"].as_str().unwrap().to_owned();
    // The same key bytes under another name, parameters and letter case.
    let list = format!(
        "{}\n{}\n",
        uri("Other", "renamed", KEY_A, "&algorithm=SHA256&digits=8")
            .replace(&base32_encode(KEY_A), &base32_encode(KEY_A).to_lowercase()),
        uri("New", "fresh", KEY_C, ""),
    );
    let answer = import(&api, json!({"format": "otpauth", "data": list}))
        .await
        .expect_ok();
    assert_eq!(outcomes(&answer), ["duplicate", "created"], "{answer}");
    let results = results(&answer);
    assert_eq!(results[0]["id"], existing.as_str(), "{answer}");
    assert_eq!(answer["created"], 1);
    assert_eq!(answer["duplicates"], 1);
    let listed = api.listed_ids().await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.contains(&existing));
    // The held secret is unchanged.
    let shown = api.get(&secret_path(&existing)).await.expect_ok();
    assert_eq!(shown["totp_secret"]["label"], "existing");
    assert_eq!(shown["totp_secret"]["algorithm"], "SHA1");
}

async fn two_entries_with_the_same_key_bytes_in_one_file_store_one_secret(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let list = format!(
        "{}\n{}\n{}\n",
        uri("Acme", "first", KEY_A, ""),
        uri("Acme", "other", KEY_C, ""),
        uri("Acme", "again", KEY_A, "&algorithm=SHA512&period=60"),
    );
    let answer = import(&api, json!({"data": list})).await.expect_ok();
    assert_eq!(
        outcomes(&answer),
        ["created", "created", "duplicate"],
        "{answer}"
    );
    let results = results(&answer);
    assert_eq!(results[2]["id"], results[0]["id"], "{answer}");
    assert_eq!(results[2]["label"], "again");
    assert_eq!(
        (&answer["created"], &answer["duplicates"]),
        (&json!(2), &json!(1))
    );
    assert_eq!(api.list_ok().await.len(), 2);
    // The stored one is the first entry, with its parameters.
    let first = results[0]["id"].as_str().unwrap();
    let known = Known {
        key: KEY_A.to_vec(),
        alg: Alg::Sha1,
        digits: 6,
        period: 30,
    };
    assert_code(&api, first, &known).await;
}

async fn a_dry_run_stores_nothing_and_answers_what_an_import_would_do(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let mut body = body_of(&AEGIS_PLAIN, Some("aegis"));
    body["dry_run"] = json!(true);
    let answer = import(&api, body).await.expect_ok();
    check_results(&answer, &AEGIS_PLAIN, false);
    assert_eq!(answer["created"], 4, "{answer}");
    assert!(api.list_ok().await.is_empty(), "a dry run stores nothing");

    // The raw form, `?dry_run=true`.
    let list = format!(
        "{}\n{}\n{}\n",
        uri("Acme", "a", KEY_A, ""),
        uri("Acme", "b", KEY_B, "&algorithm=SHA512&digits=8"),
        uri("Acme", "c", KEY_C, "&period=60"),
    );
    let dry = import_raw(&api, "dry_run=true", "text/plain", list.clone())
        .await
        .expect_ok();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["created"], 3, "{dry}");
    assert_eq!(outcomes(&dry), ["created"; 3]);
    assert!(results(&dry).iter().all(|r| r["id"].is_null()), "{dry}");
    assert!(
        api.list_ok().await.is_empty(),
        "a raw dry run stores nothing"
    );

    // Stored for real, then a dry run names the held secrets.
    let real = import_raw(&api, "format=otpauth", "text/plain", list.clone())
        .await
        .expect_ok();
    assert_eq!(real["dry_run"], false);
    assert_eq!(real["created"], 3, "{real}");
    let dry = import_raw(
        &api,
        "format=otpauth&dry_run=true",
        "text/plain",
        format!("{list}{}\n", uri("Acme", "d", KEY_D, "")),
    )
    .await
    .expect_ok();
    assert_eq!(
        outcomes(&dry),
        ["duplicate", "duplicate", "duplicate", "created"]
    );
    for (result, stored) in results(&dry).iter().zip(results(&real)) {
        assert_eq!(result["id"], stored["id"], "{dry}");
    }
    assert!(results(&dry)[3]["id"].is_null());
    assert_eq!(api.list_ok().await.len(), 3);

    // Only what was stored is in the audit log.
    app.vault.flush_audit().await;
    let events = api
        .get("/api/v2/audit?action=secret.import&limit=1000")
        .await
        .expect_ok();
    let events = events["events"].as_array().unwrap();
    assert_eq!(events.len(), 3, "{events:?}");
    assert!(events.iter().all(|e| e["outcome"] == "ok"), "{events:?}");
}

/// Three good URIs and, third, one whose secret is not base32.
fn list_with_a_broken_line() -> String {
    format!(
        "{}\n{}\notpauth://totp/Broken:eve?secret=NOT*BASE32!&issuer=Broken\n{}\n",
        uri("Acme", "a", KEY_A, ""),
        uri("Acme", "b", KEY_B, "&algorithm=SHA512&digits=8"),
        uri("Acme", "c", KEY_C, ""),
    )
}

async fn an_atomic_import_with_one_bad_entry_stores_nothing_and_a_plain_one_stores_the_rest(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let list = list_with_a_broken_line();
    let refused = import(
        &api,
        json!({"format": "otpauth", "data": list, "atomic": true}),
    )
    .await;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let body = refused.expect_error_body("invalid_request");
    assert_eq!(
        outcomes(&body),
        ["created", "created", "invalid", "created"],
        "{body}"
    );
    assert!(results(&body).iter().all(|r| r["id"].is_null()), "{body}");
    assert!(refused.message().contains("entry 2"), "{}", refused.text);
    assert!(!refused.text.contains("NOT*BASE32"), "{}", refused.text);
    assert!(api.list_ok().await.is_empty(), "an atomic import stored");

    // The raw form, `?atomic=true`.
    let raw = import_raw(&api, "atomic=true", "text/plain", list.clone()).await;
    assert_eq!(raw.status, 400, "{}", raw.text);
    assert_eq!(outcomes(&raw.expect_error_body("invalid_request")).len(), 4);
    assert!(api.list_ok().await.is_empty(), "an atomic import stored");

    // Without atomic: the good entries are stored, the bad one reported.
    let answer = import(&api, json!({"format": "otpauth", "data": list}))
        .await
        .expect_ok();
    assert_eq!(
        outcomes(&answer),
        ["created", "created", "invalid", "created"],
        "{answer}"
    );
    let bad = &results(&answer)[2];
    assert!(bad["id"].is_null(), "{bad}");
    let message = bad["message"].as_str().unwrap_or_default();
    assert!(!message.trim().is_empty(), "{bad}");
    assert!(!message.contains("NOT*BASE32"), "{bad}");
    assert_eq!(
        (&answer["created"], &answer["invalid"]),
        (&json!(3), &json!(1))
    );
    let mut listed = api.listed_ids().await;
    listed.sort();
    let mut created: Vec<String> = results(&answer)
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    created.sort();
    assert_eq!(listed, created);

    // The refusals are in the audit log as invalid, without secrets; the
    // import as one ok record per stored secret.
    app.vault.flush_audit().await;
    let events = api
        .get("/api/v2/audit?action=secret.import&limit=1000")
        .await
        .expect_ok();
    let mut seen: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    seen.sort_unstable();
    assert_eq!(seen, ["invalid", "invalid", "ok", "ok", "ok"], "{events}");
}

async fn requests_the_import_cannot_read_are_400_with_a_json_error_and_store_nothing(
    backend: Backend,
) {
    let mut app = spawn_app(backend).await;
    let api = app.api();
    let list = format!("{}\n", uri("Acme", "a", KEY_A, ""));
    let cases: Vec<(&str, Reply, &str)> = vec![
        (
            "an unknown format",
            import(&api, json!({"format": "keepass", "data": list})).await,
            "format",
        ),
        (
            "a misspelt option",
            import(&api, json!({"data": list, "dryrun": true})).await,
            "dryrun",
        ),
        (
            "no data",
            import(&api, json!({"format": "otpauth"})).await,
            "data",
        ),
        (
            "data that is not base64",
            import(
                &api,
                json!({"format": "1pux", "data": "not base64 !!!", "encoding": "base64"}),
            )
            .await,
            "base64",
        ),
        (
            "an unknown encoding",
            import(&api, json!({"data": list, "encoding": "hex"})).await,
            "encoding",
        ),
        (
            "a password in the URL",
            import_raw(&api, "format=otpauth&password=x", "text/plain", list.clone()).await,
            "URL",
        ),
        (
            "garbage as image/png",
            import_raw(
                &api,
                "",
                "image/png",
                b"\x89PNG\r\n\x1a\nthis is no image at all".to_vec(),
            )
            .await,
            "",
        ),
        (
            "a damaged 1Password archive",
            import(
                &api,
                json!({"format": "1pux", "data": STANDARD.encode(&ONEPUX.bytes[..200]), "encoding": "base64"}),
            )
            .await,
            "",
        ),
    ];
    for (case, reply, word) in &cases {
        assert_eq!(reply.status, 400, "{case}: {}", reply.text);
        reply.expect_error_body("invalid_request");
        assert!(
            reply.message().contains(word),
            "{case}: the message names {word:?}: {}",
            reply.text
        );
    }
    assert!(api.list_ok().await.is_empty(), "nothing was stored");
    app.assert_healthy().await;
    import(&api, json!({"data": list})).await.expect_ok();
    assert_eq!(api.list_ok().await.len(), 1, "the server still imports");
}

/// A text file that holds no `otpauth://` URI at all is refused whole,
/// whether its format is detected or named: every case is tried, and the
/// failures are listed together.
async fn a_text_file_with_no_uri_is_refused_whether_its_format_is_detected_or_named(
    backend: Backend,
) {
    let mut app = spawn_app(backend).await;
    let api = app.api();
    let text = "hello\nworld\n";
    let cases: Vec<(&str, Reply)> = vec![
        ("JSON, detected", import(&api, json!({"data": text})).await),
        (
            "raw text/plain, detected",
            import_raw(&api, "", "text/plain", text).await,
        ),
        (
            "JSON, format otpauth",
            import(&api, json!({"format": "otpauth", "data": text})).await,
        ),
        (
            "raw text/plain, format=otpauth",
            import_raw(&api, "format=otpauth", "text/plain", text).await,
        ),
        (
            "JSON, format otpauth, atomic",
            import(
                &api,
                json!({"format": "otpauth", "data": text, "atomic": true}),
            )
            .await,
        ),
    ];
    let failures: Vec<String> = cases
        .iter()
        .filter(|(_, reply)| {
            reply.status != 400
                || reply.json()["status"] != "ERROR"
                || reply.json()["error"] != "invalid_request"
        })
        .map(|(case, reply)| format!("{case}: HTTP {} {}", reply.status, reply.text))
        .collect();
    assert!(api.list_ok().await.is_empty(), "nothing was stored");
    app.assert_healthy().await;
    assert!(
        failures.is_empty(),
        "a text with no URI must be a 400:\n{}",
        failures.join("\n")
    );
}

async fn encrypted_exports_without_their_password_are_refused_and_store_nothing(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let api = app.api();
    for fixture in [&AEGIS_ENCRYPTED, &TWOFAS_ENCRYPTED, &PROTON_ENCRYPTED] {
        let mut wrong = body_of(fixture, Some(fixture.format));
        wrong["password"] = json!("not the password");
        let reply = import(&api, wrong).await;
        reply.expect_error(400, "invalid_request");
        assert!(
            reply.message().contains("password does not open"),
            "{}: {}",
            fixture.name,
            reply.text
        );
        let mut missing = body_of(fixture, None);
        missing.as_object_mut().unwrap().remove("password");
        let reply = import(&api, missing).await;
        reply.expect_error(400, "invalid_request");
        assert!(
            reply.message().contains("password"),
            "{}: {}",
            fixture.name,
            reply.text
        );
    }
    // The raw form cannot carry a password.
    let reply = import_raw(
        &api,
        "format=aegis",
        "application/octet-stream",
        AEGIS_ENCRYPTED.bytes,
    )
    .await;
    reply.expect_error(400, "invalid_request");
    assert!(reply.message().contains("password"), "{}", reply.text);
    assert!(api.list_ok().await.is_empty());
    app.assert_healthy().await;
}

async fn a_body_over_ten_mebibytes_is_413_and_one_of_another_type_415(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let api = app.api();
    let list = format!("{}\n", uri("Acme", "a", KEY_A, ""));
    // Just under the limit: read (comment lines and one URI).
    let mut big = "# padding line of an otpauth list\n".repeat(9 * 1024 * 1024 / 34);
    big.push_str(&list);
    assert!(big.len() < 10 * 1024 * 1024);
    let answer = import_raw(&api, "format=otpauth&dry_run=true", "text/plain", big)
        .await
        .expect_ok();
    assert_eq!(answer["created"], 1, "a 9 MiB list is read");

    // Over it: 413, with or without a Content-Length.
    let mut json = br#"{"format": "otpauth", "data": ""#.to_vec();
    json.extend(std::iter::repeat_n(b'#', 10 * 1024 * 1024));
    json.extend_from_slice(br#""}"#);
    let auth = format!(
        "sb-api-key-id: {}\r\nsb-api-secret-key: {}\r\n",
        app.key.key_id, app.key.secret
    );
    let head = format!(
        "POST {IMPORT} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
         Content-Type: application/json\r\nContent-Length: {}\r\n",
        app.addr,
        json.len()
    );
    raw_exchange(&app.addr, &head, json.clone())
        .await
        .expect_error(413, "payload_too_large");
    let mut chunked = Vec::new();
    for piece in json.chunks(256 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let head = format!(
        "POST {IMPORT} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
         Content-Type: text/plain\r\nTransfer-Encoding: chunked\r\n",
        app.addr
    );
    raw_exchange(&app.addr, &head, chunked)
        .await
        .expect_error(413, "payload_too_large");

    for content_type in [
        "application/xml",
        "multipart/form-data; boundary=x",
        "text/html",
    ] {
        let reply = import_raw(&api, "format=otpauth", content_type, list.clone()).await;
        reply.expect_error(415, "unsupported_media_type");
    }
    assert!(api.list_ok().await.is_empty());
    app.assert_healthy().await;
    import_raw(&api, "", "text/plain; charset=utf-8", list)
        .await
        .expect_ok();
    assert_eq!(api.list_ok().await.len(), 1, "the server still imports");
}

async fn an_aegis_file_claiming_a_huge_scrypt_cost_is_refused_at_once(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let api = app.api();
    let mut file: Value = serde_json::from_slice(AEGIS_ENCRYPTED.bytes).unwrap();
    let slots = file["header"]["slots"].as_array_mut().unwrap();
    for slot in slots.iter_mut().filter(|s| s["type"] == 1) {
        slot["n"] = json!(1u64 << 40);
    }
    let started = Instant::now();
    let reply = import(
        &api,
        json!({"format": "aegis", "data": file.to_string(), "password": AEGIS_PASSWORD}),
    )
    .await;
    let took = started.elapsed();
    reply.expect_error(400, "invalid_request");
    assert!(
        took < Duration::from_secs(2),
        "refused after {took:?}: {}",
        reply.text
    );
    // Detected, too.
    let reply = import(
        &api,
        json!({"data": file.to_string(), "password": AEGIS_PASSWORD}),
    )
    .await;
    reply.expect_error(400, "invalid_request");
    assert!(api.list_ok().await.is_empty());
    app.assert_healthy().await;
}

/// Makes a key through the keys API as the owner.
async fn create_key(server: &impl Serves, body: Value) -> ApiKey {
    let created = server
        .api()
        .request(Method::POST, "/api/v2/keys", Body::Json(body))
        .await
        .expect_ok();
    ApiKey {
        key_id: created["api_key"]["key_id"].as_str().unwrap().to_owned(),
        secret: created["secret"].as_str().unwrap().to_owned(),
    }
}

async fn agents_may_import_verifiers_and_scoped_keys_may_not_and_imports_are_audited(
    backend: Backend,
) {
    let app = spawn_app(backend).await;
    let owner = app.api();
    let held = owner.create_ok(json!({"label": "held"})).await;
    let held = held["id"].as_str().unwrap().to_owned();
    let agent = create_key(&app, json!({"name": "importer", "role": "agent"})).await;
    let verifier = create_key(&app, json!({"name": "checker", "role": "verifier"})).await;
    let scoped = create_key(
        &app,
        json!({"name": "scoped", "role": "agent", "secret_ids": [held]}),
    )
    .await;
    let list = format!(
        "{}\n{}\n",
        uri("Acme", "a", KEY_A, ""),
        uri("Acme", "b", KEY_B, "&algorithm=SHA512&digits=8"),
    );
    for (who, key) in [("verifier", &verifier), ("scoped agent", &scoped)] {
        let reply = import(&app.api_as(key), json!({"data": list})).await;
        assert_eq!(reply.status, 403, "{who}: {}", reply.text);
        reply.expect_error_body("forbidden");
        let raw = import_raw(&app.api_as(key), "", "text/plain", list.clone()).await;
        assert_eq!(raw.status, 403, "{who}, raw: {}", raw.text);
    }
    assert_eq!(
        owner.listed_ids().await,
        std::slice::from_ref(&held),
        "refused: nothing stored"
    );

    let answer = import(&app.api_as(&agent), json!({"data": list}))
        .await
        .expect_ok();
    assert_eq!(outcomes(&answer), ["created", "created"], "{answer}");
    let mut created: Vec<String> = results(&answer)
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    created.sort();
    assert_eq!(owner.list_ok().await.len(), 3);

    app.vault.flush_audit().await;
    let events = owner
        .get("/api/v2/audit?action=secret.import&limit=1000")
        .await
        .expect_ok();
    let events = events["events"].as_array().unwrap();
    let mut audited: Vec<String> = events
        .iter()
        .filter(|e| e["outcome"] == "ok")
        .map(|e| {
            assert_eq!(e["action"], "secret.import", "{e}");
            assert_eq!(e["key_id"], agent.key_id.as_str(), "{e}");
            assert_eq!(e["role"], "agent", "{e}");
            e["secret_id"].as_str().unwrap().to_owned()
        })
        .collect();
    audited.sort();
    assert_eq!(
        audited, created,
        "one ok record per created secret: {events:?}"
    );
    for event in events.iter().filter(|e| e["outcome"] != "ok") {
        assert!(
            event["key_id"] == verifier.key_id.as_str()
                || event["key_id"] == scoped.key_id.as_str(),
            "only the refused keys' records are not ok: {event}"
        );
    }
}

async fn a_raw_text_body_with_format_otpauth_imports_the_list(backend: Backend) {
    let app = spawn_app(backend).await;
    let api = app.api();
    let list = format!(
        "# exported by hand\n{}\n\n{}\notpauth://hotp/Bank:carol?secret={}&issuer=Bank&counter=7&digits=8\n",
        uri("Acme", "alice", KEY_A, ""),
        uri(
            "Big Bank",
            "bob",
            KEY_B,
            "&algorithm=SHA512&digits=8&period=60"
        )
        .replace(' ', "%20"),
        base32_encode(KEY_C),
    );
    let answer = import_raw(&api, "format=otpauth", "text/plain", list)
        .await
        .expect_ok();
    assert_eq!(outcomes(&answer), ["created"; 3], "{answer}");
    let results = results(&answer);
    let names: Vec<(&Value, &Value)> = results
        .iter()
        .map(|r| (&r["label"], &r["issuer"]))
        .collect();
    assert_eq!(
        names,
        [
            (&json!("alice"), &json!("Acme")),
            (&json!("bob"), &json!("Big Bank")),
            (&json!("carol"), &json!("Bank")),
        ]
    );
    let id = |i: usize| results[i]["id"].as_str().unwrap().to_owned();
    let shown = |body: Value| body["totp_secret"].clone();
    let alice = shown(api.get(&secret_path(&id(0))).await.expect_ok());
    assert_eq!(
        (
            &alice["type"],
            &alice["algorithm"],
            &alice["digits"],
            &alice["period"]
        ),
        (&json!("totp"), &json!("SHA1"), &json!(6), &json!(30))
    );
    let known = Known {
        key: KEY_A.to_vec(),
        alg: Alg::Sha1,
        digits: 6,
        period: 30,
    };
    assert_code(&api, &id(0), &known).await;
    let bob = shown(api.get(&secret_path(&id(1))).await.expect_ok());
    assert_eq!(
        (
            &bob["type"],
            &bob["algorithm"],
            &bob["digits"],
            &bob["period"]
        ),
        (&json!("totp"), &json!("SHA512"), &json!(8), &json!(60))
    );
    let known = Known {
        key: KEY_B.to_vec(),
        alg: Alg::Sha512,
        digits: 8,
        period: 60,
    };
    assert_code(&api, &id(1), &known).await;
    let carol = shown(api.get(&secret_path(&id(2))).await.expect_ok());
    assert_eq!(
        (
            &carol["type"],
            &carol["algorithm"],
            &carol["digits"],
            &carol["counter"]
        ),
        (&json!("hotp"), &json!("SHA1"), &json!(8), &json!(7))
    );
    for counter in 7..10 {
        let answer = api.code(&id(2)).await.expect_ok();
        assert_eq!(answer["counter"], counter, "{answer}");
        assert_eq!(
            answer["code"],
            hotp(KEY_C, Alg::Sha1, 8, counter),
            "{answer}"
        );
    }

    // application/octet-stream, the format detected.
    let more = format!("{}\n", uri("Acme", "dave", KEY_D, ""));
    let answer = import_raw(&api, "", "application/octet-stream", more)
        .await
        .expect_ok();
    assert_eq!(outcomes(&answer), ["created"]);
    assert_eq!(api.list_ok().await.len(), 4);
}

/// A PNG that declares 50,000 × 50,000 pixels in 3 KiB (made by
/// `make_qr.py` with zlib): refused from its header, so the server's peak
/// memory does not move by more than a few MiB.
#[tokio::test]
async fn a_decompression_bomb_is_refused_without_the_servers_memory_growing() {
    let server = crate::harness::TestServer::start(Backend::Sqlite).await;
    let api = server.api();
    let bomb = data!("qr/bomb.png").to_vec();
    // The first import reads on a fresh blocking thread: warm the path with
    // a small file first, so what is measured is the bomb's own cost.
    let warm = import_raw(
        &api,
        "format=otpauth&dry_run=true",
        "text/plain",
        "otpauth://totp/warm?secret=JBSWY3DPEHPK3PXP\n",
    )
    .await;
    assert_eq!(warm.status, 200, "{}", warm.text);
    let (peak_before, _) = crate::lists_and_quota::memory_kib(server.pid());
    for _ in 0..5 {
        let reply = import_raw(&api, "", "image/png", bomb.clone()).await;
        assert_eq!(reply.status, 400, "{}", reply.text);
        assert!(reply.text.contains("pixels"), "{}", reply.text);
    }
    let (peak_after, _) = crate::lists_and_quota::memory_kib(server.pid());
    assert!(
        peak_after.saturating_sub(peak_before) < 4 * 1024,
        "the server's peak RSS grew from {peak_before} to {peak_after} KiB"
    );
    assert!(api.list_ok().await.is_empty());
}
