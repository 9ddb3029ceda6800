//! The shared secret of an OTP credential.

use std::fmt;

use zeroize::Zeroizing;

use crate::base32::{self, Base32Error};

/// The key shared between a service and an authenticator (RFC 4226 §4, "K").
///
/// The bytes are zeroized when the value is dropped, `Debug` prints
/// `[redacted]`, and no error of this crate ever contains them. Equality
/// compares the bytes without an early exit, so the time it takes does not
/// depend on where two secrets of the same length first differ.
#[derive(Clone)]
pub struct Secret(Zeroizing<Vec<u8>>);

impl Secret {
    /// The shortest accepted secret, in bytes.
    pub const MIN_LEN: usize = 1;
    /// The longest accepted secret, in bytes. RFC 4226 asks for at least
    /// 128 bits and recommends 160; real services use 80 to 512 bits. 256
    /// bytes (2048 bits) leaves ample room while bounding what a caller can
    /// make the vault store and hash.
    pub const MAX_LEN: usize = 256;

    /// Wraps raw secret bytes, checking the length.
    ///
    /// The vector is zeroized on drop whether or not it is accepted.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Secret, SecretError> {
        let bytes = Zeroizing::new(bytes);
        if bytes.len() < Self::MIN_LEN {
            return Err(SecretError::Empty);
        }
        if bytes.len() > Self::MAX_LEN {
            return Err(SecretError::TooLong { len: bytes.len() });
        }
        Ok(Secret(bytes))
    }

    /// Decodes a base32 secret the way services hand it out (see
    /// [`base32::decode`]: any case, spaces, tabs and hyphens ignored,
    /// padding optional) and checks the length.
    pub fn from_base32(s: &str) -> Result<Secret, Base32Error> {
        Secret::from_bytes(base32::decode(s)?).map_err(Base32Error::Secret)
    }

    /// The raw secret bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The secret as upper-case base32 without padding, the form
    /// authenticator apps expect. The string is zeroized on drop.
    pub fn to_base32(&self) -> Zeroizing<String> {
        let mut out = Zeroizing::new(String::with_capacity(base32::encoded_len(self.0.len())));
        base32::encode_into(&self.0, &mut out);
        out
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        let (a, b) = (self.as_bytes(), other.as_bytes());
        // The lengths are not secret (they are part of the URI format); the
        // contents are compared in full so the timing does not say where they
        // differ.
        a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
    }
}

impl Eq for Secret {}

/// Why bytes were refused as a [`Secret`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SecretError {
    /// The secret has no bytes at all.
    #[error("secret is empty")]
    Empty,
    /// The secret is longer than [`Secret::MAX_LEN`].
    #[error("secret is {len} bytes long, more than the maximum of {max}", max = Secret::MAX_LEN)]
    TooLong {
        /// The length that was refused, in bytes.
        len: usize,
    },
}
