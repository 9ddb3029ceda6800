//! The schema runner: numbered SQL scripts embedded in the binary (one list
//! per backend, both made by [`migrations!`] from the files of
//! `migrations/<backend>/`), applied in order by [`run`], each recorded in
//! `schema_migrations`, all in the one transaction the backend's
//! [`Executor`] holds. A database newer than this binary is refused rather
//! than silently used.
//!
//! A file's version is the number its name starts with; the lists are
//! checked (by a test) to hold every file of their directory, with versions
//! 1, 2, 3, ... in order, the same on both backends.

use totpd_vault::StoreError;

/// One schema step.
#[derive(Debug)]
pub(crate) struct Migration {
    pub version: i64,
    /// The file's name, for messages and the completeness test.
    pub name: &'static str,
    pub sql: &'static str,
}

/// The migrations of one backend, from the names of their files in
/// `migrations/<backend>/`, in order.
macro_rules! migrations {
    ($backend:literal: $($file:literal),+ $(,)?) => {
        &[$($crate::schema::Migration {
            version: $crate::schema::version_of($file),
            name: $file,
            sql: include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"), "/migrations/", $backend, "/", $file
            )),
        }),+]
    };
}

/// The SQLite schema.
pub(crate) static SQLITE: &[Migration] = migrations!("sqlite":
    "0001_init.sql",
    "0002_binding_versions.sql",
    "0003_secret_count_and_list_order.sql",
    "0004_key_scopes.sql",
    "0005_audit.sql",
    "0006_sealed_by.sql",
    "0007_hotp_verify.sql",
    "0008_fingerprint.sql",
);

/// The PostgreSQL schema.
pub(crate) static POSTGRES: &[Migration] = migrations!("postgres":
    "0001_init.sql",
    "0002_binding_versions.sql",
    "0003_secret_count.sql",
    "0004_key_scopes.sql",
    "0005_audit.sql",
    "0006_sealed_by.sql",
    "0007_hotp_verify.sql",
    "0008_fingerprint.sql",
);

/// The number a migration file's name starts with (`0003_x.sql` is 3).
/// Evaluated at compile time: a name without one does not compile.
pub(crate) const fn version_of(file: &str) -> i64 {
    let mut rest = file.as_bytes();
    let mut version = 0;
    while let [digit @ b'0'..=b'9', tail @ ..] = rest {
        version = version * 10 + (*digit - b'0') as i64;
        rest = tail;
    }
    assert!(
        version > 0,
        "a migration file's name starts with its version"
    );
    version
}

/// What the runner needs of a backend: a connection inside the
/// transaction (holding whatever lock serialises migrations) that every
/// step runs in.
pub(crate) trait Executor {
    /// The versions recorded in `schema_migrations` (created if missing).
    async fn applied(&mut self) -> Result<Vec<i64>, StoreError>;
    /// Runs one step's script and records its version.
    async fn apply(&mut self, step: &Migration) -> Result<(), StoreError>;
}

/// Applies every step of `all` not yet recorded, in order.
pub(crate) async fn run(
    db: &mut impl Executor,
    all: &'static [Migration],
) -> Result<(), StoreError> {
    let applied = db.applied().await?;
    for step in pending(&applied, all)? {
        tracing::debug!(
            version = step.version,
            name = step.name,
            "applying a schema step"
        );
        db.apply(step).await?;
    }
    Ok(())
}

/// Checks the recorded versions and returns the migrations still to apply.
pub(crate) fn pending(
    applied: &[i64],
    all: &'static [Migration],
) -> Result<Vec<&'static Migration>, StoreError> {
    let newest_known = all.iter().map(|m| m.version).max().unwrap_or(0);
    if let Some(newest) = applied.iter().max()
        && *newest > newest_known
    {
        return Err(StoreError::other_msg(format!(
            "the database schema is version {newest}, newer than this totpd understands ({newest_known}); upgrade totpd"
        )));
    }
    Ok(all
        .iter()
        .filter(|m| !applied.contains(&m.version))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    static ALL: &[Migration] = &[
        Migration {
            version: 1,
            name: "0001_a.sql",
            sql: "",
        },
        Migration {
            version: 2,
            name: "0002_b.sql",
            sql: "",
        },
    ];

    #[test]
    fn pending_lists_unapplied_steps_in_order() {
        let versions: Vec<i64> = pending(&[1], ALL)
            .unwrap()
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(versions, vec![2]);
        assert_eq!(pending(&[], ALL).unwrap().len(), 2);
    }

    #[test]
    fn a_database_newer_than_the_binary_is_refused() {
        assert!(pending(&[1, 2, 3], ALL).is_err());
    }

    #[test]
    fn each_list_is_every_file_of_its_directory_numbered_from_one() {
        for (backend, list) in [("sqlite", SQLITE), ("postgres", POSTGRES)] {
            let dir = format!("{}/migrations/{backend}", env!("CARGO_MANIFEST_DIR"));
            let mut files: Vec<String> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| entry.unwrap().file_name().into_string().unwrap())
                .filter(|name| name.ends_with(".sql"))
                .collect();
            files.sort();
            let listed: Vec<&str> = list.iter().map(|m| m.name).collect();
            assert_eq!(listed, files, "{backend}");
            let versions: Vec<i64> = list.iter().map(|m| m.version).collect();
            let expected: Vec<i64> = (1..=i64::try_from(list.len()).unwrap()).collect();
            assert_eq!(versions, expected, "{backend}");
        }
        let versions = |list: &[Migration]| list.iter().map(|m| m.version).collect::<Vec<_>>();
        assert_eq!(versions(SQLITE), versions(POSTGRES));
    }
}
