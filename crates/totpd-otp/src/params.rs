//! The parameters of an OTP credential as types that cannot hold a bad value.

use std::fmt;
use std::str::FromStr;

/// The HMAC hash function (RFC 6238 §1.2 allows SHA-1, SHA-256 and SHA-512).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Default)]
pub enum Algorithm {
    /// HMAC-SHA-1, RFC 4226's function and the default everywhere.
    #[default]
    Sha1,
    /// HMAC-SHA-256.
    Sha256,
    /// HMAC-SHA-512.
    Sha512,
}

impl Algorithm {
    /// Every supported algorithm, in a fixed order.
    pub const ALL: [Algorithm; 3] = [Algorithm::Sha1, Algorithm::Sha256, Algorithm::Sha512];

    /// The name used by the otpauth URI format: `SHA1`, `SHA256` or `SHA512`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Sha1 => "SHA1",
            Algorithm::Sha256 => "SHA256",
            Algorithm::Sha512 => "SHA512",
        }
    }
}

impl FromStr for Algorithm {
    type Err = ParamError;

    /// Accepts `SHA1`, `SHA256`, `SHA512` in any case, with or without a
    /// hyphen after `SHA` (`sha-256`).
    fn from_str(s: &str) -> Result<Algorithm, ParamError> {
        let digits = s
            .get(..3)
            .filter(|prefix| prefix.eq_ignore_ascii_case("sha"))
            .and_then(|_| s.get(3..))
            .map(|rest| rest.strip_prefix('-').unwrap_or(rest));
        match digits {
            Some("1") => Ok(Algorithm::Sha1),
            Some("256") => Ok(Algorithm::Sha256),
            Some("512") => Ok(Algorithm::Sha512),
            _ => Err(ParamError::UnknownAlgorithm {
                name: crate::text::nameable(s, &NAMED_ALGORITHMS),
            }),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The number of decimal digits in a code, 6 to 8.
///
/// RFC 4226 §5.3 requires at least 6; 8 is the most any deployed
/// authenticator (and `oathtool`) supports, and the 31-bit truncated value
/// carries little more than 9 digits of entropy anyway.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Digits(u8);

impl Digits {
    /// The fewest digits accepted.
    pub const MIN: u8 = 6;
    /// The most digits accepted.
    pub const MAX: u8 = 8;

    /// Checks that `n` is 6, 7 or 8.
    pub fn new(n: u8) -> Result<Digits, ParamError> {
        Digits::try_from(u64::from(n))
    }

    /// The number of digits.
    pub fn get(self) -> u8 {
        self.0
    }

    /// 10 to the power of the digit count: codes are the truncated value
    /// modulo this (RFC 4226 §5.3, step 3).
    pub(crate) fn modulus(self) -> u32 {
        10u32.pow(u32::from(self.0))
    }
}

impl TryFrom<u64> for Digits {
    type Error = ParamError;

    fn try_from(n: u64) -> Result<Digits, ParamError> {
        match u8::try_from(n) {
            Ok(n) if (Digits::MIN..=Digits::MAX).contains(&n) => Ok(Digits(n)),
            _ => Err(ParamError::DigitsOutOfRange { digits: n }),
        }
    }
}

impl Default for Digits {
    /// Six digits, the default of RFC 4226 and of every authenticator app.
    fn default() -> Digits {
        Digits(6)
    }
}

impl fmt::Display for Digits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// The TOTP time step in seconds (RFC 6238 §4.1, "X"), 1 to [`Period::MAX`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Period(u32);

impl Period {
    /// One day. A code that stays valid longer is a static password rather
    /// than a one-time one, no authenticator app offers such a step, and a
    /// larger value is almost always a unit mistake (milliseconds for
    /// seconds). The bound also keeps `period - (t mod period)` and every
    /// related sum far from overflow.
    pub const MAX: u32 = 86_400;

    /// Checks that `seconds` is in `1..=Period::MAX`.
    pub fn new(seconds: u64) -> Result<Period, ParamError> {
        match u32::try_from(seconds) {
            Ok(s) if (1..=Period::MAX).contains(&s) => Ok(Period(s)),
            _ => Err(ParamError::PeriodOutOfRange { seconds }),
        }
    }

    /// The period in seconds.
    pub fn get(self) -> u32 {
        self.0
    }
}

impl Default for Period {
    /// Thirty seconds, RFC 6238's recommendation (§5.2).
    fn default() -> Period {
        Period(30)
    }
}

impl fmt::Display for Period {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// Hash functions an error may name when they are asked for. Anything else
/// given as an algorithm is not repeated: it could be pasted secret material.
const NAMED_ALGORITHMS: [&str; 12] = [
    "MD5",
    "SHA224",
    "SHA-224",
    "SHA384",
    "SHA-384",
    "SHA3-224",
    "SHA3-256",
    "SHA3-384",
    "SHA3-512",
    "SHA512/256",
    "SHA512-256",
    "SM3",
];

/// Why an OTP parameter was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ParamError {
    /// The hash function is not SHA1, SHA256 or SHA512 (for example MD5).
    #[error(
        "unsupported algorithm {}(expected SHA1, SHA256 or SHA512)",
        crate::text::quoted(*.name)
    )]
    UnknownAlgorithm {
        /// The name that was given when it is a well-known hash function
        /// (`MD5`, `SHA384`, ...); `None` otherwise.
        name: Option<&'static str>,
    },
    /// The digit count is not 6, 7 or 8.
    #[error("digits must be 6, 7 or 8, not {digits}")]
    DigitsOutOfRange {
        /// The count that was given.
        digits: u64,
    },
    /// The period is zero or longer than [`Period::MAX`].
    #[error("period must be between 1 and {max} seconds, not {seconds}", max = Period::MAX)]
    PeriodOutOfRange {
        /// The period that was given, in seconds.
        seconds: u64,
    },
}
