//! The disk tier: a verified hit against a memcpy of the same bytes, and a
//! miss (compute exp, write the entry).
//!
//! Run: `cargo bench --bench disk_tier`. The entry is 8 MB of f64 in a
//! directory under the system temp dir; the page cache is warm after the
//! first read. For joblib.Memory on the same input, run
//! `python3 benches/joblib_baseline.py` right after.

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array1;
use ndcache::disk::{DiskTier, EntryInfo};
use ndcache::{AnyArray, AnyView, Params, Registry};

const N: usize = 1 << 20; // 8 MiB of f64

fn bench(c: &mut Criterion) {
    let data: Vec<f64> = (0..N).map(|i| (i as f64 * 1e-6).sin()).collect();
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(dir.path(), None).unwrap();
    let key = ndcache::call_key("exp", "1", b"", &[]);
    let value = AnyArray::from(Array1::from(data.clone()));
    tier.put(
        key,
        &value,
        EntryInfo::new("exp", "1", Duration::ZERO),
        None,
    );
    tier.flush();
    assert!(tier.get(key).is_some());

    let mut g = c.benchmark_group("disk_tier");
    g.throughput(Throughput::Bytes((N * 8) as u64));
    g.bench_function("hit/8MB", |b| b.iter(|| black_box(tier.get(key)).unwrap()));
    let mut dst = vec![0.0f64; N];
    g.bench_function("memcpy/8MB", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&data)))
    });
    g.bench_function("memcpy_new_vec/8MB", |b| {
        b.iter(|| black_box(black_box(&data).to_vec()))
    });

    // A miss: compute exp of the input and write the entry (renamed into
    // place, no fsync). Each iteration uses a new key; the writes are
    // waited for inside the measurement.
    let registry = Registry::with_builtins();
    let input = Array1::from(data.clone());
    let counter = AtomicU64::new(0);
    g.sample_size(20);
    g.bench_function("miss/8MB", |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                let view = AnyView::from(input.view());
                let out = registry.call("exp", &[view], &Params::new()).unwrap();
                let i = counter.fetch_add(1, Ordering::Relaxed);
                let k = ndcache::call_key("exp", "1", &i.to_le_bytes(), &[]);
                tier.put(k, &out, EntryInfo::new("exp", "1", Duration::ZERO), None);
            }
            tier.flush();
            start.elapsed()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = bench
}
criterion_main!(benches);
