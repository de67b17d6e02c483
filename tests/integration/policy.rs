//! Keeping what is worth keeping: the cost-aware memory tier's invariants
//! (budget, oversized values, TTL, single-flight) under random operations,
//! the adaptive bypass, and spilling evicted results to disk.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use ndarray::Array1;
use ndcache::memory::{EvictionCause, Policy};
use ndcache::Clock;
use ndcache::{
    AnyArray, ArrayCache, AsArg, DiskWrites, ManualClock, MemoryTier, Params, Registry, Source,
};
use proptest::prelude::*;

/// A value that knows what it weighs, what it cost and when it was made.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Val {
    weight: u64,
    cost: f64,
    born: u64,
    version: u32,
}

#[derive(Debug, Clone)]
enum Op {
    /// A miss path: computed if absent, through the admission gate.
    Fetch(u8, u64, f64),
    Insert(u8, u64, f64),
    Get(u8),
    Remove(u8),
    Advance(u64),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u8..40, 1u64..60, 0.0f64..10.0).prop_map(|(k, w, c)| Op::Fetch(k, w, c)),
        2 => (0u8..40, 1u64..60, 0.0f64..10.0).prop_map(|(k, w, c)| Op::Insert(k, w, c)),
        3 => (0u8..40).prop_map(Op::Get),
        1 => (0u8..40).prop_map(Op::Remove),
        1 => (1u64..4).prop_map(Op::Advance),
    ]
}

/// Runs `ops` on a tier with `policy`, a byte budget, an entry bound and a
/// TTL of 10 ticks, checking after each one what must always hold.
fn check_invariants(ops: &[Op], policy: Policy, shards: usize, budget: u64, max_entries: u64) {
    let clock = Arc::new(ManualClock::new());
    let ttl = 10;
    let told = Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = told.clone();
    let tier: MemoryTier<u8, Val> = MemoryTier::builder()
        .policy(policy)
        .shards(shards)
        .max_bytes(budget)
        .max_entries(max_entries)
        .ttl(Duration::from_secs(ttl))
        .clock(clock.clone())
        .weigher(|_, v: &Val| v.weight)
        .cost(|_, v: &Val| v.cost)
        .eviction_listener(move |k, v: &Val, cause| log.lock().unwrap().push((*k, *v, cause)))
        .build()
        .unwrap();
    // The newest value made for each key: the only one the tier may serve.
    let mut newest: HashMap<u8, Val> = HashMap::new();
    let mut version = 0;
    for (step, op) in ops.iter().enumerate() {
        let now = clock.now().as_secs();
        let mut make = |weight, cost| {
            version += 1;
            Val {
                weight,
                cost,
                born: now,
                version,
            }
        };
        match *op {
            Op::Fetch(k, w, c) => {
                let fresh = make(w, c);
                let mut computed = false;
                let v = tier.get_or_insert_with(k, || {
                    computed = true;
                    fresh
                });
                if computed {
                    assert_eq!(v, fresh);
                    newest.insert(k, fresh);
                    if w > budget {
                        assert!(!tier.contains_key(&k), "step {step}: too big, yet kept");
                    }
                } else {
                    assert_eq!(Some(&v), newest.get(&k), "step {step}: a stale value");
                    assert!(now < v.born + ttl, "step {step}: an expired value served");
                }
            }
            Op::Insert(k, w, c) => {
                let v = make(w, c);
                newest.insert(k, v);
                let kept = tier.insert(k, v);
                assert_eq!(
                    kept,
                    w <= budget,
                    "step {step}: explicit insertions are kept"
                );
                assert_eq!(tier.contains_key(&k), kept, "step {step}");
            }
            Op::Get(k) => {
                if let Some(v) = tier.get(&k) {
                    assert_eq!(Some(&v), newest.get(&k), "step {step}: a stale value");
                    assert!(now < v.born + ttl, "step {step}: an expired value served");
                }
            }
            Op::Remove(k) => {
                tier.remove(&k);
                assert!(!tier.contains_key(&k));
            }
            Op::Advance(s) => clock.advance(Duration::from_secs(s)),
        }
        let s = tier.stats();
        assert!(
            s.bytes <= budget,
            "step {step}: {} bytes over {budget}",
            s.bytes
        );
        assert!(
            s.currsize <= max_entries,
            "step {step}: {} entries",
            s.currsize
        );
        let held: Vec<u8> = (0..40).filter(|k| tier.contains_key(k)).collect();
        assert!(
            held.len() as u64 <= s.currsize,
            "step {step}: the count is off"
        );
        for (k, v, cause) in told.lock().unwrap().drain(..) {
            match cause {
                EvictionCause::TooBig => assert!(v.weight > budget),
                EvictionCause::NotAdmitted => assert_eq!(policy, Policy::CostAware),
                _ => {}
            }
            assert!(
                !tier.contains_key(&k) || newest[&k] != v,
                "step {step}: told but kept"
            );
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn cost_aware_keeps_every_bound_and_never_serves_stale(
        ops in proptest::collection::vec(op(), 1..300),
        budget in 1u64..200,
        max_entries in 1u64..30,
        shards in prop_oneof![Just(1usize), Just(4), Just(16)],
    ) {
        check_invariants(&ops, Policy::CostAware, shards, budget, max_entries);
    }

    #[test]
    fn lru_keeps_the_same_invariants(
        ops in proptest::collection::vec(op(), 1..300),
        budget in 1u64..200,
        max_entries in 1u64..30,
        shards in prop_oneof![Just(1usize), Just(4)],
    ) {
        check_invariants(&ops, Policy::Lru, shards, budget, max_entries);
    }
}

/// Spins until `n` callers wait on a flight.
fn until_waiters<V: Clone + Send + Sync + 'static>(tier: &MemoryTier<u64, V>, n: u64) {
    while tier.stats().waits < n {
        std::thread::yield_now();
    }
}

#[test]
fn single_flight_is_unchanged_under_either_policy() {
    for policy in [Policy::CostAware, Policy::Lru] {
        let tier = Arc::new(
            MemoryTier::<u64, u64>::builder()
                .policy(policy)
                .max_bytes(1000)
                .weigher(|_, _| 10)
                .build()
                .unwrap(),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let barrier = Arc::new(Barrier::new(8));
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let (tier, runs, barrier) = (tier.clone(), runs.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    tier.get_or_insert_with(42, || {
                        runs.fetch_add(1, Ordering::SeqCst);
                        until_waiters(&tier, 7);
                        99
                    })
                })
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), 99);
        }
        assert_eq!(runs.load(Ordering::SeqCst), 1, "{policy}");
        let s = tier.stats();
        assert_eq!((s.misses, s.waits, s.currsize), (8, 7, 1), "{policy}");
    }
}

#[test]
fn many_threads_keep_the_byte_budget_across_shards() {
    let tier = Arc::new(
        MemoryTier::<u64, u64>::builder()
            .shards(64)
            .max_bytes(10_000)
            .weigher(|_, w| *w)
            .cost(|k, _| (k % 7) as f64)
            .build()
            .unwrap(),
    );
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let tier = tier.clone();
            std::thread::spawn(move || {
                let mut x = t + 1;
                for _ in 0..20_000 {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let k = x % 500;
                    tier.get_or_insert_with(k, || 50 + k % 400);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = tier.stats();
    assert!(s.bytes <= 10_000, "{s}");
    assert!(s.evictions > 0 && s.hits > 0, "{s}");
    let held: u64 = (0..500).filter(|k| tier.contains_key(k)).count() as u64;
    assert_eq!(held, s.currsize, "{s}");
    let weight: u64 = (0..500)
        .filter(|k| tier.contains_key(k))
        .map(|k| 50 + k % 400)
        .sum();
    assert_eq!(weight, s.bytes, "{s}");
}

#[test]
fn an_expensive_one_hit_wonder_is_not_admitted_into_a_full_tier() {
    let tier: MemoryTier<u64, (u64, f64)> = MemoryTier::builder()
        .shards(1)
        .max_bytes(100)
        .weigher(|_, v: &(u64, f64)| v.0)
        .cost(|_, v| v.1)
        .build()
        .unwrap();
    for k in 0..10 {
        for _ in 0..3 {
            tier.get_or_insert_with(k, || (10, 1.0));
        }
    }
    // Seen once: not admitted, however expensive; seen again: it is.
    tier.get_or_insert_with(100, || (10, 1000.0));
    assert!(!tier.contains_key(&100));
    assert_eq!(tier.stats().not_admitted, 1);
    tier.get_or_insert_with(100, || (10, 1000.0));
    assert!(tier.contains_key(&100));
    // A cheap, heavy result does not displace what is worth more per byte
    // (and is used as recently).
    for k in (0..10).chain([100]) {
        tier.get(&k);
    }
    let kept = tier.stats().currsize;
    for _ in 0..3 {
        tier.get_or_insert_with(200, || (50, 0.1));
    }
    assert!(!tier.contains_key(&200));
    let s = tier.stats();
    assert_eq!((s.currsize, s.bytes), (kept, 100), "{s}");
}

/// The builtins, an expensive kernel (`slow`: sleeps 5 ms, then copies,
/// counting its runs) and a cheap one (`copy_f64`).
fn registry() -> (Registry, Arc<AtomicUsize>) {
    let runs = Arc::new(AtomicUsize::new(0));
    let mut reg = Registry::with_builtins();
    let r = runs.clone();
    reg.register_fn(
        "slow",
        "1",
        1,
        vec![],
        "sleeps, then copies",
        move |x, _| {
            r.fetch_add(1, Ordering::SeqCst);
            std::thread::sleep(Duration::from_millis(5));
            Ok(AnyArray::from(x[0].typed::<f64>()?.to_owned()))
        },
    )
    .unwrap();
    reg.register_fn("copy_f64", "1", 1, vec![], "copies", |x, _| {
        Ok(AnyArray::from(x[0].typed::<f64>()?.to_owned()))
    })
    .unwrap();
    (reg, runs)
}

#[test]
fn spill_writes_evictions_worth_reloading_and_a_disk_hit_keeps_its_file() {
    let dir = tempfile::tempdir().unwrap();
    let (reg, runs) = registry();
    let cache = ArrayCache::builder()
        .registry(reg)
        .max_bytes(3 * 80_000)
        .disk(dir.path())
        .disk_writes(DiskWrites::OnEviction)
        .disk_background_writes(false)
        .build()
        .unwrap();
    let inputs: Vec<_> = (0..6)
        .map(|i| cache.keyed(Array1::from_elem(10_000, i as f64)))
        .collect();
    let p = Params::new();
    for x in &inputs {
        let (_, source) = cache.call_with_source("slow", &[x.arg()], &p).unwrap();
        assert_eq!(
            source,
            Source::Computed { stored: false },
            "not written through"
        );
    }
    let spilled = cache.info().spilled;
    assert!(
        spilled >= 3,
        "3 of 6 results fit in memory, the others spill: {spilled}"
    );
    let disk = cache.disk().unwrap();
    assert_eq!(disk.stats().entries, spilled);
    // A result memory let go comes back from disk, not from the kernel,
    // and keeps its file.
    let (_, source) = cache
        .call_with_source("slow", &[inputs[5].arg()], &p)
        .unwrap();
    assert_eq!(source, Source::Disk);
    assert_eq!(runs.load(Ordering::SeqCst), 6);
    assert!(disk.stats().entries >= spilled, "a disk hit keeps the file");
    // Cheap results are not worth a write.
    for x in &inputs {
        cache.call("copy_f64", &[x.arg()], &p).unwrap();
    }
    assert_eq!(disk.stats().entries, cache.info().spilled);
    assert!(
        disk.entries()
            .unwrap()
            .iter()
            .all(|e| e.meta.kernel == "slow"),
        "only the expensive kernel's results were spilled"
    );
}

/// `n` elements no call has seen before.
fn fresh(i: usize, n: usize) -> Array1<f64> {
    Array1::from_shape_fn(n, |j| ((j * 2_654_435_761 + i * 7919) % 1_000_003) as f64)
}

#[test]
fn bypass_engages_on_fresh_cheap_calls_and_never_on_sorts() {
    let cache = ArrayCache::new();
    let p = Params::new();
    // add of fresh inputs: nothing to hit, and hashing both inputs costs
    // about what adding them does.
    for i in 0..300 {
        let (x, y) = (fresh(i, 100_000), fresh(i + 1000, 100_000));
        let r = cache.call("add", &[x.arg(), y.arg()], &p).unwrap();
        if i % 50 == 0 {
            let raw = cache.call_raw("add", &[x.arg(), y.arg()], &p).unwrap();
            assert!(
                raw.bitwise_eq(r.array()),
                "a bypassed result is the kernel's"
            );
        }
    }
    let add = cache.kernel_info("add").unwrap();
    assert!(add.bypassed > 0, "{add:?}");
    let class = cache
        .classes()
        .into_iter()
        .find(|c| c.kernel == "add")
        .unwrap();
    assert!(class.bypassing, "{class}");
    assert!(class.to_string().contains("bypassing the cache"), "{class}");
    let (x, y) = (fresh(5000, 100_000), fresh(5001, 100_000));
    let (r, source) = cache
        .call_with_source("add", &[x.arg(), y.arg()], &p)
        .unwrap();
    assert_eq!(source.to_string(), "computed, cache bypassed");
    // Its result still chains: hashed when first used as an input.
    let again = cache.call("sum", &[r.arg()], &p).unwrap();
    assert!(again
        .array()
        .bitwise_eq(&cache.call_raw("sum", &[r.arg()], &p).unwrap()));
    // A sort of fresh inputs costs far more than hashing them.
    for i in 0..100 {
        cache.call("sort", &[fresh(i, 100_000).arg()], &p).unwrap();
    }
    assert_eq!(cache.kernel_info("sort").unwrap().bypassed, 0);
    // And bypass can be turned off.
    let off = ArrayCache::builder().bypass(false).build().unwrap();
    for i in 0..300 {
        let (x, y) = (fresh(i, 100_000), fresh(i + 1000, 100_000));
        off.call("add", &[x.arg(), y.arg()], &p).unwrap();
    }
    assert_eq!(off.kernel_info("add").unwrap().bypassed, 0);
}

#[test]
fn bypass_returns_to_caching_when_calls_repeat() {
    // A kernel whose work is hashing its input three times: cached, a
    // fresh input costs 4/3 of the computation (bypass), a repeated one a
    // third of it (cache). The kernel's cost is the hashing's own, under
    // whatever load the machine has at that moment (a spin calibrated once
    // up front let a burst of load from other tests make hashing as dear
    // as the computation, and the class stayed bypassed).
    let mut reg = Registry::with_builtins();
    reg.register_fn(
        "rehash",
        "1",
        1,
        vec![],
        "hashes its input 3 times",
        move |x, _| {
            for _ in 0..3 {
                std::hint::black_box(x[0].fingerprint());
            }
            Ok(AnyArray::from(ndarray::arr0(x[0].len() as f64)))
        },
    )
    .unwrap();
    let cache = ArrayCache::builder().registry(reg).build().unwrap();
    let p = Params::new();
    for i in 0..200 {
        cache
            .call("rehash", &[fresh(i, 100_000).arg()], &p)
            .unwrap();
    }
    let class = || {
        cache
            .classes()
            .into_iter()
            .find(|c| c.kernel == "rehash")
            .unwrap()
    };
    assert!(class().bypassing, "{}", class());
    let few: Vec<_> = (0..8).map(|i| fresh(i, 100_000)).collect();
    for i in 0..600 {
        cache.call("rehash", &[few[i % 8].arg()], &p).unwrap();
    }
    assert!(!class().bypassing, "{}", class());
    assert!(cache.kernel_info("rehash").unwrap().memory_hits > 100);
}

#[test]
fn the_cost_aware_cache_keeps_the_expensive_results_lru_does_not() {
    // Six expensive results and a stream of cheap ones of the same size,
    // in a memory that holds six: LRU lets the cheap ones push the
    // expensive ones out; the cost-aware policy keeps them.
    let mut computed = Vec::new();
    for policy in [Policy::Lru, Policy::CostAware] {
        let (reg, runs) = registry();
        let cache = ArrayCache::builder()
            .registry(reg)
            .policy(policy)
            .max_bytes(6 * 80_000)
            .build()
            .unwrap();
        let expensive: Vec<_> = (0..6)
            .map(|i| cache.keyed(Array1::from_elem(10_000, i as f64)))
            .collect();
        let cheap: Vec<_> = (0..48)
            .map(|i| cache.keyed(Array1::from_elem(10_000, 100.0 + i as f64)))
            .collect();
        for round in 0..6 {
            for x in &expensive {
                cache.call("slow", &[x.arg()], &Params::new()).unwrap();
            }
            for x in &cheap[round * 6..round * 6 + 12] {
                cache.call("copy_f64", &[x.arg()], &Params::new()).unwrap();
            }
        }
        computed.push(runs.load(Ordering::SeqCst));
    }
    assert_eq!(
        computed[0], 36,
        "LRU recomputes every expensive result every round"
    );
    assert!(computed[1] <= 12, "cost-aware: {computed:?}");
}
