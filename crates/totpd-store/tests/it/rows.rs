//! Rows for tests.

use totpd_vault::{AccountRow, ApiKeyRow, SecretRow};
use uuid::Uuid;

pub fn account(name: &str) -> AccountRow {
    AccountRow {
        id: Uuid::new_v4(),
        name: name.to_owned(),
        created_at: 1_700_000_000_000,
    }
}

pub fn api_key(account: &AccountRow, key_id: &str, created_at: i64) -> ApiKeyRow {
    ApiKeyRow {
        key_id: key_id.to_owned(),
        account_id: account.id,
        secret_hash: random_bytes(32),
        hash_version: 3,
        role: "owner".to_owned(),
        created_at,
        revoked_at: None,
        name: format!("key {key_id}"),
        secret_ids: None,
        expires_at: None,
        last_used_at: None,
    }
}

pub fn secret(account: &AccountRow, created_at: i64) -> SecretRow {
    SecretRow {
        id: Uuid::new_v4(),
        account_id: account.id,
        label: format!("user-{created_at}@example.com"),
        issuer: Some("Example".to_owned()),
        algorithm: "SHA1".to_owned(),
        digits: 6,
        period: 30,
        created_at,
        sealed_by: "k1".to_owned(),
        nonce: random_bytes(12),
        ciphertext: random_bytes(36),
        aad_version: 2,
        otp_type: "totp".to_owned(),
        counter: 0,
        skew: 1,
        hotp_window: 10,
        last_step: None,
        failed_verifies: 0,
        failed_since: None,
        fingerprint: Some(random_bytes(32)),
    }
}

/// Random bytes (a v4 UUID's worth at a time), distinct enough to search a
/// database file for.
pub fn random_bytes(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 16);
    while out.len() < len {
        out.extend_from_slice(Uuid::new_v4().as_bytes());
    }
    out.truncate(len);
    out
}
