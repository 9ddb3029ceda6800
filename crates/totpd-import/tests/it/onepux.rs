//! The 1Password reader, on archives written by Python's `zipfile` in
//! `tests/data/onepux/make_onepux.py` from 1Password's 1PUX documentation.

use std::io::Write;

use totpd_import::{Entry, Format, ImportError, Limits, detect, read};

use crate::expected::check;

const EXPORT: &[u8] = include_bytes!("../data/onepux/export.1pux");
const EXPECTED: &str = include_str!("../data/onepux/export.expected.json");
const BOMB: &[u8] = include_bytes!("../data/onepux/bomb.1pux");
const NO_EXPORT_DATA: &[u8] = include_bytes!("../data/onepux/no_export_data.1pux");

const SECRETS: [&str; 4] = [
    "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
    "JBSWY3DPEHPK3PXP",
    "jbsw y3dp",
    "not a secret!",
];

#[test]
fn the_export_gives_every_one_time_password_field_in_order_and_skips_the_rest() {
    for format in [Format::OnePux, Format::Auto] {
        let entries = read(format, EXPORT, None, &Limits::default()).unwrap();
        check(&entries, EXPECTED);
    }
    assert_eq!(detect(EXPORT), Some(Format::OnePux));
}

#[test]
fn a_zip_bomb_stops_at_the_byte_bound() {
    for limits in [
        Limits {
            max_archive_bytes: 1024 * 1024,
            ..Limits::default()
        },
        Limits::default(),
    ] {
        let error = read(Format::Auto, BOMB, None, &limits).unwrap_err();
        let ImportError::ArchiveTooLarge { reason } = &error else {
            panic!("{error:?}");
        };
        assert!(reason.contains("export.data"), "{reason}");
    }
}

#[test]
fn an_archive_with_too_many_members_is_refused_before_reading_them() {
    let limits = Limits {
        max_archive_members: 2,
        ..Limits::default()
    };
    // export.attributes, export.data and files/: three.
    let error = read(Format::OnePux, EXPORT, None, &limits).unwrap_err();
    assert!(
        matches!(error, ImportError::ArchiveTooLarge { .. }),
        "{error:?}"
    );
    // An archive of many empty members, made here.
    let mut buffer = std::io::Cursor::new(Vec::new());
    {
        let mut writer = zip::ZipWriter::new(&mut buffer);
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        for index in 0..3000 {
            writer
                .start_file(format!("files/{index}"), options)
                .unwrap();
        }
        writer.start_file("export.data", options).unwrap();
        writer.write_all(b"{\"accounts\":[]}").unwrap();
        writer.finish().unwrap();
    }
    let limits = Limits {
        max_archive_members: 1000,
        ..Limits::default()
    };
    let error = read(Format::Auto, buffer.get_ref(), None, &limits).unwrap_err();
    assert!(
        matches!(error, ImportError::ArchiveTooLarge { .. }),
        "{error:?}"
    );
}

#[test]
fn archives_without_export_data_or_not_zips_are_malformed() {
    let error = read(Format::OnePux, NO_EXPORT_DATA, None, &Limits::default()).unwrap_err();
    assert_eq!(
        error.to_string(),
        "not a valid 1pux file: the archive has no export.data"
    );
    // Not detected as 1pux either: it names no export.data.
    assert_eq!(detect(NO_EXPORT_DATA), None);
    for junk in [&b""[..], b"{\"accounts\":[]}", b"PK\x03\x04garbage"] {
        let error = read(Format::OnePux, junk, None, &Limits::default()).unwrap_err();
        assert!(matches!(error, ImportError::Malformed { .. }), "{error:?}");
    }
}

#[test]
fn damaged_archives_give_errors_not_panics_and_no_secret() {
    let mut outcomes = Vec::new();
    for end in 0..EXPORT.len() {
        outcomes.push(read(
            Format::OnePux,
            &EXPORT[..end],
            None,
            &Limits::default(),
        ));
    }
    for at in 0..EXPORT.len() {
        for bit in [0x01, 0x80] {
            let mut bytes = EXPORT.to_vec();
            bytes[at] ^= bit;
            outcomes.push(read(Format::OnePux, &bytes, None, &Limits::default()));
        }
    }
    for outcome in outcomes {
        let text = match outcome {
            Ok(entries) => entries
                .iter()
                .filter_map(|entry| match entry {
                    Entry::Invalid(invalid) => Some(invalid.reason.clone()),
                    Entry::Otp(_) => None,
                })
                .collect::<Vec<_>>()
                .join(" "),
            Err(error) => format!("{error} {error:?}"),
        };
        for secret in SECRETS {
            assert!(!text.contains(secret), "{text}");
        }
    }
}

#[test]
fn the_entry_bound_stops_the_read() {
    let limits = Limits {
        max_entries: 4,
        ..Limits::default()
    };
    assert_eq!(
        read(Format::OnePux, EXPORT, None, &limits).unwrap_err(),
        ImportError::TooManyEntries { max: 4 }
    );
}
