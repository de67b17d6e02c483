//! Memory-tier hits on one, two and eight threads, with the default
//! cost-aware policy (`get_hit`) and with plain LRU (`get_hit_lru`), against
//! moka and against one mutex around one `lru::LruCache` (the naive design).
//!
//! A `2t` benchmark runs two threads that each do `iters` lookups at once on
//! the same cache and reports wall time per iteration: with no contention it
//! equals the `1t` time, and contention shows as a larger number. `8t` is
//! the same with eight threads (on fewer cores, it also measures how the
//! cache copes with threads preempted while holding a lock).
//!
//! Run: `cargo bench --bench memory_tier`

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::{Arc, Barrier, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use ndcache::{Fingerprint, MemoryTier, Policy};

const KEYS: usize = 10_000;

type Value = Arc<Vec<f64>>;

fn keys() -> Vec<Fingerprint> {
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    (0..KEYS)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            Fingerprint::from_u128(u128::from(x) << 64 | u128::from(x.rotate_left(17)))
        })
        .collect()
}

/// A seeded random order of lookups over the keys, distinct per thread.
fn order(seed: u64, keys: &[Fingerprint]) -> Vec<Fingerprint> {
    let mut x = seed | 1;
    (0..1 << 16)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            keys[(x % keys.len() as u64) as usize]
        })
        .collect()
}

/// Runs `op` over a lookup order `iters` times on each of `threads` threads
/// started together; returns the wall time from the start to the last finish.
fn run_threads<F>(threads: usize, iters: u64, orders: &[Vec<Fingerprint>], op: F) -> Duration
where
    F: Fn(&Fingerprint) + Sync,
{
    let barrier = Barrier::new(threads + 1);
    std::thread::scope(|s| {
        for order in orders.iter().take(threads) {
            let (barrier, op) = (&barrier, &op);
            s.spawn(move || {
                barrier.wait();
                for i in 0..iters as usize {
                    op(&order[i & (order.len() - 1)]);
                }
            });
        }
        barrier.wait();
        let start = Instant::now();
        // Leaving the scope joins the threads.
        start
    })
    .elapsed()
}

fn bench(c: &mut Criterion) {
    let keys = keys();
    let orders: Vec<Vec<Fingerprint>> = (1..=8).map(|t| order(t * 7919, &keys)).collect();

    let tier: MemoryTier<Fingerprint, Value> = MemoryTier::builder()
        .max_entries(2 * KEYS as u64)
        .build()
        .unwrap();
    let tier_lru: MemoryTier<Fingerprint, Value> = MemoryTier::builder()
        .policy(Policy::Lru)
        .max_entries(2 * KEYS as u64)
        .build()
        .unwrap();
    let moka: moka::sync::Cache<Fingerprint, Value> = moka::sync::Cache::new(2 * KEYS as u64);
    let naive = Mutex::new(lru::LruCache::<Fingerprint, Value>::new(
        NonZeroUsize::new(2 * KEYS).unwrap(),
    ));
    // One value per key, as in real use (a shared value would make every
    // hit fight over one reference count).
    for (i, k) in keys.iter().enumerate() {
        let value: Value = Arc::new(vec![i as f64; 16]);
        tier.insert(*k, value.clone());
        tier_lru.insert(*k, value.clone());
        moka.insert(*k, value.clone());
        naive.lock().unwrap().put(*k, value);
    }
    moka.run_pending_tasks();

    let mut g = c.benchmark_group("memory_tier");
    for threads in [1, 2, 8] {
        g.bench_function(format!("get_hit/{threads}t"), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &orders, |k| {
                    black_box(tier.get(k));
                })
            })
        });
        g.bench_function(format!("get_hit_lru/{threads}t"), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &orders, |k| {
                    black_box(tier_lru.get(k));
                })
            })
        });
        g.bench_function(format!("moka_get_hit/{threads}t"), |b| {
            b.iter_custom(|iters| {
                run_threads(threads, iters, &orders, |k| {
                    black_box(moka.get(k));
                })
            })
        });
    }
    g.bench_function("mutex_lru_get_hit/2t", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, &orders, |k| {
                black_box(naive.lock().unwrap().get(k).cloned());
            })
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
