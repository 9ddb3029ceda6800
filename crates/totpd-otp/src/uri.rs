//! `otpauth://` URIs, Google Authenticator's "Key URI Format": the text
//! inside the QR code a service shows at enrollment.
//!
//! ```text
//! otpauth://TYPE/LABEL?PARAMETERS
//! otpauth://totp/ACME%20Co:john@example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co&period=30
//! ```
//!
//! The rules the parser follows are on [`parse_otpauth_uri`].

use std::fmt;

use zeroize::Zeroizing;

use crate::base32::Base32Error;
use crate::params::{Algorithm, Digits, ParamError, Period};
use crate::secret::{Secret, SecretError};
use crate::text::{self, Param, QueryError};

/// Whether codes are time-based or counter-based.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OtpKind {
    /// TOTP (RFC 6238): the counter is the time divided by the period.
    Totp {
        /// The time step.
        period: Period,
    },
    /// HOTP (RFC 4226): the counter is stored and advanced.
    Hotp {
        /// The counter of the next code.
        counter: u64,
    },
}

/// Everything an enrollment URI says about a credential.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OtpParams {
    /// TOTP with its period, or HOTP with its counter.
    pub kind: OtpKind,
    /// The shared secret.
    pub secret: Secret,
    /// The HMAC hash function.
    pub algorithm: Algorithm,
    /// The digit count of each code.
    pub digits: Digits,
    /// The service: the `issuer` parameter, else the label's prefix; `None`
    /// when neither is present (or both are empty).
    pub issuer: Option<String>,
    /// The account part of the label, percent-decoded; may be empty.
    pub account: String,
}

impl OtpParams {
    /// Formats a canonical `otpauth://` URI: lower-case scheme and type, the
    /// label as `Issuer:account` (the form older apps read), then `secret`
    /// (upper-case base32 without padding), `issuer`, `algorithm`, `digits`
    /// and `period` or `counter`, always in that order and always present.
    ///
    /// For every value [`parse_otpauth_uri`] returns, parsing the result gives
    /// the same value back. That includes an account with a colon (it gets an
    /// issuer prefix, empty if need be, so the split lands in front of it) and
    /// an account starting with spaces (it is written without a prefix).
    /// Values the parser cannot return do not round-trip: `issuer:
    /// Some("")` comes back as `None`, and an account that has a colon and
    /// starts with a space loses the space.
    ///
    /// The URI contains the secret; wrap it in [`zeroize::Zeroizing`] if it
    /// must not outlive its use in memory.
    pub fn to_uri(&self) -> String {
        let secret = self.secret.to_base32();
        let mut uri = String::with_capacity(
            80 + secret.len()
                + 3 * (self.account.len() + 2 * self.issuer.as_ref().map_or(0, String::len)),
        );
        uri.push_str(match self.kind {
            OtpKind::Totp { .. } => "otpauth://totp/",
            OtpKind::Hotp { .. } => "otpauth://hotp/",
        });
        let account_has_colon = self.account.contains(':');
        let account_leading_space = self.account.starts_with(' ');
        match self.issuer.as_deref() {
            Some(issuer) if !issuer.contains(':') && !account_leading_space => {
                text::percent_encode_into(issuer, &mut uri);
                uri.push(':');
            }
            // The issuer travels in the parameter; an empty prefix keeps a
            // colon in the account from being taken as the separator.
            _ if account_has_colon => uri.push(':'),
            _ => {}
        }
        text::percent_encode_into(&self.account, &mut uri);
        uri.push_str("?secret=");
        uri.push_str(&secret);
        if let Some(issuer) = &self.issuer {
            uri.push_str("&issuer=");
            text::percent_encode_into(issuer, &mut uri);
        }
        uri.push_str("&algorithm=");
        uri.push_str(self.algorithm.as_str());
        uri.push_str("&digits=");
        uri.push_str(&self.digits.to_string());
        match self.kind {
            OtpKind::Totp { period } => {
                uri.push_str("&period=");
                uri.push_str(&period.to_string());
            }
            OtpKind::Hotp { counter } => {
                uri.push_str("&counter=");
                uri.push_str(&counter.to_string());
            }
        }
        uri
    }
}

/// Parses an `otpauth://totp/...` or `otpauth://hotp/...` URI.
///
/// ```text
/// otpauth://TYPE/LABEL?PARAMETERS
/// otpauth://totp/ACME%20Co:john@example.com?secret=JBSWY3DPEHPK3PXP&issuer=ACME%20Co&period=30
/// ```
///
/// The parser accepts what real services hand out and refuses, with an error
/// naming the part, what would give wrong codes:
///
/// - The scheme (`otpauth`) and the type (`totp`, `hotp`) are matched without
///   regard to case. Surrounding whitespace (a pasted trailing newline) is
///   ignored.
/// - The label is everything between the type and `?`, percent-decoded as
///   UTF-8. A `+` in the label stays a `+` (it is a literal in a URI path,
///   and account names such as `bob+work@example.com` contain it). It is
///   split on its first `:` (literal or `%3A`) into an issuer prefix and the
///   account; spaces after the colon are dropped. There may be no label.
/// - Parameter names are matched without regard to case; values are
///   percent-decoded and a `+` in them means a space (form encoding, which
///   many generators use). Empty segments are skipped, unknown parameters
///   (`image`, `lock`, `color`, ...) ignored, and any parameter that appears
///   twice is an error.
/// - `secret` is required: lenient base32 (see [`crate::base32::decode`]),
///   padding also as `%3D`.
/// - `issuer` wins over the label prefix. An empty `issuer=` counts as absent.
/// - `algorithm` (default SHA1) in any case; `digits` (default 6) 6 to 8;
///   `period` (default 30, TOTP only) 1 to [`Period::MAX`]. Surrounding
///   spaces in these values are ignored.
/// - `counter` is required for `hotp`: without it the position in the
///   sequence is unknown, and assuming 0 would silently produce codes the
///   service has already consumed or has not reached. It is ignored for
///   `totp`, as `period` is for `hotp`.
/// - No fragment is recognised: a `#` is an ordinary character, since a raw
///   `#` in an issuer name is more likely than a fragment in an OTP URI.
pub fn parse_otpauth_uri(uri: &str) -> Result<OtpParams, UriError> {
    let uri = uri.trim_matches(|c: char| c.is_ascii_whitespace());
    let (scheme, rest) = text::split_scheme(uri).ok_or(UriError::MissingScheme)?;
    if !scheme.eq_ignore_ascii_case("otpauth") {
        return Err(UriError::UnsupportedScheme {
            scheme: text::nameable_scheme(scheme),
        });
    }
    let (kind, raw_label, query) = text::split_hierarchy(rest).ok_or(UriError::MissingSlashes)?;
    let is_totp = if kind.eq_ignore_ascii_case("totp") {
        true
    } else if kind.eq_ignore_ascii_case("hotp") {
        false
    } else if kind.is_empty() {
        return Err(UriError::MissingType);
    } else {
        return Err(UriError::UnsupportedType {
            kind: text::nameable(kind, &text::NAMED_TYPES),
        });
    };

    let label_bytes =
        text::percent_decode(raw_label, false).ok_or(UriError::InvalidPercentEncoding {
            part: UriPart::Label,
        })?;
    let label = std::str::from_utf8(&label_bytes).map_err(|_| UriError::InvalidUtf8 {
        part: UriPart::Label,
    })?;
    let (label_issuer, account) = text::split_label(label);

    let params = text::parse_query(query).map_err(|error| match error {
        QueryError::BadName { position } => UriError::InvalidPercentEncoding {
            part: UriPart::ParameterName { position },
        },
        QueryError::Repeated {
            name,
            first,
            second,
        } => UriError::RepeatedParameter {
            name,
            first,
            second,
        },
    })?;
    let find = |name: &str| params.iter().find(|p| p.name == name);

    let secret = match find("secret") {
        None => return Err(UriError::MissingParameter { name: "secret" }),
        Some(param) => {
            let value = decode_value(param, "secret")?;
            Secret::from_base32(&value).map_err(|error| match error {
                Base32Error::Secret(SecretError::Empty) => {
                    UriError::EmptyParameter { name: "secret" }
                }
                other => UriError::InvalidSecret(other),
            })?
        }
    };
    let algorithm = match find("algorithm") {
        None => Algorithm::default(),
        Some(param) => trimmed_value(param, "algorithm")?
            .parse()
            .map_err(|reason| UriError::InvalidParameter {
                name: "algorithm",
                reason,
            })?,
    };
    let digits = match find("digits") {
        None => Digits::default(),
        Some(param) => Digits::try_from(integer_value(param, "digits")?).map_err(|reason| {
            UriError::InvalidParameter {
                name: "digits",
                reason,
            }
        })?,
    };
    let kind = if is_totp {
        let period = match find("period") {
            None => Period::default(),
            Some(param) => Period::new(integer_value(param, "period")?).map_err(|reason| {
                UriError::InvalidParameter {
                    name: "period",
                    reason,
                }
            })?,
        };
        OtpKind::Totp { period }
    } else {
        match find("counter") {
            None => return Err(UriError::MissingParameter { name: "counter" }),
            Some(param) => OtpKind::Hotp {
                counter: integer_value(param, "counter")?,
            },
        }
    };
    let issuer_param = match find("issuer") {
        None => None,
        Some(param) => Some(decode_value(param, "issuer")?.to_string()).filter(|i| !i.is_empty()),
    };

    Ok(OtpParams {
        kind,
        secret,
        algorithm,
        digits,
        issuer: issuer_param.or_else(|| label_issuer.map(str::to_owned)),
        account: account.to_owned(),
    })
}

/// The percent-decoded value of a parameter, zeroized on drop (it may be the
/// secret).
fn decode_value(param: &Param<'_>, name: &'static str) -> Result<Zeroizing<String>, UriError> {
    let bytes =
        text::percent_decode(param.raw_value, true).ok_or(UriError::InvalidPercentEncoding {
            part: UriPart::Parameter(name),
        })?;
    let value = std::str::from_utf8(&bytes).map_err(|_| UriError::InvalidUtf8 {
        part: UriPart::Parameter(name),
    })?;
    Ok(Zeroizing::new(value.to_owned()))
}

/// The decoded value without surrounding spaces; empty is an error.
fn trimmed_value(param: &Param<'_>, name: &'static str) -> Result<String, UriError> {
    let value = decode_value(param, name)?;
    let value = value.trim();
    if value.is_empty() {
        return Err(UriError::EmptyParameter { name });
    }
    Ok(value.to_owned())
}

fn integer_value(param: &Param<'_>, name: &'static str) -> Result<u64, UriError> {
    let value = trimmed_value(param, name)?;
    // Only plain decimal digits: `u64::from_str` would also take a `+` sign.
    if !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UriError::NotAnInteger { name });
    }
    value.parse().map_err(|_| UriError::NotAnInteger { name })
}

/// The part of a URI an error is about.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum UriPart {
    /// The label (`Issuer:account`).
    Label,
    /// The value of the named parameter.
    Parameter(&'static str),
    /// The name of the query parameter at this position (from 1, empty
    /// segments not counted). The name itself is never repeated: it could
    /// be pasted secret material.
    ParameterName {
        /// The parameter's position.
        position: usize,
    },
}

impl fmt::Display for UriPart {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UriPart::Label => f.write_str("the label"),
            UriPart::Parameter(name) => write!(f, "parameter {name:?}"),
            UriPart::ParameterName { position } => {
                write!(f, "the name of query parameter {position}")
            }
        }
    }
}

/// Why a text is not an acceptable `otpauth://` URI.
///
/// No variant holds secret material, nor any other text of the input that
/// could be some: a bad secret is reported by the offending character (one
/// that is not base32) and its position only, and other parts by the
/// parameter's name or position. Input is quoted back only when it is a
/// word from a fixed list (a well-known scheme, type, parameter name or
/// algorithm).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UriError {
    /// The text does not start with a URI scheme.
    #[error("not a URI: expected it to start with \"otpauth://\"")]
    MissingScheme,
    /// The scheme is not `otpauth`.
    #[error("unsupported scheme {}(expected \"otpauth\")", text::quoted_scheme(.scheme))]
    UnsupportedScheme {
        /// The scheme that was given when it is a well-known one (`https`,
        /// `otpauth-migration`, ...); empty otherwise, since the text before
        /// a colon may be a pasted secret and is not repeated.
        scheme: String,
    },
    /// `otpauth:` is not followed by `//`.
    #[error("expected \"//\" after \"otpauth:\"")]
    MissingSlashes,
    /// Nothing between `otpauth://` and the label.
    #[error("missing type after \"otpauth://\" (expected \"totp\" or \"hotp\")")]
    MissingType,
    /// The type is neither `totp` nor `hotp`.
    #[error("unsupported type {}(expected \"totp\" or \"hotp\")", text::quoted(*.kind))]
    UnsupportedType {
        /// The type that was given when it is a known one (`steam`, `motp`,
        /// ...); `None` otherwise, since it may be pasted text.
        kind: Option<&'static str>,
    },
    /// A `%` not followed by two hex digits.
    #[error("invalid percent-encoding in {part}")]
    InvalidPercentEncoding {
        /// Where it is.
        part: UriPart,
    },
    /// Percent-decoding gave bytes that are not UTF-8.
    #[error("{part} is not valid UTF-8 after percent-decoding")]
    InvalidUtf8 {
        /// Where it is.
        part: UriPart,
    },
    /// A required parameter (`secret`; `counter` for HOTP) is absent.
    #[error("parameter {name:?} is missing")]
    MissingParameter {
        /// The parameter's name.
        name: &'static str,
    },
    /// A parameter that needs a value has none.
    #[error("parameter {name:?} is empty")]
    EmptyParameter {
        /// The parameter's name.
        name: &'static str,
    },
    /// A parameter appears more than once.
    #[error(
        "{} appears twice (query parameters {first} and {second})",
        repeated_name(*.name)
    )]
    RepeatedParameter {
        /// The parameter's name when it is a well-known one (`secret`,
        /// `period`, `image`, ...); `None` otherwise, since it may be a
        /// pasted secret.
        name: Option<&'static str>,
        /// Position of the first occurrence (from 1, empty segments not
        /// counted).
        first: usize,
        /// Position of the second occurrence.
        second: usize,
    },
    /// The secret is not base32, or is too long.
    #[error("parameter \"secret\" is invalid: {0}")]
    InvalidSecret(Base32Error),
    /// `digits`, `period` or `counter` is not a non-negative decimal integer
    /// (this is also how a negative period is reported).
    #[error("parameter {name:?} must be a non-negative whole number")]
    NotAnInteger {
        /// The parameter's name.
        name: &'static str,
    },
    /// `algorithm`, `digits` or `period` has a value out of range.
    #[error("parameter {name:?} is invalid: {reason}")]
    InvalidParameter {
        /// The parameter's name.
        name: &'static str,
        /// What is wrong with it.
        reason: ParamError,
    },
}

/// How a repeated parameter is named: `parameter "secret"`, or `a parameter
/// name` when the name is not a well-known one.
pub(crate) fn repeated_name(name: Option<&str>) -> String {
    match name {
        Some(name) => format!("parameter {name:?}"),
        None => "a parameter name".to_owned(),
    }
}
