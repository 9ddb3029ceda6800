//! Small URI text helpers shared by the otpauth and Google Authenticator export parsers.

use std::collections::HashMap;

use zeroize::Zeroizing;

/// The longest piece of user input quoted back in an error message.
const SNIPPET_CHARS: usize = 40;

/// `s`, shortened to a readable length for an error message.
pub(crate) fn snippet(s: &str) -> String {
    match s.char_indices().nth(SNIPPET_CHARS) {
        Some((end, _)) => format!("{}…", s.get(..end).unwrap_or_default()),
        None => s.to_owned(),
    }
}

/// Schemes an error may name. Text before a colon that is not one of these
/// may be a pasted secret (`JBSWY3DPEHPK3PXP:alice` is a valid scheme by
/// RFC 3986), so it is never repeated back.
const NAMED_SCHEMES: [&str; 10] = [
    "otpauth",
    "otpauth-migration",
    "http",
    "https",
    "data",
    "file",
    "mailto",
    "steam",
    "motp",
    "content",
];

/// OTP types other than `totp` and `hotp` that an error may name.
pub(crate) const NAMED_TYPES: [&str; 5] = ["steam", "motp", "yaotp", "ocra", "push"];

/// Query parameter names an error may name: those the parsers read and
/// those enrollment URIs commonly carry. Any other name may be pasted
/// secret material (`?JBSWY3DP...&JBSWY3DP...`), so it is never repeated.
pub(crate) const NAMED_PARAMETERS: [&str; 13] = [
    "secret",
    "issuer",
    "algorithm",
    "digits",
    "period",
    "counter",
    "image",
    "icon",
    "logo",
    "color",
    "lock",
    "data",
    "version",
];

/// The entry of `known` that `value` is (without regard to case), if any.
/// Errors quote user input only through this: a word from a fixed list
/// cannot be anybody's secret.
pub(crate) fn nameable(value: &str, known: &[&'static str]) -> Option<&'static str> {
    known
        .iter()
        .copied()
        .find(|word| word.eq_ignore_ascii_case(value))
}

/// The scheme as an error may carry it: the well-known one it is, empty
/// otherwise (see [`NAMED_SCHEMES`]).
pub(crate) fn nameable_scheme(scheme: &str) -> String {
    nameable(scheme, &NAMED_SCHEMES)
        .map(str::to_owned)
        .unwrap_or_default()
}

/// `"word" ` (quoted, with a trailing space) for an error message, or
/// nothing when the word was withheld (empty).
pub(crate) fn quoted_scheme(word: &str) -> String {
    if word.is_empty() {
        String::new()
    } else {
        format!("{word:?} ")
    }
}

/// Like [`quoted_scheme`], for a word that may be absent.
pub(crate) fn quoted(word: Option<&str>) -> String {
    quoted_scheme(word.unwrap_or_default())
}

/// Splits `uri` into its scheme and the rest after the `:`.
///
/// Returns `None` when the text before the first `:` is not a scheme by
/// RFC 3986 §3.1 (`ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )`), so that a
/// pasted secret or other non-URI text is never quoted back as a "scheme".
pub(crate) fn split_scheme(uri: &str) -> Option<(&str, &str)> {
    let (scheme, rest) = uri.split_once(':')?;
    let mut chars = scheme.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    (first_ok && rest_ok).then_some((scheme, rest))
}

/// Splits `after_scheme` (what follows `scheme:`) into the authority (host),
/// the path (without its leading `/`) and the query (without `?`).
///
/// Returns `None` when it does not start with `//`.
pub(crate) fn split_hierarchy(after_scheme: &str) -> Option<(&str, &str, &str)> {
    let rest = after_scheme.strip_prefix("//")?;
    let (before_query, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, path) = before_query.split_once('/').unwrap_or((before_query, ""));
    Some((host, path, query))
}

/// Decodes `%XX` escapes (RFC 3986 §2.1). With `plus_as_space`, `+` becomes a
/// space, as in HTML form encoding (what Java's `URLEncoder`, used by many
/// QR generators, writes for a space).
///
/// Returns `None` for a `%` not followed by two hex digits. The output may
/// hold secret material, so it is zeroized on drop; it is sized up front so
/// it never reallocates.
pub(crate) fn percent_decode(input: &str, plus_as_space: bool) -> Option<Zeroizing<Vec<u8>>> {
    let mut out = Zeroizing::new(Vec::with_capacity(input.len()));
    let mut bytes = input.bytes();
    while let Some(byte) = bytes.next() {
        match byte {
            b'%' => {
                let high = bytes.next().and_then(hex_value)?;
                let low = bytes.next().and_then(hex_value)?;
                out.push((high << 4) | low);
            }
            b'+' if plus_as_space => out.push(b' '),
            _ => out.push(byte),
        }
    }
    Some(out)
}

fn hex_value(byte: u8) -> Option<u8> {
    char::from(byte)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

/// Appends `s` to `out`, percent-encoding every byte except RFC 3986's
/// unreserved characters and `@` (legal in both paths and queries, and common
/// in account names). A space becomes `%20`, never `+`, so the result means
/// the same in a path and in a query.
pub(crate) fn percent_encode_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~' | b'@') {
            out.push(char::from(byte));
        } else {
            out.push('%');
            for nibble in [byte >> 4, byte & 0x0f] {
                out.push(HEX.get(usize::from(nibble)).map_or('0', |&h| char::from(h)));
            }
        }
    }
}

/// A query parameter: its name (percent-decoded, lower case) and raw value.
pub(crate) struct Param<'a> {
    pub(crate) name: String,
    pub(crate) raw_value: &'a str,
}

/// What is wrong with a query string as a whole. Parameters are numbered
/// from 1 in the order written, empty segments not counted; no variant holds
/// the text of a name, which could be pasted secret material.
pub(crate) enum QueryError {
    /// The name of the parameter at this position has a bad `%` escape or is
    /// not UTF-8.
    BadName {
        /// Its position.
        position: usize,
    },
    /// Two parameters have the same name.
    Repeated {
        /// The name, when it is one of [`NAMED_PARAMETERS`].
        name: Option<&'static str>,
        /// The position of the first one.
        first: usize,
        /// The position of the second one.
        second: usize,
    },
}

/// Splits a query string into parameters.
///
/// Names are matched without regard to case. Empty segments (`a=1&&b=2`, a
/// trailing `&`) are skipped; a segment without `=` is a parameter with an
/// empty value. Any parameter that appears twice is an error: the two values
/// could disagree, and guessing which one the issuer meant could silently
/// produce wrong codes.
pub(crate) fn parse_query(query: &str) -> Result<Vec<Param<'_>>, QueryError> {
    let mut params: Vec<Param<'_>> = Vec::new();
    let mut seen = HashMap::new();
    for (index, segment) in query.split('&').filter(|s| !s.is_empty()).enumerate() {
        let position = index + 1;
        let (raw_name, raw_value) = segment.split_once('=').unwrap_or((segment, ""));
        let name = percent_decode(raw_name, true)
            .and_then(|bytes| std::str::from_utf8(&bytes).ok().map(str::to_lowercase))
            .ok_or(QueryError::BadName { position })?;
        if let Some(&first) = seen.get(&name) {
            return Err(QueryError::Repeated {
                name: nameable(&name, &NAMED_PARAMETERS),
                first,
                second: position,
            });
        }
        seen.insert(name.clone(), position);
        params.push(Param { name, raw_value });
    }
    Ok(params)
}

/// Splits a decoded label or migration entry name, `Issuer:account`, on its
/// first colon (Key URI format, "Label"). Spaces after the colon are dropped;
/// an empty prefix counts as no issuer.
pub(crate) fn split_label(label: &str) -> (Option<&str>, &str) {
    match label.split_once(':') {
        Some((prefix, account)) => (
            Some(prefix).filter(|p| !p.is_empty()),
            account.trim_start_matches(' '),
        ),
        None => (None, label),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_handles_escapes_plus_and_bad_escapes() {
        assert_eq!(
            percent_decode("a%3Ab+c%3d", true)
                .as_deref()
                .map(Vec::as_slice),
            Some(&b"a:b c="[..])
        );
        assert_eq!(
            percent_decode("a+b", false).as_deref().map(Vec::as_slice),
            Some(&b"a+b"[..])
        );
        assert!(percent_decode("%4", true).is_none());
        assert!(percent_decode("%zz", true).is_none());
        assert!(percent_decode("%", true).is_none());
    }

    #[test]
    fn percent_encoding_keeps_unreserved_and_at_and_escapes_the_rest() {
        let mut out = String::new();
        percent_encode_into("bob+1@example.com: é/?", &mut out);
        assert_eq!(out, "bob%2B1@example.com%3A%20%C3%A9%2F%3F");
    }

    #[test]
    fn only_well_known_schemes_are_named_in_errors() {
        assert_eq!(nameable_scheme("HTTPS"), "https");
        assert_eq!(nameable_scheme("otpauth-migration"), "otpauth-migration");
        assert_eq!(nameable_scheme("JBSWY3DPEHPK3PXP"), "");
        assert_eq!(quoted_scheme("https"), "\"https\" ");
        assert_eq!(quoted_scheme(""), "");
    }

    #[test]
    fn schemes_must_look_like_schemes() {
        assert_eq!(split_scheme("otpauth://x"), Some(("otpauth", "//x")));
        assert_eq!(split_scheme("a+b.c-d:x"), Some(("a+b.c-d", "x")));
        assert_eq!(split_scheme("JBSWY3DP"), None);
        assert_eq!(split_scheme("1abc:x"), None);
        assert_eq!(split_scheme("ab c:x"), None);
        assert_eq!(split_scheme(":x"), None);
    }

    #[test]
    fn snippets_shorten_long_input_on_a_character_boundary() {
        assert_eq!(snippet("short"), "short");
        let long = "é".repeat(50);
        assert_eq!(snippet(&long), format!("{}…", "é".repeat(40)));
    }
}
