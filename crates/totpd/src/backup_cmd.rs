//! `totpd backup --to FILE` and `totpd restore --from FILE`.
//!
//! A backup is a SQLite database file holding one consistent snapshot
//! ([`totpd_vault::Snapshot`]) of the installation, SQLite or PostgreSQL,
//! taken while `serve` runs: every table as of one moment, ciphertexts and
//! key hashes as stored (so it is useless without the master key, which it
//! does not hold). It is written through the same verified copy as `totpd
//! migrate`, into a private temporary file in the target's directory that
//! is fsynced and then linked into place: the name appears only with a
//! complete, verified backup, and an existing file is never replaced.
//!
//! A restore fills an empty database from a backup with that same copy
//! (`migrate_cmd::copy_database`), after proving that the master key
//! setting opens the backup; the backup file is only read.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use totpd_store::{ConnectOptions, SqliteStore};
use totpd_vault::{CopyReport, OpenError, Vault};

use crate::cli::{BackupArgs, RestoreArgs};
use crate::config::{self, Locations};
use crate::migrate_cmd::copy_database;

pub(crate) async fn backup(args: BackupArgs) -> anyhow::Result<ExitCode> {
    let locations = Locations::resolve(&args.store)?;
    let target = &args.to;
    if std::fs::symlink_metadata(target).is_ok() {
        bail!(
            "{} already exists; totpd backup writes a new file and never replaces one",
            target.display()
        );
    }
    // Read-only: a mistyped data directory must not create an empty
    // database, and a backup never changes what it copies.
    let source = config::connect_read_only(&locations, &ConnectOptions::default()).await?;
    if !Vault::is_initialized(source.as_ref()).await? {
        bail!(
            "the database {} holds no vault: there is nothing to back up",
            locations.database_for_display()
        );
    }
    let dir = match target.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{} does not name a file", target.display()))?;
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        config::unique_suffix()
    ));
    create_new_private_file(&temp)
        .with_context(|| format!("could not create {}", temp.display()))?;
    let written = write_backup(source.as_ref(), &temp, target, &dir).await;
    // Whatever happened, the temporary name goes (a linked backup keeps its
    // own name).
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let mut path = temp.clone().into_os_string();
        path.push(suffix);
        let _ = std::fs::remove_file(&path);
    }
    let report = written?;
    println!(
        "backed up and verified: {} accounts, {} API keys, {} secrets, {} settings, to {}",
        report.accounts,
        report.api_keys,
        report.secrets,
        report.meta,
        target.display()
    );
    println!("the backup holds ciphertexts only: keep the master key safe, and apart from it");
    Ok(ExitCode::SUCCESS)
}

/// Copies one snapshot of `source` into `temp`, makes it durable and links
/// it to `target` (failing if `target` appeared meanwhile).
async fn write_backup(
    source: &dyn totpd_vault::Store,
    temp: &Path,
    target: &Path,
    dir: &Path,
) -> anyhow::Result<CopyReport> {
    let mut snapshot = source
        .snapshot()
        .await
        .context("could not start reading the database")?;
    let report = SqliteStore::write_file(temp, snapshot.as_mut())
        .await
        .context("the backup failed and was removed")?;
    drop(snapshot);
    std::fs::File::open(temp)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("could not sync {}", temp.display()))?;
    std::fs::hard_link(temp, target).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} appeared while the backup was written; it was left as it is",
                target.display()
            )
        } else {
            anyhow::Error::new(e).context(format!("could not create {}", target.display()))
        }
    })?;
    config::sync_dir(dir).with_context(|| format!("could not sync {}", dir.display()))?;
    Ok(report)
}

fn create_new_private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    options.open(path).map(drop)
}

pub(crate) async fn restore(args: RestoreArgs) -> anyhow::Result<ExitCode> {
    let from = &args.from;
    if !from.is_file() {
        bail!("{} is not a backup file", from.display());
    }
    let locations = Locations::resolve(&args.store)?;
    let ring = config::configured_ring(&locations)?.with_context(|| {
        format!(
            "no master key: {}; totpd restore needs the master key the backup was made with",
            config::master_key_source(&locations)
        )
    })?;
    let backup = totpd_store::connect(
        &totpd_store::read_only_url(&sqlite_url(from)),
        &ConnectOptions::default(),
    )
    .await
    .with_context(|| format!("could not open the backup {}", from.display()))?;
    if !Vault::is_initialized(backup.as_ref()).await? {
        bail!("{} holds no vault", from.display());
    }
    // Proves the key before anything is copied (the backup is only read).
    Vault::open(backup.clone(), ring).await.map_err(|e| match e {
        OpenError::WrongMasterKey { expected, given } => anyhow::anyhow!(
            "the master key does not open the backup {} (it was sealed by key {expected}, the key given is {given}); \
             nothing was restored. The key comes from {}",
            from.display(),
            config::master_key_source(&locations)
        ),
        other => anyhow::Error::new(other).context("could not open the backup; nothing was restored"),
    })?;
    let (target, locations) = config::connect_store(&args.store).await?;
    if !target.is_empty().await? {
        bail!(
            "the database {} already holds data; totpd restore only fills an empty database and never merges",
            locations.database_for_display()
        );
    }
    let report = copy_database(backup.as_ref(), target.as_ref(), "restore").await?;
    println!(
        "restored and verified: {} accounts, {} API keys, {} secrets, {} settings, into {}",
        report.accounts,
        report.api_keys,
        report.secrets,
        report.meta,
        locations.database_for_display()
    );
    Ok(ExitCode::SUCCESS)
}

/// A `sqlite://` URL naming `path` exactly (the URL's path is
/// percent-decoded, so `%`, `?` and `#` in a file name are encoded).
fn sqlite_url(path: &Path) -> String {
    let mut url = String::from("sqlite://");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' => url.push_str("%25"),
            '?' => url.push_str("%3F"),
            '#' => url.push_str("%23"),
            c => url.push(c),
        }
    }
    url
}
