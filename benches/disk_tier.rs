//! The disk tier's hit path against a plain memcpy of the same bytes.
//!
//! `cargo bench --bench disk_tier`. The entry is 8 MB of f64 in a directory
//! under the system temp dir, so the page cache is warm after the first run.

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::Array1;
use ndcache::disk::{DiskTier, EntryInfo};
use ndcache::AnyArray;

fn hit_path(c: &mut Criterion) {
    const N: usize = 1 << 20; // 8 MiB of f64
    let data: Vec<f64> = (0..N).map(|i| (i as f64).sin()).collect();
    let dir = tempfile::tempdir().unwrap();
    let tier = DiskTier::open(dir.path(), None).unwrap();
    let key = ndcache::call_key("bench", "1", b"", &[]);
    let value = AnyArray::from(Array1::from(data.clone()));
    tier.put(
        key,
        &value,
        EntryInfo::new("bench", "1", Duration::ZERO),
        None,
    );
    tier.flush();
    assert!(tier.get(key).is_some());

    let mut g = c.benchmark_group("disk_hit_8MiB");
    g.throughput(Throughput::Bytes((N * 8) as u64));
    g.bench_function("get", |b| b.iter(|| black_box(tier.get(key)).unwrap()));
    g.bench_function("memcpy_to_new_vec", |b| {
        b.iter(|| black_box(black_box(&data).to_vec()))
    });
    let mut dst = vec![0.0f64; N];
    g.bench_function("memcpy_into_warm_buffer", |b| {
        b.iter(|| dst.copy_from_slice(black_box(&data)))
    });
    let path = dir.path().join("plain.npy");
    ndcache::disk::write_npy_atomic(&path, &value).unwrap();
    g.bench_function("read_npy", |b| {
        b.iter(|| black_box(ndcache::disk::read_npy(&path).unwrap()))
    });
    g.bench_function("xxh3_128", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_128(black_box(bytemuck::cast_slice(&data))))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(50).measurement_time(Duration::from_secs(4));
    targets = hit_path
}
criterion_main!(benches);
