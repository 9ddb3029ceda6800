//! The Ente Auth reader, on exports written by
//! `tests/data/ente/make_ente.py` from Ente's documentation and export code,
//! encrypted by PyNaCl (libsodium's own `crypto_pwhash` and
//! `crypto_secretstream_xchacha20poly1305`). Also: detection across the
//! formats of this crate's password-manager readers.

use std::time::Instant;

use serde_json::{Value, json};
use totpd_import::{Format, ImportError, Limits, detect, read};

use crate::expected::{Fixture, check, messages, password};

const PLAIN: &str = include_str!("../data/ente/plain.txt");
const PLAIN_EXPECTED: &str = include_str!("../data/ente/plain.expected.json");
const ENCRYPTED: &str = include_str!("../data/ente/encrypted.json");
const ENCRYPTED_EXPECTED: &str = include_str!("../data/ente/encrypted.expected.json");
const UNFINISHED: &str = include_str!("../data/ente/unfinished.json");

const PASSWORD: &str = "ente export pass";
const SECRETS: [&str; 2] = ["GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "JBSWY3DPEHPK3PXP"];

fn assert_no_secret(text: &str) {
    crate::expected::assert_no_secret(text, &SECRETS, PASSWORD);
    assert!(!text.contains("secret="), "{text}");
}

fn with_kdf(key: &str, value: Value) -> String {
    let mut document: Value = serde_json::from_str(ENCRYPTED).unwrap();
    document["kdfParams"][key] = value;
    document.to_string()
}

const FIXTURES: [Fixture; 2] = [
    Fixture {
        format: Format::Ente,
        data: PLAIN.as_bytes(),
        password: None,
        expected: PLAIN_EXPECTED,
    },
    Fixture {
        format: Format::Ente,
        data: ENCRYPTED.as_bytes(),
        password: Some(PASSWORD),
        expected: ENCRYPTED_EXPECTED,
    },
];

#[test]
fn plain_and_encrypted_exports_give_every_entry_in_order() {
    for fixture in &FIXTURES {
        fixture.check_reads();
    }
}

#[test]
fn the_encrypted_export_needs_its_password_and_refuses_a_wrong_one() {
    FIXTURES[1].check_password_refusals();
}

#[test]
fn the_plain_export_gives_every_uri_in_order_as_ente_and_as_otpauth() {
    for format in [Format::Ente, Format::Otpauth, Format::Auto] {
        let entries = read(format, PLAIN.as_bytes(), None, &Limits::default()).unwrap();
        check(&entries, PLAIN_EXPECTED);
    }
}

#[test]
fn a_stream_without_its_final_chunk_is_malformed() {
    let error = read(
        Format::Ente,
        UNFINISHED.as_bytes(),
        Some(&password(PASSWORD)),
        &Limits::default(),
    )
    .unwrap_err();
    let ImportError::Malformed { reason, .. } = &error else {
        panic!("{error:?}");
    };
    assert!(reason.contains("final"), "{reason}");
}

#[test]
// The refusal is timed: tests may read the clock (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn kdf_limits_over_the_bounds_are_refused_before_deriving() {
    for document in [
        // Twice Ente's own "sensitive" limit (1 GiB, the default bound).
        with_kdf("memLimit", Value::from(2_147_483_648_u64)),
        with_kdf("memLimit", Value::from(u64::MAX)),
        with_kdf("opsLimit", Value::from(17)),
        with_kdf("opsLimit", Value::from(u64::MAX)),
    ] {
        let started = Instant::now();
        let error = read(
            Format::Ente,
            document.as_bytes(),
            Some(&password(PASSWORD)),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ImportError::TooCostly { .. }), "{error:?}");
        assert!(started.elapsed().as_millis() < 200);
    }
}

#[test]
fn damaged_exports_give_errors_not_panics_and_no_secret() {
    let limits = Limits::default();
    let mut outcomes = Vec::new();
    let document: Value = serde_json::from_str(ENCRYPTED).unwrap();
    let data = document["encryptedData"].as_str().unwrap().to_owned();
    // Damaged streams: cut short, a byte changed (each a derivation).
    for (cut, flip) in [(0, None), (4, None), (20, None), (data.len() - 8, None)]
        .into_iter()
        .chain([
            (0, Some(0)),
            (0, Some(1)),
            (0, Some(30)),
            (0, Some(data.len() - 5)),
        ])
    {
        let mut damaged = data.clone().into_bytes();
        match flip {
            Some(at) => damaged[at] = if damaged[at] == b'A' { b'B' } else { b'A' },
            None => damaged.truncate(cut),
        }
        let mut document = document.clone();
        document["encryptedData"] = Value::from(String::from_utf8(damaged).unwrap());
        let outcome = read(
            Format::Ente,
            document.to_string().as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        );
        assert!(outcome.is_err(), "{cut} {flip:?} went unnoticed");
        outcomes.push(outcome);
    }
    // Fields of the wrong size or kind: refused before any derivation.
    for (key, value) in [
        ("encryptionNonce", json!("AAAA")),
        ("encryptionNonce", json!("not base64")),
        ("version", json!(2)),
    ] {
        let mut document = document.clone();
        document[key] = value;
        outcomes.push(read(
            Format::Ente,
            document.to_string().as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        ));
    }
    outcomes.push(read(
        Format::Ente,
        with_kdf("salt", json!("c2hvcnQ=")).as_bytes(),
        Some(&password(PASSWORD)),
        &limits,
    ));
    for end in 0..ENCRYPTED.len() {
        outcomes.push(read(
            Format::Ente,
            &ENCRYPTED.as_bytes()[..end],
            Some(&password(PASSWORD)),
            &limits,
        ));
    }
    for end in (0..PLAIN.len()).step_by(3) {
        outcomes.push(read(Format::Ente, &PLAIN.as_bytes()[..end], None, &limits));
    }
    for outcome in outcomes {
        for text in messages(&outcome) {
            assert_no_secret(&text);
        }
    }
}

#[test]
fn detection_tells_the_password_manager_formats_apart_and_from_the_other_apps() {
    let cases: [(&[u8], Option<Format>); 12] = [
        (ENCRYPTED.as_bytes(), Some(Format::Ente)),
        (PLAIN.as_bytes(), Some(Format::Otpauth)),
        (
            include_bytes!("../data/bitwarden/plain.json"),
            Some(Format::Bitwarden),
        ),
        (
            include_bytes!("../data/bitwarden/pbkdf2.json"),
            Some(Format::Bitwarden),
        ),
        (
            include_bytes!("../data/bitwarden/account_restricted.json"),
            Some(Format::Bitwarden),
        ),
        (
            include_bytes!("../data/proton/plain.json"),
            Some(Format::Proton),
        ),
        (
            include_bytes!("../data/proton/encrypted.json"),
            Some(Format::Proton),
        ),
        (
            include_bytes!("../data/onepux/export.1pux"),
            Some(Format::OnePux),
        ),
        // Aegis, 2FAS and andOTP shapes are none of these formats.
        (
            br#"{"version":1,"header":{"slots":null,"params":null},"db":{"version":3,"entries":[]}}"#,
            None,
        ),
        (
            br#"{"services":[],"schemaVersion":4,"appVersionCode":5000000}"#,
            None,
        ),
        (
            br#"[{"secret":"JBSWY3DPEHPK3PXP","issuer":"x","label":"y","digits":6,"type":"TOTP","algorithm":"SHA1","thumbnail":"Default","last_used":0,"used_frequency":0,"period":30,"tags":[]}]"#,
            None,
        ),
        (br#"{"version":1,"entries":"nope"}"#, None),
    ];
    for (data, format) in cases {
        let got = detect(data);
        // The other apps' readers are not this module's: with them in place
        // they may claim their own shapes, but never as one of ours.
        match format {
            Some(format) => assert_eq!(got, Some(format)),
            None => assert!(
                !matches!(
                    got,
                    Some(Format::Bitwarden | Format::OnePux | Format::Ente | Format::Proton)
                ),
                "{got:?}"
            ),
        }
    }
}
