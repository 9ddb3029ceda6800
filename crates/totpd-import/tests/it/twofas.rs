//! The 2FAS reader on backups written by `tests/data/2fas/make_2fas.py`
//! from the format 2FAS writes (as Aegis' importer reads it) with Python's
//! `cryptography` (PBKDF2-HMAC-SHA256, the app's 10 000 iterations).

use serde_json::{Value, json};
use totpd_import::{Entry, Format, ImportError, Limits, detect, read};

use crate::expected::{Fixture, messages, password};

const PLAIN: &str = include_str!("../data/2fas/2fas_plain.2fas");
const ENCRYPTED: &str = include_str!("../data/2fas/2fas_encrypted.2fas");
const EXPECTED: &str = include_str!("../data/2fas/2fas.expected.json");
const PASSWORD: &str = "2fas test password ✓";

fn secrets() -> Vec<String> {
    let backup: Value = serde_json::from_str(PLAIN).unwrap();
    backup["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|service| service["secret"].as_str().unwrap().to_owned())
        .collect()
}

fn assert_no_secret(text: &str) {
    let secrets = secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    crate::expected::assert_no_secret(text, &secrets, PASSWORD);
}

const FIXTURES: [Fixture; 2] = [
    Fixture {
        format: Format::TwoFas,
        data: PLAIN.as_bytes(),
        password: None,
        expected: EXPECTED,
    },
    Fixture {
        format: Format::TwoFas,
        data: ENCRYPTED.as_bytes(),
        password: Some(PASSWORD),
        expected: EXPECTED,
    },
];

#[test]
fn plain_and_encrypted_2fas_backups_give_every_entry_in_order() {
    for fixture in &FIXTURES {
        fixture.check_reads();
    }
}

#[test]
fn an_encrypted_2fas_backup_needs_its_password_and_refuses_a_wrong_one() {
    FIXTURES[1].check_password_refusals();
}

#[test]
fn the_2fas_iteration_count_is_held_to_the_limit() {
    let limits = Limits {
        max_kdf_iterations: 9_999,
        ..Limits::default()
    };
    let error = read(
        Format::TwoFas,
        ENCRYPTED.as_bytes(),
        Some(&password(PASSWORD)),
        &limits,
    )
    .unwrap_err();
    assert!(matches!(error, ImportError::TooCostly { .. }), "{error}");
}

#[test]
fn the_2fas_account_comes_from_the_label_when_the_account_is_missing() {
    let mut backup: Value = serde_json::from_str(PLAIN).unwrap();
    let otp = &mut backup["services"][0]["otp"];
    otp.as_object_mut().unwrap().remove("account");
    otp["label"] = json!("Example Mail:alice@example.com");
    let entries = read(
        Format::TwoFas,
        backup.to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap();
    let Entry::Otp(params) = &entries[0] else {
        panic!("invalid")
    };
    assert_eq!(params.account, "alice@example.com");
    assert_eq!(params.issuer.as_deref(), Some("Example Mail"));
}

#[test]
fn truncated_and_bit_flipped_2fas_backups_give_errors_not_panics() {
    let limits = Limits::default();
    for data in [PLAIN, ENCRYPTED] {
        for end in (0..data.len() - 1).step_by(11) {
            let error = read(
                Format::TwoFas,
                &data.as_bytes()[..end],
                Some(&password(PASSWORD)),
                &limits,
            )
            .unwrap_err();
            assert_no_secret(&error.to_string());
        }
    }
    for at in (0..PLAIN.len()).step_by(5) {
        let mut data = PLAIN.as_bytes().to_vec();
        data[at] ^= 0x04;
        for text in messages(&read(Format::TwoFas, &data, None, &limits)) {
            assert_no_secret(&text);
        }
    }
    // Each flip of the encrypted backup costs a derivation: a few, in each
    // of its three parts.
    let backup: Value = serde_json::from_str(ENCRYPTED).unwrap();
    let sealed = backup["servicesEncrypted"].as_str().unwrap();
    let salt_at = sealed.find(':').unwrap() + 1;
    let iv_at = sealed.rfind(':').unwrap() + 1;
    for at in [0, 40, salt_at - 3, salt_at + 4, iv_at + 2, sealed.len() - 1] {
        let mut text = sealed.as_bytes().to_vec();
        text[at] = if text[at] == b'A' { b'B' } else { b'A' };
        let mut changed = backup.clone();
        changed["servicesEncrypted"] = json!(String::from_utf8(text).unwrap());
        let error = read(
            Format::TwoFas,
            changed.to_string().as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        )
        .unwrap_err();
        assert!(
            matches!(
                error,
                ImportError::WrongPassword { .. } | ImportError::Malformed { .. }
            ),
            "at {at}: {error}"
        );
        assert_no_secret(&error.to_string());
    }
    for broken in [
        "",
        "AAAA",
        "AAAA:AAAA",
        "!!:AAAA:AAAA",
        "AAAA:AAAA:AAAAAAAAAAAAAAAA",
    ] {
        let mut changed = backup.clone();
        changed["servicesEncrypted"] = json!(broken);
        let error = read(
            Format::TwoFas,
            changed.to_string().as_bytes(),
            Some(&password(PASSWORD)),
            &limits,
        )
        .unwrap_err();
        assert!(
            matches!(error, ImportError::Malformed { .. }),
            "{broken:?}: {error}"
        );
    }
}

#[test]
fn no_2fas_error_or_reason_holds_a_secret_or_the_password() {
    let entries = read(Format::TwoFas, PLAIN.as_bytes(), None, &Limits::default()).unwrap();
    let Entry::Invalid(steam) = &entries[4] else {
        panic!("the Steam entry should be invalid")
    };
    assert!(steam.reason.contains("steam"), "{}", steam.reason);
    let mut backup: Value = serde_json::from_str(PLAIN).unwrap();
    let secret = secrets()[0].clone();
    backup["services"][0]["secret"] = json!(format!("{secret}!!"));
    backup["services"][1]["secret"] = json!({ "value": secret.clone() });
    backup["services"][2]["otp"]["digits"] = json!(secret.clone());
    backup["services"][3]["otp"]["tokenType"] = json!(secret.clone());
    backup["services"][5]["otp"]["algorithm"] = json!(secret.clone());
    let entries = read(
        Format::TwoFas,
        backup.to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap();
    for index in [0, 1, 2, 3, 5] {
        let Entry::Invalid(invalid) = &entries[index] else {
            panic!("entry {index} should be invalid");
        };
        assert!(!invalid.reason.contains(&secret), "{}", invalid.reason);
    }
    backup["services"] = json!([secret.clone()]);
    let error = read(
        Format::TwoFas,
        backup.to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, ImportError::Malformed { .. }), "{error}");
    assert!(!error.to_string().contains(&secret), "{error}");
}

#[test]
fn the_entry_bound_applies_to_2fas_backups() {
    for fixture in &FIXTURES {
        fixture.check_entry_bound();
    }
}

#[test]
fn twofas_backups_are_detected_and_other_shapes_are_not_taken_for_them() {
    assert_eq!(detect(PLAIN.as_bytes()), Some(Format::TwoFas));
    assert_eq!(detect(ENCRYPTED.as_bytes()), Some(Format::TwoFas));
    for other in [
        r#"{"items":[]}"#,
        r#"{"encrypted":true,"passwordProtected":true,"data":"x"}"#,
        r#"{"services":[]}"#,
        r#"{"version":1,"header":{"slots":null,"params":null},"db":{"entries":[]}}"#,
        r#"[{"secret":"JBSWY3DPEHPK3PXP","label":"a","type":"TOTP"}]"#,
    ] {
        assert_ne!(detect(other.as_bytes()), Some(Format::TwoFas), "{other}");
    }
}
