//! Cached against raw kernels: ids `cached_vs_raw/<kernel>/<mode>/<n>`.
//!
//! Modes:
//! - `raw_serial`: the kernel on one thread (a one-thread rayon pool);
//! - `raw`: the kernel on the global rayon pool (all cores);
//! - `hit_hashed`: a cache hit with the input passed as a view, so it is
//!   fingerprinted on every call (what `tobytes()`-keyed caches do);
//! - `hit_keyed`: a cache hit with the input keyed once (`ArrayCache::keyed`);
//! - `miss`: compute and insert (input keyed; the cache is emptied, untimed,
//!   before each call).
//!
//! Kernels: `add`, `exp`, `sum`, `sort`, `max`, `maximum`, `power`, on
//! `f64` uniform in [0, 1) (both operands of the binary ones).
//!
//! Run: `cargo bench --bench cached_vs_raw`; then
//! `python3 benches/joblib_baseline.py` for numpy's times on this machine
//! (the same kernels; `raw` against numpy is the comparison that matters
//! for a miss).

use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, BenchmarkId, Criterion, Throughput};
use ndarray::Array1;
use ndcache::{ArrayCache, AsArg, Keyed, Params};

fn data(n: usize, seed: u64) -> Array1<f64> {
    let mut x = seed | 1;
    Array1::from_shape_fn(n, |_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x >> 11) as f64 / (1u64 << 53) as f64
    })
}

fn bench(c: &mut Criterion) {
    let one_thread = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let two_threads = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let mut g = c.benchmark_group("cached_vs_raw");
    for kernel in ["add", "exp", "sum", "sort", "max", "maximum", "power"] {
        for n in [1000usize, 100_000, 1_000_000] {
            let x = data(n, 1);
            let y = data(n, 2);
            let arity = match kernel {
                "add" | "maximum" | "power" => 2,
                _ => 1,
            };
            let cache = ArrayCache::builder().max_bytes(1 << 30).build().unwrap();
            let xk: Keyed = cache.keyed(x.clone());
            let yk: Keyed = cache.keyed(y.clone());
            let p = Params::new();
            let views = |n_in: usize| {
                let mut v = vec![x.arg()];
                if n_in == 2 {
                    v.push(y.arg());
                }
                v
            };
            let keyed = |n_in: usize| {
                let mut v = vec![xk.arg()];
                if n_in == 2 {
                    v.push(yk.arg());
                }
                v
            };
            g.throughput(Throughput::Elements(n as u64));
            if n >= 1_000_000 {
                g.sample_size(30);
            } else {
                g.sample_size(60);
            }
            g.bench_function(BenchmarkId::new(format!("{kernel}/raw_serial"), n), |b| {
                let args = views(arity);
                // The whole measurement runs inside the one-thread pool, so
                // no call pays for entering it.
                one_thread
                    .install(|| b.iter(|| black_box(cache.call_raw(kernel, &args, &p).unwrap())))
            });
            g.bench_function(BenchmarkId::new(format!("{kernel}/raw"), n), |b| {
                let args = views(arity);
                b.iter(|| black_box(cache.call_raw(kernel, &args, &p).unwrap()))
            });
            cache.call(kernel, &keyed(arity), &p).unwrap();
            g.bench_function(BenchmarkId::new(format!("{kernel}/hit_hashed"), n), |b| {
                let args = views(arity);
                b.iter(|| black_box(cache.call(kernel, &args, &p).unwrap()))
            });
            g.bench_function(BenchmarkId::new(format!("{kernel}/hit_keyed"), n), |b| {
                let args = keyed(arity);
                b.iter(|| black_box(cache.call(kernel, &args, &p).unwrap()))
            });
            g.bench_function(BenchmarkId::new(format!("{kernel}/miss"), n), |b| {
                let args = keyed(arity);
                b.iter_batched(
                    || cache.clear(),
                    |()| cache.call(kernel, &args, &p).unwrap(),
                    BatchSize::PerIteration,
                )
            });
            // The same miss from a rayon pool thread (a sweep's item): it
            // runs isolated, on a thread of its own (see src/isolate.rs).
            g.bench_function(BenchmarkId::new(format!("{kernel}/miss_on_pool"), n), |b| {
                let args = keyed(arity);
                two_threads.install(|| {
                    b.iter_batched(
                        || cache.clear(),
                        |()| cache.call(kernel, &args, &p).unwrap(),
                        BatchSize::PerIteration,
                    )
                })
            });
        }
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(700))
        .measurement_time(Duration::from_secs(2));
    targets = bench
}
criterion_main!(benches);
