//! The vault service: every operation of the product, over a [`Store`].

use std::sync::Arc;

use totpd_otp::{Algorithm, Digits, Period, Secret, Totp};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{Canonical, CryptoError, MasterKeyRing, Sealed};
use crate::error::VaultError;
pub use crate::keys::KEY_CACHE_TTL_MS;
use crate::keys::{self, CachedKey, HASH_CURRENT, KEY_ID_PREFIX, KeyBinding, KeyCache, NewApiKey};
use crate::model::{
    Account, ApiKeyInfo, CodeAt, CreatedSecret, NewSecret, SecretInfo, SecretSource, UnixTime,
    validate_account_name,
};
use crate::policy::{Origin, Principal, Role, Scope};
mod rekey;
pub use rekey::{RekeyBatch, SealCount, SealStatus};

use crate::store::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, ListCursor, SealCensus, SecretReseal, SecretRow,
    Store, StoreError,
};

/// `meta` row holding the API-key pepper, sealed by the master key. Its
/// presence marks an initialised database; opening it proves the master key.
const META_PEPPER: &str = "pepper";
/// `meta` row written by the one node that performs the first-start bootstrap.
const META_BOOTSTRAPPED: &str = "bootstrapped";
const PEPPER_AAD: &[u8] = b"totpd/v1/pepper";
/// Name of the account created on first start.
pub const DEFAULT_ACCOUNT: &str = "default";
/// Role of a key that may do everything within its account.
const ROLE_OWNER: &str = "owner";
/// What an unknown key id is hashed against, so it costs what a known one does.
const UNKNOWN_KEY: KeyBinding<'static> = KeyBinding {
    key_id: "",
    account_id: Uuid::nil(),
    role: "",
};
/// Bytes drawn for a vault-generated secret (RFC 4226 §4 R6: 160 bits).
const GENERATED_SECRET_LEN: usize = 20;

/// Default of [`Vault::with_max_secrets_per_account`]: far more than any
/// person or fleet enrolls (a million secrets take about 300 MB of
/// database), yet a leaked key that may create secrets cannot fill the disk.
pub const DEFAULT_MAX_SECRETS_PER_ACCOUNT: u64 = 1_000_000;

/// Why the vault could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// No key of the ring opens the database.
    #[error(
        "the master key does not open this database (it was sealed by key {expected}, the key given is {given}); supply the master key this database was created with"
    )]
    WrongMasterKey {
        /// Id of the key that sealed the database's key check record.
        expected: String,
        /// Ids of the keys supplied, comma-separated, the sealing key first.
        given: String,
    },
    /// The stored pepper is damaged.
    #[error("the database's key check record is damaged")]
    Corrupt,
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The system random generator failed.
    #[error("the system random number generator failed")]
    Random,
}

/// The vault: storage plus the keys that protect it.
pub struct Vault {
    store: Arc<dyn Store>,
    master: MasterKeyRing,
    pepper: Zeroizing<Vec<u8>>,
    key_cache: KeyCache,
    max_secrets_per_account: u64,
}

impl std::fmt::Debug for Vault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Vault")
            .field("store", &self.store)
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

impl Vault {
    /// Whether the database has been initialised by a vault (and therefore
    /// needs the master key it was created with).
    pub async fn is_initialized(store: &dyn Store) -> Result<bool, StoreError> {
        Ok(store.get_meta(META_PEPPER).await?.is_some())
    }

    /// Opens the vault, initialising an empty database with the ring's
    /// sealing key or proving that a key of the ring opens the database
    /// (its key check record may be sealed by any of them, e.g. while a
    /// rotation is under way). A single [`MasterKey`] is a ring of one.
    pub async fn open(
        store: Arc<dyn Store>,
        master: impl Into<MasterKeyRing>,
    ) -> Result<Vault, OpenError> {
        let master = master.into();
        let stored = match store.get_meta(META_PEPPER).await? {
            Some(stored) => stored,
            None => {
                let mut pepper = Zeroizing::new(vec![0u8; 32]);
                getrandom::fill(&mut pepper).map_err(|_| OpenError::Random)?;
                let sealed = master
                    .seal(&pepper, PEPPER_AAD)
                    .map_err(|_| OpenError::Random)?;
                // Two nodes may initialise at once: the first insert wins and
                // everyone reads the winner's pepper back.
                store.insert_meta(META_PEPPER, &sealed.to_bytes()).await?;
                store
                    .get_meta(META_PEPPER)
                    .await?
                    .ok_or(OpenError::Corrupt)?
            }
        };
        let sealed = Sealed::from_bytes(&stored).ok_or(OpenError::Corrupt)?;
        let pepper = master.open(&sealed, PEPPER_AAD).map_err(|e| match e {
            CryptoError::UnknownKey | CryptoError::Open => OpenError::WrongMasterKey {
                expected: sealed.key_id.clone(),
                given: master.ids().join(", "),
            },
            _ => OpenError::Corrupt,
        })?;
        Ok(Vault {
            store,
            master,
            pepper,
            key_cache: KeyCache::default(),
            max_secrets_per_account: DEFAULT_MAX_SECRETS_PER_ACCOUNT,
        })
    }

    /// Sets the most secrets one account may hold (at least 1); a create
    /// beyond is refused with [`VaultError::QuotaExceeded`] and stores
    /// nothing, also under concurrent creates from many nodes.
    #[must_use]
    pub fn with_max_secrets_per_account(mut self, max: u64) -> Vault {
        self.max_secrets_per_account = max.max(1);
        self
    }

    /// The most secrets one account may hold.
    pub fn max_secrets_per_account(&self) -> u64 {
        self.max_secrets_per_account
    }

    /// Public id of the master key that seals (the ring's first; safe to log).
    pub fn master_key_id(&self) -> &str {
        self.master.sealing().id()
    }

    /// Public ids of every master key of the ring, the sealing key first.
    pub fn master_key_ids(&self) -> Vec<String> {
        self.master.ids()
    }

    /// The underlying store.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// On a database that has never been bootstrapped, creates the `default`
    /// account with an owner key and returns it (the only time its secret is
    /// visible). Exactly one caller wins, even with several nodes starting at once.
    pub async fn bootstrap(&self, now: UnixTime) -> Result<Option<NewApiKey>, VaultError> {
        if self.store.get_meta(META_BOOTSTRAPPED).await?.is_some() {
            return Ok(None);
        }
        if self.store.count_accounts().await? > 0 {
            // Accounts created by `keys create` before the first serve: the
            // operator already has keys, so no bootstrap key is needed.
            self.store.insert_meta(META_BOOTSTRAPPED, b"1").await?;
            return Ok(None);
        }
        if !self.store.insert_meta(META_BOOTSTRAPPED, b"1").await? {
            return Ok(None);
        }
        self.create_api_key(DEFAULT_ACCOUNT, now).await.map(Some)
    }

    /// Creates the account if needed and a new owner API key for it.
    pub async fn create_api_key(
        &self,
        account_name: &str,
        now: UnixTime,
    ) -> Result<NewApiKey, VaultError> {
        validate_account_name(account_name).map_err(VaultError::Invalid)?;
        let account = match self.store.account_by_name(account_name).await? {
            Some(row) => row,
            None => {
                self.store
                    .insert_account(&AccountRow {
                        id: Uuid::new_v4(),
                        name: account_name.to_owned(),
                        created_at: now.0,
                    })
                    .await?
            }
        };
        let key_id = keys::generate_key_id().map_err(random_failed)?;
        let secret = keys::generate_secret().map_err(random_failed)?;
        let binding = KeyBinding {
            key_id: &key_id,
            account_id: account.id,
            role: ROLE_OWNER,
        };
        let hash = keys::hash_secret(&self.pepper, HASH_CURRENT, &binding, secret.expose())
            .ok_or_else(|| VaultError::Internal("no current API-key hash".to_owned()))?;
        self.store
            .insert_api_key(&ApiKeyRow {
                key_id: key_id.clone(),
                account_id: account.id,
                secret_hash: hash.to_vec(),
                hash_version: HASH_CURRENT,
                role: ROLE_OWNER.to_owned(),
                created_at: now.0,
                revoked_at: None,
            })
            .await?;
        Ok(NewApiKey {
            account: Account {
                id: account.id,
                name: account.name,
                created_at: UnixTime(account.created_at),
            },
            key_id,
            secret,
        })
    }

    /// Every API key, revoked ones included.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, VaultError> {
        Ok(self
            .store
            .list_api_keys()
            .await?
            .into_iter()
            .map(|(row, account_name)| ApiKeyInfo {
                key_id: row.key_id,
                account_id: row.account_id,
                account_name,
                role: row.role,
                created_at: UnixTime(row.created_at),
                revoked_at: row.revoked_at.map(UnixTime),
            })
            .collect())
    }

    /// Revokes a key; `NotFound` if there is no such active key.
    pub async fn revoke_api_key(&self, key_id: &str, now: UnixTime) -> Result<(), VaultError> {
        self.key_cache.forget(key_id);
        if self.store.revoke_api_key(key_id, now.0).await? {
            Ok(())
        } else {
            Err(VaultError::NotFound)
        }
    }

    /// Checks an API key at time `now`. Every failure is the same
    /// `Unauthorized`, and an unknown key id costs the same hash as a known one.
    ///
    /// The stored hash covers the key id, account and role (hash version
    /// 2), so a row whose account or role a database writer changed
    /// authenticates as nothing. A row of hash version 1 (made before
    /// version 2 existed) is checked the old way and, once it has
    /// authenticated, rewritten as version 2: one conditional write per key
    /// and node, never one per request; if that write fails the request
    /// still succeeds and the rewrite is retried later.
    ///
    /// Key rows are cached for at most [`KEY_CACHE_TTL_MS`], so a revocation
    /// made anywhere (another node, the CLI) takes effect within a second
    /// while the hot path mostly skips the database.
    pub async fn authenticate(
        &self,
        key_id: &str,
        secret: &str,
        now: UnixTime,
        origin: Origin,
    ) -> Result<Principal, VaultError> {
        let plausible = key_id.starts_with(KEY_ID_PREFIX) && key_id.len() <= 64;
        let cached = if plausible {
            self.key_cache.get(key_id, now)
        } else {
            None
        };
        let key = match cached {
            Some(key) => Some(key),
            None if plausible => {
                let row = self.store.api_key(key_id).await?;
                row.map(|row| self.key_cache.insert(&row, now))
            }
            None => None,
        };
        let Some(key) = key else {
            // The same work as for a known key, so timing tells nothing.
            let _ = keys::hash_secret(&self.pepper, HASH_CURRENT, &UNKNOWN_KEY, secret);
            return Err(VaultError::Unauthorized);
        };
        let presented =
            keys::hash_secret(&self.pepper, key.hash_version, &key.binding(key_id), secret);
        let matches = presented.is_some_and(|h| keys::hashes_match(&h, &key.secret_hash));
        if key.revoked || !matches {
            return Err(VaultError::Unauthorized);
        }
        // The hash covers the role, so a name this build does not know is a
        // row from a newer version or a damaged one: it grants nothing.
        let Ok(role) = key.role.parse::<Role>() else {
            return Err(VaultError::Unauthorized);
        };
        if key.hash_version != HASH_CURRENT && self.key_cache.begin_upgrade(key_id, now) {
            self.upgrade_key_hash(key_id, secret, &key).await;
        }
        Ok(Principal {
            account_id: key.account_id,
            key_id: key_id.to_owned(),
            role,
            scope: Scope::All,
            origin,
        })
    }

    /// Rewrites an authenticated old-version key row under the current
    /// hash. Failure is logged, never fatal: the key has authenticated.
    async fn upgrade_key_hash(&self, key_id: &str, secret: &str, key: &CachedKey) {
        let Some(new_hash) =
            keys::hash_secret(&self.pepper, HASH_CURRENT, &key.binding(key_id), secret)
        else {
            return;
        };
        let upgrade = ApiKeyHashUpgrade {
            key_id: key_id.to_owned(),
            account_id: key.account_id,
            role: key.role.clone(),
            old_hash: key.secret_hash.clone(),
            old_version: key.hash_version,
            new_hash: new_hash.to_vec(),
            new_version: HASH_CURRENT,
        };
        match self.store.upgrade_api_key_hash(&upgrade).await {
            Ok(true) => {
                tracing::info!(
                    key_id,
                    from = key.hash_version,
                    to = HASH_CURRENT,
                    "API key hash upgraded"
                );
                let mut upgraded = key.clone();
                upgraded.secret_hash = upgrade.new_hash;
                upgraded.hash_version = HASH_CURRENT;
                self.key_cache.finish_upgrade(key_id, upgraded);
            }
            // Another node upgraded it first (or the row changed since it
            // was read): read it again next time.
            Ok(false) => self.key_cache.forget(key_id),
            Err(error) => {
                tracing::warn!(key_id, %error, "could not upgrade an API key hash; will retry");
            }
        }
    }

    /// Enrolls a secret in the caller's account.
    pub async fn create_secret(
        &self,
        principal: &Principal,
        new: NewSecret,
        now: UnixTime,
    ) -> Result<CreatedSecret, VaultError> {
        let secret = match new.source {
            SecretSource::Provided(secret) => secret,
            SecretSource::Generate => {
                let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_LEN]);
                getrandom::fill(&mut bytes).map_err(random_failed)?;
                Secret::from_bytes(bytes.to_vec())
                    .map_err(|e| VaultError::Internal(e.to_string()))?
            }
        };
        let id = Uuid::new_v4();
        let bound = OtpBinding {
            algorithm: new.algorithm,
            digits: new.digits,
            period: new.period,
        };
        let aad = secret_aad(AAD_CURRENT, principal.account_id, id, &bound)
            .ok_or_else(|| VaultError::Internal("no current associated data".to_owned()))?;
        let sealed = self
            .master
            .seal(secret.as_bytes(), &aad)
            .map_err(|e| VaultError::Internal(e.to_string()))?;
        let info = SecretInfo {
            id,
            label: new.label.as_str().to_owned(),
            issuer: new.issuer.map(|i| i.as_str().to_owned()),
            algorithm: new.algorithm,
            digits: new.digits,
            period: new.period,
            created_at: now,
        };
        self.store
            .insert_secret_within_quota(
                &SecretRow {
                    id,
                    account_id: principal.account_id,
                    label: info.label.clone(),
                    issuer: info.issuer.clone(),
                    algorithm: info.algorithm.as_str().to_owned(),
                    digits: i64::from(info.digits.get()),
                    period: i64::from(info.period.get()),
                    created_at: now.0,
                    key_id: sealed.key_id.clone(),
                    nonce: sealed.nonce.clone(),
                    ciphertext: sealed.ciphertext.clone(),
                    aad_version: AAD_CURRENT,
                },
                self.max_secrets_per_account,
            )
            .await?;
        Ok(CreatedSecret { info, secret })
    }

    /// The caller's secrets, oldest first, without secret material. Memory
    /// grows with the account; the API reads [`Vault::list_secrets_page`].
    pub async fn list_secrets(&self, principal: &Principal) -> Result<Vec<SecretInfo>, VaultError> {
        self.store
            .list_secrets(principal.account_id)
            .await?
            .iter()
            .map(secret_info)
            .collect()
    }

    /// Up to `limit` of the caller's secrets after `after` (oldest first,
    /// ties by id), and the cursor of the page after this one (`None` once a
    /// page comes back short, so the list is complete).
    pub async fn list_secrets_page(
        &self,
        principal: &Principal,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<(Vec<SecretInfo>, Option<ListCursor>), VaultError> {
        let rows = self
            .store
            .list_secrets_page(principal.account_id, after, limit)
            .await?;
        let full = u32::try_from(rows.len()).is_ok_and(|n| n >= limit);
        let next = if full {
            rows.last().map(ListCursor::after)
        } else {
            None
        };
        let infos = rows.iter().map(secret_info).collect::<Result<_, _>>()?;
        Ok((infos, next))
    }

    /// Deletes one of the caller's secrets for good.
    pub async fn delete_secret(&self, principal: &Principal, id: Uuid) -> Result<(), VaultError> {
        if self.store.delete_secret(principal.account_id, id).await? {
            Ok(())
        } else {
            Err(VaultError::NotFound)
        }
    }

    /// The current code of one of the caller's secrets at `now`.
    pub async fn code(
        &self,
        principal: &Principal,
        id: Uuid,
        now: UnixTime,
    ) -> Result<CodeAt, VaultError> {
        let row = self
            .store
            .secret(principal.account_id, id)
            .await?
            .ok_or(VaultError::NotFound)?;
        let info = secret_info(&row)?;
        let bound = OtpBinding {
            algorithm: info.algorithm,
            digits: info.digits,
            period: info.period,
        };
        let aad =
            secret_aad(row.aad_version, principal.account_id, id, &bound).ok_or_else(|| {
                corrupt_secret(
                    id,
                    &format!("unknown associated-data version {}", row.aad_version),
                )
            })?;
        let sealed_by = row.key_id.clone();
        let plaintext = self
            .master
            .open(
                &Sealed {
                    key_id: row.key_id,
                    nonce: row.nonce,
                    ciphertext: row.ciphertext,
                },
                &aad,
            )
            .map_err(|e| match e {
                CryptoError::UnknownKey => VaultError::Internal(format!(
                    "secret {id} cannot be opened: it is sealed by master key {}, which the \
                     master key setting does not hold",
                    sealed_by
                )),
                CryptoError::Open => corrupt_secret(
                    id,
                    "its ciphertext failed authentication (the ciphertext, or the account, id \
                     or OTP parameters it is bound to, were changed)",
                ),
                other => VaultError::Internal(format!("secret {id} cannot be opened: {other}")),
            })?;
        let secret = Secret::from_bytes(plaintext.to_vec())
            .map_err(|_| corrupt_secret(id, "bad plaintext"))?;
        let totp = Totp {
            secret,
            algorithm: info.algorithm,
            digits: info.digits,
            period: info.period,
        };
        let t = now.seconds();
        let expires_in = totp.expires_in(t);
        Ok(CodeAt {
            code: totp.code_at(t),
            expires_in,
            expires_at: t + u64::from(expires_in),
            period: info.period,
            digits: info.digits,
        })
    }
}

/// Associated data of version 1: the account and secret id only. Rows
/// sealed before version 2 existed still open with it.
const AAD_V1: i64 = 1;
/// Associated data of version 2: also the OTP type and parameters.
const AAD_V2: i64 = 2;
/// The version every new secret is sealed with.
const AAD_CURRENT: i64 = AAD_V2;
/// The only OTP type so far; bound into the associated data so that a
/// later type column cannot turn a TOTP secret into something else.
const OTP_TYPE_TOTP: &str = "totp";

/// The OTP parameters a ciphertext is bound to.
struct OtpBinding {
    algorithm: Algorithm,
    digits: Digits,
    period: Period,
}

/// Associated data binding a ciphertext to its account and secret id (so a
/// row moved to another account or id no longer decrypts) and, from
/// version 2 on, to its OTP type, algorithm, digits and period (so a
/// database writer cannot change the codes a secret yields). Version 2 is
/// a [`Canonical`] encoding under domain `totpd/secret/v2` of `account_id`
/// and `id` (16 bytes each), `type`, `algorithm` (its name), `digits` (one
/// byte) and `period` (seconds, 8 bytes big endian). `None` for a version
/// this build does not know.
fn secret_aad(version: i64, account_id: Uuid, id: Uuid, otp: &OtpBinding) -> Option<Vec<u8>> {
    match version {
        AAD_V1 => Some(format!("totpd/v1/secret/{account_id}/{id}").into_bytes()),
        AAD_V2 => Some(
            Canonical::new("totpd/secret/v2")
                .field("account_id", account_id.as_bytes())
                .field("id", id.as_bytes())
                .field("type", OTP_TYPE_TOTP.as_bytes())
                .field("algorithm", otp.algorithm.as_str().as_bytes())
                .field("digits", &[otp.digits.get()])
                .field("period", &otp.period.get().to_be_bytes())
                .finish()
                .to_vec(),
        ),
        _ => None,
    }
}

/// A stored secret that cannot be trusted: answered as an internal error
/// (never a code), logged with the id and why, never with secret material.
fn corrupt_secret(id: Uuid, why: &str) -> VaultError {
    VaultError::Internal(format!("secret {id} is corrupt: {why}"))
}

fn random_failed(_: getrandom::Error) -> VaultError {
    VaultError::Internal("the system random number generator failed".to_owned())
}

fn secret_info(row: &SecretRow) -> Result<SecretInfo, VaultError> {
    let corrupt = |what: &str| corrupt_secret(row.id, &format!("its stored {what} is invalid"));
    Ok(SecretInfo {
        id: row.id,
        label: row.label.clone(),
        issuer: row.issuer.clone(),
        algorithm: row
            .algorithm
            .parse::<Algorithm>()
            .map_err(|_| corrupt("algorithm"))?,
        digits: u8::try_from(row.digits)
            .ok()
            .and_then(|d| Digits::new(d).ok())
            .ok_or_else(|| corrupt("digits"))?,
        period: u64::try_from(row.period)
            .ok()
            .and_then(|p| Period::new(p).ok())
            .ok_or_else(|| corrupt("period"))?,
        created_at: UnixTime(row.created_at),
    })
}
