//! The schema runner: numbered SQL scripts embedded in the binary,
//! applied in order, each in its own transaction, recorded in
//! `schema_migrations`. A database newer than this binary is refused rather
//! than silently used.

use totpd_vault::StoreError;

/// One schema step.
#[derive(Debug)]
pub(crate) struct Migration {
    pub version: i64,
    pub sql: &'static str,
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

    static ALL: [Migration; 2] = [
        Migration {
            version: 1,
            sql: "",
        },
        Migration {
            version: 2,
            sql: "",
        },
    ];

    #[test]
    fn pending_lists_unapplied_steps_in_order() {
        let versions: Vec<i64> = pending(&[1], &ALL)
            .unwrap()
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(versions, vec![2]);
        assert_eq!(pending(&[], &ALL).unwrap().len(), 2);
    }

    #[test]
    fn a_database_newer_than_the_binary_is_refused() {
        assert!(pending(&[1, 2, 3], &ALL).is_err());
    }
}
