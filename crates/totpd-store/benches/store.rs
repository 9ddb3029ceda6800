#![allow(clippy::expect_used)] // a benchmark that cannot set up has nothing to measure
//! Criterion micro-benchmarks of the SQLite store's hot calls, below the
//! vault and HTTP: the code endpoint's secret lookup (random ids among 1,000
//! and among 100,000 stored secrets: flat is the goal), listing an account's
//! 10,000 secrets, and a burst of 64 concurrent durable creates (one group
//! commit or a few). Run with `cargo bench -p totpd-store --bench store`.
//!
//! Each iteration drives the async call with a current-thread runtime's
//! `block_on`, which adds well under a microsecond.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use totpd_store::ConnectOptions;
use totpd_vault::{AccountRow, SecretRow, Store};
use uuid::Uuid;

fn secret(account: Uuid, created_at: i64) -> SecretRow {
    SecretRow {
        id: Uuid::new_v4(),
        account_id: account,
        label: format!("user{created_at}@example.com"),
        issuer: Some("Example".to_owned()),
        algorithm: "SHA1".to_owned(),
        digits: 6,
        period: 30,
        created_at,
        sealed_by: "k1".to_owned(),
        nonce: Uuid::new_v4().as_bytes()[..12].to_vec(),
        ciphertext: [*Uuid::new_v4().as_bytes(), *Uuid::new_v4().as_bytes()].concat(),
        aad_version: 2,
        otp_type: "totp".to_owned(),
        counter: 0,
        skew: 1,
        hotp_window: 10,
        last_step: None,
        failed_verifies: 0,
        failed_since: None,
        fingerprint: None,
    }
}

/// A store whose account holds `count` secrets, and their ids.
async fn filled(url: &str, count: usize) -> (Arc<dyn Store>, Uuid, Vec<Uuid>) {
    let store = totpd_store::connect(url, &ConnectOptions::default())
        .await
        .expect("store");
    let account = AccountRow {
        id: Uuid::new_v4(),
        name: "bench".to_owned(),
        created_at: 0,
    };
    let account = store.insert_account(&account).await.expect("account");
    let mut ids = Vec::with_capacity(count);
    let mut done = 0;
    while done < count {
        let batch = (count - done).min(256);
        let inserts: Vec<_> = (0..batch)
            .map(|i| {
                let store = Arc::clone(&store);
                let row = secret(account.id, i64::try_from(done + i).expect("i64"));
                tokio::spawn(async move { store.insert_secret(&row).await.map(|()| row.id) })
            })
            .collect();
        for insert in inserts {
            ids.push(insert.await.expect("task").expect("insert"));
        }
        done += batch;
    }
    (store, account.id, ids)
}

fn store(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");

    for count in [1_000, 100_000] {
        let url = format!("sqlite://{}/lookup-{count}.db", dir.path().display());
        let (store, account, ids) = runtime.block_on(filled(&url, count));
        // UUIDv4s are random, so every 7919th one (a prime) is a random walk
        // over the B-tree.
        let mut next = 0;
        c.bench_function(&format!("secret lookup, {count} stored"), |b| {
            b.iter(|| {
                next = (next + 7_919) % ids.len();
                let id = ids.get(next).copied().unwrap_or_default();
                runtime
                    .block_on(store.secret(black_box(account), black_box(id)))
                    .expect("lookup")
            })
        });
    }

    let url = format!("sqlite://{}/list.db", dir.path().display());
    let (store, account, _) = runtime.block_on(filled(&url, 10_000));
    let mut group = c.benchmark_group("list");
    group.sample_size(20);
    group.bench_function("list_secrets, 10000 in the account", |b| {
        b.iter(|| {
            runtime
                .block_on(store.list_secrets(black_box(account)))
                .expect("list")
        })
    });
    group.finish();

    let url = format!("sqlite://{}/create.db", dir.path().display());
    let (store, account, _) = runtime.block_on(filled(&url, 1));
    let mut group = c.benchmark_group("create");
    group.sample_size(20);
    group.bench_function("64 concurrent durable inserts", |b| {
        b.iter_batched(
            || (0..64).map(|i| secret(account, i)).collect::<Vec<_>>(),
            |rows| {
                runtime.block_on(async {
                    let inserts: Vec<_> = rows
                        .into_iter()
                        .map(|row| {
                            let store = Arc::clone(&store);
                            tokio::spawn(async move { store.insert_secret(&row).await })
                        })
                        .collect();
                    for insert in inserts {
                        insert.await.expect("task").expect("insert");
                    }
                })
            },
            BatchSize::SmallInput,
        )
    });
    group.finish();
}

criterion_group!(benches, store);
criterion_main!(benches);
