//! The QR image reader on screenshots and photos drawn by
//! `tests/data/qr/make_qr.py` (Pillow, with codes encoded by segno and
//! qrcode), checked against the entries and codes that script computed
//! with Python's `hmac` (`expected.json`).

use std::time::Instant;

use serde_json::Value;
use totpd_import::{Entry, Format, ImportError, Limits, detect, read};
use totpd_otp::{OtpKind, Totp};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/qr");

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(format!("{DIR}/{name}")).unwrap()
}

fn expected() -> Value {
    serde_json::from_slice(&fixture("expected.json")).unwrap()
}

/// Checks `entries` against the expected list of one fixture.
fn check(name: &str, entries: &[Entry], want: &Value) {
    let want = want.as_array().unwrap();
    assert_eq!(entries.len(), want.len(), "{name}: {entries:?}");
    for (entry, want) in entries.iter().zip(want) {
        if let Some(reason) = want.get("invalid") {
            let Entry::Invalid(invalid) = entry else {
                panic!("{name}: expected an invalid entry, got {entry:?}");
            };
            assert!(
                invalid.reason.contains(reason.as_str().unwrap()),
                "{name}: {}",
                invalid.reason
            );
            continue;
        }
        let Entry::Otp(params) = entry else {
            panic!("{name}: {entry:?}");
        };
        assert_eq!(params.account, want["label"].as_str().unwrap(), "{name}");
        assert_eq!(params.issuer.as_deref(), want["issuer"].as_str(), "{name}");
        assert_eq!(want["type"], "totp", "{name}");
        let OtpKind::Totp { period } = params.kind else {
            panic!("{name}: not TOTP");
        };
        assert_eq!(u64::from(period.get()), want["period"].as_u64().unwrap());
        assert_eq!(
            params.algorithm.as_str(),
            want["algorithm"].as_str().unwrap()
        );
        assert_eq!(
            u64::from(params.digits.get()),
            want["digits"].as_u64().unwrap()
        );
        let totp = Totp {
            secret: params.secret.clone(),
            algorithm: params.algorithm,
            digits: params.digits,
            period,
        };
        for (time, code) in want["codes"].as_object().unwrap() {
            let time: u64 = time.parse().unwrap();
            assert_eq!(
                totp.code_at(time).to_string(),
                code.as_str().unwrap(),
                "{name} at {time}"
            );
        }
    }
}

#[test]
fn every_screenshot_and_photo_fixture_gives_its_entries_with_the_right_codes() {
    let expected = expected();
    let fixtures = expected["fixtures"].as_object().unwrap();
    assert!(fixtures.len() >= 11, "{}", fixtures.len());
    for (name, want) in fixtures {
        let data = fixture(name);
        assert_eq!(detect(&data), Some(Format::Qr), "{name}");
        let entries = read(Format::Qr, &data, None, &Limits::default())
            .unwrap_or_else(|error| panic!("{name}: {error}"));
        check(name, &entries, want);
    }
}

#[test]
fn auto_detects_the_images_and_reads_them_the_same() {
    let expected = expected();
    for name in ["shot_1x.png", "shot_q60.jpg", "shot.webp"] {
        let entries = read(Format::Auto, &fixture(name), None, &Limits::default()).unwrap();
        check(name, &entries, &expected["fixtures"][name]);
    }
}

#[test]
fn several_codes_on_a_page_come_in_reading_order_and_a_batch_gives_each_credential() {
    let names = |name: &str| -> Vec<String> {
        read(Format::Qr, &fixture(name), None, &Limits::default())
            .unwrap()
            .iter()
            .map(|entry| match entry {
                Entry::Otp(params) => params.account.clone(),
                Entry::Invalid(invalid) => format!("invalid: {}", invalid.reason),
            })
            .collect()
    };
    // Top right first, then the lower row left to right.
    assert_eq!(
        names("shot_three.png"),
        ["jörg@example.com", "carol", "alice"]
    );
    // One Google Authenticator transfer code, two credentials.
    assert_eq!(names("shot_3x.png"), ["erin@example.com", "frank"]);
}

#[test]
fn a_url_code_beside_an_otp_code_is_an_invalid_entry_that_does_not_repeat_the_url() {
    let entries = read(
        Format::Qr,
        &fixture("shot_url_and_otp.png"),
        None,
        &Limits::default(),
    )
    .unwrap();
    assert_eq!(entries.len(), 2);
    assert!(matches!(entries[0], Entry::Otp(_)));
    let Entry::Invalid(invalid) = &entries[1] else {
        panic!("{:?}", entries[1]);
    };
    assert!(invalid.reason.contains("otpauth://"), "{}", invalid.reason);
    assert!(
        !invalid.reason.contains("example.com"),
        "{}",
        invalid.reason
    );
}

#[test]
fn an_image_whose_only_code_is_not_an_otp_uri_is_refused() {
    assert_eq!(
        read(
            Format::Qr,
            &fixture("shot_url_only.png"),
            None,
            &Limits::default()
        )
        .unwrap_err(),
        ImportError::NoOtpQrCode
    );
}

#[test]
fn an_image_without_a_code_is_refused() {
    assert_eq!(
        read(
            Format::Auto,
            &fixture("shot_no_qr.png"),
            None,
            &Limits::default()
        )
        .unwrap_err(),
        ImportError::NoQrCode
    );
}

#[test]
// The test reads the clock to show the refusal does not decode the pixels.
#[allow(clippy::disallowed_methods)]
fn a_decompression_bomb_is_refused_from_its_header_at_once() {
    let data = fixture("bomb.png");
    assert!(data.len() < 16 * 1024, "{}", data.len());
    let start = Instant::now();
    let error = read(Format::Auto, &data, None, &Limits::default()).unwrap_err();
    assert_eq!(
        error,
        ImportError::ImageTooLarge {
            width: 50_000,
            height: 50_000,
            max_pixels: Limits::default().max_image_pixels,
        }
    );
    // Decoding 2.5 G pixels would take seconds (and gigabytes).
    assert!(start.elapsed().as_millis() < 500, "{:?}", start.elapsed());
    // The bound is the caller's: a screenshot over it is refused too.
    let limits = Limits {
        max_image_pixels: 1920 * 1080 - 1,
        ..Limits::default()
    };
    assert!(matches!(
        read(Format::Qr, &fixture("shot_1x.png"), None, &limits),
        Err(ImportError::ImageTooLarge {
            width: 1920,
            height: 1080,
            ..
        })
    ));
}

#[test]
fn truncated_or_garbage_images_are_refused_with_the_decoders_reason() {
    let limits = Limits::default();
    let error = read(Format::Qr, &fixture("truncated.png"), None, &limits).unwrap_err();
    let ImportError::Image { reason } = &error else {
        panic!("{error:?}");
    };
    assert!(!reason.is_empty());
    let whole = fixture("shot_q60.jpg");
    let mut garbage = vec![
        b"\x89PNG\r\n\x1a\n".to_vec(),
        b"\xff\xd8\xff\xe0garbage".to_vec(),
        b"RIFF\x10\x00\x00\x00WEBPVP8 ".to_vec(),
        whole[..whole.len() / 3].to_vec(),
        b"GIF89a not a format totpd reads".to_vec(),
    ];
    // The JPEG with its middle scrambled still has a header and an end.
    let mut scrambled = whole.clone();
    for byte in &mut scrambled[whole.len() / 4..whole.len() / 2] {
        *byte = byte.wrapping_mul(31).wrapping_add(7);
    }
    garbage.push(scrambled);
    for data in garbage {
        match read(Format::Qr, &data, None, &limits) {
            Err(ImportError::Image { .. } | ImportError::NoQrCode) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn the_entry_bound_applies_to_the_codes_of_an_image() {
    let limits = Limits {
        max_entries: 1,
        ..Limits::default()
    };
    assert_eq!(
        read(Format::Qr, &fixture("shot_3x.png"), None, &limits).unwrap_err(),
        ImportError::TooManyEntries { max: 1 }
    );
}
