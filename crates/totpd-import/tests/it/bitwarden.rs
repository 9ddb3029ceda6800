//! The Bitwarden reader, on exports written by
//! `tests/data/bitwarden/make_bitwarden.py` from Bitwarden's documentation
//! and source (Python's `cryptography`, `hashlib` and `argon2-cffi`).

use std::time::Instant;

use serde_json::Value;
use totpd_import::{Entry, Format, ImportError, Limits, read};

use crate::expected::{Fixture, messages, password};

const PLAIN: &str = include_str!("../data/bitwarden/plain.json");
const PLAIN_EXPECTED: &str = include_str!("../data/bitwarden/plain.expected.json");
const PBKDF2: &str = include_str!("../data/bitwarden/pbkdf2.json");
const PBKDF2_EXPECTED: &str = include_str!("../data/bitwarden/pbkdf2.expected.json");
const PBKDF2_MIN: &str = include_str!("../data/bitwarden/pbkdf2_min.json");
const ARGON2ID: &str = include_str!("../data/bitwarden/argon2id.json");
const ARGON2ID_EXPECTED: &str = include_str!("../data/bitwarden/argon2id.expected.json");
const RESTRICTED: &str = include_str!("../data/bitwarden/account_restricted.json");

const PASSWORD: &str = "correct horse battery staple";

/// The secrets in the fixtures, as they are written there.
const SECRETS: [&str; 5] = [
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZA",
    "JBSWY3DPEHPK3PXP",
    "jbsw y3dp",
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQGEZDGNA",
];

/// `document` with `key` set to `value`.
fn with(document: &str, key: &str, value: Value) -> String {
    let mut json: Value = serde_json::from_str(document).unwrap();
    json[key] = value;
    json.to_string()
}

fn assert_no_secret(text: &str) {
    crate::expected::assert_no_secret(text, &SECRETS, PASSWORD);
}

const FIXTURES: [Fixture; 3] = [
    Fixture {
        format: Format::Bitwarden,
        data: PLAIN.as_bytes(),
        password: None,
        expected: PLAIN_EXPECTED,
    },
    Fixture {
        format: Format::Bitwarden,
        data: PBKDF2.as_bytes(),
        password: Some(PASSWORD),
        expected: PBKDF2_EXPECTED,
    },
    Fixture {
        format: Format::Bitwarden,
        data: ARGON2ID.as_bytes(),
        password: Some(PASSWORD),
        expected: ARGON2ID_EXPECTED,
    },
];

#[test]
fn the_plain_pbkdf2_and_argon2id_exports_give_every_login_with_a_key_in_order() {
    for fixture in &FIXTURES {
        fixture.check_reads();
    }
}

#[test]
fn a_protected_export_needs_its_password_and_refuses_a_wrong_one() {
    // PBKDF2 at Bitwarden's import minimum keeps the wrong tries quick.
    let light = Fixture {
        data: PBKDF2_MIN.as_bytes(),
        ..FIXTURES[1]
    };
    light.check_password_refusals();
    FIXTURES[2].check_password_refusals();
}

#[test]
// The refusal is timed: tests may read the clock (clippy.toml).
#[allow(clippy::disallowed_methods)]
fn key_derivations_over_the_limits_are_refused_before_any_work() {
    let cases = [
        with(PBKDF2, "kdfIterations", Value::from(u32::MAX)),
        with(ARGON2ID, "kdfMemory", Value::from(4_000_000)),
        with(ARGON2ID, "kdfIterations", Value::from(1_000)),
        with(ARGON2ID, "kdfParallelism", Value::from(1_000)),
    ];
    for document in &cases {
        let started = Instant::now();
        let error = read(
            Format::Bitwarden,
            document.as_bytes(),
            Some(&password(PASSWORD)),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ImportError::TooCostly { .. }), "{error:?}");
        assert!(started.elapsed().as_millis() < 200, "{error}");
    }
    // The real parameters, under tighter limits.
    let limits = Limits {
        max_kdf_iterations: 100_000,
        max_kdf_memory_kib: 32 * 1024,
        ..Limits::default()
    };
    for document in [PBKDF2, ARGON2ID] {
        let error = read(
            Format::Bitwarden,
            document.as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        )
        .unwrap_err();
        assert!(matches!(error, ImportError::TooCostly { .. }), "{error:?}");
    }
}

#[test]
fn an_account_restricted_export_says_to_export_with_a_password_or_plain() {
    let error = read(
        Format::Auto,
        RESTRICTED.as_bytes(),
        Some(&password(PASSWORD)),
        &Limits::default(),
    )
    .unwrap_err();
    let ImportError::Malformed { format, reason } = &error else {
        panic!("{error:?}");
    };
    assert_eq!(*format, Format::Bitwarden);
    assert!(reason.contains("password protected"), "{reason}");
    assert!(reason.contains("plain JSON"), "{reason}");
}

#[test]
fn an_unknown_kdf_or_cipher_string_type_is_malformed() {
    for document in [
        with(PBKDF2_MIN, "kdfType", Value::from(7)),
        with(PBKDF2_MIN, "data", Value::from("0.aGVsbG8=|aGVsbG8=")),
        with(PBKDF2_MIN, "data", Value::from("2.onlyonepart")),
        with(ARGON2ID, "kdfMemory", Value::Null),
    ] {
        let error = read(
            Format::Bitwarden,
            document.as_bytes(),
            Some(&password(PASSWORD)),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(matches!(error, ImportError::Malformed { .. }), "{error:?}");
    }
}

#[test]
fn damaged_exports_give_errors_not_panics_and_no_secret() {
    let limits = Limits::default();
    let mut outcomes = Vec::new();
    // Truncated anywhere: JSON that no longer parses, or parses short.
    for document in [PLAIN, PBKDF2_MIN] {
        for end in (0..document.len()).step_by(5) {
            outcomes.push(read(
                Format::Bitwarden,
                &document.as_bytes()[..end],
                Some(&password(PASSWORD)),
                &limits,
            ));
        }
    }
    // A bit flipped anywhere in the plain export, and in the encrypted
    // parts of the protected one (each a key derivation).
    for at in 0..PLAIN.len() {
        let mut bytes = PLAIN.as_bytes().to_vec();
        bytes[at] ^= 0x04;
        outcomes.push(read(Format::Bitwarden, &bytes, None, &limits));
    }
    let data_at = PBKDF2_MIN.find("\"data\"").unwrap();
    for at in (data_at + 10..PBKDF2_MIN.len() - 4).step_by(37) {
        let mut bytes = PBKDF2_MIN.as_bytes().to_vec();
        bytes[at] ^= 0x01;
        let outcome = read(
            Format::Bitwarden,
            &bytes,
            Some(&password(PASSWORD)),
            &limits,
        );
        assert!(outcome.is_err(), "a flip at {at} went unnoticed");
        outcomes.push(outcome);
    }
    for outcome in outcomes {
        for text in messages(&outcome) {
            assert_no_secret(&text);
        }
    }
}

#[test]
fn no_reason_names_a_secret() {
    let entries = read(
        Format::Bitwarden,
        PLAIN.as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap();
    for entry in &entries {
        if let Entry::Invalid(invalid) = entry {
            assert_no_secret(&invalid.reason);
            assert!(invalid.reason.contains("steam"), "{}", invalid.reason);
        }
    }
}

#[test]
fn the_entry_bound_stops_the_read() {
    for fixture in &FIXTURES {
        fixture.check_entry_bound();
    }
}
