//! What the keyed hash and the associated data bind, seen through the
//! vault: key rows bound to their account and role, ciphertexts bound to
//! their OTP parameters, rows of the earlier versions still accepted, and
//! an old key's hash rewritten by one write however busy the key is.

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use totpd_otp::{Algorithm, Digits, Period, Secret};
use totpd_vault::{
    KEY_CACHE_TTL_MS, NewApiKey, NewSecret, Principal, SecretSource, Store, UnixTime, Vault,
    VaultError,
};
use uuid::Uuid;

use crate::memory_store::MemoryStore;
use crate::support::{NOW, login, master_key, open, pepper, vault_with_key};

/// RFC 6238's SHA-1 test key.
const TOTP_SECRET: &[u8] = b"12345678901234567890";

fn later(ms: i64) -> UnixTime {
    UnixTime(NOW.0 + ms)
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

async fn stored_key(store: &MemoryStore, key: &NewApiKey) -> totpd_vault::ApiKeyRow {
    store.api_key(&key.key_id).await.unwrap().unwrap()
}

#[tokio::test]
async fn new_keys_are_stored_with_the_binding_hash_version() {
    let store = Arc::new(MemoryStore::default());
    let (_vault, key) = vault_with_key(&store, "alice").await;
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
        let (vault, key) = vault_with_key(&store, "alice").await;
        let other = vault
            .create_api_key(&totpd_vault::AccountName::parse("bob").unwrap(), NOW)
            .await
            .unwrap();
        login(&vault, &key, NOW).await.unwrap();
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
        let fresh = open(&store).await;
        assert!(
            matches!(
                login(&fresh, &key, NOW).await,
                Err(VaultError::Unauthorized)
            ),
            "{edit}: a changed row authenticated"
        );
        login(&fresh, &other, NOW).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_1_key_is_upgraded_by_one_write_however_many_requests_use_it() {
    let store = Arc::new(MemoryStore::default());
    let (_, key) = vault_with_key(&store, "alice").await;
    make_version_1(&store, &key);
    let vault = Arc::new(open(&store).await);
    let key = Arc::new(key);
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (vault, key) = (vault.clone(), key.clone());
        tasks.push(tokio::spawn(
            async move { login(&vault, &key, later(i)).await },
        ));
    }
    for task in tasks {
        let principal = task.await.unwrap().unwrap();
        assert_eq!(principal.account_id, key.account.id);
    }
    // Past the cache's lifetime too: the row is read again, and is current.
    for step in 1..5 {
        login(&vault, &key, later(step * KEY_CACHE_TTL_MS))
            .await
            .unwrap();
    }
    assert_eq!(store.upgrade_calls(), 1);
    assert_eq!(stored_key(&store, &key).await.hash_version, 3);

    // Upgraded, it is bound to its account like a new key.
    store.edit_api_key(&key.key_id, |row| row.account_id = Uuid::new_v4());
    let fresh = open(&store).await;
    assert!(matches!(
        login(&fresh, &key, NOW).await,
        Err(VaultError::Unauthorized)
    ));
}

#[tokio::test]
async fn a_failed_upgrade_still_authenticates_and_is_retried_after_a_pause_not_per_request() {
    let store = Arc::new(MemoryStore::default());
    let (_, key) = vault_with_key(&store, "alice").await;
    make_version_1(&store, &key);
    store.fail_upgrades(true);
    let vault = open(&store).await;
    for ms in (0..5_000).step_by(100) {
        login(&vault, &key, later(ms)).await.unwrap();
    }
    assert_eq!(store.upgrade_calls(), 1, "retried before the pause");
    login(&vault, &key, later(10_000)).await.unwrap();
    assert_eq!(store.upgrade_calls(), 2);
    store.fail_upgrades(false);
    login(&vault, &key, later(20_000)).await.unwrap();
    assert_eq!(store.upgrade_calls(), 3);
    assert_eq!(stored_key(&store, &key).await.hash_version, 3);
    login(&vault, &key, later(40_000)).await.unwrap();
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
        let (vault, key) = vault_with_key(&store, "alice").await;
        let principal = login(&vault, &key, NOW).await.unwrap();
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
    let (vault, key) = vault_with_key(&store, "alice").await;
    let principal = login(&vault, &key, NOW).await.unwrap();
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

/// The label and issuer are descriptions, not part of what a ciphertext
/// is bound to: a rename is a plain update that leaves the sealed secret
/// as it was, and the codes unchanged.
#[tokio::test]
async fn a_rename_keeps_the_ciphertext_and_the_codes() {
    let store = Arc::new(MemoryStore::default());
    let (vault, key) = vault_with_key(&store, "alice").await;
    let principal = login(&vault, &key, NOW).await.unwrap();
    let id = enroll(&vault, &principal).await;
    let before = store
        .secret(principal.account_id, id)
        .await
        .unwrap()
        .unwrap();
    let code = vault.code(&principal, id, NOW).await.unwrap();
    let patch = totpd_vault::SecretPatch {
        label: Some(totpd_vault::Label::parse("renamed").unwrap()),
        issuer: Some(Some(totpd_vault::Issuer::parse("Issuer").unwrap())),
        skew: None,
    };
    let info = vault
        .update_secret(&principal, id, patch, NOW)
        .await
        .unwrap();
    assert_eq!(
        (info.label.as_str(), info.issuer.as_deref()),
        ("renamed", Some("Issuer"))
    );
    let after = store
        .secret(principal.account_id, id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (
            &after.sealed_by,
            &after.nonce,
            &after.ciphertext,
            after.aad_version
        ),
        (
            &before.sealed_by,
            &before.nonce,
            &before.ciphertext,
            before.aad_version
        ),
        "a rename re-sealed the secret"
    );
    assert_eq!(
        vault.code(&principal, id, NOW).await.unwrap().code(),
        code.code()
    );
    // An update that changes nothing is refused, and recorded as invalid.
    let refused = vault
        .update_secret(&principal, id, totpd_vault::SecretPatch::default(), NOW)
        .await;
    assert!(
        matches!(refused, Err(VaultError::Invalid(_))),
        "{refused:?}"
    );
}

#[tokio::test]
async fn a_list_cursor_is_refused_once_changed_or_in_another_account() {
    let store = Arc::new(MemoryStore::default());
    let (vault, key) = vault_with_key(&store, "alice").await;
    let alice = login(&vault, &key, NOW).await.unwrap();
    let other = vault
        .create_api_key(&totpd_vault::AccountName::parse("bob").unwrap(), NOW)
        .await
        .unwrap();
    let bob = login(&vault, &other, NOW).await.unwrap();
    let cursor = totpd_vault::ListCursor {
        created_at: NOW.0,
        id: Uuid::new_v4(),
    };
    let token = vault.list_cursor_token(&alice, &cursor);
    assert_eq!(vault.parse_list_cursor(&alice, &token), Some(cursor));
    assert_eq!(vault.parse_list_cursor(&bob, &token), None);
    let moved = totpd_vault::ListCursor {
        created_at: NOW.0 + 1,
        ..cursor
    };
    assert_ne!(vault.list_cursor_token(&alice, &moved), token);
    for at in 0..token.len() {
        let mut changed = token.clone().into_bytes();
        changed[at] = if changed[at] == b'A' { b'B' } else { b'A' };
        let changed = String::from_utf8(changed).unwrap();
        assert_eq!(vault.parse_list_cursor(&alice, &changed), None, "at {at}");
    }
    for garbage in [
        "",
        "A",
        "not a cursor",
        &token[..token.len() - 1],
        &format!("{token}A"),
    ] {
        assert_eq!(
            vault.parse_list_cursor(&alice, garbage),
            None,
            "{garbage:?}"
        );
    }
}
