//! SQLite: a deleted secret's ciphertext leaves the `-wal` file (and the
//! database file) within seconds, even when a reader kept the WAL busy at
//! the moment of the delete and reads keep running.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use uuid::Uuid;

use crate::harness::{Backend, Env, Options, TestServer};

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[tokio::test]
async fn a_deleted_ciphertext_leaves_the_wal_within_seconds_although_a_reader_held_it_busy() {
    let env = Env::new(Backend::Sqlite).await;
    let options = Options {
        env: vec![("TOTPD_RATE_LIMIT_PER_KEY".to_owned(), "0".to_owned())],
        ..Options::default()
    };
    let server = TestServer::start_in(&env, options);
    let api = server.api();
    let kept = api.create_ok(json!({"label": "kept"})).await;
    let doomed = api.create_ok(json!({"label": "doomed"})).await;
    let id = Uuid::parse_str(doomed["id"].as_str().unwrap()).unwrap();
    let db = server.env.sqlite_file();
    let wal = db.with_file_name("totpd.db-wal");

    let (nonce, ciphertext): (Vec<u8>, Vec<u8>) = {
        let conn = rusqlite::Connection::open(&db).unwrap();
        conn.query_row(
            "SELECT nonce, ciphertext FROM secrets WHERE id = ?1",
            [id.as_bytes().as_slice()],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .unwrap()
    };
    assert!(nonce.len() >= 12 && ciphertext.len() >= 32);

    // Reads over HTTP all along.
    let reading = Arc::new(AtomicBool::new(true));
    let readers: Vec<_> = (0..4)
        .map(|n| {
            let api = api.clone();
            let reading = Arc::clone(&reading);
            let kept = kept["id"].as_str().unwrap().to_owned();
            tokio::spawn(async move {
                while reading.load(Ordering::Relaxed) {
                    if n % 2 == 0 {
                        api.code(&kept).await.expect_ok();
                    } else {
                        api.list_ok().await;
                    }
                }
            })
        })
        .collect();

    // A reader (another process's, say a backup) holds a snapshot from
    // before the delete, so the checkpoint right after it cannot finish.
    let long_reader = rusqlite::Connection::open(&db).unwrap();
    long_reader.execute_batch("BEGIN").unwrap();
    let _: i64 = long_reader
        .query_row("SELECT COUNT(*) FROM secrets", [], |row| row.get(0))
        .unwrap();
    api.delete(&id.to_string()).await.expect_ok();
    tokio::time::sleep(Duration::from_millis(800)).await;
    let wal_bytes = std::fs::read(&wal).unwrap_or_default();
    assert!(
        contains(&wal_bytes, &ciphertext) || contains(&std::fs::read(&db).unwrap(), &ciphertext),
        "the reader should have kept the ciphertext in the files (the test proves nothing otherwise)"
    );
    long_reader.execute_batch("COMMIT").unwrap();
    drop(long_reader);

    let deadline = Instant::now() + Duration::from_secs(5);
    let found = loop {
        let wal_bytes = std::fs::read(&wal).unwrap_or_default();
        let db_bytes = std::fs::read(&db).unwrap();
        let mut found = Vec::new();
        for (file, bytes) in [("-wal", &wal_bytes), ("database file", &db_bytes)] {
            for (what, needle) in [("ciphertext", &ciphertext), ("nonce", &nonce)] {
                if contains(bytes, needle) {
                    found.push(format!("{what} in the {file}"));
                }
            }
        }
        if found.is_empty() || Instant::now() > deadline {
            break found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    reading.store(false, Ordering::Relaxed);
    for reader in readers {
        reader.await.unwrap();
    }
    assert!(
        found.is_empty(),
        "5 s after the reader let go, the deleted secret is still in the files: {found:?}"
    );
}
