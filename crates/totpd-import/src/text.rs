//! The line-based formats: `otpauth://` URI lists (also Ente Auth's plain
//! export) and Google Authenticator's `otpauth-migration://` URIs.

use crate::{Entry, Format, ImportError, Limits, check_count};

const MIGRATION_SCHEME: &str = "otpauth-migration://";
const OTPAUTH_SCHEME: &str = "otpauth://";

/// Reads a text file of `format` ([`Format::Otpauth`] or [`Format::Google`]).
///
/// The bytes must be UTF-8; a leading byte-order mark, blank lines and lines
/// starting with `#` are ignored, and each other line, trimmed, is one URI.
/// Every line gives entries in file order: an `otpauth://` URI one entry, an
/// `otpauth-migration://` URI one per credential of its batch. A line that
/// is not such a URI, or one that does not parse, is an invalid entry whose
/// reason says why (the parsers' errors never repeat secret material), so
/// the rest of the file still imports. `otpauth` takes both kinds of line (a
/// list pasted from several apps); `google` takes only migration URIs. Text
/// without a single `otpauth://` or `otpauth-migration://` line is
/// [`ImportError::Malformed`]: it is not a URI list at all.
pub(crate) fn read(
    format: Format,
    data: &[u8],
    limits: &Limits,
) -> Result<Vec<Entry>, ImportError> {
    let text = std::str::from_utf8(data)
        .map_err(|_| ImportError::malformed(format, "the text is not UTF-8"))?;
    let mut entries = Vec::new();
    for line in uri_lines(text) {
        if format == Format::Google && !has_scheme(line, MIGRATION_SCHEME) {
            entries.push(Entry::invalid(
                None,
                None,
                "not an otpauth-migration:// URI",
            ));
        } else {
            push_uri(line, &mut entries);
        }
        check_count(entries.len(), limits)?;
    }
    // Text with no URI line at all is not a list that lost some entries but
    // another file altogether: refused whole, like any unknown format.
    if !uri_lines(text).any(is_otp_uri) {
        return Err(ImportError::malformed(format, "it holds no URI"));
    }
    Ok(entries)
}

/// Appends the entries of one URI: an `otpauth-migration://` batch gives
/// each of its credentials, anything else is read as an `otpauth://` URI.
/// Shared by every format whose entries are URIs (QR codes, Ente, ...).
pub(crate) fn push_uri(uri: &str, entries: &mut Vec<Entry>) {
    if has_scheme(uri, MIGRATION_SCHEME) {
        match totpd_otp::google_export::decode(uri) {
            Ok(batch) => entries.extend(batch.into_iter().map(|entry| match entry {
                Ok(params) => Entry::Otp(params),
                Err(error) => Entry::invalid(None, None, error.to_string()),
            })),
            Err(error) => entries.push(Entry::invalid(None, None, error.to_string())),
        }
    } else {
        entries.push(match totpd_otp::parse_otpauth_uri(uri) {
            Ok(params) => Entry::Otp(params),
            Err(error) => Entry::invalid(None, None, error.to_string()),
        });
    }
}

/// Whether `text` is an `otpauth://` or `otpauth-migration://` URI.
pub(crate) fn is_otp_uri(text: &str) -> bool {
    let text = text.trim();
    has_scheme(text, OTPAUTH_SCHEME) || has_scheme(text, MIGRATION_SCHEME)
}

/// The lines of `text` that are not blank or `#` comments, trimmed.
pub(crate) fn uri_lines(text: &str) -> impl Iterator<Item = &str> {
    text.strip_prefix('\u{feff}')
        .unwrap_or(text)
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
}

/// The text format of `data`: `google` when every URI line is a migration
/// URI, `otpauth` when any line is an `otpauth://` URI, else none.
pub(crate) fn detect(data: &[u8]) -> Option<Format> {
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
pub(crate) fn has_scheme(line: &str, scheme: &str) -> bool {
    line.get(..scheme.len())
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case(scheme))
}
