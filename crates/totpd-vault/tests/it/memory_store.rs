//! A `Store` in memory, enough of one for a `Vault` to open, make keys and
//! seal secrets without a database.

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use totpd_vault::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, AuditPage, AuditQuery, AuditRecord, AuditRow,
    CopyReport, ListCursor, PoolStatus, SealCensus, SecretReseal, SecretRow, SecretUpdate,
    Snapshot, Store, StoreError,
};
use uuid::Uuid;

#[derive(Debug, Default)]
pub struct MemoryStore {
    meta: Mutex<BTreeMap<String, Vec<u8>>>,
    accounts: Mutex<Vec<AccountRow>>,
    api_keys: Mutex<Vec<ApiKeyRow>>,
    secrets: Mutex<Vec<SecretRow>>,
    audit: Mutex<Vec<AuditRow>>,
    /// Whether `append_audit` fails as if the database were down.
    audit_fails: Mutex<bool>,
    /// Calls of `upgrade_api_key_hash`, applied or not.
    upgrade_calls: Mutex<u64>,
    /// Whether `upgrade_api_key_hash` fails as if the database were down.
    upgrades_fail: Mutex<bool>,
}

impl MemoryStore {
    /// How often the vault asked to rewrite a key's hash.
    pub fn upgrade_calls(&self) -> u64 {
        *self.upgrade_calls.lock().unwrap()
    }

    /// Makes hash upgrades fail (true) or work again (false).
    pub fn fail_upgrades(&self, fail: bool) {
        *self.upgrades_fail.lock().unwrap() = fail;
    }

    /// Changes a stored key row, as a database writer could.
    pub fn edit_api_key(&self, key_id: &str, edit: impl FnOnce(&mut ApiKeyRow)) {
        let mut keys = self.api_keys.lock().unwrap();
        edit(keys.iter_mut().find(|k| k.key_id == key_id).unwrap());
    }

    /// Changes a stored secret row, as a database writer could.
    pub fn edit_secret(&self, id: Uuid, edit: impl FnOnce(&mut SecretRow)) {
        let mut secrets = self.secrets.lock().unwrap();
        edit(secrets.iter_mut().find(|s| s.id == id).unwrap());
    }

    /// Makes audit appends fail (true) or work again (false).
    pub fn fail_audit(&self, fail: bool) {
        *self.audit_fails.lock().unwrap() = fail;
    }

    /// An injected audit failure, for a write that stores its record along.
    fn audit_writable(&self) -> Result<(), StoreError> {
        if *self.audit_fails.lock().unwrap() {
            return Err(StoreError::unavailable_msg("injected audit failure"));
        }
        Ok(())
    }

    /// Appends one audit event.
    fn push_audit(&self, record: &AuditRecord) {
        let mut audit = self.audit.lock().unwrap();
        let id = audit.last().map_or(1, |row| row.id + 1);
        audit.push(AuditRow {
            id,
            record: record.clone(),
        });
    }

    /// Every audit event stored, oldest first.
    pub fn audit_events(&self) -> Vec<AuditRow> {
        self.audit.lock().unwrap().clone()
    }

    /// Every `meta` value, as the vault stored it.
    pub fn meta(&self, name: &str) -> Option<Vec<u8>> {
        self.meta.lock().unwrap().get(name).cloned()
    }
}

fn unsupported(what: &str) -> StoreError {
    StoreError::other_msg(format!("the in-memory test store does not {what}"))
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<(), StoreError> {
        Ok(())
    }

    fn pool_status(&self) -> PoolStatus {
        PoolStatus::default()
    }

    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.meta(name))
    }

    async fn insert_meta(&self, name: &str, value: &[u8]) -> Result<bool, StoreError> {
        let mut meta = self.meta.lock().unwrap();
        if meta.contains_key(name) {
            return Ok(false);
        }
        meta.insert(name.to_owned(), value.to_vec());
        Ok(true)
    }

    async fn account_by_name(&self, name: &str) -> Result<Option<AccountRow>, StoreError> {
        Ok(self
            .accounts
            .lock()
            .unwrap()
            .iter()
            .find(|a| a.name == name)
            .cloned())
    }

    async fn insert_account(&self, row: &AccountRow) -> Result<AccountRow, StoreError> {
        let mut accounts = self.accounts.lock().unwrap();
        if let Some(existing) = accounts.iter().find(|a| a.name == row.name) {
            return Ok(existing.clone());
        }
        accounts.push(row.clone());
        Ok(row.clone())
    }

    async fn count_accounts(&self) -> Result<u64, StoreError> {
        Ok(self.accounts.lock().unwrap().len() as u64)
    }

    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        self.api_keys.lock().unwrap().push(row.clone());
        Ok(())
    }

    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        Ok(self
            .api_keys
            .lock()
            .unwrap()
            .iter()
            .find(|k| k.key_id == key_id)
            .cloned())
    }

    async fn list_api_keys(&self) -> Result<Vec<(ApiKeyRow, String)>, StoreError> {
        let accounts = self.accounts.lock().unwrap();
        let mut keys: Vec<(ApiKeyRow, String)> = self
            .api_keys
            .lock()
            .unwrap()
            .iter()
            .map(|k| {
                let name = accounts
                    .iter()
                    .find(|a| a.id == k.account_id)
                    .map(|a| a.name.clone())
                    .unwrap_or_default();
                (k.clone(), name)
            })
            .collect();
        keys.sort_by(|a, b| (a.0.created_at, &a.0.key_id).cmp(&(b.0.created_at, &b.0.key_id)));
        Ok(keys)
    }

    async fn revoke_api_key(&self, key_id: &str, revoked_at: i64) -> Result<bool, StoreError> {
        let mut keys = self.api_keys.lock().unwrap();
        match keys
            .iter_mut()
            .find(|k| k.key_id == key_id && k.revoked_at.is_none())
        {
            Some(row) => {
                row.revoked_at = Some(revoked_at);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn record_api_key_uses(&self, uses: &[(String, i64)]) -> Result<u64, StoreError> {
        let mut keys = self.api_keys.lock().unwrap();
        let mut changed = 0;
        for (key_id, at) in uses {
            if let Some(row) = keys
                .iter_mut()
                .find(|k| k.key_id == *key_id && k.last_used_at.is_none_or(|t| t < *at))
            {
                row.last_used_at = Some(*at);
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn upgrade_api_key_hash(&self, upgrade: &ApiKeyHashUpgrade) -> Result<bool, StoreError> {
        *self.upgrade_calls.lock().unwrap() += 1;
        if *self.upgrades_fail.lock().unwrap() {
            return Err(StoreError::unavailable_msg("the test says so"));
        }
        let mut keys = self.api_keys.lock().unwrap();
        let Some(row) = keys.iter_mut().find(|k| {
            k.key_id == upgrade.key_id
                && k.secret_hash == upgrade.old_hash
                && k.hash_version == upgrade.old_version
                && k.account_id == upgrade.account_id
                && k.role == upgrade.role
                && k.revoked_at.is_none()
                && k.secret_ids.is_none()
                && k.expires_at.is_none()
        }) else {
            return Ok(false);
        };
        row.secret_hash = upgrade.new_hash.clone();
        row.hash_version = upgrade.new_version;
        Ok(true)
    }

    async fn insert_secret(&self, row: &SecretRow) -> Result<(), StoreError> {
        self.secrets.lock().unwrap().push(row.clone());
        Ok(())
    }

    async fn insert_secret_within_quota(
        &self,
        row: &SecretRow,
        max: u64,
        record: &AuditRecord,
    ) -> Result<(), StoreError> {
        self.audit_writable()?;
        let mut secrets = self.secrets.lock().unwrap();
        let held = secrets
            .iter()
            .filter(|s| s.account_id == row.account_id)
            .count();
        if u64::try_from(held).unwrap() >= max {
            return Err(StoreError::QuotaExceeded { limit: max });
        }
        secrets.push(row.clone());
        self.push_audit(record);
        Ok(())
    }

    async fn secrets_by_fingerprint(
        &self,
        account_id: Uuid,
        fingerprints: &[Vec<u8>],
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        let secrets = self.secrets.lock().unwrap();
        Ok(fingerprints
            .iter()
            .map(|fingerprint| {
                secrets
                    .iter()
                    .find(|s| {
                        s.account_id == account_id && s.fingerprint.as_ref() == Some(fingerprint)
                    })
                    .map(|s| s.id)
            })
            .collect())
    }

    async fn import_secrets(
        &self,
        account_id: Uuid,
        rows: &[(SecretRow, AuditRecord)],
        max: u64,
    ) -> Result<Vec<Option<Uuid>>, StoreError> {
        self.audit_writable()?;
        let fingerprints: Vec<Vec<u8>> = rows
            .iter()
            .map(|(row, _)| row.fingerprint.clone().unwrap())
            .collect();
        let existing = self
            .secrets_by_fingerprint(account_id, &fingerprints)
            .await?;
        let mut secrets = self.secrets.lock().unwrap();
        let held = secrets
            .iter()
            .filter(|s| s.account_id == account_id)
            .count();
        let new = existing.iter().filter(|id| id.is_none()).count();
        if new > 0 && u64::try_from(held + new).unwrap() > max {
            return Err(StoreError::QuotaExceeded { limit: max });
        }
        for ((row, record), found) in rows.iter().zip(&existing) {
            if found.is_none() {
                secrets.push(row.clone());
                self.push_audit(record);
            }
        }
        Ok(existing)
    }

    async fn set_fingerprints(
        &self,
        account_id: Uuid,
        fingerprints: &[(Uuid, Vec<u8>)],
    ) -> Result<u64, StoreError> {
        let mut secrets = self.secrets.lock().unwrap();
        let mut changed = 0;
        for (id, fingerprint) in fingerprints {
            if let Some(s) = secrets
                .iter_mut()
                .find(|s| s.id == *id && s.account_id == account_id && s.fingerprint.is_none())
            {
                s.fingerprint = Some(fingerprint.clone());
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn list_secrets_page(
        &self,
        account_id: Uuid,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        let mut rows: Vec<SecretRow> = self
            .secrets
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.account_id == account_id)
            .filter(|s| after.is_none_or(|a| ListCursor::after(s) > a))
            .cloned()
            .collect();
        rows.sort_by_key(ListCursor::after);
        rows.truncate(usize::try_from(limit).unwrap());
        Ok(rows)
    }

    async fn secret(&self, account_id: Uuid, id: Uuid) -> Result<Option<SecretRow>, StoreError> {
        Ok(self
            .secrets
            .lock()
            .unwrap()
            .iter()
            .find(|s| s.account_id == account_id && s.id == id)
            .cloned())
    }

    async fn list_secrets(&self, account_id: Uuid) -> Result<Vec<SecretRow>, StoreError> {
        Ok(self
            .secrets
            .lock()
            .unwrap()
            .iter()
            .filter(|s| s.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn update_secret(
        &self,
        account_id: Uuid,
        id: Uuid,
        update: &SecretUpdate,
    ) -> Result<Option<SecretRow>, StoreError> {
        let mut secrets = self.secrets.lock().unwrap();
        let Some(row) = secrets
            .iter_mut()
            .find(|s| s.account_id == account_id && s.id == id)
        else {
            return Ok(None);
        };
        if let Some(label) = &update.label {
            row.label = label.clone();
        }
        if let Some(issuer) = &update.issuer {
            row.issuer = issuer.clone();
        }
        if let Some(skew) = update.skew {
            row.skew = skew;
        }
        Ok(Some(row.clone()))
    }

    async fn delete_secret(&self, account_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        let mut secrets = self.secrets.lock().unwrap();
        let before = secrets.len();
        secrets.retain(|s| !(s.account_id == account_id && s.id == id));
        Ok(secrets.len() < before)
    }

    async fn take_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        record: &AuditRecord,
    ) -> Result<Option<i64>, StoreError> {
        self.audit_writable()?;
        let mut secrets = self.secrets.lock().unwrap();
        let taken = secrets
            .iter_mut()
            .find(|s| s.account_id == account_id && s.id == id && s.otp_type == "hotp")
            .filter(|s| s.counter < i64::MAX)
            .map(|s| {
                s.counter += 1;
                s.counter - 1
            });
        if taken.is_some() {
            self.push_audit(record);
        }
        Ok(taken)
    }

    async fn accept_totp_step(
        &self,
        account_id: Uuid,
        id: Uuid,
        step: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.audit_writable()?;
        let mut secrets = self.secrets.lock().unwrap();
        match secrets.iter_mut().find(|s| {
            s.account_id == account_id
                && s.id == id
                && s.otp_type == "totp"
                && s.last_step.is_none_or(|last| last < step)
        }) {
            Some(s) => {
                s.last_step = Some(step);
                self.push_audit(record);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn accept_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        matched: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError> {
        self.audit_writable()?;
        let mut secrets = self.secrets.lock().unwrap();
        match secrets.iter_mut().find(|s| {
            s.account_id == account_id && s.id == id && s.otp_type == "hotp" && s.counter <= matched
        }) {
            Some(s) => {
                s.counter = matched + 1;
                self.push_audit(record);
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn record_verify_failure(
        &self,
        account_id: Uuid,
        id: Uuid,
        now: i64,
        window_ms: i64,
    ) -> Result<Option<(i64, i64)>, StoreError> {
        let mut secrets = self.secrets.lock().unwrap();
        Ok(secrets
            .iter_mut()
            .find(|s| s.account_id == account_id && s.id == id)
            .map(|s| {
                match s.failed_since {
                    Some(since) if since > now - window_ms => s.failed_verifies += 1,
                    _ => {
                        s.failed_verifies = 1;
                        s.failed_since = Some(now);
                    }
                }
                (s.failed_verifies, s.failed_since.unwrap_or(now))
            }))
    }

    async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError> {
        self.audit_writable()?;
        // A commit takes time (an fsync): records queue meanwhile.
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        records.iter().for_each(|record| self.push_audit(record));
        Ok(())
    }

    async fn list_audit(
        &self,
        account_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRow>, StoreError> {
        let mut rows = self.list_audit_all(query).await?;
        rows.retain(|row| row.record.account_id == Some(account_id));
        Ok(rows)
    }

    async fn list_audit_all(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError> {
        let mut rows: Vec<AuditRow> = self
            .audit
            .lock()
            .unwrap()
            .iter()
            .filter(|row| {
                let r = &row.record;
                query.action.as_ref().is_none_or(|a| *a == r.action)
                    && query.secret_id.is_none_or(|s| Some(s) == r.secret_id)
                    && query
                        .key_id
                        .as_ref()
                        .is_none_or(|k| Some(k) == r.key_id.as_ref())
                    && query.since.is_none_or(|t| r.at >= t)
                    && query.until.is_none_or(|t| r.at < t)
                    && match query.page {
                        AuditPage::Newest => true,
                        AuditPage::Before(id) => row.id < id,
                        AuditPage::After(id) => row.id > id,
                    }
            })
            .cloned()
            .collect();
        if !matches!(query.page, AuditPage::After(_)) {
            rows.reverse();
        }
        rows.truncate(query.limit as usize);
        Ok(rows)
    }

    async fn prune_audit(&self, before: i64, limit: u32) -> Result<u64, StoreError> {
        let mut audit = self.audit.lock().unwrap();
        let old = audit
            .iter()
            .filter(|row| row.record.at < before)
            .take(limit as usize)
            .count();
        let mut left = old;
        audit.retain(|row| {
            if left > 0 && row.record.at < before {
                left -= 1;
                false
            } else {
                true
            }
        });
        Ok(old as u64)
    }

    async fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.meta.lock().unwrap().is_empty())
    }

    async fn reseal_secrets(&self, reseals: &[SecretReseal]) -> Result<u64, StoreError> {
        let mut secrets = self.secrets.lock().unwrap();
        let mut changed = 0;
        for r in reseals {
            if let Some(row) = secrets.iter_mut().find(|s| {
                s.id == r.id
                    && s.account_id == r.account_id
                    && s.sealed_by == r.old_sealed_by
                    && s.nonce == r.old_nonce
                    && s.ciphertext == r.old_ciphertext
                    && s.aad_version == r.old_aad_version
                    && s.algorithm == r.algorithm
                    && s.digits == r.digits
                    && s.period == r.period
            }) {
                row.sealed_by = r.sealed_by.clone();
                row.nonce = r.nonce.clone();
                row.ciphertext = r.ciphertext.clone();
                row.aad_version = r.aad_version;
                changed += 1;
            }
        }
        Ok(changed)
    }

    async fn replace_meta(&self, name: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError> {
        let mut meta = self.meta.lock().unwrap();
        match meta.get_mut(name) {
            Some(value) if value.as_slice() == old => {
                *value = new.to_vec();
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn seal_census(&self) -> Result<SealCensus, StoreError> {
        let mut secrets: BTreeMap<(String, i64), u64> = BTreeMap::new();
        for s in self.secrets.lock().unwrap().iter() {
            *secrets
                .entry((s.sealed_by.clone(), s.aad_version))
                .or_default() += 1;
        }
        let mut api_keys: BTreeMap<i64, u64> = BTreeMap::new();
        for k in self.api_keys.lock().unwrap().iter() {
            *api_keys.entry(k.hash_version).or_default() += 1;
        }
        Ok(SealCensus {
            secrets: secrets.into_iter().map(|((k, v), n)| (k, v, n)).collect(),
            api_keys: api_keys.into_iter().collect(),
        })
    }

    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, StoreError> {
        Err(unsupported("take snapshots"))
    }

    async fn copy_from(&self, _source: &mut dyn Snapshot) -> Result<CopyReport, StoreError> {
        Err(unsupported("copy"))
    }
}
