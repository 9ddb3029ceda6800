//! An independent TOTP implementation, written here from RFC 4226 and
//! RFC 6238 (not from totpd-otp), so the server's codes are checked against
//! something that does not share its bugs. Also the small text codecs the
//! checks need: base32 (RFC 4648 §6), hex and RFC 3339 timestamps.

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

/// The HMAC hash of a TOTP secret, named as on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alg {
    Sha1,
    Sha256,
    Sha512,
}

impl Alg {
    pub const ALL: [Alg; 3] = [Alg::Sha1, Alg::Sha256, Alg::Sha512];

    pub fn wire_name(self) -> &'static str {
        match self {
            Alg::Sha1 => "SHA1",
            Alg::Sha256 => "SHA256",
            Alg::Sha512 => "SHA512",
        }
    }

    /// The key length RFC 6238's reference vectors use for this hash.
    pub fn natural_key_len(self) -> usize {
        match self {
            Alg::Sha1 => 20,
            Alg::Sha256 => 32,
            Alg::Sha512 => 64,
        }
    }
}

fn mac<M: Mac + KeyInit>(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <M as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// RFC 4226 §5.3: HMAC over the big-endian counter, dynamic truncation,
/// modulo 10^digits, zero-padded.
pub fn hotp(key: &[u8], alg: Alg, digits: u32, counter: u64) -> String {
    let message = counter.to_be_bytes();
    let hs = match alg {
        Alg::Sha1 => mac::<Hmac<Sha1>>(key, &message),
        Alg::Sha256 => mac::<Hmac<Sha256>>(key, &message),
        Alg::Sha512 => mac::<Hmac<Sha512>>(key, &message),
    };
    let offset = usize::from(hs[hs.len() - 1] & 0x0f);
    let binary = (u32::from(hs[offset]) & 0x7f) << 24
        | u32::from(hs[offset + 1]) << 16
        | u32::from(hs[offset + 2]) << 8
        | u32::from(hs[offset + 3]);
    let value = u64::from(binary) % 10u64.pow(digits);
    format!("{value:0width$}", width = digits as usize)
}

/// RFC 6238 §4.2: T = floor(unix / X), T0 = 0.
pub fn totp(key: &[u8], alg: Alg, digits: u32, period: u64, unix: u64) -> String {
    hotp(key, alg, digits, unix / period)
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// RFC 4648 §6 base32, upper case, without padding.
pub fn base32_encode(bytes: &[u8]) -> String {
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(BASE32[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(BASE32[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

/// Strict RFC 4648 §6 decoding of upper-case base32 (padding allowed).
pub fn base32_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in text.trim_end_matches('=').bytes() {
        let value = BASE32.iter().position(|&d| d == c)? as u32;
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Parses an RFC 3339 timestamp (optional fraction, `Z` or a numeric
/// offset) into Unix milliseconds.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let at = time::OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[test]
fn the_independent_hotp_matches_rfc_4226_appendix_d() {
    let expected = [
        "755224", "287082", "359152", "969429", "338314", "254676", "287922", "162583", "399871",
        "520489",
    ];
    for (counter, want) in expected.iter().enumerate() {
        assert_eq!(
            hotp(b"12345678901234567890", Alg::Sha1, 6, counter as u64),
            *want,
            "counter {counter}"
        );
    }
}

#[test]
fn the_independent_totp_matches_rfc_6238_appendix_b() {
    let seeds: [(Alg, &[u8]); 3] = [
        (Alg::Sha1, b"12345678901234567890"),
        (Alg::Sha256, b"12345678901234567890123456789012"),
        (
            Alg::Sha512,
            b"1234567890123456789012345678901234567890123456789012345678901234",
        ),
    ];
    // (time, SHA1, SHA256, SHA512)
    let table: [(u64, [&str; 3]); 6] = [
        (59, ["94287082", "46119246", "90693936"]),
        (1_111_111_109, ["07081804", "68084774", "25091201"]),
        (1_111_111_111, ["14050471", "67062674", "99943326"]),
        (1_234_567_890, ["89005924", "91819424", "93441116"]),
        (2_000_000_000, ["69279037", "90698825", "38618901"]),
        (20_000_000_000, ["65353130", "77737706", "47863826"]),
    ];
    for (time, wants) in table {
        for ((alg, seed), want) in seeds.iter().zip(wants) {
            assert_eq!(totp(seed, *alg, 8, 30, time), want, "{alg:?} at {time}");
        }
    }
}

#[test]
fn the_test_codecs_round_trip() {
    assert_eq!(base32_encode(b"Hello!\xde\xad\xbe\xef"), "JBSWY3DPEHPK3PXP");
    assert_eq!(
        base32_decode("JBSWY3DPEHPK3PXP").unwrap(),
        b"Hello!\xde\xad\xbe\xef"
    );
    assert_eq!(base32_encode(b"f"), "MY");
    assert_eq!(base32_decode("MY======").unwrap(), b"f");
    assert_eq!(base32_decode("my"), None);
    assert_eq!(hex(&[0, 0xab, 0x10]), "00ab10");
    assert_eq!(parse_rfc3339("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(
        parse_rfc3339("2023-11-14T22:13:20.123Z"),
        Some(1_700_000_000_123)
    );
    assert_eq!(
        parse_rfc3339("2023-11-14T23:13:20+01:00"),
        Some(1_700_000_000_000)
    );
    assert_eq!(parse_rfc3339("2023-11-14T22:13:20"), None);
}
