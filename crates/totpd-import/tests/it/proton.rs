//! The Proton Authenticator reader, on exports written by
//! `tests/data/proton/make_proton.py` from Proton's source (Python's
//! `cryptography` and `argon2-cffi`).

use serde_json::Value;
use totpd_import::{Entry, Format, ImportError, Limits, detect, read};

use crate::expected::{Fixture, check, messages, password};

const PLAIN: &str = include_str!("../data/proton/plain.json");
const PLAIN_EXPECTED: &str = include_str!("../data/proton/plain.expected.json");
const ENCRYPTED: &str = include_str!("../data/proton/encrypted.json");
const ENCRYPTED_EXPECTED: &str = include_str!("../data/proton/encrypted.expected.json");

const PASSWORD: &str = "Proton-export-pässword";
const SECRETS: [&str; 2] = ["GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", "JBSWY3DPEHPK3PXP"];

fn assert_no_secret(text: &str) {
    crate::expected::assert_no_secret(text, &SECRETS, PASSWORD);
}

const FIXTURES: [Fixture; 2] = [
    Fixture {
        format: Format::Proton,
        data: PLAIN.as_bytes(),
        password: None,
        expected: PLAIN_EXPECTED,
    },
    Fixture {
        format: Format::Proton,
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
fn the_plain_export_gives_every_entry_in_order_and_steam_as_unserved() {
    for format in [Format::Proton, Format::Auto] {
        let entries = read(format, PLAIN.as_bytes(), None, &Limits::default()).unwrap();
        check(&entries, PLAIN_EXPECTED);
        let Entry::Invalid(steam) = &entries[4] else {
            panic!("steam imported");
        };
        assert!(steam.reason.contains("steam"), "{}", steam.reason);
        assert_no_secret(&steam.reason);
    }
}

#[test]
fn limits_below_protons_fixed_derivation_refuse_it_without_deriving() {
    for limits in [
        Limits {
            max_kdf_memory_kib: 16 * 1024,
            ..Limits::default()
        },
        Limits {
            max_kdf_passes: 1,
            ..Limits::default()
        },
    ] {
        let error = read(
            Format::Proton,
            ENCRYPTED.as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        )
        .unwrap_err();
        assert!(matches!(error, ImportError::TooCostly { .. }), "{error:?}");
    }
}

#[test]
fn damaged_exports_give_errors_not_panics_and_no_secret() {
    let limits = Limits::default();
    let mut outcomes = Vec::new();
    for end in (0..PLAIN.len()).step_by(3) {
        outcomes.push(read(
            Format::Proton,
            &PLAIN.as_bytes()[..end],
            None,
            &limits,
        ));
    }
    for at in 0..PLAIN.len() {
        let mut bytes = PLAIN.as_bytes().to_vec();
        bytes[at] ^= 0x02;
        outcomes.push(read(Format::Proton, &bytes, None, &limits));
    }
    // The encrypted export: a few truncations and flips, each a derivation.
    let mut json: Value = serde_json::from_str(ENCRYPTED).unwrap();
    let content = json["content"].as_str().unwrap().to_owned();
    for (at, cut) in [
        (0, 10),
        (20, 40),
        (content.len() / 2, 0),
        (content.len() - 6, 0),
    ] {
        let mut damaged = content.clone().into_bytes();
        if cut > 0 {
            damaged.truncate(cut);
        } else {
            damaged[at] = if damaged[at] == b'A' { b'B' } else { b'A' };
        }
        json["content"] = Value::from(String::from_utf8(damaged).unwrap());
        let outcome = read(
            Format::Proton,
            json.to_string().as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        );
        assert!(outcome.is_err(), "damage at {at}/{cut} went unnoticed");
        outcomes.push(outcome);
    }
    json["content"] = Value::from("not base64!");
    outcomes.push(read(
        Format::Proton,
        json.to_string().as_bytes(),
        Some(&password(PASSWORD)),
        &limits,
    ));
    json["version"] = Value::from(2);
    outcomes.push(read(
        Format::Proton,
        json.to_string().as_bytes(),
        Some(&password(PASSWORD)),
        &limits,
    ));
    for outcome in outcomes {
        for text in messages(&outcome) {
            assert_no_secret(&text);
        }
    }
}

#[test]
fn both_kinds_of_export_are_detected_as_proton() {
    assert_eq!(detect(PLAIN.as_bytes()), Some(Format::Proton));
    assert_eq!(detect(ENCRYPTED.as_bytes()), Some(Format::Proton));
}
