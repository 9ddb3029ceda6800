//! `totpd migrate --from URL --to URL`: move an installation between
//! databases (typically from the embedded SQLite to PostgreSQL).
//!
//! Rows are copied as they are stored: ciphertexts, key hashes and ids move
//! unchanged, so the same master key opens the target and every API key and
//! secret id keeps working. The tool never decrypts anything and so needs no
//! master key.
//!
//! - The source is read as one snapshot ([`totpd_vault::Snapshot`]): every
//!   table as of one moment, even while `serve` writes to it. Writes made
//!   after that moment are not in the copy. The source is only read (a
//!   SQLite source is opened read-only).
//! - The copy runs in one transaction on the target, which must be empty.
//!   Before it commits, every row is read back inside that transaction and
//!   compared with the snapshot read a second time; on a difference, or any
//!   other failure, the transaction rolls back and the target stays empty,
//!   ready for another try.
//! - The URLs come from `--from`/`--to` or `TOTPD_MIGRATE_FROM`/
//!   `TOTPD_MIGRATE_TO` (which keeps passwords out of `ps`). No message of
//!   this command contains a password of either URL.

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use totpd_store::ConnectOptions;
use totpd_vault::{CopyReport, Store, StoreError};

use crate::cli::MigrateArgs;

pub(crate) async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    let passwords = Passwords::of(&[&args.from, &args.to]);
    // Whatever failed (and whatever a driver put in its message), the
    // message that reaches the terminal carries no password.
    migrate(&args)
        .await
        .map_err(|error| anyhow::anyhow!(passwords.scrub(&format!("{error:#}"))))
}

async fn migrate(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    if args.from.trim() == args.to.trim() {
        bail!("--from and --to name the same database");
    }
    // Said before connecting, as for every other command (host and mode
    // only, never a password).
    for url in [&args.from, &args.to] {
        if let Some(weakness) = totpd_store::postgres_tls_weakness(url) {
            crate::config::warn(&weakness.to_string());
        }
    }
    let options = ConnectOptions::default();
    // The source is opened read-only: a mistyped path must not create an
    // empty database, and migrating must never change the source.
    let source = totpd_store::connect(&totpd_store::read_only_url(&args.from), &options)
        .await
        .context("could not open the source database (--from)")?;
    let target = totpd_store::connect(&args.to, &options)
        .await
        .context("could not open the target database (--to)")?;
    if source.is_empty().await? {
        bail!("the source database holds no data; check the --from URL");
    }
    let report = copy_database(source.as_ref(), target.as_ref(), "migrate").await?;
    println!(
        "migrated and verified: {} accounts, {} API keys, {} secrets, {} settings, {} audit events",
        report.accounts, report.api_keys, report.secrets, report.meta, report.audit_events
    );
    println!("start totpd serve with --database pointing at the target and the same master key");
    Ok(ExitCode::SUCCESS)
}

/// Copies every row of `source`, read as one snapshot, into `target`, which
/// must be empty, in one verified transaction (see [`Store::copy_from`]);
/// on failure the target is left empty. The one copy of `migrate` and
/// `restore` (`backup` writes its new file through the same copy, see
/// `SqliteStore::write_file`). `command` names the command in messages.
pub(crate) async fn copy_database(
    source: &dyn Store,
    target: &dyn Store,
    command: &str,
) -> anyhow::Result<CopyReport> {
    let mut snapshot = source
        .snapshot()
        .await
        .context("could not start reading the source database")?;
    let report = target
        .copy_from(snapshot.as_mut())
        .await
        .map_err(|e| match e {
            StoreError::Conflict { .. } => anyhow::anyhow!(
                "the target database already holds data; totpd {command} only copies into an empty database and never merges"
            ),
            other => anyhow::Error::new(other)
                .context("the copy was rolled back and the target database left empty"),
        })?;
    drop(snapshot);
    Ok(report)
}

/// The passwords of some database URLs, to keep them out of messages.
///
/// Found wherever a URL may carry one, also in a malformed URL (a message
/// about a mistyped URL is where one would otherwise show up): the
/// `user:password@` part before the host, and a `password=` parameter. Each
/// is also looked for percent-decoded, as drivers may print it.
struct Passwords(Vec<String>);

impl Passwords {
    fn of(urls: &[&str]) -> Passwords {
        let mut found: Vec<String> = urls.iter().flat_map(|url| url_passwords(url)).collect();
        // Longest first, so that no part of a longer one is left behind.
        found.sort_by_key(|p| std::cmp::Reverse(p.len()));
        found.dedup();
        Passwords(found)
    }

    fn scrub(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, password| {
            text.replace(password, "***")
        })
    }
}

/// `url` with its password (if any) replaced by `***`. (`Debug` of the
/// arguments uses `config::redact_url_password`.)
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
