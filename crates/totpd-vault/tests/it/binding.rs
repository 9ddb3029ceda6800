//! What the keyed hash and the associated data bind, seen through the
//! vault: key rows bound to their account and role, ciphertexts bound to
//! their OTP parameters, rows of the earlier versions still accepted, and
//! an old key's hash rewritten by one write however busy the key is.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use totpd_otp::{Algorithm, Digits, Period, Secret};
use totpd_vault::{
    KEY_CACHE_TTL_MS, MasterKey, NewApiKey, NewSecret, Principal, Sealed, SecretSource, Store,
    UnixTime, Vault, VaultError,
};
use uuid::Uuid;

use crate::memory_store::MemoryStore;

const NOW: UnixTime = UnixTime(1_700_000_000_000);
/// RFC 6238's SHA-1 test key.
const TOTP_SECRET: &[u8] = b"12345678901234567890";

fn master_key() -> MasterKey {
    MasterKey::from_base64(&STANDARD.encode([7u8; 32])).unwrap()
}

fn later(ms: i64) -> UnixTime {
    UnixTime(NOW.0 + ms)
}

async fn vault_with_key(store: &Arc<MemoryStore>) -> (Vault, NewApiKey) {
    let vault = Vault::open(store.clone(), master_key()).await.unwrap();
    let key = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    (vault, key)
}

/// The API-key pepper, opened from the store as the vault does.
fn pepper(store: &MemoryStore) -> Vec<u8> {
    let stored = store.meta("pepper").unwrap();
    let (&id_len, rest) = stored.split_first().unwrap();
    let (key_id, rest) = rest.split_at(usize::from(id_len));
    let (nonce, ciphertext) = rest.split_at(12);
    let sealed = Sealed {
        key_id: String::from_utf8(key_id.to_vec()).unwrap(),
        nonce: nonce.to_vec(),
        ciphertext: ciphertext.to_vec(),
    };
    master_key()
        .open(&sealed, b"totpd/v1/pepper")
        .unwrap()
        .to_vec()
}

/// Turns a key row into what the previous version stored: the hash of
/// `key_id NUL secret`, hash version 1.
fn make_version_1(store: &MemoryStore, key: &NewApiKey) {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&pepper(store)).unwrap();
    mac.update(format!("{}\0{}", key.key_id, key.secret.expose()).as_bytes());
    let hash = mac.finalize().into_bytes().to_vec();
    store.edit_api_key(&key.key_id, |row| {
        row.secret_hash = hash;
        row.hash_version = 1;
    });
}

async fn authenticate(
    vault: &Vault,
    key: &NewApiKey,
    at: UnixTime,
) -> Result<Principal, VaultError> {
    vault
        .authenticate(
            &key.key_id,
            key.secret.expose(),
            at,
            totpd_vault::Origin::default(),
        )
        .await
}

async fn stored_key(store: &MemoryStore, key: &NewApiKey) -> totpd_vault::ApiKeyRow {
    store.api_key(&key.key_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn new_keys_are_stored_with_the_binding_hash_version() {
    let store = Arc::new(MemoryStore::default());
    let (_vault, key) = vault_with_key(&store).await;
    assert_eq!(stored_key(&store, &key).await.hash_version, 3);
}

#[tokio::test]
async fn a_key_row_moved_to_another_account_or_given_another_role_authenticates_as_nothing() {
    for edit in [
        "account",
        "role",
        "scope",
        "scope of none",
        "expiry",
        "version 1",
        "version 2",
        "unknown version",
    ] {
        let store = Arc::new(MemoryStore::default());
        let (vault, key) = vault_with_key(&store).await;
        let other = vault
            .create_api_key(&totpd_vault::AccountName::parse("bob").unwrap(), NOW)
            .await
            .unwrap();
        authenticate(&vault, &key, NOW).await.unwrap();
        store.edit_api_key(&key.key_id, |row| match edit {
            "account" => row.account_id = other.account.id,
            "role" => row.role = "agent".to_owned(),
            "scope" => row.secret_ids = Some(vec![Uuid::new_v4()]),
            "scope of none" => row.secret_ids = Some(Vec::new()),
            "expiry" => row.expires_at = Some(NOW.0 + 3_600_000),
            "version 1" => row.hash_version = 1,
            "version 2" => row.hash_version = 2,
            _ => row.hash_version = 4,
        });
        let fresh = Vault::open(store.clone(), master_key()).await.unwrap();
        assert!(
            matches!(
                authenticate(&fresh, &key, NOW).await,
                Err(VaultError::Unauthorized)
            ),
            "{edit}: a changed row authenticated"
        );
        authenticate(&fresh, &other, NOW).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_key_is_upgraded_by_one_write_however_many_requests_use_it() {
    let store = Arc::new(MemoryStore::default());
    let (_, key) = vault_with_key(&store).await;
    make_version_1(&store, &key);
    let vault = Arc::new(Vault::open(store.clone(), master_key()).await.unwrap());
    let key = Arc::new(key);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (vault, key) = (vault.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            authenticate(&vault, &key, later(i)).await
        }));
    }
    for task in tasks {
        let principal = task.await.unwrap().unwrap();
        assert_eq!(principal.account_id, key.account.id);
    }
    // Past the cache's lifetime too: the row is read again, and is current.
    for step in 1..5 {
        authenticate(&vault, &key, later(step * KEY_CACHE_TTL_MS))
            .await
            .unwrap();
    }
    assert_eq!(store.upgrade_calls(), 1);
    assert_eq!(stored_key(&store, &key).await.hash_version, 3);

    // Upgraded, it is bound to its account like a new key.
    store.edit_api_key(&key.key_id, |row| row.account_id = Uuid::new_v4());
    let fresh = Vault::open(store.clone(), master_key()).await.unwrap();
    assert!(matches!(
        authenticate(&fresh, &key, NOW).await,
        Err(VaultError::Unauthorized)
    ));
}

#[tokio::test]
async fn a_failed_upgrade_still_authenticates_and_is_retried_after_a_pause_not_per_request() {
    let store = Arc::new(MemoryStore::default());
    let (_, key) = vault_with_key(&store).await;
    make_version_1(&store, &key);
    store.fail_upgrades(true);
    let vault = Vault::open(store.clone(), master_key()).await.unwrap();
    for ms in (0..5_000).step_by(100) {
        authenticate(&vault, &key, later(ms)).await.unwrap();
    }
    assert_eq!(store.upgrade_calls(), 1, "retried before the pause");
    authenticate(&vault, &key, later(10_000)).await.unwrap();
    assert_eq!(store.upgrade_calls(), 2);
    store.fail_upgrades(false);
    authenticate(&vault, &key, later(20_000)).await.unwrap();
    assert_eq!(store.upgrade_calls(), 3);
    assert_eq!(stored_key(&store, &key).await.hash_version, 3);
    authenticate(&vault, &key, later(40_000)).await.unwrap();
    assert_eq!(store.upgrade_calls(), 3);
}

async fn enroll(vault: &Vault, principal: &Principal) -> Uuid {
    let created = vault
        .create_secret(
            principal,
            NewSecret {
                label: totpd_vault::Label::parse("binding").unwrap(),
                issuer: None,
                source: SecretSource::Provided(Secret::from_bytes(TOTP_SECRET.to_vec()).unwrap()),
                algorithm: Algorithm::Sha1,
                digits: Digits::default(),
                period: Period::default(),
                kind: totpd_vault::SecretKind::default(),
            },
            NOW,
        )
        .await
        .unwrap();
    created.info.id
}

#[tokio::test]
async fn a_secret_whose_parameters_or_version_changed_does_not_open_and_says_corrupt() {
    type Edit = fn(&mut totpd_vault::SecretRow);
    let edits: [(&str, Edit); 5] = [
        ("digits", |row| row.digits = 8),
        ("algorithm", |row| row.algorithm = "SHA256".to_owned()),
        ("period", |row| row.period = 60),
        ("version 1", |row| row.aad_version = 1),
        ("unknown version", |row| row.aad_version = 3),
    ];
    for (what, edit) in edits {
        let store = Arc::new(MemoryStore::default());
        let (vault, key) = vault_with_key(&store).await;
        let principal = authenticate(&vault, &key, NOW).await.unwrap();
        let id = enroll(&vault, &principal).await;
        vault.code(&principal, id, NOW).await.unwrap();
        store.edit_secret(id, edit);
        match vault.code(&principal, id, NOW).await {
            Err(error @ VaultError::Internal { .. }) => {
                let message = totpd_vault::ErrorChain(&error).to_string();
                assert!(
                    message.contains(&id.to_string()) && message.contains("corrupt"),
                    "{what}: {message}"
                );
                assert!(!message.contains("12345678901234567890"), "{what}");
            }
            Ok(_) => panic!("{what}: a changed row yielded a code"),
            Err(other) => panic!("{what}: {other:?}"),
        }
        // The list does not open ciphertexts: the row is shown as stored.
        assert_eq!(vault.list_secrets(&principal).await.unwrap().len(), 1);
    }
}

#[tokio::test]
async fn a_secret_sealed_with_version_1_associated_data_still_opens() {
    let store = Arc::new(MemoryStore::default());
    let (vault, key) = vault_with_key(&store).await;
    let principal = authenticate(&vault, &key, NOW).await.unwrap();
    let id = enroll(&vault, &principal).await;
    let expected = vault.code(&principal, id, NOW).await.unwrap();
    // Re-seal it as the previous version did.
    let aad = format!("totpd/v1/secret/{}/{id}", principal.account_id);
    let sealed = master_key().seal(TOTP_SECRET, aad.as_bytes()).unwrap();
    store.edit_secret(id, |row| {
        row.nonce = sealed.nonce.clone();
        row.ciphertext = sealed.ciphertext.clone();
        row.aad_version = 1;
    });
    assert_eq!(vault.code(&principal, id, NOW).await.unwrap(), expected);
}
