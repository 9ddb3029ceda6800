//! What a database URL says before anything is opened: the SQLite file it
//! names, and whether a PostgreSQL connection would authenticate the server.
//! Nothing here touches the disk or the network.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr as _;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

use crate::sqlite::url::{self, Mode};

/// The database file of a `sqlite:` URL.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SqliteFile {
    /// The database file. Its `-wal` and `-shm` companions live beside it.
    pub path: PathBuf,
    /// Whether opening the URL creates the file when it is missing
    /// (`mode=rwc`, the default).
    pub may_create: bool,
}

/// The file a `sqlite:` URL names; `None` for any other URL, or one that
/// [`crate::connect`] would refuse.
pub fn sqlite_file(url: &str) -> Option<SqliteFile> {
    let location = url::parse(url).ok()?;
    Some(SqliteFile {
        path: location.path,
        may_create: location.mode == Mode::Create,
    })
}

/// A PostgreSQL connection that would not authenticate the server: to a
/// host other than this machine, with an `sslmode` below `verify-ca`.
///
/// Its `Display` is the warning for the operator. It names the host and the
/// mode, never the user or the password.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsWeakness {
    /// The host the connection goes to.
    pub host: String,
    /// The effective `sslmode` (the URL's, else `PGSSLMODE`, else `prefer`).
    pub ssl_mode: &'static str,
}

impl fmt::Display for TlsWeakness {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let what = if self.ssl_mode == "require" {
            "encrypts the connection but does not verify the server's certificate"
        } else {
            "may not even encrypt the connection"
        };
        write!(
            f,
            "the PostgreSQL connection to {} uses sslmode={}, which {what}: anyone on the \
             network path can pose as the database. Add sslmode=verify-full to the database \
             URL (verify-ca at least checks the certificate's issuer, not the host name), \
             with sslrootcert=PATH for a private CA",
            self.host, self.ssl_mode
        )
    }
}

/// Whether the PostgreSQL connection `url` describes would go to another
/// machine without verifying the server's certificate. Reads the URL the
/// way the connection does (including `PGHOST`, `PGSSLMODE` and a `host=`
/// parameter); `None` for a URL that is not PostgreSQL, does not parse, uses
/// a Unix socket or a loopback host, or has `sslmode=verify-ca` or
/// `verify-full`.
pub fn postgres_tls_weakness(url: &str) -> Option<TlsWeakness> {
    if crate::Backend::of_url(url).ok()? != crate::Backend::Postgres {
        return None;
    }
    let options = PgConnectOptions::from_str(url).ok()?;
    if options.get_socket().is_some() || is_loopback(options.get_host()) {
        return None;
    }
    let ssl_mode = match options.get_ssl_mode() {
        PgSslMode::VerifyCa | PgSslMode::VerifyFull => return None,
        PgSslMode::Require => "require",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Allow => "allow",
        PgSslMode::Disable => "disable",
    };
    Some(TlsWeakness {
        host: options.get_host().to_owned(),
        ssl_mode,
    })
}

/// `localhost` (and names under `.localhost`, RFC 6761), or a loopback
/// address.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let unbracketed = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = unbracketed.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let lower = host.to_ascii_lowercase();
    lower == "localhost" || lower.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weakness(url: &str) -> Option<(String, &'static str)> {
        postgres_tls_weakness(url).map(|w| (w.host, w.ssl_mode))
    }

    #[test]
    fn a_remote_host_without_certificate_verification_is_a_weakness() {
        assert_eq!(
            weakness("postgres://totpd:hunter2@db.example.com:5432/totpd?sslmode=require"),
            Some(("db.example.com".to_owned(), "require"))
        );
        assert_eq!(
            weakness("postgresql://u@192.0.2.1/totpd?sslmode=disable"),
            Some(("192.0.2.1".to_owned(), "disable"))
        );
        assert_eq!(
            weakness("postgres://u@10.0.0.5/totpd?sslmode=prefer"),
            Some(("10.0.0.5".to_owned(), "prefer"))
        );
        // A host parameter wins over the URL's host, as in the connection.
        assert_eq!(
            weakness("postgres://u@localhost/totpd?host=db.internal&sslmode=require"),
            Some(("db.internal".to_owned(), "require"))
        );
    }

    #[test]
    fn verify_ca_and_verify_full_are_not_a_weakness() {
        assert_eq!(
            weakness("postgres://u:pw@db.example.com/totpd?sslmode=verify-full"),
            None
        );
        assert_eq!(
            weakness("postgres://u:pw@db.example.com/totpd?sslmode=verify-ca&sslrootcert=ca.pem"),
            None
        );
    }

    #[test]
    fn loopback_hosts_and_unix_sockets_are_not_a_weakness() {
        for url in [
            "postgres://postgres@127.0.0.1:5432/postgres",
            "postgres://u:pw@127.0.0.2/totpd?sslmode=disable",
            "postgres://u:pw@localhost/totpd?sslmode=require",
            "postgres://u:pw@LOCALHOST./totpd",
            "postgres://u:pw@db.localhost/totpd",
            "postgres://u:pw@[::1]:5432/totpd",
            "postgres://u@%2Fvar%2Frun%2Fpostgresql/totpd",
            "postgres://u@localhost/totpd?host=/run/postgresql",
        ] {
            assert_eq!(weakness(url), None, "{url}");
        }
    }

    #[test]
    fn other_urls_are_not_looked_at() {
        assert_eq!(weakness("sqlite:///var/lib/totpd/totpd.db"), None);
        assert_eq!(weakness("mysql://u:pw@db.example.com/x"), None);
        assert_eq!(
            weakness("postgres://u@db.example.com/x?sslmode=bogus"),
            None
        );
    }

    #[test]
    fn the_warning_names_the_host_and_mode_but_not_the_credentials() {
        let warning =
            postgres_tls_weakness("postgres://totpd:hunter2@db.example.com/totpd?sslmode=require")
                .map(|w| w.to_string())
                .unwrap_or_default();
        assert!(warning.contains("db.example.com"), "{warning}");
        assert!(warning.contains("sslmode=require"), "{warning}");
        assert!(warning.contains("verify-full"), "{warning}");
        assert!(!warning.contains("hunter2"), "{warning}");
        assert!(!warning.contains("totpd:"), "{warning}");
    }

    #[test]
    fn sqlite_urls_name_their_file_and_whether_it_may_be_created() {
        assert_eq!(
            sqlite_file("sqlite:///var/lib/totpd/totpd.db"),
            Some(SqliteFile {
                path: PathBuf::from("/var/lib/totpd/totpd.db"),
                may_create: true
            })
        );
        assert_eq!(
            sqlite_file("sqlite:///x.db?mode=rw").map(|f| f.may_create),
            Some(false)
        );
        assert_eq!(sqlite_file("postgres://u@h/db"), None);
    }
}
