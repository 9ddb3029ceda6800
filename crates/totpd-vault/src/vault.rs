//! The vault service: every operation of the product, over a [`Store`].

use std::sync::Arc;

use subtle::ConstantTimeEq as _;
use totpd_otp::{Algorithm, Digits, Generator, Period, Secret, Totp};
use uuid::Uuid;
use zeroize::Zeroizing;

use crate::audit::{self, AuditLog, AuditStats, Outcome};
use crate::crypto::{Canonical, CryptoError, MasterKeyRing, Sealed};
use crate::error::VaultError;
pub use crate::keys::KEY_CACHE_TTL_MS;
use crate::keys::{
    self, CachedKey, HASH_CURRENT, KEY_ID_PREFIX, KeyBinding, KeyCache, KeyUses, NewApiKey,
};
use crate::model::{
    Account, AccountName, ApiKeyInfo, CodeAt, CreatedSecret, DEFAULT_HOTP_WINDOW, HotpCodeAt,
    IssuedCode, KeySpec, MAX_HOTP_COUNTER, NewSecret, OTP_TYPE_HOTP, OTP_TYPE_TOTP, SecretInfo,
    SecretKind, SecretSource, Skew, UnixTime, Verification, validate_key_name,
};
use crate::policy::{Action, Denial, Origin, Principal, Role, Scope};
mod import;
mod lifecycle;
mod rekey;
pub use import::{ImportEntry, ImportOptions, ImportOutcome, ImportReport, ImportResult};
pub use lifecycle::{SecretFilter, SecretPatch};
pub use rekey::{RekeyBatch, SealCount, SealStatus};

use crate::store::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, AuditQuery, AuditRecord, AuditRow, ListCursor,
    PoolStatus, SealCensus, SecretReseal, SecretRow, Store, StoreError,
};

/// `meta` row holding the API-key pepper, sealed by the master key. Its
/// presence marks an initialised database; opening it proves the master key.
const META_PEPPER: &str = "pepper";
/// `meta` row written by the one node that performs the first-start bootstrap.
const META_BOOTSTRAPPED: &str = "bootstrapped";
const PEPPER_AAD: &[u8] = b"totpd/v1/pepper";
/// Name of the account created on first start.
pub const DEFAULT_ACCOUNT: &str = "default";
/// What an unknown key id is hashed against, so it costs what a known one does.
const UNKNOWN_KEY: KeyBinding<'static> = KeyBinding {
    key_id: "",
    account_id: Uuid::nil(),
    role: "",
    scope: None,
    expires_at: None,
};
/// Most secret ids one key's scope may list (a scoped list reads each).
pub const MAX_SCOPE_IDS: usize = 100;
/// Bytes drawn for a vault-generated secret (RFC 4226 §4 R6: 160 bits).
pub const GENERATED_SECRET_LEN: usize = 20;

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
    key_uses: KeyUses,
    max_secrets_per_account: u64,
    audit: AuditLog,
    /// Accounts whose rows all have a fingerprint (see `import`).
    fingerprinted: std::sync::Mutex<std::collections::HashSet<Uuid>>,
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
                expected: sealed.sealed_by.clone(),
                given: master.ids().join(", "),
            },
            _ => OpenError::Corrupt,
        })?;
        let audit = AuditLog::start(Arc::clone(&store));
        Ok(Vault {
            store,
            master,
            pepper,
            key_cache: KeyCache::default(),
            key_uses: KeyUses::default(),
            max_secrets_per_account: DEFAULT_MAX_SECRETS_PER_ACCOUNT,
            audit,
            fingerprinted: std::sync::Mutex::default(),
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

    /// Checks that the database answers (for readiness probes).
    pub async fn ping(&self) -> Result<(), VaultError> {
        self.store.ping().await.map_err(VaultError::from)
    }

    /// The database connection pool's occupancy (for metrics).
    pub fn pool_status(&self) -> PoolStatus {
        self.store.pool_status()
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
        let default = AccountName::parse(DEFAULT_ACCOUNT)
            .map_err(|e| VaultError::internal_from("the default account's name", e))?;
        self.create_api_key(&default, now).await.map(Some)
    }

    /// Creates the account if needed and a new owner API key for it that
    /// sees every secret and never expires.
    pub async fn create_api_key(
        &self,
        account_name: &AccountName,
        now: UnixTime,
    ) -> Result<NewApiKey, VaultError> {
        self.create_api_key_with(account_name, KeySpec::owner(), now)
            .await
    }

    /// Creates the account if needed and a new API key for it as `spec`
    /// says (the operator's path: `totpd keys create`). A scope names
    /// secrets of that account, so an account that does not exist yet
    /// cannot be given a scoped key.
    pub async fn create_api_key_with(
        &self,
        account_name: &AccountName,
        spec: KeySpec,
        now: UnixTime,
    ) -> Result<NewApiKey, VaultError> {
        let account_name = account_name.as_str();
        let account = match self.store.account_by_name(account_name).await? {
            Some(row) => row,
            None if spec.scope != Scope::All => {
                return Err(VaultError::Invalid(format!(
                    "\"secret_ids\": the account {account_name:?} does not exist, so it has no such secret"
                )));
            }
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
        let account = Account {
            id: account.id,
            name: account.name,
            created_at: UnixTime(account.created_at),
        };
        let role = spec.role;
        let made = self.insert_key(account, spec, now).await?;
        // Made by an operator's tool, not by a key: the event names the key
        // made.
        let mut record = audit::event(Action::KeyCreate.as_str(), Outcome::Ok, None, None, now);
        record.account_id = Some(made.account.id);
        record.key_id = Some(made.key_id.clone());
        record.role = Some(role.as_str().to_owned());
        self.record_done(record).await;
        Ok(made)
    }

    /// Creates an API key in the caller's account (`POST /api/v2/keys`):
    /// owners only.
    pub async fn create_key(
        &self,
        principal: &Principal,
        spec: KeySpec,
        now: UnixTime,
    ) -> Result<NewApiKey, VaultError> {
        let made = match authorize(principal, Action::KeyCreate, None) {
            Err(denied) => Err(denied),
            Ok(()) => {
                let account = Account {
                    id: principal.account_id,
                    name: String::new(),
                    created_at: now,
                };
                self.insert_key(account, spec, now).await
            }
        };
        // The event names the key that made it (the new key's id is in the
        // answer only).
        self.record_result(Action::KeyCreate, principal, None, now, &made)
            .await;
        made
    }

    /// Validates `spec` against `account` and stores a new key under hash
    /// version 3.
    async fn insert_key(
        &self,
        account: Account,
        spec: KeySpec,
        now: UnixTime,
    ) -> Result<NewApiKey, VaultError> {
        let name = validate_key_name(&spec.name).map_err(|e| VaultError::Invalid(e.to_string()))?;
        if let Some(at) = spec.expires_at
            && at <= now
        {
            return Err(VaultError::Invalid(
                "\"expires_at\" must be in the future".to_owned(),
            ));
        }
        if let Some(ids) = spec.scope.ids() {
            if ids.is_empty() {
                return Err(VaultError::Invalid(
                    "\"secret_ids\" must list at least one secret id (omit it for every secret)"
                        .to_owned(),
                ));
            }
            if ids.len() > MAX_SCOPE_IDS {
                return Err(VaultError::Invalid(format!(
                    "\"secret_ids\" may list at most {MAX_SCOPE_IDS} secrets"
                )));
            }
            for id in ids {
                if self.store.secret(account.id, *id).await?.is_none() {
                    return Err(VaultError::Invalid(format!(
                        "\"secret_ids\": {id} is not a secret of this account"
                    )));
                }
            }
        }
        let key_id = keys::generate_key_id().map_err(random_failed)?;
        let secret = keys::generate_secret().map_err(random_failed)?;
        let binding = KeyBinding {
            key_id: &key_id,
            account_id: account.id,
            role: spec.role.as_str(),
            scope: spec.scope.ids(),
            expires_at: spec.expires_at.map(|t| t.0),
        };
        let hash = keys::hash_secret(&self.pepper, HASH_CURRENT, &binding, secret.expose())
            .ok_or_else(|| VaultError::internal("no current API-key hash".to_owned()))?;
        let row = ApiKeyRow {
            key_id: key_id.clone(),
            account_id: account.id,
            secret_hash: hash.to_vec(),
            hash_version: HASH_CURRENT,
            role: spec.role.as_str().to_owned(),
            created_at: now.0,
            revoked_at: None,
            name,
            secret_ids: spec.scope.ids().map(<[Uuid]>::to_vec),
            expires_at: spec.expires_at.map(|t| t.0),
            last_used_at: None,
        };
        self.store.insert_api_key(&row).await?;
        let info = key_info(row, account.name.clone());
        Ok(NewApiKey {
            account,
            key_id,
            secret,
            info,
        })
    }

    /// Every API key, revoked ones included.
    pub async fn list_api_keys(&self) -> Result<Vec<ApiKeyInfo>, VaultError> {
        Ok(self
            .store
            .list_api_keys()
            .await?
            .into_iter()
            .map(|(row, account_name)| key_info(row, account_name))
            .collect())
    }

    /// The API keys of the caller's account, revoked ones included
    /// (`GET /api/v2/keys`): owners only.
    pub async fn list_keys(&self, principal: &Principal) -> Result<Vec<ApiKeyInfo>, VaultError> {
        authorize(principal, Action::KeyList, None)?;
        Ok(self
            .store
            .list_api_keys()
            .await?
            .into_iter()
            .filter(|(row, _)| row.account_id == principal.account_id)
            .map(|(row, account_name)| key_info(row, account_name))
            .collect())
    }

    /// Revokes a key of the caller's account (`DELETE /api/v2/keys/{id}`):
    /// owners only. A key of another account, an unknown or an already
    /// revoked key is `NotFound`. A key cannot revoke itself (`Invalid`):
    /// one request, by mistake or by a tool walking the key list, would
    /// otherwise lock its caller out; another owner key or `totpd keys
    /// revoke` does it.
    pub async fn revoke_key(
        &self,
        principal: &Principal,
        key_id: &str,
        now: UnixTime,
    ) -> Result<(), VaultError> {
        let revoked = self.revoke_key_unrecorded(principal, key_id, now).await;
        // The event names the key that revoked (the key revoked is in the
        // request).
        self.record_result(Action::KeyRevoke, principal, None, now, &revoked)
            .await;
        revoked
    }

    async fn revoke_key_unrecorded(
        &self,
        principal: &Principal,
        key_id: &str,
        now: UnixTime,
    ) -> Result<(), VaultError> {
        authorize(principal, Action::KeyRevoke, None)?;
        if key_id == principal.key_id {
            return Err(VaultError::Invalid(
                "\"key_id\" is the key making this request, which cannot revoke itself; revoke it with another owner key or `totpd keys revoke`".to_owned(),
            ));
        }
        match self.store.api_key(key_id).await? {
            Some(row) if row.account_id == principal.account_id => {
                self.key_cache.forget(key_id);
                if self.store.revoke_api_key(key_id, now.0).await? {
                    Ok(())
                } else {
                    Err(VaultError::NotFound)
                }
            }
            _ => Err(VaultError::NotFound),
        }
    }

    /// Revokes a key; `NotFound` if there is no such active key.
    pub async fn revoke_api_key(&self, key_id: &str, now: UnixTime) -> Result<(), VaultError> {
        self.key_cache.forget(key_id);
        // The event names the key revoked, and its account; a key id that
        // names no key is operator text and is not recorded.
        let row = if keys::is_well_formed_key_id(key_id) {
            self.store.api_key(key_id).await?
        } else {
            None
        };
        let revoked = self.store.revoke_api_key(key_id, now.0).await?;
        let outcome = if revoked {
            Outcome::Ok
        } else {
            Outcome::Invalid
        };
        let mut record = audit::event(Action::KeyRevoke.as_str(), outcome, None, None, now);
        if let Some(row) = row {
            record.account_id = Some(row.account_id);
            record.key_id = Some(row.key_id);
            record.role = Some(row.role);
        }
        if revoked {
            self.record_done(record).await;
            Ok(())
        } else {
            self.audit.record(record);
            Err(VaultError::NotFound)
        }
    }

    /// Rewrites every unrevoked key row of hash version 1 as version 3,
    /// without the keys' secrets (a version-1 hash is the digest version 3
    /// covers), each with one conditional write that leaves a row changed
    /// meanwhile alone; returns how many rows were rewritten. Revoked
    /// version-1 rows are left as they are: they authenticate as nothing
    /// whatever their hash. Version-2 rows cannot be rewritten without the
    /// secret; they are upgraded on their first use. Safe to run again and
    /// while nodes serve.
    pub async fn upgrade_legacy_key_hashes(&self) -> Result<u64, VaultError> {
        let mut upgraded = 0;
        for (row, _) in self.store.list_api_keys().await? {
            if row.hash_version != keys::HASH_V1
                || row.revoked_at.is_some()
                || row.secret_ids.is_some()
                || row.expires_at.is_some()
            {
                continue;
            }
            let binding = KeyBinding {
                key_id: &row.key_id,
                account_id: row.account_id,
                role: &row.role,
                scope: None,
                expires_at: None,
            };
            let new_hash = keys::hash_v3(&self.pepper, &binding, &row.secret_hash);
            let upgrade = ApiKeyHashUpgrade {
                key_id: row.key_id.clone(),
                account_id: row.account_id,
                role: row.role.clone(),
                old_hash: row.secret_hash.clone(),
                old_version: row.hash_version,
                new_hash: new_hash.to_vec(),
                new_version: HASH_CURRENT,
            };
            if self.store.upgrade_api_key_hash(&upgrade).await? {
                self.key_cache.forget(&row.key_id);
                upgraded += 1;
            }
        }
        Ok(upgraded)
    }

    /// Writes the key uses recorded since the last flush in one batched
    /// write, so `last_used_at` costs one write every few seconds per node,
    /// not one per request. On failure the uses are kept for the next
    /// flush. Returns the rows changed.
    pub async fn flush_key_uses(&self) -> Result<u64, VaultError> {
        let uses = self.key_uses.take();
        if uses.is_empty() {
            return Ok(0);
        }
        match self.store.record_api_key_uses(&uses).await {
            Ok(changed) => Ok(changed),
            Err(error) => {
                self.key_uses.restore(uses);
                Err(error.into())
            }
        }
    }

    /// Checks an API key at time `now`. Every failure is the same
    /// `Unauthorized`, and an unknown key id costs the same hash as a known one.
    ///
    /// The stored hash covers the key id, account, role, scope and expiry
    /// (hash version 3), so a row whose account, role, scope or expiry a
    /// database writer changed authenticates as nothing. An expired key is
    /// the same `Unauthorized` as a revoked one, from the cache too. A row
    /// of hash version 1 or 2 (made before version 3 existed: no scope, no
    /// expiry) is checked the old way and, once it has authenticated,
    /// rewritten as version 3: one conditional write per key and node,
    /// never one per request; if that write fails the request still
    /// succeeds and the rewrite is retried later. The use is recorded in
    /// memory for [`Vault::flush_key_uses`].
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
            // The key id is client text (a client that swapped its headers
            // sends its secret there): it names no key, so it is not kept.
            self.record_auth_failure(None, now, &origin);
            return Err(VaultError::Unauthorized);
        };
        let presented =
            keys::hash_secret(&self.pepper, key.hash_version, &key.binding(key_id), secret);
        let matches = presented.is_some_and(|h| keys::hashes_match(&h, &key.secret_hash));
        if key.revoked || key.expired(now) || !matches {
            self.record_auth_failure(Some((key_id, &key)), now, &origin);
            return Err(VaultError::Unauthorized);
        }
        // The hash covers the role, so a name this build does not know is a
        // row from a newer version or a damaged one: it grants nothing.
        let Ok(role) = key.role.parse::<Role>() else {
            self.record_auth_failure(Some((key_id, &key)), now, &origin);
            return Err(VaultError::Unauthorized);
        };
        if key.hash_version != HASH_CURRENT && self.key_cache.begin_upgrade(key_id, now) {
            self.upgrade_key_hash(key_id, secret, &key).await;
        }
        self.key_uses.record(key_id, now);
        Ok(Principal {
            account_id: key.account_id,
            key_id: key_id.to_owned(),
            role,
            scope: match &key.secret_ids {
                None => Scope::All,
                Some(ids) => Scope::Only(Arc::clone(ids)),
            },
            origin,
        })
    }

    /// Records a failed authentication (not waited for). The key id is kept
    /// only when it is a well-formed id of a stored key.
    fn record_auth_failure(&self, key: Option<(&str, &CachedKey)>, now: UnixTime, origin: &Origin) {
        let mut record = audit::event(audit::AUTH_FAILURE, Outcome::Denied, None, None, now);
        if let Some((key_id, key)) = key
            && keys::is_well_formed_key_id(key_id)
        {
            record.account_id = Some(key.account_id);
            record.key_id = Some(key_id.to_owned());
            record.role = Some(key.role.clone());
        }
        audit::with_origin(&mut record, origin);
        self.audit.record(record);
    }

    /// Records that `principal` was refused `action` by a rate limit
    /// answered before the vault (not waited for).
    pub fn record_rate_limited(
        &self,
        principal: &Principal,
        action: Action,
        secret_id: Option<Uuid>,
        now: UnixTime,
    ) {
        self.audit.record(audit::event(
            action.as_str(),
            Outcome::RateLimited,
            Some(principal),
            secret_id,
            now,
        ));
    }

    /// Waits for the record of a completed write. The write is committed
    /// whatever happens here, so a failure is logged (loudly) rather than
    /// turned into an error that would tell the client it did not happen.
    async fn record_done(&self, record: AuditRecord) {
        let action = record.action.clone();
        if let Err(error) = self.audit.record_durably(record).await {
            tracing::error!(error = %crate::ErrorChain(&error), action, "a completed operation could not be recorded in the audit log");
        }
    }

    /// Records how an operation of `principal` ended: a success is waited
    /// for (see [`Vault::record_done`]), a failure only queued.
    async fn record_result<T>(
        &self,
        action: Action,
        principal: &Principal,
        secret_id: Option<Uuid>,
        now: UnixTime,
        result: &Result<T, VaultError>,
    ) {
        match result {
            Ok(_) => {
                let record = audit::event(
                    action.as_str(),
                    Outcome::Ok,
                    Some(principal),
                    secret_id,
                    now,
                );
                self.record_done(record).await;
            }
            Err(error) => self.audit.record(audit::event(
                action.as_str(),
                outcome_of(error),
                Some(principal),
                secret_id,
                now,
            )),
        }
    }

    /// Waits until every audit event recorded so far is written (for a
    /// graceful shutdown: events that are not waited for are otherwise
    /// written a batch later).
    pub async fn flush_audit(&self) {
        self.audit.flush().await;
    }

    /// What the audit recorder has done.
    pub fn audit_stats(&self) -> &AuditStats {
        self.audit.stats()
    }

    /// A page of the caller's account's audit log (owner and admin keys).
    pub async fn list_audit(
        &self,
        principal: &Principal,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRow>, VaultError> {
        principal
            .authorize(Action::AuditRead, None)
            .map_err(|denial| match denial {
                Denial::Forbidden => VaultError::Forbidden,
                Denial::OutOfScope => VaultError::NotFound,
            })?;
        Ok(self.store.list_audit(principal.account_id, query).await?)
    }

    /// A page of every account's audit log (for the operator's tools).
    pub async fn list_audit_all(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, VaultError> {
        Ok(self.store.list_audit_all(query).await?)
    }

    /// Deletes audit events older than `before`, a batch at a time (so no
    /// transaction grows with the backlog); returns how many.
    pub async fn prune_audit(&self, before: UnixTime) -> Result<u64, VaultError> {
        let mut total = 0;
        loop {
            let deleted = self.store.prune_audit(before.0, PRUNE_BATCH).await?;
            total += deleted;
            if deleted < u64::from(PRUNE_BATCH) {
                return Ok(total);
            }
            // Let other writes in between batches.
            tokio::task::yield_now().await;
        }
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
                tracing::warn!(key_id, error = %crate::ErrorChain(&error), "could not upgrade an API key hash; will retry");
            }
        }
    }

    /// Enrolls a secret in the caller's account, and records it.
    pub async fn create_secret(
        &self,
        principal: &Principal,
        new: NewSecret,
        now: UnixTime,
    ) -> Result<CreatedSecret, VaultError> {
        let created = self.create_secret_recorded(principal, new, now).await;
        if let Err(error) = &created {
            self.audit.record(audit::event(
                Action::SecretCreate.as_str(),
                outcome_of(error),
                Some(principal),
                None,
                now,
            ));
        }
        created
    }

    /// Creates the secret; its `secret.create` record is written in the
    /// same transaction as the row.
    async fn create_secret_recorded(
        &self,
        principal: &Principal,
        new: NewSecret,
        now: UnixTime,
    ) -> Result<CreatedSecret, VaultError> {
        authorize(principal, Action::SecretCreate, None)?;
        let secret = match &new.source {
            SecretSource::Provided(secret) => secret.clone(),
            SecretSource::Generate => {
                let mut bytes = Zeroizing::new(vec![0u8; GENERATED_SECRET_LEN]);
                getrandom::fill(&mut bytes).map_err(random_failed)?;
                Secret::from_bytes(bytes.to_vec())
                    .map_err(|e| VaultError::internal_from("a generated secret was refused", e))?
            }
        };
        let id = Uuid::new_v4();
        let row = self.sealed_row(principal.account_id, id, &new, &secret, now)?;
        let info = secret_info(&row)?;
        let record = audit::event(
            Action::SecretCreate.as_str(),
            Outcome::Ok,
            Some(principal),
            Some(id),
            now,
        );
        self.store
            .insert_secret_within_quota(&row, self.max_secrets_per_account, &record)
            .await?;
        Ok(CreatedSecret { info, secret })
    }

    /// The row of a new secret `id` of `account_id`: its parameters, and
    /// the secret sealed under the ring's sealing key with the current
    /// associated data, with its fingerprint.
    fn sealed_row(
        &self,
        account_id: Uuid,
        id: Uuid,
        new: &NewSecret,
        secret: &Secret,
        now: UnixTime,
    ) -> Result<SecretRow, VaultError> {
        if let SecretKind::Hotp { counter } = new.kind
            && counter > MAX_HOTP_COUNTER
        {
            return Err(VaultError::Invalid(format!(
                "\"counter\" must be an integer from 0 to {MAX_HOTP_COUNTER}"
            )));
        }
        let bound = OtpBinding {
            otp_type: new.kind.type_name(),
            algorithm: new.algorithm,
            digits: new.digits,
            period: new.period,
        };
        let aad = secret_aad(AAD_CURRENT, account_id, id, &bound)
            .ok_or_else(|| VaultError::internal("no current associated data".to_owned()))?;
        let sealed = self
            .master
            .seal(secret.as_bytes(), &aad)
            .map_err(|e| VaultError::internal_from("sealing failed", e))?;
        let (counter, skew) = match new.kind {
            SecretKind::Totp { skew } => (0, i64::from(skew.get())),
            SecretKind::Hotp { counter } => (
                i64::try_from(counter).unwrap_or(i64::MAX),
                i64::from(Skew::default().get()),
            ),
        };
        Ok(SecretRow {
            id,
            account_id,
            label: new.label.as_str().to_owned(),
            issuer: new.issuer.as_ref().map(|i| i.as_str().to_owned()),
            algorithm: new.algorithm.as_str().to_owned(),
            digits: i64::from(new.digits.get()),
            period: i64::from(new.period.get()),
            created_at: now.0,
            sealed_by: sealed.sealed_by,
            nonce: sealed.nonce,
            ciphertext: sealed.ciphertext,
            aad_version: AAD_CURRENT,
            otp_type: new.kind.type_name().to_owned(),
            counter,
            skew,
            hotp_window: i64::from(DEFAULT_HOTP_WINDOW),
            last_step: None,
            failed_verifies: 0,
            failed_since: None,
            fingerprint: Some(self.fingerprint(account_id, secret)),
        })
    }

    /// The keyed fingerprint of `secret`'s key bytes in `account_id`
    /// ([`SecretRow::fingerprint`]): HMAC-SHA-256 under the pepper, domain
    /// `totpd/secret-fingerprint/v1`, over the account id and the bytes. The
    /// pepper never leaves the vault and survives master-key rotation, so
    /// fingerprints stay valid across `rekey`, `migrate` and restores, and
    /// the same secret in two accounts has two unrelated fingerprints.
    fn fingerprint(&self, account_id: Uuid, secret: &Secret) -> Vec<u8> {
        let message = Canonical::new("totpd/secret-fingerprint/v1")
            .field("account_id", account_id.as_bytes())
            .field("secret", secret.as_bytes())
            .finish();
        crate::crypto::hmac_sha256(&self.pepper, &message).to_vec()
    }

    /// The caller's secrets, oldest first, without secret material. Memory
    /// grows with the account; the API reads [`Vault::list_secrets_page`].
    pub async fn list_secrets(&self, principal: &Principal) -> Result<Vec<SecretInfo>, VaultError> {
        authorize(principal, Action::SecretList, None)?;
        let rows = match principal.scope.ids() {
            None => self.store.list_secrets(principal.account_id).await?,
            Some(ids) => self.scoped_rows(principal.account_id, ids).await?,
        };
        rows.iter().map(secret_info).collect()
    }

    /// The listed secrets of the account that exist, in list order: a
    /// scoped key's list reads its few ids rather than scanning the account.
    async fn scoped_rows(
        &self,
        account_id: Uuid,
        ids: &[Uuid],
    ) -> Result<Vec<SecretRow>, VaultError> {
        let mut rows = Vec::with_capacity(ids.len());
        for id in ids {
            if let Some(row) = self.store.secret(account_id, *id).await? {
                rows.push(row);
            }
        }
        rows.sort_by_key(ListCursor::after);
        Ok(rows)
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
        authorize(principal, Action::SecretList, None)?;
        let rows = match principal.scope.ids() {
            None => {
                self.store
                    .list_secrets_page(principal.account_id, after, limit)
                    .await?
            }
            Some(ids) => {
                let limit = usize::try_from(limit).unwrap_or(usize::MAX);
                self.scoped_rows(principal.account_id, ids)
                    .await?
                    .into_iter()
                    .filter(|row| after.is_none_or(|a| ListCursor::after(row) > a))
                    .take(limit)
                    .collect()
            }
        };
        let full = u32::try_from(rows.len()).is_ok_and(|n| n >= limit);
        let next = if full {
            rows.last().map(ListCursor::after)
        } else {
            None
        };
        let infos = rows.iter().map(secret_info).collect::<Result<_, _>>()?;
        Ok((infos, next))
    }

    /// Deletes one of the caller's secrets for good, and records it.
    pub async fn delete_secret(
        &self,
        principal: &Principal,
        id: Uuid,
        now: UnixTime,
    ) -> Result<(), VaultError> {
        let deleted = match authorize(principal, Action::SecretDelete, Some(id)) {
            Err(denied) => Err(denied),
            Ok(()) => match self.store.delete_secret(principal.account_id, id).await {
                Ok(true) => Ok(()),
                Ok(false) => Err(VaultError::NotFound),
                Err(error) => Err(error.into()),
            },
        };
        self.record_result(Action::SecretDelete, principal, Some(id), now, &deleted)
            .await;
        deleted
    }

    /// The current code of one of the caller's secrets at `now`. The code
    /// is returned only once its `code.read` record is durable; if that
    /// record cannot be written the answer is `Unavailable`, and the code
    /// is dropped unseen.
    ///
    /// For an HOTP secret the code is the stored counter's, and the counter
    /// is advanced in the same statement that reads it, so no two calls on
    /// any node get the same one. A counter handed out whose record then
    /// fails is skipped for good (the look-ahead window covers it).
    pub async fn code(
        &self,
        principal: &Principal,
        id: Uuid,
        now: UnixTime,
    ) -> Result<IssuedCode, VaultError> {
        let code = self.issue_code(principal, id, now).await;
        self.record_code(principal, id, now, code).await
    }

    /// Records a `code.read` at `now` and answers `code`: a code only once
    /// its record is durable (else `Unavailable`, and the code is dropped
    /// unseen); a failure without waiting. An HOTP code's record was
    /// written with its counter (see [`Vault::issue_code`]).
    async fn record_code(
        &self,
        principal: &Principal,
        id: Uuid,
        now: UnixTime,
        code: Result<IssuedCode, VaultError>,
    ) -> Result<IssuedCode, VaultError> {
        let outcome = match &code {
            Ok(IssuedCode::Hotp(_)) => return code,
            Ok(IssuedCode::Totp(_)) => Outcome::Ok,
            Err(error) => outcome_of(error),
        };
        let record = audit::event(
            Action::CodeRead.as_str(),
            outcome,
            Some(principal),
            Some(id),
            now,
        );
        if code.is_err() {
            self.audit.record(record);
            return code;
        }
        self.audit
            .record_durably(record)
            .await
            .map_err(VaultError::Unavailable)?;
        code
    }

    /// The secret's code at `now`. An HOTP code takes the stored counter,
    /// and its `code.read` record is written in the same transaction (a
    /// counter is used up if and only if its record is durable); a TOTP
    /// code is recorded by the caller ([`Vault::record_code`]).
    async fn issue_code(
        &self,
        principal: &Principal,
        id: Uuid,
        now: UnixTime,
    ) -> Result<IssuedCode, VaultError> {
        let row = self.authorized_row(principal, Action::CodeRead, id).await?;
        let info = secret_info(&row)?;
        // Opened before the counter moves: a secret that cannot be opened
        // consumes no counter.
        let secret = self.open_secret(principal.account_id, &info, row)?;
        if let SecretKind::Hotp { .. } = info.kind {
            let record = audit::event(
                Action::CodeRead.as_str(),
                Outcome::Ok,
                Some(principal),
                Some(id),
                now,
            );
            let counter = self
                .store
                .take_hotp_counter(principal.account_id, id, &record)
                .await?
                .ok_or(VaultError::NotFound)?;
            let counter = u64::try_from(counter)
                .map_err(|_| corrupt_secret(id, "its stored counter is negative"))?;
            let generator = Generator::new(&secret, info.algorithm, info.digits);
            return Ok(IssuedCode::Hotp(HotpCodeAt {
                code: generator.code(counter),
                counter,
                digits: info.digits,
            }));
        }
        let totp = Totp {
            secret,
            algorithm: info.algorithm,
            digits: info.digits,
            period: info.period,
        };
        Ok(IssuedCode::Totp(code_at(&totp, now)))
    }

    /// Checks `code` against one of the caller's secrets (verifier, admin
    /// and owner keys), and records the outcome as `code.verify` (`ok`,
    /// `invalid` or `rate_limited`; never the code).
    ///
    /// Spaces anywhere and one trailing newline are removed first; anything
    /// that is not then exactly `digits` ASCII digits is invalid, and, like
    /// every invalid answer (a wrong code, a replay, a counter outside the
    /// window), counts as a failed attempt: a client that sends garbage is
    /// throttled like one that guesses. TOTP accepts the current step and
    /// `skew` steps either side, and only a step later than the last one
    /// accepted (one compare-and-set in the database, so a code is accepted
    /// once across every node; RFC 6238 §5.2). HOTP looks ahead
    /// `hotp_window` counters from the stored one and moves the counter past
    /// the match (compare-and-set; RFC 4226 §7.4). After
    /// [`MAX_FAILED_VERIFIES`] failures within [`VERIFY_WINDOW_MS`] of the
    /// first, every attempt is `RateLimited` until that window has passed;
    /// a success does not end it. The failure that goes over the limit is
    /// itself answered `RateLimited`, so concurrent guesses never get more
    /// than the limit of answers.
    pub async fn verify(
        &self,
        principal: &Principal,
        id: Uuid,
        code: &str,
        now: UnixTime,
    ) -> Result<Verification, VaultError> {
        let verified = self.verify_recorded(principal, id, code, now).await;
        let outcome = match &verified {
            // Written with the accepted step or counter.
            Ok(Verification::Valid) => return verified,
            Ok(Verification::Invalid) => Outcome::Invalid,
            Err(error) => outcome_of(error),
        };
        self.audit.record(audit::event(
            Action::CodeVerify.as_str(),
            outcome,
            Some(principal),
            Some(id),
            now,
        ));
        verified
    }

    /// Checks the code; an accepted one's `code.verify` record is written
    /// in the same transaction as its step or counter.
    async fn verify_recorded(
        &self,
        principal: &Principal,
        id: Uuid,
        code: &str,
        now: UnixTime,
    ) -> Result<Verification, VaultError> {
        let account = principal.account_id;
        let row = self
            .authorized_row(principal, Action::CodeVerify, id)
            .await?;
        if let Some(since) = row.failed_since
            && row.failed_verifies >= MAX_FAILED_VERIFIES
            && since > now.0 - VERIFY_WINDOW_MS
        {
            return Err(rate_limited(since, now));
        }
        let info = secret_info(&row)?;
        let (last_step, stored_counter, window) = (row.last_step, row.counter, row.hotp_window);
        let given = normalize_code(code);
        let well_formed = given.len() == usize::from(info.digits.get())
            && given.bytes().all(|b| b.is_ascii_digit());
        let record = audit::event(
            Action::CodeVerify.as_str(),
            Outcome::Ok,
            Some(principal),
            Some(id),
            now,
        );
        let accepted = if well_formed {
            let secret = self.open_secret(account, &info, row)?;
            let generator = Generator::new(&secret, info.algorithm, info.digits);
            let same = |counter: u64| -> bool {
                bool::from(
                    generator
                        .code(counter)
                        .to_string()
                        .as_bytes()
                        .ct_eq(given.as_bytes()),
                )
            };
            match info.kind {
                SecretKind::Totp { skew } => {
                    let step = now.seconds() / u64::from(info.period.get());
                    let skew = u64::from(skew.get());
                    // The latest matching step: accepting an earlier one
                    // would leave the same code acceptable at the later.
                    let matched = (step.saturating_sub(skew)..=step.saturating_add(skew))
                        .rev()
                        .find(|s| same(*s))
                        .and_then(|s| i64::try_from(s).ok());
                    match matched {
                        Some(s) if last_step.is_none_or(|last| last < s) => {
                            self.store.accept_totp_step(account, id, s, &record).await?
                        }
                        _ => false,
                    }
                }
                SecretKind::Hotp { .. } => {
                    let from = u64::try_from(stored_counter).unwrap_or(0);
                    let window = u64::try_from(window).unwrap_or(1).max(1);
                    let matched = (from..from.saturating_add(window))
                        .find(|c| same(*c))
                        .and_then(|c| i64::try_from(c).ok());
                    match matched {
                        // Refused when another request moved the counter
                        // past the match first: that code has been used.
                        Some(c) => {
                            self.store
                                .accept_hotp_counter(account, id, c, &record)
                                .await?
                        }
                        None => false,
                    }
                }
            }
        } else {
            false
        };
        if accepted {
            return Ok(Verification::Valid);
        }
        let (failures, since) = self
            .store
            .record_verify_failure(account, id, now.0, VERIFY_WINDOW_MS)
            .await?
            .ok_or(VaultError::NotFound)?;
        if failures > MAX_FAILED_VERIFIES {
            return Err(rate_limited(since, now));
        }
        Ok(Verification::Invalid)
    }

    /// One of the caller's secrets' row, once `action` on it is allowed:
    /// `NotFound` when the account holds no such secret (or it is outside
    /// the key's scope).
    pub(crate) async fn authorized_row(
        &self,
        principal: &Principal,
        action: Action,
        id: Uuid,
    ) -> Result<SecretRow, VaultError> {
        authorize(principal, action, Some(id))?;
        self.store
            .secret(principal.account_id, id)
            .await?
            .ok_or(VaultError::NotFound)
    }

    /// Opens a secret's ciphertext, checked against the associated data of
    /// the version that sealed it.
    fn open_secret(
        &self,
        account_id: Uuid,
        info: &SecretInfo,
        row: SecretRow,
    ) -> Result<Secret, VaultError> {
        let id = info.id;
        let bound = OtpBinding::of(info);
        let aad = secret_aad(row.aad_version, account_id, id, &bound).ok_or_else(|| {
            corrupt_secret(
                id,
                &format!("unknown associated-data version {}", row.aad_version),
            )
        })?;
        let sealed_by = row.sealed_by.clone();
        let plaintext = self
            .master
            .open(
                &Sealed {
                    sealed_by: row.sealed_by,
                    nonce: row.nonce,
                    ciphertext: row.ciphertext,
                },
                &aad,
            )
            .map_err(|e| match e {
                CryptoError::UnknownKey => VaultError::internal(format!(
                    "secret {id} cannot be opened: it is sealed by master key {}, which the \
                     master key setting does not hold",
                    sealed_by
                )),
                CryptoError::Open => corrupt_secret(
                    id,
                    "its ciphertext failed authentication (the ciphertext, or the account, id \
                     or OTP parameters it is bound to, were changed)",
                ),
                other => VaultError::internal_from(format!("secret {id} cannot be opened"), other),
            })?;
        Secret::from_bytes(plaintext.to_vec()).map_err(|_| corrupt_secret(id, "bad plaintext"))
    }
}

/// Failed verifications of one secret allowed within [`VERIFY_WINDOW_MS`].
pub const MAX_FAILED_VERIFIES: i64 = 10;
/// The throttling window of verifications, from its first failure: 5 minutes.
pub const VERIFY_WINDOW_MS: i64 = 5 * 60 * 1000;

/// The code as typed: spaces anywhere and one trailing newline removed.
fn normalize_code(code: &str) -> String {
    let code = code.strip_suffix('\n').unwrap_or(code);
    code.chars().filter(|c| *c != ' ').collect()
}

/// Refused until the window that began at `since` has passed.
fn rate_limited(since: i64, now: UnixTime) -> VaultError {
    let left_ms = (since + VERIFY_WINDOW_MS - now.0).max(0);
    VaultError::RateLimited {
        retry_after_secs: u64::try_from(left_ms.div_euclid(1000) + 1).unwrap_or(1),
    }
}

/// The code of `totp` at `now`, with its expiry.
fn code_at(totp: &Totp, now: UnixTime) -> CodeAt {
    let t = now.seconds();
    let expires_in = totp.expires_in(t);
    CodeAt {
        code: totp.code_at(t),
        expires_in,
        expires_at: t + u64::from(expires_in),
        period: totp.period,
        digits: totp.digits,
    }
}

/// Audit events deleted per transaction by [`Vault::prune_audit`].
const PRUNE_BATCH: u32 = 1000;

/// The audit outcome of a failed operation.
fn outcome_of(error: &VaultError) -> Outcome {
    match error {
        VaultError::Unauthorized | VaultError::Forbidden | VaultError::QuotaExceeded { .. } => {
            Outcome::Denied
        }
        VaultError::NotFound | VaultError::Invalid(_) => Outcome::Invalid,
        VaultError::RateLimited { .. } => Outcome::RateLimited,
        _ => Outcome::Error,
    }
}

/// The vault's side of [`Principal::authorize`], which every operation
/// calls before it reads or writes anything: a role that does not permit
/// the action is [`VaultError::Forbidden`] (403), a secret outside the
/// key's scope [`VaultError::NotFound`], exactly as if it did not exist.
fn authorize(
    principal: &Principal,
    action: Action,
    secret: Option<Uuid>,
) -> Result<(), VaultError> {
    principal
        .authorize(action, secret)
        .map_err(|denial| match denial {
            Denial::Forbidden => VaultError::Forbidden,
            Denial::OutOfScope => VaultError::NotFound,
        })
}

/// A key row as listed: no hash.
fn key_info(row: ApiKeyRow, account_name: String) -> ApiKeyInfo {
    ApiKeyInfo {
        key_id: row.key_id,
        account_id: row.account_id,
        account_name,
        role: row.role,
        name: row.name,
        secret_ids: row.secret_ids,
        created_at: UnixTime(row.created_at),
        expires_at: row.expires_at.map(UnixTime),
        revoked_at: row.revoked_at.map(UnixTime),
        last_used_at: row.last_used_at.map(UnixTime),
    }
}

/// Associated data of version 1: the account and secret id only. Rows
/// sealed before version 2 existed still open with it.
const AAD_V1: i64 = 1;
/// Associated data of version 2: also the OTP type and parameters.
const AAD_V2: i64 = 2;
/// The version every new secret is sealed with.
const AAD_CURRENT: i64 = AAD_V2;
/// The OTP type and parameters a ciphertext is bound to. The type is
/// bound so that changing the `otp_type` column cannot turn a TOTP secret
/// into an HOTP one (or back); rows sealed before HOTP existed are TOTP and
/// were bound with `totp`, so they still open.
pub(crate) struct OtpBinding {
    pub(crate) otp_type: &'static str,
    pub(crate) algorithm: Algorithm,
    pub(crate) digits: Digits,
    pub(crate) period: Period,
}

impl OtpBinding {
    /// The binding of a stored secret.
    pub(crate) fn of(info: &SecretInfo) -> OtpBinding {
        OtpBinding {
            otp_type: info.kind.type_name(),
            algorithm: info.algorithm,
            digits: info.digits,
            period: info.period,
        }
    }
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
                .field("type", otp.otp_type.as_bytes())
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
    VaultError::internal(format!("secret {id} is corrupt: {why}"))
}

fn random_failed(error: getrandom::Error) -> VaultError {
    VaultError::internal_from("the system random number generator failed", error)
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
        kind: match row.otp_type.as_str() {
            OTP_TYPE_TOTP => SecretKind::Totp {
                skew: u8::try_from(row.skew)
                    .ok()
                    .and_then(Skew::new)
                    .ok_or_else(|| corrupt("skew"))?,
            },
            OTP_TYPE_HOTP => SecretKind::Hotp {
                counter: u64::try_from(row.counter).map_err(|_| corrupt("counter"))?,
            },
            _ => return Err(corrupt("type")),
        },
    })
}
