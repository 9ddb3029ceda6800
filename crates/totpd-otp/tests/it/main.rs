//! The one integration-test binary of totpd-otp.

// The workspace denies these in library code; clippy.toml lifts them inside
// `#[test]` functions only, and this whole binary is test code (helpers,
// strategies and tables included), where a panic is how a check fails.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    clippy::disallowed_methods
)]

mod base32;
mod codes;
mod google_export;
mod properties;
mod quirks;

use totpd_otp::{Algorithm, Digits, OtpKind, OtpParams, Period, Secret};

/// `Digits` from a literal known to be valid.
pub fn digits(n: u8) -> Digits {
    Digits::new(n).unwrap()
}

/// `Period` from a literal known to be valid.
pub fn period(seconds: u64) -> Period {
    Period::new(seconds).unwrap()
}

/// A secret from raw bytes known to be valid.
pub fn secret(bytes: &[u8]) -> Secret {
    Secret::from_bytes(bytes.to_vec()).unwrap()
}

/// TOTP parameters with the format's defaults (SHA1, 6 digits, 30 s).
pub fn totp(secret_bytes: &[u8], issuer: Option<&str>, account: &str) -> OtpParams {
    OtpParams {
        kind: OtpKind::Totp { period: period(30) },
        secret: secret(secret_bytes),
        algorithm: Algorithm::Sha1,
        digits: digits(6),
        issuer: issuer.map(str::to_owned),
        account: account.to_owned(),
    }
}
