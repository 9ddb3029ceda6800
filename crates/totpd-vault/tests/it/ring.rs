//! A ring of master keys seen through the vault: the first key seals, any
//! opens, the key check record may be sealed by any of them, and
//! re-sealing it changes no API key.

use std::sync::Arc;

use totpd_otp::{Algorithm, Digits, Period, Secret};
use totpd_vault::{
    MasterKey, MasterKeyRing, NewSecret, OpenError, Origin, SecretSource, UnixTime, Vault,
};

use crate::memory_store::MemoryStore;

const NOW: UnixTime = UnixTime(1_700_000_000_000);

fn ring(keys: &[&MasterKey]) -> MasterKeyRing {
    MasterKeyRing::new(keys.iter().map(|k| (*k).clone()).collect()).unwrap()
}

fn new_secret() -> NewSecret {
    NewSecret {
        label: totpd_vault::Label::parse("ring").unwrap(),
        issuer: None,
        source: SecretSource::Provided(
            Secret::from_bytes(b"12345678901234567890".to_vec()).unwrap(),
        ),
        algorithm: Algorithm::Sha1,
        digits: Digits::default(),
        period: Period::default(),
        kind: totpd_vault::SecretKind::default(),
    }
}

#[tokio::test]
async fn a_ring_opens_what_any_of_its_keys_sealed_and_seals_with_its_first() {
    let (old, new) = (
        MasterKey::generate().unwrap(),
        MasterKey::generate().unwrap(),
    );
    let store = Arc::new(MemoryStore::default());
    let vault = Vault::open(store.clone(), old.clone()).await.unwrap();
    let key = vault
        .create_api_key(&totpd_vault::AccountName::parse("alice").unwrap(), NOW)
        .await
        .unwrap();
    let principal = vault
        .authenticate(&key.key_id, key.secret.expose(), NOW, Origin::default())
        .await
        .unwrap();
    let by_old = vault
        .create_secret(&principal, new_secret(), NOW)
        .await
        .unwrap();
    let expected = vault
        .code(&principal, by_old.info.id, NOW)
        .await
        .unwrap()
        .code();

    let rotated = Vault::open(store.clone(), ring(&[&new, &old]))
        .await
        .unwrap();
    assert_eq!(rotated.master_key_id(), new.id());
    assert_eq!(
        rotated.master_key_ids(),
        [new.id().to_owned(), old.id().to_owned()]
    );
    let principal = rotated
        .authenticate(&key.key_id, key.secret.expose(), NOW, Origin::default())
        .await
        .unwrap();
    assert_eq!(
        rotated
            .code(&principal, by_old.info.id, NOW)
            .await
            .unwrap()
            .code(),
        expected
    );
    let by_new = rotated
        .create_secret(&principal, new_secret(), NOW)
        .await
        .unwrap();
    let status = Vault::seal_status(store.as_ref(), &ring(&[&new, &old]))
        .await
        .unwrap();
    let mut sealed_by: Vec<(String, u64)> = status
        .secrets
        .iter()
        .map(|c| (c.key_id.clone(), c.rows))
        .collect();
    sealed_by.sort();
    let mut want = vec![(old.id().to_owned(), 1), (new.id().to_owned(), 1)];
    want.sort();
    assert_eq!(sealed_by, want);
    assert_eq!(status.secrets_to_reseal(), 1);
    assert!(status.pepper_to_reseal());
    assert_eq!(status.pepper_key_id.as_deref(), Some(old.id()));

    // The old key alone cannot open what the new one sealed, and says why.
    let error = vault
        .code(&principal, by_new.info.id, NOW)
        .await
        .unwrap_err();
    assert!(error.to_string().contains(new.id()), "{error}");

    // Re-sealing the key check record: once, and every key still works.
    assert!(rotated.rekey_pepper().await.unwrap());
    assert!(!rotated.rekey_pepper().await.unwrap());
    let only_new = Vault::open(store.clone(), new.clone()).await.unwrap();
    only_new
        .authenticate(&key.key_id, key.secret.expose(), NOW, Origin::default())
        .await
        .unwrap();
    match Vault::open(store.clone(), old.clone()).await {
        Err(OpenError::WrongMasterKey { expected, given }) => {
            assert_eq!(expected, new.id());
            assert_eq!(given, old.id());
        }
        other => panic!("the old key alone opened the re-sealed database: {other:?}"),
    }
}
