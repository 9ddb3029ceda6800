//! What `totpd rekey` and `totpd backup` ask of a store: conditional
//! re-seals, a conditional `meta` replacement, counts per sealing key, and
//! a snapshot written to a new, self-contained SQLite file.

use totpd_store::SqliteStore;
use totpd_vault::{SealCensus, SecretReseal, SecretRow};

use crate::db::{TestDb, file_bytes, for_each_backend};
use crate::rows::{account, api_key, random_bytes, secret};

for_each_backend!(
    a_reseal_changes_only_rows_that_still_hold_what_was_read,
    a_meta_value_is_replaced_only_while_it_holds_the_old_one,
    the_census_counts_secrets_per_key_and_version_and_keys_per_hash_version,
    a_snapshot_written_to_a_new_sqlite_file_holds_every_row_in_one_file,
);

fn reseal_of(row: &SecretRow) -> SecretReseal {
    SecretReseal {
        id: row.id,
        account_id: row.account_id,
        algorithm: row.algorithm.clone(),
        digits: row.digits,
        period: row.period,
        old_sealed_by: row.sealed_by.clone(),
        old_nonce: row.nonce.clone(),
        old_ciphertext: row.ciphertext.clone(),
        old_aad_version: row.aad_version,
        sealed_by: "k2".to_owned(),
        nonce: random_bytes(12),
        ciphertext: random_bytes(36),
        aad_version: 2,
    }
}

async fn a_reseal_changes_only_rows_that_still_hold_what_was_read(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let mut rows = Vec::new();
    for i in 0..5 {
        let mut row = secret(&alice, 1_700_000_000_000 + i);
        row.aad_version = 1;
        store.insert_secret(&row).await.unwrap();
        rows.push(row);
    }
    let fresh = reseal_of(&rows[0]);
    // Rewritten since it was read: another ciphertext.
    let mut stale = reseal_of(&rows[1]);
    stale.old_ciphertext = random_bytes(36);
    // Deleted since it was read.
    let deleted = reseal_of(&rows[2]);
    assert!(store.delete_secret(alice.id, rows[2].id).await.unwrap());
    // Its parameters changed since it was read.
    let mut moved = reseal_of(&rows[3]);
    moved.digits = 8;
    // Named under another account.
    let mut foreign = reseal_of(&rows[4]);
    foreign.account_id = uuid::Uuid::new_v4();

    let changed = store
        .reseal_secrets(&[fresh.clone(), stale, deleted, moved, foreign])
        .await
        .unwrap();
    assert_eq!(changed, 1);
    let now = store.secret(alice.id, rows[0].id).await.unwrap().unwrap();
    assert_eq!(
        (
            now.sealed_by.as_str(),
            &now.nonce,
            &now.ciphertext,
            now.aad_version
        ),
        ("k2", &fresh.nonce, &fresh.ciphertext, 2)
    );
    assert_eq!(
        (now.label.as_str(), now.created_at),
        (rows[0].label.as_str(), rows[0].created_at)
    );
    for row in [&rows[1], &rows[3], &rows[4]] {
        assert_eq!(&store.secret(alice.id, row.id).await.unwrap().unwrap(), row);
    }
    assert!(store.secret(alice.id, rows[2].id).await.unwrap().is_none());
    // Applying the same re-seal again changes nothing: the row moved on.
    assert_eq!(store.reseal_secrets(&[fresh]).await.unwrap(), 0);
    assert_eq!(store.reseal_secrets(&[]).await.unwrap(), 0);
}

async fn a_meta_value_is_replaced_only_while_it_holds_the_old_one(db: &TestDb) {
    let store = &db.store;
    assert!(!store.replace_meta("pepper", b"a", b"b").await.unwrap());
    assert_eq!(store.get_meta("pepper").await.unwrap(), None);
    store.insert_meta("pepper", b"a").await.unwrap();
    assert!(!store.replace_meta("pepper", b"x", b"b").await.unwrap());
    assert!(store.replace_meta("pepper", b"a", b"b").await.unwrap());
    assert!(!store.replace_meta("pepper", b"a", b"c").await.unwrap());
    assert_eq!(
        store.get_meta("pepper").await.unwrap().as_deref(),
        Some(&b"b"[..])
    );
}

async fn the_census_counts_secrets_per_key_and_version_and_keys_per_hash_version(db: &TestDb) {
    let store = &db.store;
    assert_eq!(store.seal_census().await.unwrap(), SealCensus::default());
    let alice = store.insert_account(&account("alice")).await.unwrap();
    let bob = store.insert_account(&account("bob")).await.unwrap();
    for (owner, key_id, version, n) in [
        (&alice, "k1", 1, 2),
        (&bob, "k1", 2, 3),
        (&alice, "k2", 2, 1),
    ] {
        for i in 0..n {
            let mut row = secret(owner, 1_700_000_000_000 + i);
            row.sealed_by = key_id.to_owned();
            row.aad_version = version;
            store.insert_secret(&row).await.unwrap();
        }
    }
    let mut old = api_key(&alice, "tk_old", 1);
    old.hash_version = 1;
    store.insert_api_key(&old).await.unwrap();
    let new = api_key(&bob, "tk_new", 2);
    let current = new.hash_version;
    assert_ne!(current, 1);
    store.insert_api_key(&new).await.unwrap();
    store
        .insert_api_key(&api_key(&bob, "tk_new2", 3))
        .await
        .unwrap();
    assert_eq!(
        store.seal_census().await.unwrap(),
        SealCensus {
            secrets: vec![
                ("k1".to_owned(), 1, 2),
                ("k1".to_owned(), 2, 3),
                ("k2".to_owned(), 2, 1)
            ],
            api_keys: vec![(1, 1), (current, 2)],
        }
    );
}

async fn a_snapshot_written_to_a_new_sqlite_file_holds_every_row_in_one_file(db: &TestDb) {
    let store = &db.store;
    let alice = store.insert_account(&account("alice")).await.unwrap();
    store.insert_meta("pepper", b"sealed").await.unwrap();
    store
        .insert_api_key(&api_key(&alice, "tk_a", 1))
        .await
        .unwrap();
    for i in 0..1_500 {
        store.insert_secret(&secret(&alice, i)).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("backup.db");
    std::fs::File::create(&file).unwrap();
    let mut snapshot = store.snapshot().await.unwrap();
    let report = SqliteStore::write_file(&file, snapshot.as_mut())
        .await
        .unwrap();
    drop(snapshot);
    assert_eq!(
        (
            report.meta,
            report.accounts,
            report.api_keys,
            report.secrets
        ),
        (1, 1, 1, 1_500)
    );
    // No -wal or -shm beside it: the file alone is the backup.
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["backup.db"]);
    // Moved elsewhere alone, it opens read-only with every row.
    let moved = dir.path().join("moved.db");
    std::fs::rename(&file, &moved).unwrap();
    let copy = totpd_store::connect(
        &format!("sqlite://{}?mode=ro", moved.display()),
        &crate::db::options(),
    )
    .await
    .unwrap();
    assert_eq!(
        copy.list_secrets(alice.id).await.unwrap(),
        store.list_secrets(alice.id).await.unwrap()
    );
    assert_eq!(
        copy.get_meta("pepper").await.unwrap().as_deref(),
        Some(&b"sealed"[..])
    );
    assert_eq!(
        copy.api_key("tk_a").await.unwrap(),
        store.api_key("tk_a").await.unwrap()
    );
    // A file that already holds rows is refused, and keeps them.
    let mut snapshot = store.snapshot().await.unwrap();
    let again = dir.path().join("again.db");
    std::fs::copy(&moved, &again).unwrap();
    assert!(
        SqliteStore::write_file(&again, snapshot.as_mut())
            .await
            .is_err()
    );
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// A ciphertext replaced by a re-seal (sealed by a key being retired)
/// leaves the SQLite files as a deleted one does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_ciphertext_is_gone_from_the_sqlite_files() {
    let db = TestDb::sqlite().await;
    let path = db.sqlite_file().unwrap();
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let rows: Vec<_> = (0..600).map(|i| secret(&alice, i)).collect();
    for row in &rows {
        db.store.insert_secret(row).await.unwrap();
    }
    let old = &rows[300];
    // The store's writer may be checkpointing too: wait for it.
    let checkpoint = || {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        loop {
            let busy: i64 = conn
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| row.get(0))
                .unwrap();
            if busy == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "the checkpoint could not finish"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    };
    checkpoint();
    assert!(
        contains(&file_bytes(&path), &old.ciphertext),
        "the ciphertext should be in the file first (or this test proves nothing)"
    );
    let reseal = reseal_of(old);
    assert_eq!(
        db.store
            .reseal_secrets(std::slice::from_ref(&reseal))
            .await
            .unwrap(),
        1
    );
    // The store scrubs the WAL itself, just after answering.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while contains(&file_bytes(&path), &old.ciphertext) {
        assert!(
            std::time::Instant::now() < deadline,
            "the replaced ciphertext lingers"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    checkpoint();
    let bytes = file_bytes(&path);
    assert!(
        !contains(&bytes, &old.ciphertext),
        "the replaced ciphertext lingers"
    );
    assert!(
        contains(&bytes, &reseal.ciphertext),
        "the new ciphertext is missing"
    );
}
