//! `copy_from` from SQLite into each backend: everything or nothing.

use std::sync::Arc;

use async_trait::async_trait;
use totpd_vault::{
    AccountRow, ApiKeyHashUpgrade, ApiKeyRow, CopyReport, PoolStatus, SecretRow, Store, StoreError,
};
use uuid::Uuid;

use crate::db::{TestDb, for_each_backend};
use crate::rows::{account, api_key, secret};

for_each_backend!(
    a_copy_from_sqlite_carries_every_row,
    a_copy_into_a_non_empty_target_is_refused,
    a_copy_whose_source_fails_leaves_the_target_empty,
    a_copy_whose_rows_the_target_rejects_leaves_it_empty,
);

/// More secrets than one copy page, so paging is exercised.
const SECRETS: usize = 2_345;

/// A SQLite source with rows in every table.
async fn filled_source() -> TestDb {
    let source = TestDb::sqlite().await;
    let store = &source.store;
    store.insert_meta("pepper", b"p").await.unwrap();
    store.insert_meta("check", b"c").await.unwrap();
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let bob = store.insert_account(&account("bob")).await.unwrap();
    store
        .insert_api_key(&api_key(&alice, "tk_a", 1))
        .await
        .unwrap();
    let mut revoked = api_key(&bob, "tk_b", 2);
    revoked.revoked_at = Some(3);
    store.insert_api_key(&revoked).await.unwrap();
    let inserts: Vec<_> = (0..SECRETS)
        .map(|i| {
            let store = Arc::clone(store);
            let owner = if i % 3 == 0 {
                bob.clone()
            } else {
                alice.clone()
            };
            tokio::spawn(async move {
                let created_at = i64::try_from(i).unwrap();
                store.insert_secret(&secret(&owner, created_at)).await
            })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap().unwrap();
    }
    source
}

async fn all_secrets(store: &dyn Store) -> Vec<SecretRow> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = store.dump_secrets(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    all
}

async fn a_copy_from_sqlite_carries_every_row(target: &TestDb) {
    let source = filled_source().await;
    let report = target.store.copy_from(source.store.as_ref()).await.unwrap();
    assert_eq!(
        report,
        CopyReport {
            meta: 2,
            accounts: 2,
            api_keys: 2,
            secrets: u64::try_from(SECRETS).unwrap(),
        }
    );
    let (from, to) = (&source.store, &target.store);
    assert_eq!(
        to.dump_meta().await.unwrap(),
        from.dump_meta().await.unwrap()
    );
    assert_eq!(
        to.dump_accounts().await.unwrap(),
        from.dump_accounts().await.unwrap()
    );
    assert_eq!(
        to.dump_api_keys().await.unwrap(),
        from.dump_api_keys().await.unwrap()
    );
    let copied = all_secrets(to.as_ref()).await;
    assert_eq!(copied.len(), SECRETS);
    assert_eq!(copied, all_secrets(from.as_ref()).await);
    // And the copy is a working store: lookups and lists answer from it.
    let alice = to.account_by_name("alice").await.unwrap().unwrap();
    let listed = to.list_secrets(alice.id).await.unwrap();
    assert_eq!(listed, from.list_secrets(alice.id).await.unwrap());
    let first = &listed[0];
    assert_eq!(
        to.secret(alice.id, first.id).await.unwrap().as_ref(),
        Some(first)
    );
}

async fn a_copy_into_a_non_empty_target_is_refused(target: &TestDb) {
    let source = filled_source().await;
    target.store.insert_meta("mine", b"1").await.unwrap();
    let error = target
        .store
        .copy_from(source.store.as_ref())
        .await
        .unwrap_err();
    assert!(matches!(error, StoreError::Conflict(_)), "{error:?}");
    assert_eq!(target.store.dump_meta().await.unwrap().len(), 1);
    assert!(target.store.dump_accounts().await.unwrap().is_empty());
}

async fn a_copy_whose_source_fails_leaves_the_target_empty(target: &TestDb) {
    let source = filled_source().await;
    let faulty = Faulty {
        inner: Arc::clone(&source.store),
        fault: Fault::SourceFails,
    };
    let error = target.store.copy_from(&faulty).await.unwrap_err();
    assert!(error.to_string().contains("injected"), "{error:?}");
    assert!(target.store.is_empty().await.unwrap());
    // Nothing is left locked or half-done: the target still takes writes.
    assert!(target.store.insert_meta("after", b"1").await.unwrap());
}

async fn a_copy_whose_rows_the_target_rejects_leaves_it_empty(target: &TestDb) {
    let source = filled_source().await;
    let faulty = Faulty {
        inner: Arc::clone(&source.store),
        fault: Fault::OrphanSecret,
    };
    target.store.copy_from(&faulty).await.unwrap_err();
    assert!(target.store.is_empty().await.unwrap());
    assert!(target.store.insert_meta("after", b"1").await.unwrap());
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Reading secrets fails (after meta, accounts and keys were read).
    SourceFails,
    /// A secret whose account does not exist, after a first good page.
    OrphanSecret,
}

/// A source that misbehaves while dumping secrets.
#[derive(Debug)]
struct Faulty {
    inner: Arc<dyn Store>,
    fault: Fault,
}

#[async_trait]
impl Store for Faulty {
    async fn ping(&self) -> Result<(), StoreError> {
        self.inner.ping().await
    }
    fn pool_status(&self) -> PoolStatus {
        self.inner.pool_status()
    }
    async fn get_meta(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        self.inner.get_meta(name).await
    }
    async fn insert_meta(&self, name: &str, value: &[u8]) -> Result<bool, StoreError> {
        self.inner.insert_meta(name, value).await
    }
    async fn account_by_name(&self, name: &str) -> Result<Option<AccountRow>, StoreError> {
        self.inner.account_by_name(name).await
    }
    async fn insert_account(&self, row: &AccountRow) -> Result<AccountRow, StoreError> {
        self.inner.insert_account(row).await
    }
    async fn count_accounts(&self) -> Result<u64, StoreError> {
        self.inner.count_accounts().await
    }
    async fn insert_api_key(&self, row: &ApiKeyRow) -> Result<(), StoreError> {
        self.inner.insert_api_key(row).await
    }
    async fn api_key(&self, key_id: &str) -> Result<Option<ApiKeyRow>, StoreError> {
        self.inner.api_key(key_id).await
    }
    async fn list_api_keys(&self) -> Result<Vec<(ApiKeyRow, String)>, StoreError> {
        self.inner.list_api_keys().await
    }
    async fn revoke_api_key(&self, key_id: &str, revoked_at: i64) -> Result<bool, StoreError> {
        self.inner.revoke_api_key(key_id, revoked_at).await
    }
    async fn upgrade_api_key_hash(&self, upgrade: &ApiKeyHashUpgrade) -> Result<bool, StoreError> {
        self.inner.upgrade_api_key_hash(upgrade).await
    }
    async fn insert_secret(&self, row: &SecretRow) -> Result<(), StoreError> {
        self.inner.insert_secret(row).await
    }
    async fn secret(&self, account_id: Uuid, id: Uuid) -> Result<Option<SecretRow>, StoreError> {
        self.inner.secret(account_id, id).await
    }
    async fn list_secrets(&self, account_id: Uuid) -> Result<Vec<SecretRow>, StoreError> {
        self.inner.list_secrets(account_id).await
    }
    async fn delete_secret(&self, account_id: Uuid, id: Uuid) -> Result<bool, StoreError> {
        self.inner.delete_secret(account_id, id).await
    }
    async fn is_empty(&self) -> Result<bool, StoreError> {
        self.inner.is_empty().await
    }
    async fn dump_meta(&self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.dump_meta().await
    }
    async fn dump_accounts(&self) -> Result<Vec<AccountRow>, StoreError> {
        self.inner.dump_accounts().await
    }
    async fn dump_api_keys(&self) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.inner.dump_api_keys().await
    }
    async fn dump_secrets(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        match (self.fault, after) {
            (Fault::SourceFails, _) => Err(StoreError::Unavailable(
                "injected source failure".to_owned(),
            )),
            (Fault::OrphanSecret, None) => self.inner.dump_secrets(None, limit).await,
            (Fault::OrphanSecret, Some(_)) => {
                let mut page = self.inner.dump_secrets(after, limit).await?;
                if let Some(row) = page.first_mut() {
                    row.account_id = Uuid::new_v4();
                }
                Ok(page)
            }
        }
    }
    async fn copy_from(&self, source: &dyn Store) -> Result<CopyReport, StoreError> {
        self.inner.copy_from(source).await
    }
}
