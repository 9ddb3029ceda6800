//! Master-key rotation: re-sealing every ciphertext under the ring's
//! sealing key (and with the current associated data), and counting how
//! rows are sealed.
//!
//! Every rewrite is conditional on the row still holding what was read
//! (see [`SecretReseal`]), so a rekey runs safely beside serving nodes and
//! beside another rekey: a row deleted or rewritten meanwhile is left
//! alone. Work goes in batches by secret id; a batch that commits is never
//! redone, so an interrupted run resumes where the next run finds rows
//! still to do, and a run that finds none changes nothing.

use uuid::Uuid;
use zeroize::Zeroizing;

use super::{
    AAD_CURRENT, META_PEPPER, OtpBinding, PEPPER_AAD, SealCensus, SecretReseal, SecretRow, Vault,
    VaultError, secret_aad, secret_info,
};
use crate::crypto::{CryptoError, MasterKeyRing, Sealed};
use crate::keys::HASH_CURRENT;
use crate::store::Store;

/// What one [`Vault::rekey_batch`] did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RekeyBatch {
    /// Secrets read.
    pub scanned: u64,
    /// Of those, secrets not sealed by the sealing key or with older
    /// associated data.
    pub needed: u64,
    /// Secrets re-sealed and written.
    pub resealed: u64,
    /// Secrets that changed (were deleted or rewritten) between the read
    /// and the write, and were left as they are.
    pub changed_meanwhile: u64,
    /// Secrets that cannot be re-sealed, with why (no secret material):
    /// sealed by a key the ring does not hold, or damaged.
    pub failed: Vec<(Uuid, String)>,
    /// Where the next batch starts; `None` once every secret was read.
    pub next: Option<Uuid>,
}

/// Rows sealed one way, for [`SealStatus`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealCount {
    /// Id of the master key that sealed them.
    pub key_id: String,
    /// Their associated-data version.
    pub aad_version: i64,
    /// How many.
    pub rows: u64,
}

/// How a database is sealed, against a ring (`totpd rekey --status`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SealStatus {
    /// The ring's key ids, the sealing key first.
    pub ring: Vec<String>,
    /// Id of the key that sealed the pepper (the key check record), if the
    /// database has one.
    pub pepper_key_id: Option<String>,
    /// Secrets per sealing key and associated-data version.
    pub secrets: Vec<SealCount>,
    /// API keys per hash version.
    pub api_keys: Vec<(i64, u64)>,
    /// The associated-data version new secrets get.
    pub current_aad_version: i64,
    /// The hash version new API keys get.
    pub current_hash_version: i64,
}

impl SealStatus {
    /// Id of the key that seals new ciphertexts.
    pub fn sealing_key_id(&self) -> &str {
        self.ring.first().map_or("", String::as_str)
    }

    /// Whether the ring holds the key `key_id`.
    pub fn ring_holds(&self, key_id: &str) -> bool {
        self.ring.iter().any(|id| id == key_id)
    }

    /// Secrets that `totpd rekey` would re-seal.
    pub fn secrets_to_reseal(&self) -> u64 {
        self.secrets
            .iter()
            .filter(|c| {
                c.key_id != self.sealing_key_id() || c.aad_version != self.current_aad_version
            })
            .map(|c| c.rows)
            .sum()
    }

    /// Whether the pepper would be re-sealed.
    pub fn pepper_to_reseal(&self) -> bool {
        self.pepper_key_id
            .as_deref()
            .is_some_and(|id| id != self.sealing_key_id())
    }

    /// Ids of keys that seal some row but that the ring does not hold.
    pub fn missing_keys(&self) -> Vec<String> {
        let mut ids: Vec<String> = self
            .secrets
            .iter()
            .map(|c| c.key_id.clone())
            .chain(self.pepper_key_id.clone())
            .filter(|id| !self.ring_holds(id))
            .collect();
        ids.sort();
        ids.dedup();
        ids
    }
}

impl Vault {
    /// Counts how the rows of `store` are sealed and hashed, against
    /// `ring` (which need not open the database: that is what the count
    /// may show).
    pub async fn seal_status(
        store: &dyn Store,
        ring: &MasterKeyRing,
    ) -> Result<SealStatus, VaultError> {
        let SealCensus { secrets, api_keys } = store.seal_census().await?;
        let pepper_key_id = match store.get_meta(META_PEPPER).await? {
            Some(bytes) => Some(
                Sealed::from_bytes(&bytes)
                    .ok_or_else(|| {
                        VaultError::internal("the key check record is damaged".to_owned())
                    })?
                    .sealed_by,
            ),
            None => None,
        };
        Ok(SealStatus {
            ring: ring.ids(),
            pepper_key_id,
            secrets: secrets
                .into_iter()
                .map(|(key_id, aad_version, rows)| SealCount {
                    key_id,
                    aad_version,
                    rows,
                })
                .collect(),
            api_keys,
            current_aad_version: AAD_CURRENT,
            current_hash_version: HASH_CURRENT,
        })
    }

    /// Re-seals, under the sealing key and with the current associated
    /// data, every secret among the `limit` after `after` (by id, across
    /// every account) that is sealed otherwise. The rows are read from one
    /// snapshot, and written in one transaction, each by one conditional
    /// `UPDATE`.
    pub async fn rekey_batch(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<RekeyBatch, VaultError> {
        let rows = {
            let mut snapshot = self.store.snapshot().await?;
            snapshot.secrets(after, limit.max(1)).await?
        };
        let mut batch = RekeyBatch {
            scanned: u64::try_from(rows.len()).unwrap_or(u64::MAX),
            next: if u32::try_from(rows.len()).is_ok_and(|n| n >= limit.max(1)) {
                rows.last().map(|row| row.id)
            } else {
                None
            },
            ..RekeyBatch::default()
        };
        let sealing = self.master.sealing().id().to_owned();
        let mut reseals = Vec::new();
        for row in rows {
            if row.sealed_by == sealing && row.aad_version == AAD_CURRENT {
                continue;
            }
            batch.needed += 1;
            match self.reseal(&row) {
                Ok(reseal) => reseals.push(reseal),
                Err(why) => batch.failed.push((row.id, why)),
            }
        }
        if !reseals.is_empty() {
            batch.resealed = self.store.reseal_secrets(&reseals).await?;
            batch.changed_meanwhile =
                u64::try_from(reseals.len()).unwrap_or(u64::MAX) - batch.resealed;
        }
        Ok(batch)
    }

    /// The re-sealed form of `row`, or why it cannot be had.
    fn reseal(&self, row: &SecretRow) -> Result<SecretReseal, String> {
        let info = secret_info(row).map_err(|e| e.to_string())?;
        let bound = OtpBinding::of(&info);
        let old_aad = secret_aad(row.aad_version, row.account_id, row.id, &bound)
            .ok_or_else(|| format!("unknown associated-data version {}", row.aad_version))?;
        let sealed = Sealed {
            sealed_by: row.sealed_by.clone(),
            nonce: row.nonce.clone(),
            ciphertext: row.ciphertext.clone(),
        };
        let plaintext: Zeroizing<Vec<u8>> =
            self.master.open(&sealed, &old_aad).map_err(|e| match e {
                CryptoError::UnknownKey => format!(
                    "sealed by master key {}, which the master key setting does not hold",
                    row.sealed_by
                ),
                CryptoError::Open => "its ciphertext failed authentication".to_owned(),
                other => other.to_string(),
            })?;
        let new_aad = secret_aad(AAD_CURRENT, row.account_id, row.id, &bound)
            .ok_or_else(|| "no current associated data".to_owned())?;
        let resealed = self
            .master
            .seal(&plaintext, &new_aad)
            .map_err(|e| e.to_string())?;
        Ok(SecretReseal {
            id: row.id,
            account_id: row.account_id,
            algorithm: row.algorithm.clone(),
            digits: row.digits,
            period: row.period,
            old_sealed_by: row.sealed_by.clone(),
            old_nonce: row.nonce.clone(),
            old_ciphertext: row.ciphertext.clone(),
            old_aad_version: row.aad_version,
            sealed_by: resealed.sealed_by,
            nonce: resealed.nonce,
            ciphertext: resealed.ciphertext,
            aad_version: AAD_CURRENT,
        })
    }

    /// Re-seals the pepper (the key check record) under the sealing key if
    /// another key sealed it; returns whether this call rewrote it. The
    /// pepper itself does not change, so every API key keeps working.
    pub async fn rekey_pepper(&self) -> Result<bool, VaultError> {
        let Some(stored) = self.store.get_meta(META_PEPPER).await? else {
            return Err(VaultError::internal(
                "the database has no key check record".to_owned(),
            ));
        };
        let sealed = Sealed::from_bytes(&stored)
            .ok_or_else(|| VaultError::internal("the key check record is damaged".to_owned()))?;
        if sealed.sealed_by == self.master.sealing().id() {
            return Ok(false);
        }
        let resealed = self
            .master
            .seal(&self.pepper, PEPPER_AAD)
            .map_err(|e| VaultError::internal_from("sealing failed", e))?;
        // Conditional: a concurrent rekey that got there first wins, and
        // sealed the same pepper under the same key.
        Ok(self
            .store
            .replace_meta(META_PEPPER, &stored, &resealed.to_bytes())
            .await?)
    }
}
