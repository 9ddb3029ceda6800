//! API keys: a public key id and a 256-bit secret shown once.
//!
//! Only a keyed hash of the secret is stored. The secret has 256 bits of
//! entropy, so a fast keyed hash (HMAC-SHA-256 under a random pepper sealed by
//! the master key) is the right tool: a slow password hash would add nothing
//! against guessing and would cap authentication throughput.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::crypto::{Canonical, hex, hmac_sha256};

/// Length of the random part of a key id, in bytes.
const KEY_ID_RANDOM_LEN: usize = 12;
/// Length of an API key secret, in bytes (256 bits).
const SECRET_LEN: usize = 32;
/// Prefix of every key id, so a key id is recognisable in configuration.
pub(crate) const KEY_ID_PREFIX: &str = "tk_";

/// The secret half of an API key. `Debug` never shows it; zeroized on drop.
#[derive(Clone)]
pub struct ApiKeySecret(Zeroizing<String>);

impl fmt::Debug for ApiKeySecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKeySecret([redacted])")
    }
}

impl ApiKeySecret {
    /// Wraps a secret received from a client.
    pub fn new(secret: impl Into<String>) -> ApiKeySecret {
        ApiKeySecret(Zeroizing::new(secret.into()))
    }

    /// The secret text, to show once to the person who created the key.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// A newly created API key: the only moment its secret exists in clear.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    /// Account the key belongs to.
    pub account: crate::Account,
    /// Public key id.
    pub key_id: String,
    /// The secret, shown once.
    pub secret: ApiKeySecret,
    /// The key as it is listed from now on.
    pub info: crate::ApiKeyInfo,
}

/// Whether `key_id` has the shape of a key id this vault makes: the
/// prefix and 24 lowercase hex digits. Anything else is never recorded
/// (it may be a secret pasted into the wrong header).
pub(crate) fn is_well_formed_key_id(key_id: &str) -> bool {
    key_id.strip_prefix(KEY_ID_PREFIX).is_some_and(|hex| {
        hex.len() == 2 * KEY_ID_RANDOM_LEN
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

pub(crate) fn generate_key_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; KEY_ID_RANDOM_LEN];
    getrandom::fill(&mut bytes)?;
    Ok(format!("{KEY_ID_PREFIX}{}", hex(&bytes)))
}

pub(crate) fn generate_secret() -> Result<ApiKeySecret, getrandom::Error> {
    let mut bytes = Zeroizing::new([0u8; SECRET_LEN]);
    getrandom::fill(bytes.as_mut())?;
    Ok(ApiKeySecret(Zeroizing::new(
        URL_SAFE_NO_PAD.encode(bytes.as_ref()),
    )))
}

/// The first stored hash: HMAC over the key id and the secret only, so the
/// row's account and role were not covered. Rows of this version still
/// authenticate and are rewritten as [`HASH_CURRENT`] on their first
/// successful use, or by [`crate::Vault::upgrade_legacy_key_hashes`]
/// without the secret.
pub(crate) const HASH_V1: i64 = 1;
/// The hash covers key id, account and role, but neither scope nor expiry:
/// rows of this version predate both (they see every secret and never
/// expire) and are rewritten as [`HASH_CURRENT`] on their first use.
pub(crate) const HASH_V2: i64 = 2;
/// The hash covers every field authorisation rests on: key id, account,
/// role, scope and expiry (see [`KeyBinding`]).
pub(crate) const HASH_V3: i64 = 3;
/// The version every new or upgraded key is stored with.
pub(crate) const HASH_CURRENT: i64 = HASH_V3;

/// What an API key's authority rests on, as stored beside its hash. The
/// keyed hash covers all of it, so a database writer who changes any field
/// of the row makes the key authenticate as nothing.
///
/// Version 3 is HMAC-SHA-256 under the pepper of a [`Canonical`] encoding:
/// domain `totpd/api-key/v3`, then the fields `key_id`, `account_id` (16
/// bytes), `role`, `scope` (byte 0 for every secret; byte 1 then each id's
/// 16 bytes, sorted, for a list, so "every secret" and "none listed"
/// differ), `expires_at` (byte 0 for never; byte 1 then the Unix
/// milliseconds as 8 bytes big endian) and `secret_digest`, the version-1
/// hash HMAC(pepper, key_id ‖ 0 ‖ secret). Because a version-1 row stores
/// exactly that digest, it can be rewritten as version 3 without the
/// key's secret. Version 2 is domain `totpd/api-key/v2` with `key_id`,
/// `account_id`, `role` and `secret`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct KeyBinding<'a> {
    pub key_id: &'a str,
    pub account_id: uuid::Uuid,
    pub role: &'a str,
    /// `None` for every secret of the account.
    pub scope: Option<&'a [uuid::Uuid]>,
    pub expires_at: Option<i64>,
}

/// The hash of `secret` bound to `binding` under hash `version`; `None`
/// for a version this build does not know, and for a version-1 or -2 row
/// that claims a scope or an expiry (those versions could not carry one,
/// so the row was changed): such a row authenticates as nothing.
pub(crate) fn hash_secret(
    pepper: &[u8],
    version: i64,
    binding: &KeyBinding<'_>,
    secret: &str,
) -> Option<[u8; 32]> {
    let unscoped = binding.scope.is_none() && binding.expires_at.is_none();
    match version {
        HASH_V1 if unscoped => Some(hash_v1(pepper, binding.key_id, secret)),
        HASH_V2 if unscoped => {
            let message = Canonical::new("totpd/api-key/v2")
                .field("key_id", binding.key_id.as_bytes())
                .field("account_id", binding.account_id.as_bytes())
                .field("role", binding.role.as_bytes())
                .field("secret", secret.as_bytes())
                .finish();
            Some(hmac_sha256(pepper, &message))
        }
        HASH_V3 => Some(hash_v3(
            pepper,
            binding,
            &hash_v1(pepper, binding.key_id, secret),
        )),
        _ => None,
    }
}

/// Hash version 3 of `binding` from the key's version-1 digest (see
/// [`KeyBinding`]): what a version-1 row is rewritten to without the secret.
pub(crate) fn hash_v3(pepper: &[u8], binding: &KeyBinding<'_>, digest: &[u8]) -> [u8; 32] {
    let mut scope = Vec::new();
    match binding.scope {
        None => scope.push(0),
        Some(ids) => {
            scope.reserve(1 + 16 * ids.len());
            scope.push(1);
            for id in ids {
                scope.extend_from_slice(id.as_bytes());
            }
        }
    }
    let mut expires_at = Vec::with_capacity(9);
    match binding.expires_at {
        None => expires_at.push(0),
        Some(ms) => {
            expires_at.push(1);
            expires_at.extend_from_slice(&ms.to_be_bytes());
        }
    }
    let message = Canonical::new("totpd/api-key/v3")
        .field("key_id", binding.key_id.as_bytes())
        .field("account_id", binding.account_id.as_bytes())
        .field("role", binding.role.as_bytes())
        .field("scope", &scope)
        .field("expires_at", &expires_at)
        .field("secret_digest", digest)
        .finish();
    hmac_sha256(pepper, &message)
}

/// Hash version 1: `key_id NUL secret`, binding the hash to its key id only.
fn hash_v1(pepper: &[u8], key_id: &str, secret: &str) -> [u8; 32] {
    let mut message = Zeroizing::new(Vec::with_capacity(key_id.len() + 1 + secret.len()));
    message.extend_from_slice(key_id.as_bytes());
    message.push(0);
    message.extend_from_slice(secret.as_bytes());
    hmac_sha256(pepper, &message)
}

/// How long a cached API-key row may be used before it is read again. Well
/// under a second, so a revocation anywhere is honoured everywhere within one.
pub const KEY_CACHE_TTL_MS: i64 = 500;
/// Most key rows kept; past this the cache starts over (a burst of distinct
/// keys costs database reads, never unbounded memory).
const KEY_CACHE_MAX: usize = 10_000;

/// How long after a failed hash upgrade a node tries again.
pub(crate) const UPGRADE_RETRY_MS: i64 = 10_000;

/// The part of an API-key row that authentication needs.
#[derive(Clone)]
pub(crate) struct CachedKey {
    pub account_id: uuid::Uuid,
    pub role: String,
    pub secret_hash: Vec<u8>,
    pub hash_version: i64,
    pub revoked: bool,
    /// The row's scope, as stored (`None`: every secret).
    pub secret_ids: Option<std::sync::Arc<[uuid::Uuid]>>,
    /// Unix milliseconds from which the key is refused, checked against
    /// the request's time on every use, cached or not.
    pub expires_at: Option<i64>,
    fetched_at: i64,
}

impl CachedKey {
    /// The fields the hash covers, as this row states them.
    pub(crate) fn binding<'a>(&'a self, key_id: &'a str) -> KeyBinding<'a> {
        KeyBinding {
            key_id,
            account_id: self.account_id,
            role: &self.role,
            scope: self.secret_ids.as_deref(),
            expires_at: self.expires_at,
        }
    }

    /// Whether the key has expired at `now` (the same refusal as revoked).
    pub(crate) fn expired(&self, now: crate::UnixTime) -> bool {
        self.expires_at.is_some_and(|at| now.0 >= at)
    }
}

/// Where the rewrite of one key's old-version hash stands on this node.
#[derive(Clone, Copy)]
enum Upgrade {
    /// Under way, or failed at this time (retried after [`UPGRADE_RETRY_MS`]).
    TriedAt(i64),
    /// Written (or found written by another node): never tried again.
    Done,
}

/// Recently read API-key rows, by key id. Holds hashes, never secrets.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: std::sync::RwLock<std::collections::HashMap<String, CachedKey>>,
    upgrades: std::sync::Mutex<std::collections::HashMap<String, Upgrade>>,
}

impl KeyCache {
    /// A fresh-enough entry for `key_id` at `now`, if any. An entry from the
    /// future (the clock stepped back) is not trusted.
    pub(crate) fn get(&self, key_id: &str, now: crate::UnixTime) -> Option<CachedKey> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key_id)?;
        let age = now.0.checked_sub(entry.fetched_at)?;
        (0..KEY_CACHE_TTL_MS).contains(&age).then(|| entry.clone())
    }

    pub(crate) fn insert(&self, row: &crate::ApiKeyRow, now: crate::UnixTime) -> CachedKey {
        let key = CachedKey {
            account_id: row.account_id,
            role: row.role.clone(),
            secret_hash: row.secret_hash.clone(),
            hash_version: row.hash_version,
            revoked: row.revoked_at.is_some(),
            secret_ids: row.secret_ids.as_deref().map(std::sync::Arc::from),
            expires_at: row.expires_at,
            fetched_at: now.0,
        };
        self.put(&row.key_id, key.clone());
        key
    }

    fn put(&self, key_id: &str, key: CachedKey) {
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= KEY_CACHE_MAX {
                entries.clear();
            }
            entries.insert(key_id.to_owned(), key);
        }
    }

    /// Whether this caller should rewrite `key_id`'s old-version hash now:
    /// true for exactly one caller at a time, never again once it was
    /// written, and again only [`UPGRADE_RETRY_MS`] after a failure. So a
    /// busy key costs one write, not one per request.
    pub(crate) fn begin_upgrade(&self, key_id: &str, now: crate::UnixTime) -> bool {
        let Ok(mut upgrades) = self.upgrades.lock() else {
            return false;
        };
        match upgrades.get(key_id) {
            Some(Upgrade::Done) => return false,
            Some(Upgrade::TriedAt(at))
                if now
                    .0
                    .checked_sub(*at)
                    .is_some_and(|age| age < UPGRADE_RETRY_MS) =>
            {
                return false;
            }
            _ => {}
        }
        if upgrades.len() >= KEY_CACHE_MAX {
            upgrades.clear();
        }
        upgrades.insert(key_id.to_owned(), Upgrade::TriedAt(now.0));
        true
    }

    /// Records that `key_id`'s hash was rewritten as `upgraded` (the row as
    /// it now stands); the cached entry keeps its original freshness.
    pub(crate) fn finish_upgrade(&self, key_id: &str, upgraded: CachedKey) {
        if let Ok(mut upgrades) = self.upgrades.lock() {
            upgrades.insert(key_id.to_owned(), Upgrade::Done);
        }
        self.put(key_id, upgraded);
    }

    pub(crate) fn forget(&self, key_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key_id);
        }
    }
}

/// Key uses seen by this node since the last flush: key id → the latest
/// request time. Bounded: past [`KEY_CACHE_MAX`] distinct keys between two
/// flushes, further keys' uses wait for a later request (the listed last
/// use lags, memory does not grow).
#[derive(Default)]
pub(crate) struct KeyUses {
    seen: std::sync::Mutex<std::collections::HashMap<String, i64>>,
}

impl KeyUses {
    /// Notes that `key_id` authenticated at `now`.
    pub(crate) fn record(&self, key_id: &str, now: crate::UnixTime) {
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if let Some(at) = seen.get_mut(key_id) {
            *at = (*at).max(now.0);
        } else if seen.len() < KEY_CACHE_MAX {
            seen.insert(key_id.to_owned(), now.0);
        }
    }

    /// Every use noted since the last call, sorted by key id.
    pub(crate) fn take(&self) -> Vec<(String, i64)> {
        let Ok(mut seen) = self.seen.lock() else {
            return Vec::new();
        };
        let mut uses: Vec<(String, i64)> = std::mem::take(&mut *seen).into_iter().collect();
        uses.sort_unstable();
        uses
    }

    /// Puts back uses whose write failed, so the next flush writes them.
    pub(crate) fn restore(&self, uses: Vec<(String, i64)>) {
        for (key_id, at) in uses {
            self.record(&key_id, crate::UnixTime(at));
        }
    }
}

/// Constant-time comparison of two hashes.
pub(crate) fn hashes_match(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_secrets_carry_256_bits_and_differ() {
        let a = generate_secret().unwrap();
        let b = generate_secret().unwrap();
        assert_eq!(URL_SAFE_NO_PAD.decode(a.expose()).unwrap().len(), 32);
        assert_ne!(a.expose(), b.expose());
        assert!(
            !a.expose().contains('.'),
            "a secret must not contain the bearer separator"
        );
        assert_eq!(format!("{a:?}"), "ApiKeySecret([redacted])");
    }

    fn row(revoked_at: Option<i64>) -> crate::ApiKeyRow {
        crate::ApiKeyRow {
            key_id: "tk_1".to_owned(),
            account_id: uuid::Uuid::nil(),
            secret_hash: vec![1; 32],
            hash_version: HASH_CURRENT,
            role: "owner".to_owned(),
            created_at: 0,
            revoked_at,
            name: String::new(),
            secret_ids: None,
            expires_at: None,
            last_used_at: None,
        }
    }

    #[test]
    fn cached_keys_expire_before_one_second() {
        let cache = KeyCache::default();
        cache.insert(&row(None), crate::UnixTime(10_000));
        assert!(cache.get("tk_1", crate::UnixTime(10_000)).is_some());
        assert!(
            cache
                .get("tk_1", crate::UnixTime(10_000 + KEY_CACHE_TTL_MS - 1))
                .is_some()
        );
        assert!(
            cache
                .get("tk_1", crate::UnixTime(10_000 + KEY_CACHE_TTL_MS))
                .is_none()
        );
        const { assert!(KEY_CACHE_TTL_MS < 1000) };
    }

    #[test]
    fn a_cache_entry_from_the_future_is_not_trusted() {
        let cache = KeyCache::default();
        cache.insert(&row(None), crate::UnixTime(10_000));
        assert!(cache.get("tk_1", crate::UnixTime(9_999)).is_none());
    }

    #[test]
    fn forgotten_keys_are_read_again() {
        let cache = KeyCache::default();
        cache.insert(&row(Some(5)), crate::UnixTime(10_000));
        assert!(cache.get("tk_1", crate::UnixTime(10_001)).unwrap().revoked);
        cache.forget("tk_1");
        assert!(cache.get("tk_1", crate::UnixTime(10_001)).is_none());
    }

    fn binding<'a>(key_id: &'a str, account: u128, role: &'a str) -> KeyBinding<'a> {
        KeyBinding {
            key_id,
            account_id: uuid::Uuid::from_u128(account),
            role,
            scope: None,
            expires_at: None,
        }
    }

    #[test]
    fn the_current_hash_covers_pepper_key_id_account_role_and_secret() {
        let hash = |pepper: &[u8], b: KeyBinding<'_>, secret: &str| {
            hash_secret(pepper, HASH_CURRENT, &b, secret).unwrap()
        };
        let h = hash(b"pepper", binding("tk_1", 1, "owner"), "s");
        assert!(hashes_match(
            &h,
            &hash(b"pepper", binding("tk_1", 1, "owner"), "s")
        ));
        for other in [
            hash(b"pepper2", binding("tk_1", 1, "owner"), "s"),
            hash(b"pepper", binding("tk_2", 1, "owner"), "s"),
            hash(b"pepper", binding("tk_1", 2, "owner"), "s"),
            hash(b"pepper", binding("tk_1", 1, "agent"), "s"),
            hash(b"pepper", binding("tk_1", 1, "owner"), "t"),
            // Field boundaries cannot be shifted.
            hash(b"pepper", binding("tk_1", 1, "owners"), ""),
        ] {
            assert!(!hashes_match(&h, &other));
        }
    }

    #[test]
    fn version_1_hashes_are_computed_as_before_and_unknown_versions_match_nothing() {
        let b = binding("tk_1", 1, "owner");
        // The version-1 message, spelled out: `key_id NUL secret`.
        let v1 = hmac_sha256(b"pepper", b"tk_1\0s");
        assert_eq!(hash_secret(b"pepper", HASH_V1, &b, "s"), Some(v1));
        assert_eq!(
            hash_secret(b"pepper", HASH_V1, &binding("tk_1", 2, "agent"), "s"),
            Some(v1),
            "version 1 never covered account or role"
        );
        assert_ne!(hash_secret(b"pepper", HASH_V2, &b, "s"), Some(v1));
        for unknown in [0, 4, -1, i64::MAX] {
            assert_eq!(hash_secret(b"pepper", unknown, &b, "s"), None);
        }
    }

    #[test]
    fn version_3_covers_scope_and_expiry_and_is_computable_from_the_version_1_digest() {
        let ids = [uuid::Uuid::from_u128(5), uuid::Uuid::from_u128(6)];
        let with = |scope: Option<&'static [uuid::Uuid]>, expires_at: Option<i64>| KeyBinding {
            scope,
            expires_at,
            ..binding("tk_1", 1, "agent")
        };
        let ids: &'static [uuid::Uuid] = Box::leak(Box::new(ids));
        let h = |b: KeyBinding<'_>| hash_secret(b"pepper", HASH_V3, &b, "s").unwrap();
        let variants = [
            h(with(None, None)),
            h(with(Some(&[]), None)),
            h(with(Some(&ids[..1]), None)),
            h(with(Some(ids), None)),
            h(with(None, Some(0))),
            h(with(None, Some(1))),
            h(with(Some(ids), Some(1))),
        ];
        for (i, a) in variants.iter().enumerate() {
            for b in &variants[i + 1..] {
                assert!(!hashes_match(a, b), "variant {i} collides");
            }
        }
        // The offline upgrade: from the stored version-1 digest alone.
        let b = with(Some(ids), Some(9));
        let digest = hash_secret(b"pepper", HASH_V1, &binding("tk_1", 7, "owner"), "s").unwrap();
        assert_eq!(
            hash_v3(b"pepper", &b, &digest),
            hash_secret(b"pepper", HASH_V3, &b, "s").unwrap()
        );
        // Versions 1 and 2 cannot carry a scope or an expiry.
        for version in [HASH_V1, HASH_V2] {
            assert_eq!(
                hash_secret(b"pepper", version, &with(Some(ids), None), "s"),
                None
            );
            assert_eq!(
                hash_secret(b"pepper", version, &with(None, Some(1)), "s"),
                None
            );
        }
    }

    #[test]
    fn an_expired_key_is_refused_from_the_cache_at_once() {
        let cache = KeyCache::default();
        let mut expiring = row(None);
        expiring.expires_at = Some(10_100);
        cache.insert(&expiring, crate::UnixTime(10_000));
        let key = cache.get("tk_1", crate::UnixTime(10_099)).unwrap();
        assert!(!key.expired(crate::UnixTime(10_099)));
        let key = cache.get("tk_1", crate::UnixTime(10_100)).unwrap();
        assert!(key.expired(crate::UnixTime(10_100)));
    }

    #[test]
    fn key_uses_keep_the_latest_time_per_key_and_are_taken_once() {
        let uses = KeyUses::default();
        uses.record("tk_b", crate::UnixTime(5));
        uses.record("tk_a", crate::UnixTime(9));
        uses.record("tk_a", crate::UnixTime(7));
        assert_eq!(
            uses.take(),
            [("tk_a".to_owned(), 9), ("tk_b".to_owned(), 5)]
        );
        assert!(uses.take().is_empty());
        uses.restore(vec![("tk_a".to_owned(), 3)]);
        uses.record("tk_a", crate::UnixTime(2));
        assert_eq!(uses.take(), [("tk_a".to_owned(), 3)]);
    }

    #[test]
    fn an_upgrade_is_begun_once_and_retried_only_after_a_pause() {
        let cache = KeyCache::default();
        let t = crate::UnixTime(10_000);
        assert!(cache.begin_upgrade("tk_1", t));
        assert!(!cache.begin_upgrade("tk_1", t), "one upgrade at a time");
        assert!(cache.begin_upgrade("tk_2", t), "keys are independent");
        assert!(!cache.begin_upgrade("tk_1", crate::UnixTime(t.0 + UPGRADE_RETRY_MS - 1)));
        assert!(cache.begin_upgrade("tk_1", crate::UnixTime(t.0 + UPGRADE_RETRY_MS)));
        let upgraded = cache.insert(&row(None), t);
        cache.finish_upgrade("tk_1", upgraded);
        assert!(
            !cache.begin_upgrade("tk_1", crate::UnixTime(i64::MAX)),
            "done for good"
        );
    }
}
