//! The andOTP reader on backups written by
//! `tests/data/andotp/make_andotp.py` from andOTP's sources with Python's
//! `cryptography` (PBKDF2-HMAC-SHA1 with 150 000 iterations, inside the
//! app's own 140 000..160 000).

use serde_json::{Value, json};
use totpd_import::{Entry, Format, ImportError, Limits, detect, read};

use crate::expected::{Fixture, messages, password, quickly};

const PLAIN: &str = include_str!("../data/andotp/andotp_plain.json");
const ENCRYPTED: &[u8] = include_bytes!("../data/andotp/andotp_encrypted.json.aes");
const EXPECTED: &str = include_str!("../data/andotp/andotp.expected.json");
const PASSWORD: &str = "andotp test password ✓";

fn secrets() -> Vec<String> {
    let items: Value = serde_json::from_str(PLAIN).unwrap();
    items
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            item["secret"]
                .as_str()
                .unwrap()
                .trim_end_matches('=')
                .to_owned()
        })
        .collect()
}

fn assert_no_secret(text: &str) {
    let secrets = secrets();
    let secrets: Vec<&str> = secrets.iter().map(String::as_str).collect();
    crate::expected::assert_no_secret(text, &secrets, PASSWORD);
}

/// The encrypted fixture with another iteration count.
fn with_iterations(count: u32) -> Vec<u8> {
    let mut data = ENCRYPTED.to_vec();
    data[..4].copy_from_slice(&count.to_be_bytes());
    data
}

const FIXTURES: [Fixture; 2] = [
    Fixture {
        format: Format::Andotp,
        data: PLAIN.as_bytes(),
        password: None,
        expected: EXPECTED,
    },
    Fixture {
        format: Format::Andotp,
        data: ENCRYPTED,
        password: Some(PASSWORD),
        expected: EXPECTED,
    },
];

#[test]
fn plain_and_encrypted_andotp_backups_give_every_entry_in_order() {
    for fixture in &FIXTURES {
        fixture.check_reads();
    }
}

#[test]
fn an_encrypted_andotp_backup_needs_its_password_and_refuses_a_wrong_one() {
    FIXTURES[1].check_password_refusals();
}

#[test]
fn a_huge_andotp_iteration_count_is_refused_before_any_derivation() {
    for count in [u32::MAX, 2_000_001, 1 << 30] {
        let data = with_iterations(count);
        let error = quickly(|| {
            read(
                Format::Andotp,
                &data,
                Some(&password(PASSWORD)),
                &Limits::default(),
            )
        })
        .unwrap_err();
        assert!(matches!(error, ImportError::TooCostly { .. }), "{error}");
    }
    let tight = Limits {
        max_kdf_iterations: 100_000,
        ..Limits::default()
    };
    let error = read(Format::Andotp, ENCRYPTED, None, &tight).unwrap_err();
    assert_eq!(
        error.to_string(),
        "this andotp export's key derivation is too costly: PBKDF2 with 150000 iterations, more than 100000"
    );
    let error = read(
        Format::Andotp,
        &with_iterations(0),
        Some(&password(PASSWORD)),
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, ImportError::Malformed { .. }), "{error}");
}

#[test]
fn the_older_andotp_label_holds_the_issuer_before_a_dash() {
    let entries = read(Format::Andotp, PLAIN.as_bytes(), None, &Limits::default()).unwrap();
    let Entry::Otp(dave) = &entries[5] else {
        panic!("invalid")
    };
    assert_eq!(dave.account, "dave");
    assert_eq!(dave.issuer.as_deref(), Some("Forum"));
    // With an issuer key, the label is kept whole, dash or colon.
    let mut items: Value = serde_json::from_str(PLAIN).unwrap();
    items[0]["label"] = json!("Work - alice:x");
    let entries = read(
        Format::Andotp,
        items.to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap();
    let Entry::Otp(alice) = &entries[0] else {
        panic!("invalid")
    };
    assert_eq!(alice.account, "Work - alice:x");
    assert_eq!(alice.issuer.as_deref(), Some("Example Mail"));
}

#[test]
fn truncated_and_bit_flipped_andotp_backups_give_errors_not_panics() {
    let limits = Limits::default();
    for end in (0..PLAIN.len() - 1).step_by(7) {
        let error = read(Format::Andotp, &PLAIN.as_bytes()[..end], None, &limits).unwrap_err();
        assert_no_secret(&error.to_string());
    }
    for at in (0..PLAIN.len()).step_by(5) {
        let mut data = PLAIN.as_bytes().to_vec();
        data[at] ^= 0x04;
        for text in messages(&read(Format::Andotp, &data, None, &limits)) {
            assert_no_secret(&text);
        }
    }
    // Cut before the tag is whole: refused before any derivation.
    for end in [0, 1, 3, 4, 16, 28, 43] {
        let error = quickly(|| {
            read(
                Format::Andotp,
                &ENCRYPTED[..end],
                Some(&password(PASSWORD)),
                &limits,
            )
        })
        .unwrap_err();
        assert!(
            matches!(error, ImportError::Malformed { .. }),
            "{end}: {error}"
        );
    }
    // Each of these costs a derivation: a few cuts and flips.
    for end in [44, 100, ENCRYPTED.len() - 1] {
        let error = read(
            Format::Andotp,
            &ENCRYPTED[..end],
            Some(&password(PASSWORD)),
            &limits,
        )
        .unwrap_err();
        assert!(
            matches!(error, ImportError::WrongPassword { .. }),
            "{end}: {error}"
        );
    }
    for at in [0, 3, 4, 20, 30, 200, ENCRYPTED.len() - 1] {
        let mut data = ENCRYPTED.to_vec();
        data[at] ^= 0x80;
        let error = read(Format::Andotp, &data, Some(&password(PASSWORD)), &limits).unwrap_err();
        assert!(
            matches!(
                error,
                ImportError::WrongPassword { .. } | ImportError::TooCostly { .. }
            ),
            "{at}: {error}"
        );
        assert_no_secret(&error.to_string());
    }
}

#[test]
fn no_andotp_error_or_reason_holds_a_secret_or_the_password() {
    let entries = read(Format::Andotp, PLAIN.as_bytes(), None, &Limits::default()).unwrap();
    let Entry::Invalid(steam) = &entries[4] else {
        panic!("the Steam entry should be invalid")
    };
    assert!(steam.reason.contains("steam"), "{}", steam.reason);
    let mut items: Value = serde_json::from_str(PLAIN).unwrap();
    let secret = secrets()[0].clone();
    items[0]["secret"] = json!(format!("{secret}!!"));
    items[1]["secret"] = json!([secret.clone()]);
    items[2]["digits"] = json!(secret.clone());
    items[3]["type"] = json!(secret.clone());
    items[5]["algorithm"] = json!(secret.clone());
    let entries = read(
        Format::Andotp,
        items.to_string().as_bytes(),
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
    let error = read(
        Format::Andotp,
        json!([secret.clone()]).to_string().as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap_err();
    assert!(matches!(error, ImportError::Malformed { .. }), "{error}");
    assert!(!error.to_string().contains(&secret), "{error}");
}

#[test]
fn the_entry_bound_applies_to_andotp_backups() {
    for fixture in &FIXTURES {
        fixture.check_entry_bound();
    }
}

#[test]
fn andotp_backups_are_detected_and_other_shapes_are_not_taken_for_them() {
    assert_eq!(detect(PLAIN.as_bytes()), Some(Format::Andotp));
    assert_eq!(detect(ENCRYPTED), Some(Format::Andotp));
    for other in [
        &br#"{"items":[]}"#[..],
        br#"[]"#,
        br#"[{"name":"a","secret":"JBSWY3DPEHPK3PXP"}]"#,
        br#"{"services":[],"schemaVersion":4}"#,
        // Too short to be an encrypted backup, or a count out of range, or text.
        &ENCRYPTED[..43],
        &with_iterations(10)[..],
        &with_iterations(0x7fff_ffff)[..],
        &[0u8; 64][..],
        b"\x00\x02\x49\x70 plain text that is long enough to hold a header and a tag",
    ] {
        assert_ne!(detect(other), Some(Format::Andotp), "{other:?}");
    }
    // The three formats of this module set are told apart.
    let aegis = include_str!("../data/aegis/aegis_plain.json");
    let twofas = include_str!("../data/2fas/2fas_plain.2fas");
    assert_eq!(detect(aegis.as_bytes()), Some(Format::Aegis));
    assert_eq!(detect(twofas.as_bytes()), Some(Format::TwoFas));
    // Each reader refuses the others' files as malformed, without panics.
    for (format, data) in [
        (Format::Andotp, aegis.as_bytes()),
        (Format::Andotp, twofas.as_bytes()),
        (Format::Aegis, PLAIN.as_bytes()),
        (Format::Aegis, ENCRYPTED),
        (Format::TwoFas, PLAIN.as_bytes()),
        (Format::TwoFas, ENCRYPTED),
    ] {
        let error = read(format, data, None, &Limits::default()).unwrap_err();
        assert!(
            matches!(error, ImportError::Malformed { .. }),
            "{format}: {error}"
        );
    }
}
