//! The vault service: every operation of the product, over a [`Store`].

use std::sync::Arc;

use totpd_otp::{Algorithm, Digits, Period, Secret, Totp};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::crypto::{CryptoError, MasterKey, Sealed};
use crate::error::VaultError;
pub use crate::keys::KEY_CACHE_TTL_MS;
use crate::keys::{self, KEY_ID_PREFIX, KeyCache, NewApiKey};
use crate::model::{
    Account, ApiKeyInfo, CodeAt, CreatedSecret, NewSecret, Principal, SecretInfo, SecretSource,
    UnixTime, validate_account_name,
};
use crate::store::{AccountRow, ApiKeyRow, ListCursor, SecretRow, Store, StoreError};

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
    /// The database was initialised with a different master key.
    #[error(
        "the master key does not open this database (it was sealed by key {expected}, the key given is {given}); supply the master key this database was created with"
    )]
    WrongMasterKey {
        /// Id of the key that sealed the database.
        expected: String,
        /// Id of the key supplied.
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
    master: MasterKey,
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

    /// Opens the vault, initialising an empty database with this master key
    /// or proving that the key is the one the database was created with.
    pub async fn open(store: Arc<dyn Store>, master: MasterKey) -> Result<Vault, OpenError> {
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
                given: master.id().to_owned(),
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

    /// Public id of the master key in use (safe to log).
    pub fn master_key_id(&self) -> &str {
        self.master.id()
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
        let hash = keys::hash_secret(&self.pepper, &key_id, secret.expose());
        self.store
            .insert_api_key(&ApiKeyRow {
                key_id: key_id.clone(),
                account_id: account.id,
                secret_hash: hash.to_vec(),
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
    /// Key rows are cached for at most [`KEY_CACHE_TTL_MS`], so a revocation
    /// made anywhere (another node, the CLI) takes effect within a second
    /// while the hot path mostly skips the database.
    pub async fn authenticate(
        &self,
        key_id: &str,
        secret: &str,
        now: UnixTime,
    ) -> Result<Principal, VaultError> {
        let presented = keys::hash_secret(&self.pepper, key_id, secret);
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
        match key {
            Some(key) if !key.revoked && keys::hashes_match(&presented, &key.secret_hash) => {
                Ok(Principal {
                    account_id: key.account_id,
                    key_id: key_id.to_owned(),
                })
            }
            _ => Err(VaultError::Unauthorized),
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
        let sealed = self
            .master
            .seal(secret.as_bytes(), &secret_aad(principal.account_id, id))
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
        let plaintext = self
            .master
            .open(
                &Sealed {
                    key_id: row.key_id,
                    nonce: row.nonce,
                    ciphertext: row.ciphertext,
                },
                &secret_aad(principal.account_id, id),
            )
            .map_err(|e| VaultError::Internal(format!("secret {id}: {e}")))?;
        let secret = Secret::from_bytes(plaintext.to_vec())
            .map_err(|e| VaultError::Internal(format!("secret {id}: {e}")))?;
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

/// Associated data binding a ciphertext to its account and secret id, so a
/// row moved to another account or id no longer decrypts.
fn secret_aad(account_id: Uuid, id: Uuid) -> Vec<u8> {
    format!("totpd/v1/secret/{account_id}/{id}").into_bytes()
}

fn random_failed(_: getrandom::Error) -> VaultError {
    VaultError::Internal("the system random number generator failed".to_owned())
}

fn secret_info(row: &SecretRow) -> Result<SecretInfo, VaultError> {
    let corrupt =
        |what: &str| VaultError::Internal(format!("secret {}: stored {what} is invalid", row.id));
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
