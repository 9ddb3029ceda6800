//! Roles, scopes, expiry, key hash version 3 and recorded uses, through the
//! vault (the HTTP matrix is in the totpd crate's tests).

use std::sync::Arc;

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;
use totpd_otp::{Algorithm, Digits, Period};
use totpd_vault::{
    KeySpec, Label, NewApiKey, NewSecret, Principal, Role, Scope, SecretSource, Store, UnixTime,
    Vault, VaultError,
};
use uuid::Uuid;

use crate::memory_store::MemoryStore;
use crate::support::{NOW, login, open, pepper};

async fn enroll(vault: &Vault, owner: &Principal, label: &str) -> Uuid {
    vault
        .create_secret(
            owner,
            NewSecret {
                label: Label::parse(label).unwrap(),
                issuer: None,
                source: SecretSource::Generate,
                algorithm: Algorithm::Sha1,
                digits: Digits::default(),
                period: Period::default(),
                kind: totpd_vault::SecretKind::default(),
            },
            NOW,
        )
        .await
        .unwrap()
        .info
        .id
}

fn spec(role: Role, scope: Scope, expires_at: Option<UnixTime>) -> KeySpec {
    KeySpec {
        name: format!("{role} key"),
        role,
        scope,
        expires_at,
    }
}

fn hmac(key: &[u8], message: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(key).unwrap();
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// The canonical encoding, spelled out: a short length-prefixed domain,
/// then each field's short name and 8-byte big-endian length and value.
fn canonical(domain: &str, fields: &[(&str, &[u8])]) -> Vec<u8> {
    let mut out = vec![u8::try_from(domain.len()).unwrap()];
    out.extend_from_slice(domain.as_bytes());
    for (name, value) in fields {
        out.push(u8::try_from(name.len()).unwrap());
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(&u64::try_from(value.len()).unwrap().to_be_bytes());
        out.extend_from_slice(value);
    }
    out
}

#[tokio::test]
async fn new_keys_are_version_3_and_the_hash_is_the_documented_encoding() {
    let store = Arc::new(MemoryStore::default());
    let vault = open(&store).await;
    let owner_key = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let owner = login(&vault, &owner_key, NOW).await.unwrap();
    let id = enroll(&vault, &owner, "a").await;
    let expires = UnixTime(NOW.0 + 60_000);
    let key = vault
        .create_key(
            &owner,
            spec(Role::Agent, Scope::only([id]), Some(expires)),
            NOW,
        )
        .await
        .unwrap();
    let row = store.api_key(&key.key_id).await.unwrap().unwrap();
    assert_eq!(row.hash_version, 3);
    let pepper = pepper(&store);
    let digest = hmac(
        &pepper,
        format!("{}\0{}", key.key_id, key.secret.expose()).as_bytes(),
    );
    let mut scope = vec![1u8];
    scope.extend_from_slice(id.as_bytes());
    let mut expiry = vec![1u8];
    expiry.extend_from_slice(&expires.0.to_be_bytes());
    let message = canonical(
        "totpd/api-key/v3",
        &[
            ("key_id", key.key_id.as_bytes()),
            ("account_id", owner.account_id.as_bytes()),
            ("role", b"agent"),
            ("scope", &scope),
            ("expires_at", &expiry),
            ("secret_digest", &digest),
        ],
    );
    assert_eq!(row.secret_hash, hmac(&pepper, &message));
    assert_eq!(key.info.secret_ids, Some(vec![id]));
    assert_eq!(key.info.role, "agent");
}

#[tokio::test]
async fn roles_are_enforced_by_the_vault_and_a_scope_hides_other_secrets() {
    let store = Arc::new(MemoryStore::default());
    let vault = open(&store).await;
    let owner_key = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let owner = login(&vault, &owner_key, NOW).await.unwrap();
    let mine = enroll(&vault, &owner, "mine").await;
    let other = enroll(&vault, &owner, "other").await;

    let scoped = vault
        .create_key(&owner, spec(Role::Agent, Scope::only([mine]), None), NOW)
        .await
        .unwrap();
    let agent = login(&vault, &scoped, NOW).await.unwrap();
    assert_eq!(agent.scope, Scope::only([mine]));
    let listed: Vec<Uuid> = vault
        .list_secrets(&agent)
        .await
        .unwrap()
        .iter()
        .map(|s| s.id)
        .collect();
    assert_eq!(listed, [mine]);
    let (page, next) = vault.list_secrets_page(&agent, None, 500).await.unwrap();
    assert_eq!((page.len(), next), (1, None));
    vault.code(&agent, mine, NOW).await.unwrap();
    assert!(matches!(
        vault.code(&agent, other, NOW).await,
        Err(VaultError::NotFound)
    ));
    // The role is checked first: a forbidden delete is 403 in or out of scope.
    for id in [mine, other] {
        assert!(matches!(
            vault.delete_secret(&agent, id, NOW).await,
            Err(VaultError::Forbidden)
        ));
    }
    // A scoped key cannot enroll a secret it could never read.
    let refused = vault
        .create_secret(
            &agent,
            NewSecret {
                label: Label::parse("new").unwrap(),
                issuer: None,
                source: SecretSource::Generate,
                algorithm: Algorithm::Sha1,
                digits: Digits::default(),
                period: Period::default(),
                kind: totpd_vault::SecretKind::default(),
            },
            NOW,
        )
        .await;
    assert!(matches!(refused, Err(VaultError::Forbidden)));
    assert!(matches!(
        vault.create_key(&agent, KeySpec::owner(), NOW).await,
        Err(VaultError::Forbidden)
    ));

    let verifier_key = vault
        .create_key(&owner, spec(Role::Verifier, Scope::All, None), NOW)
        .await
        .unwrap();
    let verifier = login(&vault, &verifier_key, NOW).await.unwrap();
    assert!(matches!(
        vault.code(&verifier, mine, NOW).await,
        Err(VaultError::Forbidden)
    ));
    assert!(matches!(
        vault.list_secrets(&verifier).await,
        Err(VaultError::Forbidden)
    ));

    let admin_key = vault
        .create_key(&owner, spec(Role::Admin, Scope::only([other]), None), NOW)
        .await
        .unwrap();
    let admin = login(&vault, &admin_key, NOW).await.unwrap();
    assert!(matches!(
        vault.delete_secret(&admin, mine, NOW).await,
        Err(VaultError::NotFound)
    ));
    assert!(matches!(
        vault.list_keys(&admin).await,
        Err(VaultError::Forbidden)
    ));
    vault.delete_secret(&admin, other, NOW).await.unwrap();
    assert_eq!(vault.list_keys(&owner).await.unwrap().len(), 4);
    assert!(matches!(
        vault.revoke_key(&owner, &owner.key_id, NOW).await,
        Err(VaultError::Invalid(_))
    ));
    vault.revoke_key(&owner, &admin.key_id, NOW).await.unwrap();
    assert!(matches!(
        vault.revoke_key(&owner, &admin.key_id, NOW).await,
        Err(VaultError::NotFound)
    ));
}

#[tokio::test]
async fn key_specs_are_validated_naming_the_field() {
    let store = Arc::new(MemoryStore::default());
    let vault = open(&store).await;
    let owner_key = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let owner = login(&vault, &owner_key, NOW).await.unwrap();
    let bob_key = vault
        .create_api_key(&totpd_vault::AccountName::parse("bob").unwrap(), NOW)
        .await
        .unwrap();
    let bob = login(&vault, &bob_key, NOW).await.unwrap();
    let bobs = enroll(&vault, &bob, "bob's").await;
    let cases = [
        (spec(Role::Agent, Scope::only([bobs]), None), "secret_ids"),
        (
            spec(Role::Agent, Scope::only([Uuid::new_v4()]), None),
            "secret_ids",
        ),
        (spec(Role::Agent, Scope::only([]), None), "secret_ids"),
        (
            spec(
                Role::Agent,
                Scope::only((0..101).map(|_| Uuid::new_v4())),
                None,
            ),
            "secret_ids",
        ),
        (spec(Role::Agent, Scope::All, Some(NOW)), "expires_at"),
        (
            KeySpec {
                name: "a\nb".to_owned(),
                ..KeySpec::owner()
            },
            "name",
        ),
    ];
    for (spec, field) in cases {
        match vault.create_key(&owner, spec.clone(), NOW).await {
            Err(VaultError::Invalid(message)) => {
                assert!(message.contains(&format!("\"{field}\"")), "{message}");
            }
            other => panic!("{spec:?}: {other:?}"),
        }
    }
    let scoped_for_nobody = vault
        .create_api_key_with(
            &totpd_vault::AccountName::parse("nobody").unwrap(),
            spec(Role::Agent, Scope::only([bobs]), None),
            NOW,
        )
        .await;
    assert!(matches!(scoped_for_nobody, Err(VaultError::Invalid(_))));
}

#[tokio::test]
async fn an_expired_key_is_refused_even_from_the_cache() {
    let store = Arc::new(MemoryStore::default());
    let vault = open(&store).await;
    let owner_key = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let owner = login(&vault, &owner_key, NOW).await.unwrap();
    let key = vault
        .create_key(
            &owner,
            spec(Role::Agent, Scope::All, Some(UnixTime(NOW.0 + 100))),
            NOW,
        )
        .await
        .unwrap();
    login(&vault, &key, UnixTime(NOW.0 + 99)).await.unwrap();
    // Within the cache's lifetime of the read above.
    assert!(matches!(
        login(&vault, &key, UnixTime(NOW.0 + 100)).await,
        Err(VaultError::Unauthorized)
    ));
}

#[tokio::test]
async fn version_2_keys_are_upgraded_on_use_and_version_1_keys_without_their_secret() {
    let store = Arc::new(MemoryStore::default());
    let vault = open(&store).await;
    let v1 = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let v2 = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let revoked_v1 = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let pepper = pepper(&store);
    for key in [&v1, &revoked_v1] {
        let digest = hmac(
            &pepper,
            format!("{}\0{}", key.key_id, key.secret.expose()).as_bytes(),
        );
        store.edit_api_key(&key.key_id, |row| {
            row.secret_hash = digest;
            row.hash_version = 1;
        });
    }
    vault.revoke_api_key(&revoked_v1.key_id, NOW).await.unwrap();
    let v2_hash = hmac(
        &pepper,
        &canonical(
            "totpd/api-key/v2",
            &[
                ("key_id", v2.key_id.as_bytes()),
                ("account_id", v2.account.id.as_bytes()),
                ("role", b"owner"),
                ("secret", v2.secret.expose().as_bytes()),
            ],
        ),
    );
    store.edit_api_key(&v2.key_id, |row| {
        row.secret_hash = v2_hash;
        row.hash_version = 2;
    });

    let vault = open(&store).await;
    assert_eq!(vault.upgrade_legacy_key_hashes().await.unwrap(), 1);
    assert_eq!(
        vault.upgrade_legacy_key_hashes().await.unwrap(),
        0,
        "idempotent"
    );
    let version = |key: &NewApiKey| {
        let store = store.clone();
        let key_id = key.key_id.clone();
        async move { store.api_key(&key_id).await.unwrap().unwrap().hash_version }
    };
    assert_eq!(version(&v1).await, 3);
    assert_eq!(version(&revoked_v1).await, 1, "revoked rows are left alone");
    assert_eq!(version(&v2).await, 2);
    login(&vault, &v1, NOW).await.unwrap();
    let principal = login(&vault, &v2, NOW).await.unwrap();
    assert_eq!(principal.scope, Scope::All);
    assert_eq!(version(&v2).await, 3, "upgraded on its first use");
    let fresh = open(&store).await;
    login(&fresh, &v2, NOW).await.unwrap();
    login(&fresh, &v1, NOW).await.unwrap();
}

#[tokio::test]
async fn uses_are_written_by_the_flush_not_by_each_request() {
    let store = Arc::new(MemoryStore::default());
    let vault = open(&store).await;
    let key = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    for ms in 0..10 {
        login(&vault, &key, UnixTime(NOW.0 + ms)).await.unwrap();
    }
    let last = || {
        let store = store.clone();
        let key_id = key.key_id.clone();
        async move { store.api_key(&key_id).await.unwrap().unwrap().last_used_at }
    };
    assert_eq!(last().await, None, "nothing written before the flush");
    assert_eq!(vault.flush_key_uses().await.unwrap(), 1);
    assert_eq!(last().await, Some(NOW.0 + 9));
    assert_eq!(vault.flush_key_uses().await.unwrap(), 0);
    let listed = vault.list_api_keys().await.unwrap();
    assert_eq!(listed[0].last_used_at, Some(UnixTime(NOW.0 + 9)));
}
