//! `Store::snapshot`: one committed state of every table, whatever is
//! written while it is read.

use totpd_vault::{AccountRow, ApiKeyRow, SecretRow};

use crate::copy::{all_secrets, tables};
use crate::db::{TestDb, for_each_backend};
use crate::rows::{account, api_key, secret};

for_each_backend!(
    a_snapshot_sees_none_of_the_writes_committed_after_it_was_taken,
    a_snapshot_of_an_empty_database_is_empty,
);

type Tables = (
    Vec<(String, Vec<u8>)>,
    Vec<AccountRow>,
    Vec<ApiKeyRow>,
    Vec<SecretRow>,
);

async fn a_snapshot_sees_none_of_the_writes_committed_after_it_was_taken(db: &TestDb) {
    let store = &db.store;
    store.insert_meta("pepper", b"p").await.unwrap();
    let alice = store.insert_account(&account("alice")).await.unwrap();
    store
        .insert_api_key(&api_key(&alice, "tk_a", 1))
        .await
        .unwrap();
    let mut doomed = Vec::new();
    for i in 0..30 {
        let row = secret(&alice, i);
        store.insert_secret(&row).await.unwrap();
        doomed.push(row);
    }
    let before: Tables = tables(store.as_ref()).await;

    let mut snapshot = store.snapshot().await.unwrap();
    // Part of it read before the writes, the rest after: the reads of one
    // snapshot agree with each other all the same.
    assert_eq!(snapshot.meta().await.unwrap(), before.0);

    // Every kind of write, each committed (and visible to new reads) at once,
    // by this store and by a second one on the same database (another
    // process, for SQLite).
    let other = db.reopen().await;
    store.insert_meta("later", b"l").await.unwrap();
    let late = other.insert_account(&account("late")).await.unwrap();
    other
        .insert_api_key(&api_key(&late, "tk_late", 2))
        .await
        .unwrap();
    store.insert_secret(&secret(&late, 99)).await.unwrap();
    assert!(store.revoke_api_key("tk_a", 3).await.unwrap());
    for row in doomed.iter().step_by(3) {
        assert!(other.delete_secret(alice.id, row.id).await.unwrap());
    }
    let after: Tables = tables(store.as_ref()).await;
    assert_ne!(after.1, before.1, "the writes are visible to new reads");

    assert_eq!(snapshot.accounts().await.unwrap(), before.1);
    assert_eq!(snapshot.api_keys().await.unwrap(), before.2);
    assert!(all_secrets(snapshot.as_mut()).await == before.3);
    // Read twice, the same rows again (what the copy's verification relies on).
    assert_eq!(snapshot.meta().await.unwrap(), before.0);
    let mut paged = Vec::new();
    let mut after_id = None;
    loop {
        let page = snapshot.secrets(after_id, 7).await.unwrap();
        let Some(last) = page.last() else { break };
        after_id = Some(last.id);
        paged.extend(page);
    }
    assert!(paged == before.3);
    drop(snapshot);

    // A new snapshot is of the new state.
    assert!(tables(store.as_ref()).await == after);
    assert_eq!(after.0.len(), 2);
    assert_eq!(after.1.len(), 2);
    assert_eq!(after.3.len(), 30 - 10 + 1);
}

async fn a_snapshot_of_an_empty_database_is_empty(db: &TestDb) {
    let mut snapshot = db.store.snapshot().await.unwrap();
    assert!(snapshot.meta().await.unwrap().is_empty());
    assert!(snapshot.accounts().await.unwrap().is_empty());
    assert!(snapshot.api_keys().await.unwrap().is_empty());
    assert!(snapshot.secrets(None, 10).await.unwrap().is_empty());
    // An open snapshot does not stop writes.
    db.store.insert_meta("k", b"v").await.unwrap();
    assert!(snapshot.meta().await.unwrap().is_empty());
}
