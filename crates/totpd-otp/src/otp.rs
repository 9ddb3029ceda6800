//! HOTP (RFC 4226) and TOTP (RFC 6238) code generation.

use std::fmt;

use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::{Sha256, Sha512};

use crate::params::{Algorithm, Digits, Period};
use crate::secret::Secret;

/// A one-time code: a number below `10^digits`, shown zero-padded by
/// `Display`. `Debug` does not show it: a code is a credential while it is
/// valid.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Code {
    value: u32,
    digits: Digits,
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Code")
            .field("digits", &self.digits)
            .field("value", &format_args!("[redacted]"))
            .finish()
    }
}

impl Code {
    /// The code as a number (`000123` is 123).
    pub fn value(self) -> u32 {
        self.value
    }

    /// How many digits the code is shown with.
    pub fn digits(self) -> Digits {
        self.digits
    }

    /// Writes the zero-padded code into `buf` and returns the filled part,
    /// without going through `fmt` (for printing millions of codes).
    pub fn write_ascii(self, buf: &mut [u8; Digits::MAX as usize]) -> &[u8] {
        let len = usize::from(self.digits.get());
        let mut value = self.value;
        for slot in buf.iter_mut().take(len).rev() {
            *slot = b'0' + (value % 10) as u8;
            value /= 10;
        }
        buf.get(..len).unwrap_or_default()
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:0width$}",
            self.value,
            width = usize::from(self.digits.get())
        )
    }
}

/// The HMAC keyed with one secret, ready to compute codes for any counter.
///
/// Keying HMAC hashes the padded key twice (RFC 2104 §2, the inner and
/// outer pads); a generator does that once and then clones the two hash
/// states for each code, which halves the work per code. The states are
/// as sensitive as the key: they are zeroized on drop and `Debug` does not
/// show them.
#[derive(Clone)]
pub struct Generator {
    mac: KeyedMac,
    digits: Digits,
}

#[derive(Clone)]
enum KeyedMac {
    Sha1(Hmac<Sha1>),
    Sha256(Hmac<Sha256>),
    Sha512(Hmac<Sha512>),
}

impl Generator {
    /// Keys HMAC with `secret` for `algorithm`.
    pub fn new(secret: &Secret, algorithm: Algorithm, digits: Digits) -> Generator {
        let key = secret.as_bytes();
        let mac = match algorithm {
            Algorithm::Sha1 => KeyedMac::Sha1(keyed(key)),
            Algorithm::Sha256 => KeyedMac::Sha256(keyed(key)),
            Algorithm::Sha512 => KeyedMac::Sha512(keyed(key)),
        };
        Generator { mac, digits }
    }

    /// The algorithm this generator was keyed for.
    pub fn algorithm(&self) -> Algorithm {
        match self.mac {
            KeyedMac::Sha1(_) => Algorithm::Sha1,
            KeyedMac::Sha256(_) => Algorithm::Sha256,
            KeyedMac::Sha512(_) => Algorithm::Sha512,
        }
    }

    /// The digit count of the codes.
    pub fn digits(&self) -> Digits {
        self.digits
    }

    /// The HOTP value for `counter` (RFC 4226 §5.3).
    pub fn code(&self, counter: u64) -> Code {
        // §5.3 step 1: HS = HMAC(K, C), with C as 8 big-endian bytes.
        let message = counter.to_be_bytes();
        let truncated = match &self.mac {
            KeyedMac::Sha1(mac) => truncate(&finish(mac, &message)),
            KeyedMac::Sha256(mac) => truncate(&finish(mac, &message)),
            KeyedMac::Sha512(mac) => truncate(&finish(mac, &message)),
        };
        Code {
            value: truncated % self.digits.modulus(),
            digits: self.digits,
        }
    }
}

impl fmt::Debug for Generator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Generator")
            .field("algorithm", &self.algorithm())
            .field("digits", &self.digits)
            .field("key", &format_args!("[redacted]"))
            .finish()
    }
}

fn keyed<M: KeyInit>(key: &[u8]) -> M {
    // HMAC takes keys of any length (longer ones are hashed first, RFC 2104
    // §2), so this never fails; the fallback keeps the code panic-free.
    M::new_from_slice(key).unwrap_or_else(|_| M::new(&Default::default()))
}

fn finish<M: Mac + Clone>(mac: &M, message: &[u8]) -> hmac::digest::Output<M> {
    let mut mac = mac.clone();
    mac.update(message);
    mac.finalize().into_bytes()
}

/// Dynamic truncation, RFC 4226 §5.3 step 2 (and RFC 6238 §1.2 for longer
/// hashes: the offset comes from the low nibble of the *last* byte).
fn truncate(hash: &[u8]) -> u32 {
    let offset = hash.last().map_or(0, |&last| usize::from(last & 0x0f));
    let word = hash
        .iter()
        .skip(offset)
        .take(4)
        .fold(0u32, |acc, &byte| (acc << 8) | u32::from(byte));
    // Mask the sign bit so the result is the same on every platform (§5.3).
    word & 0x7fff_ffff
}

/// The HOTP code for `counter` (RFC 4226 §5.3).
pub fn hotp(secret: &Secret, algorithm: Algorithm, digits: Digits, counter: u64) -> Code {
    Generator::new(secret, algorithm, digits).code(counter)
}

/// A TOTP credential (RFC 6238 §4, with T0 = 0).
#[derive(Clone, Debug)]
pub struct Totp {
    /// The shared secret.
    pub secret: Secret,
    /// The HMAC hash function.
    pub algorithm: Algorithm,
    /// The digit count of each code.
    pub digits: Digits,
    /// The time step.
    pub period: Period,
}

impl Totp {
    /// The counter for a unix time: `T = floor(t / X)` (RFC 6238 §4.2).
    pub fn counter_at(&self, unix_seconds: u64) -> u64 {
        unix_seconds / u64::from(self.period.get())
    }

    /// The code valid at `unix_seconds`.
    pub fn code_at(&self, unix_seconds: u64) -> Code {
        hotp(
            &self.secret,
            self.algorithm,
            self.digits,
            self.counter_at(unix_seconds),
        )
    }

    /// Seconds until the code valid at `unix_seconds` is replaced:
    /// `period - (t mod period)`, always in `1..=period`.
    pub fn expires_in(&self, unix_seconds: u64) -> u32 {
        let period = self.period.get();
        let elapsed = unix_seconds % u64::from(period);
        // elapsed < period <= u32::MAX, so the conversion cannot fail.
        period - u32::try_from(elapsed).unwrap_or(0)
    }

    /// A generator for this credential's codes, for computing many of them.
    pub fn generator(&self) -> Generator {
        Generator::new(&self.secret, self.algorithm, self.digits)
    }
}
