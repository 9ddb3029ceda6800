//! Import of many secrets at once (DESIGN §2.5): the entries a front end
//! read from a file, each stored, recognised as a duplicate, or refused
//! with a reason.
//!
//! A duplicate is a secret the account already holds with the same key
//! bytes, recognised by its keyed fingerprint (never the secret itself;
//! see [`Vault::fingerprint`]). Rows written before fingerprints existed get
//! theirs the first time their account imports, once per process.
//!
//! Everything an import stores goes in one transaction with one
//! `secret.import` record per secret, after one duplicate and quota check
//! that no concurrent create or import can slip past: a 2xx answer means
//! every `created` entry is durable, and an error means none is.

use std::collections::HashMap;

use totpd_otp::{OtpKind, OtpParams, Period};
use uuid::Uuid;

use super::{Vault, authorize, outcome_of, secret_info};
use crate::audit::{self, Outcome};
use crate::error::VaultError;
use crate::model::{
    AccountName, Issuer, Label, MAX_HOTP_COUNTER, NewSecret, SecretKind, SecretSource, Skew,
    UnixTime,
};
use crate::policy::{Action, Principal, Role};
use crate::store::{AccountRow, AuditRecord, ListCursor, SecretRow};

/// Code lengths an imported secret may have: the create API's contract
/// (6 or 8), so every stored secret is one the API describes.
const IMPORT_DIGITS: [u8; 2] = [6, 8];

/// Rows read per page while computing missing fingerprints.
const FINGERPRINT_PAGE: u32 = 500;

/// One entry of a file, as a front end read it.
#[derive(Debug)]
pub enum ImportEntry {
    /// A credential to store.
    Secret(NewSecret),
    /// A credential that cannot be stored, with the names the file gave it
    /// and why (never secret material).
    Invalid {
        /// The entry's account name, if the file had one.
        label: Option<String>,
        /// The entry's issuer, if the file had one.
        issuer: Option<String>,
        /// Why it cannot be stored, for a person.
        reason: String,
    },
}

impl ImportEntry {
    /// The entry of an enrollment URI's parameters. The label is the URI's
    /// account name, or its issuer when it has none (authenticator exports
    /// often leave one of the two empty); the create API's rules apply to
    /// both, and to digits (6 or 8) and the HOTP counter. TOTP secrets get
    /// the default skew.
    pub fn from_params(params: OtpParams) -> ImportEntry {
        let label_text = match params.account.trim() {
            "" => params.issuer.clone(),
            _ => Some(params.account.clone()),
        };
        let invalid = |reason: String| ImportEntry::Invalid {
            label: Some(params.account.clone()).filter(|a| !a.trim().is_empty()),
            issuer: params.issuer.clone(),
            reason,
        };
        let Some(label_text) = label_text else {
            return invalid("the entry has neither an account name nor an issuer".to_owned());
        };
        let label = match Label::parse(&label_text) {
            Ok(label) => label,
            Err(error) => return invalid(error.to_string()),
        };
        let issuer = match params.issuer.as_deref().map(Issuer::parse).transpose() {
            Ok(issuer) => issuer,
            Err(error) => return invalid(error.to_string()),
        };
        if !IMPORT_DIGITS.contains(&params.digits.get()) {
            return invalid(format!(
                "digits must be 6 or 8, not {}",
                params.digits.get()
            ));
        }
        let (period, kind) = match params.kind {
            OtpKind::Totp { period } => (
                period,
                SecretKind::Totp {
                    skew: Skew::default(),
                },
            ),
            OtpKind::Hotp { counter } if counter > MAX_HOTP_COUNTER => {
                return invalid(format!("the counter must be at most {MAX_HOTP_COUNTER}"));
            }
            OtpKind::Hotp { counter } => (Period::default(), SecretKind::Hotp { counter }),
        };
        ImportEntry::Secret(NewSecret {
            label,
            issuer,
            source: SecretSource::Provided(params.secret),
            algorithm: params.algorithm,
            digits: params.digits,
            period,
            kind,
        })
    }
}

/// How an import stores what it read.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ImportOptions {
    /// Store nothing; answer what would be stored.
    pub dry_run: bool,
    /// Store everything or nothing: one invalid entry and nothing is stored.
    pub atomic: bool,
}

/// What became of one entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportOutcome {
    /// Stored (or, in a dry run, would be).
    Created,
    /// The account already holds a secret with these key bytes (or an
    /// earlier entry of the same file has them).
    Duplicate,
    /// Not a credential the vault can store.
    Invalid,
}

impl ImportOutcome {
    /// The outcome's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            ImportOutcome::Created => "created",
            ImportOutcome::Duplicate => "duplicate",
            ImportOutcome::Invalid => "invalid",
        }
    }
}

/// One entry's result, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportResult {
    /// What became of it.
    pub outcome: ImportOutcome,
    /// The stored secret: the new one, or for a duplicate the one already
    /// held. `None` for an invalid entry, and in a dry run for an entry
    /// that would be created (or duplicates one that would).
    pub id: Option<Uuid>,
    /// The label it has (or would have, or the file gave it).
    pub label: Option<String>,
    /// The issuer it has (or would have, or the file gave it).
    pub issuer: Option<String>,
    /// Why an entry is invalid.
    pub message: Option<String>,
}

/// The result of an import.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportReport {
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// False when an atomic import stored nothing because an entry is
    /// invalid; the results then say what a dry run would.
    pub stored: bool,
    /// One result per entry, in file order.
    pub results: Vec<ImportResult>,
}

impl ImportReport {
    /// How many entries had `outcome`.
    pub fn count(&self, outcome: ImportOutcome) -> usize {
        self.results.iter().filter(|r| r.outcome == outcome).count()
    }

    /// The first invalid entry, by index, if any.
    pub fn first_invalid(&self) -> Option<(usize, &ImportResult)> {
        self.results
            .iter()
            .enumerate()
            .find(|(_, r)| r.outcome == ImportOutcome::Invalid)
    }
}

impl Vault {
    /// The principal of an operator's tool (`totpd import`) acting on the
    /// account named `account_name`, which is created if it does not exist:
    /// every right of an owner, no key (its audit records name none).
    pub async fn operator(
        &self,
        account_name: &AccountName,
        now: UnixTime,
    ) -> Result<Principal, VaultError> {
        let account = match self.store.account_by_name(account_name.as_str()).await? {
            Some(row) => row,
            None => {
                self.store
                    .insert_account(&AccountRow {
                        id: Uuid::new_v4(),
                        name: account_name.as_str().to_owned(),
                        created_at: now.0,
                    })
                    .await?
            }
        };
        Ok(Principal::new(account.id, "", Role::Owner))
    }

    /// Imports `entries` into the caller's account (see the module
    /// documentation). Within the file, an entry with the key bytes of an
    /// earlier one is its duplicate. An atomic import with an invalid
    /// entry stores nothing and answers `stored: false`. Over the account's
    /// quota: [`VaultError::QuotaExceeded`], nothing stored.
    pub async fn import_secrets(
        &self,
        principal: &Principal,
        entries: Vec<ImportEntry>,
        options: ImportOptions,
        now: UnixTime,
    ) -> Result<ImportReport, VaultError> {
        let report = self
            .import_secrets_recorded(principal, entries, options, now)
            .await;
        let refused = match &report {
            Err(error) => Some(outcome_of(error)),
            Ok(report) if !report.stored => Some(Outcome::Invalid),
            Ok(_) => None,
        };
        if let Some(outcome) = refused {
            self.audit.record(audit::event(
                Action::SecretImport.as_str(),
                outcome,
                Some(principal),
                None,
                now,
            ));
        }
        report
    }

    async fn import_secrets_recorded(
        &self,
        principal: &Principal,
        entries: Vec<ImportEntry>,
        options: ImportOptions,
        now: UnixTime,
    ) -> Result<ImportReport, VaultError> {
        authorize(principal, Action::SecretImport, None)?;
        let account_id = principal.account_id;
        self.fingerprint_account(account_id).await?;

        let mut results = Vec::with_capacity(entries.len());
        // The rows to store, each with its record and its result's index.
        let mut rows: Vec<(SecretRow, AuditRecord)> = Vec::new();
        let mut row_results: Vec<usize> = Vec::new();
        // Fingerprint → index of the first result with it.
        let mut first_with: HashMap<Vec<u8>, usize> = HashMap::new();
        for entry in entries {
            let new = match entry {
                ImportEntry::Invalid {
                    label,
                    issuer,
                    reason,
                } => {
                    results.push(ImportResult {
                        outcome: ImportOutcome::Invalid,
                        id: None,
                        label,
                        issuer,
                        message: Some(reason),
                    });
                    continue;
                }
                ImportEntry::Secret(new) => new,
            };
            let SecretSource::Provided(secret) = &new.source else {
                return Err(VaultError::internal(
                    "an imported entry has no secret".to_owned(),
                ));
            };
            let index = results.len();
            let id = Uuid::new_v4();
            let row = self.sealed_row(account_id, id, &new, secret, now)?;
            let fingerprint = row.fingerprint.clone().unwrap_or_default();
            let info = secret_info(&row)?;
            let mut result = ImportResult {
                outcome: ImportOutcome::Created,
                id: Some(id),
                label: Some(info.label),
                issuer: info.issuer,
                message: None,
            };
            if let Some(&first) = first_with.get(&fingerprint) {
                result.outcome = ImportOutcome::Duplicate;
                result.id = results.get(first).and_then(|r: &ImportResult| r.id);
            } else {
                first_with.insert(fingerprint, index);
                let record = audit::event(
                    Action::SecretImport.as_str(),
                    Outcome::Ok,
                    Some(principal),
                    Some(id),
                    now,
                );
                rows.push((row, record));
                row_results.push(index);
            }
            results.push(result);
        }

        let refused = options.atomic && results.iter().any(|r| r.outcome == ImportOutcome::Invalid);
        let store = !options.dry_run && !refused;
        let held = if store {
            self.store
                .import_secrets(account_id, &rows, self.max_secrets_per_account)
                .await?
        } else {
            let fingerprints: Vec<Vec<u8>> = rows
                .iter()
                .map(|(row, _)| row.fingerprint.clone().unwrap_or_default())
                .collect();
            self.store
                .secrets_by_fingerprint(account_id, &fingerprints)
                .await?
        };
        // Where each planned row ended up: stored under its own id, held
        // already under another, or (not storing) nowhere.
        let mut final_id: HashMap<Uuid, Option<Uuid>> = HashMap::with_capacity(rows.len());
        for (((row, _), held), &index) in rows.iter().zip(&held).zip(&row_results) {
            let id = match held {
                Some(existing) => {
                    if let Some(result) = results.get_mut(index) {
                        result.outcome = ImportOutcome::Duplicate;
                    }
                    Some(*existing)
                }
                None if store => Some(row.id),
                None => None,
            };
            final_id.insert(row.id, id);
        }
        // In-file duplicates name their first copy's row: follow it.
        for result in &mut results {
            if let Some(planned) = result.id.and_then(|id| final_id.get(&id)) {
                result.id = *planned;
            }
        }
        Ok(ImportReport {
            dry_run: options.dry_run,
            stored: !refused,
            results,
        })
    }

    /// Computes the fingerprint of every secret of the account that has
    /// none (rows written before fingerprints existed), once per account
    /// and process. Opening a row proves it intact, as reading a code does.
    async fn fingerprint_account(&self, account_id: Uuid) -> Result<(), VaultError> {
        if self
            .fingerprinted
            .lock()
            .is_ok_and(|done| done.contains(&account_id))
        {
            return Ok(());
        }
        let mut after: Option<ListCursor> = None;
        loop {
            let page = self
                .store
                .list_secrets_page(account_id, after, FINGERPRINT_PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(ListCursor::after(last));
            let mut missing = Vec::new();
            for row in page.iter().filter(|row| row.fingerprint.is_none()) {
                // A row that does not open keeps no fingerprint (and cannot
                // be recognised as a duplicate); it must not block imports.
                let opened = secret_info(row)
                    .and_then(|info| self.open_secret(account_id, &info, row.clone()));
                match opened {
                    Ok(secret) => missing.push((row.id, self.fingerprint(account_id, &secret))),
                    Err(error) => tracing::warn!(
                        secret_id = %row.id,
                        error = %crate::ErrorChain(&error),
                        "a stored secret cannot be opened to compute its fingerprint"
                    ),
                }
            }
            self.store.set_fingerprints(account_id, &missing).await?;
            if page.len() < FINGERPRINT_PAGE as usize {
                break;
            }
        }
        if let Ok(mut done) = self.fingerprinted.lock() {
            done.insert(account_id);
        }
        Ok(())
    }
}
