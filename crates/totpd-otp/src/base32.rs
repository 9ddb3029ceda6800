//! Base32 (RFC 4648 §6), decoded the way OTP secrets are handed out.
//!
//! Services print secrets in lower case, in groups separated by spaces or
//! hyphens, with or without `=` padding. The decoder accepts all of that and
//! names the first character it cannot accept. The encoder writes the
//! canonical form authenticator apps expect: upper case, no padding.

use zeroize::Zeroizing;

use crate::secret::SecretError;

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// Decodes base32 leniently.
///
/// - Letters may be in any case.
/// - Spaces, tabs and hyphens are ignored wherever they appear.
/// - `=` padding is optional; when present it must come after all the data
///   (only ignored characters and more `=` may follow it). Its count is not
///   checked, since the data length alone fixes the output.
/// - Bits left over after the last whole byte are ignored, as RFC 4648 §3.5
///   allows, because generators that pick random base32 characters produce
///   them.
/// - A data length that no encoder produces (1, 3 or 6 characters past a
///   multiple of 8) is refused: it means a character was lost or added, and
///   decoding anyway would yield a secret that silently gives wrong codes.
///
/// Positions in errors count characters (not bytes) from 1, including the
/// ignored ones, so they point into the string as the user typed it.
pub fn decode(s: &str) -> Result<Vec<u8>, Base32Error> {
    // Sized up front so the vector never reallocates and leaves a stray copy
    // of secret bytes in freed memory; zeroized if decoding fails halfway.
    let mut out = Zeroizing::new(Vec::with_capacity(s.len() / 8 * 5 + 5));
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    let mut symbols: usize = 0;
    let mut padding_at: Option<usize> = None;
    for (index, character) in s.chars().enumerate() {
        let position = index + 1;
        let value = match character {
            ' ' | '\t' | '-' => continue,
            '=' => {
                padding_at.get_or_insert(position);
                continue;
            }
            'A'..='Z' => u32::from(character) - u32::from('A'),
            'a'..='z' => u32::from(character) - u32::from('a'),
            '2'..='7' => u32::from(character) - u32::from('2') + 26,
            _ => {
                return Err(Base32Error::InvalidCharacter {
                    character,
                    position,
                });
            }
        };
        if let Some(padding) = padding_at {
            return Err(Base32Error::PaddingNotAtEnd { position: padding });
        }
        buffer = (buffer << 5) | value;
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
            buffer &= (1 << bits) - 1;
        }
        symbols += 1;
    }
    match symbols % 8 {
        1 | 3 | 6 => Err(Base32Error::InvalidLength { symbols }),
        _ => Ok(std::mem::take(&mut *out)),
    }
}

/// Encodes bytes as upper-case base32 without padding.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(encoded_len(bytes.len()));
    encode_into(bytes, &mut out);
    out
}

/// The number of characters [`encode`] produces for `len` bytes.
pub(crate) fn encoded_len(len: usize) -> usize {
    (len * 8).div_ceil(5)
}

/// Appends the unpadded upper-case encoding of `bytes` to `out`.
pub(crate) fn encode_into(bytes: &[u8], out: &mut String) {
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for &byte in bytes {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(symbol((buffer >> bits) & 0x1f));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(symbol((buffer << (5 - bits)) & 0x1f));
    }
}

fn symbol(value: u32) -> char {
    ALPHABET
        .get(value as usize)
        .map_or('A', |&symbol| char::from(symbol))
}

/// Why a string is not an acceptable base32 secret.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Base32Error {
    /// A character outside the base32 alphabet and the ignored separators.
    #[error("invalid base32 character {character:?} at position {position}")]
    InvalidCharacter {
        /// The character that was refused.
        character: char,
        /// Its position, counting characters from 1.
        position: usize,
    },
    /// Data follows `=` padding.
    #[error("base32 padding '=' at position {position} is followed by more data")]
    PaddingNotAtEnd {
        /// Position of the first `=`, counting characters from 1.
        position: usize,
    },
    /// The number of data characters is one no encoder produces.
    #[error(
        "base32 input has {symbols} characters, a length no encoder produces (one is missing or extra)"
    )]
    InvalidLength {
        /// The number of base32 characters, not counting separators and padding.
        symbols: usize,
    },
    /// The input decoded, but not to an acceptable secret (only from
    /// [`crate::Secret::from_base32`]).
    #[error(transparent)]
    Secret(SecretError),
}
