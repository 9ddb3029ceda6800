//! Google Authenticator exports, from payloads built outside this crate:
//! bytes written out by hand below, and URIs encoded by Google's protobuf
//! runtime (`tests/data/make_google_export.py`, output in `google_export.txt`).

use totpd_otp::google_export::{self, Base64Error, Batch, ProtobufError};
use totpd_otp::{Algorithm, EntryError, GoogleExportError, OtpKind, OtpParams, SecretError};

use crate::{digits, totp};

const GENERATED: &str = include_str!("../data/google_export.txt");

fn generated(name: &str) -> &'static str {
    GENERATED
        .lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in google_export.txt"))
}

/// Four entries and the batch fields, each byte explained.
#[rustfmt::skip]
const HAND_WRITTEN: &[u8] = &[
    // Field 1 (otp_parameters), wire type 2: key (1 << 3) | 2 = 0x0a; 48 bytes follow.
    0x0a, 0x30,
        // secret (1, bytes): 10 bytes, "0123456789".
        0x0a, 0x0a, b'0', b'1', b'2', b'3', b'4', b'5', b'6', b'7', b'8', b'9',
        // name (2, string): key 0x12, 8 bytes, "Acme:bob".
        0x12, 0x08, b'A', b'c', b'm', b'e', b':', b'b', b'o', b'b',
        // issuer (3, string): key 0x1a, 4 bytes, "Acme".
        0x1a, 0x04, b'A', b'c', b'm', b'e',
        // algorithm (4, varint): key 0x20, 2 = SHA256.
        0x20, 0x02,
        // digits (5, varint): key 0x28, 2 = eight.
        0x28, 0x02,
        // type (6, varint): key 0x30, 2 = TOTP.
        0x30, 0x02,
        // An unknown field 9 as fixed32 (key (9 << 3) | 5 = 0x4d): skipped.
        0x4d, 0xde, 0xad, 0xbe, 0xef,
        // An unknown field 10 as fixed64 (key (10 << 3) | 1 = 0x51): skipped.
        0x51, 1, 2, 3, 4, 5, 6, 7, 8,
    // Field 1 again: the second entry, 21 bytes.
    0x0a, 0x15,
        // secret: 5 bytes, "hello".
        0x0a, 0x05, b'h', b'e', b'l', b'l', b'o',
        // name: 3 bytes, "eve" (no issuer anywhere).
        0x12, 0x03, b'e', b'v', b'e',
        // type: 1 = HOTP. Algorithm and digits absent: SHA1, six.
        0x30, 0x01,
        // counter (7, varint): key 0x38, 300 = 0b10_0101100 -> 0xac 0x02.
        0x38, 0xac, 0x02,
        // An unknown field 15 as bytes (key (15 << 3) | 2 = 0x7a): skipped.
        0x7a, 0x02, 0xff, 0xff,
    // The third entry, 8 bytes: algorithm 9, which the format does not define.
    0x0a, 0x08,
        0x0a, 0x01, b'A',
        0x12, 0x01, b'x',
        0x20, 0x09,
    // The fourth entry, 4 bytes: a secret that claims 5 bytes but has 2.
    0x0a, 0x04,
        0x0a, 0x05, 0x01, 0x02,
    // version (2) = 1, batch_size (3) = 1, batch_index (4) = 0, batch_id (5) = 7.
    0x10, 0x01, 0x18, 0x01, 0x20, 0x00, 0x28, 0x07,
];

/// `HAND_WRITTEN` in base64, URL-encoded (Python's `base64.b64encode` and
/// `urllib.parse.quote(..., safe="")`).
const HAND_WRITTEN_URI: &str = "otpauth-migration://offline?data=\
    CjAKCjAxMjM0NTY3ODkSCEFjbWU6Ym9iGgRBY21lIAIoAjACTd6tvu9RAQIDBAUGBwgKFQoFaGVsbG8SA2V2ZTAB\
    OKwCegL%2F%2FwoICgFBEgF4IAkKBAoFAQIQARgBIAAoBw%3D%3D";

fn hand_written_batch() -> Batch {
    Batch {
        version: 1,
        batch_size: 1,
        batch_index: 0,
        batch_id: 7,
        entries: vec![
            Ok(OtpParams {
                algorithm: Algorithm::Sha256,
                digits: digits(8),
                ..totp(b"0123456789", Some("Acme"), "bob")
            }),
            Ok(OtpParams {
                kind: OtpKind::Hotp { counter: 300 },
                ..totp(b"hello", None, "eve")
            }),
            Err(EntryError::UnknownAlgorithm {
                index: 2,
                label: "x".into(),
                value: 9,
            }),
            Err(EntryError::Malformed {
                index: 3,
                reason: ProtobufError::Truncated { offset: 0 },
            }),
        ],
    }
}

#[test]
fn hand_written_payload_decodes_every_entry_on_its_own() {
    assert_eq!(
        google_export::decode_payload(HAND_WRITTEN),
        Ok(hand_written_batch())
    );
}

#[test]
fn hand_written_payload_decodes_the_same_through_its_uri() {
    assert_eq!(
        google_export::decode_batch(HAND_WRITTEN_URI),
        Ok(hand_written_batch())
    );
    assert_eq!(
        google_export::decode(HAND_WRITTEN_URI),
        Ok(hand_written_batch().entries)
    );
}

#[test]
fn a_single_entry_export_from_the_protobuf_runtime_decodes() {
    let batch = google_export::decode_batch(generated("single")).unwrap();
    assert_eq!(
        batch.entries,
        [Ok(totp(
            b"single-totp-secret!!",
            Some("Example"),
            "alice@example.com"
        ))]
    );
    // A negative int32 is a 10-byte varint on the wire.
    assert_eq!(batch.batch_id, -559038737);
    assert_eq!(
        (batch.version, batch.batch_size, batch.batch_index),
        (1, 1, 0)
    );
}

#[test]
fn url_safe_base64_without_padding_is_accepted() {
    let uri = generated("single_urlsafe_unpadded");
    assert!(uri.contains('_') && !uri.contains("%3D"), "{uri}");
    assert_eq!(
        google_export::decode_batch(uri),
        google_export::decode_batch(generated("single"))
    );
}

#[test]
fn a_mixed_batch_decodes_with_md5_and_empty_secret_failing_alone() {
    let entries = google_export::decode(generated("mixed")).unwrap();
    let expected = vec![
        Ok(totp(
            b"mixed-sha1-secret-20",
            Some("Sha One"),
            "alice@example.com",
        )),
        Ok(OtpParams {
            algorithm: Algorithm::Sha256,
            digits: digits(8),
            ..totp(b"mixed-sha256-secret-32-bytes!!!!", Some("Sha Two"), "bob")
        }),
        Err(EntryError::UnsupportedAlgorithm {
            index: 2,
            label: "Legacy:carol".into(),
            algorithm: "MD5",
        }),
        Ok(OtpParams {
            algorithm: Algorithm::Sha512,
            digits: digits(8),
            ..totp(
                b"mixed-sha512-secret-with-64-bytes-of-key-material-for-the-test!!",
                Some("Zürich Bank"),
                "jörg",
            )
        }),
        Ok(OtpParams {
            kind: OtpKind::Hotp { counter: 42 },
            ..totp(b"hotp-secret-20-bytes", Some("Counter Co"), "dave")
        }),
        Ok(totp(&[0, 1, 2, 3, 4, 5, 6, 7, 8, 9], None, "erin")),
        Err(EntryError::InvalidSecret {
            index: 6,
            label: "Empty:frank".into(),
            reason: SecretError::Empty,
        }),
    ];
    assert_eq!(entries, expected);
}

#[test]
fn entry_errors_name_the_entry_and_the_problem() {
    let entries = google_export::decode(generated("mixed")).unwrap();
    let messages: Vec<String> = entries
        .iter()
        .filter_map(|e| e.as_ref().err().map(ToString::to_string))
        .collect();
    assert_eq!(
        messages,
        [
            "entry 3 (\"Legacy:carol\") uses unsupported algorithm MD5",
            "entry 7 (\"Empty:frank\") has an unusable secret: secret is empty",
        ]
    );
    let hand = hand_written_batch();
    assert_eq!(
        hand.entries[2].as_ref().unwrap_err().to_string(),
        "entry 3 (\"x\") has unknown algorithm value 9"
    );
    assert_eq!(
        hand.entries[3].as_ref().unwrap_err().to_string(),
        "entry 4 is malformed: the message ends inside the field at byte 0"
    );
}

#[test]
fn the_parts_of_a_two_part_export_carry_their_batch_position() {
    let one = google_export::decode_batch(generated("part_one")).unwrap();
    let two = google_export::decode_batch(generated("part_two")).unwrap();
    assert_eq!((one.batch_size, one.batch_index, one.batch_id), (2, 0, 777));
    assert_eq!((two.batch_size, two.batch_index, two.batch_id), (2, 1, 777));
    assert_eq!(
        one.entries,
        [Ok(totp(b"first-part-secret-20", Some("Part One"), "grace"))]
    );
    assert_eq!(
        two.entries,
        [Ok(OtpParams {
            algorithm: Algorithm::Sha256,
            ..totp(b"second-part-secret20", Some("Part Two"), "heidi")
        })]
    );
}

#[test]
fn an_export_with_no_entries_decodes_to_an_empty_list() {
    let batch = google_export::decode_batch(generated("empty_batch")).unwrap();
    assert!(batch.entries.is_empty());
    assert_eq!(batch.batch_id, 5);
}

#[test]
fn scheme_and_host_are_matched_without_regard_to_case() {
    let uri =
        generated("single").replace("otpauth-migration://offline", "OTPAUTH-MIGRATION://Offline");
    assert_eq!(
        google_export::decode(&uri),
        google_export::decode(generated("single"))
    );
}

#[test]
fn a_raw_plus_in_the_data_is_base64_not_a_space() {
    // The payload [0x0a, 0x03, 0xfb, 0xef, 0xbe] encodes as "CgP7774=": its
    // '+' stays a '+' even when a tool did not percent-encode it.
    let bytes = [0x0a, 0x03, 0xfb, 0xef, 0xbe];
    let expected = google_export::decode_payload(&bytes);
    assert_eq!(
        google_export::decode_batch("otpauth-migration://offline?data=CgP7774="),
        expected
    );
    assert_eq!(
        google_export::decode_batch("otpauth-migration://offline?data=CgP7774%3D"),
        expected
    );
    assert_eq!(
        google_export::decode_batch("otpauth-migration://offline?data=CgP7774"),
        expected
    );
}

/// Rows of malformed export URIs and the error each must give.
#[test]
fn malformed_export_uris_are_refused_with_the_reason() {
    let table: Vec<(&str, GoogleExportError, &str)> = vec![
        (
            "otpauth://totp/bob?secret=JBSWY3DPEHPK3PXP",
            GoogleExportError::UnsupportedScheme {
                scheme: "otpauth".into(),
            },
            "unsupported scheme \"otpauth\" (expected \"otpauth-migration\")",
        ),
        (
            "JBSWY3DPEHPK3PXP:alice",
            GoogleExportError::UnsupportedScheme {
                scheme: String::new(),
            },
            "unsupported scheme (expected \"otpauth-migration\")",
        ),
        (
            "CgP7774=",
            GoogleExportError::MissingScheme,
            "not a URI: expected it to start with \"otpauth-migration://\"",
        ),
        (
            "otpauth-migration:offline?data=CgA",
            GoogleExportError::MissingSlashes,
            "expected \"//\" after \"otpauth-migration:\"",
        ),
        (
            "otpauth-migration://online?data=CgA",
            GoogleExportError::UnsupportedHost,
            "unsupported host (expected \"offline\")",
        ),
        (
            "otpauth-migration://offline?version=1",
            GoogleExportError::MissingData,
            "parameter \"data\" is missing",
        ),
        (
            "otpauth-migration://offline?data=",
            GoogleExportError::EmptyData,
            "parameter \"data\" is empty",
        ),
        (
            "otpauth-migration://offline?data=CgA&data=CgA",
            GoogleExportError::RepeatedParameter {
                name: Some("data"),
                first: 1,
                second: 2,
            },
            "parameter \"data\" appears twice (query parameters 1 and 2)",
        ),
        (
            "otpauth-migration://offline?data=Cg%A",
            GoogleExportError::InvalidPercentEncoding,
            "invalid percent-encoding in the query",
        ),
        (
            "otpauth-migration://offline?data=Cg*A",
            GoogleExportError::InvalidBase64(Base64Error::InvalidCharacter {
                byte: b'*',
                position: 3,
            }),
            "parameter \"data\" is not valid base64: invalid base64 character '*' at position 3",
        ),
        (
            "otpauth-migration://offline?data=Cg%00A",
            GoogleExportError::InvalidBase64(Base64Error::InvalidCharacter {
                byte: 0,
                position: 3,
            }),
            "parameter \"data\" is not valid base64: invalid base64 character 0x00 at position 3",
        ),
        (
            "otpauth-migration://offline?data=C=gA",
            GoogleExportError::InvalidBase64(Base64Error::PaddingNotAtEnd { position: 2 }),
            "parameter \"data\" is not valid base64: base64 padding '=' at position 2 is followed by more data",
        ),
        (
            "otpauth-migration://offline?data=CgAAA",
            GoogleExportError::InvalidBase64(Base64Error::InvalidLength { symbols: 5 }),
            "parameter \"data\" is not valid base64: base64 input has 5 characters, a length no encoder produces",
        ),
        (
            // [0x0a, 0x05, 0x01]: an entry claiming 5 bytes with 1 left.
            "otpauth-migration://offline?data=CgUB",
            GoogleExportError::Malformed(ProtobufError::Truncated { offset: 0 }),
            "malformed export payload: the message ends inside the field at byte 0",
        ),
        (
            // [0x08, 0x01]: field 1 as a varint instead of a message.
            "otpauth-migration://offline?data=CAE",
            GoogleExportError::Malformed(ProtobufError::WrongWireType {
                field: 1,
                wire_type: 0,
            }),
            "malformed export payload: field 1 has wire type 0, which does not fit its type",
        ),
        (
            // [0x10, 0x01, 0x0b]: version, then a group start (wire type 3).
            "otpauth-migration://offline?data=EAEL",
            GoogleExportError::Malformed(ProtobufError::UnsupportedWireType {
                wire_type: 3,
                offset: 2,
            }),
            "malformed export payload: unsupported wire type 3 at byte 2",
        ),
        (
            // [0x02, 0x00]: field number 0.
            "otpauth-migration://offline?data=AgA",
            GoogleExportError::Malformed(ProtobufError::InvalidFieldNumber { offset: 0 }),
            "malformed export payload: invalid field number at byte 0",
        ),
    ];
    for (uri, expected, message) in table {
        let error = google_export::decode(uri).unwrap_err();
        assert_eq!(error, expected, "{uri}");
        assert_eq!(error.to_string(), message, "{uri}");
    }
}

#[test]
fn an_entry_with_a_field_of_the_wrong_wire_type_fails_alone() {
    let bytes = [
        0x0a, 0x02, 0x08, 0x01, // entry 1: secret (field 1) as a varint
        0x0a, 0x03, 0x0a, 0x01, 0x41, // entry 2: secret "A"
    ];
    let batch = google_export::decode_payload(&bytes).unwrap();
    assert_eq!(
        batch.entries,
        [
            Err(EntryError::Malformed {
                index: 0,
                reason: ProtobufError::WrongWireType {
                    field: 1,
                    wire_type: 0
                },
            }),
            Ok(totp(b"A", None, "")),
        ]
    );
}

#[test]
fn unknown_digit_counts_and_types_fail_for_their_entry() {
    let bytes = [
        0x0a, 0x07, 0x0a, 0x01, 0x41, 0x12, 0x00, 0x28, 0x03, // digits 3
        0x0a, 0x05, 0x0a, 0x01, 0x41, 0x30, 0x05, // type 5
        0x0a, 0x06, 0x0a, 0x01, 0x41, 0x12, 0x01, 0xff, // name not UTF-8
    ];
    let entries = google_export::decode_payload(&bytes).unwrap().entries;
    assert_eq!(
        entries,
        [
            Err(EntryError::UnknownDigits {
                index: 0,
                label: String::new(),
                value: 3
            }),
            Err(EntryError::UnknownType {
                index: 1,
                label: String::new(),
                value: 5
            }),
            Err(EntryError::InvalidUtf8 {
                index: 2,
                field: "name"
            }),
        ]
    );
    assert_eq!(
        entries[2].as_ref().unwrap_err().to_string(),
        "entry 3: field \"name\" is not valid UTF-8"
    );
}

#[test]
fn a_repeated_scalar_field_takes_its_last_value() {
    // secret "A", then secret "B"; algorithm 3, then algorithm 1.
    let bytes = [
        0x0a, 0x0a, 0x0a, 0x01, 0x41, 0x0a, 0x01, 0x42, 0x20, 0x03, 0x20, 0x01,
    ];
    let entries = google_export::decode_payload(&bytes).unwrap().entries;
    assert_eq!(entries, [Ok(totp(b"B", None, ""))]);
}
