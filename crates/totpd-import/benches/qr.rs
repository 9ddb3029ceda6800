//! Reading the QR code of a 1920×1080 screenshot, PNG and JPEG (the
//! fixtures of `tests/data/qr`): decode, greyscale, every pass the reader
//! runs, and the URI parse. `cargo bench -p totpd-import --bench qr`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use totpd_import::{Format, Limits, read};

fn screenshots(c: &mut Criterion) {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/qr");
    let limits = Limits::default();
    let mut group = c.benchmark_group("qr");
    group.sample_size(30);
    for name in [
        "shot_1x.png",
        "shot_q60.jpg",
        "shot_dark.png",
        "shot_no_qr.png",
    ] {
        let data = std::fs::read(format!("{dir}/{name}")).unwrap();
        group.bench_function(name, |b| {
            b.iter(|| read(Format::Qr, black_box(&data), None, &limits))
        });
    }
    group.finish();
}

criterion_group!(benches, screenshots);
criterion_main!(benches);
