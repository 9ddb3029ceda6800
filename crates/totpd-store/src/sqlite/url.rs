//! `sqlite:` URLs: which file to open, and how.

use std::path::PathBuf;

use totpd_vault::StoreError;

/// How the database file may be opened (the URL's `mode` parameter, as in
/// SQLite's own URI filenames).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `mode=rwc`, the default: read-write, creating the file if missing.
    #[default]
    Create,
    /// `mode=rw`: read-write; a missing file is an error.
    Existing,
    /// `mode=ro`: read-only. Every write fails, and a database whose schema
    /// needs migrating is refused (e.g. the source of `totpd migrate`).
    ReadOnly,
}

/// A parsed `sqlite:` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Location {
    /// The database file.
    pub path: PathBuf,
    /// How to open it.
    pub mode: Mode,
}

/// Parses `sqlite://PATH`, `sqlite:///abs/path` or `sqlite:PATH`, each with
/// optional `?mode=rwc|rw|ro` (and `cache=...`, accepted and ignored: each
/// connection has its own cache). The path is percent-decoded, so a file
/// name may contain `?` or `#` as `%3F` and `%23`.
pub(crate) fn parse(url: &str) -> Result<Location, StoreError> {
    let rest = match url.split_once(':') {
        Some((scheme, rest)) if scheme.eq_ignore_ascii_case("sqlite") => rest,
        _ => return Err(invalid("it must start with sqlite:")),
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() {
        return Err(invalid("it names no database file"));
    }
    if path == ":memory:" {
        return Err(invalid(
            "in-memory databases are not supported: give a file path",
        ));
    }
    let path = percent_decode(path)?;
    let mut mode = Mode::default();
    for pair in query.split('&').filter(|pair| !pair.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        match key {
            "mode" => {
                mode = match value {
                    "rwc" => Mode::Create,
                    "rw" => Mode::Existing,
                    "ro" => Mode::ReadOnly,
                    "memory" => {
                        return Err(invalid(
                            "in-memory databases are not supported: give a file path",
                        ));
                    }
                    _ => return Err(invalid("mode must be rwc, rw or ro")),
                }
            }
            "cache" => {}
            _ => {
                return Err(StoreError::other_msg(format!(
                    "invalid SQLite URL: unknown parameter {key:?} (known: mode, cache)"
                )));
            }
        }
    }
    Ok(Location {
        path: PathBuf::from(path),
        mode,
    })
}

fn invalid(why: &str) -> StoreError {
    StoreError::other_msg(format!("invalid SQLite URL: {why}"))
}

/// Decodes `%XX` escapes; a `%` not followed by two hex digits stays as is.
fn percent_decode(text: &str) -> Result<String, StoreError> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let escaped = match (byte, bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&high), Some(&low)) => hex(high).zip(hex(low)),
            _ => None,
        };
        match escaped {
            Some((high, low)) => {
                out.push(high << 4 | low);
                i += 3;
            }
            None => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| invalid("the path is not UTF-8 once decoded"))
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|d| u8::try_from(d).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(url: &str, path: &str, mode: Mode) {
        let location = parse(url).unwrap();
        assert_eq!(location.path, PathBuf::from(path), "{url}");
        assert_eq!(location.mode, mode, "{url}");
    }

    #[test]
    fn accepted_url_forms() {
        use Mode::*;
        check("sqlite://totpd.db", "totpd.db", Create);
        check("sqlite://data/totpd.db", "data/totpd.db", Create);
        check("sqlite:///abs/path.db", "/abs/path.db", Create);
        check("sqlite:rel.db", "rel.db", Create);
        check("sqlite:/abs.db", "/abs.db", Create);
        check("SQLite:///x.db", "/x.db", Create);
        check("sqlite:///x.db?mode=rwc", "/x.db", Create);
        check("sqlite:///x.db?mode=rw", "/x.db", Existing);
        check("sqlite:///x.db?mode=ro&cache=shared", "/x.db", ReadOnly);
        check("sqlite:///x.db?", "/x.db", Create);
        check("sqlite:///a%20b%3Fc%23.db", "/a b?c#.db", Create);
        check("sqlite:///100%.db", "/100%.db", Create);
        check("sqlite:///%e2%82%ac.db", "/\u{20ac}.db", Create);
    }

    #[test]
    fn rejected_urls() {
        for url in [
            "postgres://x",
            "sqlite://",
            "sqlite:",
            "sqlite::memory:",
            "sqlite://x.db?mode=memory",
            "sqlite://x.db?mode=wat",
            "sqlite://x.db?journal=delete",
            "sqlite:///%ff.db",
        ] {
            assert!(parse(url).is_err(), "{url} was accepted");
        }
    }
}
