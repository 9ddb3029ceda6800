//! The vault's domain: accounts, API keys, envelope encryption of TOTP
//! secrets, and the [`Store`] trait that the storage backends implement.
//!
//! This crate never speaks HTTP and never writes SQL: it sees storage only
//! through [`Store`]. Its operations never read the clock: every one that
//! depends on time takes the current time as a parameter, read by the front
//! end from a [`Clock`] ([`clock`] is the one module that reads the clocks).

mod audit;
pub mod clock;
mod crypto;
pub mod deadline;
mod error;
mod keys;
mod model;
pub mod policy;
mod store;
mod vault;

pub use audit::{AuditStats, Outcome};
pub use clock::{Clock, ManualClock, SystemClock};
pub use crypto::{CryptoError, MasterKey, MasterKeyError, MasterKeyRing, RingError, Sealed};
pub use error::{ErrorChain, VaultError};
pub use keys::{ApiKeySecret, NewApiKey};
pub use model::{
    Account, AccountName, AccountNameError, ApiKeyInfo, CodeAt, CreatedSecret, DEFAULT_HOTP_WINDOW,
    HotpCodeAt, IssuedCode, Issuer, KeySpec, Label, LabelError, MAX_ACCOUNT_NAME_CHARS,
    MAX_HOTP_COUNTER, MAX_KEY_NAME_CHARS, MAX_TEXT_CHARS, NewSecret, OTP_TYPE_HOTP, OTP_TYPE_TOTP,
    SecretInfo, SecretKind, SecretSource, Skew, UnixTime, Verification, validate_key_name,
};
pub use policy::{Action, Denial, Origin, Principal, Role, Scope};
pub use store::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, AuditPage, AuditQuery, AuditRecord, AuditRow,
    BoxError, CopyReport, LIST_PAGE, ListCursor, PoolStatus, SealCensus, SecretReseal, SecretRow,
    SecretUpdate, Snapshot, Store, StoreError,
};
pub use vault::{
    DEFAULT_MAX_SECRETS_PER_ACCOUNT, GENERATED_SECRET_LEN, ImportEntry, ImportOptions,
    ImportOutcome, ImportReport, ImportResult, KEY_CACHE_TTL_MS, MAX_FAILED_VERIFIES,
    MAX_SCOPE_IDS, OpenError, RekeyBatch, SealCount, SealStatus, SecretFilter, SecretPatch,
    VERIFY_WINDOW_MS, Vault,
};
