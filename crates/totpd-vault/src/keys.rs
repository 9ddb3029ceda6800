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

use crate::crypto::{hex, hmac_sha256};

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

/// Hashes an API key secret under the pepper, binding it to its key id so a
/// hash row cannot be moved to another key.
pub(crate) fn hash_secret(pepper: &[u8], key_id: &str, secret: &str) -> [u8; 32] {
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

/// The part of an API-key row that authentication needs.
#[derive(Clone)]
pub(crate) struct CachedKey {
    pub account_id: uuid::Uuid,
    pub secret_hash: Vec<u8>,
    pub revoked: bool,
    fetched_at: i64,
}

/// Recently read API-key rows, by key id. Holds hashes, never secrets.
#[derive(Default)]
pub(crate) struct KeyCache {
    entries: std::sync::RwLock<std::collections::HashMap<String, CachedKey>>,
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
            secret_hash: row.secret_hash.clone(),
            revoked: row.revoked_at.is_some(),
            fetched_at: now.0,
        };
        if let Ok(mut entries) = self.entries.write() {
            if entries.len() >= KEY_CACHE_MAX {
                entries.clear();
            }
            entries.insert(row.key_id.clone(), key.clone());
        }
        key
    }

    pub(crate) fn forget(&self, key_id: &str) {
        if let Ok(mut entries) = self.entries.write() {
            entries.remove(key_id);
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
            role: "owner".to_owned(),
            created_at: 0,
            revoked_at,
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

    #[test]
    fn hash_depends_on_pepper_key_id_and_secret() {
        let h = hash_secret(b"pepper", "tk_1", "s");
        assert!(hashes_match(&h, &hash_secret(b"pepper", "tk_1", "s")));
        assert!(!hashes_match(&h, &hash_secret(b"pepper2", "tk_1", "s")));
        assert!(!hashes_match(&h, &hash_secret(b"pepper", "tk_2", "s")));
        assert!(!hashes_match(&h, &hash_secret(b"pepper", "tk_1", "t")));
    }
}
