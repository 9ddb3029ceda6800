//! Google Authenticator's export: `otpauth-migration://offline?data=...`.
//!
//! "Transfer accounts" in Google Authenticator shows one or more QR codes,
//! each holding a URI whose `data` parameter is the URL-encoded base64 of a
//! protobuf `MigrationPayload`:
//!
//! ```text
//! message MigrationPayload {
//!   repeated OtpParameters otp_parameters = 1;
//!   int32 version = 2; int32 batch_size = 3; int32 batch_index = 4; int32 batch_id = 5;
//! }
//! message OtpParameters {
//!   bytes secret = 1; string name = 2; string issuer = 3;
//!   Algorithm algorithm = 4;  // 0 unspecified, 1 SHA1, 2 SHA256, 3 SHA512, 4 MD5
//!   DigitCount digits = 5;    // 0 unspecified, 1 six, 2 eight
//!   OtpType type = 6;         // 0 unspecified, 1 HOTP, 2 TOTP
//!   int64 counter = 7;
//! }
//! ```
//!
//! Decisions where the format is silent:
//!
//! - Unspecified (0) algorithm, digit count and type mean SHA1, 6 digits and
//!   TOTP: the defaults of the Key URI format, and what an exporter that
//!   leaves the field out means. The period is always 30 seconds, since the
//!   format has no field for it.
//! - `name` may be `Issuer:account`; it is split like an otpauth label. A
//!   non-empty `issuer` field wins over the prefix.
//! - An entry that cannot be used (MD5, an enum value this crate does not
//!   know, an empty secret, malformed bytes) is an error for that entry
//!   alone; the other entries of the batch still decode.
//! - `data` is percent-decoded without turning `+` into a space, since
//!   base64 uses `+` and never a space; both the standard and the URL-safe
//!   alphabets are accepted, padding optional.
//! - The protobuf reader is bounded by its input: every length is checked
//!   against the bytes that remain, nesting is fixed at two levels, unknown
//!   fields (wire types 0, 1, 2 and 5) are skipped, and a repeated scalar
//!   field takes its last value, as protobuf specifies.

use zeroize::Zeroizing;

use crate::params::{Algorithm, Digits, Period};
use crate::secret::{Secret, SecretError};
use crate::text::{self, QueryError};
use crate::uri::{OtpKind, OtpParams};

/// A decoded `MigrationPayload`: one QR code of an export.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Batch {
    /// Format version written by the exporter.
    pub version: i32,
    /// How many QR codes the whole export has.
    pub batch_size: i32,
    /// Which of them this is, from 0.
    pub batch_index: i32,
    /// Identifies the export, shared by its QR codes.
    pub batch_id: i32,
    /// The entries in export order, each decoded or refused on its own.
    pub entries: Vec<Result<OtpParams, EntryError>>,
}

/// Decodes an `otpauth-migration://offline?data=...` URI into its entries,
/// in export order.
pub fn decode(uri: &str) -> Result<Vec<Result<OtpParams, EntryError>>, GoogleExportError> {
    decode_batch(uri).map(|batch| batch.entries)
}

/// Decodes an `otpauth-migration://` URI, keeping the batch information.
pub fn decode_batch(uri: &str) -> Result<Batch, GoogleExportError> {
    let uri = uri.trim_matches(|c: char| c.is_ascii_whitespace());
    let (scheme, rest) = text::split_scheme(uri).ok_or(GoogleExportError::MissingScheme)?;
    if !scheme.eq_ignore_ascii_case("otpauth-migration") {
        return Err(GoogleExportError::UnsupportedScheme {
            scheme: text::nameable_scheme(scheme),
        });
    }
    let (host, _path, query) =
        text::split_hierarchy(rest).ok_or(GoogleExportError::MissingSlashes)?;
    if !host.eq_ignore_ascii_case("offline") {
        return Err(GoogleExportError::UnsupportedHost);
    }
    let params = text::parse_query(query).map_err(|error| match error {
        QueryError::BadName { .. } => GoogleExportError::InvalidPercentEncoding,
        QueryError::Repeated {
            name,
            first,
            second,
        } => GoogleExportError::RepeatedParameter {
            name,
            first,
            second,
        },
    })?;
    let data = params
        .iter()
        .find(|p| p.name == "data")
        .ok_or(GoogleExportError::MissingData)?;
    let data = text::percent_decode(data.raw_value, false)
        .ok_or(GoogleExportError::InvalidPercentEncoding)?;
    if data.is_empty() {
        return Err(GoogleExportError::EmptyData);
    }
    let payload = base64_decode(&data).map_err(GoogleExportError::InvalidBase64)?;
    decode_payload(&payload)
}

/// Decodes the protobuf bytes of a `MigrationPayload` (the base64-decoded
/// `data`, e.g. from a tool that already took the URI apart).
pub fn decode_payload(bytes: &[u8]) -> Result<Batch, GoogleExportError> {
    let mut batch = Batch {
        version: 0,
        batch_size: 0,
        batch_index: 0,
        batch_id: 0,
        entries: Vec::new(),
    };
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.field().map_err(GoogleExportError::Malformed)? {
        match (field, value) {
            (1, Value::Bytes(entry)) => {
                let index = batch.entries.len();
                batch.entries.push(decode_entry(index, entry));
            }
            (2, Value::Varint(v)) => batch.version = int32(v),
            (3, Value::Varint(v)) => batch.batch_size = int32(v),
            (4, Value::Varint(v)) => batch.batch_index = int32(v),
            (5, Value::Varint(v)) => batch.batch_id = int32(v),
            (1..=5, value) => {
                return Err(GoogleExportError::Malformed(ProtobufError::WrongWireType {
                    field,
                    wire_type: value.wire_type(),
                }));
            }
            _ => {}
        }
    }
    Ok(batch)
}

/// Protobuf `int32` from its varint: the low 32 bits, two's complement.
fn int32(value: u64) -> i32 {
    (value & 0xffff_ffff) as u32 as i32
}

/// The raw fields of one `OtpParameters`, before validation.
#[derive(Default)]
struct RawEntry<'a> {
    secret: &'a [u8],
    name: &'a [u8],
    issuer: &'a [u8],
    algorithm: u64,
    digits: u64,
    kind: u64,
    counter: u64,
}

fn decode_entry(index: usize, bytes: &[u8]) -> Result<OtpParams, EntryError> {
    let raw = read_entry(bytes).map_err(|reason| EntryError::Malformed { index, reason })?;
    let label = describe(&raw);
    let name = std::str::from_utf8(raw.name).map_err(|_| EntryError::InvalidUtf8 {
        index,
        field: "name",
    })?;
    let issuer = std::str::from_utf8(raw.issuer).map_err(|_| EntryError::InvalidUtf8 {
        index,
        field: "issuer",
    })?;
    let algorithm = match raw.algorithm {
        0 | 1 => Algorithm::Sha1,
        2 => Algorithm::Sha256,
        3 => Algorithm::Sha512,
        4 => {
            return Err(EntryError::UnsupportedAlgorithm {
                index,
                label,
                algorithm: "MD5",
            });
        }
        value => {
            return Err(EntryError::UnknownAlgorithm {
                index,
                label,
                value,
            });
        }
    };
    let digits = match raw.digits {
        0 | 1 => Digits::default(),
        2 => Digits::try_from(8u64).unwrap_or_default(),
        value => {
            return Err(EntryError::UnknownDigits {
                index,
                label,
                value,
            });
        }
    };
    let kind = match raw.kind {
        0 | 2 => OtpKind::Totp {
            period: Period::default(),
        },
        1 => OtpKind::Hotp {
            counter: raw.counter,
        },
        value => {
            return Err(EntryError::UnknownType {
                index,
                label,
                value,
            });
        }
    };
    let secret =
        Secret::from_bytes(raw.secret.to_vec()).map_err(|reason| EntryError::InvalidSecret {
            index,
            label,
            reason,
        })?;
    let (prefix, account) = text::split_label(name);
    let issuer = Some(issuer)
        .filter(|i| !i.is_empty())
        .or(prefix)
        .map(str::to_owned);
    Ok(OtpParams {
        kind,
        secret,
        algorithm,
        digits,
        issuer,
        account: account.to_owned(),
    })
}

fn read_entry(bytes: &[u8]) -> Result<RawEntry<'_>, ProtobufError> {
    let mut raw = RawEntry::default();
    let mut reader = Reader::new(bytes);
    while let Some((field, value)) = reader.field()? {
        match (field, value) {
            (1, Value::Bytes(b)) => raw.secret = b,
            (2, Value::Bytes(b)) => raw.name = b,
            (3, Value::Bytes(b)) => raw.issuer = b,
            (4, Value::Varint(v)) => raw.algorithm = v,
            (5, Value::Varint(v)) => raw.digits = v,
            (6, Value::Varint(v)) => raw.kind = v,
            (7, Value::Varint(v)) => raw.counter = v,
            (1..=7, value) => {
                return Err(ProtobufError::WrongWireType {
                    field,
                    wire_type: value.wire_type(),
                });
            }
            _ => {}
        }
    }
    Ok(raw)
}

/// How an entry is named in errors: its name, else its issuer (lossy UTF-8,
/// shortened). Never the secret.
fn describe(raw: &RawEntry<'_>) -> String {
    let name = if raw.name.is_empty() {
        raw.issuer
    } else {
        raw.name
    };
    text::snippet(&String::from_utf8_lossy(name))
}

/// A field value by protobuf wire type.
#[derive(Clone, Copy)]
enum Value<'a> {
    Varint(u64),
    Fixed64,
    Bytes(&'a [u8]),
    Fixed32,
}

impl Value<'_> {
    fn wire_type(self) -> u8 {
        match self {
            Value::Varint(_) => 0,
            Value::Fixed64 => 1,
            Value::Bytes(_) => 2,
            Value::Fixed32 => 5,
        }
    }
}

/// A forward-only reader of protobuf wire format over a byte slice.
struct Reader<'a> {
    rest: &'a [u8],
    /// Offset of `rest` in the message, for error messages.
    offset: usize,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8]) -> Reader<'a> {
        Reader {
            rest: bytes,
            offset: 0,
        }
    }

    fn take(&mut self, len: usize) -> Option<&'a [u8]> {
        let (taken, rest) = self.rest.split_at_checked(len)?;
        self.rest = rest;
        self.offset += len;
        Some(taken)
    }

    /// A base-128 varint of at most 10 bytes.
    fn varint(&mut self) -> Result<u64, ProtobufError> {
        let start = self.offset;
        let mut value: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&byte, rest) = self
                .rest
                .split_first()
                .ok_or(ProtobufError::Truncated { offset: start })?;
            self.rest = rest;
            self.offset += 1;
            // The tenth byte holds only the top bit of a u64.
            if shift == 63 && byte > 1 {
                return Err(ProtobufError::VarintOverflow { offset: start });
            }
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(ProtobufError::VarintOverflow { offset: start })
    }

    /// The next field, or `None` at the end of the message.
    fn field(&mut self) -> Result<Option<(u32, Value<'a>)>, ProtobufError> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        let start = self.offset;
        let truncated = ProtobufError::Truncated { offset: start };
        let key = self.varint()?;
        let field = u32::try_from(key >> 3)
            .ok()
            .filter(|&f| (1..=MAX_FIELD_NUMBER).contains(&f))
            .ok_or(ProtobufError::InvalidFieldNumber { offset: start })?;
        let value = match key & 0x7 {
            0 => Value::Varint(self.varint()?),
            1 => {
                self.take(8).ok_or(truncated)?;
                Value::Fixed64
            }
            2 => {
                let len = self.varint()?;
                let bytes = usize::try_from(len)
                    .ok()
                    .and_then(|len| self.take(len))
                    .ok_or(truncated)?;
                Value::Bytes(bytes)
            }
            5 => {
                self.take(4).ok_or(truncated)?;
                Value::Fixed32
            }
            wire_type => {
                return Err(ProtobufError::UnsupportedWireType {
                    wire_type: (wire_type & 0x7) as u8,
                    offset: start,
                });
            }
        };
        Ok(Some((field, value)))
    }
}

/// The largest field number protobuf allows (2^29 - 1).
const MAX_FIELD_NUMBER: u32 = (1 << 29) - 1;

/// Decodes base64 (RFC 4648 §4 and the URL-safe alphabet of §5, mixed
/// freely), padding optional and only at the end. Like the base32 decoder,
/// a length no encoder produces (one past a multiple of 4) is refused and
/// leftover bits are ignored. Positions count characters from 1.
fn base64_decode(input: &[u8]) -> Result<Zeroizing<Vec<u8>>, Base64Error> {
    let mut out = Zeroizing::new(Vec::with_capacity(input.len() / 4 * 3 + 3));
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    let mut symbols: usize = 0;
    let mut padding_at: Option<usize> = None;
    for (index, &byte) in input.iter().enumerate() {
        let position = index + 1;
        let value = match byte {
            b'A'..=b'Z' => byte - b'A',
            b'a'..=b'z' => byte - b'a' + 26,
            b'0'..=b'9' => byte - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            b'=' => {
                padding_at.get_or_insert(position);
                continue;
            }
            _ => {
                return Err(Base64Error::InvalidCharacter { byte, position });
            }
        };
        if let Some(padding) = padding_at {
            return Err(Base64Error::PaddingNotAtEnd { position: padding });
        }
        buffer = (buffer << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
            buffer &= (1 << bits) - 1;
        }
        symbols += 1;
    }
    if symbols % 4 == 1 {
        return Err(Base64Error::InvalidLength { symbols });
    }
    Ok(out)
}

/// Why the `data` parameter is not base64.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base64Error {
    /// A byte outside both base64 alphabets.
    #[error("invalid base64 character {} at position {position}", describe_byte(*.byte))]
    InvalidCharacter {
        /// The byte that was refused.
        byte: u8,
        /// Its position after percent-decoding, counting from 1.
        position: usize,
    },
    /// Data follows `=` padding.
    #[error("base64 padding '=' at position {position} is followed by more data")]
    PaddingNotAtEnd {
        /// Position of the first `=`, counting from 1.
        position: usize,
    },
    /// The number of base64 characters is one no encoder produces.
    #[error("base64 input has {symbols} characters, a length no encoder produces")]
    InvalidLength {
        /// The number of base64 characters, not counting padding.
        symbols: usize,
    },
}

fn describe_byte(byte: u8) -> String {
    if byte.is_ascii_graphic() || byte == b' ' {
        format!("{:?}", char::from(byte))
    } else {
        format!("0x{byte:02x}")
    }
}

/// What is malformed in protobuf bytes. Offsets count bytes from 0, from the
/// start of the payload or, inside an entry, of that entry.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtobufError {
    /// The message ends inside a field.
    #[error("the message ends inside the field at byte {offset}")]
    Truncated {
        /// Where the cut field starts (for a cut varint, where it starts).
        offset: usize,
    },
    /// A varint longer than 10 bytes or larger than 64 bits.
    #[error("varint at byte {offset} is longer than 64 bits")]
    VarintOverflow {
        /// Where the varint starts.
        offset: usize,
    },
    /// A field number of 0 or above 2^29 - 1.
    #[error("invalid field number at byte {offset}")]
    InvalidFieldNumber {
        /// Where the field key starts.
        offset: usize,
    },
    /// Wire types 3, 4 (groups, unused since proto2), 6 and 7.
    #[error("unsupported wire type {wire_type} at byte {offset}")]
    UnsupportedWireType {
        /// The wire type that was found.
        wire_type: u8,
        /// Where the field key starts.
        offset: usize,
    },
    /// A known field encoded with the wrong wire type.
    #[error("field {field} has wire type {wire_type}, which does not fit its type")]
    WrongWireType {
        /// The field number.
        field: u32,
        /// The wire type that was found.
        wire_type: u8,
    },
}

/// Why an export URI as a whole could not be decoded.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GoogleExportError {
    /// The text does not start with a URI scheme.
    #[error("not a URI: expected it to start with \"otpauth-migration://\"")]
    MissingScheme,
    /// The scheme is not `otpauth-migration`.
    #[error(
        "unsupported scheme {}(expected \"otpauth-migration\")",
        text::quoted_scheme(.scheme)
    )]
    UnsupportedScheme {
        /// The scheme that was given when it is a well-known one (`otpauth`,
        /// `https`, ...); empty otherwise, since the text before a colon may
        /// be a pasted secret and is not repeated.
        scheme: String,
    },
    /// `otpauth-migration:` is not followed by `//`.
    #[error("expected \"//\" after \"otpauth-migration:\"")]
    MissingSlashes,
    /// The host is not `offline`. It is not repeated: it may be pasted text.
    #[error("unsupported host (expected \"offline\")")]
    UnsupportedHost,
    /// A `%` not followed by two hex digits, or a parameter name that is not
    /// UTF-8.
    #[error("invalid percent-encoding in the query")]
    InvalidPercentEncoding,
    /// A parameter appears more than once.
    #[error(
        "{} appears twice (query parameters {first} and {second})",
        crate::uri::repeated_name(*.name)
    )]
    RepeatedParameter {
        /// The parameter's name when it is a well-known one (`data`, ...);
        /// `None` otherwise, since it may be pasted text.
        name: Option<&'static str>,
        /// Position of the first occurrence (from 1, empty segments not
        /// counted).
        first: usize,
        /// Position of the second occurrence.
        second: usize,
    },
    /// No `data` parameter.
    #[error("parameter \"data\" is missing")]
    MissingData,
    /// `data=` with nothing after it.
    #[error("parameter \"data\" is empty")]
    EmptyData,
    /// `data` is not base64.
    #[error("parameter \"data\" is not valid base64: {0}")]
    InvalidBase64(Base64Error),
    /// The payload is not a well-formed `MigrationPayload`.
    #[error("malformed export payload: {0}")]
    Malformed(ProtobufError),
}

/// Why one entry of an export was refused. The other entries are unaffected.
///
/// `index` is the entry's place in the batch from 0 (messages count from 1);
/// `label` is its name, or its issuer if it has no name.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EntryError {
    /// The entry's bytes are not a well-formed `OtpParameters`.
    #[error("entry {} is malformed: {reason}", .index + 1)]
    Malformed {
        /// Place in the batch, from 0.
        index: usize,
        /// What is malformed.
        reason: ProtobufError,
    },
    /// `name` or `issuer` is not UTF-8.
    #[error("entry {}: field {field:?} is not valid UTF-8", .index + 1)]
    InvalidUtf8 {
        /// Place in the batch, from 0.
        index: usize,
        /// `"name"` or `"issuer"`.
        field: &'static str,
    },
    /// A known algorithm this crate does not compute codes for (MD5).
    #[error("entry {} ({label:?}) uses unsupported algorithm {algorithm}", .index + 1)]
    UnsupportedAlgorithm {
        /// Place in the batch, from 0.
        index: usize,
        /// The entry's name.
        label: String,
        /// The algorithm's name.
        algorithm: &'static str,
    },
    /// An algorithm value the format does not define.
    #[error("entry {} ({label:?}) has unknown algorithm value {value}", .index + 1)]
    UnknownAlgorithm {
        /// Place in the batch, from 0.
        index: usize,
        /// The entry's name.
        label: String,
        /// The raw enum value.
        value: u64,
    },
    /// A digit-count value the format does not define.
    #[error("entry {} ({label:?}) has unknown digit count value {value}", .index + 1)]
    UnknownDigits {
        /// Place in the batch, from 0.
        index: usize,
        /// The entry's name.
        label: String,
        /// The raw enum value.
        value: u64,
    },
    /// An OTP type value the format does not define.
    #[error("entry {} ({label:?}) has unknown type value {value}", .index + 1)]
    UnknownType {
        /// Place in the batch, from 0.
        index: usize,
        /// The entry's name.
        label: String,
        /// The raw enum value.
        value: u64,
    },
    /// The secret is empty or longer than [`Secret::MAX_LEN`].
    #[error("entry {} ({label:?}) has an unusable secret: {reason}", .index + 1)]
    InvalidSecret {
        /// Place in the batch, from 0.
        index: usize,
        /// The entry's name.
        label: String,
        /// What is wrong with the secret.
        reason: SecretError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_decode_up_to_64_bits_and_no_further() {
        let mut reader = Reader::new(&[0xac, 0x02]);
        assert_eq!(reader.varint(), Ok(300));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let too_big = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(
            Reader::new(&too_big).varint(),
            Err(ProtobufError::VarintOverflow { offset: 0 })
        );
        let too_long = [0x80; 11];
        assert_eq!(
            Reader::new(&too_long).varint(),
            Err(ProtobufError::VarintOverflow { offset: 0 })
        );
        assert_eq!(
            Reader::new(&[0x80]).varint(),
            Err(ProtobufError::Truncated { offset: 0 })
        );
    }

    #[test]
    fn int32_fields_keep_the_low_32_bits_as_twos_complement() {
        assert_eq!(int32(1), 1);
        assert_eq!(int32(u64::MAX), -1);
        assert_eq!(int32(0x1_0000_0005), 5);
    }

    #[test]
    fn base64_accepts_both_alphabets_and_optional_padding() {
        let decoded = |s: &str| base64_decode(s.as_bytes()).map(|v| v.to_vec());
        assert_eq!(decoded("+/8="), Ok(vec![0xfb, 0xff]));
        assert_eq!(decoded("-_8"), Ok(vec![0xfb, 0xff]));
        assert_eq!(decoded("aGk"), Ok(b"hi".to_vec()));
        assert_eq!(
            decoded("aG=k"),
            Err(Base64Error::PaddingNotAtEnd { position: 3 })
        );
        assert_eq!(
            decoded("aGkhx"),
            Err(Base64Error::InvalidLength { symbols: 5 })
        );
        assert_eq!(
            decoded("aG k"),
            Err(Base64Error::InvalidCharacter {
                byte: b' ',
                position: 3
            })
        );
    }
}
