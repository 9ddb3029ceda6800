//! The OTP core of totpd: HOTP (RFC 4226) and TOTP (RFC 6238) codes with
//! HMAC-SHA-1/256/512, lenient base32 secrets, `otpauth://` enrollment URIs
//! and Google Authenticator `otpauth-migration://` exports.
//!
//! Every code the vault hands out is computed here, so this crate is kept
//! small and pure. It never does I/O, never reads the clock (time is always a
//! parameter: [`Totp::code_at`]), never spawns or awaits, and uses no
//! serialization framework: the URI and protobuf readers are written out by
//! hand, bounded by their input, and never panic. Secret bytes are zeroized
//! on drop, redacted in `Debug`, and kept out of every error message.
//!
//! ```
//! use totpd_otp::{Algorithm, Digits, Period, Secret, Totp};
//!
//! let totp = Totp {
//!     secret: Secret::from_base32("gezd gnbv gy3t qojq gezd gnbv gy3t qojq")?,
//!     algorithm: Algorithm::Sha1,
//!     digits: Digits::new(8)?,
//!     period: Period::default(),
//! };
//! // RFC 6238 Appendix B, first row.
//! assert_eq!(totp.code_at(59).to_string(), "94287082");
//! assert_eq!(totp.expires_in(59), 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod base32;
pub mod google_export;
mod otp;
mod params;
mod secret;
mod text;
mod uri;

pub use base32::Base32Error;
pub use google_export::{EntryError, GoogleExportError};
pub use otp::{Code, Generator, Totp, hotp};
pub use params::{Algorithm, Digits, ParamError, Period};
pub use secret::{Secret, SecretError};
pub use uri::{OtpKind, OtpParams, UriError, UriPart, parse_otpauth_uri};
