//! The audit log's part of the Store contract: batches append in order,
//! pages filter and page newest first, retention deletes only old events.

use totpd_vault::{AuditPage, AuditQuery, AuditRecord, AuditRow, Snapshot};
use uuid::Uuid;

use crate::db::{TestDb, for_each_backend};
use crate::rows::account;

for_each_backend!(
    a_batch_is_appended_in_order_with_growing_ids,
    pages_filter_by_account_action_secret_key_and_time,
    retention_deletes_only_older_events_in_batches,
);

/// An event at `at` (ms) in `account`.
pub fn record(at: i64, account: Option<Uuid>) -> AuditRecord {
    AuditRecord {
        at,
        account_id: account,
        action: if at % 2 == 0 {
            "code.read"
        } else {
            "secret.create"
        }
        .to_owned(),
        outcome: "ok".to_owned(),
        key_id: account.map(|_| format!("tk_{:024x}", at % 3)),
        role: account.map(|_| "owner".to_owned()),
        secret_id: Some(Uuid::from_u128(u128::try_from(at % 5).unwrap())),
        remote_addr: Some("127.0.0.1".to_owned()),
        user_agent: Some(format!("agent/{at}")),
        request_id: Some(format!("req-{at}")),
    }
}

/// Every audit event of a snapshot, by id.
pub async fn all_events(snapshot: &mut dyn Snapshot) -> Vec<AuditRow> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = snapshot.audit_events(after, 100).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    all
}

fn query(limit: u32) -> AuditQuery {
    AuditQuery {
        limit,
        ..AuditQuery::default()
    }
}

async fn a_batch_is_appended_in_order_with_growing_ids(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let batch: Vec<AuditRecord> = (0..300).map(|i| record(i, Some(alice.id))).collect();
    store.append_audit(&batch).await.unwrap();
    store.append_audit(&[]).await.unwrap();
    store.append_audit(&[record(300, None)]).await.unwrap();
    let mut snapshot = store.snapshot().await.unwrap();
    let rows = all_events(snapshot.as_mut()).await;
    assert_eq!(rows.len(), 301);
    assert!(rows.windows(2).all(|w| w[0].id < w[1].id));
    let records: Vec<AuditRecord> = rows.into_iter().map(|row| row.record).collect();
    assert_eq!(records[..300], batch[..]);
    assert_eq!(records[300], record(300, None));
    assert!(!store.is_empty().await.unwrap());
}

async fn pages_filter_by_account_action_secret_key_and_time(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let bob = store.insert_account(&account("bob")).await.unwrap();
    let mut batch = Vec::new();
    for at in 0..60 {
        batch.push(record(at, Some(alice.id)));
        batch.push(record(at, Some(bob.id)));
    }
    batch.push(record(1000, None));
    store.append_audit(&batch).await.unwrap();

    // Newest first, paged by id, only the account's own events.
    let mut seen = Vec::new();
    let mut page = AuditPage::Newest;
    loop {
        let rows = store
            .list_audit(alice.id, &AuditQuery { page, ..query(7) })
            .await
            .unwrap();
        assert!(rows.len() <= 7);
        assert!(rows.iter().all(|r| r.record.account_id == Some(alice.id)));
        let Some(last) = rows.last() else { break };
        page = AuditPage::Before(last.id);
        seen.extend(rows.iter().map(|r| r.record.at));
    }
    assert_eq!(seen, (0..60).rev().collect::<Vec<_>>());

    let ats = |rows: Vec<AuditRow>| rows.into_iter().map(|r| r.record.at).collect::<Vec<_>>();
    let secret = Uuid::from_u128(2);
    let filtered = AuditQuery {
        action: Some("code.read".to_owned()),
        secret_id: Some(secret),
        key_id: Some(format!("tk_{:024x}", 1)),
        since: Some(10),
        until: Some(50),
        ..query(100)
    };
    let expected: Vec<i64> = (10..50)
        .rev()
        .filter(|at| at % 2 == 0 && at % 5 == 2 && at % 3 == 1)
        .collect();
    assert!(!expected.is_empty());
    assert_eq!(
        ats(store.list_audit(alice.id, &filtered).await.unwrap()),
        expected
    );
    // Following: oldest first after an id.
    let newest = store.list_audit(alice.id, &query(3)).await.unwrap();
    let after = store
        .list_audit(
            alice.id,
            &AuditQuery {
                page: AuditPage::After(newest[2].id),
                ..query(100)
            },
        )
        .await
        .unwrap();
    assert_eq!(ats(after), [58, 59]);
    // Unscoped: both accounts and the event without one.
    let all = store.list_audit_all(&query(1000)).await.unwrap();
    assert_eq!(all.len(), 121);
    assert_eq!(all[0].record, record(1000, None));
    assert!(
        store
            .list_audit(Uuid::new_v4(), &query(10))
            .await
            .unwrap()
            .is_empty()
    );
}

async fn retention_deletes_only_older_events_in_batches(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let batch: Vec<AuditRecord> = (0..250).map(|i| record(i, Some(alice.id))).collect();
    store.append_audit(&batch).await.unwrap();
    assert_eq!(store.prune_audit(0, 100).await.unwrap(), 0);
    assert_eq!(store.prune_audit(200, 100).await.unwrap(), 100);
    assert_eq!(store.prune_audit(200, 100).await.unwrap(), 100);
    assert_eq!(store.prune_audit(200, 100).await.unwrap(), 0);
    let left = store.list_audit_all(&query(1000)).await.unwrap();
    assert_eq!(left.len(), 50);
    assert!(left.iter().all(|r| r.record.at >= 200));
    // Ids keep growing after a prune that emptied the table.
    let last = left[0].id;
    assert_eq!(store.prune_audit(1000, 1000).await.unwrap(), 50);
    store.append_audit(&[record(5, None)]).await.unwrap();
    let newest = store.list_audit_all(&query(1)).await.unwrap();
    assert!(newest[0].id > last);
}
