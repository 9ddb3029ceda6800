#![allow(clippy::expect_used)] // a benchmark that cannot set up has nothing to measure
//! Criterion micro-benchmarks of the pieces of `GET /api/v2/totp/code/{id}`:
//! the API-key check (cached row), the AES-256-GCM open of a secret, the
//! TOTP computation, and the whole vault call (store read + decrypt + code)
//! on SQLite. Run with `cargo bench -p totpd --bench hot_path`.

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, criterion_group, criterion_main};
use totpd_otp::{Algorithm, Digits, Period, Secret, Totp};
use totpd_store::ConnectOptions;
use totpd_vault::{
    Label, MasterKey, NewSecret, Origin, Principal, Role, SecretSource, UnixTime, Vault,
};

fn hot_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}/bench.db", dir.path().display());
    let now = UnixTime(1_800_000_000_000);
    let (vault, key, secret_id) = runtime.block_on(async {
        let store = totpd_store::connect(&url, &ConnectOptions::default())
            .await
            .expect("store");
        let vault = Vault::open(store, MasterKey::generate().expect("key"))
            .await
            .expect("vault");
        let key = vault
            .create_api_key(
                &totpd_vault::AccountName::parse("bench").expect("account name"),
                now,
            )
            .await
            .expect("api key");
        let principal = Principal::new(key.account.id, key.key_id.clone(), Role::Owner);
        let created = vault
            .create_secret(
                &principal,
                NewSecret {
                    label: Label::parse("bench").expect("label"),
                    issuer: None,
                    source: SecretSource::Generate,
                    algorithm: Algorithm::Sha1,
                    digits: Digits::default(),
                    period: Period::default(),
                    kind: totpd_vault::SecretKind::default(),
                },
                now,
            )
            .await
            .expect("secret");
        (Arc::new(vault), key, created.info.id)
    });
    let principal = Principal::new(key.account.id, key.key_id.clone(), Role::Owner);

    c.bench_function("auth check (cached key row)", |b| {
        b.iter(|| {
            runtime
                .block_on(vault.authenticate(
                    black_box(&key.key_id),
                    key.secret.expose(),
                    now,
                    Origin::default(),
                ))
                .expect("auth")
        });
    });

    let master = MasterKey::generate().expect("key");
    let sealed = master
        .seal(&[7u8; 20], b"totpd/v1/secret/a/b")
        .expect("seal");
    c.bench_function("decrypt secret (AES-256-GCM open)", |b| {
        b.iter(|| {
            master
                .open(black_box(&sealed), b"totpd/v1/secret/a/b")
                .expect("open")
        });
    });

    let totp = Totp {
        secret: Secret::from_bytes(vec![7u8; 20]).expect("secret"),
        algorithm: Algorithm::Sha1,
        digits: Digits::default(),
        period: Period::default(),
    };
    c.bench_function("code computation (TOTP SHA1, 6 digits)", |b| {
        b.iter(|| totp.code_at(black_box(1_800_000_000)));
    });

    c.bench_function("vault code (SQLite read + decrypt + code)", |b| {
        b.iter(|| {
            runtime
                .block_on(vault.code(&principal, black_box(secret_id), now))
                .expect("code")
        });
    });
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
