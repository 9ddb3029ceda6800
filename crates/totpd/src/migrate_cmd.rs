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
use crate::redact::Passwords;

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
