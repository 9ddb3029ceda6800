//! `totpd migrate --from URL --to URL`: move an installation between
//! databases (typically from the embedded SQLite to PostgreSQL).
//!
//! Rows are copied as they are stored: ciphertexts, key hashes and ids move
//! unchanged, so the same master key opens the target and every API key and
//! secret id keeps working. The tool never decrypts anything and so needs no
//! master key. The copy runs in one transaction on the target, which must be
//! empty; afterwards every row is read back from both sides and compared.
//! The source is only read (a SQLite source is opened read-only).

use std::process::ExitCode;

use anyhow::{Context as _, bail};
use totpd_store::ConnectOptions;
use totpd_vault::{Store, StoreError};

use crate::cli::MigrateArgs;

/// Secrets compared per round trip during verification.
const VERIFY_PAGE: u32 = 1000;

pub(crate) async fn run(args: MigrateArgs) -> anyhow::Result<ExitCode> {
    if args.from.trim() == args.to.trim() {
        bail!("--from and --to name the same database");
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
    let report = target.copy_from(source.as_ref()).await.map_err(|e| match e {
        StoreError::Conflict(_) => anyhow::anyhow!(
            "the target database already holds data; totpd migrate only copies into an empty database and never merges"
        ),
        other => anyhow::Error::new(other).context("the copy failed and was rolled back"),
    })?;
    verify(source.as_ref(), target.as_ref())
        .await
        .context("verification after the copy failed")?;
    println!(
        "migrated and verified: {} accounts, {} API keys, {} secrets, {} settings",
        report.accounts, report.api_keys, report.secrets, report.meta
    );
    println!("start totpd serve with --database pointing at the target and the same master key");
    Ok(ExitCode::SUCCESS)
}

/// Reads every row back from both databases and requires them to be equal.
async fn verify(source: &dyn Store, target: &dyn Store) -> anyhow::Result<()> {
    if source.dump_meta().await? != target.dump_meta().await? {
        bail!("settings differ between source and target");
    }
    if source.dump_accounts().await? != target.dump_accounts().await? {
        bail!("accounts differ between source and target");
    }
    if source.dump_api_keys().await? != target.dump_api_keys().await? {
        bail!("API keys differ between source and target");
    }
    let mut after = None;
    loop {
        let a = source.dump_secrets(after, VERIFY_PAGE).await?;
        let b = target.dump_secrets(after, VERIFY_PAGE).await?;
        if a != b {
            bail!("secrets differ between source and target");
        }
        match a.last() {
            Some(last) => after = Some(last.id),
            None => return Ok(()),
        }
    }
}
