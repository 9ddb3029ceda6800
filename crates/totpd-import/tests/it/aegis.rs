//! The Aegis reader on vaults written by `tests/data/aegis/make_aegis.py`
//! from Aegis' `docs/vault.md` with Python's `cryptography` (scrypt with
//! Aegis' own N = 2^15, r = 8, p = 1).

use serde_json::{Value, json};
use totpd_import::{Entry, Format, ImportError, Limits, detect, read};

use crate::expected::{Fixture, check, messages, password, quickly};

const PLAIN: &str = include_str!("../data/aegis/aegis_plain.json");
const ENCRYPTED: &str = include_str!("../data/aegis/aegis_encrypted.json");
const EXPECTED: &str = include_str!("../data/aegis/aegis.expected.json");
const PASSWORD: &str = "aegis test password ✓";

/// The base32 secrets of the plain fixture.
fn secrets() -> Vec<String> {
    let vault: Value = serde_json::from_str(PLAIN).unwrap();
    vault["db"]["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|entry| entry["info"]["secret"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_no_secret(text: &str) {
    let secrets = secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    crate::expected::assert_no_secret(text, &secrets, PASSWORD);
}

const FIXTURES: [Fixture; 2] = [
    Fixture {
        format: Format::Aegis,
        data: PLAIN.as_bytes(),
        password: None,
        expected: EXPECTED,
    },
    Fixture {
        format: Format::Aegis,
        data: ENCRYPTED.as_bytes(),
        password: Some(PASSWORD),
        expected: EXPECTED,
    },
];

#[test]
fn plain_and_encrypted_aegis_vaults_give_every_entry_in_order() {
    for fixture in &FIXTURES {
        fixture.check_reads();
    }
}

#[test]
fn an_encrypted_aegis_vault_needs_its_password_and_refuses_a_wrong_one() {
    FIXTURES[1].check_password_refusals();
}

#[test]
fn a_password_given_for_a_plain_aegis_vault_is_ignored() {
    let entries = read(
        Format::Aegis,
        PLAIN.as_bytes(),
        Some(&password("anything")),
        &Limits::default(),
    )
    .unwrap();
    check(&entries, EXPECTED);
}

/// The encrypted fixture with its password slot's scrypt fields replaced.
fn with_slot(n: u64, r: u64, p: u64) -> String {
    let mut vault: Value = serde_json::from_str(ENCRYPTED).unwrap();
    let slot = &mut vault["header"]["slots"][1];
    assert_eq!(slot["type"], 1);
    slot["n"] = json!(n);
    slot["r"] = json!(r);
    slot["p"] = json!(p);
    vault.to_string()
}

#[test]
fn costly_aegis_scrypt_parameters_are_refused_before_any_derivation() {
    let limits = Limits::default();
    for (n, r, p) in [
        (1 << 40, 8, 1),
        (1 << 62, 1 << 30, 1),
        (1 << 21, 8, 1),
        (1 << 15, 8, 1_000_000),
    ] {
        let vault = with_slot(n, r, p);
        let error = quickly(|| {
            read(
                Format::Aegis,
                vault.as_bytes(),
                Some(&password(PASSWORD)),
                &limits,
            )
        })
        .unwrap_err();
        assert!(
            matches!(
                error,
                ImportError::TooCostly {
                    format: Format::Aegis,
                    ..
                }
            ),
            "n={n} r={r} p={p}: {error}"
        );
    }
    // The app's own parameters are over a tighter bound too.
    let tight = Limits {
        max_kdf_memory_kib: 1024,
        ..Limits::default()
    };
    let error = read(
        Format::Aegis,
        ENCRYPTED.as_bytes(),
        Some(&password(PASSWORD)),
        &tight,
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "this aegis export's key derivation is too costly: password slot 2 asks scrypt for 32768 KiB of memory (n = 32768, r = 8), more than 1024 KiB"
    );
    // Many password slots together are bounded as one.
    let mut vault: Value = serde_json::from_str(ENCRYPTED).unwrap();
    let slot = vault["header"]["slots"][1].clone();
    vault["header"]["slots"] = Value::Array(vec![slot; 200]);
    let error = quickly(|| {
        read(
            Format::Aegis,
            vault.to_string().as_bytes(),
            Some(&password("x")),
            &limits,
        )
    })
    .unwrap_err();
    assert!(matches!(error, ImportError::TooCostly { .. }), "{error}");
}

#[test]
fn invalid_aegis_scrypt_parameters_are_malformed() {
    for (n, r, p) in [
        (0, 8, 1),
        (1, 8, 1),
        (1000, 8, 1),
        (1 << 10, 0, 1),
        (1 << 10, 8, 0),
    ] {
        let vault = with_slot(n, r, p);
        let error = read(
            Format::Aegis,
            vault.as_bytes(),
            Some(&password(PASSWORD)),
            &Limits::default(),
        )
        .unwrap_err();
        assert!(
            matches!(error, ImportError::Malformed { .. }),
            "n={n} r={r} p={p}: {error}"
        );
    }
}

#[test]
fn truncated_aegis_vaults_give_errors_not_panics() {
    let limits = Limits::default();
    for data in [PLAIN, ENCRYPTED] {
        for end in (0..data.len() - 2).step_by(7) {
            let cut = &data.as_bytes()[..end];
            // Only JSON that still parses reaches the key derivation, and a
            // cut JSON document never does.
            let result = read(Format::Aegis, cut, Some(&password(PASSWORD)), &limits);
            let error = result.unwrap_err();
            assert_no_secret(&error.to_string());
        }
    }
}

#[test]
fn bit_flipped_aegis_vaults_give_errors_or_flagged_entries_not_panics() {
    let limits = Limits::default();
    // The plain vault: every 5th byte, one bit each.
    for at in (0..PLAIN.len()).step_by(5) {
        let mut data = PLAIN.as_bytes().to_vec();
        data[at] ^= 0x04;
        for text in messages(&read(Format::Aegis, &data, None, &limits)) {
            assert_no_secret(&text);
        }
    }
    // The encrypted vault: a few flips in what is authenticated (each costs
    // a scrypt derivation).
    let vault: Value = serde_json::from_str(ENCRYPTED).unwrap();
    let mut cases = Vec::new();
    for (path, at) in [
        ("/db", 10),
        ("/header/params/tag", 3),
        ("/header/params/nonce", 0),
        ("/header/slots/1/key", 5),
        ("/header/slots/1/key_params/tag", 31),
    ] {
        let mut changed = vault.clone();
        let field = changed.pointer_mut(path).unwrap();
        let mut text = field.as_str().unwrap().to_owned().into_bytes();
        text[at] = if text[at] == b'a' { b'b' } else { b'a' };
        *field = Value::String(String::from_utf8(text).unwrap());
        cases.push((path, changed.to_string()));
    }
    for (path, data) in cases {
        let error = read(
            Format::Aegis,
            data.as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                ImportError::WrongPassword { .. } | ImportError::Malformed { .. }
            ),
            "{path}: {error}"
        );
        assert_no_secret(&error.to_string());
    }
}

#[test]
fn no_aegis_error_or_reason_holds_a_secret_or_the_password() {
    let entries = read(Format::Aegis, PLAIN.as_bytes(), None, &Limits::default()).unwrap();
    let reasons: Vec<&str> = entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Invalid(invalid) => Some(invalid.reason.as_str()),
            Entry::Otp(_) => None,
        })
        .collect();
    assert_eq!(reasons.len(), 2, "{reasons:?}");
    assert!(reasons[0].contains("steam"), "{reasons:?}");
    assert!(reasons[1].contains("yandex"), "{reasons:?}");
    // A secret of the wrong type, bad base32 and odd numbers are flagged per
    // entry without quoting the value.
    let mut vault: Value = serde_json::from_str(PLAIN).unwrap();
    let secret = secrets()[0].clone();
    vault["db"]["entries"][0]["info"]["secret"] = json!(format!("{secret}!!"));
    vault["db"]["entries"][1]["info"]["secret"] = json!([secret.clone()]);
    vault["db"]["entries"][2]["info"]["digits"] = json!(secret.clone());
    vault["db"]["entries"][3]["info"]["algo"] = json!(secret.clone());
    vault["db"]["entries"][5]["type"] = json!(secret.clone());
    let entries = read(
        Format::Aegis,
        vault.to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap();
    for index in [0, 1, 2, 3, 5] {
        let Entry::Invalid(invalid) = &entries[index] else {
            panic!("entry {index} should be invalid");
        };
        assert_no_secret(&invalid.reason);
        assert!(!invalid.reason.contains(&secret), "{}", invalid.reason);
    }
    // The whole entries list of the wrong type: an error without values.
    vault["db"]["entries"] = json!(secret.clone());
    let error = read(
        Format::Aegis,
        vault.to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, ImportError::Malformed { .. }), "{error}");
    assert_no_secret(&error.to_string());
    assert!(!error.to_string().contains(&secret));
}

#[test]
fn the_entry_bound_applies_to_aegis_vaults() {
    for fixture in &FIXTURES {
        fixture.check_entry_bound();
    }
}

#[test]
fn aegis_vaults_are_detected_and_other_shapes_are_not_taken_for_them() {
    assert_eq!(detect(PLAIN.as_bytes()), Some(Format::Aegis));
    assert_eq!(detect(ENCRYPTED.as_bytes()), Some(Format::Aegis));
    for other in [
        r#"{"items":[]}"#,
        r#"{"encrypted":false,"items":[]}"#,
        r#"{"services":[],"schemaVersion":4}"#,
        r#"[{"secret":"JBSWY3DPEHPK3PXP","label":"a","type":"TOTP"}]"#,
        r#"{"version":1,"entries":[]}"#,
        r#"{"version":1,"header":"x","db":{}}"#,
    ] {
        assert_ne!(detect(other.as_bytes()), Some(Format::Aegis), "{other}");
    }
}

#[test]
fn an_unknown_aegis_vault_version_is_refused() {
    let mut vault: Value = serde_json::from_str(PLAIN).unwrap();
    vault["version"] = json!(2);
    let error = read(
        Format::Aegis,
        vault.to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "not a valid aegis file: vault version 2 is not supported"
    );
}
