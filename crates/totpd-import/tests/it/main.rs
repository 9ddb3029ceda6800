//! The line-based readers, on URIs written out here and on Google exports
//! encoded by Google's protobuf runtime (`totpd-otp`'s
//! `tests/data/make_google_export.py`, output in `google_export.txt`).

// The workspace denies these in library code; clippy.toml lifts them inside
// `#[test]` functions only, and this whole binary is test code.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod aegis;
mod andotp;
mod bitwarden;
mod ente;
mod expected;
mod onepux;
mod proton;
mod qr;
mod twofas;

use totpd_import::{Entry, Format, ImportError, Limits, read};
use totpd_otp::{Algorithm, OtpKind, OtpParams};

const GOOGLE: &str = include_str!("../../../totpd-otp/tests/data/google_export.txt");

fn google(name: &str) -> &'static str {
    GOOGLE
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in google_export.txt"))
}

/// `(account, issuer)` of an imported entry, or the reason of an invalid one.
fn summary(entry: &Entry) -> Result<(String, Option<String>), String> {
    match entry {
        Entry::Otp(OtpParams {
            account, issuer, ..
        }) => Ok((account.clone(), issuer.clone())),
        Entry::Invalid(invalid) => Err(invalid.reason.clone()),
    }
}

fn otp(entry: &Entry) -> &OtpParams {
    match entry {
        Entry::Otp(params) => params,
        Entry::Invalid(invalid) => panic!("invalid: {}", invalid.reason),
    }
}

const LIST: &str = "\u{feff}# exported by hand\n\
    otpauth://totp/GitHub:alice?secret=JBSWY3DPEHPK3PXP&issuer=GitHub\n\
    \n\
    \t otpauth://hotp/Bank:bob?secret=GEZDGNBVGY3TQOJQ&counter=7&digits=8  \n\
    otpauth://steam/Steam:carol?secret=JBSWY3DPEHPK3PXP\n\
    https://example.com/not-a-uri\n\
    OTPAUTH://TOTP/dave?secret=JBSWY3DPEHPK3PXP&algorithm=SHA256&period=60\n";

#[test]
fn an_otpauth_list_gives_one_entry_per_uri_line_in_order() {
    for format in [Format::Otpauth, Format::Auto] {
        let entries = read(format, LIST.as_bytes(), None, &Limits::default()).unwrap();
        assert_eq!(entries.len(), 5, "{format}");
        assert_eq!(
            summary(&entries[0]),
            Ok(("alice".to_owned(), Some("GitHub".to_owned())))
        );
        let bob = otp(&entries[1]);
        assert_eq!(bob.kind, OtpKind::Hotp { counter: 7 });
        assert_eq!(bob.digits.get(), 8);
        assert_eq!(bob.secret.as_bytes(), b"1234567890");
        let steam = summary(&entries[2]).unwrap_err();
        assert!(steam.contains("steam"), "{steam}");
        let https = summary(&entries[3]).unwrap_err();
        assert!(https.contains("otpauth"), "{https}");
        let dave = otp(&entries[4]);
        assert_eq!(dave.algorithm, Algorithm::Sha256);
        assert!(matches!(dave.kind, OtpKind::Totp { period } if period.get() == 60));
    }
}

#[test]
fn no_reason_repeats_the_secret() {
    let text = "otpauth://totp/x?secret=SECRETSECRET1!&issuer=Acme\n\
        otpauth://weird/x?secret=SECRETSECRET2\n";
    let entries = read(Format::Otpauth, text.as_bytes(), None, &Limits::default()).unwrap();
    for entry in &entries {
        let reason = summary(entry).unwrap_err();
        assert!(!reason.contains("SECRETSECRET"), "{reason}");
    }
}

#[test]
fn google_batches_give_every_entry_and_refuse_the_unusable_ones_alone() {
    let text = format!("{}\n{}\n", google("part_one"), google("part_two"));
    for format in [Format::Google, Format::Auto, Format::Otpauth] {
        let entries = read(format, text.as_bytes(), None, &Limits::default()).unwrap();
        let names: Vec<_> = entries.iter().map(summary).collect();
        assert_eq!(
            names,
            [
                Ok(("grace".to_owned(), Some("Part One".to_owned()))),
                Ok(("heidi".to_owned(), Some("Part Two".to_owned()))),
            ],
            "{format}"
        );
    }
    // The mixed batch has an MD5 entry and one with an empty secret: both
    // invalid, the others imported.
    let entries = read(
        Format::Auto,
        google("mixed").as_bytes(),
        None,
        &Limits::default(),
    )
    .unwrap();
    let outcomes: Vec<bool> = entries.iter().map(|e| matches!(e, Entry::Otp(_))).collect();
    assert_eq!(
        outcomes.iter().filter(|ok| !**ok).count(),
        2,
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().filter(|ok| **ok).count() >= 3,
        "{outcomes:?}"
    );
}

#[test]
fn google_takes_only_migration_uris() {
    let text = format!(
        "{}\notpauth://totp/a?secret=JBSWY3DPEHPK3PXP\n",
        google("single")
    );
    let entries = read(Format::Google, text.as_bytes(), None, &Limits::default()).unwrap();
    assert!(matches!(entries[0], Entry::Otp(_)));
    assert_eq!(
        summary(&entries[1]).unwrap_err(),
        "not an otpauth-migration:// URI"
    );
}

#[test]
fn files_that_are_no_format_are_refused_whole() {
    let limits = Limits::default();
    for junk in [
        &b""[..],
        b"# only a comment\n\n",
        b"hello\nworld\n",
        b"\xff\xfe\x00",
    ] {
        assert_eq!(
            read(Format::Auto, junk, None, &limits).unwrap_err(),
            ImportError::UnknownFormat
        );
    }
    let error = read(Format::Otpauth, b"\xff\xfe", None, &limits).unwrap_err();
    assert_eq!(
        error.to_string(),
        "not a valid otpauth file: the text is not UTF-8"
    );
    let error = read(Format::Google, b"\n# nothing\n", None, &limits).unwrap_err();
    assert_eq!(
        error.to_string(),
        "not a valid google file: it holds no URI"
    );
    assert_eq!(
        ImportError::UnknownFormat.to_string(),
        "the file is not a format totpd can import (qr, otpauth, google, aegis, 2fas, andotp, bitwarden, 1pux, ente, proton)"
    );
}

#[test]
fn the_entry_bound_stops_the_read() {
    let line = "otpauth://totp/a?secret=JBSWY3DPEHPK3PXP\n";
    let limits = Limits {
        max_entries: 3,
        ..Limits::default()
    };
    assert_eq!(
        read(Format::Auto, line.repeat(3).as_bytes(), None, &limits)
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        read(Format::Auto, line.repeat(4).as_bytes(), None, &limits).unwrap_err(),
        ImportError::TooManyEntries { max: 3 }
    );
    // A batch counts each of its entries.
    let limits = Limits {
        max_entries: 2,
        ..Limits::default()
    };
    assert!(matches!(
        read(Format::Google, google("mixed").as_bytes(), None, &limits),
        Err(ImportError::TooManyEntries { max: 2 })
    ));
}

#[test]
fn text_without_a_single_uri_is_refused_whole_even_when_its_format_is_named() {
    for format in [Format::Otpauth, Format::Google, Format::Ente] {
        let error = read(format, b"hello\nworld\n", None, &Limits::default()).unwrap_err();
        assert!(
            matches!(error, ImportError::Malformed { .. }),
            "{format}: {error}"
        );
    }
}
