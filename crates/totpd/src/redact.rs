//! Keeping the passwords of database URLs out of messages and `Debug`
//! output: the one place that finds a URL's password.

/// The passwords of some database URLs, to keep them out of messages.
///
/// Found wherever a URL may carry one, also in a malformed URL (a message
/// about a mistyped URL is where one would otherwise show up): the
/// `user:password@` part before the host, and a `password=` parameter. Each
/// is also looked for percent-decoded, as drivers may print it.
pub(crate) struct Passwords(Vec<String>);

impl Passwords {
    pub(crate) fn of(urls: &[&str]) -> Passwords {
        let mut found: Vec<String> = urls.iter().flat_map(|url| url_passwords(url)).collect();
        // Longest first, so that no part of a longer one is left behind.
        found.sort_by_key(|p| std::cmp::Reverse(p.len()));
        found.dedup();
        Passwords(found)
    }

    /// `text` with every one of the passwords replaced by `***`.
    pub(crate) fn scrub(&self, text: &str) -> String {
        self.scrub_with(text, "***")
    }

    fn scrub_with(&self, text: &str, with: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, password| {
            text.replace(password, with)
        })
    }
}

/// `url` with its password (if any) replaced by `[redacted]`, for `Debug`
/// of the arguments: scheme, user, host, port, database and other
/// parameters are kept. The user info ends at the last `@` before the
/// query, so a password with a raw `@` or `/` in it is still hidden.
pub(crate) fn redact_url_password(url: &str) -> String {
    Passwords::of(&[url]).scrub_with(url, "[redacted]")
}

/// `url` with its password (if any) replaced by `***`, as in messages.
#[cfg(test)]
fn redacted_url(url: &str) -> String {
    Passwords::of(&[url]).scrub(url)
}

fn url_passwords(url: &str) -> Vec<String> {
    let mut found = Vec::new();
    // Whatever the scheme looks like, and however many slashes follow it.
    let rest = url.split_once(':').map_or(url, |(_, rest)| rest);
    let rest = rest.trim_start_matches('/');
    let (before_query, query) = match rest.split_once('?') {
        Some((before, query)) => (before, Some(query)),
        None => (rest, None),
    };
    let before_query = before_query.split('#').next().unwrap_or_default();
    if let Some((userinfo, _host)) = before_query.rsplit_once('@')
        && let Some((_user, password)) = userinfo.split_once(':')
    {
        found.push(password.to_owned());
    }
    if let Some(query) = query {
        let query = query.split('#').next().unwrap_or_default();
        for pair in query.split('&') {
            if let Some((key, value)) = pair.split_once('=')
                && key.trim().eq_ignore_ascii_case("password")
            {
                found.push(value.to_owned());
            }
        }
    }
    let decoded: Vec<String> = found.iter().map(|p| percent_decode(p)).collect();
    found.extend(decoded);
    found.retain(|p| !p.is_empty());
    found
}

/// `%XX` sequences decoded (and `+` kept as it is); invalid ones left alone.
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (byte, hex) {
            (b'%', Some(decoded)) => {
                out.push(decoded);
                i += 3;
            }
            _ => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        for (url, shown) in [
            (
                "postgres://u:hunter2@db:5432/totpd",
                "postgres://u:[redacted]@db:5432/totpd",
            ),
            (
                "postgres://u:hun@ter/2@db/totpd?sslmode=verify-full",
                "postgres://u:[redacted]@db/totpd?sslmode=verify-full",
            ),
            (
                "postgres://u@db/totpd?sslmode=require&password=hunter2",
                "postgres://u@db/totpd?sslmode=require&password=[redacted]",
            ),
            ("postgres://u@db/totpd", "postgres://u@db/totpd"),
            ("sqlite:///tmp/x.db", "sqlite:///tmp/x.db"),
        ] {
            assert_eq!(redact_url_password(url), shown, "{url}");
        }
    }

    #[test]
    fn passwords_are_found_in_well_formed_and_mistyped_urls() {
        for url in [
            "postgres://totpd:hunter2@db:5432/totpd",
            "postgresql://totpd:hunter2@db/totpd?sslmode=verify-full",
            "postgres:/totpd:hunter2@db/totpd",
            "postgres:totpd:hunter2@db/totpd",
            "postgres://totpd@db/totpd?sslmode=require&password=hunter2",
            "postgres://totpd:hun%74er2@db/totpd",
        ] {
            let redacted = redacted_url(url);
            assert!(!redacted.contains("hunter2"), "{url} -> {redacted}");
            assert!(
                !Passwords::of(&[url])
                    .scrub("role: database \"hunter2\" ...")
                    .contains("hunter2"),
                "{url}"
            );
        }
        assert_eq!(
            redacted_url("postgres://totpd:hunter2@db:5432/totpd"),
            "postgres://totpd:***@db:5432/totpd"
        );
        assert_eq!(
            redacted_url("sqlite:///var/lib/totpd/totpd.db"),
            "sqlite:///var/lib/totpd/totpd.db"
        );
        assert_eq!(
            redacted_url("postgres://totpd@db/totpd"),
            "postgres://totpd@db/totpd"
        );
    }

    #[test]
    fn a_password_with_an_at_sign_is_found_whole() {
        let url = "postgres://totpd:p@ss:w0rd@db/totpd";
        assert_eq!(redacted_url(url), "postgres://totpd:***@db/totpd");
    }
}
