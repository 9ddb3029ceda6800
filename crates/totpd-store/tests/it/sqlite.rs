//! What only the SQLite backend promises.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rusqlite::Connection;
use totpd_store::{ConnectOptions, SqliteStore};
use totpd_vault::{Store, StoreError};

use crate::db::{TestDb, file_bytes, options};
use crate::rows::{account, secret};

fn url(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle)
}

/// Folds the WAL into the database file and empties it, as a quiet server
/// eventually does. The store's own checkpoint after a delete, or a reader
/// it still has open, can make one attempt busy: it is tried again until
/// it finishes, for up to five seconds.
fn checkpoint(path: &Path) {
    let conn = Connection::open(path).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (busy, _, _): (i64, i64, i64) = conn
            .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
                Ok((row.get(0)?, row.get(1)?, row.get(2)?))
            })
            .unwrap();
        if busy == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "the checkpoint could not finish");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_concurrent_inserts_are_all_durable_after_reopening() {
    let db = TestDb::sqlite().await;
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let inserts: Vec<_> = (0..200)
        .map(|i| {
            let store = Arc::clone(&db.store);
            let row = secret(&alice, i);
            tokio::spawn(async move { store.insert_secret(&row).await.map(|()| row) })
        })
        .collect();
    let mut acknowledged = Vec::new();
    for insert in inserts {
        acknowledged.push(insert.await.unwrap().unwrap());
    }
    let path = db.sqlite_file().unwrap();
    drop(db.store.clone());
    let reopened = SqliteStore::connect(&url(&path), &options()).await.unwrap();
    let mut stored = reopened.list_secrets(alice.id).await.unwrap();
    stored.sort_by_key(|row| row.id);
    acknowledged.sort_by_key(|row| row.id);
    assert_eq!(stored, acknowledged);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_secrets_ciphertext_is_gone_from_the_database_files() {
    let db = TestDb::sqlite().await;
    let path = db.sqlite_file().unwrap();
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    // Enough neighbours that pages split and rebalance around the victim.
    let rows: Vec<_> = (0..600).map(|i| secret(&alice, i)).collect();
    for row in &rows {
        db.store.insert_secret(row).await.unwrap();
    }
    let doomed = &rows[300];
    checkpoint(&path);
    assert!(
        contains(&file_bytes(&path), &doomed.ciphertext),
        "the ciphertext should be in the file before the delete (or this test proves nothing)"
    );

    assert!(db.store.delete_secret(alice.id, doomed.id).await.unwrap());
    // The store scrubs the WAL itself, just after answering.
    let deadline = Instant::now() + Duration::from_secs(5);
    while contains(&file_bytes(&path), &doomed.ciphertext) {
        assert!(
            Instant::now() < deadline,
            "ciphertext lingers after the delete"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    checkpoint(&path);
    let bytes = file_bytes(&path);
    assert!(!contains(&bytes, &doomed.ciphertext), "ciphertext lingers");
    assert!(!contains(&bytes, &doomed.nonce), "nonce lingers");
    assert!(
        contains(&bytes, &rows[301].ciphertext),
        "a neighbour was lost"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_url_form_opens_the_same_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a b.db");
    let absolute = path.display().to_string();
    assert!(absolute.starts_with('/'));
    let encoded = absolute.replace(' ', "%20");
    let first = totpd_store::connect(&format!("sqlite://{encoded}"), &options())
        .await
        .unwrap();
    first.insert_meta("k", b"v").await.unwrap();
    assert!(path.exists(), "the percent-decoded name was not used");
    for form in [
        format!("sqlite://{absolute}"),
        format!("sqlite:{absolute}"),
        format!("sqlite://{absolute}?mode=rwc"),
        format!("sqlite://{absolute}?mode=rw&cache=private"),
        format!("SQLITE://{encoded}"),
    ] {
        let store = totpd_store::connect(&form, &options()).await.unwrap();
        assert_eq!(
            store.get_meta("k").await.unwrap().as_deref(),
            Some(&b"v"[..]),
            "{form}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mode_rw_and_ro_do_not_create_and_ro_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    for mode in ["rw", "ro"] {
        let missing_url = format!("{}?mode={mode}", url(&missing));
        let opened = SqliteStore::connect(&missing_url, &options()).await;
        assert!(opened.is_err(), "mode={mode} opened a missing file");
        assert!(!missing.exists(), "mode={mode} created the file");
    }

    let path = dir.path().join("totpd.db");
    let writable = SqliteStore::connect(&url(&path), &options()).await.unwrap();
    writable.insert_meta("k", b"v").await.unwrap();
    let read_only = SqliteStore::connect(&format!("{}?mode=ro", url(&path)), &options())
        .await
        .unwrap();
    assert_eq!(
        read_only.get_meta("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    assert!(read_only.insert_meta("other", b"x").await.is_err());
    assert_eq!(writable.get_meta("other").await.unwrap(), None);

    // Also when nothing else has the file open (no -wal or -shm beside it).
    drop((writable, read_only));
    let read_only = SqliteStore::connect(&format!("{}?mode=ro", url(&path)), &options())
        .await
        .unwrap();
    assert_eq!(
        read_only.get_meta("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    let mut snapshot = read_only.snapshot().await.unwrap();
    assert_eq!(snapshot.meta().await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_writing_the_same_file_lose_nothing() {
    let db = TestDb::sqlite().await;
    // A second store on the same file has its own connections and writer,
    // exactly like `totpd keys create` running beside `totpd serve`.
    let other = db.reopen().await;
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    assert_eq!(
        other.account_by_name("alice").await.unwrap(),
        Some(alice.clone()),
        "a write is visible to the other process at once"
    );
    let inserts: Vec<_> = (0..100)
        .flat_map(|i| [(Arc::clone(&db.store), i), (Arc::clone(&other), 1_000 + i)])
        .map(|(store, i)| {
            let row = secret(&alice, i);
            tokio::spawn(async move { store.insert_secret(&row).await })
        })
        .collect();
    for insert in inserts {
        insert.await.unwrap().unwrap();
    }
    assert_eq!(db.store.list_secrets(alice.id).await.unwrap().len(), 200);
    assert_eq!(other.list_secrets(alice.id).await.unwrap().len(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_lock_held_past_the_busy_timeout_fails_writes_but_not_reads() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("totpd.db");
    let options = ConnectOptions {
        max_connections: 2,
        acquire_timeout: Duration::from_millis(200),
    };
    let store = SqliteStore::connect(&url(&path), &options).await.unwrap();
    store.insert_meta("k", b"v").await.unwrap();

    let other_process = Connection::open(&path).unwrap();
    other_process.execute_batch("BEGIN IMMEDIATE").unwrap();
    let error = store.insert_meta("blocked", b"x").await.unwrap_err();
    assert!(matches!(error, StoreError::Unavailable { .. }), "{error:?}");
    // WAL: readers do not wait for the writer.
    assert_eq!(
        store.get_meta("k").await.unwrap().as_deref(),
        Some(&b"v"[..])
    );
    other_process.execute_batch("COMMIT").unwrap();

    assert!(store.insert_meta("blocked", b"x").await.unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_file_opened_twice_at_once_is_migrated_once() {
    // Several rounds of four opens of a new file at once: switching a new
    // file to WAL used to fail now and then with "database is locked".
    for _ in 0..20 {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("totpd.db");
        let (url, options) = (url(&path), options());
        let (a, b, c, d) = tokio::join!(
            SqliteStore::connect(&url, &options),
            SqliteStore::connect(&url, &options),
            SqliteStore::connect(&url, &options),
            SqliteStore::connect(&url, &options),
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        let (_c, _d) = (c.unwrap(), d.unwrap());
        a.insert_meta("k", b"v").await.unwrap();
        assert!(!b.insert_meta("k", b"w").await.unwrap());
        let conn = Connection::open(&path).unwrap();
        let versions: Vec<i64> = conn
            .prepare("SELECT version FROM schema_migrations ORDER BY version")
            .unwrap()
            .query_map([], |row| row.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(versions, [1, 2, 3, 4, 5, 6, 7, 8]);
        let journal: String = conn
            .query_row("PRAGMA journal_mode", [], |row| row.get(0))
            .unwrap();
        assert_eq!(journal, "wal");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_totpd_is_refused() {
    let db = TestDb::sqlite().await;
    let path = db.sqlite_file().unwrap();
    Connection::open(&path)
        .unwrap()
        .execute_batch("INSERT INTO schema_migrations (version, applied_at) VALUES (999, 0)")
        .unwrap();
    let error = SqliteStore::connect(&url(&path), &options())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("newer"), "{error}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ids_are_stored_as_16_byte_blobs_and_a_malformed_one_is_corrupt() {
    let db = TestDb::sqlite().await;
    let path = db.sqlite_file().unwrap();
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    db.store.insert_secret(&secret(&alice, 1)).await.unwrap();
    let conn = Connection::open(&path).unwrap();
    let (kind, len): (String, i64) = conn
        .query_row("SELECT typeof(id), length(id) FROM secrets", [], |row| {
            Ok((row.get(0)?, row.get(1)?))
        })
        .unwrap();
    assert_eq!((kind.as_str(), len), ("blob", 16));

    // With foreign keys off, a malformed id gets in.
    conn.execute_batch("PRAGMA foreign_keys = OFF").unwrap();
    conn.execute(
        "INSERT INTO api_keys (key_id, account_id, secret_hash, role, created_at) \
         VALUES ('tk_bad', x'010203', x'00', 'owner', 0)",
        [],
    )
    .unwrap();
    let error = db.store.api_key("tk_bad").await.unwrap_err();
    assert!(matches!(error, StoreError::Corrupt { .. }), "{error:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_reads_stay_within_the_pool() {
    let db = TestDb::sqlite().await;
    let alice = db.store.insert_account(&account("alice")).await.unwrap();
    let row = secret(&alice, 1);
    db.store.insert_secret(&row).await.unwrap();
    let reads: Vec<_> = (0..300)
        .map(|i| {
            let store = Arc::clone(&db.store);
            let (account_id, id) = (alice.id, row.id);
            tokio::spawn(async move {
                if i % 10 == 0 {
                    assert_eq!(store.list_secrets(account_id).await.unwrap().len(), 1);
                } else {
                    assert!(store.secret(account_id, id).await.unwrap().is_some());
                }
            })
        })
        .collect();
    for read in reads {
        read.await.unwrap();
    }
    let status = db.store.pool_status();
    assert!(status.size <= options().max_connections, "{status:?}");
    assert_eq!(status.idle, status.size, "a connection was not returned");
}
