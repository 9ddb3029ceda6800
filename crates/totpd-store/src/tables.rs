//! The one list of the tables that hold totpd's data.
//!
//! [`Table::ALL`] drives everything that must see every table: the
//! emptiness check (`Store::is_empty`, and the check a copy makes of its
//! target), `copy_from` on both backends (the order of the list is the order
//! of the copy: parents before the rows that refer to them), the copy's
//! verification and its [`CopyReport`]. The copies `match` on [`Table`], so
//! a new table added here does not compile until both backends copy and
//! verify it; and a test compares this list with the tables of each
//! backend's migrated schema, so a table added to the schema but not here
//! fails it.

use std::sync::LazyLock;

use totpd_vault::CopyReport;

/// A table of totpd's data (`schema_migrations`, the schema runner's own
/// record, is not one: every database has its own).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Table {
    /// Settings (the sealed pepper).
    Meta,
    /// Accounts.
    Accounts,
    /// API keys (each of an account).
    ApiKeys,
    /// Secrets (each of an account).
    Secrets,
    /// The audit log.
    AuditEvents,
}

impl Table {
    /// Every table, in the order a copy writes them.
    pub const ALL: [Table; 5] = [
        Table::Meta,
        Table::Accounts,
        Table::ApiKeys,
        Table::Secrets,
        Table::AuditEvents,
    ];

    /// Its name in SQL.
    pub fn name(self) -> &'static str {
        match self {
            Table::Meta => "meta",
            Table::Accounts => "accounts",
            Table::ApiKeys => "api_keys",
            Table::Secrets => "secrets",
            Table::AuditEvents => "audit_events",
        }
    }

    /// What its rows are, for messages.
    pub(crate) fn rows(self) -> &'static str {
        match self {
            Table::Meta => "settings (meta rows)",
            Table::Accounts => "accounts",
            Table::ApiKeys => "API keys",
            Table::Secrets => "secrets",
            Table::AuditEvents => "audit events",
        }
    }

    /// Counts `rows` more of this table in `report`.
    pub(crate) fn count(self, report: &mut CopyReport, rows: u64) {
        let counter = match self {
            Table::Meta => &mut report.meta,
            Table::Accounts => &mut report.accounts,
            Table::ApiKeys => &mut report.api_keys,
            Table::Secrets => &mut report.secrets,
            Table::AuditEvents => &mut report.audit_events,
        };
        *counter += rows;
    }
}

/// Whether any table holds a row (`SELECT EXISTS (..) OR EXISTS (..)`).
/// `EXISTS` stops at the first row, so this costs the same on an empty
/// database and on one with a million secrets.
pub(crate) static HAS_ANY_ROW: LazyLock<String> = LazyLock::new(|| {
    let exists: Vec<String> = Table::ALL
        .iter()
        .map(|table| format!("EXISTS (SELECT 1 FROM {})", table.name()))
        .collect();
    format!("SELECT {}", exists.join(" OR "))
});

/// Whether every table of [`Table::ALL`] is in `done`.
pub(crate) fn all_in(done: &[Table]) -> bool {
    Table::ALL.iter().all(|table| done.contains(table))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_emptiness_check_reads_every_table() {
        for table in Table::ALL {
            assert!(HAS_ANY_ROW.contains(&format!("FROM {})", table.name())));
        }
        assert_eq!(HAS_ANY_ROW.matches("EXISTS").count(), Table::ALL.len());
    }
}
