//! Resolving where the vault lives and opening it with its master key.
//!
//! Master key precedence: `TOTPD_MASTER_KEY` (the environment wins), then the
//! key file. A new database with neither gets a freshly generated key file
//! (mode 0600). An initialised database with neither, or with a key that does
//! not open it, is an error: the vault never serves codes it cannot decrypt.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use totpd_store::ConnectOptions;
use totpd_vault::{MasterKey, OpenError, Store, Vault};
use zeroize::Zeroizing;

use crate::cli::StoreArgs;

const MASTER_KEY_ENV: &str = "TOTPD_MASTER_KEY";
const DATABASE_FILE: &str = "totpd.db";
const MASTER_KEY_FILE: &str = "master.key";

/// The resolved locations.
#[derive(Debug, Clone)]
pub(crate) struct Locations {
    pub data_dir: PathBuf,
    pub database_url: String,
    pub master_key_file: PathBuf,
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

fn default_data_dir() -> anyhow::Result<PathBuf> {
    if let Some(xdg) = std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(xdg).join("totpd"));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(home).join(".local/share/totpd"));
    }
    bail!("no data directory: pass --data-dir or set TOTPD_DATA_DIR")
}

fn redact_url_password(url: &str) -> String {
    // scheme://user:password@host/... -> scheme://user:***@host/...
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((userinfo, host)) = rest.split_once('@')
        && let Some((user, _)) = userinfo.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    url.to_owned()
}

/// Connects to the database and opens the vault with the right master key.
pub(crate) async fn open_vault(args: &StoreArgs) -> anyhow::Result<(Vault, Locations)> {
    let locations = Locations::resolve(args)?;
    create_private_dir(&locations.data_dir)?;
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
    let master = master_key(&locations, store.as_ref()).await?;
    let vault = Vault::open(store, master).await.map_err(|e| match e {
        OpenError::WrongMasterKey { .. } => anyhow::anyhow!(
            "{e}. The key comes from {} if set, else from {}",
            MASTER_KEY_ENV,
            locations.master_key_file.display()
        ),
        other => anyhow::Error::new(other).context("could not open the vault"),
    })?;
    Ok((vault, locations))
}

async fn master_key(locations: &Locations, store: &dyn Store) -> anyhow::Result<MasterKey> {
    if let Some(text) = std::env::var_os(MASTER_KEY_ENV).filter(|v| !v.is_empty()) {
        let text = Zeroizing::new(
            text.into_string()
                .map_err(|_| anyhow::anyhow!("{MASTER_KEY_ENV} is not valid UTF-8"))?,
        );
        return MasterKey::from_base64(&text)
            .with_context(|| format!("{MASTER_KEY_ENV} is invalid"));
    }
    let path = &locations.master_key_file;
    match std::fs::read_to_string(path).map(Zeroizing::new) {
        Ok(text) => {
            warn_if_readable_by_others(path);
            return MasterKey::from_base64(&text)
                .with_context(|| format!("the master key file {} is invalid", path.display()));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("could not read the master key file {}", path.display()));
        }
    }
    if Vault::is_initialized(store).await? {
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
    write_key_file(path, &key)?;
    eprintln!(
        "totpd: created a new master key in {} (mode 0600); back it up: without it the vault cannot be opened",
        path.display()
    );
    Ok(key)
}

fn write_key_file(path: &Path, key: &MasterKey) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        create_private_dir(parent)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let mut file = options
        .open(path)
        .with_context(|| format!("could not create the master key file {}", path.display()))?;
    file.write_all(key.to_base64().as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .and_then(|()| file.sync_all())
        .with_context(|| format!("could not write the master key file {}", path.display()))?;
    Ok(())
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

fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            eprintln!(
                "totpd: warning: the master key file {} is accessible to other users; run chmod 600 on it",
                path.display()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_database_urls_are_redacted() {
        assert_eq!(
            redact_url_password("postgres://u:hunter2@db:5432/totpd"),
            "postgres://u:***@db:5432/totpd"
        );
        assert_eq!(
            redact_url_password("sqlite:///tmp/x.db"),
            "sqlite:///tmp/x.db"
        );
    }
}
