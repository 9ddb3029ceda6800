//! Codes per second for each algorithm: one-shot (`hotp`, keying HMAC for
//! every code, what a server does per request) and through a keyed
//! `Generator` (what `totpd otp --window` does).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use totpd_otp::{Algorithm, Digits, Generator, Secret, hotp};

fn codes(c: &mut Criterion) {
    // 20 bytes, the length RFC 4226 recommends and most services use.
    let secret = match Secret::from_bytes(b"12345678901234567890".to_vec()) {
        Ok(secret) => secret,
        Err(error) => unreachable!("a 20-byte secret is valid: {error}"),
    };
    let digits = Digits::default();
    let mut group = c.benchmark_group("codes");
    group.throughput(Throughput::Elements(1));
    for algorithm in Algorithm::ALL {
        group.bench_function(format!("hotp/{algorithm}"), |b| {
            let mut counter = 0u64;
            b.iter(|| {
                counter = counter.wrapping_add(1);
                black_box(hotp(&secret, algorithm, digits, black_box(counter)))
            });
        });
        let generator = Generator::new(&secret, algorithm, digits);
        group.bench_function(format!("generator/{algorithm}"), |b| {
            let mut counter = 0u64;
            b.iter(|| {
                counter = counter.wrapping_add(1);
                black_box(generator.code(black_box(counter)))
            });
        });
    }
    group.finish();
}

criterion_group!(benches, codes);
criterion_main!(benches);
