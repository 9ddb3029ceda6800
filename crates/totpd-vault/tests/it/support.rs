//! What the vault's tests share: a fixed time, one master key, a vault on
//! the in-memory store with an owner key, and its pepper opened from the
//! store as the vault does.

use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use totpd_vault::{
    AccountName, MasterKey, NewApiKey, Origin, Principal, Sealed, UnixTime, Vault, VaultError,
};

use crate::memory_store::MemoryStore;

pub const NOW: UnixTime = UnixTime(1_700_000_000_000);

/// The master key's bytes: all different, so a `Debug` that showed any
/// run of them would be caught.
pub fn master_key_bytes() -> Vec<u8> {
    (100u8..132).collect()
}

pub fn master_key() -> MasterKey {
    MasterKey::from_base64(&STANDARD.encode(master_key_bytes())).unwrap()
}

/// A vault on `store`, opened with [`master_key`].
pub async fn open(store: &Arc<MemoryStore>) -> Vault {
    Vault::open(store.clone(), master_key()).await.unwrap()
}

/// A vault on `store` and a new owner key of the account `account`.
pub async fn vault_with_key(store: &Arc<MemoryStore>, account: &str) -> (Vault, NewApiKey) {
    let vault = open(store).await;
    let key = vault
        .create_api_key(&AccountName::parse(account).unwrap(), NOW)
        .await
        .unwrap();
    (vault, key)
}

/// `key` authenticated at `at`, from nowhere in particular.
pub async fn login(vault: &Vault, key: &NewApiKey, at: UnixTime) -> Result<Principal, VaultError> {
    vault
        .authenticate(&key.key_id, key.secret.expose(), at, Origin::default())
        .await
}

/// The API-key pepper, opened from the store with the master key.
pub fn pepper(store: &MemoryStore) -> Vec<u8> {
    let stored = store
        .meta("pepper")
        .expect("an opened vault stores its pepper");
    let (&id_len, rest) = stored.split_first().unwrap();
    let (key_id, rest) = rest.split_at(usize::from(id_len));
    let (nonce, ciphertext) = rest.split_at(12);
    let sealed = Sealed {
        sealed_by: String::from_utf8(key_id.to_vec()).unwrap(),
        nonce: nonce.to_vec(),
        ciphertext: ciphertext.to_vec(),
    };
    master_key()
        .open(&sealed, b"totpd/v1/pepper")
        .unwrap()
        .to_vec()
}
