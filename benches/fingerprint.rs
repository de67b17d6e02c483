//! Fingerprint throughput against its limits: a memcpy and raw xxh3-128 over
//! the same bytes (one thread, with the implementation ndcache uses, which
//! picks AVX2 at run time; `xxh3_slice_sse2` is `xxhash-rust` in a default
//! build, for comparison).
//!
//! Run: `cargo bench --bench fingerprint`

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ndarray::{s, Array1, Array2, ShapeBuilder};
use twox_hash::XxHash3_128;

const MB8: usize = 8 << 20;

fn values(n: usize) -> Vec<f64> {
    // Deterministic, non-trivial bit patterns.
    let mut x = 0x9E37_79B9_7F4A_7C15u64;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 11) as f64 / (1u64 << 53) as f64
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let n = MB8 / 8;
    let side = 1024;
    let c_order = Array2::from_shape_vec((side, side), values(n)).unwrap();
    let mut f_order = Array2::<f64>::zeros((side, side).f());
    f_order.assign(&c_order);
    let wide = Array1::from(values(2 * n));
    let strided = wide.slice(s![..;2]);
    let bytes: &[u8] = bytemuck::cast_slice(c_order.as_slice().unwrap());
    let big = Array1::from(values(10 * n));

    let mut g = c.benchmark_group("fingerprint");
    g.throughput(Throughput::Bytes(MB8 as u64));
    let mut dst = vec![0u8; MB8];
    g.bench_function("memcpy/8MB", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(bytes));
            black_box(&dst);
        })
    });
    g.bench_function("xxh3_slice/8MB", |b| {
        b.iter(|| XxHash3_128::oneshot(black_box(bytes)))
    });
    g.bench_function("xxh3_slice_sse2/8MB", |b| {
        b.iter(|| xxhash_rust::xxh3::xxh3_128(black_box(bytes)))
    });
    g.bench_function("contiguous/8MB", |b| {
        b.iter(|| ndcache::fingerprint(black_box(&c_order)))
    });
    g.bench_function("fortran/8MB", |b| {
        b.iter(|| ndcache::fingerprint(black_box(&f_order)))
    });
    g.bench_function("strided/8MB", |b| {
        b.iter(|| ndcache::fingerprint(black_box(&strided)))
    });

    g.throughput(Throughput::Bytes(10 * MB8 as u64));
    g.sample_size(30);
    g.bench_function("contiguous/80MB", |b| {
        b.iter(|| ndcache::fingerprint(black_box(&big)))
    });
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    g.bench_function("contiguous_1thread/80MB", |b| {
        b.iter(|| one.install(|| ndcache::fingerprint(black_box(&big))))
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
