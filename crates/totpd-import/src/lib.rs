//! Enrollment from what a person has in hand, read into OTP parameters.
//!
//! [`read`] turns one file into [`Entry`]s: each is either the OTP
//! parameters of one credential, or the reason it cannot be served (a Steam
//! or mOTP entry, a URI that does not parse, ...). A file that cannot be read
//! at all is an [`ImportError`] and gives no entries.
//!
//! The formats read so far are the line-based ones: `otpauth://` URI lists
//! (which is also Ente Auth's plain export) and Google Authenticator's
//! `otpauth-migration://` URIs. Images and the authenticator apps'
//! JSON exports come next (DESIGN §2.5); each will be a variant of
//! [`Format`] only once it is read.
//!
//! Like `totpd-otp`, this crate does no I/O and reads no clock. Every
//! reader is bounded by its input and by [`Limits`], never panics, and keeps
//! secrets out of errors (the URI parsers' errors never repeat them).

use std::fmt;

use totpd_otp::OtpParams;

/// The file formats [`read`] takes (the `format` of DESIGN §2.5 that this
/// crate reads so far; the authenticator exports and images come next).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Format {
    /// Detect the format from the bytes.
    Auto,
    /// Text, one `otpauth://` URI per line.
    Otpauth,
    /// Google Authenticator `otpauth-migration://` URIs, one per line (the
    /// text of each QR code of a "Transfer accounts" export).
    Google,
}

impl Format {
    /// Every format, `auto` first.
    pub const ALL: [Format; 3] = [Format::Auto, Format::Otpauth, Format::Google];

    /// The format's name in the API and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Otpauth => "otpauth",
            Format::Google => "google",
        }
    }

    /// The format named `name`, if it is one.
    pub fn from_name(name: &str) -> Option<Format> {
        Format::ALL.into_iter().find(|f| f.as_str() == name)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One credential found in a file.
#[derive(Debug)]
pub enum Entry {
    /// A credential the vault can serve.
    Otp(OtpParams),
    /// A credential it cannot: a kind it does not serve (Steam, Yandex,
    /// mOTP, ...) or a damaged entry. The other entries are unaffected.
    Invalid(Invalid),
}

/// Why one entry of a file cannot be imported, with the names the file
/// gave it (never its secret).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The entry's account name or label, when the file has one.
    pub label: Option<String>,
    /// The entry's issuer, when the file has one.
    pub issuer: Option<String>,
    /// What is wrong, for a person: never holds secret material.
    pub reason: String,
}

impl Entry {
    /// An invalid entry with the given names and reason.
    pub fn invalid(
        label: Option<String>,
        issuer: Option<String>,
        reason: impl Into<String>,
    ) -> Entry {
        Entry::Invalid(Invalid {
            label,
            issuer,
            reason: reason.into(),
        })
    }
}

/// Why a whole file cannot be read. Every message is safe to show the
/// person who sent it: none holds secret material.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ImportError {
    /// `auto` found no format that reads the bytes.
    #[error("the file is not a format totpd can import ({})", format_names())]
    UnknownFormat,
    /// The file is of the named format but damaged or not as documented.
    #[error("not a valid {format} file: {reason}")]
    Malformed {
        /// The format that was expected.
        format: Format,
        /// What is wrong.
        reason: String,
    },
    /// More entries than [`Limits::max_entries`].
    #[error("the file has more than {max} entries")]
    TooManyEntries {
        /// The bound.
        max: usize,
    },
}

fn format_names() -> String {
    let names: Vec<&str> = Format::ALL[1..].iter().map(|f| f.as_str()).collect();
    names.join(", ")
}

/// Bounds that keep a hostile file cheap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Entries in one file (a Google batch counts each of its entries).
    pub max_entries: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_entries: 10_000,
        }
    }
}

/// Reads one file of `format` (or detects it with [`Format::Auto`]).
///
/// Text formats: the bytes must be UTF-8; a leading byte-order mark, blank
/// lines and lines starting with `#` are ignored, and each other line,
/// trimmed, is one URI. Every line gives entries in file order: an
/// `otpauth://` URI one entry, an `otpauth-migration://` URI one per
/// credential of its batch. A line that is not such a URI, or one that does
/// not parse, is an invalid entry whose reason says why (the parsers' errors
/// never repeat secret material), so the rest of the file still imports.
/// `otpauth` takes both kinds of line (a list pasted from several apps);
/// `google` takes only migration URIs. `auto` picks `google` when every URI
/// line is a migration URI and `otpauth` when any line is an `otpauth://`
/// URI; text with neither is [`ImportError::UnknownFormat`].
pub fn read(format: Format, data: &[u8], limits: &Limits) -> Result<Vec<Entry>, ImportError> {
    let format = match format {
        Format::Auto => detect(data).ok_or(ImportError::UnknownFormat)?,
        known => known,
    };
    let text = std::str::from_utf8(data).map_err(|_| ImportError::Malformed {
        format,
        reason: "the text is not UTF-8".to_owned(),
    })?;
    let mut entries = Vec::new();
    for line in uri_lines(text) {
        if has_scheme(line, MIGRATION_SCHEME) {
            match totpd_otp::google_export::decode(line) {
                Ok(batch) => entries.extend(batch.into_iter().map(|entry| match entry {
                    Ok(params) => Entry::Otp(params),
                    Err(error) => Entry::invalid(None, None, error.to_string()),
                })),
                Err(error) => entries.push(Entry::invalid(None, None, error.to_string())),
            }
        } else if format == Format::Google {
            entries.push(Entry::invalid(
                None,
                None,
                "not an otpauth-migration:// URI",
            ));
        } else {
            entries.push(match totpd_otp::parse_otpauth_uri(line) {
                Ok(params) => Entry::Otp(params),
                Err(error) => Entry::invalid(None, None, error.to_string()),
            });
        }
        if entries.len() > limits.max_entries {
            return Err(ImportError::TooManyEntries {
                max: limits.max_entries,
            });
        }
    }
    if entries.is_empty() {
        return Err(ImportError::Malformed {
            format,
            reason: "it holds no URI".to_owned(),
        });
    }
    Ok(entries)
}

const MIGRATION_SCHEME: &str = "otpauth-migration://";
const OTPAUTH_SCHEME: &str = "otpauth://";

/// The lines of `text` that are not blank or `#` comments, trimmed.
fn uri_lines(text: &str) -> impl Iterator<Item = &str> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// The format of `data`, if it is one this crate reads.
fn detect(data: &[u8]) -> Option<Format> {
    let text = std::str::from_utf8(data).ok()?;
    let mut migration = false;
    for line in uri_lines(text) {
        if has_scheme(line, OTPAUTH_SCHEME) {
            return Some(Format::Otpauth);
        }
        migration |= has_scheme(line, MIGRATION_SCHEME);
    }
    migration.then_some(Format::Google)
}

/// Whether `line` starts with `scheme`, in any case (RFC 3986: schemes are
/// case-insensitive).
fn has_scheme(line: &str, scheme: &str) -> bool {
    line.get(..scheme.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
}
