//! The storage interface. Backends (SQLite, PostgreSQL) implement [`Store`];
//! everything above it is backend-agnostic. Every method that touches secrets
//! takes the account id, so a query can never reach another tenant's rows.

use std::fmt;

use async_trait::async_trait;
use uuid::Uuid;

/// A row of the `accounts` table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountRow {
    /// Account id.
    pub id: Uuid,
    /// Unique name.
    pub name: String,
    /// Unix milliseconds.
    pub created_at: i64,
}

/// A row of the `api_keys` table.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyRow {
    /// Public key id (primary key).
    pub key_id: String,
    /// Owning account.
    pub account_id: Uuid,
    /// HMAC of the secret under the pepper; never the secret.
    pub secret_hash: Vec<u8>,
    /// Which keyed hash `secret_hash` is: 1 covers the key id and secret
    /// only (rows written before hash version 2 existed), 2 also the
    /// account and role, 3 also the scope and expiry.
    pub hash_version: i64,
    /// Role of the key.
    pub role: String,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds, when revoked.
    pub revoked_at: Option<i64>,
    /// A name for people (`''` when none was given); not covered by the hash.
    pub name: String,
    /// The secrets the key sees, sorted; `None` for every secret of the
    /// account.
    pub secret_ids: Option<Vec<Uuid>>,
    /// Unix milliseconds from which the key no longer authenticates.
    pub expires_at: Option<i64>,
    /// Unix milliseconds of the last use that was recorded (uses are
    /// written in batches, so this may lag by seconds).
    pub last_used_at: Option<i64>,
}

impl fmt::Debug for ApiKeyRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyRow")
            .field("key_id", &self.key_id)
            .field("account_id", &self.account_id)
            .field("secret_hash", &"[redacted]")
            .field("hash_version", &self.hash_version)
            .field("role", &self.role)
            .field("created_at", &self.created_at)
            .field("revoked_at", &self.revoked_at)
            .field("name", &self.name)
            .field("secret_ids", &self.secret_ids)
            .field("expires_at", &self.expires_at)
            .field("last_used_at", &self.last_used_at)
            .finish()
    }
}

/// A key's stored hash rewritten under a newer hash version, applied only
/// to a row that still holds every `old` value.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKeyHashUpgrade {
    /// The key.
    pub key_id: String,
    /// The account the row names (unchanged by the upgrade).
    pub account_id: Uuid,
    /// The role the row names (unchanged by the upgrade).
    pub role: String,
    /// The hash the row holds now.
    pub old_hash: Vec<u8>,
    /// The hash version the row holds now.
    pub old_version: i64,
    /// The new hash.
    pub new_hash: Vec<u8>,
    /// The new hash version.
    pub new_version: i64,
}

impl fmt::Debug for ApiKeyHashUpgrade {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeyHashUpgrade")
            .field("key_id", &self.key_id)
            .field("account_id", &self.account_id)
            .field("role", &self.role)
            .field("old_version", &self.old_version)
            .field("new_version", &self.new_version)
            .finish_non_exhaustive()
    }
}

/// A row of the `secrets` table: metadata in clear, the secret sealed.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRow {
    /// Secret id.
    pub id: Uuid,
    /// Owning account.
    pub account_id: Uuid,
    /// Account name of the secret.
    pub label: String,
    /// Issuing service.
    pub issuer: Option<String>,
    /// `SHA1`, `SHA256` or `SHA512`.
    pub algorithm: String,
    /// Code length.
    pub digits: i64,
    /// Time step in seconds.
    pub period: i64,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Id of the master key that sealed `ciphertext`.
    pub sealed_by: String,
    /// AES-GCM nonce.
    pub nonce: Vec<u8>,
    /// AES-GCM ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// Which associated data sealed `ciphertext`: 1 binds the account and
    /// secret id (rows written before version 2 existed), 2 also the OTP
    /// type, algorithm, digits and period.
    pub aad_version: i64,
    /// `totp` or `hotp` (bound into the associated data from version 2).
    pub otp_type: String,
    /// HOTP: the counter of the next code handed out (0 for TOTP).
    pub counter: i64,
    /// TOTP: steps accepted either side of the current one, 0..=2.
    pub skew: i64,
    /// HOTP: counters a verification looks ahead from `counter`.
    pub hotp_window: i64,
    /// TOTP: the last time step accepted by a verification; it and every
    /// earlier step are refused afterwards (RFC 6238 §5.2).
    pub last_step: Option<i64>,
    /// Failed verifications counted since `failed_since`.
    pub failed_verifies: i64,
    /// Start (Unix ms) of the throttling window `failed_verifies` counts in.
    pub failed_since: Option<i64>,
    /// Keyed fingerprint of the key bytes (HMAC-SHA-256 under a key derived
    /// from the pepper, over the account id and the bytes), by which an
    /// import recognises a secret the account holds; `None` for rows
    /// written before schema 8 until the vault computes it.
    pub fingerprint: Option<Vec<u8>>,
}

impl fmt::Debug for SecretRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretRow")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("algorithm", &self.algorithm)
            .field("digits", &self.digits)
            .field("period", &self.period)
            .field("created_at", &self.created_at)
            .field("sealed_by", &self.sealed_by)
            .field("aad_version", &self.aad_version)
            .field("otp_type", &self.otp_type)
            .field("counter", &self.counter)
            .field("skew", &self.skew)
            .field("ciphertext", &"[redacted]")
            .finish_non_exhaustive()
    }
}

/// One event of the audit log, as written: who did what, with what outcome,
/// from where. Never a code, a secret or a key secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRecord {
    /// Unix milliseconds.
    pub at: i64,
    /// The account acted in; `None` for a failed authentication whose key
    /// id names no key.
    pub account_id: Option<Uuid>,
    /// What was asked (`code.read`, `secret.create`, ...).
    pub action: String,
    /// `ok`, `denied`, `invalid`, `rate_limited` or `error`.
    pub outcome: String,
    /// The API key used (for a failed authentication: only a well-formed
    /// key id that exists).
    pub key_id: Option<String>,
    /// The key's role.
    pub role: Option<String>,
    /// The secret acted on.
    pub secret_id: Option<Uuid>,
    /// The client's address.
    pub remote_addr: Option<String>,
    /// The client's `User-Agent`.
    pub user_agent: Option<String>,
    /// The request id the client was answered with.
    pub request_id: Option<String>,
}

/// A stored audit event: its id (increasing in the order events were
/// written, per database) and the record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditRow {
    /// Row id.
    pub id: i64,
    /// The event.
    pub record: AuditRecord,
}

/// Which page of audit events a query reads.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditPage {
    /// The newest events, newest first.
    #[default]
    Newest,
    /// Events with ids below this one, newest first (the next page).
    Before(i64),
    /// Events with ids above this one, oldest first (to follow the log).
    After(i64),
}

/// A filtered page of the audit log. Every filter that is set must match.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuditQuery {
    /// Only this action.
    pub action: Option<String>,
    /// Only events on this secret.
    pub secret_id: Option<Uuid>,
    /// Only events of this key.
    pub key_id: Option<String>,
    /// Only events at or after this time (Unix milliseconds).
    pub since: Option<i64>,
    /// Only events before this time (Unix milliseconds, exclusive).
    pub until: Option<i64>,
    /// Where the page starts.
    pub page: AuditPage,
    /// Most events returned.
    pub limit: u32,
}

/// A secret's ciphertext sealed again (by `totpd rekey`), applied only to a
/// row that still holds every `old_` value and the OTP parameters the new
/// ciphertext is bound to: a row deleted or rewritten since it was read is
/// left alone.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretReseal {
    /// Secret id.
    pub id: Uuid,
    /// Owning account.
    pub account_id: Uuid,
    /// `algorithm` the row holds (and the new ciphertext is bound to).
    pub algorithm: String,
    /// `digits` the row holds.
    pub digits: i64,
    /// `period` the row holds.
    pub period: i64,
    /// Sealing key id the row holds now.
    pub old_sealed_by: String,
    /// Nonce the row holds now.
    pub old_nonce: Vec<u8>,
    /// Ciphertext the row holds now.
    pub old_ciphertext: Vec<u8>,
    /// Associated-data version the row holds now.
    pub old_aad_version: i64,
    /// Id of the key that sealed the new ciphertext.
    pub sealed_by: String,
    /// The new nonce.
    pub nonce: Vec<u8>,
    /// The new ciphertext and tag.
    pub ciphertext: Vec<u8>,
    /// Associated-data version of the new ciphertext.
    pub aad_version: i64,
}

impl fmt::Debug for SecretReseal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretReseal")
            .field("id", &self.id)
            .field("account_id", &self.account_id)
            .field("old_sealed_by", &self.old_sealed_by)
            .field("old_aad_version", &self.old_aad_version)
            .field("sealed_by", &self.sealed_by)
            .field("aad_version", &self.aad_version)
            .finish_non_exhaustive()
    }
}

/// A change to a secret's descriptive fields (`PATCH`): each field that is
/// `None` is left as it is. Only fields outside the ciphertext's associated
/// data belong here (the label and issuer are not bound; the key material
/// and the OTP parameters are, and never change), so applying it never
/// re-seals the secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SecretUpdate {
    /// The new label.
    pub label: Option<String>,
    /// The new issuer: `Some(None)` clears it.
    pub issuer: Option<Option<String>>,
    /// The new TOTP skew (0..=2; the schema refuses any other value).
    pub skew: Option<i64>,
}

impl SecretUpdate {
    /// Whether the update changes nothing.
    pub fn is_empty(&self) -> bool {
        self.label.is_none() && self.issuer.is_none() && self.skew.is_none()
    }
}

/// How the rows of a database are sealed and hashed, counted (for `totpd
/// rekey --status`). Counts only: no row content.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SealCensus {
    /// Secrets per (sealing key id, associated-data version), ordered by both.
    pub secrets: Vec<(String, i64, u64)>,
    /// API keys per hash version, ordered by version.
    pub api_keys: Vec<(i64, u64)>,
}

/// The underlying error a [`StoreError`] (or a
/// [`VaultError`](crate::VaultError)) was caused by: a driver's error, an
/// I/O error, a parse error. Boxed, so this crate names no driver.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Storage failures, classified by what the caller should do about them.
///
/// Each carries a context message (what failed, from this side) and, where
/// one exists, the underlying error as its [`source`](std::error::Error::source),
/// so a log line can show the whole chain ([`ErrorChain`](crate::ErrorChain)).
/// Neither may hold bound values (ciphertext, key hashes).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// The database cannot be reached or timed out; retrying later may work.
    #[error("database unavailable: {context}")]
    Unavailable {
        /// What could not be done.
        context: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// A uniqueness constraint was violated.
    #[error("conflict: {context}")]
    Conflict {
        /// What could not be done.
        context: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Stored data does not have the expected shape.
    #[error("corrupt row: {context}")]
    Corrupt {
        /// What could not be read.
        context: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// Any other database error.
    #[error("database error: {context}")]
    Other {
        /// What could not be done.
        context: String,
        /// The underlying error, if any.
        #[source]
        source: Option<BoxError>,
    },
    /// The account already holds the most secrets allowed; nothing was stored.
    #[error("the account already holds {limit} secrets, the most allowed")]
    QuotaExceeded {
        /// The quota that was reached.
        limit: u64,
    },
}

impl StoreError {
    /// [`StoreError::Unavailable`] caused by `source`.
    pub fn unavailable(context: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// [`StoreError::Unavailable`] with no underlying error.
    pub fn unavailable_msg(context: impl Into<String>) -> StoreError {
        StoreError::Unavailable {
            context: context.into(),
            source: None,
        }
    }

    /// [`StoreError::Conflict`] caused by `source`.
    pub fn conflict(context: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Conflict {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// [`StoreError::Conflict`] with no underlying error.
    pub fn conflict_msg(context: impl Into<String>) -> StoreError {
        StoreError::Conflict {
            context: context.into(),
            source: None,
        }
    }

    /// [`StoreError::Corrupt`] caused by `source`.
    pub fn corrupt(context: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Corrupt {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// [`StoreError::Corrupt`] with no underlying error.
    pub fn corrupt_msg(context: impl Into<String>) -> StoreError {
        StoreError::Corrupt {
            context: context.into(),
            source: None,
        }
    }

    /// [`StoreError::Other`] caused by `source`.
    pub fn other(context: impl Into<String>, source: impl Into<BoxError>) -> StoreError {
        StoreError::Other {
            context: context.into(),
            source: Some(source.into()),
        }
    }

    /// [`StoreError::Other`] with no underlying error.
    pub fn other_msg(context: impl Into<String>) -> StoreError {
        StoreError::Other {
            context: context.into(),
            source: None,
        }
    }

    /// The context message, without the class prefix or the source (`None`
    /// for [`StoreError::QuotaExceeded`]).
    pub fn context(&self) -> Option<&str> {
        match self {
            StoreError::Unavailable { context, .. }
            | StoreError::Conflict { context, .. }
            | StoreError::Corrupt { context, .. }
            | StoreError::Other { context, .. } => Some(context),
            StoreError::QuotaExceeded { .. } => None,
        }
    }
}

/// A position in an account's list of secrets, which is ordered by
/// `created_at`, then by `id` (compared bytewise, as both databases do).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ListCursor {
    /// `created_at` of the last secret already listed.
    pub created_at: i64,
    /// `id` of the last secret already listed.
    pub id: Uuid,
}

impl ListCursor {
    /// The position just after `row`.
    pub fn after(row: &SecretRow) -> ListCursor {
        ListCursor {
            created_at: row.created_at,
            id: row.id,
        }
    }
}

/// Rows per page when [`Store::list_secrets`] reads a whole account.
pub const LIST_PAGE: u32 = 500;

/// Connection pool occupancy, for metrics.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PoolStatus {
    /// Open connections.
    pub size: u32,
    /// Open connections not in use.
    pub idle: u32,
    /// Configured maximum.
    pub max: u32,
}

/// What [`Store::copy_from`] copied.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CopyReport {
    /// `meta` rows.
    pub meta: u64,
    /// Accounts.
    pub accounts: u64,
    /// API keys.
    pub api_keys: u64,
    /// Secrets.
    pub secrets: u64,
    /// Audit events.
    pub audit_events: u64,
}

/// A consistent, read-only view of a whole database, as one committed state:
/// every read of one snapshot sees the same rows in every table, whatever is
/// written meanwhile (SQLite: one read transaction on one connection;
/// PostgreSQL: one `REPEATABLE READ READ ONLY` transaction). Reading it twice
/// gives the same rows. Dropping it ends the transaction.
///
/// While a snapshot is open it holds one connection, and a SQLite WAL cannot
/// be checkpointed past it: keep it for the length of one copy or backup.
#[async_trait]
pub trait Snapshot: Send + fmt::Debug {
    /// Every `meta` row, by name.
    async fn meta(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Every account, by id.
    async fn accounts(&mut self) -> Result<Vec<AccountRow>, StoreError>;
    /// Every API key, by key id.
    async fn api_keys(&mut self) -> Result<Vec<ApiKeyRow>, StoreError>;
    /// Up to `limit` secrets of every account with ids above `after`, by id.
    async fn secrets(
        &mut self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError>;
    /// Up to `limit` audit events with ids above `after`, by id.
    async fn audit_events(
        &mut self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError>;
}

/// Persistent state of the vault. Implementations must make every write that
/// returns `Ok` durable before returning.
#[async_trait]
pub trait Store: Send + Sync + fmt::Debug {
    /// Checks that the database answers.
    async fn ping(&self) -> Result<(), StoreError>;
    /// The connection pool's occupancy.
    fn pool_status(&self) -> PoolStatus;

    /// Reads a value of the `meta` table.
    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError>;
    /// Inserts a `meta` value unless the name exists; returns whether it was inserted.
    async fn insert_meta(&self, name: &str, value: &[u8]) -> Result<bool, StoreError>;

    /// Finds an account by name.
    async fn account_by_name(&self, name: &str) -> Result<Option<AccountRow>, StoreError>;
    /// Inserts an account; if the name exists, returns the existing row instead.
    async fn insert_account(&self, row: &AccountRow) -> Result<AccountRow, StoreError>;
    /// Number of accounts.
    async fn count_accounts(&self) -> Result<u64, StoreError>;

    /// Inserts an API key.
    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError>;
    /// Finds an API key by id (revoked keys included).
    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError>;
    /// All API keys with their account names, oldest first.
    async fn list_api_keys(&self) -> Result<Vec<(ApiKeyRow, String)>, StoreError>;
    /// Marks a key revoked; returns false if no such unrevoked key exists.
    async fn revoke_api_key(&self, key_id: &str, revoked_at: i64) -> Result<bool, StoreError>;
    /// Replaces an unrevoked key's hash and hash version, but only while its
    /// row still holds exactly the old hash, hash version, account and role
    /// of `upgrade`, and no scope and no expiry (as every row of an older
    /// version does); a row changed since it was read is left alone.
    /// Returns whether the row was changed.
    async fn upgrade_api_key_hash(&self, upgrade: &ApiKeyHashUpgrade) -> Result<bool, StoreError>;
    /// Records when keys were last used, `(key_id, unix_ms)` each, in one
    /// write (one transaction): a key's `last_used_at` only ever moves
    /// forward, and unknown key ids are skipped. Returns the rows changed.
    async fn record_api_key_uses(&self, uses: &[(String, i64)]) -> Result<u64, StoreError>;

    /// Inserts a secret (no quota: for copies and tools).
    async fn insert_secret(&self, row: &SecretRow) -> Result<(), StoreError>;
    /// Inserts a secret and its audit `record` in one transaction, unless
    /// its account already holds `max` secrets, in which case nothing is
    /// stored and the answer is [`StoreError::QuotaExceeded`]. The check and
    /// the insert are one atomic step: concurrent inserts into one account,
    /// from any number of nodes, never take it past `max`.
    async fn insert_secret_within_quota(
        &self,
        row: &SecretRow,
        max: u64,
        record: &AuditRecord,
    ) -> Result<(), StoreError>;
    /// For each of `fingerprints` (see [`SecretRow::fingerprint`]), the id of
    /// a secret of the account that has it, if any; one read.
    async fn secrets_by_fingerprint(
        &self,
        account_id: Uuid,
        fingerprints: &[Vec<u8>],
    ) -> Result<Vec<Option<Uuid>>, StoreError>;
    /// Imports secrets into one account in one transaction, each with its
    /// audit record: a row whose fingerprint the account already holds is
    /// not stored, and the answer holds, at its index, the id of the secret
    /// that has it (`None` for each row stored). Rows must all belong to
    /// `account_id` and carry distinct fingerprints. If the new rows would
    /// take the account past `max` secrets, nothing is stored and the
    /// answer is [`StoreError::QuotaExceeded`]. The duplicate check, the
    /// quota check and the inserts are one atomic step on every node.
    async fn import_secrets(
        &self,
        account_id: Uuid,
        rows: &[(SecretRow, AuditRecord)],
        max: u64,
    ) -> Result<Vec<Option<Uuid>>, StoreError>;
    /// Sets the fingerprint of each listed secret of the account that has
    /// none yet, in one transaction; returns the rows changed.
    async fn set_fingerprints(
        &self,
        account_id: Uuid,
        fingerprints: &[(Uuid, Vec<u8>)],
    ) -> Result<u64, StoreError>;
    /// Finds one of the account's secrets.
    async fn secret(&self, account_id: Uuid, id: Uuid) -> Result<Option<SecretRow>, StoreError>;
    /// Up to `limit` of the account's secrets that come after `after` (from
    /// the first with `None`), ordered by `created_at`, then `id`. Each page
    /// is one short read: a list read page by page is not one snapshot, but
    /// it never shows a secret twice and never skips one that existed from
    /// its start to its end.
    async fn list_secrets_page(
        &self,
        account_id: Uuid,
        after: Option<ListCursor>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError>;
    /// All of the account's secrets, oldest first, read page by page. Memory
    /// grows with the account: for tools and tests; the API streams pages.
    async fn list_secrets(&self, account_id: Uuid) -> Result<Vec<SecretRow>, StoreError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self.list_secrets_page(account_id, after, LIST_PAGE).await?;
            let full = u32::try_from(page.len()).is_ok_and(|n| n == LIST_PAGE);
            after = page.last().map(ListCursor::after);
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }
    /// Applies `update` to one of the account's secrets in one atomic
    /// statement and returns the row as it is afterwards, or `None` if the
    /// account holds no such secret. Concurrent updates of different fields
    /// never undo each other.
    async fn update_secret(
        &self,
        account_id: Uuid,
        id: Uuid,
        update: &SecretUpdate,
    ) -> Result<Option<SecretRow>, StoreError>;
    /// Deletes one of the account's secrets for good; returns whether it existed.
    async fn delete_secret(&self, account_id: Uuid, id: Uuid) -> Result<bool, StoreError>;

    /// HOTP: hands out the stored counter and advances it by one in the same
    /// atomic statement, so no two callers on any node get the same counter.
    /// `None` when the account holds no such HOTP secret (or its counter
    /// cannot advance any further).
    ///
    /// `record` (its `code.read`) is written in the same transaction, only
    /// when a counter is handed out: a counter is consumed if and only if
    /// its record is durable.
    async fn take_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        record: &AuditRecord,
    ) -> Result<Option<i64>, StoreError>;
    /// TOTP: records `step` as accepted only if no step at or after it was
    /// accepted before (one compare-and-set); `true` if this call won.
    /// `record` is written in the same transaction, only when it won.
    async fn accept_totp_step(
        &self,
        account_id: Uuid,
        id: Uuid,
        step: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// HOTP: moves the counter to `matched + 1` only while it is still at
    /// or below `matched` (one compare-and-set); `true` if this call won.
    /// `record` is written in the same transaction, only when it won.
    async fn accept_hotp_counter(
        &self,
        account_id: Uuid,
        id: Uuid,
        matched: i64,
        record: &AuditRecord,
    ) -> Result<bool, StoreError>;
    /// Counts one failed verification at `now` (Unix ms): a window older
    /// than `window_ms` (or none) starts again at `now` with one failure.
    /// Returns the count and the window's start after this failure, or
    /// `None` when the secret does not exist.
    async fn record_verify_failure(
        &self,
        account_id: Uuid,
        id: Uuid,
        now: i64,
        window_ms: i64,
    ) -> Result<Option<(i64, i64)>, StoreError>;

    /// Appends audit events, in order, in one transaction (one commit for
    /// all of them): when this returns `Ok` every one is durable; on an
    /// error none is stored.
    async fn append_audit(&self, records: &[AuditRecord]) -> Result<(), StoreError>;
    /// A page of the account's audit events (see [`AuditQuery`]).
    async fn list_audit(
        &self,
        account_id: Uuid,
        query: &AuditQuery,
    ) -> Result<Vec<AuditRow>, StoreError>;
    /// A page of every account's audit events, events without an account
    /// included (for the operator's tools).
    async fn list_audit_all(&self, query: &AuditQuery) -> Result<Vec<AuditRow>, StoreError>;
    /// Deletes up to `limit` audit events older than `before` (Unix
    /// milliseconds), oldest first; returns how many it deleted. Cheap
    /// when there are none.
    async fn prune_audit(&self, before: i64, limit: u32) -> Result<u64, StoreError>;
    /// Applies each re-seal whose row still holds its `old_` values (see
    /// [`SecretReseal`]), each by one conditional `UPDATE`, all in one
    /// transaction; returns how many rows changed.
    async fn reseal_secrets(&self, reseals: &[SecretReseal]) -> Result<u64, StoreError>;
    /// Replaces a `meta` value, only while it still holds `old`; returns
    /// whether it changed.
    async fn replace_meta(&self, name: &str, old: &[u8], new: &[u8]) -> Result<bool, StoreError>;
    /// Counts secrets per sealing key and associated-data version, and API
    /// keys per hash version, across every account.
    async fn seal_census(&self) -> Result<SealCensus, StoreError>;

    /// Whether the database holds no data at all (schema aside).
    async fn is_empty(&self) -> Result<bool, StoreError>;
    /// Opens a [`Snapshot`]: one consistent, read-only view of every table,
    /// taken now. Writes committed afterwards (by this process or any other)
    /// are invisible to it, however long it is read.
    async fn snapshot(&self) -> Result<Box<dyn Snapshot>, StoreError>;
    /// Copies every row of `source` into this store, which must be empty, in
    /// one transaction, and before committing reads every row back inside
    /// that transaction and compares it with `source` read a second time. On
    /// any failure, a mismatch included, nothing is left behind.
    async fn copy_from(&self, source: &mut dyn Snapshot) -> Result<CopyReport, StoreError>;
}
