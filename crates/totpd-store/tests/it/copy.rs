//! `copy_from` from SQLite into each backend: everything, verified, or
//! nothing.

use std::sync::Arc;

use async_trait::async_trait;
use totpd_vault::{
    AccountRow, ApiKeyRow, AuditRow, CopyReport, SecretRow, Snapshot, Store, StoreError,
};
use uuid::Uuid;

use crate::db::{TestDb, for_each_backend};
use crate::rows::{account, api_key, secret};

for_each_backend!(
    a_copy_from_sqlite_carries_every_row,
    a_copy_into_a_non_empty_target_is_refused,
    a_copy_whose_source_fails_leaves_the_target_empty,
    a_copy_whose_rows_the_target_rejects_leaves_it_empty,
    a_copy_whose_source_reads_back_differently_is_not_committed,
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
    // Scope, expiry and last use are copied and compared like every column.
    revoked.role = "agent".to_owned();
    revoked.secret_ids = Some(vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
    revoked.expires_at = Some(4);
    revoked.last_used_at = Some(3);
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
                let mut row = secret(&owner, created_at);
                // HOTP counters and verification state are copied and
                // compared like every column.
                match i % 5 {
                    0 => {
                        row.otp_type = "hotp".to_owned();
                        row.counter = created_at;
                    }
                    1 => {
                        row.skew = 2;
                        row.last_step = Some(created_at);
                        row.failed_verifies = 3;
                        row.failed_since = Some(created_at + 1);
                    }
                    _ => {}
                }
                store.insert_secret(&row).await
            })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap().unwrap();
    }
    // More audit events than one copy page, some without an account.
    let events: Vec<_> = (0..AUDIT_EVENTS)
        .map(|i| crate::audit::record(i64::try_from(i).unwrap(), (i % 7 != 0).then_some(alice.id)))
        .collect();
    for batch in events.chunks(500) {
        store.append_audit(batch).await.unwrap();
    }
    source
}

/// More audit events than one copy page.
const AUDIT_EVENTS: usize = 1_234;

/// Every row of every table, read from one snapshot.
pub async fn tables(
    store: &dyn Store,
) -> (
    Vec<(String, Vec<u8>)>,
    Vec<AccountRow>,
    Vec<ApiKeyRow>,
    Vec<SecretRow>,
) {
    let mut snapshot = store.snapshot().await.unwrap();
    let meta = snapshot.meta().await.unwrap();
    let accounts = snapshot.accounts().await.unwrap();
    let keys = snapshot.api_keys().await.unwrap();
    let secrets = all_secrets(snapshot.as_mut()).await;
    (meta, accounts, keys, secrets)
}

pub async fn all_secrets(snapshot: &mut dyn Snapshot) -> Vec<SecretRow> {
    let mut all = Vec::new();
    let mut after = None;
    loop {
        let page = snapshot.secrets(after, 1_000).await.unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        all.extend(page);
    }
    all
}

async fn a_copy_from_sqlite_carries_every_row(target: &TestDb) {
    let source = filled_source().await;
    let mut snapshot = source.store.snapshot().await.unwrap();
    let report = target.store.copy_from(snapshot.as_mut()).await.unwrap();
    assert_eq!(
        report,
        CopyReport {
            meta: 2,
            accounts: 2,
            api_keys: 2,
            secrets: u64::try_from(SECRETS).unwrap(),
            audit_events: u64::try_from(AUDIT_EVENTS).unwrap(),
        }
    );
    let mut from_snapshot = source.store.snapshot().await.unwrap();
    let mut to_snapshot = target.store.snapshot().await.unwrap();
    let copied_events = crate::audit::all_events(to_snapshot.as_mut()).await;
    assert_eq!(copied_events.len(), AUDIT_EVENTS);
    assert!(copied_events == crate::audit::all_events(from_snapshot.as_mut()).await);
    drop((from_snapshot, to_snapshot));
    // New events come after the copied ones (PostgreSQL's identity moved on).
    let last = copied_events.last().unwrap().id;
    target
        .store
        .append_audit(&[crate::audit::record(9, None)])
        .await
        .unwrap();
    let newest = target
        .store
        .list_audit_all(&totpd_vault::AuditQuery {
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(newest[0].id > last, "{} after {last}", newest[0].id);
    let (from, to) = (&source.store, &target.store);
    let copied = tables(to.as_ref()).await;
    assert_eq!(copied.3.len(), SECRETS);
    assert!(copied == tables(from.as_ref()).await, "the copy differs");
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
    let mut snapshot = source.store.snapshot().await.unwrap();
    let error = target.store.copy_from(snapshot.as_mut()).await.unwrap_err();
    assert!(matches!(error, StoreError::Conflict { .. }), "{error:?}");
    let (meta, accounts, _, _) = tables(target.store.as_ref()).await;
    assert_eq!(meta.len(), 1);
    assert!(accounts.is_empty());
}

async fn a_copy_whose_source_fails_leaves_the_target_empty(target: &TestDb) {
    let source = filled_source().await;
    let mut faulty = Faulty::new(&source, Fault::SourceFails).await;
    let error = target.store.copy_from(&mut faulty).await.unwrap_err();
    assert!(error.to_string().contains("injected"), "{error:?}");
    assert!(target.store.is_empty().await.unwrap());
    // Nothing is left locked or half-done: the target still takes writes.
    assert!(target.store.insert_meta("after", b"1").await.unwrap());
}

async fn a_copy_whose_rows_the_target_rejects_leaves_it_empty(target: &TestDb) {
    let source = filled_source().await;
    let mut faulty = Faulty::new(&source, Fault::OrphanSecret).await;
    target.store.copy_from(&mut faulty).await.unwrap_err();
    assert!(target.store.is_empty().await.unwrap());
    assert!(target.store.insert_meta("after", b"1").await.unwrap());
}

/// Every row went in, then the verification found the source and the
/// target different: nothing is committed, and a good copy can follow.
async fn a_copy_whose_source_reads_back_differently_is_not_committed(target: &TestDb) {
    let source = filled_source().await;
    let mut faulty = Faulty::new(&source, Fault::ChangesBeforeVerification).await;
    let error = target.store.copy_from(&mut faulty).await.unwrap_err();
    assert!(
        matches!(&error, StoreError::Corrupt { context: m, .. } if m.contains("verification failed")),
        "{error:?}"
    );
    // The copy got as far as comparing: every page was read twice over.
    assert!(faulty.full_reads >= 2, "{} passes", faulty.full_reads);
    assert!(target.store.is_empty().await.unwrap());
    let mut snapshot = source.store.snapshot().await.unwrap();
    let report = target.store.copy_from(snapshot.as_mut()).await.unwrap();
    assert_eq!(report.secrets, u64::try_from(SECRETS).unwrap());
}

#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Reading secrets fails (after meta, accounts and keys were read).
    SourceFails,
    /// A secret whose account does not exist, after a first good page.
    OrphanSecret,
    /// The second read of every table (the verification's) finds one
    /// secret's label changed in the second page.
    ChangesBeforeVerification,
}

/// A snapshot of a real source that misbehaves while its secrets are read.
#[derive(Debug)]
struct Faulty {
    inner: Box<dyn Snapshot>,
    fault: Fault,
    /// How many times the secrets were read from the first page on.
    full_reads: usize,
}

impl Faulty {
    async fn new(source: &TestDb, fault: Fault) -> Faulty {
        Faulty {
            inner: source.store.snapshot().await.unwrap(),
            fault,
            full_reads: 0,
        }
    }
}

#[async_trait]
impl Snapshot for Faulty {
    async fn meta(&mut self) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        self.inner.meta().await
    }
    async fn accounts(&mut self) -> Result<Vec<AccountRow>, StoreError> {
        self.inner.accounts().await
    }
    async fn api_keys(&mut self) -> Result<Vec<ApiKeyRow>, StoreError> {
        self.inner.api_keys().await
    }
    async fn secrets(
        &mut self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<SecretRow>, StoreError> {
        if after.is_none() {
            self.full_reads += 1;
        }
        let mut page = match self.fault {
            Fault::SourceFails => {
                return Err(StoreError::unavailable_msg(
                    "injected source failure".to_owned(),
                ));
            }
            _ => self.inner.secrets(after, limit).await?,
        };
        let tamper = match self.fault {
            Fault::SourceFails => false,
            Fault::OrphanSecret => after.is_some(),
            Fault::ChangesBeforeVerification => after.is_some() && self.full_reads >= 2,
        };
        if tamper && let Some(row) = page.first_mut() {
            match self.fault {
                Fault::OrphanSecret => row.account_id = Uuid::new_v4(),
                _ => row.label.push_str(" (changed)"),
            }
        }
        Ok(page)
    }
    async fn audit_events(
        &mut self,
        after: Option<i64>,
        limit: u32,
    ) -> Result<Vec<AuditRow>, StoreError> {
        self.inner.audit_events(after, limit).await
    }
}
