//! Resolving where the vault lives and opening it with its master key.
//!
//! Master key precedence: `TOTPD_MASTER_KEY` (the environment wins), then the
//! key file. Either may hold several keys, a ring for rotation: the key file
//! one per line (blank lines and spaces around a key ignored),
//! `TOTPD_MASTER_KEY` comma-separated. The first key seals; any opens. A
//! bad entry is named by its position, never shown. A new database with
//! neither gets a freshly generated key file (mode 0600). An initialised database with neither, or with a key that does
//! not open it, is an error: the vault never serves codes it cannot decrypt.
//!
//! Several nodes may start at once on one data directory. The key file is
//! created atomically (written and fsynced under a temporary name, then
//! hard-linked into place, which fails if the file already exists), so all
//! of them end up with the one key that won, and no node ever reads a
//! half-written file.
//!
//! Permissions: what totpd creates is private (data directory 0700, key file
//! and SQLite database 0600). What already exists is left as it is, with a
//! warning at start when the data directory, the key file or the SQLite
//! database files are accessible to other users: the operator may have
//! reasons (a backup group) that totpd cannot know.

use std::fmt;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use totpd_store::ConnectOptions;
use totpd_vault::{MasterKey, MasterKeyRing, OpenError, Store, Vault};
use zeroize::Zeroizing;

use crate::cli::{MigrateArgs, StoreArgs};
use crate::redact::redact_url_password;

const MASTER_KEY_ENV: &str = "TOTPD_MASTER_KEY";
const DATABASE_FILE: &str = "totpd.db";
const MASTER_KEY_FILE: &str = "master.key";

/// The resolved locations. `Debug` shows the database URL without its
/// password.
#[derive(Clone)]
pub(crate) struct Locations {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub master_key_file: PathBuf,
}

impl fmt::Debug for Locations {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Locations")
            .field("data_dir", &self.data_dir)
            .field("database_url", &self.database_for_display())
            .field("master_key_file", &self.master_key_file)
            .finish()
    }
}

impl fmt::Debug for StoreArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreArgs")
            .field("data_dir", &self.data_dir)
            .field(
                "database",
                &self.database.as_deref().map(redact_url_password),
            )
            .field("master_key_file", &self.master_key_file)
            .field("db_pool_size", &self.db_pool_size)
            .finish()
    }
}

impl fmt::Debug for MigrateArgs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MigrateArgs")
            .field("from", &redact_url_password(&self.from))
            .field("to", &redact_url_password(&self.to))
            .finish_non_exhaustive()
    }
}

impl Locations {
    pub(crate) fn resolve(args: &StoreArgs) -> anyhow::Result<Locations> {
        let data_dir = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => default_data_dir()?,
        };
        let database_url = match &args.database {
            Some(url) if !url.trim().is_empty() => url.trim().to_owned(),
            _ => format!("sqlite://{}", data_dir.join(DATABASE_FILE).display()),
        };
        let master_key_file = args
            .master_key_file
            .clone()
            .unwrap_or_else(|| data_dir.join(MASTER_KEY_FILE));
        // Said before anything is opened, so it is seen even when the
        // connection then fails.
        if let Some(weakness) = totpd_store::postgres_tls_weakness(&database_url) {
            warn(&weakness.to_string());
        }
        Ok(Locations {
            data_dir,
            database_url,
            master_key_file,
        })
    }

    /// The database URL with any password replaced, for messages.
    pub(crate) fn database_for_display(&self) -> String {
        redact_url_password(&self.database_url)
    }
}

/// A warning for the operator: a log event when logging is set up (`serve`),
/// else a line on standard error (the other commands).
pub(crate) fn warn(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::warn!("{message}");
    } else {
        eprintln!("totpd: warning: {message}");
    }
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("totpd"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home).join(".local/share/totpd"));
    }
    bail!("no data directory: pass --data-dir or set TOTPD_DATA_DIR")
}

/// Connects to the database and opens the vault with the right master key.
pub(crate) async fn open_vault(args: &StoreArgs) -> anyhow::Result<(Vault, Locations)> {
    let (store, locations) = connect_store(args).await?;
    let master = master_key(&locations, store.as_ref()).await?;
    let vault = open_with_ring(store, master, &locations).await?;
    Ok((vault, locations))
}

/// Opens the vault on `store` with `ring`, saying where the keys came
/// from when none of them opens it.
pub(crate) async fn open_with_ring(
    store: Arc<dyn Store>,
    ring: MasterKeyRing,
    locations: &Locations,
) -> anyhow::Result<Vault> {
    Vault::open(store, ring).await.map_err(|e| match e {
        OpenError::WrongMasterKey { .. } => {
            anyhow::anyhow!("{e}. The key comes from {}", master_key_source(locations))
        }
        other => anyhow::Error::new(other).context("could not open the vault"),
    })
}

/// Connects to (and migrates) the database the store options name,
/// creating the data directory and a SQLite file privately if needed.
pub(crate) async fn connect_store(args: &StoreArgs) -> anyhow::Result<(Arc<dyn Store>, Locations)> {
    let locations = Locations::resolve(args)?;
    create_private_dir(&locations.data_dir)?;
    warn_if_accessible_by_others(&locations.data_dir, "the data directory", "700");
    let sqlite = totpd_store::sqlite_file(&locations.database_url);
    if let Some(file) = &sqlite
        && file.may_create
    {
        create_private_file(&file.path);
    }
    let options = ConnectOptions {
        max_connections: args.db_pool_size.max(1),
        acquire_timeout: Duration::from_secs(3),
    };
    let store = totpd_store::connect(&locations.database_url, &options)
        .await
        .with_context(|| {
            format!(
                "could not open the database {}",
                locations.database_for_display()
            )
        })?;
    if let Some(file) = &sqlite {
        for suffix in ["", "-wal", "-shm"] {
            let mut path = file.path.clone().into_os_string();
            path.push(suffix);
            warn_if_accessible_by_others(Path::new(&path), "the database file", "600");
        }
    }
    Ok((store, locations))
}

/// Opens the database of `locations` read-only (a SQLite file is opened
/// `mode=ro`; PostgreSQL sessions are read-only), for commands that must
/// never change or create what they read: `audit`, `backup`.
pub(crate) async fn connect_read_only(
    locations: &Locations,
    options: &ConnectOptions,
) -> anyhow::Result<Arc<dyn Store>> {
    totpd_store::connect(
        &totpd_store::read_only_url(&locations.database_url),
        options,
    )
    .await
    .with_context(|| {
        format!(
            "could not open the database {}",
            locations.database_for_display()
        )
    })
}

/// The master key ring given by `TOTPD_MASTER_KEY` (which wins) or the key
/// file; `None` if neither is there. Never creates a key.
pub(crate) fn configured_ring(locations: &Locations) -> anyhow::Result<Option<MasterKeyRing>> {
    if let Some(text) = std::env::var_os(MASTER_KEY_ENV).filter(|v| !v.is_empty()) {
        let text = Zeroizing::new(
            text.into_string()
                .map_err(|_| anyhow::anyhow!("{MASTER_KEY_ENV} is not valid UTF-8"))?,
        );
        return MasterKeyRing::from_comma_list(&text)
            .map(Some)
            .with_context(|| format!("{MASTER_KEY_ENV} is invalid"));
    }
    read_key_file(&locations.master_key_file)
}

/// Where the master key comes from, for messages.
pub(crate) fn master_key_source(locations: &Locations) -> String {
    format!(
        "{MASTER_KEY_ENV} if set, else from {}",
        locations.master_key_file.display()
    )
}

async fn master_key(locations: &Locations, store: &dyn Store) -> anyhow::Result<MasterKeyRing> {
    if let Some(ring) = configured_ring(locations)? {
        return Ok(ring);
    }
    let path = &locations.master_key_file;
    if Vault::is_initialized(store).await? {
        // Another node may have created the key file and initialised the
        // database since the file was looked for.
        if let Some(key) = read_key_file(path)? {
            return Ok(key);
        }
        bail!(
            "the database {} is encrypted with a master key, but {} is not set and the key file {} does not exist; \
             restore the key file or set {}",
            locations.database_for_display(),
            MASTER_KEY_ENV,
            path.display(),
            MASTER_KEY_ENV
        );
    }
    let key = MasterKey::generate().context("the system random number generator failed")?;
    if install_key_file(path, &key)? {
        eprintln!(
            "totpd: created a new master key in {} (mode 0600); back it up: without it the vault cannot be opened",
            path.display()
        );
        return Ok(MasterKeyRing::from(key));
    }
    // Another node created the file first: its key is the one.
    read_key_file(path)?.with_context(|| {
        format!(
            "the master key file {} vanished while it was being created",
            path.display()
        )
    })
}

/// The keys in the key file (one per line); `None` if there is no such file.
fn read_key_file(path: &Path) -> anyhow::Result<Option<MasterKeyRing>> {
    match std::fs::read_to_string(path).map(Zeroizing::new) {
        Ok(text) => {
            warn_if_accessible_by_others(path, "the master key file", "600");
            MasterKeyRing::from_lines(&text)
                .map(Some)
                .with_context(|| format!("the master key file {} is invalid", path.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => {
            Err(e).with_context(|| format!("could not read the master key file {}", path.display()))
        }
    }
}

/// Creates the key file holding `key`, unless it exists. Returns whether
/// this call created it (`false`: another process did first).
///
/// The key is written and fsynced under a temporary name in the same
/// directory (mode 0600), then hard-linked to `path`: the link either
/// appears with the whole key or fails because the file exists, and never
/// replaces it. The directory is fsynced so that the new name survives a
/// crash.
fn install_key_file(path: &Path, key: &MasterKey) -> anyhow::Result<bool> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
        _ => PathBuf::from("."),
    };
    create_private_dir(&dir)?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| MASTER_KEY_FILE.to_owned());
    let temp = dir.join(format!(
        ".{name}.{}.{}.tmp",
        std::process::id(),
        unique_suffix()
    ));
    let written = write_new_private_file(&temp, key.to_base64().as_bytes())
        .with_context(|| format!("could not write the master key file {}", temp.display()));
    let linked = written.and_then(|()| match std::fs::hard_link(&temp, path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e)
            .with_context(|| format!("could not create the master key file {}", path.display())),
    });
    if let Err(e) = std::fs::remove_file(&temp)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        warn(&format!(
            "could not remove the temporary file {}: {e}",
            temp.display()
        ));
    }
    let created = linked?;
    if created {
        sync_dir(&dir)
            .with_context(|| format!("could not sync the directory {}", dir.display()))?;
    }
    Ok(created)
}

/// Writes `text` and a newline to a new file (mode 0600) and fsyncs it.
fn write_new_private_file(path: &Path, text: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(&Zeroizing::new([text, b"\n"].concat()))?;
    file.sync_all()
}

/// Creates an empty file with mode 0600 if there is none, so that SQLite
/// (which creates the database, `-wal` and `-shm` files with the mode of
/// the database file) keeps it private. Any failure is left for SQLite to
/// report when it opens the file.
fn create_private_file(path: &Path) {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let _ = options.open(path);
}

pub(crate) fn sync_dir(dir: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        std::fs::File::open(dir)?.sync_all()
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// The clock's nanoseconds: with the process id, a temporary name no other
/// process (on this or another host sharing the directory) picks.
pub(crate) fn unique_suffix() -> u128 {
    totpd_vault::clock::unix_nanos()
}

fn create_private_dir(dir: &Path) -> anyhow::Result<()> {
    if dir.as_os_str().is_empty() || dir.exists() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt as _;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("could not create the data directory {}", dir.display()))
}

/// Warns when group or others have any access to `path` (`what` names it,
/// `mode` is what to chmod it to). A missing path is not a warning.
fn warn_if_accessible_by_others(path: &Path, what: &str, mode: &str) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let bits = meta.permissions().mode() & 0o777;
            if bits & 0o077 != 0 {
                warn(&format!(
                    "{what} {} is accessible to other users (mode {bits:03o}); run chmod {mode} on it",
                    path.display()
                ));
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, what, mode);
    }
}
